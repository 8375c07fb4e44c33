// Reference implementation of Atelier's grid pipeline with sharp (libvips), for comparison
// with `atelier bench pipeline`. Usage: node sharp.mjs GRID.png [RUNS]
//
// Steps, timed together for each run (one untimed warm-up first):
//   read the file; PNG signature check; SHA-256 (node:crypto, on the main thread while libvips
//   decodes on the libuv pool); full decode to raw pixels (sharp's default failOn 'warning'
//   rejects truncated/corrupt data); then five tasks under Promise.all:
//     grid:       thumbnail (resize 512 inside) -> WebP q80; 5-colour palette
//     quadrant q: extract -> PNG (sharp defaults: compressionLevel 6) -> SHA-256 of the PNG
//                 (Atelier hashes each quadrant too); thumbnail -> WebP q80; 5-colour palette
//   Palette: `.stats().dominant` from libvips plus a 5-colour k-means in JS over the
//   thumbnail's raw pixels (same algorithm as Atelier: <= 4096 samples, 12 rounds, seeds at
//   luminance quantiles). The PNG is decoded once; later steps start from the raw pixels.
// sharp.concurrency() is left at its default.

import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';

const THUMB = 512;
const PNG_SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function kmeansPalette(data, channels, k = 5, maxSamples = 4096, rounds = 12) {
  const n = data.length / channels;
  const step = Math.max(1, Math.ceil(n / maxSamples));
  const samples = [];
  for (let i = 0; i < n; i += step) {
    const o = i * channels;
    samples.push([data[o], data[o + 1], data[o + 2]]);
  }
  const luma = (c) => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
  const byLuma = samples.slice().sort((a, b) => luma(a) - luma(b));
  const centres = [];
  for (let i = 0; i < k; i++) centres.push(byLuma[Math.floor(((2 * i + 1) * byLuma.length) / (2 * k))].slice());
  const members = new Array(k).fill(0);
  for (let r = 0; r < rounds; r++) {
    const sums = Array.from({ length: k }, () => [0, 0, 0]);
    members.fill(0);
    for (const s of samples) {
      let best = 0;
      let bestD = Infinity;
      for (let c = 0; c < k; c++) {
        const d0 = centres[c][0] - s[0], d1 = centres[c][1] - s[1], d2 = centres[c][2] - s[2];
        const d = d0 * d0 + d1 * d1 + d2 * d2;
        if (d < bestD) { bestD = d; best = c; }
      }
      members[best]++;
      sums[best][0] += s[0]; sums[best][1] += s[1]; sums[best][2] += s[2];
    }
    for (let c = 0; c < k; c++) {
      if (members[c] > 0) centres[c] = sums[c].map((v) => v / members[c]);
    }
  }
  const ranked = centres.map((c, i) => ({ n: members[i], c })).sort((a, b) => b.n - a.n);
  const colours = [];
  for (const { n: count, c } of ranked) {
    const rgb = c.map((v) => Math.min(255, Math.max(0, Math.round(v))));
    if (count > 0 && !colours.some((x) => x[0] === rgb[0] && x[1] === rgb[1] && x[2] === rgb[2])) colours.push(rgb);
  }
  return colours;
}

// Thumbnail (raw), WebP of it, libvips dominant colour and k-means palette of it.
async function describe(pipeline) {
  const { data, info } = await pipeline
    .resize(THUMB, THUMB, { fit: 'inside' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const raw = { raw: { width: info.width, height: info.height, channels: info.channels } };
  const webpP = sharp(data, raw).webp({ quality: 80 }).toBuffer();
  const statsP = sharp(data, raw).stats();
  const palette = kmeansPalette(data, info.channels, 5);
  const [webp, stats] = await Promise.all([webpP, statsP]);
  const d = stats.dominant;
  return { webp, palette, dominant: [d.r, d.g, d.b], kmeansDominant: palette[0] };
}

async function processGrid(path) {
  const bytes = await readFile(path);
  const tRead = performance.now();
  if (bytes.length < 8 || !bytes.subarray(0, 8).equals(PNG_SIG)) throw new Error('not a PNG');
  const decodeP = sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const { data: pixels, info } = await decodeP;
  const { width, height, channels } = info;
  if (width < 2 || height < 2 || width % 2 || height % 2) throw new Error(`not a grid: ${width}x${height}`);
  const raw = { raw: { width, height, channels } };
  const w = width / 2;
  const h = height / 2;

  const gridTask = describe(sharp(pixels, raw)).then((d) => ({ sha256, ...d }));
  const quadrantTasks = [0, 1, 2, 3].map(async (q) => {
    const region = { left: (q % 2) * w, top: Math.floor(q / 2) * h, width: w, height: h };
    const pngP = sharp(pixels, raw).extract(region).png().toBuffer();
    const descP = describe(sharp(pixels, raw).extract(region));
    const png = await pngP;
    const qsha = createHash('sha256').update(png).digest('hex');
    return { png, sha256: qsha, ...(await descP) };
  });
  const [grid, ...quadrants] = await Promise.all([gridTask, ...quadrantTasks]);
  return { grid, quadrants, readAt: tRead };
}

async function main() {
  const path = process.argv[2];
  const runs = Number.parseInt(process.argv[3] ?? '15', 10);
  if (!path || !(runs > 0)) {
    console.error('usage: node sharp.mjs GRID.png [RUNS]');
    process.exit(2);
  }
  let last = await processGrid(path); // warm-up
  const times = [];
  const noRead = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    last = await processGrid(path);
    const t1 = performance.now();
    times.push(t1 - t0);
    noRead.push(t1 - last.readAt);
  }
  const median = (v) => v.slice().sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const quadrantPng = last.quadrants.reduce((s, q) => s + q.png.length, 0);
  const thumbs = last.grid.webp.length + last.quadrants.reduce((s, q) => s + q.webp.length, 0);
  const out = {
    tool: 'sharp',
    runs,
    median_ms: median(times),
    min_ms: Math.min(...times),
    max_ms: Math.max(...times),
    median_ms_excluding_read: median(noRead),
    quadrant_png_bytes: quadrantPng,
    thumbnail_webp_bytes: thumbs,
    output_bytes: quadrantPng + thumbs,
    palette_method: 'k-means (k=5, <=4096 samples, 12 rounds, luma-quantile seeds) in JS on thumbnail raw pixels + libvips stats().dominant',
    grid_palette: last.grid.palette,
    grid_dominant_stats: last.grid.dominant,
    versions: { node: process.versions.node, sharp: sharp.versions.sharp, libvips: sharp.versions.vips },
    sharp_concurrency: sharp.concurrency(),
    uv_threadpool_size: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
  };
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

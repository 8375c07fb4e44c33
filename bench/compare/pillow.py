"""Reference implementation of Atelier's grid pipeline with Pillow, for comparison with
`atelier bench pipeline`.

Usage: python pillow.py GRID.png [RUNS] [--threads N]

Steps, timed together for each run (one untimed warm-up first):
  read the file; PNG signature check; SHA-256 (hashlib); Image.open(...).load() (full decode;
  truncated data raises, LOAD_TRUNCATED_IMAGES stays False); crop the four quadrants; then five
  tasks:
    grid:       Image.thumbnail((512, 512)) -> WEBP quality 80; quantize(colors=5)
    quadrant q: save PNG (Pillow defaults: compress_level 6) -> SHA-256 of the PNG (Atelier
                hashes each quadrant too); thumbnail -> WEBP q80; quantize(colors=5)
  Palette: Image.quantize(colors=5) on the thumbnail (median cut, Pillow's default for RGB),
  colours ranked by pixel count; the first is the dominant colour.

--threads 1 (default) is plain single-threaded Pillow. --threads N runs the hash beside the
decode and the five tasks on a ThreadPoolExecutor of N workers (Pillow releases the GIL in
its C codecs and resampling, hashlib for large buffers).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import PIL
from PIL import Image, features

THUMB = (512, 512)
PNG_SIG = b"\x89PNG\r\n\x1a\n"


def palette_of(thumb: Image.Image) -> list[tuple[int, int, int]]:
    q = thumb.quantize(colors=5)
    pal = q.getpalette() or []
    counts = sorted(q.getcolors() or [], reverse=True)  # (count, index), most pixels first
    return [tuple(pal[3 * i : 3 * i + 3]) for _, i in counts]


def describe(img: Image.Image) -> tuple[bytes, list]:
    """Thumbnails `img` in place (callers pass an image they own), WebP, palette."""
    img.thumbnail(THUMB)
    buf = io.BytesIO()
    img.save(buf, "WEBP", quality=80)
    return buf.getvalue(), palette_of(img)


def grid_task(img: Image.Image) -> dict:
    webp, palette = describe(img)
    return {"webp": webp, "palette": palette}


def quadrant_task(img: Image.Image) -> dict:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    png = buf.getvalue()
    sha = hashlib.sha256(png).hexdigest()
    webp, palette = describe(img)
    return {"png": png, "sha256": sha, "webp": webp, "palette": palette}


def process_grid(path: str, pool: ThreadPoolExecutor | None) -> tuple[dict, float]:
    with open(path, "rb") as f:
        data = f.read()
    t_read = time.perf_counter()
    if not data.startswith(PNG_SIG):
        raise ValueError("not a PNG")
    hash_future = pool.submit(lambda: hashlib.sha256(data).hexdigest()) if pool else None
    im = Image.open(io.BytesIO(data))
    im.load()
    sha = hash_future.result() if hash_future else hashlib.sha256(data).hexdigest()
    w, h = im.size
    if w < 2 or h < 2 or w % 2 or h % 2:
        raise ValueError(f"not a grid: {w}x{h}")
    hw, hh = w // 2, h // 2
    crops = [im.crop(((q % 2) * hw, (q // 2) * hh, (q % 2) * hw + hw, (q // 2) * hh + hh)) for q in range(4)]
    # The grid's thumbnail is made in place on `im`: the crops are already copies.
    if pool:
        gf = pool.submit(grid_task, im)
        quadrants = list(pool.map(quadrant_task, crops))
        grid = gf.result()
    else:
        grid = grid_task(im)
        quadrants = [quadrant_task(c) for c in crops]
    grid["sha256"] = sha
    return {"grid": grid, "quadrants": quadrants}, t_read


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("runs", nargs="?", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    pool = ThreadPoolExecutor(max_workers=a.threads) if a.threads > 1 else None
    last, _ = process_grid(a.path, pool)  # warm-up
    times, no_read = [], []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        last, t_read = process_grid(a.path, pool)
        t1 = time.perf_counter()
        times.append((t1 - t0) * 1000)
        no_read.append((t1 - t_read) * 1000)
    quadrant_png = sum(len(q["png"]) for q in last["quadrants"])
    thumbs = len(last["grid"]["webp"]) + sum(len(q["webp"]) for q in last["quadrants"])
    times_sorted = sorted(times)
    out = {
        "tool": "pillow" if a.threads <= 1 else f"pillow-threads{a.threads}",
        "runs": a.runs,
        "threads": a.threads,
        # upper median for even counts, like `atelier bench` (v[len/2] after sorting)
        "median_ms": times_sorted[len(times) // 2],
        "min_ms": min(times),
        "max_ms": max(times),
        "median_ms_excluding_read": sorted(no_read)[len(no_read) // 2],
        "stdev_ms": statistics.pstdev(times),
        "quadrant_png_bytes": quadrant_png,
        "thumbnail_webp_bytes": thumbs,
        "output_bytes": quadrant_png + thumbs,
        "palette_method": "Image.quantize(colors=5) on the thumbnail (median cut), ranked by pixel count",
        "grid_palette": last["grid"]["palette"],
        "versions": {
            "python": sys.version.split()[0],
            "pillow": PIL.__version__,
            "libwebp": features.version("webp"),
            "zlib": features.version("zlib"),
        },
    }
    print(json.dumps(out))
    if pool:
        pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

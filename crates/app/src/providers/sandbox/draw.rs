//! Deterministic synthetic renders for the sandbox provider (and the Discord simulator).
//!
//! A grid is four scenes side by side. Each scene is a small landscape (sky gradient, sun,
//! layered hills, clouds) with fractal value noise and film grain, so it looks like a render
//! and compresses like one (about 2 bytes a pixel as PNG, like a real 2048² grid of ~8 MB), never like a flat card. Every pixel
//! is a pure function of (prompt, seed, quadrant, position inside the quadrant): a quadrant
//! drawn on its own is bit-for-bit the grid's crop, which makes "upscales" exact.

use crate::pipeline::Pixels;

/// What one quadrant looks like; derived from the prompt, the seed and the quadrant.
#[derive(Clone, Copy, Debug)]
struct Scene {
    seed: u64,
    /// Noise finer than a pixel is invisible: octaves stop at this frequency (cycles/side).
    max_freq: f32,
    sky_top: [f32; 3],
    sky_bottom: [f32; 3],
    ground: [f32; 3],
    far: [f32; 3],
    sun: [f32; 3],
    sun_at: (f32, f32),
    sun_r: f32,
    horizon: f32,
    roughness: f32,
}

fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(h: u64) -> f32 {
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// FNV-1a over the prompt, then mixed with the seed: stable across runs and platforms.
pub fn scene_seed(prompt: &str, seed: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in prompt.as_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    mix64(h ^ u64::from(seed))
}

fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h = (h.rem_euclid(1.0)) * 6.0;
    let c = v * s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [(r + m) * 255.0, (g + m) * 255.0, (b + m) * 255.0]
}

impl Scene {
    fn new(base: u64, quadrant: u32, side: u32) -> Self {
        let seed = mix64(base ^ (u64::from(quadrant) + 1).wrapping_mul(0x5851_f42d_4c95_7f2d));
        let r = |i: u64| unit(mix64(seed ^ i));
        // Quadrants take hues a quarter turn apart, so the four are visibly different.
        let hue = r(1) + quadrant as f32 * 0.25;
        Self {
            seed,
            max_freq: side as f32 / 2.0,
            sky_top: hsv(hue, 0.55 + 0.3 * r(2), 0.35 + 0.3 * r(3)),
            sky_bottom: hsv(hue + 0.08, 0.35 + 0.3 * r(4), 0.8 + 0.2 * r(5)),
            ground: hsv(hue + 0.45, 0.5 + 0.4 * r(6), 0.25 + 0.3 * r(7)),
            far: hsv(hue + 0.55, 0.3 + 0.3 * r(8), 0.45 + 0.3 * r(9)),
            sun: hsv(hue + 0.12, 0.25, 1.0),
            sun_at: (0.2 + 0.6 * r(10), 0.15 + 0.3 * r(11)),
            sun_r: 0.05 + 0.08 * r(12),
            horizon: 0.5 + 0.2 * r(13),
            roughness: 0.45 + 0.2 * r(14),
        }
    }

    fn lattice(&self, x: i64, y: i64, salt: u64) -> f32 {
        unit(mix64(
            self.seed
                ^ salt
                ^ (x as u64).wrapping_mul(0x9e37_79b9)
                ^ (y as u64).wrapping_mul(0x85eb_ca6b_0000_0001),
        ))
    }

    fn value_noise(&self, x: f32, y: f32, salt: u64) -> f32 {
        let (xf, yf) = (floor(x), floor(y));
        let (xi, yi) = (xf as i64, yf as i64);
        let (tx, ty) = (x - xf, y - yf);
        let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
        let a = self.lattice(xi, yi, salt);
        let b = self.lattice(xi + 1, yi, salt);
        let c = self.lattice(xi, yi + 1, salt);
        let d = self.lattice(xi + 1, yi + 1, salt);
        let top = a + (b - a) * sx;
        let bottom = c + (d - c) * sx;
        top + (bottom - top) * sy
    }

    /// Fractal noise at (x, y), where `scale` is the base frequency in cycles per side.
    fn fbm(&self, x: f32, y: f32, scale: f32, octaves: u32, salt: u64) -> f32 {
        let (mut sum, mut amp, mut freq, mut norm) = (0.0, 1.0, 1.0, 0.0);
        for o in 0..octaves {
            if o > 0 && scale * freq > self.max_freq {
                break;
            }
            sum += amp * self.value_noise(x * freq, y * freq, salt + u64::from(o));
            norm += amp;
            amp *= self.roughness;
            freq *= 2.03;
        }
        sum / norm
    }

    /// The far and near hill lines of column `u`: they depend on the column only.
    fn hills(&self, u: f32) -> (f32, f32) {
        (
            self.horizon - 0.12 + 0.1 * self.fbm(u * 3.0, 0.5, 3.0, 3, 100),
            self.horizon + 0.05 + 0.12 * self.fbm(u * 5.0, 1.5, 5.0, 4, 200),
        )
    }

    /// The colour at (u, v) in [0, 1)², plus per-pixel grain keyed by integer position.
    fn pixel(&self, u: f32, v: f32, hills: (f32, f32), px: u32, py: u32) -> [u8; 3] {
        let (far_line, near_line) = hills;
        let lerp = |a: [f32; 3], b: [f32; 3], t: f32| {
            [
                a[0] + (b[0] - a[0]) * t,
                a[1] + (b[1] - a[1]) * t,
                a[2] + (b[2] - a[2]) * t,
            ]
        };
        let mut c = if v < far_line {
            let mut sky = lerp(
                self.sky_top,
                self.sky_bottom,
                (v / far_line).clamp(0.0, 1.0),
            );
            let (dx, dy) = (u - self.sun_at.0, v - self.sun_at.1);
            let d = (dx * dx + dy * dy).sqrt();
            let glow = (1.0 - d / (self.sun_r * 3.5)).max(0.0).powi(2) * 0.6;
            let disk = if d < self.sun_r { 1.0 } else { glow };
            sky = lerp(sky, self.sun, disk);
            let cloud = (self.fbm(u * 4.0, v * 9.0, 9.0, 5, 300) - 0.5).max(0.0) * 1.8;
            lerp(sky, [245.0, 245.0, 250.0], cloud.min(0.85))
        } else if v < near_line {
            let shade = self.fbm(u * 16.0, v * 16.0, 16.0, 4, 400);
            lerp(self.far, self.sky_bottom, 0.25 + 0.35 * (1.0 - shade))
        } else {
            let depth = ((v - near_line) / (1.0 - near_line).max(1e-3)).clamp(0.0, 1.0);
            let texture = self.fbm(u * 24.0, v * 24.0, 24.0, 5, 500);
            let g = lerp(self.ground, [20.0, 20.0, 25.0], depth * 0.5);
            lerp(g, [g[0] * 1.6, g[1] * 1.6, g[2] * 1.6], texture - 0.3)
        };
        let grain = (unit(mix64(self.seed ^ (u64::from(px) << 32 | u64::from(py)))) - 0.5) * 44.0;
        for ch in &mut c {
            *ch += grain;
        }
        c.map(channel)
    }

    fn draw_rows(&self, side: u32, rows: std::ops::Range<u32>, out: &mut [u8]) {
        let inv = 1.0 / side as f32;
        let hills: Vec<(f32, f32)> = (0..side).map(|x| self.hills(x as f32 * inv)).collect();
        let mut i = 0;
        for y in rows {
            for x in 0..side {
                let p = self.pixel(x as f32 * inv, y as f32 * inv, hills[x as usize], x, y);
                out[i..i + 3].copy_from_slice(&p);
                i += 3;
            }
        }
    }
}

/// Draws quadrant `index` (1–4, row-major) of the grid for (prompt, seed) at `side`×`side`.
pub fn quadrant(prompt: &str, seed: u32, side: u32, index: u8) -> Pixels {
    let scene = Scene::new(
        scene_seed(prompt, seed),
        u32::from(index.saturating_sub(1)),
        side,
    );
    let mut data = vec![0u8; side as usize * side as usize * 3];
    let row_bytes = side as usize * 3;
    if side < 512 || crate::pipeline::threads() < 2 {
        scene.draw_rows(side, 0..side, &mut data);
    } else {
        let half = side / 2;
        let (top, bottom) = data.split_at_mut(half as usize * row_bytes);
        std::thread::scope(|s| {
            s.spawn(|| scene.draw_rows(side, 0..half, top));
            scene.draw_rows(side, half..side, bottom);
        });
    }
    Pixels::rgb(side, side, data)
}

/// Draws the 2×2 grid for (prompt, seed): `side`×`side`, each quadrant `side / 2`.
pub fn grid(prompt: &str, seed: u32, side: u32) -> Pixels {
    grid_and_quadrants(prompt, seed, side).0
}

/// The grid, and the four quadrants it was assembled from (what [`quadrant`] would draw).
pub fn grid_and_quadrants(prompt: &str, seed: u32, side: u32) -> (Pixels, Vec<Pixels>) {
    let half = side / 2;
    let quads: Vec<Pixels> = (1..=4).map(|i| quadrant(prompt, seed, half, i)).collect();
    let row_bytes = half as usize * 3;
    let mut data = Vec::with_capacity(side as usize * side as usize * 3);
    for (top, bottom) in [(0, 1), (2, 3)] {
        for row in 0..half as usize {
            let r = row * row_bytes..(row + 1) * row_bytes;
            data.extend_from_slice(&quads[top].data[r.clone()]);
            data.extend_from_slice(&quads[bottom].data[r]);
        }
    }
    (Pixels::rgb(half * 2, half * 2, data), quads)
}

/// `x.floor()` without a call into libm (x86-64's baseline has no rounding instruction, and
/// the drawing floors twice per noise sample); the same result for every |x| < 2^63.
fn floor(x: f32) -> f32 {
    let t = x as i64 as f32;
    if t > x { t - 1.0 } else { t }
}

/// `v.round().clamp(0.0, 255.0) as u8` without libm: the same value for every input (the
/// fraction `v - t` is exact, and halves round up as `round` does for positive numbers).
fn channel(v: f32) -> u8 {
    let v = v.clamp(0.0, 255.0);
    let t = v as u8;
    if v - f32::from(t) >= 0.5 { t + 1 } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_and_channel_agree_with_the_standard_library() {
        let mut values = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            0.499_999_97,
            254.5,
            254.499_98,
            255.0,
            255.5,
            -1.0,
            1e9,
            -1e9,
            16_777_217.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        let mut rng = fastrand::Rng::with_seed(5);
        values.extend((0..100_000).map(|_| (rng.f32() - 0.3) * 400.0));
        values.extend((0..100_000).map(|i| i as f32 / 256.0 - 20.0));
        for v in values {
            assert_eq!(channel(v), v.round().clamp(0.0, 255.0) as u8, "{v}");
            // Equal as numbers (-0.0 floors to 0.0, which the drawing cannot tell apart).
            if v.is_finite() {
                assert!(floor(v) == v.floor(), "{v}");
            }
        }
    }

    #[test]
    fn quadrants_are_exact_crops_of_the_grid() {
        let g = grid("a lighthouse", 42, 128);
        for i in 1..=4u8 {
            let q = quadrant("a lighthouse", 42, 64, i);
            let x = u32::from((i - 1) % 2) * 64;
            let y = u32::from((i - 1) / 2) * 64;
            assert_eq!(g.crop(x, y, 64, 64).data, q.data, "quadrant {i}");
        }
    }

    #[test]
    fn same_input_same_pixels_other_input_other_pixels() {
        assert_eq!(grid("fox", 1, 64).data, grid("fox", 1, 64).data);
        assert_ne!(grid("fox", 1, 64).data, grid("fox", 2, 64).data);
        assert_ne!(grid("fox", 1, 64).data, grid("owl", 1, 64).data);
    }

    /// Share of pixels two images have in common by coarse colour (8×8×8 bins): 1 means the
    /// same colours in the same amounts.
    fn colour_overlap(a: &Pixels, b: &Pixels) -> f64 {
        let hist = |p: &Pixels| {
            let mut h = vec![0u32; 512];
            for px in p.data.chunks(3) {
                h[usize::from(px[0] >> 5) * 64
                    + usize::from(px[1] >> 5) * 8
                    + usize::from(px[2] >> 5)] += 1;
            }
            h
        };
        let (ha, hb) = (hist(a), hist(b));
        let common: u32 = ha.iter().zip(&hb).map(|(x, y)| (*x).min(*y)).sum();
        f64::from(common) / (a.data.len() / 3) as f64
    }

    #[test]
    fn quadrants_differ_visibly_and_are_not_flat() {
        for (prompt, seed) in [("city at night", 7), ("a red fox", 1), ("ocean", 99)] {
            let quads: Vec<Pixels> = (1..=4).map(|i| quadrant(prompt, seed, 96, i)).collect();
            for a in 0..4 {
                for b in a + 1..4 {
                    let overlap = colour_overlap(&quads[a], &quads[b]);
                    assert!(
                        overlap < 0.6,
                        "{prompt}: quadrants {a} and {b} share {overlap:.2} of their colours"
                    );
                }
                let distinct: std::collections::HashSet<&[u8]> = quads[a].data.chunks(3).collect();
                assert!(distinct.len() > 1000, "quadrant {a} is flat");
            }
        }
    }
}

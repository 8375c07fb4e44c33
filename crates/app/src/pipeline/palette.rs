//! A small k-means palette. Hand-written (about 60 lines) rather than a crate: it is
//! deterministic (no random seeding), needs no colour-space dependency, and runs on about a
//! thousand samples of the thumbnail, so it costs a fraction of a millisecond.

use crate::domain::Rgb;

use super::Pixels;

const MAX_SAMPLES: usize = 1024;
const ROUNDS: usize = 8;

/// Up to `k` colours ordered by how much of the image they cover; the first is dominant.
pub fn palette(p: &Pixels, k: usize) -> (Vec<Rgb>, Rgb) {
    let samples = sample(p);
    if samples.is_empty() || k == 0 {
        return (Vec::new(), Rgb([0, 0, 0]));
    }
    // Seeds: the luminance quantiles, so the start is spread and reproducible.
    let mut by_luma: Vec<(f32, [f32; 3])> = samples.iter().map(|s| (luma(s), *s)).collect();
    by_luma.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut centres: Vec<[f32; 3]> = (0..k)
        .map(|i| by_luma[(2 * i + 1) * by_luma.len() / (2 * k)].1)
        .collect();
    let mut members = vec![0usize; k];
    // Which centre each sample went to last round: once no sample moves, the centres are
    // a fixed point and further rounds would repeat this one.
    let mut owner = vec![usize::MAX; samples.len()];
    for _ in 0..ROUNDS {
        let mut sums = vec![[0f32; 3]; k];
        members.fill(0);
        let mut moved = false;
        for (s, owner) in samples.iter().zip(owner.iter_mut()) {
            let c = nearest(&centres, s);
            moved |= *owner != c;
            *owner = c;
            members[c] += 1;
            for ch in 0..3 {
                sums[c][ch] += s[ch];
            }
        }
        if !moved {
            break;
        }
        for c in 0..k {
            if members[c] > 0 {
                centres[c] = sums[c].map(|v| v / members[c] as f32);
            }
        }
    }
    let mut ranked: Vec<(usize, [f32; 3])> = members.into_iter().zip(centres).collect();
    ranked.sort_by_key(|b| std::cmp::Reverse(b.0));
    let mut colours: Vec<Rgb> = Vec::with_capacity(k);
    for (count, c) in ranked {
        let rgb = Rgb(c.map(|v| v.round().clamp(0.0, 255.0) as u8));
        if count > 0 && !colours.contains(&rgb) {
            colours.push(rgb);
        }
    }
    let dominant = colours[0];
    (colours, dominant)
}

fn sample(p: &Pixels) -> Vec<[f32; 3]> {
    let c = p.channels as usize;
    let n = (p.width as usize) * (p.height as usize);
    let step = n.div_ceil(MAX_SAMPLES).max(1);
    (0..n)
        .step_by(step)
        .filter_map(|i| p.data.get(i * c..i * c + 3))
        .map(|px| [f32::from(px[0]), f32::from(px[1]), f32::from(px[2])])
        .collect()
}

fn luma(c: &[f32; 3]) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

fn nearest(centres: &[[f32; 3]], s: &[f32; 3]) -> usize {
    let dist = |c: &[f32; 3]| {
        let d = [c[0] - s[0], c[1] - s[1], c[2] - s[2]];
        d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    };
    let (mut best, mut best_d) = (0, f32::INFINITY);
    for (i, c) in centres.iter().enumerate() {
        let d = dist(c);
        if d < best_d {
            (best, best_d) = (i, d);
        }
    }
    best
}

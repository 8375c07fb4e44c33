//! PNG row filtering (PNG spec, section 9): each row gets the filter whose output has the
//! smallest sum of absolute values, the usual heuristic for residuals that code short.

/// Filters `height` rows of `width` pixels of `bpp` bytes; each output row starts with its
/// filter type byte.
pub fn filter_rows(data: &[u8], width: usize, height: usize, bpp: usize) -> Vec<u8> {
    let stride = width * bpp;
    let mut out = Vec::with_capacity((stride + 1) * height);
    let zero = vec![0u8; stride];
    let mut cand: [Vec<u8>; 5] = std::array::from_fn(|_| vec![0u8; stride]);
    for y in 0..height {
        let row = &data[y * stride..(y + 1) * stride];
        let prev = if y == 0 {
            &zero[..]
        } else {
            &data[(y - 1) * stride..y * stride]
        };
        let [none, sub, up, avg, paeth] = &mut cand;
        none.copy_from_slice(row);
        filter_sub(row, bpp, sub);
        filter_up(row, prev, up);
        filter_avg(row, prev, bpp, avg);
        filter_paeth(row, prev, bpp, paeth);
        let (best, _) = cand
            .iter()
            .enumerate()
            .map(|(i, c)| (i, cost(c)))
            .min_by_key(|&(_, c)| c)
            .unwrap_or((0, 0));
        out.push(best as u8);
        out.extend_from_slice(&cand[best]);
    }
    out
}

fn cost(row: &[u8]) -> u32 {
    row.iter()
        .map(|&v| u32::from((v as i8).unsigned_abs()))
        .sum()
}

fn filter_sub(row: &[u8], bpp: usize, out: &mut [u8]) {
    out[..bpp].copy_from_slice(&row[..bpp]);
    for ((o, &x), &a) in out[bpp..].iter_mut().zip(&row[bpp..]).zip(row) {
        *o = x.wrapping_sub(a);
    }
}

fn filter_up(row: &[u8], prev: &[u8], out: &mut [u8]) {
    for ((o, &x), &b) in out.iter_mut().zip(row).zip(prev) {
        *o = x.wrapping_sub(b);
    }
}

fn filter_avg(row: &[u8], prev: &[u8], bpp: usize, out: &mut [u8]) {
    for i in 0..bpp {
        out[i] = row[i].wrapping_sub(prev[i] >> 1);
    }
    for (((o, &x), &a), &b) in out[bpp..]
        .iter_mut()
        .zip(&row[bpp..])
        .zip(row)
        .zip(&prev[bpp..])
    {
        *o = x.wrapping_sub(((u16::from(a) + u16::from(b)) >> 1) as u8);
    }
}

fn filter_paeth(row: &[u8], prev: &[u8], bpp: usize, out: &mut [u8]) {
    for i in 0..bpp {
        out[i] = row[i].wrapping_sub(prev[i]);
    }
    let rest = out[bpp..]
        .iter_mut()
        .zip(&row[bpp..])
        .zip(row)
        .zip(&prev[bpp..])
        .zip(prev);
    for ((((o, &x), &a), &b), &c) in rest {
        *o = x.wrapping_sub(paeth(a, b, c));
    }
}

/// The Paeth predictor, branch-free so that the loop vectorises.
#[inline]
fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let (a16, b16, c16) = (i16::from(a), i16::from(b), i16::from(c));
    let pa = (b16 - c16).abs();
    let pb = (a16 - c16).abs();
    let pc = (a16 + b16 - 2 * c16).abs();
    let ab = if pb < pa { b } else { a };
    let min_ab = pa.min(pb);
    if pc < min_ab { c } else { ab }
}

//! A zlib stream of Huffman-only DEFLATE blocks: literals coded with a code built for each
//! block, no string matching.
//!
//! Filtered rows of rendered images are mostly small, noisy residuals: string matching finds
//! little in them, so general-purpose compressors spend most of their time searching in vain
//! (20–40 ms for a 1024² RGB quadrant with zlib-rs, miniz or libdeflate at their fastest
//! levels, even with zlib's own Huffman-only strategy). A per-block Huffman code writes files
//! about the size of zlib level 6's in 6 ms; fdeflate's fixed code is a little faster but
//! about a quarter larger (BENCHMARKS.md). Hand-written because no crate offers this; every
//! stream is checked by the `png` crate's decoder in the tests.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Input bytes per block: each block gets a code fitted to its own statistics.
const BLOCK: usize = 1 << 17;
/// DEFLATE's longest literal/length code and longest code-length code.
const MAX_BITS: usize = 15;
const MAX_CLEN_BITS: usize = 7;
const END_OF_BLOCK: usize = 256;
/// The order in which code-length code lengths are written (RFC 1951, 3.2.7).
const CLEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Compresses `data` into a zlib stream (RFC 1950) of dynamic Huffman-only blocks.
pub fn zlib_huffman_only(data: &[u8]) -> Vec<u8> {
    let mut out = Bits::with_capacity(data.len() / 8 * 7 + 64);
    // CMF: deflate, 32 KiB window; FLG: fastest level, check bits making CMF·FLG % 31 == 0.
    out.bytes.extend_from_slice(&[0x78, 0x01]);
    let mut blocks = data.chunks(BLOCK).peekable();
    if blocks.peek().is_none() {
        // An empty final block with the fixed code: BFINAL, BTYPE=01, end-of-block (7 zeros).
        out.put(0b011, 3);
        out.put(0, 7);
    }
    while let Some(block) = blocks.next() {
        write_block(&mut out, block, blocks.peek().is_none());
    }
    let mut bytes = out.finish();
    bytes.extend_from_slice(&adler32(data).to_be_bytes());
    bytes
}

fn write_block(out: &mut Bits, block: &[u8], last: bool) {
    // Literal/length alphabet 0–256 (HLIT = 257); two distance codes of one bit each, unused
    // but present so that every decoder sees complete codes.
    let mut freq = histogram(block);
    freq[END_OF_BLOCK] = 1;
    let lit_lens = code_lengths(&freq, MAX_BITS);
    let lit_codes = canonical_codes(&lit_lens);

    let mut all_lens: Vec<u8> = lit_lens.clone();
    all_lens.extend_from_slice(&[1, 1]);
    let mut clen_freq = vec![0u32; 19];
    for &l in &all_lens {
        clen_freq[usize::from(l)] += 1;
    }
    let clen_lens = code_lengths(&clen_freq, MAX_CLEN_BITS);
    let clen_codes = canonical_codes(&clen_lens);
    let hclen = CLEN_ORDER
        .iter()
        .rposition(|&s| clen_lens[s] != 0)
        .map_or(4, |p| (p + 1).max(4));

    out.put(u64::from(last) | 0b10 << 1, 3);
    out.put(0, 5); // HLIT - 257
    out.put(1, 5); // HDIST - 1
    out.put(hclen as u64 - 4, 4);
    for &s in &CLEN_ORDER[..hclen] {
        out.put(u64::from(clen_lens[s]), 3);
    }
    for &l in &all_lens {
        let l = usize::from(l);
        out.put(u64::from(clen_codes[l]), u32::from(clen_lens[l]));
    }
    // The literals: at most 15 bits each, three at a time into the 64-bit buffer.
    let table: Vec<(u64, u32)> = (0..256)
        .map(|s| (u64::from(lit_codes[s]), u32::from(lit_lens[s])))
        .collect();
    let mut triples = block.chunks_exact(3);
    for t in &mut triples {
        let (c0, l0) = table[usize::from(t[0])];
        let (c1, l1) = table[usize::from(t[1])];
        let (c2, l2) = table[usize::from(t[2])];
        out.put(c0 | c1 << l0 | c2 << (l0 + l1), l0 + l1 + l2);
    }
    for &b in triples.remainder() {
        let (c, l) = table[usize::from(b)];
        out.put(c, l);
    }
    out.put(
        u64::from(lit_codes[END_OF_BLOCK]),
        u32::from(lit_lens[END_OF_BLOCK]),
    );
}

/// Byte frequencies, counted in four tables so that runs of one value do not stall on
/// a single counter.
fn histogram(data: &[u8]) -> Vec<u32> {
    let mut t = [[0u32; 256]; 4];
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        t[0][usize::from(q[0])] += 1;
        t[1][usize::from(q[1])] += 1;
        t[2][usize::from(q[2])] += 1;
        t[3][usize::from(q[3])] += 1;
    }
    for &b in quads.remainder() {
        t[0][usize::from(b)] += 1;
    }
    let mut freq = vec![0u32; 257];
    for (s, f) in freq.iter_mut().take(256).enumerate() {
        *f = t[0][s] + t[1][s] + t[2][s] + t[3][s];
    }
    freq
}

/// Huffman code lengths for `freq`, none longer than `max_bits`. Symbols of frequency zero get
/// no code; at least two symbols always get one, so the code is complete.
fn code_lengths(freq: &[u32], max_bits: usize) -> Vec<u8> {
    let mut used: Vec<usize> = (0..freq.len()).filter(|&s| freq[s] > 0).collect();
    for s in 0..freq.len() {
        if used.len() >= 2 {
            break;
        }
        if !used.contains(&s) {
            used.push(s);
        }
    }
    // The Huffman tree: leaves 0..n, inner nodes after them; depth of each leaf.
    let n = used.len();
    let mut parent = vec![0usize; 2 * n - 1];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = used
        .iter()
        .enumerate()
        .map(|(i, &s)| Reverse((u64::from(freq[s].max(1)), i)))
        .collect();
    let mut next = n;
    while let (Some(Reverse((fa, a))), Some(Reverse((fb, b)))) = (heap.pop(), heap.pop()) {
        parent[a] = next;
        parent[b] = next;
        heap.push(Reverse((fa + fb, next)));
        next += 1;
    }
    let root = next - 1;
    let mut depth = vec![0usize; n];
    for (leaf, d) in depth.iter_mut().enumerate() {
        let mut node = leaf;
        while node != root {
            node = parent[node];
            *d += 1;
        }
    }
    // Limit the depth: count codes per length, fold the too-long ones into `max_bits`, then
    // lengthen the shortest codes until the Kraft sum is exactly one again.
    let mut count = vec![0u32; max_bits.max(*depth.iter().max().unwrap_or(&1)) + 1];
    for &d in &depth {
        count[d] += 1;
    }
    for d in max_bits + 1..count.len() {
        count[max_bits] += count[d];
        count[d] = 0;
    }
    let kraft = |count: &[u32]| -> u64 {
        (1..=max_bits)
            .map(|d| u64::from(count[d]) << (max_bits - d))
            .sum()
    };
    let mut total = kraft(&count);
    while total > 1 << max_bits {
        count[max_bits] -= 1;
        for d in (1..max_bits).rev() {
            if count[d] != 0 {
                count[d] -= 1;
                count[d + 1] += 2;
                break;
            }
        }
        total -= 1;
    }
    // Hand the lengths out again, shortest to the most frequent symbols.
    let mut by_freq = used.clone();
    by_freq.sort_by_key(|&s| (Reverse(freq[s]), s));
    let mut lens = vec![0u8; freq.len()];
    let mut symbols = by_freq.into_iter();
    for (d, &c) in count.iter().enumerate().take(max_bits + 1).skip(1) {
        for _ in 0..c {
            if let Some(s) = symbols.next() {
                lens[s] = d as u8;
            }
        }
    }
    lens
}

/// Canonical codes for `lens` (RFC 1951, 3.2.2), bit-reversed for DEFLATE's LSB-first packing.
fn canonical_codes(lens: &[u8]) -> Vec<u16> {
    let mut count = [0u16; 16];
    for &l in lens {
        count[usize::from(l)] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    lens.iter()
        .map(|&l| {
            if l == 0 {
                return 0;
            }
            let c = next[usize::from(l)];
            next[usize::from(l)] += 1;
            c.reverse_bits() >> (16 - l)
        })
        .collect()
}

fn adler32(data: &[u8]) -> u32 {
    let mut a = simd_adler32::Adler32::new();
    a.write(data);
    a.finish()
}

/// An LSB-first bit writer.
struct Bits {
    bytes: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn with_capacity(cap: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(cap),
            acc: 0,
            n: 0,
        }
    }

    /// Appends the low `len` bits of `bits` (at most 56 at a time).
    #[inline]
    fn put(&mut self, bits: u64, len: u32) {
        if self.n + len > 64 {
            // Flush whole bytes so that the new bits fit.
            let whole = self.n / 8;
            self.bytes
                .extend_from_slice(&self.acc.to_le_bytes()[..whole as usize]);
            self.acc = if whole == 8 {
                0
            } else {
                self.acc >> (whole * 8)
            };
            self.n -= whole * 8;
        }
        self.acc |= bits.checked_shl(self.n).unwrap_or(0);
        self.n += len;
    }

    fn finish(mut self) -> Vec<u8> {
        let whole = self.n.div_ceil(8) as usize;
        self.bytes
            .extend_from_slice(&self.acc.to_le_bytes()[..whole]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kraft(lens: &[u8], max: usize) -> u64 {
        lens.iter()
            .filter(|&&l| l > 0)
            .map(|&l| 1u64 << (max - usize::from(l)))
            .sum()
    }

    #[test]
    fn codes_are_complete_and_never_too_long() {
        // Fibonacci frequencies make the unrestricted Huffman code as deep as it can get.
        let mut fib = vec![1u32, 1];
        while fib.len() < 40 {
            let n = fib.len();
            fib.push(fib[n - 1].saturating_add(fib[n - 2]));
        }
        let mut freq = vec![0u32; 257];
        freq[..40].copy_from_slice(&fib);
        let lens = code_lengths(&freq, MAX_BITS);
        assert!(lens.iter().all(|&l| usize::from(l) <= MAX_BITS));
        assert_eq!(kraft(&lens, MAX_BITS), 1 << MAX_BITS);
        assert!(lens[..40].iter().all(|&l| l > 0) && lens[40..].iter().all(|&l| l == 0));
        assert!(
            lens[39] <= lens[0],
            "the most frequent symbol gets the shortest code"
        );
    }

    #[test]
    fn one_used_symbol_still_gets_a_complete_code() {
        let mut freq = vec![0u32; 19];
        freq[8] = 500;
        let lens = code_lengths(&freq, MAX_CLEN_BITS);
        assert_eq!(lens.iter().filter(|&&l| l > 0).count(), 2);
        assert_eq!(kraft(&lens, MAX_CLEN_BITS), 1 << MAX_CLEN_BITS);
    }

    #[test]
    fn canonical_codes_follow_rfc_1951() {
        // The example of RFC 1951, 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) give
        // 010, 011, 100, 101, 110, 00, 1110, 1111 (here bit-reversed).
        let codes = canonical_codes(&[3, 3, 3, 3, 3, 2, 4, 4]);
        let expected: [u16; 8] = [0b010, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111];
        let lens = [3u32, 3, 3, 3, 3, 2, 4, 4];
        for i in 0..8 {
            assert_eq!(
                codes[i],
                expected[i].reverse_bits() >> (16 - lens[i]),
                "symbol {i}"
            );
        }
    }

    #[test]
    fn an_empty_input_is_a_valid_stream() {
        let z = zlib_huffman_only(&[]);
        assert_eq!(z[..2], [0x78, 0x01]);
        assert_eq!(u16::from_be_bytes([z[0], z[1]]) % 31, 0);
        assert_eq!(
            z[z.len() - 4..],
            1u32.to_be_bytes(),
            "Adler-32 of nothing is 1"
        );
    }
}

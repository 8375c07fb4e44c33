//! The few H.264 structures read before a decoder is trusted with a clip: the `avcC` record
//! of an MP4's sample entry (its parameter sets and the length of each NAL unit's size), the
//! coded frame size in a sequence parameter set (checked against the limits before the
//! decoder allocates for it), and a sample's NAL units rewritten with start codes, the form
//! the decoder reads.

use super::VideoError;

/// An `avcC` record: how long a sample's NAL sizes are, and the parameter sets.
pub(super) struct AvcConfig {
    /// Bytes of each NAL unit's size in a sample: 1, 2 or 4.
    pub length_size: usize,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
}

fn malformed(what: &str) -> VideoError {
    VideoError::Malformed(format!("its H.264 configuration (avcC) {what}"))
}

impl AvcConfig {
    pub(super) fn parse(record: &[u8]) -> Result<Self, VideoError> {
        let mut r = Take {
            data: record,
            at: 0,
        };
        let head = r.take(6)?;
        if head[0] != 1 {
            return Err(malformed(&format!("has version {}, not 1", head[0])));
        }
        let length_size = usize::from(head[4] & 3) + 1;
        if length_size == 3 {
            return Err(malformed("says NAL sizes are 3 bytes long"));
        }
        let sps = r.sets(usize::from(head[5] & 0x1f))?;
        let pps_count = usize::from(r.take(1)?[0]);
        let pps = r.sets(pps_count)?;
        if sps.is_empty() || pps.is_empty() {
            return Err(malformed("holds no sequence or picture parameter set"));
        }
        Ok(Self {
            length_size,
            sps,
            pps,
        })
    }

    /// The parameter sets with start codes, to open the decoder's input.
    pub(super) fn annex_b(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for set in self.sps.iter().chain(&self.pps) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(set);
        }
        out
    }
}

/// Reads an `avcC` record front to back.
struct Take<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Take<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], VideoError> {
        let part = self
            .data
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| malformed("ends early"))?;
        self.at += n;
        Ok(part)
    }

    /// `count` parameter sets, each after its 16-bit length.
    fn sets(&mut self, count: usize) -> Result<Vec<Vec<u8>>, VideoError> {
        (0..count)
            .map(|_| {
                let len = self.take(2)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                Ok(self.take(len)?.to_vec())
            })
            .collect()
    }
}

/// A sample's NAL units (each after its `length_size`-byte size) with start codes instead.
pub(super) fn sample_to_annex_b(sample: &[u8], length_size: usize) -> Result<Vec<u8>, VideoError> {
    let mut out = Vec::with_capacity(sample.len() + 16);
    let mut rest = sample;
    while !rest.is_empty() {
        let size = rest
            .get(..length_size)
            .ok_or_else(|| VideoError::Malformed("a NAL unit's size is cut off".into()))?;
        let len = size.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        let unit = rest
            .get(length_size..length_size.saturating_add(len))
            .ok_or_else(|| {
                VideoError::Malformed(format!(
                    "a NAL unit of {len} bytes overruns its sample of {} bytes",
                    sample.len()
                ))
            })?;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(unit);
        rest = &rest[length_size + len..];
    }
    Ok(out)
}

/// The coded frame size a sequence parameter set declares (whole macroblocks, before
/// cropping): what the decoder will allocate for.
pub(super) fn coded_size(sps: &[u8]) -> Result<(u32, u32), VideoError> {
    let bad = || VideoError::Malformed("its sequence parameter set does not parse".into());
    // The NAL header, then the payload without its emulation-prevention bytes.
    let mut payload = Vec::with_capacity(sps.len());
    let mut zeros = 0;
    for &b in sps.get(1..).ok_or_else(bad)? {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        payload.push(b);
    }
    let mut r = Bits::new(&payload);
    let profile = r.bits(8).ok_or_else(bad)?;
    r.bits(16).ok_or_else(bad)?; // constraint flags, level
    r.ue().ok_or_else(bad)?; // seq_parameter_set_id
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        let chroma = r.ue().ok_or_else(bad)?;
        if chroma == 3 {
            r.bits(1).ok_or_else(bad)?;
        }
        r.ue().ok_or_else(bad)?; // bit depths
        r.ue().ok_or_else(bad)?;
        r.bits(1).ok_or_else(bad)?;
        if r.bits(1).ok_or_else(bad)? == 1 {
            for list in 0..if chroma == 3 { 12 } else { 8 } {
                if r.bits(1).ok_or_else(bad)? == 1 {
                    skip_scaling_list(&mut r, if list < 6 { 16 } else { 64 }).ok_or_else(bad)?;
                }
            }
        }
    }
    r.ue().ok_or_else(bad)?; // log2_max_frame_num_minus4
    match r.ue().ok_or_else(bad)? {
        0 => {
            r.ue().ok_or_else(bad)?;
        }
        1 => {
            r.bits(1).ok_or_else(bad)?;
            r.ue().ok_or_else(bad)?; // offsets, signed: read as the same number of bits
            r.ue().ok_or_else(bad)?;
            let cycle = r.ue().ok_or_else(bad)?;
            if cycle > 255 {
                return Err(bad());
            }
            for _ in 0..cycle {
                r.ue().ok_or_else(bad)?;
            }
        }
        _ => {}
    }
    r.ue().ok_or_else(bad)?; // max_num_ref_frames
    r.bits(1).ok_or_else(bad)?;
    let width_mbs = u64::from(r.ue().ok_or_else(bad)?) + 1;
    let height_units = u64::from(r.ue().ok_or_else(bad)?) + 1;
    let frame_mbs_only = r.bits(1).ok_or_else(bad)?;
    let height_mbs = height_units * (2 - u64::from(frame_mbs_only));
    let side = |mbs: u64| u32::try_from(mbs * 16).map_err(|_| bad());
    Ok((side(width_mbs)?, side(height_mbs)?))
}

fn skip_scaling_list(r: &mut Bits<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Reads bits, most significant first, and Exp-Golomb codes.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, at: 0 }
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.at / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.at % 8)) & 1);
            self.at += 1;
        }
        Some(v)
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

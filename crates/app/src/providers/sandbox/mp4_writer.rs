//! A minimal MP4 writer for the sandbox's clips: one H.264 video track, every frame one sample
//! of length-prefixed NAL units, all samples in one chunk in `mdat`, then the `moov` that
//! indexes them (ISO/IEC 14496-12 boxes, `avcC` from 14496-15). It writes only what a player
//! and Atelier's own verifier need; no crate was worth its build time for thirty boxes.
// MP4's box types are four letters that differ by one (`stsc`, `stss`, `stsz`), and they are
// read as `b"...."` literals.
#![allow(clippy::similar_names, clippy::trivially_copy_pass_by_ref)]

/// Media ticks a second per frame a second: a frame lasts 1000 ticks.
const TICKS_PER_FRAME: u32 = 1000;

/// A track being written.
pub(super) struct Track {
    width: u32,
    height: u32,
    fps: u32,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// The samples' bytes, back to back.
    data: Vec<u8>,
    sizes: Vec<u32>,
    /// 1-based numbers of the sync (key) samples.
    sync: Vec<u32>,
}

impl Track {
    pub(super) fn new(width: u32, height: u32, fps: u32) -> Self {
        Self {
            width,
            height,
            fps: fps.max(1),
            sps: None,
            pps: None,
            data: Vec::new(),
            sizes: Vec::new(),
            sync: Vec::new(),
        }
    }

    /// One frame's NAL units (without start codes); its parameter sets are kept for `avcC`.
    pub(super) fn push(&mut self, units: Vec<Vec<u8>>, sync: bool) -> Result<(), String> {
        let start = self.data.len();
        for unit in units {
            match unit.first().map(|h| h & 0x1f) {
                Some(7) => {
                    self.sps.get_or_insert(unit);
                }
                Some(8) => {
                    self.pps.get_or_insert(unit);
                }
                Some(_) => {
                    let len = u32::try_from(unit.len()).map_err(|e| e.to_string())?;
                    self.data.extend_from_slice(&len.to_be_bytes());
                    self.data.extend_from_slice(&unit);
                }
                None => {}
            }
        }
        let size = u32::try_from(self.data.len() - start).map_err(|e| e.to_string())?;
        if size == 0 {
            return Err("the encoder gave an empty frame".into());
        }
        self.sizes.push(size);
        if sync {
            self.sync.push(self.sizes.len() as u32);
        }
        Ok(())
    }

    /// The whole file: `ftyp`, `mdat`, `moov`.
    pub(super) fn finish(self) -> Result<Vec<u8>, String> {
        let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
            return Err("the encoder gave no parameter sets".into());
        };
        if sps.len() < 4 {
            return Err("the encoder gave a short sequence parameter set".into());
        }
        let ftyp = boxed(
            b"ftyp",
            &[b"isom", &0x200u32.to_be_bytes()[..], b"isomiso2avc1mp41"].concat(),
        );
        let mdat_start = ftyp.len() as u32 + 8;
        let frames = self.sizes.len() as u32;
        let timescale = self.fps * TICKS_PER_FRAME;
        let media_duration = frames * TICKS_PER_FRAME;
        let movie_duration = (u64::from(frames) * 1000 / u64::from(self.fps)) as u32;

        let avcc = boxed(
            b"avcC",
            &[
                &[1, sps[1], sps[2], sps[3], 0xff, 0xe1][..],
                &(sps.len() as u16).to_be_bytes(),
                sps,
                &[1],
                &(pps.len() as u16).to_be_bytes(),
                pps,
            ]
            .concat(),
        );
        let avc1 = boxed(
            b"avc1",
            &[
                &[0; 6][..],
                &1u16.to_be_bytes(),
                &[0; 16],
                &(self.width as u16).to_be_bytes(),
                &(self.height as u16).to_be_bytes(),
                &0x0048_0000u32.to_be_bytes(),
                &0x0048_0000u32.to_be_bytes(),
                &[0; 4],
                &1u16.to_be_bytes(),
                &[0; 32],
                &0x0018u16.to_be_bytes(),
                &0xffffu16.to_be_bytes(),
                &avcc,
            ]
            .concat(),
        );
        let stsd = full(b"stsd", 0, 0, &[&1u32.to_be_bytes()[..], &avc1].concat());
        let stts = full(b"stts", 0, 0, &words(&[1, frames, TICKS_PER_FRAME]));
        let stss = full(
            b"stss",
            0,
            0,
            &words(&[&[self.sync.len() as u32][..], &self.sync].concat()),
        );
        let stsc = full(b"stsc", 0, 0, &words(&[1, 1, frames, 1]));
        let stsz = full(
            b"stsz",
            0,
            0,
            &words(&[&[0, frames][..], &self.sizes].concat()),
        );
        let stco = full(b"stco", 0, 0, &words(&[1, mdat_start]));
        let stbl = boxed(b"stbl", &[stsd, stts, stss, stsc, stsz, stco].concat());
        let url = full(b"url ", 0, 1, &[]);
        let dinf = boxed(
            b"dinf",
            &full(b"dref", 0, 0, &[&1u32.to_be_bytes()[..], &url].concat()),
        );
        let vmhd = full(b"vmhd", 0, 1, &[0; 8]);
        let minf = boxed(b"minf", &[vmhd, dinf, stbl].concat());
        let hdlr = full(
            b"hdlr",
            0,
            0,
            &[&[0; 4][..], b"vide", &[0; 12], b"Atelier sandbox\0"].concat(),
        );
        let mdhd = full(
            b"mdhd",
            0,
            0,
            &[
                &words(&[0, 0, timescale, media_duration])[..],
                &[0x55, 0xc4, 0, 0],
            ]
            .concat(),
        );
        let mdia = boxed(b"mdia", &[mdhd, hdlr, minf].concat());
        let tkhd = full(
            b"tkhd",
            0,
            3,
            &[
                &words(&[0, 0, 1, 0, movie_duration, 0, 0])[..],
                &[0; 8],
                &MATRIX,
                &words(&[self.width << 16, self.height << 16]),
            ]
            .concat(),
        );
        let trak = boxed(b"trak", &[tkhd, mdia].concat());
        let mvhd = full(
            b"mvhd",
            0,
            0,
            &[
                &words(&[0, 0, 1000, movie_duration, 0x0001_0000])[..],
                &[1, 0],
                &[0; 10],
                &MATRIX,
                &[0; 24],
                &2u32.to_be_bytes(),
            ]
            .concat(),
        );
        let moov = boxed(b"moov", &[mvhd, trak].concat());
        let mdat = boxed(b"mdat", &self.data);
        Ok([ftyp, mdat, moov].concat())
    }
}

/// The identity transformation matrix of `mvhd` and `tkhd`.
const MATRIX: [u8; 36] = {
    let mut m = [0u8; 36];
    m[1] = 1; // 0x00010000
    m[17] = 1; // 0x00010000
    m[32] = 0x40; // 0x40000000
    m
};

fn words(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// A box: size, type, body.
fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let size = (body.len() + 8) as u32;
    [&size.to_be_bytes()[..], kind, body].concat()
}

/// A full box: a box whose body starts with a version and flags.
fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let head = (u32::from(version) << 24) | (flags & 0x00ff_ffff);
    boxed(kind, &[&head.to_be_bytes()[..], body].concat())
}

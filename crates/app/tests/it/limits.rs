//! The limits on images, through the real binary: files that are not regular, too large, or
//! followed by garbage; decompression bombs (refused with little memory, the peak measured
//! from `/proc` while the child runs); damaged files named plainly.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use atelier::providers::sandbox::draw;
use atelier::store::sha256_hex;

use crate::support::DataDir;

/// A refused bomb may use this much memory at most (the binary alone takes a few MiB).
const SMALL_KIB: u64 = 200 * 1024;

/// Runs `cmd` to its end (killed after a minute: a hang fails the test, never blocks it) and
/// returns its output and its peak resident memory in KiB, read from `/proc` while it runs.
fn measured(mut cmd: Command) -> (Output, u64) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let started = Instant::now();
    let mut peak = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_mins(1) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{cmd:?} still running after a minute");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    (
        Output {
            status,
            stdout,
            stderr,
        },
        peak,
    )
}

/// `image import` of `args` in `d`, measured; asserts it was refused as bad input with a
/// message containing every one of `needles` (and not calling it corrupt), that nothing was
/// written, and returns the peak memory in KiB.
fn refused_import(d: &DataDir, args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> u64 {
    let mut cmd = d.cmd();
    cmd.args(["image", "import"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (out, peak) = measured(cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    }
    assert!(
        !err.contains("corrupt"),
        "{args:?}: a limit is not corruption: {err}"
    );
    assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    assert!(!d.path().join("atelier.db").exists(), "{args:?} wrote");
    assert!(d.stored_files().is_empty(), "{args:?} stored files");
    peak
}

fn png(side: u32) -> Vec<u8> {
    draw::grid("limits", 3, side).encode_png().unwrap()
}

/// One PNG chunk: length, type, data, CRC.
fn chunk(kind: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&kind);
    out.extend_from_slice(data);
    let mut crc = 0xffff_ffffu32;
    for &b in kind.iter().chain(data) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    out.extend_from_slice(&(!crc).to_be_bytes());
    out
}

/// A zlib stream that inflates to `n` zero bytes, written directly: one fixed-Huffman block
/// of a literal 0 then copies of 258 bytes at distance 1 (13 bits each, about 160:1).
fn zeros_zlib(n: u64) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        len: u32,
    }
    impl Bits {
        fn put(&mut self, value: u64, bits: u32) {
            self.acc |= value << self.len;
            self.len += bits;
            while self.len >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.len -= 8;
            }
        }
        /// Huffman codes go most significant bit first.
        fn code(&mut self, code: u64, bits: u32) {
            let reversed = (0..bits).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
            self.put(reversed, bits);
        }
    }
    let mut b = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        len: 0,
    };
    b.put(1, 1); // last block
    b.put(1, 2); // fixed Huffman codes
    let literal_zero = |b: &mut Bits| b.code(0x30, 8);
    literal_zero(&mut b);
    let mut left = n - 1;
    while left >= 258 {
        b.code(0xc5, 8); // length 258 (symbol 285)
        b.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        literal_zero(&mut b);
    }
    b.code(0, 7); // end of block
    if b.len > 0 {
        b.put(0, 8 - b.len);
    }
    let adler = ((n % 65_521) << 16) | 1;
    b.out.extend_from_slice(&(adler as u32).to_be_bytes());
    b.out
}

fn ihdr(width: u32, height: u32, colour: u8) -> Vec<u8> {
    let mut data = width.to_be_bytes().to_vec();
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(&[8, colour, 0, 0, 0]);
    chunk(*b"IHDR", &data)
}

const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A black RGBA PNG of `side`², complete and valid: a few MiB that decode to `side`² × 4.
fn pixel_bomb(side: u32) -> Vec<u8> {
    let raw = (1 + u64::from(side) * 4) * u64::from(side);
    let mut out = SIGNATURE.to_vec();
    out.extend(ihdr(side, side, 6));
    out.extend(chunk(*b"IDAT", &zeros_zlib(raw)));
    out.extend(chunk(*b"IEND", &[]));
    out
}

/// A valid small PNG whose `iCCP` colour profile inflates to `inflated` bytes.
fn iccp_bomb(inflated: u64) -> Vec<u8> {
    let good = png(64);
    let mut profile = b"bomb\0\0".to_vec();
    profile.extend(zeros_zlib(inflated));
    // Right after IHDR (8 + 25 bytes), where a colour profile belongs.
    let mut out = good[..33].to_vec();
    out.extend(chunk(*b"iCCP", &profile));
    out.extend_from_slice(&good[33..]);
    out
}

#[test]
fn the_hand_made_streams_are_what_they_claim() {
    let small = pixel_bomb(16);
    let pixels = atelier::pipeline::decode(&small).unwrap();
    assert_eq!((pixels.width, pixels.height, pixels.channels), (16, 16, 4));
    assert!(pixels.data.iter().all(|&b| b == 0));
    // A profile of a few bytes is read and the image accepted.
    atelier::pipeline::decode(&iccp_bomb(1000)).unwrap();
}

/// Waits for `cmd` at most 20 seconds: a child that would block forever fails the test.
fn promptly(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{cmd:?} did not return");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn devices_pipes_and_folders_are_refused_at_once() {
    let d = DataDir::new();
    let fifo = d.path().join("pipe.png");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for (path, needle) in [
        (Path::new("/dev/zero"), "not a regular file"),
        (fifo.as_path(), "not a regular file"),
        (d.path(), "a folder, not a regular file"),
    ] {
        for grid in [false, true] {
            let mut cmd = d.cmd();
            cmd.args(["image", "import"]).arg(path);
            if grid {
                cmd.arg("--grid");
            }
            let out = promptly(cmd);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{path:?}: {err}");
            assert!(err.contains(needle), "{path:?}: {err}");
        }
    }
    assert!(!d.path().join("atelier.db").exists());
    // `describe` and `blend` take files the same way.
    for args in [
        vec!["describe", "/dev/zero"],
        vec!["blend", "/dev/zero", fifo.to_str().unwrap()],
    ] {
        let mut cmd = d.cmd();
        cmd.args(&args);
        let out = promptly(cmd);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    assert!(!d.path().join("atelier.db").exists());
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_it_is_read() {
    let d = DataDir::new();
    // 3 GiB that take no disk: a PNG's first bytes, then a hole.
    let huge = d.path().join("huge.png");
    std::fs::write(&huge, png(64)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let peak = refused_import(
        &d,
        &[huge.to_str().unwrap()],
        &[],
        &["64 MiB", "max_file_mib", "ATELIER_LIMITS__MAX_FILE_MIB"],
    );
    assert!(peak < SMALL_KIB, "peak {peak} KiB");
    // With the limit raised past it, the signature is still read first, on the first bytes:
    // a large file of another kind is refused without being read.
    let other = d.path().join("other.png");
    std::fs::File::create(&other)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let peak = refused_import(
        &d,
        &[other.to_str().unwrap()],
        &[("ATELIER_LIMITS__MAX_FILE_MIB", "4096")],
        &["not a PNG, JPEG or WebP"],
    );
    assert!(peak < SMALL_KIB, "peak {peak} KiB");
    // The limit is the configuration's: a small one refuses a 2 MiB file.
    let padded = d.path().join("padded.png");
    let mut bytes = png(64);
    bytes.resize(2 << 20, 7);
    std::fs::write(&padded, bytes).unwrap();
    refused_import(
        &d,
        &[padded.to_str().unwrap()],
        &[("ATELIER_LIMITS__MAX_FILE_MIB", "1")],
        &["(2.0 MiB)", "limit of 1 MiB", "max_file_mib"],
    );
}

#[test]
fn bytes_after_the_image_end_are_never_stored() {
    let d = DataDir::new();
    let image = png(64);
    let mut bytes = image.clone();
    bytes.extend(b"trailing garbage \xff\xd9 IEND ".repeat(5000));
    let file = d.path().join("tail.png");
    std::fs::write(&file, &bytes).unwrap();
    for grid in [false, true] {
        let mut args = vec!["image", "import", file.to_str().unwrap()];
        if grid {
            args.push("--grid");
        }
        let (code, out) = d.json(&args);
        assert_eq!(code, 0, "{out}");
        let stored = &out[0]["images"][0];
        assert_eq!(stored["sha256"], sha256_hex(&image));
        assert_eq!(stored["size_bytes"], image.len());
        let path = stored["path"].as_str().unwrap();
        assert_eq!(std::fs::read(path).unwrap(), image);
    }
}

#[test]
fn a_pixel_bomb_is_refused_with_little_memory_with_or_without_grid() {
    let d = DataDir::new();
    let bomb = d.path().join("bomb.png");
    let bytes = pixel_bomb(16_384);
    assert!(bytes.len() < 8 << 20, "{} bytes", bytes.len());
    std::fs::write(&bomb, bytes).unwrap();
    for grid in [false, true] {
        let mut args = vec![bomb.to_str().unwrap()];
        if grid {
            args.push("--grid");
        }
        let peak = refused_import(
            &d,
            &args,
            &[],
            &[
                "16384×16384",
                "268.4 megapixels",
                "limit of 40 megapixels",
                "ATELIER_LIMITS__MAX_MEGAPIXELS",
            ],
        );
        assert!(peak < SMALL_KIB, "grid {grid}: peak {peak} KiB");
    }
    // The limit is the configuration's: raised, the same black image is accepted.
    let small = d.path().join("small.png");
    std::fs::write(&small, pixel_bomb(1024)).unwrap();
    refused_import(
        &d,
        &[small.to_str().unwrap()],
        &[("ATELIER_LIMITS__MAX_MEGAPIXELS", "1")],
        &["1024×1024", "limit of 1 megapixels"],
    );
    let (code, out) = d.json(&["image", "import", small.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_colour_profile_bomb_is_refused_with_little_memory() {
    let d = DataDir::new();
    let bomb = d.path().join("iccp.png");
    std::fs::write(&bomb, iccp_bomb(3 << 30)).unwrap();
    for grid in [false, true] {
        let mut args = vec![bomb.to_str().unwrap()];
        if grid {
            args.push("--grid");
        }
        let peak = refused_import(
            &d,
            &args,
            &[],
            &[
                "16 MiB",
                "max_metadata_mib",
                "ATELIER_LIMITS__MAX_METADATA_MIB",
            ],
        );
        assert!(peak < SMALL_KIB, "grid {grid}: peak {peak} KiB");
    }
}

#[test]
fn a_damaged_png_is_named_in_a_sentence() {
    let d = DataDir::new();
    let mut bytes = png(64);
    // The IDAT chunk's stored checksum, changed.
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    let len = u32::from_be_bytes(bytes[idat - 4..idat].try_into().unwrap()) as usize;
    bytes[idat + 4 + len] ^= 0x55;
    let file = d.path().join("damaged.png");
    std::fs::write(&file, bytes).unwrap();
    for grid in [false, true] {
        let mut cmd = d.cmd();
        cmd.args(["image", "import"]).arg(&file);
        if grid {
            cmd.arg("--grid");
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("the checksum of its IDAT chunk does not match its data"),
            "{err}"
        );
        assert!(!err.contains('{') && !err.contains("ChunkType"), "{err}");
    }
}

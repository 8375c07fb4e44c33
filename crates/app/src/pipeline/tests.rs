//! Tests of the pipeline: measuring, splitting, thumbnails, palettes and refusing corrupt data.

use image::ImageEncoder;

use super::*;
use crate::providers::sandbox::draw;

fn png(p: &Pixels) -> Vec<u8> {
    p.encode_png().unwrap()
}

fn encode(p: &Pixels, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let colour = if p.channels == 4 {
        image::ExtendedColorType::Rgba8
    } else {
        image::ExtendedColorType::Rgb8
    };
    match format {
        image::ImageFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                .write_image(&p.data, p.width, p.height, colour)
                .unwrap();
        }
        image::ImageFormat::WebP => image::codecs::webp::WebPEncoder::new_lossless(&mut out)
            .write_image(&p.data, p.width, p.height, colour)
            .unwrap(),
        _ => unreachable!(),
    }
    out.into_inner()
}

#[test]
fn a_single_image_is_measured_and_described() {
    let bytes = png(&draw::grid("a fox", 3, 640));
    let p = process_image(bytes.clone()).unwrap();
    assert_eq!((p.format, p.width, p.height), (Format::Png, 640, 640));
    assert_eq!(p.sha256, crate::store::sha256_hex(&bytes));
    assert_eq!(p.bytes, bytes, "stored as it came");
    assert_eq!(p.palette.len(), 5);
    assert_eq!(p.palette[0], p.dominant);
    let thumb = decode(&p.thumbnail).unwrap();
    assert_eq!(Format::sniff(&p.thumbnail).unwrap(), Format::Webp);
    assert_eq!(
        (thumb.width, thumb.height),
        (THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE)
    );
}

#[test]
fn a_grid_splits_into_exact_quadrants() {
    let pixels = draw::grid("harbour", 11, 256);
    let g = process_grid(png(&pixels), PngCompression::Balanced).unwrap();
    assert_eq!((g.grid.width, g.grid.height), (256, 256));
    assert_eq!(g.quadrants.len(), 4);
    for (i, q) in g.quadrants.iter().enumerate() {
        let decoded = decode(&q.bytes).unwrap();
        let (x, y) = ((i as u32 % 2) * 128, (i as u32 / 2) * 128);
        assert_eq!(
            decoded.data,
            pixels.crop(x, y, 128, 128).data,
            "quadrant {}",
            i + 1
        );
        assert_eq!(q.sha256, crate::store::sha256_hex(&q.bytes));
        assert_eq!((q.width, q.height, q.format), (128, 128, Format::Png));
        assert!(!q.thumbnail.is_empty());
    }
    let differ = g
        .quadrants
        .windows(2)
        .all(|w| w[0].dominant != w[1].dominant);
    assert!(
        differ,
        "neighbouring quadrants have distinct dominant colours"
    );
}

#[test]
fn jpeg_webp_and_alpha_are_accepted() {
    let rgb = draw::grid("desert", 5, 64);
    for (format, expected) in [
        (image::ImageFormat::Jpeg, Format::Jpeg),
        (image::ImageFormat::WebP, Format::Webp),
    ] {
        let p = process_image(encode(&rgb, format)).unwrap();
        assert_eq!((p.format, p.width), (expected, 64));
    }
    let rgba = Pixels {
        width: 64,
        height: 64,
        channels: 4,
        data: rgb
            .data
            .chunks(3)
            .flat_map(|c| [c[0], c[1], c[2], 200])
            .collect(),
    };
    let g = process_grid(png(&rgba), PngCompression::Fast).unwrap();
    assert_eq!(decode(&g.quadrants[0].bytes).unwrap().channels, 4);
}

#[test]
fn tiny_images_are_not_enlarged() {
    let p = process_image(png(&draw::grid("dot", 1, 16))).unwrap();
    let thumb = decode(&p.thumbnail).unwrap();
    assert_eq!((thumb.width, thumb.height), (16, 16));
}

#[test]
fn corrupt_data_is_an_integrity_failure() {
    let good = png(&draw::grid("storm", 9, 128));
    let integrity =
        |bytes: Vec<u8>| matches!(process_image(bytes), Err(PipelineError::Integrity(_)));
    assert!(integrity(Vec::new()));
    assert!(integrity(b"GIF89a not ours".to_vec()));
    assert!(integrity(b"hello, world".to_vec()));
    for cut in [8, 33, 100, good.len() / 2, good.len() - 13] {
        assert!(
            integrity(good[..cut].to_vec()),
            "truncated at {cut} bytes accepted"
        );
    }
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    flipped[mid + 1] ^= 0x55;
    assert!(integrity(flipped), "a corrupted body was accepted");
    assert!(matches!(
        process_grid(good[..good.len() / 3].to_vec(), PngCompression::Fast),
        Err(PipelineError::Integrity(_))
    ));
}

#[test]
fn a_huge_declared_size_is_refused_before_decoding() {
    // A valid PNG header announcing 100 000 × 100 000 pixels, and no data.
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    bomb.extend_from_slice(&13u32.to_be_bytes());
    bomb.extend_from_slice(&ihdr);
    bomb.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    for refused in [
        process_image(bomb.clone()).err(),
        process_grid(bomb, PngCompression::Fast).err(),
    ] {
        let Some(PipelineError::Limit(m)) = refused else {
            panic!("{refused:?}");
        };
        assert!(
            m.contains("100000×100000") && m.contains("max_megapixels"),
            "{m}"
        );
    }
}

#[test]
fn the_pixel_limit_holds_for_every_format() {
    let rgb = draw::grid("meadow", 2, 64);
    let limits = Limits {
        max_pixels: 64 * 63,
        ..Limits::default()
    };
    for bytes in [
        png(&rgb),
        encode(&rgb, image::ImageFormat::Jpeg),
        encode(&rgb, image::ImageFormat::WebP),
    ] {
        let format = Format::sniff(&bytes).unwrap();
        assert!(
            matches!(decode_within(&bytes, &limits), Err(PipelineError::Limit(_))),
            "{format:?}"
        );
        assert!(
            matches!(
                process_grid_within(bytes.clone(), PngCompression::Fast, &limits),
                Err(PipelineError::Limit(_))
            ),
            "{format:?}"
        );
        let fits = Limits {
            max_pixels: 64 * 64,
            ..limits
        };
        process_image_within(bytes, &fits).unwrap();
    }
}

#[test]
fn what_follows_the_image_is_dropped_in_every_format() {
    let rgb = draw::grid("cliffs", 4, 64);
    let mut jpeg = encode(&rgb, image::ImageFormat::Jpeg);
    // An EXIF-like segment holding a small JPEG of its own, whose EOI must not end the file.
    let mut app1 = b"Exif\0\0\xff\xd8\xff\xd9".to_vec();
    app1.splice(0..0, ((app1.len() + 2) as u16).to_be_bytes());
    app1.splice(0..0, [0xff, 0xe1]);
    jpeg.splice(2..2, app1);
    for image in [png(&rgb), jpeg, encode(&rgb, image::ImageFormat::WebP)] {
        let format = Format::sniff(&image).unwrap();
        assert_eq!(format.image_end(&image), Some(image.len()), "{format:?}");
        let mut tail = image.clone();
        tail.extend(b"\xff\xd9\x00\x00\x00\x00IEND garbage".repeat(100));
        let p = process_image(tail.clone()).unwrap();
        assert_eq!(p.bytes, image, "{format:?}");
        assert_eq!(p.sha256, crate::store::sha256_hex(&image));
        let g = process_grid(tail, PngCompression::Fast).unwrap();
        assert_eq!(g.grid.bytes, image, "{format:?}");
        // A file cut short has no end: it is left to the decoder, which refuses it.
        assert_eq!(
            format.image_end(&image[..image.len() - 3]),
            None,
            "{format:?}"
        );
    }
}

#[test]
fn grey_and_palette_pngs_decode_to_rgb_or_rgba() {
    let grey_alpha = png_of(
        2,
        1,
        ::png::ColorType::GrayscaleAlpha,
        ::png::BitDepth::Eight,
        &[10, 20, 30, 40],
    );
    let p = decode(&grey_alpha).unwrap();
    assert_eq!(
        (p.channels, p.data),
        (4, vec![10, 10, 10, 20, 30, 30, 30, 40])
    );
    let grey = png_of(
        2,
        1,
        ::png::ColorType::Grayscale,
        ::png::BitDepth::Eight,
        &[7, 9],
    );
    assert_eq!(decode(&grey).unwrap().data, vec![7, 7, 7, 9, 9, 9]);
}

#[test]
fn grids_need_even_sides() {
    let odd = Pixels::rgb(5, 4, vec![90; 5 * 4 * 3]);
    assert_eq!(
        process_grid(png(&odd), PngCompression::Fast).unwrap_err(),
        PipelineError::NotAGrid(5, 4)
    );
}

/// Noise from a fixed seed: the worst case for the Huffman coder (every byte value used).
fn noise(width: u32, height: u32, channels: u8) -> Pixels {
    let mut rng = fastrand::Rng::with_seed(7);
    let data = (0..width * height * u32::from(channels))
        .map(|_| rng.u8(..))
        .collect();
    Pixels {
        width,
        height,
        channels,
        data,
    }
}

#[test]
fn every_png_compression_round_trips_exactly() {
    let drawn = draw::grid("tide pools", 21, 300);
    let rgba = Pixels {
        width: 96,
        height: 40,
        channels: 4,
        data: draw::grid("moths", 2, 96).data[..96 * 40 * 3]
            .chunks(3)
            .flat_map(|c| [c[0], c[1], c[2], c[0] ^ c[2]])
            .collect(),
    };
    let cases = [
        ("drawn, several blocks", drawn),
        ("noise", noise(257, 130, 3)),
        ("alpha", rgba),
        ("one colour", Pixels::rgb(64, 48, vec![17; 64 * 48 * 3])),
        ("one pixel", Pixels::rgb(1, 1, vec![1, 2, 3])),
        ("one row", Pixels::rgb(33, 1, (0..99).collect())),
    ];
    for compression in [
        PngCompression::Fast,
        PngCompression::Balanced,
        PngCompression::Small,
    ] {
        for (name, p) in &cases {
            let bytes = p.encode_png_with(compression).unwrap();
            let back = decode(&bytes).unwrap();
            assert_eq!(
                (back.width, back.height, back.channels),
                (p.width, p.height, p.channels),
                "{name}, {compression:?}"
            );
            assert!(
                back.data == p.data,
                "{name}, {compression:?}: pixels differ"
            );
        }
    }
}

#[test]
fn balanced_png_is_smaller_than_raw_and_fast() {
    let p = draw::grid("a quiet street at night", 4, 512);
    let balanced = p.encode_png_with(PngCompression::Balanced).unwrap();
    let fast = p.encode_png_with(PngCompression::Fast).unwrap();
    // The drawing is grainy on purpose, like a render: it does not shrink much.
    assert!(
        balanced.len() * 10 < p.data.len() * 8,
        "{} bytes",
        balanced.len()
    );
    assert!(
        balanced.len() * 10 < fast.len() * 9,
        "{} against {}",
        balanced.len(),
        fast.len()
    );
}

/// Encodes with the `png` crate directly, for the kinds `image` does not write.
fn png_of(
    width: u32,
    height: u32,
    colour: ::png::ColorType,
    depth: ::png::BitDepth,
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = ::png::Encoder::new(&mut out, width, height);
    e.set_color(colour);
    e.set_depth(depth);
    let mut w = e.write_header().unwrap();
    w.write_image_data(data).unwrap();
    w.finish().unwrap();
    out
}

#[test]
fn grids_of_every_kind_split_exactly() {
    let drawn = draw::grid("kites", 8, 64);
    let wide: Vec<u8> = drawn.data.iter().flat_map(|&b| [b, b ^ 0x5a]).collect();
    let grey: Vec<u8> = drawn.data.chunks(3).map(|c| c[1]).collect();
    let inputs = [
        ("jpeg", encode(&drawn, image::ImageFormat::Jpeg)),
        ("webp", encode(&drawn, image::ImageFormat::WebP)),
        (
            "16-bit png",
            png_of(
                64,
                64,
                ::png::ColorType::Rgb,
                ::png::BitDepth::Sixteen,
                &wide,
            ),
        ),
        (
            "grey png",
            png_of(
                64,
                64,
                ::png::ColorType::Grayscale,
                ::png::BitDepth::Eight,
                &grey,
            ),
        ),
        ("large png, two threads", png(&draw::grid("dunes", 3, 1024))),
    ];
    for (name, bytes) in inputs {
        let whole = decode(&bytes).unwrap();
        let g = process_grid(bytes, PngCompression::Balanced).unwrap();
        let (w, h) = (whole.width / 2, whole.height / 2);
        for (i, q) in g.quadrants.iter().enumerate() {
            let (x, y) = ((i as u32 % 2) * w, (i as u32 / 2) * h);
            assert!(
                decode(&q.bytes).unwrap().data == whole.crop(x, y, w, h).data,
                "{name}: quadrant {}",
                i + 1
            );
        }
        assert_eq!(g.grid.sha256.len(), 64, "{name}");
    }
}

#[test]
fn a_grid_thumbnail_keeps_the_grid_proportions() {
    let wide = Pixels::rgb(
        1200,
        800,
        draw::grid("plains", 5, 1200).data[..1200 * 800 * 3].to_vec(),
    );
    let g = process_grid(png(&wide), PngCompression::Fast).unwrap();
    let thumb = decode(&g.grid.thumbnail).unwrap();
    assert_eq!((thumb.width, thumb.height), (512, 341));
    let quadrant = decode(&g.quadrants[0].thumbnail).unwrap();
    assert_eq!((quadrant.width, quadrant.height), (512, 341));
    assert_eq!(g.grid.palette.len(), 5);
}

#[test]
fn a_grid_cut_short_in_its_bottom_half_fails_and_nothing_waits_forever() {
    let good = png(&draw::grid("avalanche", 12, 1024));
    for cut in [good.len() * 3 / 4, good.len() - 13] {
        assert!(
            matches!(
                process_grid(good[..cut].to_vec(), PngCompression::Balanced),
                Err(PipelineError::Integrity(_))
            ),
            "cut at {cut}"
        );
    }
    let mut flipped = good.clone();
    let at = flipped.len() * 7 / 8;
    flipped[at] ^= 0xff;
    assert!(matches!(
        process_grid(flipped, PngCompression::Balanced),
        Err(PipelineError::Integrity(_))
    ));
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

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
    assert!(matches!(
        process_image(bomb),
        Err(PipelineError::Integrity(_))
    ));
}

#[test]
fn grids_need_even_sides() {
    let odd = Pixels::rgb(5, 4, vec![90; 5 * 4 * 3]);
    assert_eq!(
        process_grid(png(&odd), PngCompression::Fast).unwrap_err(),
        PipelineError::NotAGrid(5, 4)
    );
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

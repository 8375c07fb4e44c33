//! What the OpenAI simulator draws and reads: a picture of a requested size and format (the
//! sandbox's scenes), the token usage it bills, and the parts of a multipart edit request.

use crate::pipeline::Pixels;
use crate::providers::openai::params::parse_size;
use crate::providers::openai::wire::{TokenDetails, Usage};
use crate::providers::sandbox::draw;

/// Picture `index` (from 0) for `prompt` at `size` (`WxH` or `auto`), in `format`, its long
/// edge at most `max_side` when given (tests ask for small pictures to stay fast).
#[allow(clippy::similar_names)] // `size` is the request's text, `side` the square drawn
pub fn picture(
    prompt: &str,
    seed: u32,
    index: u32,
    size: &str,
    format: &str,
    compression: u8,
    max_side: Option<u32>,
) -> Result<Vec<u8>, String> {
    let (mut w, mut h) = parse_size(size).unwrap_or((1024, 1024));
    if let Some(max) = max_side
        && w.max(h) > max
    {
        let scale = f64::from(max) / f64::from(w.max(h));
        w = ((f64::from(w) * scale).round() as u32).max(1);
        h = ((f64::from(h) * scale).round() as u32).max(1);
    }
    let side = w.max(h).max(1);
    let square = draw::quadrant(
        prompt,
        seed.wrapping_add(index / 4),
        side,
        (index % 4) as u8 + 1,
    );
    let pixels = if w == h {
        square
    } else {
        square.crop(0, 0, w, h)
    };
    encode(&pixels, format, compression)
}

fn encode(pixels: &Pixels, format: &str, compression: u8) -> Result<Vec<u8>, String> {
    match format {
        "jpeg" => {
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, compression.clamp(1, 100))
                .encode(
                    &pixels.data,
                    pixels.width,
                    pixels.height,
                    image::ExtendedColorType::Rgb8,
                )
                .map_err(|e| e.to_string())?;
            Ok(out)
        }
        "webp" => Ok(
            webp::Encoder::from_rgb(&pixels.data, pixels.width, pixels.height)
                .encode(f32::from(compression.clamp(1, 100)))
                .to_vec(),
        ),
        _ => pixels.encode_png().map_err(|e| e.to_string()),
    }
}

/// The tokens a request is billed, in the shape of GPT image models' usage: the prompt's text
/// (about four characters a token), 65 tokens per input picture, and the output by quality
/// and size (gpt-image-1's 272 / 1056 / 4160 tokens for a low / medium / high 1024² image,
/// scaled by the pixels), per image.
pub fn usage(prompt: &str, inputs: usize, size: &str, quality: &str, n: u8) -> Usage {
    let text = (prompt.chars().count() as u64).div_ceil(4).max(1);
    let images = 65 * inputs as u64;
    let (w, h) = parse_size(size).unwrap_or((1024, 1024));
    let per_megapixel = match quality {
        "low" => 272.0,
        "high" => 4160.0,
        _ => 1056.0,
    };
    let output = ((per_megapixel * f64::from(w) * f64::from(h) / 1_048_576.0).round() as u64)
        .max(1)
        * u64::from(n);
    Usage {
        input_tokens: text + images,
        output_tokens: output,
        total_tokens: text + images + output,
        input_tokens_details: TokenDetails {
            image_tokens: images,
            text_tokens: text,
        },
        output_tokens_details: Some(TokenDetails {
            image_tokens: output,
            text_tokens: 0,
        }),
    }
}

/// One part of a multipart body.
pub struct Part {
    pub name: String,
    /// Set for a file.
    pub filename: Option<String>,
    pub bytes: Vec<u8>,
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits a multipart body into its parts; `None` when it is not one.
pub fn parts(body: &[u8], boundary: &str) -> Option<Vec<Part>> {
    let delimiter = format!("--{boundary}");
    let mut rest = &body[find(body, delimiter.as_bytes())? + delimiter.len()..];
    let mut out = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Some(out);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        let content = &rest[head_end + 4..];
        let end = find(content, format!("\r\n{delimiter}").as_bytes())?;
        let mut name = None;
        let mut filename = None;
        for line in head.split("\r\n") {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            if !key.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for param in value.split(';').skip(1) {
                if let Some((k, v)) = param.trim().split_once('=') {
                    let v = v.trim().trim_matches('"').to_owned();
                    match k.trim() {
                        "name" => name = Some(v),
                        "filename" => filename = Some(v),
                        _ => {}
                    }
                }
            }
        }
        out.push(Part {
            name: name?,
            filename,
            bytes: content[..end].to_vec(),
        });
        rest = &content[end + 2 + delimiter.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_are_read_back() {
        let body = b"--xyz\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na fox\r\n--xyz\r\nContent-Disposition: form-data; name=\"image[]\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--xyz--\r\n";
        let parts = parts(body, "xyz").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "prompt");
        assert_eq!(parts[0].bytes, b"a fox");
        assert_eq!(parts[1].filename.as_deref(), Some("a.png"));
        assert_eq!(parts[1].bytes, b"\x89PNG");
        assert!(super::parts(b"nothing", "xyz").is_none());
        assert_eq!(
            boundary("multipart/form-data; boundary=\"xyz\"").as_deref(),
            Some("xyz")
        );
        assert_eq!(boundary("application/json"), None);
    }

    #[test]
    fn pictures_have_the_size_and_format_asked() {
        let png = picture("fox", 1, 0, "64x32", "png", 100, None).unwrap();
        let decoded = image::load_from_memory(&png).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (64, 32));
        let jpeg = picture("fox", 1, 1, "1536x1024", "jpeg", 80, Some(48)).unwrap();
        let decoded = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (48, 32));
        let webp = picture("fox", 1, 2, "auto", "webp", 80, Some(32)).unwrap();
        assert!(webp.starts_with(b"RIFF"));
    }
}

//! A prediction's outputs fetched from their URLs, all at once as soon as it succeeds
//! (Replicate deletes an API prediction's outputs an hour after it ends), each within the
//! size limit, and told apart: a picture, or a clip by its container's signature.

use crate::domain::ErrorCode;
use crate::providers::openai::client::read_capped;
use crate::providers::{Output, ProviderError, VideoFormat};

use super::client::{Client, backoff};
use super::params::Kind;

/// A download's failure, and whether the URL is gone for good (expired or deleted): then the
/// prediction cannot give its outputs again and a new one must be made.
pub struct Failed {
    pub error: ProviderError,
    pub gone: bool,
}

/// One output's bytes: tried again on a lost connection or a server error, never past
/// `max_bytes`.
pub async fn fetch(
    client: &Client,
    url: &str,
    max_bytes: u64,
    attempts: u32,
) -> Result<Vec<u8>, Failed> {
    let too_large = || Failed {
        error: ProviderError::new(
            ErrorCode::IntegrityFailed,
            format!("an output from Replicate is larger than the {max_bytes} bytes allowed"),
        ),
        gone: false,
    };
    let mut last = None;
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(backoff(client.timing.backoff, attempt)).await;
        }
        // Output URLs are signed or public: the token is not sent with them.
        let response = match client
            .http
            .get(url)
            .timeout(client.timing.timeout)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                last = Some(format!("an output download failed: {}", e.without_url()));
                continue;
            }
        };
        let status = response.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            last = Some(format!("an output URL answered {status}"));
            continue;
        }
        if !status.is_success() {
            return Err(Failed {
                error: ProviderError::new(
                    ErrorCode::DownloadFailed,
                    format!(
                        "an output URL answered {status} (expired or deleted): the prediction must be made again"
                    ),
                ),
                gone: true,
            });
        }
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(too_large());
        }
        let cap = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let bytes = read_capped(response, cap.saturating_add(1)).await;
        if bytes.len() > cap {
            return Err(too_large());
        }
        return Ok(bytes);
    }
    Err(Failed {
        error: ProviderError::new(
            ErrorCode::DownloadFailed,
            last.unwrap_or_else(|| "an output download failed".into()),
        ),
        gone: false,
    })
}

/// Output `index` of a model of `kind`: a clip is told by its container (an MP4's `ftyp`
/// box, a WebP's RIFF header), a picture is left to the pipeline.
pub fn output(kind: Kind, index: u8, bytes: Vec<u8>) -> Result<Output, ProviderError> {
    match kind {
        Kind::Image => Ok(Output::image(index, bytes)),
        Kind::Video => {
            let format = if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
                VideoFormat::Mp4
            } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
                VideoFormat::WebP
            } else {
                return Err(ProviderError::new(
                    ErrorCode::IntegrityFailed,
                    format!(
                        "output {index} of a video model is neither an MP4 nor an animated WebP"
                    ),
                ));
            };
            Ok(Output::video(index, format, bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::OutputKind;

    #[test]
    fn clips_are_told_by_their_container() {
        let mp4 = b"\0\0\0\x20ftypisom\0\0\0\0".to_vec();
        assert_eq!(
            output(Kind::Video, 1, mp4).unwrap().kind,
            OutputKind::Video(VideoFormat::Mp4)
        );
        let webp = b"RIFF\x10\0\0\0WEBPVP8X".to_vec();
        assert_eq!(
            output(Kind::Video, 1, webp).unwrap().kind,
            OutputKind::Video(VideoFormat::WebP)
        );
        assert!(output(Kind::Video, 1, b"\x89PNG\r\n\x1a\n....".to_vec()).is_err());
        assert_eq!(
            output(Kind::Image, 2, b"\x89PNG".to_vec()).unwrap().kind,
            OutputKind::Image
        );
    }
}

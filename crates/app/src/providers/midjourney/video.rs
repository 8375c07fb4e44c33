//! Midjourney's video in Discord: which U press a video generation's automatic upscales use,
//! and what a downloaded result
//! is (an animated WebP video grid, an MP4 clip, or a picture), told by its bytes rather than
//! its name. Its buttons are read like every other (`press::action_of`).

use crate::domain::{Action, makes_video};
use crate::providers::{Output, ProviderJob, VideoFormat};

/// The action an automatic upscale presses on the job's grid: the video grid's clip
/// upscale for a video generation, U`index` for a picture one.
pub fn upscale_action(job: &ProviderJob, index: u8) -> Action {
    if makes_video(job.action, &job.parameters) {
        Action::VideoUpscale { index }
    } else {
        Action::Upscale { index }
    }
}

/// A downloaded result as the engine takes it: an MP4 or an animated WebP is a clip, anything
/// else a picture (the engine refuses the wrong one for the generation).
pub fn delivered(index: u8, bytes: Vec<u8>) -> Output {
    match clip_format(&bytes) {
        Some(format) => Output::video(index, format, bytes),
        None => Output::image(index, bytes),
    }
}

/// An MP4 (`ftyp` box first), or a WebP whose extended header sets the animation flag.
fn clip_format(bytes: &[u8]) -> Option<VideoFormat> {
    if bytes.get(4..8) == Some(b"ftyp") {
        return Some(VideoFormat::Mp4);
    }
    let webp = bytes.get(..4) == Some(b"RIFF") && bytes.get(8..12) == Some(b"WEBP");
    let animated =
        bytes.get(12..16) == Some(b"VP8X") && bytes.get(20).is_some_and(|f| f & 0x02 != 0);
    (webp && animated).then_some(VideoFormat::WebP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Motion;
    use crate::providers::OutputKind;

    #[test]
    fn results_are_told_by_their_bytes() {
        let mut mp4 = vec![0, 0, 0, 24];
        mp4.extend_from_slice(b"ftypisom");
        assert_eq!(delivered(2, mp4).kind, OutputKind::Video(VideoFormat::Mp4));
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0".to_vec();
        webp.extend_from_slice(&[0x02, 0, 0, 0]);
        assert_eq!(
            delivered(1, webp.clone()).kind,
            OutputKind::Video(VideoFormat::WebP)
        );
        // A still WebP (no animation flag) and a PNG are pictures.
        webp[20] = 0;
        assert_eq!(delivered(1, webp).kind, OutputKind::Image);
        assert_eq!(
            delivered(1, b"\x89PNG\r\n\x1a\n".to_vec()).kind,
            OutputKind::Image
        );
    }

    #[test]
    fn video_buttons_are_pressed_from_the_message_and_never_built() {
        use super::super::exchange::Send;
        use super::super::press::press;
        use super::super::refs::Shot;
        let clip = Shot {
            message_id: "7".into(),
            flags: 0,
            job_hash: Some("c".into()),
            url: None,
            buttons: vec![
                "MJ::JOB::animate_high_extend::1::c".into(),
                "MJ::JOB::animate_low_extend::1::c".into(),
            ],
            prompt: None,
        };
        let custom_id = |shot: &Shot, action: Action| match press(shot, action) {
            Ok((Send::Button(c), expect)) => {
                assert_eq!(expect.kinds, [super::super::reading::Kind::Video]);
                Ok(c.custom_id)
            }
            Ok(_) => Err("not a button".to_owned()),
            Err(e) => Err(e.message),
        };
        let low = Action::Extend {
            index: 1,
            motion: Motion::Low,
        };
        assert_eq!(
            custom_id(&clip, low).as_deref(),
            Ok("MJ::JOB::animate_low_extend::1::c")
        );
        // The clip offers no Animate and no clip upscale: refused, though the hash is known.
        for action in [
            Action::Animate {
                index: 1,
                motion: Motion::High,
            },
            Action::VideoUpscale { index: 2 },
        ] {
            let refused = custom_id(&clip, action).expect_err("refused");
            assert!(refused.contains("offers no"), "{refused}");
        }
    }
}

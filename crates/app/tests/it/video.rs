//! Video as a first-class asset, through the engine: the sandbox's clips (H.264 MP4 and
//! animated WebP) stored, verified, given a poster thumbnail that decodes, and listed by kind
//! beside pictures; bad clips of several kinds refused with nothing stored; the real binary's
//! `image list --kind video`. On the catalogue `ATELIER_TEST_CATALOGUE` names.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use atelier::api::ImageQuery;
use atelier::domain::{
    Actor, ErrorCode, GenerationId, GenerationRequest, GenerationStatus, MediaKind, Role,
};
use atelier::pipeline::{self, ClipFormat, Limits};
use atelier::providers::sandbox::{ClipSpec, Sandbox, Video, draw_clip};
use atelier::providers::{
    Capabilities, Output, Provider, ProviderError, ProviderJob, Reporter, Shape, UpscaleMode,
    VideoFormat,
};

use crate::engine::run_idle;
use crate::support::{DataDir, TestApp, app_with, fast_jobs};

fn spec(format: VideoFormat) -> ClipSpec {
    ClipSpec {
        format,
        side: 128,
        frames: 24,
        fps: 12,
    }
}

async fn submit(t: &TestApp, provider: &str, prompt: &str) -> GenerationId {
    let mut request = GenerationRequest::new(prompt);
    request.provider = Some(provider.into());
    t.app.submit(Actor::Operator, request).await.unwrap().id
}

async fn listed(t: &TestApp, kind: Option<MediaKind>) -> Vec<atelier::domain::Image> {
    let query = ImageQuery {
        kind,
        ..ImageQuery::default()
    };
    t.app.images(Actor::Operator, &query).await.unwrap().images
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clip_from_the_sandbox_is_stored_verified_with_a_poster_and_listed_as_video() {
    for (format, extension) in [(VideoFormat::Mp4, "mp4"), (VideoFormat::WebP, "webp")] {
        let clips: Arc<dyn Provider> = Arc::new(Video {
            spec: spec(format),
            delay: Duration::ZERO,
        });
        let pictures: Arc<dyn Provider> = Arc::new(Sandbox {
            size: 64,
            delay: Duration::ZERO,
        });
        let t = app_with(
            vec![
                ("sandbox-video", clips, 1, UpscaleMode::Provider),
                ("sandbox", pictures, 1, UpscaleMode::Provider),
            ],
            fast_jobs(),
        )
        .await;
        let clip_id = submit(&t, "sandbox-video", "a tide coming in").await;
        let picture_id = submit(&t, "sandbox", "a still harbour").await;
        run_idle(&t).await;

        let g = t.app.generation(Actor::Operator, clip_id).await.unwrap();
        assert_eq!(g.generation.status, GenerationStatus::Succeeded, "{format}");
        assert_eq!(g.generation.progress, 100.0);
        assert_eq!(g.images.len(), 1, "one clip");
        let image = &g.images[0];
        assert_eq!(image.role, Role::Variant(1));
        assert_eq!(image.kind(), MediaKind::Video);
        assert_eq!(image.format, extension);
        assert_eq!((image.width, image.height), (128, 128));
        assert!(
            image
                .storage_key
                .ends_with(&format!("variant_1.{extension}"))
        );
        let clip = image.clip.as_ref().expect("catalogued as a clip");
        assert_eq!(clip.frames, 24);
        match format {
            VideoFormat::Mp4 => {
                assert_eq!(clip.duration_ms, 2000);
                assert_eq!(clip.codec, "h264");
            }
            VideoFormat::WebP => {
                assert!(
                    (1900..=2000).contains(&clip.duration_ms),
                    "{}",
                    clip.duration_ms
                );
                assert_eq!(clip.codec, "vp8");
            }
        }
        // The stored bytes are the ones hashed, and verify again as the same clip.
        let bytes = t
            .app
            .store()
            .get(&image.storage_key, &image.sha256)
            .await
            .expect("stored and verified by its SHA-256");
        assert_eq!(bytes.len() as u64, image.size_bytes);
        let clip_format = match format {
            VideoFormat::Mp4 => ClipFormat::Mp4,
            VideoFormat::WebP => ClipFormat::WebP,
        };
        let again = pipeline::process_clip_within(bytes, clip_format, &Limits::default()).unwrap();
        assert_eq!(again.clip.as_ref(), Some(clip));
        // The poster thumbnail exists and decodes: the first frame, 128 px.
        let thumb_key = image.thumbnail_key.as_deref().expect("a poster");
        let thumb = t.app.store().read(thumb_key).await.expect("poster stored");
        let poster = pipeline::decode(&thumb).expect("the poster decodes");
        assert_eq!((poster.width, poster.height), (128, 128));
        // The view says what it is, with its length.
        let view = t.app.image_view(image);
        assert_eq!(view.kind, "video");
        assert_eq!(view.duration_ms, Some(clip.duration_ms));
        assert_eq!(view.frames, Some(24));

        // Listed by kind beside the pictures.
        let videos = listed(&t, Some(MediaKind::Video)).await;
        assert_eq!(videos.len(), 1);
        assert_eq!(videos[0].id, image.id);
        assert_eq!(
            videos[0].clip.as_ref(),
            Some(clip),
            "read back from the catalogue"
        );
        let stills = listed(&t, Some(MediaKind::Image)).await;
        assert_eq!(stills.len(), 5, "the grid and its four upscales");
        assert!(
            stills
                .iter()
                .all(|i| i.generation_id == picture_id && i.clip.is_none())
        );
        assert_eq!(listed(&t, None).await.len(), 6);
    }
}

/// Delivers the clip it holds, as a video model would.
struct Deliver {
    format: VideoFormat,
    bytes: Vec<u8>,
}

#[async_trait]
impl Provider for Deliver {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shape: Shape::Separate { count: 1 },
            video: true,
            negative_prompt: false,
            actions: &[],
            describe: false,
            shorten: false,
            blend: false,
            image_prompts: false,
        }
    }

    async fn render(&self, _job: &ProviderJob, report: &dyn Reporter) -> Result<(), ProviderError> {
        report
            .output(Output::video(1, self.format, self.bytes.clone()))
            .await
    }
}

/// Where the box `kind`'s type is: the last such bytes (`moov` is written last, and `avc1` is
/// also a brand in `ftyp`), but the first `mdat`.
#[allow(clippy::trivially_copy_pass_by_ref)] // box types are read as `b"...."` literals
fn find(bytes: &[u8], kind: &[u8; 4]) -> usize {
    let mut at = bytes.windows(4);
    if kind == b"mdat" {
        at.position(|w| w == kind)
    } else {
        at.rposition(|w| w == kind)
    }
    .expect("box present")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clips_of_every_kind_are_refused_and_nothing_is_stored() {
    let mp4 = draw_clip("a tide", 5, &spec(VideoFormat::Mp4)).unwrap();
    let webp = draw_clip("a tide", 5, &spec(VideoFormat::WebP)).unwrap();
    let mut lying = mp4.clone();
    let at = find(&lying, b"avc1") + 28;
    lying[at..at + 2].copy_from_slice(&640u16.to_be_bytes());
    let mut huge = mp4.clone();
    huge[at..at + 4].copy_from_slice(&[0xea, 0x60, 0xea, 0x60]);
    let mut garbage = mp4.clone();
    let data = find(&garbage, b"mdat") + 4;
    garbage[data..data + 300].fill(0xff);
    // (what, format, bytes, retried: a cut or corrupt download is fetched again)
    let cases = [
        ("empty", VideoFormat::Mp4, Vec::new(), true),
        (
            "truncated MP4",
            VideoFormat::Mp4,
            mp4[..mp4.len() / 2].to_vec(),
            true,
        ),
        (
            "truncated WebP",
            VideoFormat::WebP,
            webp[..webp.len() - 40].to_vec(),
            true,
        ),
        ("frames of garbage", VideoFormat::Mp4, garbage, true),
        ("a header that lies", VideoFormat::Mp4, lying, true),
        ("huge frames", VideoFormat::Mp4, huge, false),
        (
            "a WebP said to be an MP4",
            VideoFormat::Mp4,
            webp.clone(),
            false,
        ),
    ];
    for (what, format, bytes, retried) in cases {
        let t = app_with(
            vec![(
                "clips",
                Arc::new(Deliver { format, bytes }) as Arc<dyn Provider>,
                1,
                UpscaleMode::Provider,
            )],
            fast_jobs(),
        )
        .await;
        let id = submit(&t, "clips", "a tide").await;
        run_idle(&t).await;
        let g = t.app.generation(Actor::Operator, id).await.unwrap();
        assert_eq!(g.generation.status, GenerationStatus::Failed, "{what}");
        assert!(g.images.is_empty(), "{what}: nothing catalogued");
        let error = g.generation.error.expect("the failure is recorded");
        assert_eq!(
            error.code,
            ErrorCode::IntegrityFailed,
            "{what}: {}",
            error.message
        );
        assert!(error.message.contains("clip"), "{what}: {}", error.message);
        let job = t.app.queue().job_of(id).await.unwrap();
        assert_eq!(job.attempts, if retried { 3 } else { 1 }, "{what}");
        let extension = if format == VideoFormat::Mp4 {
            "mp4"
        } else {
            "webp"
        };
        for key in [
            format!("{id}/variant_1.{extension}"),
            format!("{id}/thumb_variant_1.webp"),
        ] {
            assert!(
                t.app.store().read(&key).await.is_err(),
                "{what}: {key} not stored"
            );
        }
        assert!(listed(&t, None).await.is_empty(), "{what}");
    }
}

#[test]
fn the_binary_generates_a_clip_and_lists_it_with_kind_video() {
    let d = DataDir::with_config(
        "[providers.sandbox.video]\nenabled = true\nsize = 64\nframes = 6\nfps = 12\ndelay_ms = 0\n",
    );
    let (code, g) = d.json(&["generate", "--provider", "sandbox-video", "a tide"]);
    assert_eq!(code, 0, "{g}");
    assert_eq!(g["status"], "succeeded", "{g}");
    let (code, videos) = d.json(&["image", "list", "--kind", "video"]);
    assert_eq!(code, 0, "{videos}");
    let videos = videos.as_array().expect("a list");
    assert_eq!(videos.len(), 1);
    let v = &videos[0];
    assert_eq!(v["kind"], "video");
    assert_eq!(v["duration_ms"], 500);
    assert_eq!(v["frames"], 6);
    assert_eq!(v["codec"], "h264");
    assert_eq!(v["format"], "mp4");
    let poster = std::fs::read(v["thumbnail_path"].as_str().expect("a poster path")).unwrap();
    let poster = pipeline::decode(&poster).expect("the poster decodes");
    assert_eq!(poster.width, 64);
    let (_, stills) = d.json(&["image", "list", "--kind", "image"]);
    assert_eq!(stills.as_array().map(Vec::len), Some(0));
    let files = d.stored_files();
    assert!(
        files.iter().any(|f| f.ends_with("variant_1.mp4")),
        "{files:?}"
    );
    // The plain listing names the clip and its length.
    let out = d.run(&["image", "list", "--kind", "video"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mp4 video 0.500s"), "{text}");
    // A kind that is not one is refused.
    let out = d.run(&["image", "list", "--kind", "audio"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_lists_clips_by_kind_and_serves_them_as_video() {
    let s = crate::http::Server::start(
        "[server]\nauth = \"none\"\n\
         [providers.sandbox.video]\nenabled = true\nsize = 64\nframes = 6\ndelay_ms = 0\n",
    );
    let http = crate::http::client();
    for (provider, prompt) in [("sandbox-video", "a tide"), ("sandbox", "a harbour")] {
        let r = http
            .post(s.url("/v1/generations"))
            .header("prefer", "wait=30")
            .json(&serde_json::json!({"prompt": prompt, "provider": provider, "upscale": "none"}))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status().as_u16(), 201);
        let g: serde_json::Value = r.json().await.expect("json");
        assert_eq!(g["status"], "succeeded", "{g}");
    }
    let videos = crate::http::get_json(&http, s.url("/v1/images?kind=video"), None).await;
    let data = videos["data"].as_array().expect("a page");
    assert_eq!(data.len(), 1, "{videos}");
    assert_eq!(data[0]["kind"], "video");
    assert_eq!(data[0]["duration_ms"], 500);
    let stills = crate::http::get_json(&http, s.url("/v1/images?kind=image"), None).await;
    let stills = stills["data"].as_array().expect("a page");
    assert!(!stills.is_empty());
    assert!(
        stills
            .iter()
            .all(|i| i["kind"] == "image" && i["duration_ms"].is_null())
    );
    let id = data[0]["id"].as_str().expect("an id");
    let file = http
        .get(s.url(&format!("/v1/images/{id}/file")))
        .send()
        .await
        .expect("file");
    assert_eq!(file.status().as_u16(), 200);
    assert_eq!(file.headers()["content-type"], "video/mp4");
    let poster = http
        .get(s.url(&format!("/v1/images/{id}/thumbnail")))
        .send()
        .await
        .expect("poster");
    assert_eq!(poster.headers()["content-type"], "image/webp");
    let poster = poster.bytes().await.expect("bytes");
    assert!(pipeline::decode(&poster).is_ok(), "the poster decodes");
    let r = http
        .get(s.url("/v1/images?kind=audio"))
        .send()
        .await
        .expect("sent");
    crate::http::problem(r, 422, "invalid_input").await;
}

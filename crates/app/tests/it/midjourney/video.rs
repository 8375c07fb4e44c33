//! Midjourney's video end to end against the simulator: Animate on an upscaled still, a video
//! grid's clip upscales, Extend (also through its Remix modal) and `--video` on /imagine, each
//! stored as verified clips (kind video, duration, frames, codec); the refusals before
//! anything is sent.

use std::sync::Arc;

use atelier::app::App;
use atelier::cli::simulate::client_config;
use atelier::domain::{
    Actor, GenerationId, GenerationRequest, GenerationStatus, Image, ImageId, MediaKind, Role,
    UpscaleSelection,
};
use atelier_simulator::Timing;

use super::{app_for, generate, run_all, simulator};

async fn images(app: &App, id: GenerationId) -> Vec<Image> {
    app.generation(Actor::Operator, id)
        .await
        .map(|g| g.images)
        .expect("images")
}

/// Runs `action` on `image` and returns the finished generation's images.
async fn act(
    app: &Arc<App>,
    image: ImageId,
    action: &str,
    upscale: &UpscaleSelection,
) -> (GenerationId, Vec<Image>) {
    let g = app
        .act(Actor::Operator, image, action, upscale)
        .await
        .expect(action);
    run_all(app).await;
    let done = app.catalogue().generation(g.id).await.unwrap();
    assert_eq!(
        done.status,
        GenerationStatus::Succeeded,
        "{action}: {:?}",
        done.error
    );
    (g.id, images(app, g.id).await)
}

/// A stored clip: kind video, measured, and its bytes the container `codec` says.
async fn assert_clip(app: &App, image: &Image, codec: &str, frames: u32) {
    assert_eq!(image.kind(), MediaKind::Video, "{:?}", image.role);
    let clip = image.clip.as_ref().expect("a clip is measured");
    assert_eq!(clip.codec, codec, "{:?}", image.role);
    assert_eq!(clip.frames, frames, "{:?}", image.role);
    // The sandbox painter's clips: five frames, one a second.
    assert_eq!(clip.duration_ms, 5000, "{:?}", image.role);
    let bytes = app
        .store()
        .get(&image.storage_key, &image.sha256)
        .await
        .expect("the clip reads back, its SHA-256 verified");
    match codec {
        "h264" => assert_eq!(&bytes[4..8], b"ftyp"),
        _ => assert_eq!(&bytes[8..12], b"WEBP"),
    }
}

fn is_webp(codec: &str) -> bool {
    codec.starts_with("vp8")
}

#[tokio::test]
async fn animate_then_a_clip_upscale_then_extend_store_clips() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let still = generate(&app, "a red fox in snow").await;
    let up2 = images(&app, still)
        .await
        .into_iter()
        .find(|i| i.role == Role::Upscale(2))
        .expect("upscale 2");
    assert_eq!(up2.kind(), MediaKind::Image);

    // Animate: a video grid (animated WebP) and the clip upscales asked for (MP4s).
    let two = UpscaleSelection::from_indices(&[1, 3]).unwrap();
    let (animated, made) = act(&app, up2.id, "animate-high", &two).await;
    let roles: Vec<Role> = made.iter().map(|i| i.role).collect();
    assert_eq!(roles, [Role::Grid, Role::Upscale(1), Role::Upscale(3)]);
    let grid = &made[0];
    let codec = grid
        .clip
        .as_ref()
        .map(|c| c.codec.clone())
        .unwrap_or_default();
    assert!(is_webp(&codec), "{codec}");
    assert_clip(&app, grid, &codec, 5).await;
    for clip in &made[1..] {
        assert_clip(&app, clip, "h264", 5).await;
    }
    let g = app.catalogue().generation(animated).await.unwrap();
    assert_eq!(g.kind.as_str(), "animate");
    assert_eq!(g.parent_id, Some(still));
    // Milestones as for pictures: submitted 25, grid 50, the two upscales 75 and 100.
    let events = app.catalogue().events(animated, 0).await.unwrap();
    let progress: Vec<f64> = events
        .iter()
        .filter(|e| e.image_id.is_some())
        .map(|e| e.progress)
        .collect();
    assert_eq!(progress, [50.0, 75.0, 100.0]);

    // A clip of the video grid that was not upscaled with it: one MP4.
    let (_, clip) = act(&app, grid.id, "video-u4", &UpscaleSelection::none()).await;
    assert_eq!(clip.len(), 1);
    assert_eq!(clip[0].role, Role::Variant(1));
    assert_clip(&app, &clip[0], "h264", 5).await;

    // Extend, on that clip and on an automatic clip upscale of the animate generation.
    for (source, action) in [(clip[0].id, "extend-low"), (made[1].id, "extend-high")] {
        let (extended, longer) = act(&app, source, action, &UpscaleSelection::none()).await;
        assert_eq!(longer.len(), 1, "{action}");
        assert_clip(&app, &longer[0], "h264", 5).await;
        let g = app.catalogue().generation(extended).await.unwrap();
        assert_eq!(g.kind.as_str(), "animate", "{action}");
        // An extended clip extends again.
        if action == "extend-low" {
            act(&app, longer[0].id, "extend-high", &UpscaleSelection::none()).await;
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn extend_under_remix_mode_fills_the_animate_modal() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let still = generate(&app, "a lighthouse at dusk").await;
    let up1 = images(&app, still)
        .await
        .into_iter()
        .find(|i| i.role == Role::Upscale(1))
        .unwrap();
    let one = UpscaleSelection::from_indices(&[2]).unwrap();
    let (_, made) = act(&app, up1.id, "animate-low", &one).await;
    let clip = made.iter().find(|i| i.role == Role::Upscale(2)).unwrap();

    let user = &sim.accounts()[0].user_id;
    assert!(sim.control().set_remix(user, true));
    let before = sim.control().stats().interactions;
    let (_, longer) = act(&app, clip.id, "extend-high", &UpscaleSelection::none()).await;
    assert_clip(&app, &longer[0], "h264", 5).await;
    // The button, then the modal submit with the prompt.
    assert_eq!(sim.control().stats().interactions - before, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn video_on_imagine_with_an_image_prompt_stores_a_video_grid_and_its_clips() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let mut request = GenerationRequest::new(
        "https://example.com/fox.png a fox runs --video --motion low --loop --bs 2",
    );
    request.upscale = UpscaleSelection::from_indices(&[2]).unwrap();
    let g = app
        .submit(Actor::Operator, request)
        .await
        .expect("submitted");
    run_all(&app).await;
    let done = app.catalogue().generation(g.id).await.unwrap();
    assert_eq!(done.status, GenerationStatus::Succeeded, "{:?}", done.error);
    assert_eq!(done.parameters.extra["motion"], "low");
    let made = images(&app, g.id).await;
    let roles: Vec<Role> = made.iter().map(|i| i.role).collect();
    assert_eq!(roles, [Role::Grid, Role::Upscale(2)]);
    let codec = made[0]
        .clip
        .as_ref()
        .map(|c| c.codec.clone())
        .unwrap_or_default();
    assert_clip(&app, &made[0], &codec, 5).await;
    assert_clip(&app, &made[1], "h264", 5).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn actions_on_the_wrong_kind_of_image_are_refused_before_anything_is_sent() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let still = generate(&app, "a quiet harbour").await;
    let stills = images(&app, still).await;
    let grid = stills.iter().find(|i| i.role == Role::Grid).unwrap().id;
    let up3 = stills
        .iter()
        .find(|i| i.role == Role::Upscale(3))
        .unwrap()
        .id;
    let (_, video) = act(
        &app,
        up3,
        "animate-high",
        &UpscaleSelection::from_indices(&[1]).unwrap(),
    )
    .await;
    let video_grid = video[0].id;
    let clip = video[1].id;
    let before = sim.control().stats().interactions;
    let none = UpscaleSelection::none();
    for (image, action, says) in [
        (grid, "video-u1", "video-u1 acts on a clip, and image"),
        (up3, "extend-high", "extend-high acts on a clip, and image"),
        (
            clip,
            "animate-low",
            "animate-low acts on a picture, and image",
        ),
        (video_grid, "u1", "u1 acts on a picture, and image"),
        (video_grid, "v2", "v2 acts on a picture, and image"),
        // A video grid is a grid: Extend is a clip's.
        (
            video_grid,
            "extend-low",
            "extend-low lengthens a clip, and this image is a grid, not a clip: press video-u1",
        ),
    ] {
        let refused = app
            .act(Actor::Operator, image, action, &none)
            .await
            .expect_err(action)
            .to_string();
        assert!(refused.contains(says), "{action}: {refused}");
    }
    assert_eq!(
        sim.control().stats().interactions,
        before,
        "nothing was sent"
    );
    sim.shutdown().await;
}

// The simulator serves from this runtime while the test waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_parameters_midjourney_refuses_are_refused_before_anything_is_sent() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim.toml");
    std::fs::write(&file, client_config(&sim)).unwrap();
    let data = dir.path().join("data");
    let image = "https://example.com/fox.png a fox";
    for (prompt, says) in [
        (
            "a fox --video".to_owned(),
            "--video needs an image prompt (a picture's URL first)",
        ),
        (
            format!("{image} --end https://example.com/end.png"),
            "--end needs --video",
        ),
        ("a fox --motion high".to_owned(), "--motion needs --video"),
        (format!("{image} --bs 2"), "--bs needs --video"),
        (
            format!("{image} --video --loop --end https://example.com/e.png"),
            "--loop cannot be used with --end",
        ),
        (
            format!("{image} --video --motion medium"),
            "--motion medium: expected low or high",
        ),
    ] {
        let out = crate::support::bare_cmd()
            .arg("--config")
            .arg(&file)
            .arg("--data-dir")
            .arg(&data)
            .args(["generate", "--provider", "midjourney", &prompt])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{prompt:?}: {err}");
        assert!(err.contains(says), "{prompt:?}: {err:?} lacks {says:?}");
        assert!(!data.exists(), "{prompt:?} wrote the data directory");
    }
    let stats = sim.control().stats();
    assert_eq!(
        (stats.interactions, stats.jobs_started),
        (0, 0),
        "nothing was sent"
    );
    sim.shutdown().await;
}

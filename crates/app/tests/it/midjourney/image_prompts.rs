//! Image prompts against the simulator: stored pictures uploaded to the account's channel, sent
//! there in a message whose attachments' CDN URLs start the /imagine prompt; a resumed job puts
//! the URLs it saved first again without uploading twice; what cannot be honoured is refused
//! before anything is written or sent.

use std::sync::Arc;

use atelier::app::App;
use atelier::catalogue::GenerationFilter;
use atelier::domain::{
    Actor, GenerationId, GenerationRequest, GenerationStatus, ImageId, Role, UpscaleSelection,
};
use atelier_simulator::{Running, Timing};
use serde_json::Value;

use super::{app_for, run_all, simulator};

/// A small PNG whose pixels depend on `shade`.
fn png(shade: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::RgbImage::from_fn(48, 32, |x, y| {
        image::Rgb([shade, (x * 5) as u8, (y * 7) as u8])
    })
    .write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    bytes
}

async fn imported(app: &App, shades: &[u8]) -> Vec<ImageId> {
    app.import_pictures(
        Actor::Operator,
        shades.iter().map(|s| png(*s)).collect(),
        "image prompt",
    )
    .await
    .expect("imported")
}

async fn imagine(app: &Arc<App>, prompt: &str, images: &[ImageId]) -> GenerationId {
    let mut request = GenerationRequest::new(prompt);
    request.image_prompts = images.to_vec();
    request.upscale = UpscaleSelection::from_indices(&[1]).unwrap();
    app.submit(Actor::Operator, request)
        .await
        .expect("submitted")
        .id
}

/// The account's channel's messages, newest first.
fn channel(sim: &Running) -> Vec<Value> {
    let account = &sim.accounts()[0];
    sim.control().messages(&account.channel_id)
}

/// The grid message of a prompt: the bot's final message whose content starts with it.
fn grid_content(sim: &Running, starts: &str) -> String {
    channel(sim)
        .iter()
        .filter_map(|m| m["content"].as_str())
        .find(|c| c.starts_with(&format!("**{starts}")))
        .unwrap_or_else(|| panic!("no bot message starting with {starts:?}"))
        .to_owned()
}

#[tokio::test]
async fn two_image_prompts_are_uploaded_and_start_the_prompt() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let images = imported(&app, &[10, 200]).await;
    let before = sim.control().stats().uploads;
    let g = imagine(&app, "a fox in their colours", &images).await;
    run_all(&app).await;
    let done = app.catalogue().generation(g).await.unwrap();
    assert_eq!(done.status, GenerationStatus::Succeeded, "{:?}", done.error);
    assert_eq!(
        sim.control().stats().uploads - before,
        2,
        "each picture once"
    );
    // The message that gave the pictures their URLs: the account's, with both files.
    let sent = channel(&sim)
        .into_iter()
        .find(|m| m["attachments"].as_array().is_some_and(|a| a.len() == 2))
        .expect("a message carrying the two pictures");
    assert_eq!(sent["author"]["id"], sim.accounts()[0].user_id.as_str());
    let urls: Vec<String> = sent["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["url"].as_str().unwrap().to_owned())
        .collect();
    // Signed CDN URLs the simulator serves, the pictures' bytes in order.
    for (url, shade) in urls.iter().zip([10, 200]) {
        assert!(url.contains("?ex=") && url.contains("&hm="), "{url}");
        let served = reqwest::get(url).await.unwrap();
        assert_eq!(served.status(), 200, "{url}");
        assert_eq!(
            served.bytes().await.unwrap().as_ref(),
            png(shade).as_slice()
        );
    }
    // The bot was asked to imagine with both URLs first, in order.
    grid_content(
        &sim,
        &format!("{} {} a fox in their colours", urls[0], urls[1]),
    );
    // The job kept the URLs, and its parameters the pictures it started from.
    assert_eq!(done.provider_refs["image_prompts"], serde_json::json!(urls));
    let ids: Vec<String> = images.iter().map(ToString::to_string).collect();
    assert_eq!(done.parameters.extra["inputs"], serde_json::json!(ids));
    let made = app.generation(Actor::Operator, g).await.unwrap().images;
    let roles: Vec<Role> = made.iter().map(|i| i.role).collect();
    assert_eq!(roles, [Role::Grid, Role::Upscale(1)]);

    // A resumed job (its earlier attempt saved the URLs) puts them first without uploading.
    let again = imagine(&app, "a second fox", &images).await;
    app.catalogue()
        .set_provider_refs(again, &serde_json::json!({ "image_prompts": urls }), None)
        .await
        .unwrap();
    let uploads = sim.control().stats().uploads;
    run_all(&app).await;
    let done = app.catalogue().generation(again).await.unwrap();
    assert_eq!(done.status, GenerationStatus::Succeeded, "{:?}", done.error);
    assert_eq!(
        sim.control().stats().uploads,
        uploads,
        "nothing uploaded again"
    );
    grid_content(&sim, &format!("{} {} a second fox", urls[0], urls[1]));
    sim.shutdown().await;
}

#[tokio::test]
async fn video_from_a_stored_picture_stores_a_video_grid() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let start = imported(&app, &[90]).await;
    // No words: the picture and the video's parameters are the prompt.
    let g = imagine(&app, "--video --motion high --bs 1", &start).await;
    run_all(&app).await;
    let done = app.catalogue().generation(g).await.unwrap();
    assert_eq!(done.status, GenerationStatus::Succeeded, "{:?}", done.error);
    let made = app.generation(Actor::Operator, g).await.unwrap().images;
    assert!(made.iter().all(|i| i.clip.is_some()), "clips: {made:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn image_prompts_that_cannot_be_honoured_are_refused_before_anything_is_written() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let six = imported(&app, &[1, 2, 3, 4, 5, 6]).await;
    let before = app
        .catalogue()
        .generations(&GenerationFilter::default())
        .await
        .unwrap()
        .len();
    let stats = sim.control().stats();
    let refused = |request: GenerationRequest| {
        let app = Arc::clone(&app);
        async move {
            app.submit(Actor::Operator, request)
                .await
                .expect_err("refused")
                .to_string()
        }
    };
    let mut r = GenerationRequest::new("a fox");
    r.image_prompts = six.clone();
    assert!(
        refused(r).await.contains("6 image prompts: the limit is 5"),
        "six"
    );
    let mut r = GenerationRequest::new("a fox");
    r.image_prompts = vec![ImageId::new()];
    assert!(refused(r).await.contains("not found"), "unknown");
    let mut r = GenerationRequest::new("a fox");
    r.extra
        .insert("inputs".into(), serde_json::json!([six[0].to_string()]));
    assert!(refused(r).await.contains("set by the server"), "inputs");
    // --loop with --end is Midjourney's refusal, judged with the picture in front.
    let mut r = GenerationRequest::new("a fox --video --loop --end https://example.com/e.png");
    r.image_prompts = six[..1].to_vec();
    assert!(
        refused(r)
            .await
            .contains("--loop cannot be used with --end"),
        "loop"
    );
    let after = app
        .catalogue()
        .generations(&GenerationFilter::default())
        .await
        .unwrap()
        .len();
    assert_eq!(after, before, "no generation written");
    let now = sim.control().stats();
    assert_eq!(
        (now.uploads, now.interactions),
        (stats.uploads, stats.interactions),
        "nothing sent"
    );
    sim.shutdown().await;
}

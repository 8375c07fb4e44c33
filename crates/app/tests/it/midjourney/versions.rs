//! Midjourney's model versions end to end: each model's results offer their own buttons
//! (V8.1's upscales have no Upscale Subtle/Creative, V7's and niji 7's do), an action a result
//! does not offer is refused before anything is queued, the model is kept with the
//! generation, and a running job is canceled through its progress message's cancel button.

use std::time::Duration;

use atelier::domain::{Actor, GenerationRequest, GenerationStatus, Role, UpscaleSelection};
use atelier::jobs::{Stop, run_workers};
use atelier_simulator::Timing;

use super::{app_for, generate, simulator};

const ME: Actor = Actor::Operator;

/// The image of `role` in generation `id`.
async fn image(
    app: &atelier::app::App,
    id: atelier::domain::GenerationId,
    role: Role,
) -> atelier::domain::ImageId {
    app.generation(ME, id)
        .await
        .unwrap()
        .images
        .iter()
        .find(|i| i.role == role)
        .unwrap_or_else(|| panic!("no {role} image"))
        .id
}

#[tokio::test]
async fn each_model_offers_its_own_buttons_and_only_those_are_pressed() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let none = UpscaleSelection::none();

    // V8.1, the bot's default.
    let v81 = generate(&app, "a harbour at dawn").await;
    let shown = app.generation(ME, v81).await.unwrap();
    assert_eq!(app.generation_view(&shown).model.as_deref(), Some("v8.1"));
    let grid = image(&app, v81, Role::Grid).await;
    assert_eq!(
        app.actions(ME, grid).await.unwrap(),
        ["u1", "u2", "u3", "u4", "reroll", "v1", "v2", "v3", "v4"]
    );
    let up = image(&app, v81, Role::Upscale(2)).await;
    let offered = app.actions(ME, up).await.unwrap();
    assert_eq!(
        offered,
        [
            "vary-subtle",
            "vary-strong",
            "zoom-out-2x",
            "zoom-out-1.5x",
            "zoom-custom",
            "pan-left",
            "pan-right",
            "pan-up",
            "pan-down",
            "animate-high",
            "animate-low"
        ]
    );
    let sent = sim.control().stats().interactions;
    let refused = app
        .act(ME, up, "upscale-subtle", &none)
        .await
        .expect_err("V8.1 has no Upscale (Subtle)");
    assert!(
        refused
            .to_string()
            .contains("does not offer upscale-subtle; it offers vary-subtle"),
        "{refused}"
    );
    assert_eq!(sim.control().stats().interactions, sent, "nothing was sent");
    let pending = app.queue_load().await.unwrap();
    assert!(
        pending.iter().all(|slot| slot.pending == 0),
        "nothing was queued: {pending:?}"
    );
    // What it offers is pressed.
    let vary = app.act(ME, up, "vary-strong", &none).await.unwrap();
    super::run_all(&app).await;
    let vary = app.catalogue().generation(vary.id).await.unwrap();
    assert_eq!(vary.status, GenerationStatus::Succeeded, "{:?}", vary.error);

    // V7 and niji 7 (niji・journey's default) re-upscale with V7's buttons.
    for (prompt, bot, model) in [
        ("a harbour at dawn --v 7", None, "v7"),
        ("a harbour at dawn", Some("niji"), "niji 7"),
        ("a harbour at dawn --draft --v 7", None, "v7"),
    ] {
        let mut request = GenerationRequest::new(prompt);
        if let Some(bot) = bot {
            request.extra.insert("bot".into(), serde_json::json!(bot));
        }
        let g = app.submit(ME, request).await.unwrap();
        super::run_all(&app).await;
        let shown = app.generation(ME, g.id).await.unwrap();
        assert_eq!(
            app.generation_view(&shown).model.as_deref(),
            Some(model),
            "{prompt}"
        );
        let up = image(&app, g.id, Role::Upscale(1)).await;
        let offered = app.actions(ME, up).await.unwrap();
        assert_eq!(
            offered[..2],
            ["upscale-subtle", "upscale-creative"],
            "{prompt}"
        );
        let hd = app.act(ME, up, "upscale-creative", &none).await.unwrap();
        super::run_all(&app).await;
        let hd = app.generation(ME, hd.id).await.unwrap();
        assert_eq!(
            hd.generation.status,
            GenerationStatus::Succeeded,
            "{prompt}: {:?}",
            hd.generation.error
        );
        assert_eq!(hd.images[0].width, 128, "{prompt}: twice the quadrant");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_running_job_is_canceled_through_its_cancel_button() {
    let sim = simulator(|c| {
        c.timing = Timing {
            before_waiting: Duration::from_millis(5),
            step: Duration::from_millis(400),
            steps: vec![0, 10, 20, 30, 40, 50, 60, 70, 80, 90],
        };
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let g = app
        .submit(ME, GenerationRequest::new("a slow harbour"))
        .await
        .unwrap();
    let workers = tokio::spawn(run_workers(app.clone(), 1, Stop::UntilIdle));
    // Once the running job's cancel button is saved with the generation…
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let refs = app
            .catalogue()
            .generation(g.id)
            .await
            .unwrap()
            .provider_refs;
        if refs["running"].as_object().is_some_and(|r| !r.is_empty()) {
            let (job, running) = refs["running"].as_object().unwrap().iter().next().unwrap();
            assert_eq!(
                running["custom_id"],
                format!("MJ::CancelJob::ByJobid::{job}")
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no cancel button saved: {refs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …a cancel presses it: Midjourney stops the job, and no result ever comes.
    app.cancel(ME, g.id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), workers)
        .await
        .expect("workers stop")
        .unwrap()
        .unwrap();
    let canceled = app.catalogue().generation(g.id).await.unwrap();
    assert_eq!(canceled.status, GenerationStatus::Canceled);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.control().stats().jobs_canceled == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bot's job was not canceled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = sim.control().stats();
    assert_eq!((stats.jobs_canceled, stats.jobs_finished), (1, 0));
    assert!(app.generation(ME, g.id).await.unwrap().images.is_empty());
    sim.shutdown().await;
}

//! Prompts and forms against the simulator: /shorten's prompts kept with the generation, and
//! Custom Zoom, whose form the job fills with the caller's new prompt; the refusals before
//! anything is sent.

use atelier::app::ActOptions;
use atelier::domain::{Actor, GenerationRequest, GenerationStatus, Role, UpscaleSelection};
use atelier_simulator::Timing;

use super::{app_for, generate, run_all, simulator};

#[tokio::test]
async fn shorten_keeps_the_prompts_midjourney_proposes() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let prompt =
        "an extremely detailed portrait of a very old fisherman wearing a red hat --ar 2:3";
    let g = app
        .shorten(Actor::Operator, GenerationRequest::new(prompt), None)
        .await
        .unwrap();
    run_all(&app).await;
    let done = app.catalogue().generation(g.id).await.unwrap();
    assert_eq!(done.status, GenerationStatus::Succeeded, "{:?}", done.error);
    assert_eq!(done.kind.as_str(), "shorten");
    let view = app.generation_view(&app.generation(Actor::Operator, g.id).await.unwrap());
    assert_eq!(view.prompts.len(), 5, "{:?}", view.prompts);
    assert!(view.images.is_empty());
    // The bot's shortest keeps the important words; every proposal is shorter than the prompt.
    for p in &view.prompts {
        assert!(p.len() < prompt.len(), "{p}");
    }
    assert!(
        view.prompts.iter().any(|p| p.contains("fisherman")),
        "{:?}",
        view.prompts
    );

    // A blank prompt is refused before anything is sent.
    let before = sim.control().stats().interactions;
    let blank = app
        .shorten(Actor::Operator, GenerationRequest::new(" \u{200b} "), None)
        .await;
    assert!(blank.is_err());
    assert_eq!(sim.control().stats().interactions, before);
    sim.shutdown().await;
}

#[tokio::test]
async fn custom_zoom_fills_its_form_with_the_new_prompt() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let still = generate(&app, "a harbour at noon --v 7").await;
    let up3 = app
        .generation(Actor::Operator, still)
        .await
        .unwrap()
        .images
        .into_iter()
        .find(|i| i.role == Role::Upscale(3))
        .expect("upscale 3");
    assert!(
        app.actions(Actor::Operator, up3.id)
            .await
            .unwrap()
            .contains(&"zoom-custom".to_owned())
    );

    let before = sim.control().stats().interactions;
    let prompt = "a harbour at noon, gulls overhead --v 7 --zoom 1.6";
    let g = app
        .act_with(
            Actor::Operator,
            up3.id,
            "zoom-custom",
            ActOptions {
                prompt: Some(prompt),
                upscale: UpscaleSelection::from_indices(&[2]).unwrap(),
                ..ActOptions::default()
            },
        )
        .await
        .unwrap();
    run_all(&app).await;
    let done = app.catalogue().generation(g.id).await.unwrap();
    assert_eq!(done.status, GenerationStatus::Succeeded, "{:?}", done.error);
    assert_eq!(done.kind.as_str(), "zoom");
    assert_eq!(done.prompt, prompt);
    assert_eq!(done.parent_id, Some(still));
    let roles: Vec<Role> = app
        .generation(Actor::Operator, g.id)
        .await
        .unwrap()
        .images
        .iter()
        .map(|i| i.role)
        .collect();
    assert_eq!(roles, [Role::Grid, Role::Upscale(2)]);
    // The button, the form submitted with the prompt, then U2 on the zoomed grid.
    assert_eq!(sim.control().stats().interactions - before, 3);
    let channel = &sim.accounts()[0].channel_id;
    let shown = sim.control().messages(channel).into_iter().any(|m| {
        m["content"]
            .as_str()
            .is_some_and(|c| c.contains("gulls overhead") && c.contains("--zoom 1.6"))
    });
    assert!(shown, "the zoom ran on the new prompt");

    // Refused before anything is sent: no prompt, no --zoom, a zoom past 2, a prompt on pan.
    let before = sim.control().stats().interactions;
    for (action, prompt, words) in [
        ("zoom-custom", None, "needs a prompt"),
        ("zoom-custom", Some("a harbour --v 7"), "needs --zoom"),
        ("zoom-custom", Some("a harbour --zoom 3"), "zoom"),
        ("pan-left", Some("a harbour"), "takes no prompt"),
    ] {
        let refused = app
            .act_with(
                Actor::Operator,
                up3.id,
                action,
                ActOptions {
                    prompt,
                    ..ActOptions::default()
                },
            )
            .await
            .expect_err(action)
            .to_string();
        assert!(refused.contains(words), "{action} {prompt:?}: {refused}");
    }
    assert_eq!(sim.control().stats().interactions, before);
    sim.shutdown().await;
}

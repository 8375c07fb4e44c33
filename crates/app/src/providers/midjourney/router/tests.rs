//! Correlation order: nonce, interaction id, owned messages, reply reference, prompt.

use tokio::sync::mpsc;

use super::*;
use crate::providers::midjourney::reading::read;

fn message(v: &serde_json::Value) -> Reading {
    read(v, &[]).expect("fixture reads")
}

fn expect(kinds: Vec<Kind>, prompt: &str) -> Expect {
    Expect {
        kinds,
        index: None,
        source_message: None,
        prompt: Some(normalise(prompt)),
    }
}

fn final_grid(id: &str, prompt: &str, nonce: Option<&str>) -> Reading {
    let mut v = serde_json::json!({
        "id": id, "channel_id": "9",
        "author": {"id": "936929561302675456", "bot": true},
        "content": format!("**{prompt}** - <@42> (fast)"),
        "attachments": [{"id": "1", "url": "https://cdn.discordapp.com/a/b/x.png", "filename": "x_0c0ffee0-0000-4000-8000-000000000000.png"}],
        "components": [{"type": 1, "components": [{"type": 2, "custom_id": "MJ::JOB::upsample::1::0c0ffee0-0000-4000-8000-000000000000"}]}]
    });
    if let Some(n) = nonce {
        v["nonce"] = serde_json::json!(n);
    }
    message(&v)
}

#[test]
fn nonce_wins_over_prompt() {
    let mut router = Router::default();
    let (tx, _rx) = mpsc::unbounded_channel();
    let a = router.register("111", expect(vec![Kind::Imagine], "a fox"), tx.clone());
    let b = router.register("222", expect(vec![Kind::Imagine], "a fox"), tx);
    assert_eq!(
        router.owner(&final_grid("5", "a fox", Some("222"))),
        Some(b)
    );
    // Without a nonce, the oldest job with that prompt takes it.
    assert_eq!(router.owner(&final_grid("6", "a fox", None)), Some(a));
}

#[test]
fn interaction_ids_and_owned_messages_match() {
    let mut router = Router::default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let a = router.register("111", expect(vec![Kind::Imagine], "a fox"), tx.clone());
    router.interaction("111", "777");
    let progress = message(&serde_json::json!({
        "id": "50", "channel_id": "9",
        "author": {"id": "936929561302675456"},
        "interaction_metadata": {"id": "777", "type": 2, "user": {"id": "42"}},
        "content": "**something else** - <@42> (31%) (fast)"
    }));
    assert!(router.deliver(progress));
    assert!(matches!(rx.try_recv(), Ok(Notice::Message(_))));
    // A later update of message 50 without any key but its id still belongs to job a.
    let update = message(&serde_json::json!({
        "id": "50", "channel_id": "9",
        "author": {"id": "936929561302675456"},
        "content": "**other words** - <@42> (62%) (fast)"
    }));
    assert_eq!(router.owner(&update), Some(a));
}

#[test]
fn button_results_match_by_reference_and_index() {
    let mut router = Router::default();
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut e = expect(vec![Kind::Upscale], "a fox");
    e.index = Some(2);
    e.source_message = Some("100".into());
    let u2 = router.register("333", e, tx);
    let result = |index: u8| {
        message(&serde_json::json!({
            "id": "101", "channel_id": "9",
            "author": {"id": "936929561302675456"},
            "content": format!("**a fox** - Image #{index} <@42>"),
            "message_reference": {"message_id": "100"},
            "attachments": [{"id": "1", "url": "https://cdn.discordapp.com/a/b/y.png", "filename": "y.png"}]
        }))
    };
    assert_eq!(router.owner(&result(2)), Some(u2));
    assert_eq!(router.owner(&result(3)), None);
}

#[test]
fn unrelated_messages_belong_to_nobody() {
    let mut router = Router::default();
    let (tx, _rx) = mpsc::unbounded_channel();
    router.register("111", expect(vec![Kind::Imagine], "a fox"), tx);
    assert_eq!(router.owner(&final_grid("7", "a cat", None)), None);
}

#[test]
fn prompts_compare_without_links_parameters_or_case() {
    assert_eq!(
        normalise("<https://s.mj.run/abc> A  Fox --ar 16:9 --v 7"),
        normalise("https://example.com/x.png a fox --ar 16:9")
    );
    assert_ne!(normalise("a fox"), normalise("a cat"));
}

#[test]
fn weak_keys_never_take_another_jobs_messages() {
    let mut router = Router::default();
    let (tx, _rx) = mpsc::unbounded_channel();
    // A nonce made now; message ids made long before it are an earlier job's.
    let now_ms = 1_700_000_000_000u64;
    let nonce = snowflake_at(now_ms);
    let a = router.register(&nonce, expect(vec![Kind::Imagine], "a fox"), tx.clone());
    let old = snowflake_at(now_ms - 3_600_000);
    let new = snowflake_at(now_ms + 5_000);
    assert_eq!(
        router.owner(&final_grid(&old, "a fox", None)),
        None,
        "older than the job"
    );
    assert_eq!(router.owner(&final_grid(&new, "a fox", None)), Some(a));
    // Someone else's interaction (a nonce nobody waits for) is not ours, whatever its prompt.
    assert_eq!(router.owner(&final_grid(&new, "a fox", Some("999"))), None);
    // A finished job's messages stay its own.
    assert!(router.deliver(final_grid(&new, "a fox", None)));
    router.remove(a);
    let b = router.register(&nonce, expect(vec![Kind::Imagine], "a fox"), tx);
    assert_eq!(router.owner(&final_grid(&new, "a fox", None)), None);
    let newer = snowflake_at(now_ms + 9_000);
    assert_eq!(router.owner(&final_grid(&newer, "a fox", None)), Some(b));
}

#[test]
fn snowflakes_carry_their_time() {
    let ms = 1_750_000_000_123;
    assert_eq!(snowflake_ms(&snowflake_at(ms)), Some(ms));
    assert_eq!(snowflake_ms("not a number"), None);
}

#[test]
fn the_job_id_a_running_message_showed_finds_the_result() {
    let mut router = Router::default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let hash = "0c0ffee0-0000-4000-8000-000000000000";
    let a = router.register("111", expect(vec![Kind::Imagine], "a fox"), tx);
    // The progress message (ours by its interaction id) carries the cancel button.
    router.interaction("111", "777");
    let progress = message(&serde_json::json!({
        "id": "50", "channel_id": "9",
        "author": {"id": "936929561302675456"},
        "interaction_metadata": {"id": "777", "type": 2, "user": {"id": "42"}},
        "content": "**a fox** - <@42> (12%) (fast)",
        "components": [{"type": 1, "components": [{"type": 2, "custom_id": format!("MJ::CancelJob::ByJobid::{hash}")}]}]
    }));
    assert!(router.deliver(progress));
    assert!(matches!(rx.try_recv(), Ok(Notice::Message(_))));
    // The final: a new message, no nonce, no interaction, the prompt rewritten beyond
    // recognition; its buttons name the same job.
    assert_eq!(
        router.owner(&final_grid(
            "60",
            "<https://s.mj.run/x> a fox, rewritten",
            None
        )),
        Some(a)
    );
    // Another job's final is not ours.
    let other = message(&serde_json::json!({
        "id": "61", "channel_id": "9",
        "author": {"id": "936929561302675456"},
        "content": "**a cat** - <@42> (fast)",
        "attachments": [{"id": "1", "url": "https://cdn.discordapp.com/a/b/x.png", "filename": "x.png"}],
        "components": [{"type": 1, "components": [{"type": 2, "custom_id": "MJ::JOB::upsample::1::1c0ffee0-0000-4000-8000-000000000000"}]}]
    }));
    assert_eq!(router.owner(&other), None);
}

//! Error replies as people have reported them, without a title (an embed with a description
//! only): the simulator sends them for prompts with its trigger words, and each must end the
//! job with its typed error at once (never a silent timeout), taking the account out of the
//! pool when the error is about the account.

use atelier::domain::{ErrorCode, GenerationStatus};
use atelier_simulator::Timing;

use super::{app_for, generate, simulator};

#[tokio::test]
async fn an_untitled_ai_moderator_refusal_fails_the_job_as_banned_prompt() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let id = generate(&app, "a harbour at dawn aimoderator").await;
    let g = app.catalogue().generation(id).await.unwrap();
    assert_eq!(g.status, GenerationStatus::Failed);
    assert_eq!(
        g.error_code(),
        Some(ErrorCode::BannedPrompt),
        "{:?}",
        g.error
    );
    let message = &g.error.as_ref().unwrap().message;
    assert!(message.contains("Our AI moderator thinks"), "{message}");
    // Refused once, not retried, and the account goes on working.
    assert_eq!(sim.control().stats().interactions, 1);
    let accounts = app.accounts(None).await.unwrap();
    assert_ne!(accounts[0].status.health, "disabled", "{:?}", accounts[0]);
    sim.shutdown().await;
}

#[tokio::test]
async fn untitled_account_errors_take_the_account_out_with_their_reason() {
    for (word, code, words) in [
        ("pendingmod", "Moderation", "pending moderation message"),
        (
            "blockedaccount",
            "Blocked",
            "blocked from accessing Midjourney",
        ),
        ("verifyhuman", "Captcha", "verify you"),
    ] {
        let sim = simulator(|c| c.timing = Timing::instant()).await;
        let dir = tempfile::tempdir().unwrap();
        let app = app_for(&sim, dir.path(), 2, |c| c.jobs.max_attempts = 3).await;
        // Every account gets the same reply: each is taken out in turn, and the job ends
        // with the reason, not with a timeout.
        let id = generate(&app, &format!("a harbour {word}")).await;
        let g = app.catalogue().generation(id).await.unwrap();
        assert_eq!(g.status, GenerationStatus::Failed, "{word}");
        assert_eq!(
            g.error_code(),
            Some(ErrorCode::ProviderUnavailable),
            "{word}: {:?}",
            g.error
        );
        // One interaction per account: no wait for a deadline, no send after the refusal.
        assert_eq!(sim.control().stats().interactions, 2, "{word}");
        for a in app.accounts(None).await.unwrap() {
            assert_eq!(a.status.health, "disabled", "{word}: {a:?}");
            let reason = a.status.reason.unwrap_or_default();
            assert!(
                reason.contains(code) && reason.contains(words),
                "{word}: {reason}"
            );
        }
        sim.shutdown().await;
    }
}

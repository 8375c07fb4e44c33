//! Waiting for a generation's end within a bound, telling the client how it goes: each event
//! that moves it forward is a progress notification (0–100) when the call asked for them
//! (a `progressToken`). The generation never depends on the wait: a client that gives up,
//! cancels the call or disconnects leaves it running, and `wait_for_generation` picks it up.

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;

use super::server::Atelier;
use crate::domain::{Actor, Event, GenerationId};
use crate::error::AppError;

/// What one progress notification says: the phase, else the status.
fn message(e: &Event) -> String {
    let what = e.phase.map_or(e.status.as_str(), |p| p.as_str());
    match &e.error {
        Some(f) => format!("{what}: {}", f.message),
        None => what.to_owned(),
    }
}

impl Atelier {
    /// Follows generation `id` until its last event, `wait` passes or the call is canceled.
    pub(super) async fn wait_for_end(
        &self,
        actor: Actor,
        id: GenerationId,
        wait: Duration,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(), AppError> {
        if wait.is_zero() {
            return Ok(());
        }
        let token = ctx.meta.get_progress_token();
        let mut following = self.app.follow(actor, id, 0).await?;
        let follow = async {
            // Progress must go up from one notification to the next.
            let mut sent: Option<f64> = None;
            while let Some(e) = following.next().await {
                let e = e?;
                let Some(token) = &token else { continue };
                if sent.is_some_and(|s| e.progress <= s) {
                    continue;
                }
                sent = Some(e.progress);
                let note = ProgressNotificationParam::new(token.clone(), e.progress)
                    .with_total(100.0)
                    .with_message(message(&e));
                if let Err(err) = ctx.peer.notify_progress(note).await {
                    // The client went away: the generation goes on without it.
                    tracing::debug!(error = %err, "a progress notification was not delivered");
                }
            }
            Ok::<(), AppError>(())
        };
        tokio::select! {
            followed = tokio::time::timeout(wait, follow) => {
                if let Ok(followed) = followed {
                    followed?;
                }
            }
            () = ctx.ct.cancelled() => {}
        }
        Ok(())
    }
}

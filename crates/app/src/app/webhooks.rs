//! Webhooks' use cases: a generation created with a webhook, a user's signing secret (read,
//! rotated), a generation's delivery log; and the keys that sign a delivery. The delivering
//! itself is `crate::webhooks`, run by the node (`App::run_node`).

use time::OffsetDateTime;

use super::App;
use crate::api::{WebhookRequest, WebhookSecretView};
use crate::domain::{
    Actor, Delivery, EventFilter, Generation, GenerationId, GenerationRequest, Subscription, UserId,
};
use crate::error::AppError;
use crate::webhooks::{WebhookSettings, sign, target};

/// A webhook whose URL was checked and whose signing secret exists: where a generation's
/// deliveries go, and which.
pub struct NotifyHook(pub(super) (String, EventFilter));

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl App {
    /// How this process delivers webhooks.
    pub fn webhook_settings(&self) -> &WebhookSettings {
        &self.webhook_settings
    }

    /// [`App::submit`] with a webhook: its URL and filter are checked (a bad one is refused
    /// and nothing is written), and it is written before the generation, so the generation's
    /// first event already finds it.
    pub async fn submit_with_webhook(
        &self,
        actor: Actor,
        request: GenerationRequest,
        webhook: Option<WebhookRequest>,
    ) -> Result<Generation, AppError> {
        let Some(webhook) = webhook else {
            return self.submit(actor, request).await;
        };
        let filter = match &webhook.events {
            Some(names) => {
                EventFilter::parse(names).map_err(|e| AppError::Invalid(e.to_string()))?
            }
            None => EventFilter::default(),
        };
        let hook = self.checked_hook(actor, &webhook.url, filter).await?;
        self.submit_hooked(actor, request, Some(hook.0)).await
    }

    /// A midjourney-proxy `notifyHook`: a webhook checked like any other (the same refusal of
    /// private targets), whose deliveries carry the task object on every change.
    pub async fn notify_hook(&self, actor: Actor, url: &str) -> Result<NotifyHook, AppError> {
        self.checked_hook(actor, url, EventFilter::mj_proxy_task())
            .await
    }

    /// [`App::submit`] with a notify hook already checked.
    pub async fn submit_notified(
        &self,
        actor: Actor,
        request: GenerationRequest,
        hook: Option<NotifyHook>,
    ) -> Result<Generation, AppError> {
        self.submit_hooked(actor, request, hook.map(|h| h.0)).await
    }

    /// The URL checked, and the secret that will sign made, before anything is queued.
    async fn checked_hook(
        &self,
        actor: Actor,
        url: &str,
        filter: EventFilter,
    ) -> Result<NotifyHook, AppError> {
        let s = &self.webhook_settings;
        let url = target::check(url, s.max_url_chars, s.allow_private_targets)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        // The secret that will sign exists before anything is queued.
        match actor.owner() {
            Some(owner) => {
                self.ensure_secret(owner).await?;
            }
            None if s.operator_secret.is_none() => {
                return Err(AppError::Invalid(
                    "the operator's generations are signed with [webhooks] secret, which is not set"
                        .into(),
                ));
            }
            None => {}
        }
        Ok(NotifyHook((url.to_string(), filter)))
    }

    /// The user's secret, made on first use.
    async fn ensure_secret(
        &self,
        owner: UserId,
    ) -> Result<crate::catalogue::SecretRecord, AppError> {
        if let Some(s) = self.webhooks.webhook_secret(owner).await? {
            return Ok(s);
        }
        let candidate =
            sign::new_secret().map_err(|e| AppError::Internal(format!("no random source: {e}")))?;
        Ok(self
            .webhooks
            .ensure_webhook_secret(owner, &candidate)
            .await?)
    }

    /// The webhook written just before generation `id` is.
    pub(crate) async fn subscribe(
        &self,
        actor: Actor,
        id: GenerationId,
        hook: (String, EventFilter),
    ) -> Result<(), AppError> {
        let (url, filter) = hook;
        Ok(self
            .webhooks
            .subscribe(&Subscription {
                generation_id: id,
                owner: actor.owner(),
                url,
                filter,
            })
            .await?)
    }

    fn secret_view(&self, s: &crate::catalogue::SecretRecord) -> WebhookSecretView {
        let overlap = time::Duration::try_from(self.webhook_settings.rotation_overlap)
            .unwrap_or(time::Duration::ZERO);
        WebhookSecretView {
            secret: s.current.clone(),
            rotated_at: s.rotated_at.map(rfc3339),
            previous_valid_until: s
                .rotated_at
                .filter(|_| s.previous.is_some())
                .map(|t| rfc3339(t + overlap)),
        }
    }

    /// The secret that signs `actor`'s deliveries (made on first use). The operator's is the
    /// configuration's and is not shown.
    pub async fn webhook_secret(&self, actor: Actor) -> Result<WebhookSecretView, AppError> {
        let owner = actor.owner().ok_or_else(operator_secret)?;
        let s = self.ensure_secret(owner).await?;
        Ok(self.secret_view(&s))
    }

    /// A new secret for `actor`; deliveries carry a signature by the old one too for
    /// `[webhooks] rotation_overlap_secs`.
    pub async fn rotate_webhook_secret(&self, actor: Actor) -> Result<WebhookSecretView, AppError> {
        let owner = actor.owner().ok_or_else(operator_secret)?;
        let new =
            sign::new_secret().map_err(|e| AppError::Internal(format!("no random source: {e}")))?;
        let s = self.webhooks.rotate_webhook_secret(owner, &new).await?;
        Ok(self.secret_view(&s))
    }

    /// The deliveries of a generation `actor` may see, with their attempts.
    pub async fn webhook_deliveries(
        &self,
        actor: Actor,
        id: GenerationId,
    ) -> Result<Vec<Delivery>, AppError> {
        self.visible_generation(actor, id).await?;
        Ok(self.webhooks.deliveries(id).await?)
    }

    /// The keys that sign a delivery of `owner`'s: the current secret, and the previous one
    /// within the overlap after a rotation.
    pub(crate) async fn signing_keys(
        &self,
        owner: Option<UserId>,
    ) -> Result<Vec<Vec<u8>>, AppError> {
        let bad = |e: sign::BadSecret| AppError::Invalid(e.to_string());
        let Some(owner) = owner else {
            let secret = self
                .webhook_settings
                .operator_secret
                .as_ref()
                .ok_or_else(|| AppError::Invalid("[webhooks] secret is not set".into()))?;
            return Ok(vec![sign::key_of(secret.expose()).map_err(bad)?]);
        };
        let s = self.ensure_secret(owner).await?;
        let mut keys = vec![sign::key_of(&s.current).map_err(bad)?];
        let overlap = time::Duration::try_from(self.webhook_settings.rotation_overlap)
            .unwrap_or(time::Duration::ZERO);
        if let (Some(previous), Some(at)) = (&s.previous, s.rotated_at)
            && OffsetDateTime::now_utc() < at + overlap
        {
            keys.push(sign::key_of(previous).map_err(bad)?);
        }
        Ok(keys)
    }
}

fn operator_secret() -> AppError {
    AppError::Invalid(
        "the operator's webhook secret is [webhooks] secret in the configuration".into(),
    )
}

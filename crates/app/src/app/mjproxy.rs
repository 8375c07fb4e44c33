//! What the midjourney-proxy drop-in routes need of the engine beyond the other use cases: a
//! generation as the proxy's task object (with the buttons its provider plays and links to its
//! pictures), the picture a signed link opens, and pictures sent inline (base64) stored as the
//! caller's imports so /blend and /describe can take them.

use std::time::Duration;

use super::{App, GenerationWithImages};
use crate::api::mjproxy::{self as mj, Links, ModalTask, Task};
use crate::domain::{ActionName, Actor, Image};
use crate::error::AppError;

/// `[server.mj_proxy]` as the engine keeps it: how links to pictures are signed and addressed.
pub(crate) fn links(config: &crate::config::MjProxyConfig) -> Result<Links, AppError> {
    let key = if let Some(spec) = config.link_secret.as_ref().map(|s| s.expose().trim()) {
        let value = match spec.strip_prefix("env:") {
            Some(name) => std::env::var(name).map_err(|_| {
                AppError::Invalid(format!(
                    "[server.mj_proxy] link_secret names the environment variable {name:?}, which is not set"
                ))
            })?,
            None => spec.to_owned(),
        };
        if value.trim().is_empty() {
            return Err(AppError::Invalid(
                "[server.mj_proxy] link_secret is empty: leave it out for a key of this process's own"
                    .into(),
            ));
        }
        value.into_bytes()
    } else {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| AppError::Internal(format!("no random source: {e}")))?;
        key
    };
    if !(60..=30 * 86_400).contains(&config.link_ttl_secs) {
        return Err(AppError::Invalid(format!(
            "[server.mj_proxy] link_ttl_secs must be from 60 to 2592000 (30 days), not {}",
            config.link_ttl_secs
        )));
    }
    let public_url = match config.public_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            Some(u.trim_end_matches('/').to_owned())
        }
        Some(u) => {
            return Err(AppError::Invalid(format!(
                "[server.mj_proxy] public_url must be an http:// or https:// address, not {u:?}"
            )));
        }
    };
    Ok(Links::new(
        key,
        Duration::from_secs(config.link_ttl_secs),
        public_url,
    ))
}

impl App {
    /// The actions `g`'s pictures offer (its buttons): a Midjourney result's own, which differ
    /// from one model to the next, else what its provider plays on such a picture.
    fn offered_names(&self, g: &GenerationWithImages) -> Vec<ActionName> {
        let mut names: Vec<ActionName> = Vec::new();
        for image in &g.images {
            for action in self.offered(&g.generation, image.role) {
                if !names.contains(&action.name()) {
                    names.push(action.name());
                }
            }
        }
        names
    }

    /// Where links begin when neither `[server.mj_proxy] public_url` nor a request tells:
    /// set once by `atelier serve` to the address it listens on.
    pub fn set_mj_origin(&self, origin: String) {
        let _ = self.mj_origin.set(origin);
    }

    /// The address `atelier serve` listens on, as `http://host:port`, for links when a request
    /// tells none (no `Host`); the default address before `serve` set it.
    pub fn served_origin(&self) -> String {
        self.mj_origin
            .get()
            .map_or_else(|| "http://127.0.0.1:8787".to_owned(), String::clone)
    }

    /// `g` as the proxy's task object. `origin` is the address the client reached the server
    /// by (links begin with it unless `public_url` is set); a picture with a public URL in the
    /// store is given by it instead of a link.
    pub fn mj_task(&self, g: &GenerationWithImages, origin: Option<&str>) -> Task {
        let origin = origin
            .or(self.mj_origin.get().map(String::as_str))
            .unwrap_or("http://127.0.0.1:8787");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let plays = self.offered_names(g);
        mj::task(g, &plays, |image: &Image| {
            image
                .public_url
                .clone()
                .unwrap_or_else(|| self.mj_links.url(origin, image.id, now))
        })
    }

    /// A button that opens a form (Custom Zoom, `action`) pressed on `image`: the task waiting
    /// for `POST /mj/submit/modal`, once the action passes every check it would pass to run.
    /// Nothing is written.
    pub async fn mj_open_form(
        &self,
        actor: Actor,
        image: crate::domain::ImageId,
        action: &str,
    ) -> Result<Task, AppError> {
        let (_, parent, action) = self.acting_on(actor, image, action).await?;
        let modal = ModalTask::new(image, &action.to_string()).ok_or_else(|| {
            AppError::Invalid(format!(
                "{action} opens no form: press it with /mj/submit/action"
            ))
        })?;
        Ok(modal.task(&parent.prompt))
    }

    /// A task waiting for its form, as the caller fetches it: only for a picture they may see
    /// and that offers the action (an id no button could have made names no task).
    pub async fn mj_modal_task(&self, actor: Actor, modal: &ModalTask) -> Result<Task, AppError> {
        let (_, parent, _) = self
            .acting_on(actor, modal.image, modal.action)
            .await
            .map_err(|e| match e {
                AppError::Invalid(why) => {
                    AppError::NotFound(format!("task {}: no form waits there ({why})", modal.id()))
                }
                other => other,
            })?;
        Ok(modal.task(&parent.prompt))
    }

    /// The picture a signed link opens, whoever asks: the link is the permission.
    pub async fn image_by_link(&self, link: &str) -> Result<(Image, Vec<u8>), AppError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let id = self
            .mj_links
            .open(link, now)
            .map_err(|e| AppError::NotFound(e.to_string()))?;
        match self.image_bytes(Actor::Operator, id, false).await {
            // The link is good, its picture is not there any more.
            Err(AppError::NotFound(_)) => Err(AppError::NotFound(format!(
                "the picture this link opened (image {id}) has been deleted, so the link opens \
                 nothing now; fetch its task again for the pictures it still has"
            ))),
            other => other,
        }
    }
}

impl App {
    /// Refuses, before anything is written, a provider (asked for, else the default) that
    /// does not play `kind` (/blend, /describe).
    pub fn serves(
        &self,
        provider: Option<&str>,
        kind: crate::domain::GenerationKind,
    ) -> Result<(), AppError> {
        self.providers
            .serving(provider, kind, None)
            .map(|_| ())
            .map_err(AppError::Invalid)
    }
}

//! `POST /mj/submit/modal`: the form a button opened (Custom Zoom, answered with code 21 and a
//! task waiting for it) submitted with the caller's prompt; the action then runs as a new task.

use axum::extract::State;
use serde::Deserialize;

use super::super::auth::Caller;
use super::super::input::Body;
use super::super::{Problem, Shared};
use super::envelope::{Envelope, MjError};
use super::{caller, hook, required, state, submitted};
use crate::api::mjproxy::ModalTask;
use crate::app::ActOptions;

/// `POST /mj/submit/modal`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModalRequest {
    /// The task code 21 answered with (its status `MODAL`).
    task_id: Option<String>,
    /// The form's value: Custom Zoom's new prompt with `--zoom 1` to `2`. Empty: the value the
    /// form opened with (the task's `finalPrompt`).
    prompt: Option<String>,
    /// Vary (Region)'s mask: refused, no button of this server opens that editor.
    mask_base64: Option<String>,
    notify_hook: Option<String>,
    /// The caller's own string (at most 255 characters), kept with the new task.
    state: Option<String>,
}

#[utoipa::path(
    post,
    path = "/mj/submit/modal",
    tag = "midjourney-proxy",
    operation_id = "mj_submit_modal",
    summary = "midjourney-proxy: submit the form a button opened",
    description = "`taskId` is the task a Custom Zoom button answered with (code 21, status `MODAL`); `prompt` the new prompt with `--zoom 1` to `2` (empty: the form's value as it opened, `--zoom 2`). The zoom runs as a new task, whose id is `result`. `maskBase64` (Vary (Region)) is refused.",
    request_body = ModalRequest,
    responses(
        (status = 200, description = "Submitted (code 1 or 22); `result` is the new task", body = Envelope),
        (status = 400, description = "No taskId, a task that waits for no form, a mask, or a prompt the model refuses (code 4)", body = Envelope),
        (status = 404, description = "No such task of the caller's (code 3)", body = Envelope),
    )
)]
pub async fn modal(
    State(s): State<Shared>,
    c: Result<Caller, Problem>,
    body: Result<Body<ModalRequest>, Problem>,
) -> Result<axum::Json<Envelope>, MjError> {
    let actor = caller(c)?;
    let Body(body) = body?;
    let task = required(body.task_id, "taskId")?;
    if body
        .mask_base64
        .as_deref()
        .is_some_and(|m| !m.trim().is_empty())
    {
        return Err(MjError::invalid(
            "maskBase64 is Vary (Region)'s, which this server does not drive: no task of it waits for a mask",
        ));
    }
    let reference = state(body.state.as_deref())?;
    let Some(form) = ModalTask::parse(&task) else {
        // A task of the caller's that waits for nothing, or no task at all.
        super::tasks::visible(&s, actor, &task).await?;
        return Err(MjError::invalid(format!(
            "task {task} waits for no form: /mj/submit/modal takes the task a Custom Zoom button answered with (code 21)"
        )));
    };
    let waiting = s
        .app
        .mj_modal_task(actor, &form)
        .await
        .map_err(|e| match e {
            crate::error::AppError::NotFound(_) => MjError::no_task(&task),
            e => e.into(),
        })?;
    let prompt = match body.prompt.as_deref().map(str::trim) {
        Some(p) if !p.is_empty() => p.to_owned(),
        _ => waiting.prompt,
    };
    // The action's checks and the prompt's run before the hook's secret is made.
    s.app
        .check_action(actor, form.image, form.action, Some(&prompt))
        .await?;
    let hook = hook(&s, actor, body.notify_hook.as_deref()).await?;
    let made = s
        .app
        .act_with(
            actor,
            form.image,
            form.action,
            ActOptions {
                prompt: Some(&prompt),
                hook,
                reference,
                ..ActOptions::default()
            },
        )
        .await?;
    Ok(submitted(&s, &made).await)
}

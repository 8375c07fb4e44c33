//! Interactions: slash commands (type 2), message components (type 3) and modal
//! submits (type 5), posted to `POST /interactions`.
//!
//! Discord answers 204 and delivers the outcome over the gateway, correlated by the
//! nonce, so these calls only report whether the interaction was accepted. Every call is
//! paced (see `ratelimit`).

use serde_json::{Value, json};

use super::{Call, CommandScope, RestClient, RestError};

/// Where an interaction happens and which bot it targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InteractionContext {
    /// The bot's application id.
    pub application_id: String,
    /// `None` in a DM channel.
    pub guild_id: Option<String>,
    pub channel_id: String,
    /// The live gateway session id (from READY).
    pub session_id: String,
}

impl InteractionContext {
    /// The command index scope matching this context.
    pub fn command_scope(&self) -> CommandScope {
        match &self.guild_id {
            Some(guild) => CommandScope::Guild(guild.clone()),
            None => CommandScope::Channel(self.channel_id.clone()),
        }
    }

    fn envelope(&self, kind: u8, nonce: &str, data: &Value) -> Value {
        let mut body = json!({
            "type": kind,
            "application_id": self.application_id,
            "channel_id": self.channel_id,
            "session_id": self.session_id,
            "nonce": nonce,
            "data": data,
        });
        // The web client omits the field in DMs rather than sending null.
        if let Some(guild_id) = &self.guild_id {
            body["guild_id"] = json!(guild_id);
        }
        body
    }
}

/// A slash command invocation; id and version come from the command index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlashCommand {
    pub name: String,
    /// Option objects as Discord expects them, e.g.
    /// `{"type": 3, "name": "prompt", "value": "..."}`.
    pub options: Vec<Value>,
    /// Uploaded attachments referenced by attachment options (see
    /// [`super::UploadedAttachment::to_json`]).
    pub attachments: Vec<Value>,
}

/// A click on a button (`component_type` 2) or a select menu choice (3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    /// The message that carries the component.
    pub message_id: String,
    /// That message's `flags` (64 for ephemeral messages); Discord checks it.
    pub message_flags: u64,
    pub custom_id: String,
    pub component_type: u8,
    /// Chosen values, for select menus only.
    pub values: Vec<String>,
}

impl Component {
    pub fn button(message_id: &str, message_flags: u64, custom_id: &str) -> Self {
        Self {
            message_id: message_id.to_owned(),
            message_flags,
            custom_id: custom_id.to_owned(),
            component_type: 2,
            values: Vec::new(),
        }
    }
}

/// A modal form submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModalSubmit {
    /// The modal's id, from the `INTERACTION_MODAL_CREATE` dispatch.
    pub id: String,
    pub custom_id: String,
    /// `(text input custom_id, value)` pairs, one action row each.
    pub fields: Vec<(String, String)>,
}

impl RestClient {
    /// Invokes a slash command. If Discord refuses it as outdated, the command index is
    /// refreshed and the call retried once with the new id/version (same nonce: the
    /// refused call did nothing).
    pub async fn slash_command(
        &self,
        ctx: &InteractionContext,
        command: &SlashCommand,
        nonce: &str,
    ) -> Result<(), RestError> {
        let scope = ctx.command_scope();
        let info = self
            .command(&scope, &ctx.application_id, &command.name)
            .await?;
        let body = |info: &super::CommandInfo| {
            ctx.envelope(
                2,
                nonce,
                &json!({
                    "version": info.version,
                    "id": info.id,
                    "name": info.name,
                    "type": 1,
                    "options": command.options,
                    "attachments": command.attachments,
                }),
            )
        };
        match self.post_interaction(body(&info)).await {
            Err(error) if error.is_outdated_command() => {
                tracing::info!(name = %command.name, "rest: command outdated; refreshing the index");
                self.refresh_commands(&scope, &ctx.application_id).await?;
                let fresh = self
                    .command(&scope, &ctx.application_id, &command.name)
                    .await?;
                if fresh.id == info.id && fresh.version == info.version {
                    return Err(error);
                }
                self.post_interaction(body(&fresh)).await
            }
            other => other,
        }
    }

    /// Clicks a button or picks select-menu values on a message.
    pub async fn press_component(
        &self,
        ctx: &InteractionContext,
        component: &Component,
        nonce: &str,
    ) -> Result<(), RestError> {
        let mut data = json!({
            "component_type": component.component_type,
            "custom_id": component.custom_id,
        });
        if component.component_type != 2 {
            data["values"] = json!(component.values);
        }
        let mut body = ctx.envelope(3, nonce, &data);
        body["message_id"] = json!(component.message_id);
        body["message_flags"] = json!(component.message_flags);
        self.post_interaction(body).await
    }

    /// Submits a modal form.
    pub async fn submit_modal(
        &self,
        ctx: &InteractionContext,
        modal: &ModalSubmit,
        nonce: &str,
    ) -> Result<(), RestError> {
        let rows: Vec<Value> = modal
            .fields
            .iter()
            .map(|(custom_id, value)| {
                json!({"type": 1, "components": [{"type": 4, "custom_id": custom_id, "value": value}]})
            })
            .collect();
        let data = json!({"id": modal.id, "custom_id": modal.custom_id, "components": rows});
        self.post_interaction(ctx.envelope(5, nonce, &data)).await
    }

    async fn post_interaction(&self, body: Value) -> Result<(), RestError> {
        let mut call = Call::post("interactions".to_owned(), body);
        call.paced = true;
        self.execute(call).await.map(drop)
    }
}

//! Channel messages: read, returned raw like gateway dispatches (to catch up after downtime or
//! to re-read a message whose update was missed), and sent by the user with uploaded files
//! (how a local picture gets a CDN URL, e.g. for an image prompt).

use serde_json::{Value, json};

use super::{Call, RestClient, RestError, UploadedAttachment, snowflake};

/// Paging for `GET channels/{id}/messages`; Discord accepts one of before/after/around.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageQuery {
    /// 1-100 (Discord's default is 50).
    pub limit: Option<u8>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub around: Option<String>,
}

impl RestClient {
    /// `POST channels/{id}/messages`: a message from the account carrying `content` and the
    /// files uploaded with [`RestClient::upload_attachments`], as the web client sends it.
    /// Returns the message as Discord answers it, whose `attachments` hold each file's CDN
    /// `url` in the order given.
    pub async fn send_message(
        &self,
        channel_id: &str,
        content: &str,
        files: &[UploadedAttachment],
    ) -> Result<Value, RestError> {
        let channel = snowflake(channel_id)?;
        let attachments: Vec<Value> = files.iter().map(UploadedAttachment::to_json).collect();
        let body = json!({
            "content": content,
            "channel_id": channel,
            "type": 0,
            "sticker_ids": [],
            "attachments": attachments,
            "nonce": crate::new_nonce(),
            "tts": false,
            "flags": 0,
        });
        let message: Value = self
            .execute_json(Call::post(format!("channels/{channel}/messages"), body))
            .await?;
        let sent = message
            .get("attachments")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if sent != files.len() {
            return Err(RestError::Decode(format!(
                "the message carries {sent} attachments for {} files",
                files.len()
            )));
        }
        Ok(message)
    }

    /// Messages of a channel, newest first.
    pub async fn messages(
        &self,
        channel_id: &str,
        query: &MessageQuery,
    ) -> Result<Vec<Value>, RestError> {
        let mut call = Call::get(format!("channels/{}/messages", snowflake(channel_id)?));
        if let Some(limit) = query.limit {
            call.query.push(("limit", limit.clamp(1, 100).to_string()));
        }
        for (name, value) in [
            ("before", &query.before),
            ("after", &query.after),
            ("around", &query.around),
        ] {
            if let Some(value) = value {
                call.query.push((name, snowflake(value)?.to_owned()));
            }
        }
        self.execute_json(call).await
    }

    /// One message. User accounts may be refused the single-message endpoint ("only bots
    /// can use this endpoint", code 20002); then the message is read the way the web
    /// client does, with `around` and `limit=1`.
    pub async fn message(&self, channel_id: &str, message_id: &str) -> Result<Value, RestError> {
        let path = format!(
            "channels/{}/messages/{}",
            snowflake(channel_id)?,
            snowflake(message_id)?
        );
        match self.execute_json(Call::get(path)).await {
            Err(RestError::Http {
                status: 403,
                code: Some(20002),
                ..
            }) => {
                let query = MessageQuery {
                    limit: Some(1),
                    around: Some(message_id.to_owned()),
                    ..MessageQuery::default()
                };
                self.messages(channel_id, &query)
                    .await?
                    .into_iter()
                    .find(|m| m["id"] == message_id)
                    .ok_or_else(|| RestError::Http {
                        status: 404,
                        code: Some(10008),
                        message: "Unknown Message".into(),
                        errors: None,
                    })
            }
            other => other,
        }
    }
}

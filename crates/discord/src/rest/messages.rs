//! Reading channel messages, returned raw like gateway dispatches.
//!
//! Used to catch up after downtime or to re-read a message whose update was missed.

use serde_json::Value;

use super::{Call, RestClient, RestError, snowflake};

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

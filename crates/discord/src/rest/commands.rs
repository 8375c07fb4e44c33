//! The application command index: the current id and version of each slash command.
//!
//! Interactions must name a command by id *and* version, and bots re-register their
//! commands now and then, which makes a cached version stale ("This command is
//! outdated"). So the index is fetched on first use, cached per scope and application,
//! and refreshed when Discord refuses a command as outdated.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{Call, RestClient, RestError, snowflake};

/// Where the index is read: a guild, or a DM channel when there is no guild.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CommandScope {
    Guild(String),
    Channel(String),
}

impl CommandScope {
    fn path(&self) -> Result<String, RestError> {
        Ok(match self {
            Self::Guild(id) => format!("guilds/{}/application-command-index", snowflake(id)?),
            Self::Channel(id) => {
                format!("channels/{}/application-command-index", snowflake(id)?)
            }
        })
    }
}

/// One slash command as the index lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandInfo {
    pub id: String,
    pub version: String,
    pub name: String,
    pub application_id: String,
    /// The full command object, for callers that want to embed it.
    pub raw: Value,
}

type Key = (CommandScope, String);

/// Cached indexes keyed by scope and application id. The lock is held while fetching so
/// concurrent misses cause one request, not many.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    entries: Mutex<HashMap<Key, Arc<HashMap<String, CommandInfo>>>>,
}

#[derive(Deserialize)]
struct IndexResponse {
    #[serde(default)]
    application_commands: Vec<Value>,
}

#[derive(Deserialize)]
struct RawCommand {
    id: String,
    application_id: String,
    version: String,
    name: String,
    #[serde(default = "chat_input", rename = "type")]
    kind: u64,
}

fn chat_input() -> u64 {
    1
}

impl RestClient {
    /// The current id and version of `name` for `application_id`, from the cache or,
    /// on a miss, a fresh index.
    pub async fn command(
        &self,
        scope: &CommandScope,
        application_id: &str,
        name: &str,
    ) -> Result<CommandInfo, RestError> {
        let key = (scope.clone(), application_id.to_owned());
        let mut entries = self.inner.commands.entries.lock().await;
        let index = match entries.get(&key) {
            Some(index) if index.contains_key(name) => Arc::clone(index),
            _ => {
                let fresh = Arc::new(self.fetch_index(scope, application_id).await?);
                entries.insert(key, Arc::clone(&fresh));
                fresh
            }
        };
        index
            .get(name)
            .cloned()
            .ok_or_else(|| RestError::CommandNotFound {
                application_id: application_id.to_owned(),
                name: name.to_owned(),
            })
    }

    /// Re-reads the index (after an "outdated command" error) and returns the slash
    /// commands it lists for `application_id`.
    pub async fn refresh_commands(
        &self,
        scope: &CommandScope,
        application_id: &str,
    ) -> Result<Vec<CommandInfo>, RestError> {
        let mut entries = self.inner.commands.entries.lock().await;
        let fresh = self.fetch_index(scope, application_id).await?;
        let list = fresh.values().cloned().collect();
        entries.insert((scope.clone(), application_id.to_owned()), Arc::new(fresh));
        Ok(list)
    }

    async fn fetch_index(
        &self,
        scope: &CommandScope,
        application_id: &str,
    ) -> Result<HashMap<String, CommandInfo>, RestError> {
        let response: IndexResponse = self.execute_json(Call::get(scope.path()?)).await?;
        let mut index = HashMap::new();
        for raw in response.application_commands {
            let Ok(command) = RawCommand::deserialize(&raw) else {
                tracing::debug!("rest: command index entry without id/version/name skipped");
                continue;
            };
            // Only slash commands (type 1) can be invoked by name; context-menu commands
            // may share a name.
            if command.application_id != application_id || command.kind != 1 {
                continue;
            }
            index.insert(
                command.name.clone(),
                CommandInfo {
                    id: command.id,
                    version: command.version,
                    name: command.name,
                    application_id: command.application_id,
                    raw,
                },
            );
        }
        tracing::debug!(commands = index.len(), %application_id, "rest: command index loaded");
        Ok(index)
    }
}

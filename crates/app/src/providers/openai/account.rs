//! The OpenAI account: an API key against one service, its probe `GET /models`.
//! Its health is [`ServiceAccount`]'s, shared by the HTTP providers.

use async_trait::async_trait;

use super::client::{Blame, Client};
use crate::providers::service_account::{Probe, ServiceAccount, Trouble};

/// The configured account.
pub type Account = ServiceAccount<Client>;

#[async_trait]
impl Probe for Client {
    async fn probe(&self) -> Result<(), Trouble> {
        Client::probe(self).await.map_err(|e| match e.blame {
            Blame::Key => Trouble::Refused(e.error.message),
            Blame::Other => Trouble::Unreachable(e.error.message),
        })
    }
}

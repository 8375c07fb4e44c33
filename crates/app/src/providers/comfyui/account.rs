//! The ComfyUI server as an account: an optional proxy token, its probe `GET /system_stats`.
//! Its health is [`ServiceAccount`]'s, shared by the HTTP providers.

use async_trait::async_trait;

use super::client::{Blame, Client};
use crate::providers::service_account::{Probe, ServiceAccount, Trouble};

/// The configured account.
pub type Account = ServiceAccount<Client>;

#[async_trait]
impl Probe for Client {
    async fn probe(&self) -> Result<(), Trouble> {
        self.system_stats()
            .await
            .map(|_| ())
            .map_err(|e| match e.blame {
                Blame::Token => Trouble::Refused(e.error.message),
                Blame::Other => Trouble::Unreachable(e.error.message),
            })
    }
}

//! `list_providers`: what each configured provider does, what a generation costs on it, and
//! whether its accounts can work now.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};

use super::args::NoArguments;
use super::pictures::json;
use super::server::{Atelier, answer};
use crate::error::AppError;

#[tool_router(router = provider_tools, vis = "pub(super)")]
impl Atelier {
    #[tool(
        description = "The providers you can generate with: which is the default, the actions \
each plays, whether it is ready (account health), and what a generation of each kind costs \
in credits.",
        annotations(read_only_hint = true)
    )]
    async fn list_providers(
        &self,
        Parameters(_): Parameters<NoArguments>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.providers(&ctx).await)
    }
}

impl Atelier {
    async fn providers(
        &self,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, AppError> {
        let actor = self.actor(ctx)?;
        let providers = self.app.provider_summaries(actor).await?;
        let balance = match actor.owner() {
            Some(user) => Some(self.app.credits(actor, user).await?.balance),
            None => None,
        };
        let mut blocks = vec![json(&serde_json::json!({
            "providers": providers,
            "your_credits": balance,
        }))];
        if providers.iter().any(|p| p.synthetic) {
            blocks.push(ContentBlock::text(
                "note: a synthetic provider (the sandbox) draws test pictures; it does not \
                 generate real images",
            ));
        }
        Ok(CallToolResult::success(blocks))
    }
}

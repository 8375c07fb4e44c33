//! The MCP handler (`Atelier`): its tools, resources and prompts, who calls, and the two
//! transports: stdio for `atelier mcp` (the operator, like the CLI) and streamable HTTP at
//! `/mcp` for `atelier serve` (whoever the request's bearer key names, scoped like the API).

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, Implementation, InitializeResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use crate::app::App;
use crate::domain::Actor;
use crate::error::AppError;

const INSTRUCTIONS: &str = "Atelier generates images and keeps them in a catalogue. \
`generate_image` makes a 2x2 grid and its upscales and, when they are ready, shows them as \
thumbnails; long generations answer with how to continue (`wait_for_generation`). Act on a \
result with `run_action` (u1-u4, v1-v4, reroll on a grid; vary, zoom, pan, upscale on an \
upscaled picture) or `create_version`; sort the library with `set_image_status` (draft, final, \
archived) and `tag_image`; find images with `list_images` and `search_images`. Each image is \
also a resource, atelier://images/{id}.";

/// How the server answers, whatever the transport.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The longest a tool call waits for a generation (`[server] max_wait_secs`).
    pub max_wait: Duration,
    /// Whether results show where the folder store keeps each file: over stdio the caller is
    /// on the data's machine; over HTTP it has no business with the server's paths.
    pub paths: bool,
}

/// Where the caller comes from, which decides who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// `atelier mcp`: the operator, like the CLI.
    Stdio,
    /// `/mcp`: the actor `http/mcp.rs` put in the request after checking its bearer key.
    Http,
}

/// The MCP server over one `App`.
#[derive(Clone)]
pub struct Atelier {
    pub(super) app: Arc<App>,
    pub(super) settings: Arc<Settings>,
    transport: Transport,
    tools: ToolRouter<Self>,
}

impl Atelier {
    fn new(app: Arc<App>, settings: Arc<Settings>, transport: Transport) -> Self {
        Self {
            app,
            settings,
            transport,
            tools: Self::generation_tools() + Self::image_tools() + Self::provider_tools(),
        }
    }

    /// Who calls: the operator over stdio; over HTTP, the actor of the request's key (a
    /// request that reached here without one is refused, never run as the operator).
    pub(super) fn actor(&self, ctx: &RequestContext<RoleServer>) -> Result<Actor, AppError> {
        match self.transport {
            Transport::Stdio => Ok(Actor::Operator),
            Transport::Http => ctx
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Actor>())
                .copied()
                .ok_or_else(|| AppError::Forbidden("this request carries no API key".into())),
        }
    }

    /// The longest wait a call may have: what it asked for (50 s unless it said), within the
    /// server's limit.
    pub(super) fn wait(&self, asked: Option<u32>) -> Duration {
        Duration::from_secs(u64::from(asked.unwrap_or(50))).min(self.settings.max_wait)
    }
}

/// A use case's failure as the tool error the assistant reads. What the caller can mend (bad
/// input, an unknown id, a failed generation, short credits) says so; the server's own
/// failures are logged and only named, so no internal detail (a path, a query) leaks.
pub(super) fn tool_error(e: &AppError) -> CallToolResult {
    let message = match e {
        AppError::Catalogue(_)
        | AppError::Store(_)
        | AppError::Internal(_)
        | AppError::Unreachable(_)
        | AppError::Remote { .. } => {
            tracing::error!(error = %e, "an MCP tool failed");
            "Atelier failed to do this (an internal error, logged on the server); try again later"
                .to_owned()
        }
        AppError::NotFound(_) => format!("{e}: check the id (list_images shows yours)"),
        _ => e.to_string(),
    };
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// A tool's answer: its result, or its failure as a tool error. (A `Result` because the
/// tools' macro wants one; protocol errors are rmcp's own.)
#[allow(clippy::unnecessary_wraps)]
pub(super) fn answer(
    result: Result<CallToolResult, AppError>,
) -> Result<CallToolResult, ErrorData> {
    Ok(result.unwrap_or_else(|e| tool_error(&e)))
}

impl ServerHandler for Atelier {
    fn get_info(&self) -> InitializeResult {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .build();
        let mut info = InitializeResult::new(capabilities);
        info.server_info = Implementation::new("atelier", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(INSTRUCTIONS.into());
        info
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.tools
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.list_all()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.get(name).cloned()
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        super::resources::list(self, &context).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            super::resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        super::resources::read(self, &request.uri, &context)
            .await
            .map(Into::into)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(super::prompts::list()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        super::prompts::get(&request.name, request.arguments.as_ref()).map(Into::into)
    }
}

/// `atelier mcp`: serves MCP on stdin and stdout as the operator until the client closes
/// stdin. Nothing else may write to stdout (logs go to stderr).
pub async fn serve_stdio(app: Arc<App>, settings: Settings) -> Result<(), AppError> {
    let handler = Atelier::new(app, Arc::new(settings), Transport::Stdio);
    let running = handler
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| AppError::Invalid(format!("the MCP client did not initialise: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| AppError::Internal(format!("the MCP session ended badly: {e}")))?;
    Ok(())
}

/// The streamable HTTP service for `/mcp`. Requests must carry the caller's [`Actor`] in
/// their extensions (`http/mcp.rs` puts it there after checking the key); `allowed_hosts`
/// are the `Host` headers accepted (DNS rebinding); `max_body` bounds a request.
pub fn streamable_http(
    app: Arc<App>,
    settings: Settings,
    allowed_hosts: Vec<String>,
    max_body: usize,
) -> StreamableHttpService<Atelier, LocalSessionManager> {
    let settings = Arc::new(settings);
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts)
        .with_max_request_body_bytes(max_body);
    StreamableHttpService::new(
        move || Ok(Atelier::new(app.clone(), settings.clone(), Transport::Http)),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

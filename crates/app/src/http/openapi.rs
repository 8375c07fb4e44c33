//! The `OpenAPI` document (`GET /openapi.json`), generated from the code: every route is
//! registered through `utoipa_axum::routes!` (see `mod.rs`), so a handler's `#[utoipa::path]`
//! is the one place that says its path, method, parameters and answers, and the router and
//! the document cannot disagree. This module adds what every route shares, once:
//!
//! - the problem documents as named responses (`#/components/responses/NotFound`, …), each
//!   narrowing the `Problem` schema to its status and the stable `code`s it can carry, so a
//!   route says `(status = 404, response = NotFound)`;
//! - the bearer security scheme, required everywhere but on the routes a handler marks
//!   public with `security(())` (they get `security: []`);
//! - the answers every route can give: 401 on the signed ones, 503 (`unavailable`,
//!   `timeout`), and 400/413/415/422 on those with a JSON body.

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Ref, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};

use super::Problem;

/// The name of the security scheme.
const BEARER: &str = "bearer";

/// The document as served, made once when the router is built.
#[derive(Clone)]
pub struct Document(pub Arc<String>);

/// The document's frame: what the routes do not say themselves.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Atelier API",
        description = "Self-hosted AI image generation: generations, images, live events, \
            accounts. JSON in and out; errors are `application/problem+json` documents whose \
            `code` is stable. Sign requests with `Authorization: Bearer <API key or session token>`.",
    ),
    // Schemas named only by `value_type` in a parameter are not collected by utoipa: listed here.
    components(schemas(
        Problem,
        crate::api::EventView,
        crate::api::FeedEventView,
        crate::api::GenerationStatusName,
        crate::api::ImageStatusName,
        crate::api::MediaKindName,
        crate::api::CategoryName,
    )),
    tags(
        (name = "generations", description = "Asking for images and following the work"),
        (name = "images", description = "The images made: metadata, bytes, marks"),
        (name = "events", description = "Live progress as server-sent events"),
        (name = "accounts", description = "The caller: who, credits, sessions"),
        (name = "admin", description = "Administrators only: users, keys, credits, providers, audit"),
        (name = "service", description = "Health, readiness, this document and its page"),
        (name = "openai", description = "Drop-in: OpenAI's Images API, answered by any configured provider"),
        (name = "midjourney-proxy", description = "Drop-in: the REST protocol of the Midjourney proxies (/mj/submit/*, /mj/task/*), answered by any configured provider, in the proxies' envelope"),
    )
)]
pub struct Frame;

/// Declares the named problem responses: a type per response for `response = …` in
/// `#[utoipa::path]`, and the list registered in the document's components.
macro_rules! problems {
    ($($name:ident = $status:literal, $description:literal, [$($code:literal),+], $retry:expr;)+) => {
        $(
            #[doc = $description]
            pub struct $name;
            impl<'s> utoipa::ToResponse<'s> for $name {
                fn response() -> (&'s str, RefOr<Response>) {
                    (stringify!($name), RefOr::T(problem($description, $status, &[$($code),+], $retry)))
                }
            }
        )+
        fn problem_responses() -> Vec<(&'static str, RefOr<Response>)> {
            vec![$(<$name as utoipa::ToResponse>::response()),+]
        }
    };
}

/// Whether a problem response carries `Retry-After`.
#[derive(Clone, Copy, PartialEq)]
enum Retry {
    No,
    Sometimes,
    Always,
}

problems! {
    BadRequest = 400, "The body is not well-formed JSON", ["malformed_json", "bad_request"], Retry::No;
    Unauthorized = 401, "No credentials, or not valid ones (also a wrong email or password)", ["unauthorized"], Retry::No;
    PaymentRequired = 402, "Not enough credits for this work", ["insufficient_credits"], Retry::No;
    Forbidden = 403, "The caller may not do this (administrators only)", ["forbidden"], Retry::No;
    NotFound = 404, "No such resource for this caller (another user's is not found either)", ["not_found"], Retry::No;
    Conflict = 409, "The resource is not in a state that allows this, or a request with this Idempotency-Key still runs (then with Retry-After)", ["conflict", "idempotency_in_flight"], Retry::Sometimes;
    TooLarge = 413, "The body is larger than the server accepts", ["too_large"], Retry::No;
    UnsupportedMediaType = 415, "The body is not sent as application/json", ["unsupported_media_type"], Retry::No;
    RangeNotSatisfiable = 416, "The byte range is outside the file (Content-Range: bytes */size)", ["range_not_satisfiable"], Retry::No;
    Invalid = 422, "The input is not valid (the detail names what); an Idempotency-Key reused for another request; a generation waited for failed", ["invalid_input", "idempotency_mismatch", "generation_failed"], Retry::No;
    TooManyRequests = 429, "Over the key's rate, or too many sign-in attempts or refused credentials from this address; try again after Retry-After seconds", ["rate_limited"], Retry::Always;
    Unavailable = 503, "The server could not complete the request now (storage, database, a full queue or the request timeout); try again after Retry-After seconds", ["unavailable", "timeout", "queue_full"], Retry::Always;
}

/// A problem response: the `Problem` schema narrowed to `status` and `codes`.
fn problem(description: &str, status: u16, codes: &[&str], retry: Retry) -> Response {
    let narrowed = ObjectBuilder::new()
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([status])),
        )
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(codes.iter().copied())),
        );
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name("Problem"))
        .item(narrowed);
    let mut response = ResponseBuilder::new().description(description).content(
        "application/problem+json",
        ContentBuilder::new().schema(Some(schema)).build(),
    );
    if retry != Retry::No {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                .description(Some("Seconds to wait before trying again"))
                .build(),
        );
    }
    response.build()
}

fn reference(name: &str) -> RefOr<Response> {
    RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
}

/// Adds `status` to `op` unless the route says it already.
fn answer(op: &mut Operation, status: &str, name: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| reference(name));
}

/// A midjourney-proxy error answer: the proxy's envelope (`MjSubmitResult`).
fn envelope(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        utoipa::openapi::content::ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("MjSubmitResult")))
                            .build(),
                    )
                    .build(),
            )
        });
}

/// The routes' document, completed with what every route shares.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    let frame = <Frame as utoipa::OpenApi>::openapi();
    doc.info = frame.info;
    doc.tags = frame.tags;
    let components = doc.components.get_or_insert_with(Default::default);
    if let Some(schemas) = frame.components.map(|c| c.schemas) {
        components.schemas.extend(schemas);
    }
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    for (name, response) in problem_responses() {
        components.responses.insert(name.to_owned(), response);
    }
    doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            // A drop-in route of another service's API says its own errors, in that service's
            // shape: no problem documents are added to it.
            let foreign = op
                .tags
                .as_ref()
                .is_some_and(|t| t.iter().any(|t| t == "openai"));
            // `security(())` on a handler (anyone may call) becomes "no security at all".
            let public = op
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| *r == SecurityRequirement::default()));
            let proxy = op
                .tags
                .as_ref()
                .is_some_and(|t| t.iter().any(|t| t == "midjourney-proxy"));
            if public {
                op.security = Some(Vec::new());
            } else if foreign {
                continue;
            } else if proxy {
                // The midjourney-proxy routes answer every error in the proxy's envelope.
                let with_body = op.request_body.is_some();
                for (status, description, always) in [
                    (
                        "400",
                        "Bad input (code 4), or a banned word (code 24)",
                        false,
                    ),
                    ("401", "No valid key (code 4)", true),
                    ("402", "Not enough credits (code 9)", false),
                    (
                        "413",
                        "The body is larger than the server accepts (code 4)",
                        false,
                    ),
                    (
                        "415",
                        "The body is not sent as application/json (code 4)",
                        false,
                    ),
                    ("429", "Over the key's rate (code 9, `Retry-After`)", true),
                    (
                        "503",
                        "The provider's queue is full (code 23) or the server cannot answer now (code 9), `Retry-After`",
                        true,
                    ),
                ] {
                    if always || with_body {
                        envelope(op, status, description);
                    }
                }
                continue;
            } else {
                answer(op, "401", "Unauthorized");
                answer(op, "429", "TooManyRequests");
                answer(op, "503", "Unavailable");
            }
            if op.request_body.is_some() {
                answer(op, "400", "BadRequest");
                answer(op, "413", "TooLarge");
                answer(op, "415", "UnsupportedMediaType");
                answer(op, "422", "Invalid");
            }
        }
    }
    doc
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    operation_id = "openapi",
    summary = "This document",
    security(()),
    responses((status = 200, description = "The OpenAPI document of this API", content_type = "application/json", body = Object))
)]
pub async fn document(Extension(doc): Extension<Document>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
}

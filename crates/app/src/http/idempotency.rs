//! `Idempotency-Key` on the routes that create (Stripe's semantics, kept 24 hours): the first
//! request with a key runs and its answer is kept; the same key with the same request replays
//! that answer (`Idempotency-Replayed: true`); the same key with another request is a 422; a
//! retry while the first still runs is a 409 with `Retry-After`. Keys are per caller. A first
//! request that fails with a 5xx, or whose client goes away before it ends, forgets its key so
//! a retry runs it anew.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::{Problem, Shared};
use crate::app::{App, request_fingerprint};
use crate::domain::{Begun, IdempotentRequest, UserId};
use crate::error::AppError;

const KEY: &str = "idempotency-key";

/// Forgets the key unless the request was completed: a dropped handler (the client went
/// away) must not leave the key "in flight" for a day.
struct Pending {
    app: Arc<App>,
    request: Option<IdempotentRequest>,
}

impl Pending {
    async fn complete(mut self, status: u16, body: Vec<u8>) {
        if let Some(request) = self.request.take()
            && let Err(e) = self.app.complete_request(&request, status, body).await
        {
            tracing::warn!(error = %e, "an idempotent request's answer could not be kept");
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(request) = self.request.take() {
            let app = self.app.clone();
            tokio::spawn(async move {
                if let Err(e) = app.abandon_request(&request).await {
                    tracing::warn!(error = %e, "an idempotency key could not be released");
                }
            });
        }
    }
}

pub async fn idempotent(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let Some(key) = req.headers().get(KEY).cloned() else {
        return next.run(req).await;
    };
    let Ok(key) = key.to_str().map(str::to_owned) else {
        return Problem::invalid("Idempotency-Key must be printable ASCII").into_response();
    };
    let (mut parts, body) = req.into_parts();
    let actor = match Caller::from_request_parts(&mut parts, &s).await {
        Ok(Caller(actor)) => actor,
        Err(problem) => return problem.into_response(),
    };
    let Ok(bytes) = to_bytes(body, s.settings.max_body_bytes).await else {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is larger than the server accepts ([server] max_body_kib)",
        )
        .into_response();
    };
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string);
    let fingerprint = request_fingerprint(parts.method.as_str(), &target, &bytes);
    // The operator (no credentials) has keys of its own, under the nil id.
    let user = actor
        .owner()
        .unwrap_or_else(|| UserId::from_uuid(uuid::Uuid::nil()));
    let (request, begun) = match s.app.begin_request(user, &key, fingerprint).await {
        Ok(begun) => begun,
        Err(AppError::Invalid(m)) => return Problem::invalid(m).into_response(),
        Err(e) => return Problem::from(e).into_response(),
    };
    match begun {
        Begun::New => {}
        Begun::InFlight => {
            return Problem::new(
                StatusCode::CONFLICT,
                "idempotency_in_flight",
                "a request with this Idempotency-Key is still running; try again shortly",
            )
            .retry_after(1)
            .into_response();
        }
        Begun::Mismatch => {
            return Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_mismatch",
                "this Idempotency-Key was used for another request (another route or body)",
            )
            .into_response();
        }
        Begun::Done(stored) => return replay(stored.status, stored.body),
    }
    let pending = Pending {
        app: s.app.clone(),
        request: Some(request),
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if response.status().is_server_error() {
        // Dropping `pending` forgets the key.
        return response;
    }
    let (head, body) = response.into_parts();
    let Ok(data) = to_bytes(body, usize::MAX).await else {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the answer could not be read; try again",
        )
        .into_response();
    };
    pending.complete(head.status.as_u16(), data.to_vec()).await;
    Response::from_parts(head, Body::from(data))
}

fn replay(status: u16, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_client_error() {
        "application/problem+json"
    } else {
        "application/json"
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("idempotency-replayed", HeaderValue::from_static("true"));
    response
}

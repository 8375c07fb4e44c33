//! `POST /interactions`: JSON, or `multipart/form-data` with a `payload_json` part and
//! optional `files[N]` parts as the web client sends. The bot validates and answers 204.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use super::{ApiError, authed, multipart};
use crate::bot::InlineFile;
use crate::sim::Sim;

pub(crate) async fn post(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let user = authed(&sim, &headers)?;
    let body = body.map_err(|r| ApiError::body_rejection(&r))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (payload, files) = match multipart::boundary(content_type) {
        Some(boundary) => form(&body, &boundary)?,
        None => (
            serde_json::from_slice::<Value>(&body).map_err(|_| ApiError::bad_json())?,
            HashMap::new(),
        ),
    };
    sim.stats.count_interaction();
    crate::bot::accept(&sim, &user, &payload, &files)?;
    Ok(StatusCode::NO_CONTENT)
}

fn form(body: &Bytes, boundary: &str) -> Result<(Value, HashMap<String, InlineFile>), ApiError> {
    let parts = multipart::parse(body, boundary).ok_or_else(ApiError::bad_json)?;
    let mut payload = None;
    let mut files = HashMap::new();
    for part in parts {
        if part.name == "payload_json" {
            payload = Some(serde_json::from_slice(&part.body).map_err(|_| ApiError::bad_json())?);
        } else if let Some(index) = part
            .name
            .strip_prefix("files[")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            files.insert(
                index.to_owned(),
                InlineFile {
                    filename: part.filename.unwrap_or_else(|| "image.png".to_owned()),
                    bytes: part.body,
                },
            );
        }
    }
    let payload = payload.ok_or_else(|| ApiError::required(&["payload_json"]))?;
    Ok((payload, files))
}

//! Live events as server-sent events: `GET /v1/generations/{id}/events` (one generation's, each
//! with its number as the event id, ending after its last) and `GET /v1/events` (the feed of
//! every generation the caller may see, each with its feed position as the id). A client that
//! reconnects with `Last-Event-ID` (or `?after=`) gets what it missed, then the rest, with no
//! gap and no duplicate. Comment lines every `heartbeat_secs` keep proxies from closing idle
//! streams; every stream ends when the server stops.

use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use super::auth::Caller;
use super::input::id;
use super::problem::Answer;
use super::{Problem, Shared};
use crate::api::{EventView, FeedEventView, FeedPage};
use crate::domain::GenerationId;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Start after this event id (`Last-Event-ID` wins when both are given).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// The feed only: one generation's events (not allowed on a generation's own stream).
    generation: Option<String>,
    /// The feed as a JSON page only: at most this many events (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Whether the client asked for JSON rather than a stream (`Accept: application/json`
/// without `text/event-stream`).
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    accept.contains("application/json") && !accept.contains("text/event-stream")
}

/// One server-sent event as a stream carries it (heartbeats are comments, not events).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ServerSentEvent {
    /// The event's number (a generation's stream) or feed position (the feed); none on an
    /// `error` event.
    id: Option<String>,
    /// The event's type, or `error`.
    event: Option<String>,
    /// JSON: an `EventView` (a generation's stream), a `FeedEventView` (the feed), or a
    /// `Problem` (an `error` event).
    data: String,
}

/// The request header of a stream resumed after a disconnect.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct Resume {
    /// The id of the last event received: the stream goes on from the next.
    #[param(rename = "Last-Event-ID", pattern = "^[0-9]{1,18}$")]
    last_event_id: Option<String>,
}

/// Where to start: `Last-Event-ID` wins over `?after=`; nothing means from the start.
fn start(headers: &HeaderMap, after: Option<i64>) -> Result<i64, Problem> {
    match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| Problem::invalid("Last-Event-ID must be an event id this stream sent")),
        None => match after {
            Some(n) if n < 0 => Err(Problem::invalid("after must be 0 or more")),
            Some(n) => Ok(n),
            None => Ok(0),
        },
    }
}

/// The stream as SSE, with heartbeats, ended when the server stops.
fn sse<S>(s: &Shared, events: S) -> Response
where
    S: Stream<Item = Result<Sse, Infallible>> + Send + 'static,
{
    let mut stopping = s.stopping.clone();
    let stopped = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    axum::response::Sse::new(events.take_until(stopped))
        .keep_alive(KeepAlive::new().interval(s.settings.heartbeat))
        .into_response()
}

/// The items up to and with the first error: it is sent, then the stream ends, and the
/// client reconnects with `Last-Event-ID`.
fn until_error<T, S>(stream: S) -> impl Stream<Item = Result<T, crate::error::AppError>>
where
    S: Stream<Item = Result<T, crate::error::AppError>>,
{
    let mut failed = false;
    stream.take_while(move |r| {
        let go = !failed;
        failed |= r.is_err();
        std::future::ready(go)
    })
}

/// One event, or the error that ends the stream (sent as an `error` event first).
fn item<T: serde::Serialize>(
    result: Result<(String, &'static str, T), crate::error::AppError>,
) -> Sse {
    match result {
        Ok((id, kind, view)) => Sse::default()
            .id(id)
            .event(kind)
            .json_data(view)
            .unwrap_or_else(|_| Sse::default().comment("an event could not be written")),
        Err(e) => {
            let problem = Problem::from(e);
            Sse::default()
                .event("error")
                .json_data(&problem)
                .unwrap_or_else(|_| Sse::default().comment("error"))
        }
    }
}

#[utoipa::path(
    get,
    path = "/generations/{id}/events",
    tag = "events",
    operation_id = "generation_events",
    summary = "One generation's events, live, as server-sent events",
    description = "Each event's `event:` is its type (`queued`, `started`, `progress`, `image`, `succeeded`, `failed`, `cancelled`, …), its `id:` its number in the generation, its `data:` an `EventView` document. The stored events come first, then the live ones; the stream ends after the last. Comment lines keep idle connections open. An `error` event (a `Problem`) ends a stream that failed: reconnect with `Last-Event-ID`.",
    params(("id" = uuid::Uuid, Path, description = "The generation's id"), Resume, StreamQuery),
    responses(
        (status = 200, description = "The stream", content_type = "text/event-stream", body = ServerSentEvent),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub async fn generation(
    State(s): State<Shared>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Path(raw): Path<String>,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<Response> {
    let Query(q) = query.map_err(|e| Problem::invalid(e.body_text()))?;
    if q.generation.is_some() {
        return Err(Problem::invalid("generation is in the path here"));
    }
    if q.limit.is_some() {
        return Err(Problem::invalid("limit is for the feed's JSON page only"));
    }
    let id: GenerationId = id(&raw, "generation")?;
    let after = u64::try_from(start(&headers, q.after)?).unwrap_or(0);
    let following = s.app.follow(actor, id, after).await?;
    let events = until_error(following.into_stream()).map(|r| {
        Ok(item(r.map(|e| {
            (e.seq.to_string(), e.kind.as_str(), EventView::from(&e))
        })))
    });
    Ok(sse(&s, events))
}

#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    operation_id = "events",
    summary = "The feed of every event the caller may see: live as server-sent events, or a JSON page",
    description = "Each event's `id:` is its position in the feed, its `data:` a `FeedEventView` document (an `EventView` with its `position`). The stream stays open until the client or the server ends it; reconnect with `Last-Event-ID` to miss nothing. With `Accept: application/json` (and not `text/event-stream`) the answer is instead one page of the stored events after `after` (`limit` of them at most) with the feed's end, from which a stream started later gets only newer events.",
    params(Resume, StreamQuery),
    responses(
        (status = 200, description = "The stream, or a page of stored events", content(
            (ServerSentEvent = "text/event-stream"),
            (FeedPage = "application/json"),
        )),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub async fn feed(
    State(s): State<Shared>,
    Caller(actor): Caller,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<Response> {
    let Query(q) = query.map_err(|e| Problem::invalid(e.body_text()))?;
    let generation = q
        .generation
        .as_deref()
        .map(|g| id::<GenerationId>(g, "generation"))
        .transpose()?;
    let after = start(&headers, q.after)?;
    if wants_json(&headers) {
        let limit = match q.limit {
            None => 100,
            Some(n @ 1..=1000) => n,
            Some(_) => return Err(Problem::invalid("limit must be from 1 to 1000")),
        };
        // The end first: an event written between the two reads is in a later page or stream,
        // never skipped.
        let end = s.app.feed_end().await?;
        let entries = s.app.feed(actor, after, generation, limit).await?;
        return Ok(axum::Json(FeedPage {
            data: entries.iter().map(FeedEventView::from).collect(),
            end,
        })
        .into_response());
    }
    if q.limit.is_some() {
        return Err(Problem::invalid(
            "limit is for the JSON page only (Accept: application/json)",
        ));
    }
    let following = s.app.follow_feed(actor, after, generation).await?;
    let events = until_error(following.into_stream()).map(|r| {
        Ok(item(r.map(|e| {
            (
                e.position.to_string(),
                e.event.kind.as_str(),
                FeedEventView::from(&e),
            )
        })))
    });
    Ok(sse(&s, events))
}

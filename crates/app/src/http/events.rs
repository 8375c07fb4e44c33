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
use crate::api::{EventView, FeedEventView};
use crate::domain::GenerationId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct After {
    after: Option<i64>,
    generation: Option<String>,
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

pub async fn generation(
    State(s): State<Shared>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Path(raw): Path<String>,
    query: Result<Query<After>, axum::extract::rejection::QueryRejection>,
) -> Answer<Response> {
    let Query(q) = query.map_err(|e| Problem::invalid(e.body_text()))?;
    if q.generation.is_some() {
        return Err(Problem::invalid("generation is in the path here"));
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

pub async fn feed(
    State(s): State<Shared>,
    Caller(actor): Caller,
    headers: HeaderMap,
    query: Result<Query<After>, axum::extract::rejection::QueryRejection>,
) -> Answer<Response> {
    let Query(q) = query.map_err(|e| Problem::invalid(e.body_text()))?;
    let generation = q
        .generation
        .as_deref()
        .map(|g| id::<GenerationId>(g, "generation"))
        .transpose()?;
    let after = start(&headers, q.after)?;
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

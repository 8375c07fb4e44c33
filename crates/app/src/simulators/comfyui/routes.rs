//! The ComfyUI simulator's routes: the API (prompt, queue, interrupt, history, view, object
//! info, system stats), the WebSocket, and `/_sim/stats`. Every API request passes `gate`
//! first: the token (when one is required), a restart's downtime, and the request faults.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::faults::Fault;
use super::{Item, Sim, nodes};

pub(super) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/prompt", post(post_prompt).get(get_prompt))
        .route("/queue", get(get_queue).post(post_queue))
        .route("/interrupt", post(interrupt))
        .route("/history", get(history_all))
        .route("/history/{id}", get(history_one))
        .route("/view", get(view))
        .route("/object_info", get(object_info))
        .route("/object_info/{class}", get(object_info_one))
        .route("/system_stats", get(system_stats))
        .route("/ws", get(socket))
        .layer(middleware::from_fn_with_state(sim.clone(), gate))
        .route("/_sim/stats", get(stats))
        .with_state(sim)
}

/// The token, a restart's downtime, and the request faults, before any API route.
async fn gate(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let socket = request.uri().path() == "/ws";
    if !socket {
        sim.count(|s| s.requests += 1);
    }
    if let Some(token) = &sim.config.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            sim.count(|s| s.unauthorized += 1);
            return (StatusCode::UNAUTHORIZED, "401: Unauthorized").into_response();
        }
    }
    let down = sim
        .with(|s| s.down_until.is_some_and(|t| std::time::Instant::now() < t))
        .unwrap_or(false);
    if down {
        return (
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: ComfyUI is starting",
        )
            .into_response();
    }
    if !socket {
        match sim.fault(true) {
            Some(Fault::ServerError) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error\n\nServer got itself in trouble",
                )
                    .into_response();
            }
            Some(Fault::RateLimit) => {
                let mut r =
                    (StatusCode::TOO_MANY_REQUESTS, "429: Too Many Requests").into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
            Some(Fault::Slow) => tokio::time::sleep(sim.config.slow).await,
            _ => {}
        }
    }
    next.run(request).await
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, axum::Json(value.clone())).into_response()
}

fn remaining(sim: &Sim) -> usize {
    sim.with(|s| s.pending.len() + usize::from(s.running.is_some()))
        .unwrap_or(0)
}

async fn get_prompt(State(sim): State<Arc<Sim>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"exec_info": {"queue_remaining": remaining(&sim)}}),
    )
}

async fn post_prompt(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let refuse = |sim: &Sim, error: Value, node_errors: Value| {
        sim.count(|s| s.refused += 1);
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": error, "node_errors": node_errors}),
        )
    };
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        let error = json!({"type": "invalid_prompt", "message": "The request body is not a JSON object", "details": "", "extra_info": {}});
        return refuse(&sim, error, json!({}));
    };
    let Some(Value::Object(prompt)) = body.get("prompt") else {
        let error = json!({"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}});
        return refuse(&sim, error, json!({}));
    };
    let outputs = match super::validate::validate(prompt) {
        Ok(o) => o,
        Err(r) => return refuse(&sim, r.error, r.node_errors),
    };
    let prompt_id = body
        .get("prompt_id")
        .and_then(Value::as_str)
        .map_or_else(crate::providers::comfyui::new_id, str::to_owned);
    let mut extra_data = body
        .get("extra_data")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if let Some(client) = body.get("client_id") {
        extra_data["client_id"] = client.clone();
    }
    let front = body.get("front").and_then(Value::as_bool).unwrap_or(false);
    let given = body.get("number").and_then(Value::as_f64);
    let number = sim
        .with(|s| {
            let number = given.unwrap_or_else(|| {
                let n = s.number;
                s.number += 1.0;
                if front { -n } else { n }
            });
            s.pending.push(Item {
                number,
                prompt_id: prompt_id.clone(),
                prompt: prompt.clone(),
                extra_data,
                outputs,
            });
            number
        })
        .unwrap_or_default();
    sim.count(|s| {
        s.prompts += 1;
        s.prompt_ids.push(prompt_id.clone());
        if s.prompt_ids.len() > 100 {
            s.prompt_ids.remove(0);
        }
    });
    sim.work.notify_waiters();
    sim.broadcast_status();
    json_response(
        StatusCode::OK,
        &json!({"prompt_id": prompt_id, "number": number, "node_errors": {}}),
    )
}

async fn get_queue(State(sim): State<Arc<Sim>>) -> Response {
    let (running, pending) = sim
        .with(|s| {
            let mut pending = s.pending.clone();
            pending.sort_by(|a, b| a.number.total_cmp(&b.number));
            (
                s.running.iter().map(Item::wire).collect::<Vec<_>>(),
                pending.iter().map(Item::wire).collect::<Vec<_>>(),
            )
        })
        .unwrap_or_default();
    json_response(
        StatusCode::OK,
        &json!({"queue_running": running, "queue_pending": pending}),
    )
}

async fn post_queue(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    if body["clear"].as_bool() == Some(true) {
        sim.with(|s| s.pending.clear());
    }
    if let Some(ids) = body["delete"].as_array() {
        for id in ids.iter().filter_map(Value::as_str) {
            sim.count(|s| s.deletes += 1);
            sim.with(|s| s.pending.retain(|i| i.prompt_id != id));
        }
    }
    sim.broadcast_status();
    StatusCode::OK.into_response()
}

async fn interrupt(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    sim.count(|s| s.interrupts += 1);
    let asked = body["prompt_id"].as_str();
    sim.with(|s| {
        let running = s.running.as_ref().map(|i| i.prompt_id.as_str());
        // A prompt id interrupts that prompt only if it runs; none interrupts whatever runs.
        if running.is_some() && (asked.is_none() || asked == running) {
            s.interrupt = true;
        }
    });
    StatusCode::OK.into_response()
}

async fn history_all(
    State(sim): State<Arc<Sim>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let max = q.get("max_items").and_then(|m| m.parse::<usize>().ok());
    let all: Map<String, Value> = sim
        .with(|s| {
            let skip = max.map_or(0, |m| s.history.len().saturating_sub(m));
            s.history.iter().skip(skip).cloned().collect()
        })
        .unwrap_or_default();
    json_response(StatusCode::OK, &Value::Object(all))
}

async fn history_one(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let found = sim
        .with(|s| {
            s.history
                .iter()
                .find(|(k, _)| *k == id)
                .map(|(_, v)| v.clone())
        })
        .flatten();
    let mut out = Map::new();
    if let Some(entry) = found {
        out.insert(id, entry);
    }
    json_response(StatusCode::OK, &Value::Object(out))
}

async fn view(State(sim): State<Arc<Sim>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(filename) = q.get("filename") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if filename.starts_with('/') || filename.contains("..") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let subfolder = q.get("subfolder").map_or("", String::as_str);
    if subfolder.contains("..") || subfolder.starts_with('/') {
        return StatusCode::FORBIDDEN.into_response();
    }
    let kind = q.get("type").map_or("output", String::as_str);
    let key = format!("{kind}/{subfolder}/{filename}");
    let found = sim
        .with(|s| s.files.get(&key).map(|f| (f.bytes.clone(), f.gone_at)))
        .flatten();
    match found {
        Some((_, Some(gone))) if std::time::Instant::now() >= gone => {
            sim.count(|s| s.vanished += 1);
            StatusCode::NOT_FOUND.into_response()
        }
        Some((bytes, _)) => {
            sim.count(|s| s.views += 1);
            let content_type = match crate::providers::comfyui::wire::extension(filename).as_str() {
                "webp" => "image/webp",
                "mp4" => "video/mp4",
                _ => "image/png",
            };
            let disposition = format!("filename=\"{}\"", filename.replace('"', ""));
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            (headers, bytes).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn object_info() -> Response {
    json_response(StatusCode::OK, &nodes::object_info())
}

async fn object_info_one(Path(class): Path<String>) -> Response {
    let mut out = Map::new();
    if let Some(c) = nodes::class(&class) {
        out.insert(class, nodes::info(c));
    }
    json_response(StatusCode::OK, &Value::Object(out))
}

async fn system_stats() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "system": {"os": "posix", "ram_total": 17_179_869_184_u64, "ram_free": 8_589_934_592_u64, "comfyui_version": "0.3.66-atelier-simulator",
                       "required_frontend_version": "1.28.0", "python_version": "3.12.3", "pytorch_version": "2.8.0+cpu", "embedded_python": false, "argv": ["main.py", "--cpu"]},
            "devices": [{"name": "cpu", "type": "cpu", "index": null, "vram_total": 0, "vram_free": 0, "torch_vram_total": 0, "torch_vram_free": 0}]
        }),
    )
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    let stats = sim.stats.lock().map(|s| s.clone()).unwrap_or_default();
    axum::Json(stats).into_response()
}

/// `/ws?clientId=…`: the upgrade, answered here (tokio-tungstenite over hyper's upgraded
/// connection), then the socket's task.
async fn socket(
    State(sim): State<Arc<Sim>>,
    Query(q): Query<HashMap<String, String>>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).filter(|_| upgrade) else {
        return (StatusCode::BAD_REQUEST, "Expected WebSocket upgrade").into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let sid = q
        .get("clientId")
        .filter(|c| !c.is_empty())
        .cloned()
        .unwrap_or_else(|| crate::providers::comfyui::new_id().replace('-', ""));
    let upgraded = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgraded.await {
            Ok(io) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
                serve_socket(sim, ws, sid).await;
            }
            Err(error) => tracing::debug!(%error, "ComfyUI simulator: upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// One client's socket: the status first (and the running node, for the client whose prompt
/// runs), then whatever the executor sends it, until it closes, is replaced by a new socket
/// of the same client, or the server restarts.
async fn serve_socket(
    sim: Arc<Sim>,
    mut ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    sid: String,
) {
    let (sender, mut outgoing) = tokio::sync::mpsc::unbounded_channel();
    let mine = sender.downgrade();
    let hello = sim.with(|s| {
        s.sockets.insert(sid.clone(), sender);
        let remaining = s.pending.len() + usize::from(s.running.is_some());
        let running = s
            .running
            .as_ref()
            .filter(|i| i.client().as_deref() == Some(sid.as_str()));
        let executing = running.and_then(|i| Some((i.prompt_id.clone(), s.last_node.clone()?)));
        (remaining, executing)
    });
    sim.count(|s| s.sockets += 1);
    let Some((remaining, executing)) = hello else {
        return;
    };
    let status = json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}}, "sid": sid}});
    if ws.send(Frame::text(status.to_string())).await.is_err() {
        return;
    }
    if let Some((prompt_id, node)) = executing {
        let again = json!({"type": "executing", "data": {"node": node, "display_node": node, "prompt_id": prompt_id}});
        if ws.send(Frame::text(again.to_string())).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            out = outgoing.recv() => {
                let Some(frame) = out else { let _ = ws.close(None).await; break };
                if ws.send(frame).await.is_err() { break }
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Frame::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            () = sim.stopped() => { let _ = ws.close(None).await; break }
        }
    }
    sim.with(|s| {
        if let Some(me) = mine.upgrade()
            && s.sockets.get(&sid).is_some_and(|t| t.same_channel(&me))
        {
            s.sockets.remove(&sid);
        }
    });
}

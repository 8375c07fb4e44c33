//! Steering and observing a running simulator: [`Control`] in process, and the same over
//! HTTP under `/_sim/…` (no authentication: it is a local test tool).
//!
//! - `GET /_sim/stats`, `GET /_sim/accounts`, `GET /_sim/channels/{id}/messages`
//! - `GET /_sim/faults`, `POST /_sim/faults` `{"set": "drop-socket,cdn-error" | [...], "rate", "seed", "every_ms"}`
//! - `POST /_sim/inject` `{"fault": "drop-socket"}`
//! - `POST /_sim/commands/rotate`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};

use crate::faults::{Fault, Faults};
use crate::gateway::Outgoing;
use crate::sim::Sim;

/// Event counters, updated lock-free.
#[derive(Default)]
pub(crate) struct Counters {
    gateway_connections: AtomicU64,
    identifies: AtomicU64,
    resumes: AtomicU64,
    rest_requests: AtomicU64,
    interactions: AtomicU64,
    uploads: AtomicU64,
    jobs_started: AtomicU64,
    jobs_finished: AtomicU64,
    jobs_canceled: AtomicU64,
    jobs_running: AtomicU64,
    jobs_running_peak: AtomicU64,
    messages: AtomicU64,
    dispatches: AtomicU64,
    downloads: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn count_connection(&self) {
        bump(&self.gateway_connections);
    }
    pub(crate) fn count_identify(&self) {
        bump(&self.identifies);
    }
    pub(crate) fn count_resume(&self) {
        bump(&self.resumes);
    }
    pub(crate) fn count_rest(&self) {
        bump(&self.rest_requests);
    }
    pub(crate) fn count_interaction(&self) {
        bump(&self.interactions);
    }
    pub(crate) fn count_upload(&self) {
        bump(&self.uploads);
    }
    pub(crate) fn count_message(&self) {
        bump(&self.messages);
    }
    pub(crate) fn count_dispatch(&self) {
        bump(&self.dispatches);
    }
    pub(crate) fn count_download(&self) {
        bump(&self.downloads);
    }
    pub(crate) fn job_started(&self) {
        bump(&self.jobs_started);
        let running = self.jobs_running.fetch_add(1, Ordering::Relaxed) + 1;
        self.jobs_running_peak.fetch_max(running, Ordering::Relaxed);
    }
    pub(crate) fn job_ended(&self, finished: bool) {
        if finished {
            bump(&self.jobs_finished);
        }
        let _ = self
            .jobs_running
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
    /// A running job stopped by its cancel button (counted besides its end).
    pub(crate) fn job_canceled(&self) {
        bump(&self.jobs_canceled);
    }
    pub(crate) fn snapshot_jobs_finished(&self) -> u64 {
        self.jobs_finished.load(Ordering::Relaxed)
    }
}

/// A snapshot of what the simulator has seen and done.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub gateway_connections: u64,
    /// Sessions with a live connection right now.
    pub live_sessions: u64,
    /// The most sessions of one user (one token) live at once since the start: above 1, two
    /// clients drove one account at the same time.
    pub live_sessions_per_user_peak: u64,
    pub identifies: u64,
    pub resumes: u64,
    pub rest_requests: u64,
    pub interactions: u64,
    pub uploads: u64,
    pub jobs_started: u64,
    pub jobs_finished: u64,
    /// Running jobs stopped by their cancel button (`MJ::CancelJob::ByJobid`).
    pub jobs_canceled: u64,
    pub jobs_running: u64,
    /// The most jobs that ran at once (all users together).
    pub jobs_running_peak: u64,
    /// Bot and user messages created.
    pub messages: u64,
    /// Gateway dispatches produced (each goes to every session of its user).
    pub dispatches: u64,
    /// Successful CDN downloads (including faulty ones).
    pub downloads: u64,
    /// Fault name → times it fired.
    pub faults_injected: BTreeMap<String, u64>,
}

/// A clonable handle for tests, benchmarks and the CLI.
#[derive(Clone)]
pub struct Control {
    sim: Arc<Sim>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("addr", &self.sim.addr)
            .finish()
    }
}

impl Control {
    pub(crate) fn new(sim: Arc<Sim>) -> Self {
        Self { sim }
    }

    /// Replaces the fault settings (and reseeds the generator).
    pub fn set_faults(&self, faults: Faults) {
        self.sim.faults().set(faults);
    }

    pub fn faults(&self) -> Faults {
        self.sim.faults().settings().clone()
    }

    /// Fires `fault` now: gateway faults on every live connection at once, the others at
    /// their next opportunity (next REST request, CDN download or job).
    pub fn inject(&self, fault: Fault) {
        if fault.is_gateway() {
            for conn in self.sim.sessions.connections() {
                self.sim.faults().count(fault);
                if fault == Fault::DropSocket {
                    conn.kill.notify_one();
                } else {
                    let _ = conn.tx.try_send(Outgoing::Fault(fault));
                }
            }
        } else {
            self.sim.faults().arm(fault);
        }
    }

    /// Gives every application command a new version: the next interaction naming an old
    /// version gets 400 / 50035 "This command is outdated".
    pub fn rotate_command_versions(&self) {
        let new = self.sim.ids.snowflake();
        self.sim.world().commands.rotate(new);
    }

    pub fn stats(&self) -> Stats {
        let c = &self.sim.stats;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            gateway_connections: load(&c.gateway_connections),
            live_sessions: self.sim.sessions.live_sessions() as u64,
            live_sessions_per_user_peak: self.sim.sessions.peak_per_user() as u64,
            identifies: load(&c.identifies),
            resumes: load(&c.resumes),
            rest_requests: load(&c.rest_requests),
            interactions: load(&c.interactions),
            uploads: load(&c.uploads),
            jobs_started: load(&c.jobs_started),
            jobs_finished: load(&c.jobs_finished),
            jobs_canceled: load(&c.jobs_canceled),
            jobs_running: load(&c.jobs_running),
            jobs_running_peak: load(&c.jobs_running_peak),
            messages: load(&c.messages),
            dispatches: load(&c.dispatches),
            downloads: load(&c.downloads),
            faults_injected: self.sim.faults().fired(),
        }
    }

    /// A channel's stored messages, newest first (ephemeral ones are not stored).
    pub fn messages(&self, channel_id: &str) -> Vec<Value> {
        let Ok(id) = channel_id.parse::<u64>() else {
            return Vec::new();
        };
        self.sim
            .world()
            .channels
            .get(&id)
            .map(|c| c.messages.values().rev().cloned().collect())
            .unwrap_or_default()
    }

    pub fn accounts(&self) -> Vec<crate::Account> {
        self.sim.premade_accounts()
    }

    /// Turns a user's Remix mode on or off (as `/settings`' button does): with it on, Extend
    /// opens its modal (`MJ::AnimateModal::…`) instead of starting. False for an unknown user.
    pub fn set_remix(&self, user_id: &str, on: bool) -> bool {
        let Ok(id) = user_id.parse::<u64>() else {
            return false;
        };
        match self.sim.world().users.get_mut(&id) {
            Some(user) => {
                user.remix = on;
                true
            }
            None => false,
        }
    }
}

pub(crate) fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_sim/stats", get(stats))
        .route("/_sim/accounts", get(accounts))
        .route("/_sim/faults", get(faults).post(set_faults))
        .route("/_sim/inject", post(inject))
        .route("/_sim/commands/rotate", post(rotate))
        .route("/_sim/channels/{channel}/messages", get(messages))
}

fn control(sim: Arc<Sim>) -> Control {
    Control::new(sim)
}

fn ok(value: &impl Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json!({"error": message}).to_string(),
    )
        .into_response()
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    ok(&control(sim).stats())
}

async fn accounts(State(sim): State<Arc<Sim>>) -> Response {
    ok(&control(sim).accounts())
}

async fn messages(State(sim): State<Arc<Sim>>, Path(channel): Path<String>) -> Response {
    ok(&control(sim).messages(&channel))
}

fn faults_json(faults: &Faults) -> Value {
    json!({
        "set": faults.set.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "rate": faults.rate,
        "seed": faults.seed,
        "every_ms": faults.every.as_millis() as u64,
    })
}

async fn faults(State(sim): State<Arc<Sim>>) -> Response {
    ok(&faults_json(&control(sim).faults()))
}

/// Reads a faults body; absent fields keep their current values.
fn parse_faults(current: &Faults, body: &Value) -> Result<Faults, String> {
    let mut faults = current.clone();
    match body.get("set") {
        None => {}
        Some(Value::String(list)) => {
            faults.set = Fault::parse_list(list).map_err(|e| e.to_string())?;
        }
        Some(Value::Array(items)) => {
            let names: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            faults.set = Fault::parse_list(&names.join(",")).map_err(|e| e.to_string())?;
        }
        Some(_) => return Err("`set` must be a list or a comma-separated string".into()),
    }
    if let Some(rate) = body.get("rate") {
        faults.rate = rate
            .as_f64()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or("`rate` must be a number from 0 to 1")?;
    }
    if let Some(seed) = body.get("seed") {
        faults.seed = seed.as_u64().ok_or("`seed` must be an unsigned integer")?;
    }
    if let Some(every) = body.get("every_ms") {
        faults.every = Duration::from_millis(
            every
                .as_u64()
                .ok_or("`every_ms` must be an unsigned integer")?,
        );
    }
    Ok(faults)
}

async fn set_faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the body must be a JSON object");
    };
    let control = control(sim);
    match parse_faults(&control.faults(), &body) {
        Ok(faults) => {
            control.set_faults(faults.clone());
            ok(&faults_json(&faults))
        }
        Err(message) => bad_request(&message),
    }
}

async fn inject(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let fault = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("fault").and_then(Value::as_str).map(str::to_owned));
    let Some(name) = fault else {
        return bad_request("expected {\"fault\": \"<name>\"}");
    };
    match name.parse::<Fault>() {
        Ok(fault) => {
            control(sim).inject(fault);
            ok(&json!({"injected": fault.name()}))
        }
        Err(error) => bad_request(&error.to_string()),
    }
}

async fn rotate(State(sim): State<Arc<Sim>>) -> Response {
    control(sim).rotate_command_versions();
    ok(&json!({"rotated": true}))
}

#[cfg(test)]
mod tests {
    use super::parse_faults;
    use crate::faults::{Fault, Faults};
    use serde_json::json;

    #[test]
    fn faults_bodies() {
        let current = Faults::default();
        let faults = parse_faults(&current, &json!({"set": "drop-socket, stuck", "rate": 1.0}))
            .expect("valid");
        assert_eq!(faults.set, [Fault::DropSocket, Fault::Stuck]);
        assert_eq!(faults.rate, 1.0);
        let faults =
            parse_faults(&faults, &json!({"set": ["cdn-error"], "every_ms": 50})).expect("valid");
        assert_eq!(faults.set, [Fault::CdnError]);
        assert_eq!(faults.every.as_millis(), 50);
        assert!(parse_faults(&current, &json!({"set": "nope"})).is_err());
        assert!(parse_faults(&current, &json!({"rate": 2})).is_err());
    }
}

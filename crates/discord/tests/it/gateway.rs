//! Gateway behaviour against the fake gateway: identify, resume, reconnect requests,
//! invalid sessions, fatal closes, zombies and malformed input.

use std::time::Duration;

use atelier_discord::{
    FatalReason, Gateway, GatewayConfig, GatewayEvent, GatewayHandle, Session, State, Token,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::fake_gateway::{FakeConn, FakeGateway, WAIT, ready};

const TOKEN: &str = "user-token-secret";

fn config(url: &str) -> GatewayConfig {
    GatewayConfig {
        url: url.to_owned(),
        connect_timeout: Duration::from_secs(2),
        identify_timeout: Duration::from_secs(3),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        invalid_session_delay: Duration::from_millis(100),
        max_payload: 64 * 1024,
        ..GatewayConfig::default()
    }
}

fn spawn(
    config: GatewayConfig,
    session: Option<Session>,
) -> (GatewayHandle, mpsc::Receiver<GatewayEvent>) {
    Gateway::spawn(config, Token::new(TOKEN), session)
}

/// Next event other than a state change.
async fn next_event(events: &mut mpsc::Receiver<GatewayEvent>) -> GatewayEvent {
    loop {
        match timeout(WAIT, events.recv())
            .await
            .expect("no event in time")
        {
            Some(GatewayEvent::StateChanged(_) | GatewayEvent::Retrying { .. }) => {}
            Some(event) => return event,
            None => panic!("event channel closed"),
        }
    }
}

async fn expect_dispatch(
    events: &mut mpsc::Receiver<GatewayEvent>,
    want_seq: u64,
) -> serde_json::Value {
    match next_event(events).await {
        GatewayEvent::Dispatch { seq, data, .. } if seq == Some(want_seq) => data,
        other => panic!("expected dispatch {want_seq}, got {other:?}"),
    }
}

/// Accepts a connection, plays HELLO and READY, and returns it active.
async fn establish(
    gw: &mut FakeGateway,
    events: &mut mpsc::Receiver<GatewayEvent>,
    resume_url: &str,
) -> FakeConn {
    let mut conn = gw.accept().await;
    conn.hello(45_000).await;
    let identify = conn.recv().await;
    assert_eq!(identify["op"], 2, "expected IDENTIFY, got {identify}");
    conn.send(ready("s1", resume_url)).await;
    match next_event(events).await {
        GatewayEvent::Ready { session, user_id } => {
            assert_eq!((session.id.as_str(), user_id.as_str()), ("s1", "42"));
        }
        other => panic!("expected Ready, got {other:?}"),
    }
    conn
}

#[tokio::test]
async fn identify_ready_dispatch_and_shutdown() {
    let mut gw = FakeGateway::start().await;
    let (handle, mut events) = spawn(config(&gw.url()), None);
    let mut conn = gw.accept().await;
    assert!(
        conn.uri.contains("v=9") && conn.uri.contains("compress=zlib-stream"),
        "{}",
        conn.uri
    );
    assert!(
        conn.user_agent.contains("Chrome/112"),
        "{}",
        conn.user_agent
    );

    conn.hello(45_000).await;
    let identify = conn.recv().await;
    assert_eq!(identify["op"], 2);
    assert_eq!(identify["d"]["token"], TOKEN);
    assert_eq!(identify["d"]["properties"]["os"], "Mac OS X");
    assert!(identify["d"].get("intents").is_none());

    conn.send_split(ready("s1", &gw.url())).await;
    conn.dispatch("MESSAGE_CREATE", 2, json!({"id": "100", "nonce": "77"}))
        .await;

    let mut states = Vec::new();
    let ready_event = loop {
        match timeout(WAIT, events.recv())
            .await
            .expect("event")
            .expect("open")
        {
            GatewayEvent::StateChanged(state) => states.push(state),
            other => break other,
        }
    };
    assert_eq!(states, [State::Identifying, State::Active]);
    assert!(matches!(ready_event, GatewayEvent::Ready { .. }));
    let data = expect_dispatch(&mut events, 2).await;
    assert_eq!(data["nonce"], "77");
    assert_eq!(handle.state(), State::Active);

    let session = handle.shutdown().await.expect("session kept");
    assert_eq!((session.id.as_str(), session.sequence), ("s1", 2));
    assert_eq!(
        conn.closed_by_client().await,
        Some(4000),
        "close must keep the session resumable"
    );
}

#[tokio::test]
async fn resumes_on_the_resume_url_after_a_dropped_socket() {
    let mut gw = FakeGateway::start().await;
    let mut resume_gw = FakeGateway::start().await;
    let (handle, mut events) = spawn(config(&gw.url()), None);
    let mut conn = establish(&mut gw, &mut events, &resume_gw.url()).await;
    conn.dispatch("MESSAGE_CREATE", 2, json!({"id": "1"})).await;
    expect_dispatch(&mut events, 2).await;
    drop(conn); // TCP goes away without a close frame

    let mut conn = resume_gw.accept().await;
    conn.hello(45_000).await;
    let resume = conn.recv().await;
    assert_eq!(resume["op"], 6, "expected RESUME, got {resume}");
    assert_eq!(resume["d"]["session_id"], "s1");
    assert_eq!(resume["d"]["seq"], 2);
    assert_eq!(resume["d"]["token"], TOKEN);
    // Discord replays what was missed, then confirms.
    conn.dispatch("MESSAGE_UPDATE", 3, json!({"id": "1"})).await;
    conn.dispatch("MESSAGE_CREATE", 4, json!({"id": "2"})).await;
    conn.send(json!({"op": 0, "s": 5, "t": "RESUMED", "d": {}}))
        .await;
    expect_dispatch(&mut events, 3).await;
    expect_dispatch(&mut events, 4).await;
    match next_event(&mut events).await {
        GatewayEvent::Resumed { session } => assert_eq!(session.sequence, 5),
        other => panic!("expected Resumed, got {other:?}"),
    }
    assert!(
        gw.stays_quiet(Duration::from_millis(100)).await,
        "must not use the main URL"
    );
    assert_eq!(handle.session().map(|s| s.sequence), Some(5));
}

#[tokio::test]
async fn op7_reconnect_resumes() {
    let mut gw = FakeGateway::start().await;
    let (_handle, mut events) = spawn(config(&gw.url()), None);
    let url = gw.url();
    let mut conn = establish(&mut gw, &mut events, &url).await;
    conn.send(json!({"op": 7, "d": null})).await;
    assert_eq!(conn.closed_by_client().await, Some(4000));

    let mut conn = gw.accept().await;
    conn.hello(45_000).await;
    assert_eq!(conn.recv().await["op"], 6);
}

#[tokio::test]
async fn op9_resumable_resumes_and_op9_false_reidentifies() {
    let mut gw = FakeGateway::start().await;
    let session = Session {
        id: "persisted".into(),
        sequence: 40,
        resume_url: gw.url(),
    };
    let (handle, mut events) = spawn(config(&gw.url()), Some(session));

    // A persisted session is resumed first; op 9 true keeps it.
    let mut conn = gw.accept().await;
    conn.hello(45_000).await;
    let resume = conn.recv().await;
    assert_eq!(
        (resume["op"].clone(), resume["d"]["seq"].clone()),
        (json!(6), json!(40))
    );
    // Heartbeats while resuming carry the persisted sequence.
    conn.send(json!({"op": 1, "d": null})).await;
    assert_eq!(conn.recv_any().await, json!({"op": 1, "d": 40}));
    conn.send(json!({"op": 9, "d": true})).await;

    let mut conn = gw.accept().await;
    conn.hello(45_000).await;
    assert_eq!(conn.recv().await["op"], 6);
    // op 9 false: the session is gone; identify from scratch.
    conn.send(json!({"op": 9, "d": false})).await;

    let mut conn = gw.accept().await;
    conn.hello(45_000).await;
    assert_eq!(conn.recv().await["op"], 2);
    assert_eq!(handle.session(), None);
    conn.send(ready("fresh", &gw.url())).await;
    assert!(
        matches!(next_event(&mut events).await, GatewayEvent::Ready { session, .. } if session.id == "fresh")
    );
}

#[tokio::test]
async fn close_4004_is_fatal_and_never_reconnects() {
    let mut gw = FakeGateway::start().await;
    let (handle, mut events) = spawn(config(&gw.url()), None);
    let mut conn = gw.accept().await;
    conn.hello(45_000).await;
    assert_eq!(conn.recv().await["op"], 2);
    conn.close(4004, "Authentication failed.").await;

    assert_eq!(
        next_event(&mut events).await,
        GatewayEvent::Fatal {
            reason: FatalReason::AuthenticationFailed
        }
    );
    assert!(
        gw.stays_quiet(Duration::from_millis(500)).await,
        "reconnected after 4004"
    );
    assert!(
        timeout(WAIT, events.recv())
            .await
            .expect("channel closes")
            .is_none()
    );
    assert_eq!(
        handle.state(),
        State::FatallyClosed {
            reason: FatalReason::AuthenticationFailed
        }
    );
}

#[tokio::test]
async fn close_4000_resumes() {
    let mut gw = FakeGateway::start().await;
    let (_handle, mut events) = spawn(config(&gw.url()), None);
    let url = gw.url();
    let mut conn = establish(&mut gw, &mut events, &url).await;
    conn.close(4000, "Unknown error").await;
    let mut conn = gw.accept().await;
    conn.hello(45_000).await;
    assert_eq!(conn.recv().await["op"], 6);
}

#[tokio::test]
async fn malformed_frames_are_skipped_without_reconnecting() {
    let mut gw = FakeGateway::start().await;
    let (handle, mut events) = spawn(config(&gw.url()), None);
    let url = gw.url();
    let mut conn = establish(&mut gw, &mut events, &url).await;

    conn.send_compressed(b"this is not json").await;
    conn.send_compressed(b"\xff\xfe\x00garbage").await;
    conn.send(json!({"op": 42, "d": {"what": "unknown opcode"}}))
        .await;
    conn.send(json!({"op": 0, "s": 2, "t": "READY", "d": {"session_id": 5}}))
        .await;
    conn.send(json!({"op": 10, "d": {}})).await;
    conn.send_raw(tokio_tungstenite::tungstenite::Message::text("{{{"))
        .await;
    // Larger than max_payload (64 KiB) once inflated; it compresses to almost nothing.
    let huge = "x".repeat(1 << 20);
    conn.dispatch("MESSAGE_CREATE", 3, json!({"content": huge}))
        .await;
    conn.dispatch("MESSAGE_CREATE", 4, json!({"id": "still-alive"}))
        .await;

    let data = expect_dispatch(&mut events, 4).await;
    assert_eq!(data["id"], "still-alive");
    assert_eq!(handle.state(), State::Active);
    assert!(
        gw.stays_quiet(Duration::from_millis(100)).await,
        "reconnected on bad input"
    );
}

#[tokio::test]
async fn corrupt_zlib_stream_reconnects_and_resumes() {
    let mut gw = FakeGateway::start().await;
    let (_handle, mut events) = spawn(config(&gw.url()), None);
    let url = gw.url();
    let mut conn = establish(&mut gw, &mut events, &url).await;
    conn.send_raw(tokio_tungstenite::tungstenite::Message::binary(
        b"\x01\x02 not deflate \x00\x00\xff\xff".to_vec(),
    ))
    .await;
    let mut conn = gw.accept().await;
    conn.hello(45_000).await;
    assert_eq!(conn.recv().await["op"], 6);
}

#[tokio::test]
async fn zombie_connection_is_dropped_and_resumed() {
    let mut gw = FakeGateway::start().await;
    let (_handle, mut events) = spawn(config(&gw.url()), None);
    let mut conn = gw.accept().await;
    conn.auto_ack = false;
    conn.hello(150).await;
    assert_eq!(conn.recv().await["op"], 2);
    conn.send(ready("s1", &gw.url())).await;
    conn.dispatch("MESSAGE_CREATE", 2, json!({})).await;
    assert!(matches!(
        next_event(&mut events).await,
        GatewayEvent::Ready { .. }
    ));
    expect_dispatch(&mut events, 2).await;
    // No ACKs: the second beat finds the first unanswered and the client gives up.
    assert_eq!(conn.closed_by_client().await, Some(4000));
    assert!(!conn.heartbeats.is_empty());

    let mut conn = gw.accept().await;
    conn.hello(45_000).await;
    let resume = conn.recv().await;
    assert_eq!(
        (resume["op"].clone(), resume["d"]["seq"].clone()),
        (json!(6), json!(2))
    );
}

#[tokio::test]
async fn heartbeats_carry_the_sequence_and_answer_requests() {
    let mut gw = FakeGateway::start().await;
    let (_handle, mut events) = spawn(config(&gw.url()), None);
    let url = gw.url();
    let mut conn = establish(&mut gw, &mut events, &url).await;
    conn.dispatch("TYPING_START", 9, json!({})).await;
    expect_dispatch(&mut events, 9).await;
    conn.send(json!({"op": 1, "d": null})).await;
    let beat = conn.recv_any().await;
    assert_eq!(
        (beat["op"].clone(), beat["d"].clone()),
        (json!(1), json!(9))
    );
}

#[tokio::test]
async fn no_hello_times_out_and_retries() {
    let mut gw = FakeGateway::start().await;
    let mut cfg = config(&gw.url());
    cfg.connect_timeout = Duration::from_millis(200);
    let (handle, _events) = spawn(cfg, None);
    let _silent = gw.accept().await;
    let mut conn = gw.accept().await;
    conn.hello(45_000).await;
    assert_eq!(conn.recv().await["op"], 2);
    assert_eq!(handle.state(), State::Identifying);
}

#[tokio::test]
async fn slow_consumer_loses_nothing() {
    let mut gw = FakeGateway::start().await;
    let mut cfg = config(&gw.url());
    cfg.event_buffer = 1;
    cfg.max_pending_events = 2;
    let (_handle, mut events) = spawn(cfg, None);
    let url = gw.url();
    let mut conn = establish(&mut gw, &mut events, &url).await;
    // Nobody reads while these arrive: the client stops reading the socket instead of
    // buffering without bound, and catches up once the consumer does.
    for seq in 2..52 {
        conn.dispatch("MESSAGE_CREATE", seq, json!({"n": seq}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for seq in 2..52 {
        let data = expect_dispatch(&mut events, seq).await;
        assert_eq!(data["n"], seq);
    }
}

#[tokio::test]
async fn dropping_the_handle_stops_the_gateway() {
    let mut gw = FakeGateway::start().await;
    let (handle, mut events) = spawn(config(&gw.url()), None);
    let url = gw.url();
    let mut conn = establish(&mut gw, &mut events, &url).await;
    drop(handle);
    assert_eq!(conn.closed_by_client().await, Some(4000));
    assert!(gw.stays_quiet(Duration::from_millis(200)).await);
}

/// A port on 127.0.0.1 that refuses connections: bound, then let go.
async fn refusing_port() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr")
}

#[tokio::test]
async fn a_refused_connection_is_known_at_once_and_retried_with_backoff() {
    let addr = refusing_port().await;
    let mut cfg = config(&format!("ws://{addr}"));
    // Far longer than the test waits: a refusal taken for silence would never be reported.
    cfg.connect_timeout = Duration::from_mins(10);
    cfg.identify_timeout = Duration::from_mins(10);
    cfg.backoff_base = Duration::from_millis(50);
    cfg.backoff_cap = Duration::from_millis(400);
    let started = tokio::time::Instant::now();
    let (handle, mut events) = spawn(cfg, None);
    let mut retries = Vec::new();
    while retries.len() < 5 {
        let event = timeout(WAIT, events.recv())
            .await
            .expect("the refusal is reported in time")
            .expect("open");
        if let GatewayEvent::Retrying {
            attempts,
            reason,
            retry_in,
        } = event
        {
            assert!(
                reason.contains("connection refused") && reason.contains(&addr.to_string()),
                "{reason}"
            );
            retries.push((attempts, retry_in.as_millis()));
        }
    }
    // Each failure waits twice the one before, up to the cap.
    assert_eq!(
        retries,
        [(1, 50), (2, 100), (3, 200), (4, 400), (5, 400)],
        "{retries:?}"
    );
    // The waits were taken: the fifth failure came after the first four waits.
    assert!(started.elapsed() >= Duration::from_millis(50 + 100 + 200 + 400));

    // The gateway comes back: the next attempt connects and identifies.
    let mut gw = FakeGateway::start_on(&addr.to_string()).await;
    let url = gw.url();
    establish(&mut gw, &mut events, &url).await;
    assert_eq!(handle.state(), State::Active);
}

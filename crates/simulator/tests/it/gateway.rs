//! The gateway: identify and heartbeats with our client over zlib-stream, plain text
//! frames, close codes, heartbeat timeout, resume with replay, op 7 and op 9.

use std::time::Duration;

use atelier_discord::{GatewayEvent, State};
use atelier_simulator::{Config, Fault};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::{sleep, timeout};

use crate::support::{Client, Raw, WAIT, config, start};

#[tokio::test]
async fn our_client_identifies_and_stays_up_on_zlib_stream() {
    let sim = start(Config {
        heartbeat_interval: Duration::from_millis(100),
        ..config()
    })
    .await;
    let account = sim.accounts()[0].clone();
    let client = Client::connect(&sim, &account).await;
    // Several heartbeat rounds: ACKed, so no zombie reconnect and no 4009.
    sleep(Duration::from_millis(600)).await;
    assert_eq!(client.gateway.state(), State::Active);
    let stats = sim.control().stats();
    assert_eq!((stats.gateway_connections, stats.identifies), (1, 1));
    assert_eq!(stats.live_sessions, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn plain_frames_ready_shape_and_heartbeat_ack() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let mut raw = Raw::connect(&sim, "v=9&encoding=json").await;
    let ready = raw.identify(&account.token).await;
    assert_eq!(ready["v"], 9);
    assert_eq!(ready["user"]["id"], account.user_id.as_str());
    assert_eq!(ready["user"]["bot"], false);
    assert_eq!(ready["resume_gateway_url"], sim.gateway_url().as_str());
    assert_eq!(ready["guilds"][0]["id"], account.guild_id.as_str());
    assert_eq!(ready["session_id"].as_str().map(str::len), Some(32));
    // A counter as `d` (erictik/midjourney-api) is acknowledged like a sequence.
    raw.send(&json!({"op": 1, "d": 7})).await;
    assert_eq!(raw.recv().await["op"], 11);
    // Presence updates are accepted silently after identify.
    raw.send(&json!({"op": 3, "d": {"status": "online"}})).await;
    raw.send(&json!({"op": 1, "d": null})).await;
    assert_eq!(raw.recv().await["op"], 11);
    sim.shutdown().await;
}

#[tokio::test]
async fn close_codes() {
    let sim = start(Config {
        revoked_tokens: vec!["revoked".into()],
        ..config()
    })
    .await;
    let token = sim.accounts()[0].token.clone();

    let mut raw = Raw::connect(&sim, "v=9&encoding=json").await;
    raw.recv().await;
    raw.ws
        .send(tokio_tungstenite::tungstenite::Message::text("{not json"))
        .await
        .unwrap();
    assert_eq!(
        raw.closed().await,
        (4002, "Error while decoding payload.".into())
    );

    let mut raw = Raw::connect(&sim, "v=9&encoding=json").await;
    raw.recv().await;
    raw.send(&json!({"op": 3, "d": {}})).await;
    assert_eq!(raw.closed().await, (4003, "Not authenticated.".into()));

    let mut raw = Raw::connect(&sim, "v=9&encoding=json").await;
    raw.recv().await;
    raw.send(&json!({"op": 2, "d": {"token": "revoked"}})).await;
    assert_eq!(raw.closed().await, (4004, "Authentication failed.".into()));

    let mut raw = Raw::connect(&sim, "v=9&encoding=json").await;
    raw.identify(&token).await;
    raw.send(&json!({"op": 99, "d": null})).await;
    assert_eq!(raw.closed().await, (4001, "Unknown opcode.".into()));

    let mut raw = Raw::connect(&sim, "v=9&encoding=json").await;
    raw.identify(&token).await;
    raw.send(&json!({"op": 2, "d": {"token": token}})).await;
    assert_eq!(raw.closed().await, (4005, "Already authenticated.".into()));

    let mut raw = Raw::connect(&sim, "v=9&encoding=json").await;
    let session = raw.identify(&token).await["session_id"].clone();
    drop(raw);
    let mut raw = Raw::connect(&sim, "v=9&encoding=json").await;
    raw.recv().await;
    raw.send(&json!({"op": 6, "d": {"token": token, "session_id": session, "seq": 99}}))
        .await;
    assert_eq!(raw.closed().await, (4007, "Invalid seq.".into()));

    let mut raw = Raw::connect(&sim, "v=9&encoding=json").await;
    raw.recv().await;
    raw.send(&json!({"op": 6, "d": {"token": token, "session_id": "nope", "seq": 1}}))
        .await;
    assert_eq!(raw.recv().await, json!({"op": 9, "d": false}));

    let mut raw = Raw::connect(&sim, "v=8&encoding=json").await;
    assert_eq!(raw.closed().await.0, 4012);
    sim.shutdown().await;
}

#[tokio::test]
async fn silence_is_closed_with_4009() {
    let sim = start(Config {
        heartbeat_interval: Duration::from_millis(100),
        ..config()
    })
    .await;
    let mut raw = Raw::connect(&sim, "v=10&encoding=json").await;
    raw.identify(&sim.accounts()[0].token).await;
    assert_eq!(raw.closed().await, (4009, "Session timed out.".into()));
    sim.shutdown().await;
}

#[tokio::test]
async fn resume_replays_what_was_missed_while_away() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let mut first = Raw::connect(&sim, "v=9&encoding=json").await;
    let session = first.identify(&account.token).await["session_id"].clone();
    drop(first);
    // While nobody is connected, the bot answers an interaction.
    let rest = crate::support::rest_client(&sim, &account.token);
    let ctx = atelier_discord::rest::InteractionContext {
        application_id: atelier_simulator::MIDJOURNEY_BOT_ID.into(),
        guild_id: Some(account.guild_id.clone()),
        channel_id: account.channel_id.clone(),
        session_id: "x".into(),
    };
    let command = atelier_discord::rest::SlashCommand {
        name: "imagine".into(),
        options: vec![json!({"type": 3, "name": "prompt", "value": "a lighthouse"})],
        attachments: vec![],
    };
    rest.slash_command(&ctx, &command, "1234").await.unwrap();
    // Wait until the job is done, then resume from READY's sequence.
    timeout(WAIT, async {
        while sim.control().stats().jobs_finished == 0 {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let mut second = Raw::connect(&sim, "v=9&encoding=json").await;
    second.recv().await;
    second
        .send(&json!({"op": 6, "d": {"token": account.token, "session_id": session, "seq": 1}}))
        .await;
    let mut names = Vec::new();
    let mut last = 1;
    loop {
        let payload = second.recv().await;
        let seq = payload["s"].as_u64().unwrap();
        assert_eq!(seq, last + 1, "sequence numbers without gaps");
        last = seq;
        let name = payload["t"].as_str().unwrap().to_owned();
        if name == "RESUMED" {
            break;
        }
        names.push(name);
    }
    assert_eq!(names[..2], ["INTERACTION_CREATE", "INTERACTION_SUCCESS"]);
    assert!(
        names.iter().filter(|n| *n == "MESSAGE_UPDATE").count() >= 3,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "MESSAGE_CREATE").count(),
        2,
        "{names:?}"
    );
    assert_eq!(names.last().map(String::as_str), Some("MESSAGE_DELETE"));
    assert_eq!(sim.control().stats().resumes, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn reconnect_and_invalid_session_are_survived() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let control = sim.control();

    control.inject(Fault::Reconnect);
    wait_resumed_or_ready(&mut client).await;
    assert!(control.stats().resumes >= 1);

    control.inject(Fault::InvalidSession);
    wait_resumed_or_ready(&mut client).await;
    control.inject(Fault::DropSocket);
    wait_resumed_or_ready(&mut client).await;
    let stats = control.stats();
    assert!(stats.gateway_connections >= 4, "{stats:?}");
    assert_eq!(stats.faults_injected["reconnect"], 1);
    // Still usable afterwards.
    let nonce = client.imagine("still here").await;
    client.final_for(&nonce).await;
    sim.shutdown().await;
}

/// Waits for the client to come back after a gateway fault.
async fn wait_resumed_or_ready(client: &mut Client) {
    loop {
        match timeout(WAIT, client.events.recv()).await.unwrap().unwrap() {
            GatewayEvent::Resumed { .. } | GatewayEvent::Ready { .. } => return,
            GatewayEvent::Fatal { reason } => panic!("fatal: {reason}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn unacknowledged_heartbeats_make_our_client_reconnect() {
    let sim = start(Config {
        heartbeat_interval: Duration::from_millis(100),
        ..config()
    })
    .await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    sim.control().inject(Fault::NoAck);
    wait_resumed_or_ready(&mut client).await;
    assert_eq!(sim.control().stats().gateway_connections, 2);
    assert_eq!(client.gateway.state(), atelier_discord::State::Active);
    sim.shutdown().await;
}

#[tokio::test]
async fn other_paths_are_the_gateway_too() {
    let sim = start(config()).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/gateway/whatever?v=9", sim.gateway_url()))
            .await
            .unwrap();
    let hello = ws.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"op\":10"));
    sim.shutdown().await;
}

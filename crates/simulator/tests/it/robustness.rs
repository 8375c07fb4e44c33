//! Bad input never breaks the simulator: oversized payloads, garbage interactions, random
//! gateway frames, and a painter that returns nonsense.

use std::sync::Arc;

use atelier_simulator::{Config, MIDJOURNEY_BOT_ID, Painter};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Client, Raw, config, start};

#[tokio::test]
async fn oversized_payloads_are_refused() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let mut raw = Raw::connect(&sim, "v=9&encoding=json").await;
    raw.identify(&account.token).await;
    // The server gives up on the frame as soon as its header announces the size, so the
    // rest of the upload may meet a reset instead of the 4002 close frame.
    if raw
        .ws
        .send(Message::text("x".repeat(5 << 20)))
        .await
        .is_ok()
    {
        match tokio::time::timeout(crate::support::WAIT, raw.ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 4002),
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(_)) | None => {}
        }
    }
    // Still serving.
    Raw::connect(&sim, "v=9&encoding=json")
        .await
        .identify(&account.token)
        .await;

    let response = crate::support::http()
        .post(format!("{}/interactions", sim.api_base()))
        .header("authorization", &account.token)
        .body(vec![b'{'; 26 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 40005);
    sim.shutdown().await;
}

#[tokio::test]
async fn garbage_interactions_get_errors_not_panics() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let http = crate::support::http();
    let channel = account.channel_id.clone();
    let mut rng = fastrand::Rng::with_seed(3);
    let samples = [
        json!(null),
        json!([]),
        json!({"type": 2}),
        json!({"type": 2, "application_id": MIDJOURNEY_BOT_ID, "channel_id": channel}),
        json!({"type": 2, "application_id": MIDJOURNEY_BOT_ID, "channel_id": channel, "data": {"id": "x"}}),
        json!({"type": 3, "application_id": MIDJOURNEY_BOT_ID, "channel_id": channel, "message_id": 5, "data": {}}),
        json!({"type": 5, "application_id": MIDJOURNEY_BOT_ID, "channel_id": channel, "data": {"id": "1", "custom_id": "x", "components": "no"}}),
        json!({"type": 9, "application_id": MIDJOURNEY_BOT_ID, "channel_id": channel, "data": {}}),
        json!({"type": 2, "application_id": "1", "channel_id": channel, "data": {}}),
        json!({"type": 2, "application_id": MIDJOURNEY_BOT_ID, "channel_id": "99", "data": {}, "nonce": "x".repeat(30)}),
    ];
    for sample in samples {
        let mut bodies = vec![sample.to_string()];
        let mut bytes = sample.to_string().into_bytes();
        for _ in 0..5 {
            if !bytes.is_empty() {
                let at = rng.usize(..bytes.len());
                bytes[at] = rng.u8(..);
            }
            bodies.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        for body in bodies {
            let response = http
                .post(format!("{}/interactions", sim.api_base()))
                .header("authorization", &account.token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!((400..500).contains(&status), "{status} for {body}");
            let error: Value = response.json().await.unwrap();
            assert!(error["code"].is_u64(), "{error}");
        }
    }
    // Random gateway frames: closed with a code, never a crash.
    for _ in 0..20 {
        let mut raw = Raw::connect(&sim, "v=9&encoding=json").await;
        raw.recv().await;
        let noise: Vec<u8> = (0..rng.usize(1..64)).map(|_| rng.u8(..)).collect();
        raw.ws.send(Message::binary(noise)).await.unwrap();
        let (code, _) = raw.closed().await;
        assert!((4001..=4004).contains(&code), "{code}");
    }
    // Still serving.
    let mut client = Client::connect(&sim, &account).await;
    let nonce = client.imagine("still fine").await;
    client.final_for(&nonce).await;
    sim.shutdown().await;
}

struct Broken;

impl Painter for Broken {
    fn grid(&self, _prompt: &str, _seed: u32, _side: u32) -> Vec<u8> {
        b"not an image".to_vec()
    }
}

#[tokio::test]
async fn a_broken_painter_fails_the_job_like_midjourney() {
    let sim = start(Config {
        painter: Arc::new(Broken),
        ..config()
    })
    .await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let nonce = client.imagine("a fox").await;
    let failed = client
        .until("failure", |n, d| {
            n == "MESSAGE_CREATE"
                && d["nonce"] == nonce
                && d["content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("Failed"))
        })
        .await;
    assert!(failed["attachments"].as_array().unwrap().is_empty());
    client
        .until("progress deleted", |n, _| n == "MESSAGE_DELETE")
        .await;
    let stats = sim.control().stats();
    assert_eq!(
        (stats.jobs_started, stats.jobs_finished, stats.jobs_running),
        (1, 0, 0)
    );
    sim.shutdown().await;
}

//! Each fault does what it says, injected once or at rate 1, and the simulator keeps
//! working afterwards.

use std::time::Duration;

use atelier_simulator::{Config, Fault, Faults};
use serde_json::json;
use tokio::time::{sleep, timeout};

use crate::support::{Client, Raw, WAIT, config, download, is_final, start};

#[tokio::test]
async fn cdn_error_and_truncation() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let nonce = client.imagine("a fox").await;
    let grid = client.final_for(&nonce).await;
    let url = grid["attachments"][0]["url"].as_str().unwrap();
    let size = grid["attachments"][0]["size"].as_u64().unwrap() as usize;

    sim.control().inject(Fault::CdnError);
    assert!(download(url).await.status().is_server_error());
    assert_eq!(download(url).await.status(), 200);

    sim.control().inject(Fault::CdnTruncate);
    let response = download(url).await;
    assert_eq!(response.status(), 200);
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = response.bytes().await.unwrap();
    assert_eq!((length, body.len()), (size / 2, size / 2));
    assert!(image::load_from_memory(&body).is_err());
    let stats = sim.control().stats();
    assert_eq!(
        (
            stats.faults_injected["cdn-error"],
            stats.faults_injected["cdn-truncate"]
        ),
        (1, 1)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn delete_progress_and_lose_final() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let control = sim.control();

    control.inject(Fault::DeleteProgress);
    let nonce = client.imagine("deleted progress").await;
    let waiting = client
        .until("waiting", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    client
        .until("early delete", |n, d| {
            n == "MESSAGE_DELETE" && d["id"] == waiting["id"]
        })
        .await;
    let grid = client.final_for(&nonce).await;
    assert!(is_final(&grid));

    control.inject(Fault::LoseFinal);
    let nonce = client.imagine("lost final").await;
    let waiting = client
        .until("waiting", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    // The progress message is deleted, but the final's MESSAGE_CREATE never comes…
    let mut creates = 0;
    loop {
        let (name, data) = client.dispatch().await;
        if name == "MESSAGE_CREATE" {
            creates += 1;
        }
        if name == "MESSAGE_DELETE" && data["id"] == waiting["id"] {
            break;
        }
    }
    assert_eq!(creates, 0);
    // …while the history has it.
    let history = control.messages(&account.channel_id);
    assert!(is_final(&history[0]));
    assert_eq!(history[0]["nonce"], nonce.as_str());
    sim.shutdown().await;
}

#[tokio::test]
async fn stuck_jobs_stay_and_free_their_slot() {
    let sim = start(Config {
        mj_concurrency: 1,
        ..config()
    })
    .await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    sim.control().inject(Fault::Stuck);
    let nonce = client.imagine("stuck fox").await;
    client
        .until("waiting", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    sleep(Duration::from_millis(200)).await;
    let history = sim.control().messages(&account.channel_id);
    assert_eq!(history.len(), 1, "only the progress message");
    assert!(!is_final(&history[0]));
    // The next job runs at once although the concurrency is 1.
    let next = client.imagine("next fox").await;
    let waiting = client
        .until("next waiting", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == next
        })
        .await;
    assert!(
        waiting["embeds"].as_array().unwrap().is_empty(),
        "not queued"
    );
    client.final_for(&next).await;
    assert_eq!(sim.control().stats().jobs_finished, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn heartbeat_request_is_sent() {
    let sim = start(config()).await;
    let mut raw = Raw::connect(&sim, "v=9&encoding=json").await;
    raw.identify(&sim.accounts()[0].token).await;
    sim.control().inject(Fault::HeartbeatRequest);
    assert_eq!(raw.recv().await, json!({"op": 1, "d": null}));
    sim.shutdown().await;
}

#[tokio::test]
async fn dropped_sockets_at_rate_one_lose_nothing() {
    let sim = start(Config {
        faults: Faults {
            every: Duration::from_millis(150),
            seed: 7,
            ..Faults::with(&[Fault::DropSocket], 1.0)
        },
        ..config()
    })
    .await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    for i in 0..3 {
        let nonce = client.imagine(&format!("resilient fox {i}")).await;
        client.final_for(&nonce).await;
        sleep(Duration::from_millis(200)).await;
    }
    timeout(WAIT, async {
        while sim.control().stats().resumes < 2 {
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(sim.control().stats().faults_injected["drop-socket"] >= 2);
    sim.shutdown().await;
}

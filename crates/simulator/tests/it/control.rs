//! The control API over HTTP (`/_sim/…`) and in process.

use atelier_simulator::{Fault, Faults};
use serde_json::{Value, json};

use crate::support::{Client, config, start};

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = crate::support::http().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn steer_and_observe_over_http() {
    let sim = start(config()).await;
    let base = sim.cdn_base();
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let nonce = client.imagine("observed fox").await;
    client.final_for(&nonce).await;

    let (status, counters) = call(reqwest::Method::GET, format!("{base}/_sim/stats"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            counters["identifies"].as_u64(),
            counters["jobs_finished"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(counters["live_sessions"], 1);

    let (status, accounts) =
        call(reqwest::Method::GET, format!("{base}/_sim/accounts"), None).await;
    assert_eq!(
        (status, accounts[1]["token"].as_str()),
        (200, Some("simulated-token-2"))
    );

    let url = format!("{base}/_sim/channels/{}/messages", account.channel_id);
    let (_, messages) = call(reqwest::Method::GET, url, None).await;
    assert_eq!(messages.as_array().map(Vec::len), Some(1));

    let body = json!({"set": "cdn-error,stuck", "rate": 0.5, "seed": 9, "every_ms": 1000});
    let (status, faults) = call(
        reqwest::Method::POST,
        format!("{base}/_sim/faults"),
        Some(body),
    )
    .await;
    assert_eq!(
        (status, faults["set"].clone()),
        (200, json!(["cdn-error", "stuck"]))
    );
    assert_eq!(
        sim.control().faults(),
        Faults {
            seed: 9,
            every: std::time::Duration::from_secs(1),
            ..Faults::with(&[Fault::CdnError, Fault::Stuck], 0.5)
        }
    );
    let (status, error) = call(
        reqwest::Method::POST,
        format!("{base}/_sim/faults"),
        Some(json!({"set": "explode"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("valid faults are")
    );

    let (status, _) = call(
        reqwest::Method::POST,
        format!("{base}/_sim/inject"),
        Some(json!({"fault": "rate-limit"})),
    )
    .await;
    assert_eq!(status, 200);
    let error = client.rest.current_user().await.unwrap_err();
    assert_eq!(error.status(), Some(429));

    let (status, _) = call(
        reqwest::Method::POST,
        format!("{base}/_sim/commands/rotate"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_restarted_simulator_keeps_its_accounts_for_the_same_seed() {
    let first = start(config()).await;
    let accounts = first.accounts();
    first.shutdown().await;
    let again = start(config()).await;
    let ids = |a: &atelier_simulator::Account| {
        (
            a.token.clone(),
            a.user_id.clone(),
            a.guild_id.clone(),
            a.channel_id.clone(),
        )
    };
    assert_eq!(
        again.accounts().iter().map(ids).collect::<Vec<_>>(),
        accounts.iter().map(ids).collect::<Vec<_>>()
    );
    // And the accounts work: a job runs in the channel a configuration written before names.
    let mut client = Client::connect(&again, &accounts[0]).await;
    let nonce = client.imagine("a fox after the restart").await;
    client.final_for(&nonce).await;
    // Another seed, other accounts.
    let mut other = config();
    other.faults.seed = 12345;
    let other = start(other).await;
    assert_ne!(other.accounts()[0].channel_id, accounts[0].channel_id);
    other.shutdown().await;
    again.shutdown().await;
}

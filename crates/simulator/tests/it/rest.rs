//! REST: authentication, Discord's error shapes, the command index and outdated versions,
//! multipart interactions, message listing, rate-limit headers and the 429 fault.

use atelier_discord::rest::{CommandScope, MessageQuery};
use atelier_simulator::{Fault, MIDJOURNEY_BOT_ID};
use serde_json::{Value, json};

use crate::support::{Client, config, start};

pub(crate) async fn get(
    url: &str,
    token: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = crate::support::http().get(url);
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

#[tokio::test]
async fn auth_and_error_shapes() {
    let sim = start(atelier_simulator::Config {
        accept_any_token: false,
        ..config()
    })
    .await;
    let api = sim.api_base();
    let token = sim.accounts()[0].token.clone();
    let (status, body, _) = get(&format!("{api}/users/@me"), None).await;
    assert_eq!(
        (status, body),
        (401, json!({"message": "401: Unauthorized", "code": 0}))
    );
    let (status, _, _) = get(&format!("{api}/users/@me"), Some("someone else")).await;
    assert_eq!(status, 401);
    let (status, me, headers) = get(&format!("{api}/users/@me"), Some(&token)).await;
    assert_eq!(
        (status, me["id"].as_str()),
        (200, Some(sim.accounts()[0].user_id.as_str()))
    );
    assert_eq!(headers["x-ratelimit-limit"], "50");
    assert!(
        headers.contains_key("x-ratelimit-bucket")
            && headers.contains_key("x-ratelimit-reset-after")
    );
    let v10 = api.replace("/v9", "/v10");
    assert_eq!(get(&format!("{v10}/users/@me"), Some(&token)).await.0, 200);
    let (status, body, _) = get(&format!("{api}/nope"), Some(&token)).await;
    assert_eq!(
        (status, body),
        (404, json!({"message": "404: Not Found", "code": 0}))
    );
    let response = crate::support::http()
        .delete(format!("{api}/interactions"))
        .header("authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let other_channel = sim.accounts()[1].channel_id.clone();
    let (status, body, _) = get(
        &format!("{api}/channels/{other_channel}/messages"),
        Some(&token),
    )
    .await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(50001)));
    let (status, _, _) = get(&format!("{api}/channels/abc/messages"), Some(&token)).await;
    assert_eq!(status, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn command_index_and_outdated_versions() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let scope = CommandScope::Guild(account.guild_id.clone());
    let imagine = client
        .rest
        .command(&scope, MIDJOURNEY_BOT_ID, "imagine")
        .await
        .unwrap();
    assert_eq!(
        (imagine.id.as_str(), imagine.version.as_str()),
        ("938956540159881230", "1237876415471554623")
    );
    let (status, search, _) = get(
        &format!(
            "{}/channels/{}/application-commands/search?type=1&query=desc&limit=1&include_applications=true",
            sim.api_base(),
            account.channel_id
        ),
        Some(&account.token),
    )
    .await;
    assert_eq!(
        (status, search["application_commands"][0]["name"].as_str()),
        (200, Some("describe"))
    );

    sim.control().rotate_command_versions();
    // A stale version: Discord's 400 / 50035.
    let stale = json!({
        "type": 2, "application_id": MIDJOURNEY_BOT_ID, "guild_id": account.guild_id,
        "channel_id": account.channel_id, "session_id": "s", "nonce": "1",
        "data": {"version": imagine.version, "id": imagine.id, "name": "imagine", "type": 1,
                 "options": [{"type": 3, "name": "prompt", "value": "fox"}], "attachments": []},
    });
    let response = crate::support::http()
        .post(format!("{}/interactions", sim.api_base()))
        .header("authorization", &account.token)
        .json(&stale)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 50035);
    assert_eq!(
        body["errors"]["data"]["_errors"][0]["code"],
        "INTERACTION_APPLICATION_COMMAND_INVALID_VERSION"
    );
    // Our client refreshes the index and retries by itself.
    let nonce = client.imagine("after the rotation").await;
    client.final_for(&nonce).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn multipart_interactions_and_message_listing() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let scope = CommandScope::Guild(account.guild_id.clone());
    let imagine = client
        .rest
        .command(&scope, MIDJOURNEY_BOT_ID, "imagine")
        .await
        .unwrap();
    let payload = json!({
        "type": 2, "application_id": MIDJOURNEY_BOT_ID, "guild_id": account.guild_id,
        "channel_id": account.channel_id, "session_id": "s", "nonce": "777",
        "data": {"version": imagine.version, "id": imagine.id, "name": "imagine", "type": 1,
                 "options": [{"type": 3, "name": "prompt", "value": "web client fox"}], "attachments": []},
    });
    let body = format!(
        "------b\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n{payload}\r\n------b--\r\n"
    );
    let response = crate::support::http()
        .post(format!("{}/interactions", sim.api_base()))
        .header("authorization", &account.token)
        .header("content-type", "multipart/form-data; boundary=----b")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    let first = client.final_for("777").await;
    for i in 0..3 {
        let nonce = client.imagine(&format!("fox {i}")).await;
        client.final_for(&nonce).await;
    }
    let all = client
        .rest
        .messages(&account.channel_id, &MessageQuery::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert!(
        all.windows(2)
            .all(|w| w[0]["id"].as_str().unwrap().parse::<u64>().unwrap()
                > w[1]["id"].as_str().unwrap().parse::<u64>().unwrap())
    );
    let query = MessageQuery {
        limit: Some(2),
        ..MessageQuery::default()
    };
    assert_eq!(
        client
            .rest
            .messages(&account.channel_id, &query)
            .await
            .unwrap()
            .len(),
        2
    );
    let query = MessageQuery {
        after: Some(first["id"].as_str().unwrap().to_owned()),
        ..MessageQuery::default()
    };
    assert_eq!(
        client
            .rest
            .messages(&account.channel_id, &query)
            .await
            .unwrap()
            .len(),
        3
    );
    let one = client
        .rest
        .message(&account.channel_id, first["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(one["content"], first["content"]);
    let error = client
        .rest
        .message(&account.channel_id, "42")
        .await
        .unwrap_err();
    assert!(error.is_unknown_message());
    sim.shutdown().await;
}

#[tokio::test]
async fn rate_limit_fault_answers_429() {
    let sim = start(config()).await;
    let token = sim.accounts()[0].token.clone();
    sim.control().inject(Fault::RateLimit);
    let (status, body, headers) = get(&format!("{}/users/@me", sim.api_base()), Some(&token)).await;
    assert_eq!(status, 429);
    assert_eq!(body["message"], "You are being rate limited.");
    assert_eq!(body["global"], false);
    let retry_after = body["retry_after"].as_f64().unwrap();
    assert!((0.05..=0.5).contains(&retry_after), "{retry_after}");
    assert_eq!(headers["x-ratelimit-scope"], "user");
    assert!(headers.contains_key("retry-after") && headers.contains_key("x-ratelimit-bucket"));
    // Only once.
    assert_eq!(
        get(&format!("{}/users/@me", sim.api_base()), Some(&token))
            .await
            .0,
        200
    );
    assert_eq!(sim.control().stats().faults_injected["rate-limit"], 1);

    // At rate 1 every request is limited; our client gives up after its retries.
    sim.control()
        .set_faults(atelier_simulator::Faults::with(&[Fault::RateLimit], 1.0));
    let client = crate::support::rest_client(&sim, &token);
    let error = client.current_user().await.unwrap_err();
    assert_eq!(error.status(), Some(429));
    sim.shutdown().await;
}

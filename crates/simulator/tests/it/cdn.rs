//! The CDN: signed URLs that work, tampered or expired ones that do not, and refresh.

use std::time::Duration;

use atelier_simulator::Config;
use serde_json::{Value, json};

use crate::support::{Client, config, download, start};

#[tokio::test]
async fn signed_urls_valid_tampered_and_refreshed() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let nonce = client.imagine("a fox").await;
    let grid = client.final_for(&nonce).await;
    let url = grid["attachments"][0]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!(
        "{}/attachments/{}/",
        sim.cdn_base(),
        account.channel_id
    )));
    assert!(
        url.contains("?ex=") && url.contains("&is=") && url.contains("&hm=") && url.ends_with('&')
    );
    let response = download(&url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    let size = grid["attachments"][0]["size"].as_u64().unwrap();
    assert_eq!(
        response.headers()["content-length"],
        size.to_string().as_str()
    );
    assert_eq!(response.bytes().await.unwrap().len() as u64, size);

    let gone = |url: String| async move {
        let response = download(&url).await;
        (response.status().as_u16(), response.text().await.unwrap())
    };
    let tampered = url.replace("&hm=", "&hm=0");
    assert_eq!(
        gone(tampered).await,
        (404, "This content is no longer available.".into())
    );
    let unsigned = url.split('?').next().unwrap().to_owned();
    assert_eq!(gone(unsigned).await.0, 404);

    let refreshed: Value = crate::support::http()
        .post(format!("{}/attachments/refresh-urls", sim.api_base()))
        .header("authorization", &account.token)
        .json(&json!({"attachment_urls": [url]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refreshed["refreshed_urls"][0]["original"], url.as_str());
    let fresh = refreshed["refreshed_urls"][0]["refreshed"]
        .as_str()
        .unwrap();
    assert_eq!(download(fresh).await.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn expired_urls_are_gone() {
    let sim = start(Config {
        cdn_ttl: Duration::ZERO,
        ..config()
    })
    .await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let nonce = client.imagine("a fox").await;
    let grid = client.final_for(&nonce).await;
    let response = download(grid["attachments"][0]["url"].as_str().unwrap()).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        "This content is no longer available."
    );
    sim.shutdown().await;
}

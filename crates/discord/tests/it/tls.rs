//! TLS wiring: with only ring compiled in, `wss://` and `https://` must reach a TLS
//! handshake (and fail cleanly against a plain TCP peer) instead of panicking for want of
//! a crypto provider.

use std::time::Duration;

use atelier_discord::{Gateway, GatewayConfig, RestClient, RestConfig, RestError, Token};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::time::timeout;

/// A peer that accepts TCP and answers garbage, so TLS handshakes fail.
async fn not_tls() -> (String, tokio::sync::mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"HTTP/1.1 400 not tls\r\n\r\n").await;
            let _ = tx.send(()).await;
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn wss_failure_is_retried_not_a_panic() {
    let (addr, mut connections) = not_tls().await;
    let config = GatewayConfig {
        url: format!("wss://{addr}"),
        backoff_base: Duration::from_millis(10),
        ..GatewayConfig::default()
    };
    let (handle, _events) = Gateway::spawn(config, Token::new("t"), None);
    for _ in 0..2 {
        timeout(Duration::from_secs(5), connections.recv())
            .await
            .expect("the task keeps retrying")
            .expect("listener alive");
    }
    assert!(!handle.state().eq(&atelier_discord::State::Active));
    handle.shutdown().await;
}

#[tokio::test]
async fn https_failure_is_a_transport_error() {
    let (addr, _connections) = not_tls().await;
    let config = RestConfig {
        api_base: format!("https://{addr}/api/v9"),
        ..RestConfig::default()
    };
    let client = RestClient::new(&config, &Token::new("t")).expect("client");
    let error = client.current_user().await.expect_err("not TLS");
    assert!(matches!(error, RestError::Transport(_)), "{error:?}");
}

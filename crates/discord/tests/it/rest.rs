//! REST client behaviour against the fake HTTP server: 429 handling, buckets, the upload
//! flow, command index refresh, message reads, downloads and token hygiene.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atelier_discord::rest::{Component, InteractionContext, MessageQuery, SlashCommand};
use atelier_discord::{RestClient, RestConfig, RestError, Token};
use serde_json::json;

use crate::fake_http::{FakeHttp, Reply};

const TOKEN: &str = "mfa.very-secret-user-token";

fn client(server: &FakeHttp) -> RestClient {
    let config = RestConfig {
        api_base: format!("{}/api/v9", server.base),
        cdn_base: server.base.clone(),
        interaction_gap: Duration::ZERO,
        interaction_jitter: Duration::ZERO,
        max_retries: 2,
        ..RestConfig::default()
    };
    RestClient::new(&config, &Token::new(TOKEN)).expect("client")
}

fn ctx() -> InteractionContext {
    InteractionContext {
        application_id: "936929561302675456".into(),
        guild_id: Some("111".into()),
        channel_id: "222".into(),
        session_id: "sess".into(),
    }
}

#[tokio::test]
async fn retries_a_429_after_retry_after() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let server = FakeHttp::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::json(429, &json!({"message": "You are being rate limited.", "retry_after": 0.3, "global": false}))
        } else {
            Reply::empty(204)
        }
    })
    .await;
    let client = client(&server);
    let start = Instant::now();
    client
        .press_component(
            &ctx(),
            &Component::button("333", 0, "MJ::JOB::upsample::1::abc"),
            "9001",
        )
        .await
        .expect("accepted after retry");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );

    let posts = server.requests_to("POST", "/api/v9/interactions");
    assert_eq!(posts.len(), 2);
    let body = posts[1].json();
    assert_eq!(body["type"], 3);
    assert_eq!(body["nonce"], "9001");
    assert_eq!(body["session_id"], "sess");
    assert_eq!(body["message_id"], "333");
    assert_eq!(body["data"]["custom_id"], "MJ::JOB::upsample::1::abc");
    assert_eq!(posts[1].header("authorization"), Some(TOKEN));
    assert!(posts[1].header("x-super-properties").is_some());
    assert!(
        posts[1]
            .header("user-agent")
            .is_some_and(|ua| ua.contains("Chrome/112"))
    );
}

#[tokio::test]
async fn gives_up_after_max_retries_using_the_retry_after_header() {
    let server = FakeHttp::start(|_| Reply::empty(429).with_header("retry-after", "0.05")).await;
    let error = client(&server)
        .current_user()
        .await
        .expect_err("rate limited");
    assert!(
        matches!(error, RestError::RateLimited { retry_after, global: false, .. } if retry_after == Duration::from_millis(50)),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 3, "one try plus two retries");
}

#[tokio::test]
async fn empty_bucket_delays_the_next_request() {
    let server = FakeHttp::start(|_| {
        Reply::json(200, &json!({"id": "42"}))
            .with_header("x-ratelimit-bucket", "b1")
            .with_header("x-ratelimit-remaining", "0")
            .with_header("x-ratelimit-reset-after", "0.3")
    })
    .await;
    let client = client(&server);
    client.current_user().await.expect("first");
    let start = Instant::now();
    client.current_user().await.expect("second");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_message_carries_uploaded_files_and_answers_their_cdn_urls() {
    let server = FakeHttp::start(|request| match (request.method.as_str(), request.path()) {
        ("POST", "/api/v9/channels/222/messages") => {
            let sent = request.json();
            let attachments: Vec<serde_json::Value> = sent["attachments"]
                .as_array()
                .expect("attachments")
                .iter()
                .map(|a| {
                    json!({"id": "9001", "filename": a["filename"],
                        "url": format!("https://cdn.discordapp.com/attachments/222/9001/{}?ex=1&is=2&hm=3&",
                            a["filename"].as_str().unwrap_or_default())})
                })
                .collect();
            Reply::json(200, &json!({"id": "77", "channel_id": "222", "content": sent["content"], "attachments": attachments}))
        }
        ("POST", "/api/v9/channels/223/messages") => {
            Reply::json(200, &json!({"id": "78", "channel_id": "223", "attachments": []}))
        }
        _ => Reply::empty(404),
    })
    .await;
    let client = client(&server);
    let files = [
        atelier_discord::rest::UploadedAttachment {
            id: "0".into(),
            filename: "a.png".into(),
            uploaded_filename: "opaque/1/a.png".into(),
        },
        atelier_discord::rest::UploadedAttachment {
            id: "1".into(),
            filename: "b.png".into(),
            uploaded_filename: "opaque/2/b.png".into(),
        },
    ];
    let message = client.send_message("222", "", &files).await.expect("sent");
    assert_eq!(
        message["attachments"][1]["url"],
        "https://cdn.discordapp.com/attachments/222/9001/b.png?ex=1&is=2&hm=3&"
    );
    let post = &server.requests_to("POST", "/api/v9/channels/222/messages")[0];
    let body = post.json();
    assert_eq!(body["type"], 0);
    assert_eq!(body["channel_id"], "222");
    assert_eq!(body["sticker_ids"], json!([]));
    assert_eq!(
        body["attachments"],
        json!([
            {"id": "0", "filename": "a.png", "uploaded_filename": "opaque/1/a.png"},
            {"id": "1", "filename": "b.png", "uploaded_filename": "opaque/2/b.png"}
        ])
    );
    assert!(body["nonce"].as_str().is_some_and(|n| !n.is_empty()));
    assert_eq!(post.header("authorization"), Some(TOKEN));
    // A message that came back without the files is an error, not a silent success.
    let short = client.send_message("223", "", &files).await.unwrap_err();
    assert!(matches!(short, RestError::Decode(_)), "{short:?}");
    // A channel id that is not a snowflake never reaches a URL.
    assert!(matches!(
        client.send_message("../x", "", &files).await,
        Err(RestError::InvalidId(_))
    ));
}

#[tokio::test]
async fn uploads_through_the_signed_url_without_credentials() {
    let base = Arc::new(std::sync::OnceLock::<String>::new());
    let base_in = Arc::clone(&base);
    let server = FakeHttp::start(
        move |request| match (request.method.as_str(), request.path()) {
            ("POST", "/api/v9/channels/222/attachments") => {
                let upload_url = format!(
                    "{}/upload/slot0?signature=xyz",
                    base_in.get().expect("base")
                );
                Reply::json(
                    200,
                    &json!({"attachments": [
                        {"id": 0, "upload_url": upload_url, "upload_filename": "opaque/123/cat.png"}
                    ]}),
                )
            }
            ("PUT", "/upload/slot0") => Reply::empty(200),
            _ => Reply::empty(404),
        },
    )
    .await;
    base.set(server.base.clone()).expect("set once");

    let uploaded = client(&server)
        .upload_attachment("222", "cat.png", b"\x89PNG fake".to_vec())
        .await
        .expect("uploaded");
    assert_eq!(uploaded.uploaded_filename, "opaque/123/cat.png");
    assert_eq!(uploaded.to_json()["id"], "0");

    let announce = &server.requests_to("POST", "/api/v9/channels/222/attachments")[0];
    assert_eq!(
        announce.json()["files"][0],
        json!({"filename": "cat.png", "file_size": 9, "id": "0"})
    );
    let put = &server.requests_to("PUT", "/upload/slot0")[0];
    assert_eq!(put.body, b"\x89PNG fake");
    assert_eq!(put.target, "/upload/slot0?signature=xyz");
    assert_eq!(
        put.header("authorization"),
        None,
        "token leaked to the storage host"
    );
    assert_eq!(put.header("content-type"), Some("application/octet-stream"));
}

#[tokio::test]
async fn outdated_command_refreshes_the_index_and_retries() {
    let index_reads = Arc::new(AtomicUsize::new(0));
    let reads = Arc::clone(&index_reads);
    let server = FakeHttp::start(move |request| match request.path() {
        "/api/v9/guilds/111/application-command-index" => {
            let version = if reads.fetch_add(1, Ordering::SeqCst) == 0 { "1" } else { "2" };
            Reply::json(200, &json!({"application_commands": [
                {"id": "938956540159881230", "application_id": "936929561302675456", "version": version, "name": "imagine", "type": 1},
                {"id": "5", "application_id": "999", "version": "7", "name": "imagine", "type": 1},
            ], "applications": []}))
        }
        "/api/v9/interactions" if request.json()["data"]["version"] == "1" => Reply::json(400, &json!({
            "message": "Invalid Form Body", "code": 50035,
            "errors": {"data": {"_errors": [{"code": "INTERACTION_APPLICATION_COMMAND_INVALID_VERSION", "message": "This command is outdated, please try again in a few minutes"}]}}
        })),
        "/api/v9/interactions" => Reply::empty(204),
        _ => Reply::empty(404),
    })
    .await;
    let command = SlashCommand {
        name: "imagine".into(),
        options: vec![json!({"type": 3, "name": "prompt", "value": "a red fox"})],
        attachments: Vec::new(),
    };
    client(&server)
        .slash_command(&ctx(), &command, "4242")
        .await
        .expect("accepted after refresh");

    assert_eq!(index_reads.load(Ordering::SeqCst), 2);
    let posts = server.requests_to("POST", "/api/v9/interactions");
    assert_eq!(posts.len(), 2);
    let body = posts[1].json();
    assert_eq!(body["type"], 2);
    assert_eq!(body["guild_id"], "111");
    assert_eq!(body["nonce"], "4242");
    assert_eq!(body["data"]["id"], "938956540159881230");
    assert_eq!(body["data"]["version"], "2");
    assert_eq!(body["data"]["options"][0]["value"], "a red fox");
}

#[tokio::test]
async fn unauthorized_is_typed_and_never_shows_the_token() {
    let server =
        FakeHttp::start(|_| Reply::json(401, &json!({"message": "401: Unauthorized", "code": 0})))
            .await;
    let client = client(&server);
    let error = client.current_user().await.expect_err("401");
    assert!(matches!(error, RestError::Unauthorized));
    for text in [format!("{error} {error:?}"), format!("{client:?}")] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
}

#[tokio::test]
async fn reads_messages_with_paging_and_falls_back_for_single_messages() {
    let server = FakeHttp::start(|request| match request.path() {
        "/api/v9/channels/222/messages/777" => Reply::json(
            403,
            &json!({"message": "Only bots can use this endpoint", "code": 20002}),
        ),
        "/api/v9/channels/222/messages" if request.target.contains("around=777") => {
            Reply::json(200, &json!([{"id": "777", "content": "hello"}]))
        }
        "/api/v9/channels/222/messages" => Reply::json(200, &json!([{"id": "9"}, {"id": "8"}])),
        _ => Reply::empty(404),
    })
    .await;
    let client = client(&server);
    let query = MessageQuery {
        limit: Some(2),
        before: Some("10".into()),
        ..MessageQuery::default()
    };
    let page = client.messages("222", &query).await.expect("page");
    assert_eq!(page.len(), 2);
    let first = &server.requests()[0];
    assert_eq!(
        first.target,
        "/api/v9/channels/222/messages?limit=2&before=10"
    );

    let message = client.message("222", "777").await.expect("fallback");
    assert_eq!(message["content"], "hello");
    assert!(matches!(
        client
            .messages("../../users/@me", &MessageQuery::default())
            .await,
        Err(RestError::InvalidId(_))
    ));
}

#[tokio::test]
async fn downloads_via_the_configured_cdn_without_credentials() {
    let server = FakeHttp::start(|_| Reply {
        status: 200,
        headers: vec![("content-type", "image/png".into())],
        body: "x".repeat(1000),
    })
    .await;
    let client = client(&server);
    let url = "https://cdn.discordapp.com/attachments/1/2/grid.png?ex=65&is=64&hm=ab";
    let bytes = client.download(url, 4096).await.expect("download");
    assert_eq!(bytes.len(), 1000);
    let request = &server.requests()[0];
    assert_eq!(
        request.target,
        "/attachments/1/2/grid.png?ex=65&is=64&hm=ab"
    );
    assert_eq!(request.header("authorization"), None);
    assert!(matches!(
        client.download(url, 10).await,
        Err(RestError::TooLarge { limit: 10 })
    ));
}

/// A CDN that sends no `Content-Length` and never stops: the download is cut at its limit
/// (never buffering more), and the server sees the connection closed.
#[tokio::test]
async fn a_download_without_a_length_is_cut_at_the_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 4096];
        let _ = socket.read(&mut request).await.unwrap();
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0usize;
        while socket.write_all(&chunk).await.is_ok() {
            sent += chunk.len();
        }
        sent
    });
    let config = RestConfig {
        api_base: format!("{base}/api/v9"),
        cdn_base: base,
        ..RestConfig::default()
    };
    let client = RestClient::new(&config, &Token::new(TOKEN)).expect("client");
    let limit = 1 << 20;
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        client.download("https://cdn.discordapp.com/attachments/1/2/big.png", limit),
    )
    .await
    .expect("the download ends");
    assert!(matches!(
        result,
        Err(RestError::TooLarge { limit: 1_048_576 })
    ));
    let sent = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the client hung up")
        .unwrap();
    assert!(sent >= limit, "{sent}");
}

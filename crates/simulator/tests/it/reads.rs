//! The read endpoints user-account clients call at start-up (the channel, the user, the
//! guilds, the guild and its channels, the gateway URL), served as Discord serves a member
//! under every API path, and the single-message endpoint refused as Discord refuses it to a
//! user account, with our client reading around the message instead.

use atelier_discord::rest::MessageQuery;
use atelier_discord::{Gateway, GatewayEvent, Token};
use atelier_simulator::Account;
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::rest::get;
use crate::support::{Raw, WAIT, config, gateway_config, http, rest_client, start};

/// The same API under each path prefix a client may use.
fn bases(sim: &atelier_simulator::Running) -> Vec<String> {
    let v9 = sim.api_base();
    assert!(v9.ends_with("/api/v9"), "{v9}");
    vec![
        v9.clone(),
        v9.replace("/api/v9", "/api/v10"),
        v9.replace("/api/v9", "/api"),
    ]
}

fn code(body: &Value) -> Option<u64> {
    body["code"].as_u64()
}

/// The channel object Discord documents for a guild text channel.
fn assert_channel(channel: &Value, account: &Account) {
    assert_eq!(channel["id"], account.channel_id.as_str(), "{channel}");
    assert_eq!(channel["type"], 0, "{channel}");
    assert_eq!(channel["guild_id"], account.guild_id.as_str(), "{channel}");
    assert!(channel["name"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(channel["position"].is_u64());
    assert_eq!(channel["permission_overwrites"], json!([]));
    assert!(channel["parent_id"].is_null() && channel["nsfw"] == false);
}

#[tokio::test]
async fn a_member_reads_its_channel_guilds_and_gateway_on_every_version() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let token = Some(account.token.as_str());
    for api in bases(&sim) {
        let (status, channel, _) =
            get(&format!("{api}/channels/{}", account.channel_id), token).await;
        assert_eq!(status, 200, "{api}: {channel}");
        assert_channel(&channel, &account);
        assert!(channel["last_message_id"].is_null());

        let (status, me, _) = get(&format!("{api}/users/@me"), token).await;
        assert_eq!(
            (status, me["id"].as_str()),
            (200, Some(account.user_id.as_str()))
        );
        assert_eq!(me["username"], account.username.as_str());

        // Unknown query parameters are ignored, as Discord ignores them.
        let (status, guilds, _) = get(&format!("{api}/users/@me/guilds?nonsense=1"), token).await;
        assert_eq!(status, 200, "{api}: {guilds}");
        let guilds = guilds.as_array().unwrap();
        assert_eq!(guilds.len(), 1);
        let partial = &guilds[0];
        assert_eq!(partial["id"], account.guild_id.as_str());
        assert_eq!(partial["owner"], true);
        assert!(partial["features"].is_array() && partial["icon"].is_null());
        // A string since API v8, the owner's computed permissions: every bit, ADMINISTRATOR too.
        let permissions: u64 = partial["permissions"].as_str().unwrap().parse().unwrap();
        assert_ne!(permissions & (1 << 3), 0);
        assert!(partial.get("approximate_member_count").is_none());
        let (_, counted, _) = get(&format!("{api}/users/@me/guilds?with_counts=true"), token).await;
        assert!(counted[0]["approximate_member_count"].as_u64().unwrap() >= 2);

        let (status, guild, _) = get(
            &format!("{api}/guilds/{}?with_counts=true&foo=bar", account.guild_id),
            token,
        )
        .await;
        assert_eq!(status, 200, "{api}: {guild}");
        assert_eq!(guild["id"], account.guild_id.as_str());
        assert_eq!(guild["name"], partial["name"]);
        assert_eq!(guild["owner_id"], account.user_id.as_str());
        assert_eq!(guild["roles"][0]["id"], account.guild_id.as_str());
        assert_eq!(guild["roles"][0]["name"], "@everyone");
        assert!(guild["roles"][0]["permissions"].is_string());
        assert!(guild["approximate_presence_count"].is_u64());
        for field in ["features", "emojis"] {
            assert!(guild[field].is_array(), "{field}");
        }
        for field in ["verification_level", "premium_tier", "afk_timeout"] {
            assert!(guild[field].is_u64(), "{field}");
        }

        let (status, channels, _) = get(
            &format!("{api}/guilds/{}/channels", account.guild_id),
            token,
        )
        .await;
        assert_eq!(status, 200, "{api}: {channels}");
        assert_eq!(channels.as_array().unwrap().len(), 1);
        assert_channel(&channels[0], &account);

        // No authentication needed; the URL is the simulator's own gateway.
        let (status, gateway, _) = get(&format!("{api}/gateway"), None).await;
        assert_eq!(status, 200);
        assert_eq!(gateway, json!({"url": sim.gateway_url()}));
        assert!(sim.gateway_url().starts_with("ws://127.0.0.1:"));
    }
    // After a message the channel names it as its last.
    let posted = post_message(&sim, &account, "hello").await;
    let (_, channel, _) = get(
        &format!("{}/channels/{}", sim.api_base(), account.channel_id),
        token,
    )
    .await;
    assert_eq!(channel["last_message_id"], posted["id"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn other_guilds_and_channels_are_refused_as_discord_refuses_them() {
    let sim = start(config()).await;
    let [me, other] = [sim.accounts()[0].clone(), sim.accounts()[1].clone()];
    let token = Some(me.token.as_str());
    for api in bases(&sim) {
        for path in [
            format!("channels/{}", other.channel_id),
            format!("guilds/{}", other.guild_id),
            format!("guilds/{}/channels", other.guild_id),
        ] {
            let (status, body, _) = get(&format!("{api}/{path}"), token).await;
            assert_eq!(
                (status, body),
                (403, json!({"message": "Missing Access", "code": 50001})),
                "{api}/{path}"
            );
        }
        let (status, body, _) = get(&format!("{api}/channels/1"), token).await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Unknown Channel", "code": 10003}))
        );
        for path in ["guilds/1", "guilds/1/channels"] {
            let (status, body, _) = get(&format!("{api}/{path}"), token).await;
            assert_eq!(
                (status, body),
                (404, json!({"message": "Unknown Guild", "code": 10004})),
                "{api}/{path}"
            );
        }
        for path in ["channels/abc", "guilds/abc", "guilds/abc/channels"] {
            let (status, body, _) = get(&format!("{api}/{path}"), token).await;
            assert_eq!((status, code(&body)), (400, Some(50035)), "{api}/{path}");
        }
        for path in [
            format!("channels/{}", me.channel_id),
            "users/@me/guilds".to_owned(),
            format!("guilds/{}", me.guild_id),
            format!("guilds/{}/channels", me.guild_id),
        ] {
            let (status, body, _) = get(&format!("{api}/{path}"), None).await;
            assert_eq!((status, code(&body)), (401, Some(0)), "{api}/{path}");
        }
        // The guild list pages like Discord's: limit 1-200, before/after by guild id.
        let (status, body, _) = get(&format!("{api}/users/@me/guilds?limit=0"), token).await;
        assert_eq!((status, code(&body)), (400, Some(50035)));
        let (_, body, _) = get(
            &format!("{api}/users/@me/guilds?after={}", me.guild_id),
            token,
        )
        .await;
        assert_eq!(body, json!([]));
        let (_, body, _) = get(
            &format!("{api}/users/@me/guilds?before={}&limit=1", me.guild_id),
            token,
        )
        .await;
        assert_eq!(body, json!([]));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_client_starting_from_its_channel_learns_its_guild_and_connects() {
    // The start-up of a client configured with a token and a channel id only: the gateway URL,
    // the channel (for its guild), the guild's command index, then the gateway, whose READY
    // must name the same guild and channel.
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let token = Some(account.token.as_str());
    let api = sim.api_base().replace("/api/v9", "/api/v10");
    let (_, gateway, _) = get(&format!("{api}/gateway"), None).await;
    let url = gateway["url"].as_str().unwrap().to_owned();
    let (status, channel, _) = get(&format!("{api}/channels/{}", account.channel_id), token).await;
    assert_eq!(status, 200);
    let guild_id = channel["guild_id"].as_str().unwrap().to_owned();
    let (status, index, _) = get(
        &format!("{api}/guilds/{guild_id}/application-command-index"),
        token,
    )
    .await;
    assert_eq!(status, 200, "{index}");
    assert!(
        index["application_commands"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );

    let mut raw = Raw::connect(&sim, "v=10&encoding=json").await;
    let ready = raw.identify(&account.token).await;
    let guild = &ready["guilds"][0];
    assert_eq!(guild["id"], guild_id.as_str());
    assert_eq!(guild["channels"][0]["id"], account.channel_id.as_str());
    let (_, rest_guild, _) = get(&format!("{api}/guilds/{guild_id}"), token).await;
    assert_eq!(rest_guild["name"], guild["name"]);
    assert_eq!(channel["name"], guild["channels"][0]["name"]);

    // Our own client, pointed at the URL `GET /gateway` gave, gets READY there.
    let config = atelier_discord::GatewayConfig {
        url,
        ..gateway_config(&sim)
    };
    let (_handle, mut events) = Gateway::spawn(config, Token::new(&account.token), None);
    loop {
        match timeout(WAIT, events.recv()).await.unwrap().unwrap() {
            GatewayEvent::Ready { user_id, .. } => {
                assert_eq!(user_id, account.user_id);
                break;
            }
            GatewayEvent::Fatal { reason } => panic!("fatal: {reason}"),
            _ => {}
        }
    }
    sim.shutdown().await;
}

/// `POST channels/{id}/messages` as the user; returns the message.
async fn post_message(sim: &atelier_simulator::Running, account: &Account, content: &str) -> Value {
    let response = http()
        .post(format!(
            "{}/channels/{}/messages",
            sim.api_base(),
            account.channel_id
        ))
        .header("authorization", &account.token)
        .json(&json!({"content": content, "nonce": "1", "tts": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn one_message_is_for_bots_and_our_client_reads_it_around_its_id() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let first = post_message(&sim, &account, "first").await;
    let wanted = post_message(&sim, &account, "wanted").await;
    post_message(&sim, &account, "last").await;
    let id = wanted["id"].as_str().unwrap();
    for api in bases(&sim) {
        let url = format!("{api}/channels/{}/messages/{id}", account.channel_id);
        let (status, body, _) = get(&url, Some(&account.token)).await;
        assert_eq!(
            (status, body),
            (
                403,
                json!({"message": "Only bots can use this endpoint", "code": 20002})
            ),
            "{url}"
        );
        assert_eq!(get(&url, None).await.0, 401);
    }
    // What the client falls back to: the message itself, first of a one-message page around it
    // (unknown query parameters ignored).
    let (status, page, _) = get(
        &format!(
            "{}/channels/{}/messages?around={id}&limit=1&unknown=yes",
            sim.api_base(),
            account.channel_id
        ),
        Some(&account.token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page.as_array().map(Vec::len), Some(1));
    assert_eq!(page[0]["id"], id);

    let client = rest_client(&sim, &account.token);
    let before = sim.control().stats().rest_requests;
    let read = client.message(&account.channel_id, id).await.unwrap();
    assert_eq!(read["content"], "wanted");
    assert_eq!(read["id"], id);
    // Two requests: the refused one and the read around the id.
    assert_eq!(sim.control().stats().rest_requests - before, 2);
    let read = client
        .message(&account.channel_id, first["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(read["content"], "first");
    // An id with no message: around it lies another message, which is not the one asked for.
    let error = client.message(&account.channel_id, "42").await.unwrap_err();
    assert!(error.is_unknown_message(), "{error}");
    // The page the fallback asked for, as the client builds it.
    let around = MessageQuery {
        limit: Some(1),
        around: Some(id.to_owned()),
        ..MessageQuery::default()
    };
    let page = client.messages(&account.channel_id, &around).await.unwrap();
    assert_eq!(page[0]["id"], id);
    sim.shutdown().await;
}

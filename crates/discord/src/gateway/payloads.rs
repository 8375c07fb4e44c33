//! The payloads this client sends: IDENTIFY, RESUME and heartbeats.

use serde_json::{Value, json};

use crate::events::op;
use crate::properties::ClientProperties;
use crate::session::Session;
use crate::token::Token;

/// IDENTIFY for a user account: no `intents` (user sessions have none), `compress: false`
/// (that flag is the old per-payload compression, unrelated to zlib-stream), and the
/// presence / client state the web client sends.
pub(crate) fn identify(token: &Token, properties: &ClientProperties) -> String {
    json!({
        "op": op::IDENTIFY,
        "d": {
            "token": token.expose(),
            "capabilities": properties.capabilities,
            "properties": properties.to_json(),
            "presence": {"status": "online", "since": 0, "activities": [], "afk": false},
            "compress": false,
            "client_state": {
                "guild_versions": {},
                "highest_last_message_id": "0",
                "read_state_version": 0,
                "user_guild_settings_version": -1,
                "user_settings_version": -1,
                "private_channels_version": "0",
                "api_code_version": 0,
            },
        },
    })
    .to_string()
}

pub(crate) fn resume(token: &Token, session: &Session) -> String {
    json!({
        "op": op::RESUME,
        "d": {"token": token.expose(), "session_id": session.id, "seq": session.sequence},
    })
    .to_string()
}

/// op 1 carrying the last sequence number seen (null before the first dispatch).
pub(crate) fn heartbeat(seq: Option<u64>) -> String {
    json!({"op": op::HEARTBEAT, "d": seq.map_or(Value::Null, Value::from)}).to_string()
}

/// The full connection URL for a gateway base such as `wss://gateway.discord.gg`.
pub(crate) fn gateway_url(base: &str) -> String {
    let base = base.split('?').next().unwrap_or(base).trim_end_matches('/');
    format!("{base}/?v=9&encoding=json&compress=zlib-stream")
}

#[cfg(test)]
mod tests {
    use super::{gateway_url, heartbeat, identify, resume};
    use crate::{ClientProperties, Session, Token};
    use serde_json::Value;

    #[test]
    fn identify_has_user_account_shape() {
        let raw = identify(&Token::new("tok"), &ClientProperties::default());
        let v: Value = serde_json::from_str(&raw).expect("json");
        assert_eq!(v["op"], 2);
        assert_eq!(v["d"]["token"], "tok");
        assert_eq!(v["d"]["capabilities"], 16381);
        assert_eq!(v["d"]["compress"], false);
        assert_eq!(v["d"]["properties"]["browser"], "Chrome");
        assert!(v["d"].get("intents").is_none());
    }

    #[test]
    fn resume_and_heartbeat() {
        let session = Session {
            id: "sid".into(),
            sequence: 12,
            resume_url: "wss://r".into(),
        };
        let v: Value = serde_json::from_str(&resume(&Token::new("t"), &session)).expect("json");
        assert_eq!(v["d"]["seq"], 12);
        assert_eq!(v["d"]["session_id"], "sid");
        assert_eq!(heartbeat(None), r#"{"d":null,"op":1}"#);
        assert_eq!(heartbeat(Some(5)), r#"{"d":5,"op":1}"#);
    }

    #[test]
    fn urls() {
        let want = "wss://gateway.discord.gg/?v=9&encoding=json&compress=zlib-stream";
        assert_eq!(gateway_url("wss://gateway.discord.gg"), want);
        assert_eq!(gateway_url("wss://gateway.discord.gg/"), want);
        assert_eq!(gateway_url("wss://gateway.discord.gg/?v=10"), want);
    }
}

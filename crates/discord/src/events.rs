//! What the gateway hands to the caller ([`GatewayEvent`]) and the few wire structs it
//! decodes itself.
//!
//! Only the fields the connection logic needs are typed (`op`, `s`, `t`, HELLO's interval,
//! READY's ids). Everything else stays a raw [`serde_json::Value`]: the caller decides
//! what a dispatch means, and unknown fields can never break decoding.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::gateway::State;
use crate::session::Session;

/// Something the gateway task reports.
#[derive(Clone, Debug, PartialEq)]
pub enum GatewayEvent {
    /// A new session was identified.
    Ready { session: Session, user_id: String },
    /// An existing session was resumed; missed dispatches were replayed just before.
    Resumed { session: Session },
    /// Any dispatch (op 0) other than READY and RESUMED, with its raw payload.
    Dispatch {
        name: String,
        seq: Option<u64>,
        data: Value,
    },
    /// The connection state changed.
    StateChanged(State),
    /// A connection attempt failed, or a connection ended, and the gateway will try again
    /// after `retry_in`: what a caller waiting for READY can tell a person. `attempts` counts
    /// the failures in a row (0 after a connection that stayed up long enough to count as
    /// stable). `reason` says what happened in words (`cannot connect to ws://…: connection
    /// refused`); it never holds the token.
    Retrying {
        attempts: u32,
        reason: String,
        retry_in: Duration,
    },
    /// The gateway gave up for good; no further events follow.
    Fatal { reason: FatalReason },
}

/// Why the gateway stopped for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FatalReason {
    /// Close code 4004: the token is invalid (expired, rotated, or the account is
    /// disabled). Reconnecting would only repeat the failure.
    AuthenticationFailed,
    /// Another close code Discord documents as "do not reconnect" (4010-4014).
    Rejected { code: u16, reason: String },
}

impl fmt::Display for FatalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AuthenticationFailed => f.write_str("authentication failed (close code 4004)"),
            Self::Rejected { code, reason } => write!(f, "gateway closed with {code}: {reason}"),
        }
    }
}

/// Gateway opcodes this client sends or understands.
pub(crate) mod op {
    pub const DISPATCH: u64 = 0;
    pub const HEARTBEAT: u64 = 1;
    pub const IDENTIFY: u64 = 2;
    pub const RESUME: u64 = 6;
    pub const RECONNECT: u64 = 7;
    pub const INVALID_SESSION: u64 = 9;
    pub const HELLO: u64 = 10;
    pub const HEARTBEAT_ACK: u64 = 11;
}

/// One decoded gateway payload.
#[derive(Debug)]
pub(crate) enum Incoming {
    Hello {
        interval: Duration,
    },
    HeartbeatAck,
    HeartbeatRequest,
    Reconnect,
    InvalidSession {
        resumable: bool,
    },
    Ready(ReadyInfo),
    Resumed {
        seq: Option<u64>,
    },
    Dispatch {
        name: String,
        seq: Option<u64>,
        data: Value,
    },
    Unknown {
        op: u64,
    },
}

/// The part of READY this client keeps.
#[derive(Debug)]
pub(crate) struct ReadyInfo {
    pub session_id: String,
    pub resume_url: Option<String>,
    pub user_id: String,
    pub seq: Option<u64>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    op: u64,
    #[serde(default)]
    s: Option<u64>,
    #[serde(default)]
    t: Option<String>,
    #[serde(borrow, default)]
    d: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Hello {
    heartbeat_interval: u64,
}

#[derive(Deserialize)]
struct MinimalReady {
    session_id: String,
    #[serde(default)]
    resume_gateway_url: Option<String>,
    user: MinimalUser,
}

#[derive(Deserialize)]
struct MinimalUser {
    id: String,
}

/// Decodes one complete gateway message.
///
/// Fails on anything that is not a JSON object with a numeric `op`, or when a payload the
/// connection logic relies on (HELLO, READY) lacks its fields; the caller logs and moves on.
pub(crate) fn decode(bytes: &[u8]) -> Result<Incoming, serde_json::Error> {
    let envelope: Envelope<'_> = serde_json::from_slice(bytes)?;
    let data = envelope.d.map_or("null", RawValue::get);
    Ok(match envelope.op {
        op::HELLO => {
            let hello: Hello = serde_json::from_str(data)?;
            Incoming::Hello {
                interval: Duration::from_millis(hello.heartbeat_interval),
            }
        }
        op::HEARTBEAT_ACK => Incoming::HeartbeatAck,
        op::HEARTBEAT => Incoming::HeartbeatRequest,
        op::RECONNECT => Incoming::Reconnect,
        // `d` is a boolean; anything else is read as "not resumable", the safe choice.
        op::INVALID_SESSION => Incoming::InvalidSession {
            resumable: serde_json::from_str::<bool>(data).unwrap_or(false),
        },
        op::DISPATCH => decode_dispatch(envelope.t, envelope.s, data)?,
        other => Incoming::Unknown { op: other },
    })
}

fn decode_dispatch(
    name: Option<String>,
    seq: Option<u64>,
    data: &str,
) -> Result<Incoming, serde_json::Error> {
    let name = name.unwrap_or_default();
    Ok(match name.as_str() {
        "READY" => {
            let ready: MinimalReady = serde_json::from_str(data)?;
            Incoming::Ready(ReadyInfo {
                session_id: ready.session_id,
                resume_url: ready.resume_gateway_url,
                user_id: ready.user.id,
                seq,
            })
        }
        "RESUMED" => Incoming::Resumed { seq },
        _ => Incoming::Dispatch {
            data: serde_json::from_str(data)?,
            name,
            seq,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::{Incoming, decode};
    use std::time::Duration;

    #[test]
    fn decodes_the_payloads_the_connection_needs() {
        let hello = decode(br#"{"op":10,"d":{"heartbeat_interval":41250}}"#).expect("hello");
        assert!(
            matches!(hello, Incoming::Hello { interval } if interval == Duration::from_millis(41250))
        );
        let ready = decode(
            br#"{"op":0,"s":1,"t":"READY","d":{"session_id":"s1","resume_gateway_url":"wss://r",
                "user":{"id":"42","username":"x"},"guilds":[{"id":"1"}]}}"#,
        )
        .expect("ready");
        assert!(
            matches!(ready, Incoming::Ready(r) if r.session_id == "s1" && r.user_id == "42" && r.seq == Some(1))
        );
        let invalid = decode(br#"{"op":9,"d":true}"#).expect("op 9");
        assert!(matches!(
            invalid,
            Incoming::InvalidSession { resumable: true }
        ));
        let invalid = decode(br#"{"op":9,"d":null}"#).expect("op 9 null");
        assert!(matches!(
            invalid,
            Incoming::InvalidSession { resumable: false }
        ));
        let unknown = decode(br#"{"op":99,"d":{}}"#).expect("unknown op");
        assert!(matches!(unknown, Incoming::Unknown { op: 99 }));
    }

    #[test]
    fn keeps_dispatch_data_raw() {
        let event = decode(br#"{"op":0,"s":7,"t":"MESSAGE_CREATE","d":{"id":"9","nonce":"5"}}"#)
            .expect("dispatch");
        let Incoming::Dispatch { name, seq, data } = event else {
            panic!("not a dispatch: {event:?}");
        };
        assert_eq!((name.as_str(), seq), ("MESSAGE_CREATE", Some(7)));
        assert_eq!(data["nonce"], "5");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for input in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"op":"x"}"#,
            br#"{"op":10,"d":{}}"#,
            br#"{"op":0,"t":"READY","d":{"session_id":1}}"#,
            b"\xff\xfe",
        ] {
            assert!(decode(input).is_err(), "accepted {input:?}");
        }
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let valid = br#"{"op":0,"s":3,"t":"READY","d":{"session_id":"a","user":{"id":"1"}}}"#;
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..5000 {
            let mut bytes = valid.to_vec();
            for _ in 0..rng.usize(1..6) {
                let at = rng.usize(..bytes.len());
                bytes[at] = rng.u8(..);
            }
            let _ = decode(&bytes);
            let noise: Vec<u8> = (0..rng.usize(..64)).map(|_| rng.u8(..)).collect();
            let _ = decode(&noise);
        }
    }
}

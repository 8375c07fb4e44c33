//! The resumable gateway session, serializable so the caller can store it and resume
//! after a restart instead of identifying again.

use serde::{Deserialize, Serialize};

/// What RESUME needs: the session id and resume URL from READY, plus the last sequence
/// number received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// `session_id` from READY.
    pub id: String,
    /// Last dispatch sequence number seen (`s`).
    pub sequence: u64,
    /// `resume_gateway_url` from READY (scheme and host, no query).
    pub resume_url: String,
}

#[cfg(test)]
mod tests {
    use super::Session;

    #[test]
    fn round_trips_through_json() {
        let session = Session {
            id: "abc".into(),
            sequence: 42,
            resume_url: "wss://gateway-us-east1-b.discord.gg".into(),
        };
        let json = serde_json::to_string(&session).expect("serializes");
        let back: Session = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, session);
    }
}

//! The browser identity the account presents: IDENTIFY `properties` on the gateway and the
//! `User-Agent` / `X-Super-Properties` headers on REST.
//!
//! A user account driven by a program should look like the web client it would normally
//! be, and the gateway and REST sides must agree; one struct feeds both.

use base64::Engine as _;
use serde_json::{Value, json};

/// Client properties; the defaults describe Chrome 112 on macOS, the identity the
/// open-source proxies use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientProperties {
    /// Sent as `User-Agent` and as `browser_user_agent`.
    pub user_agent: String,
    pub os: String,
    pub os_version: String,
    pub browser: String,
    pub browser_version: String,
    /// Locale such as `en-US`; also sent as `X-Discord-Locale` and `Accept-Language`.
    pub system_locale: String,
    pub client_build_number: u64,
    pub release_channel: String,
    /// Where the "browser" came from (empty by default; a caller may set a site URL).
    pub referrer: String,
    /// Host part of [`ClientProperties::referrer`].
    pub referring_domain: String,
    /// Gateway `capabilities` bit field sent in IDENTIFY.
    pub capabilities: u64,
}

impl Default for ClientProperties {
    fn default() -> Self {
        Self {
            user_agent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
                         (KHTML, like Gecko) Chrome/112.0.0.0 Safari/537.36"
                .to_owned(),
            os: "Mac OS X".to_owned(),
            os_version: "10.15.7".to_owned(),
            browser: "Chrome".to_owned(),
            browser_version: "112.0.0.0".to_owned(),
            system_locale: "en-US".to_owned(),
            client_build_number: 222_963,
            release_channel: "stable".to_owned(),
            referrer: String::new(),
            referring_domain: String::new(),
            capabilities: 16381,
        }
    }
}

impl ClientProperties {
    /// The `properties` object of IDENTIFY, also the decoded `X-Super-Properties`.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "os": self.os,
            "browser": self.browser,
            "device": "",
            "system_locale": self.system_locale,
            "browser_user_agent": self.user_agent,
            "browser_version": self.browser_version,
            "os_version": self.os_version,
            "referrer": self.referrer,
            "referring_domain": self.referring_domain,
            "referrer_current": "",
            "referring_domain_current": "",
            "release_channel": self.release_channel,
            "client_build_number": self.client_build_number,
            "client_event_source": null,
        })
    }

    /// Base64 of the JSON properties, the value of the `X-Super-Properties` header.
    pub(crate) fn super_properties(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_json().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::ClientProperties;
    use base64::Engine as _;

    #[test]
    fn super_properties_decode_to_the_identify_properties() {
        let props = ClientProperties::default();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(props.super_properties())
            .expect("valid base64");
        let value: serde_json::Value = serde_json::from_slice(&raw).expect("json");
        assert_eq!(value, props.to_json());
        assert_eq!(value["client_build_number"], 222_963);
        assert_eq!(value["os"], "Mac OS X");
    }
}

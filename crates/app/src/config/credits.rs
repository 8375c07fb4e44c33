//! `[credits]`: whether generations cost credits, what a new user starts with, and what each
//! provider's kinds of generation cost. [`CreditsConfig::cost`] is the one place a cost is
//! decided.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{GenerationKind, MAX_AMOUNT};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CreditsConfig {
    /// Whether a user's generation is refused when their balance is short (off: no checks,
    /// nothing taken).
    pub enabled: bool,
    /// Credits a new user starts with (a `bonus` entry in their ledger).
    pub initial: u32,
    pub cost: CostTable,
}

/// What a generation costs: a provider's own price for its kind, else that provider's
/// `default`, else the table's `default`. Imports cost nothing.
///
/// ```toml
/// [credits.cost]
/// default = 1
/// [credits.cost.midjourney]
/// default = 4
/// upscale = 2
/// ```
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct CostTable {
    pub default: u32,
    /// By provider name.
    #[serde(flatten)]
    pub providers: BTreeMap<String, ProviderCosts>,
}

impl Default for CostTable {
    fn default() -> Self {
        Self {
            default: 1,
            providers: BTreeMap::new(),
        }
    }
}

/// One provider's prices, by kind of generation; an unset kind costs the provider's `default`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderCosts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imagine: Option<u32>,
    /// U1–U4 and the subtle and creative upscales.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upscale: Option<u32>,
    /// V1–V4 and vary strong or subtle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variation: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reroll: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zoom: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pan: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub describe: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shorten: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blend: Option<u32>,
    /// Animate and Extend (video).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub animate: Option<u32>,
}

impl ProviderCosts {
    fn of(&self, kind: GenerationKind) -> Option<u32> {
        match kind {
            GenerationKind::Imagine => self.imagine,
            GenerationKind::Upscale => self.upscale,
            GenerationKind::Variation => self.variation,
            GenerationKind::Reroll => self.reroll,
            GenerationKind::Zoom => self.zoom,
            GenerationKind::Pan => self.pan,
            GenerationKind::Describe => self.describe,
            GenerationKind::Shorten => self.shorten,
            GenerationKind::Blend => self.blend,
            GenerationKind::Animate => self.animate,
            GenerationKind::Import => Some(0),
        }
        .or(self.default)
    }
}

impl CreditsConfig {
    /// What a generation of `kind` on `provider` costs (0: nothing is taken), whether or not
    /// credits are `enabled`.
    pub fn cost(&self, provider: &str, kind: GenerationKind) -> i64 {
        if kind == GenerationKind::Import {
            return 0;
        }
        let price = self
            .cost
            .providers
            .get(provider)
            .and_then(|p| p.of(kind))
            .unwrap_or(self.cost.default);
        i64::from(price).min(MAX_AMOUNT)
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    use super::*;

    fn parsed(toml: &str) -> Result<CreditsConfig, Box<figment::Error>> {
        Figment::from(Toml::string(toml))
            .extract()
            .map_err(Box::new)
    }

    #[test]
    fn a_kind_costs_its_price_else_its_providers_default_else_the_default() {
        let c = parsed(
            "enabled = true\ninitial = 10\n[cost]\ndefault = 2\n[cost.midjourney]\ndefault = 4\nupscale = 1\n[cost.sandbox]\nimagine = 3\n",
        )
        .unwrap();
        assert!(c.enabled);
        assert_eq!(c.initial, 10);
        assert_eq!(c.cost("midjourney", GenerationKind::Upscale), 1);
        assert_eq!(c.cost("midjourney", GenerationKind::Imagine), 4);
        assert_eq!(c.cost("sandbox", GenerationKind::Imagine), 3);
        assert_eq!(c.cost("sandbox", GenerationKind::Blend), 2);
        assert_eq!(c.cost("other", GenerationKind::Zoom), 2);
        assert_eq!(c.cost("midjourney", GenerationKind::Import), 0);
    }

    #[test]
    fn defaults_cost_one_and_check_nothing() {
        let c = CreditsConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.initial, 0);
        assert_eq!(c.cost("sandbox", GenerationKind::Imagine), 1);
    }

    #[test]
    fn a_misspelt_kind_is_refused() {
        let e = parsed("[cost.midjourney]\nupscael = 1\n").unwrap_err();
        assert!(e.to_string().contains("upscael"), "{e}");
        assert!(parsed("initial = -1\n").is_err());
    }
}

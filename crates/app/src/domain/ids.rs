//! Typed identifiers. All are `UUIDv7`, so they sort by creation time in every index.

use std::fmt;
use std::str::FromStr;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            pub fn from_uuid(id: uuid::Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| format!("{:?} is not a valid {} id (expected a UUID)", s, $what))
            }
        }
    };
}

id_type!(
    /// One generation: a prompt sent to a provider, or an import.
    GenerationId,
    "generation"
);
id_type!(
    /// One stored image (a grid, an upscale, a variant).
    ImageId,
    "image"
);
id_type!(
    /// One durable job in the queue; written before any provider is called.
    JobId,
    "job"
);
id_type!(
    /// One user of a server: the owner of generations and images, the holder of API keys and
    /// credits. A Supabase user's id (`auth.uid()`) is used as it is.
    UserId,
    "user"
);
id_type!(
    /// One API key of a user (its secret is never stored, only its SHA-256).
    ApiKeyId,
    "API key"
);

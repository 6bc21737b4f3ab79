//! burrow configuration in two stages: raw serde shapes, validated into a
//! resolved model whose errors name the field path and the reason.
//!
//! Module map:
//! - [`app`]: edge apps in the shape of the Spectrum API.
//! - [`connector`]: the connector's cloudflared-compatible `config.yml`,
//!   ingress rules and their services.
//! - [`credentials`]: the tunnel credentials JSON and token.
//! - [`edge`]: the edge's `edge.yaml`.
//! - [`duration`]: `30s` / `1m` / `500ms` durations.
//! - [`Secret`]: a string whose `Debug` and `Display` print a mask.

pub mod api;
pub mod app;
pub mod connector;
pub mod credentials;
pub mod duration;
pub mod edge;
pub mod egress;
pub mod identity;
pub mod origin_request;

use std::fmt;

/// A configuration error: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// Path of the offending field, e.g. `ingress[1].service`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A secret value. `Debug` and `Display` print `"***"`; use
/// [`Secret::expose`] where the real value is needed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

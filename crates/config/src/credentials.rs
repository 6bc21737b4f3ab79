//! Tunnel credentials: the JSON file `burrow tunnel create` writes (field
//! names follow cloudflared's `AccountTag`, `TunnelID`, `TunnelSecret`), and
//! the same content as one token string (`burrow tunnel token`).

use crate::{ConfigError, Secret};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Raw shape of a credentials file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    #[serde(rename = "AccountTag")]
    account_tag: String,
    #[serde(rename = "TunnelID")]
    tunnel_id: String,
    #[serde(rename = "TunnelSecret")]
    tunnel_secret: String,
    #[serde(
        rename = "TunnelName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    tunnel_name: Option<String>,
    /// PEM of the CA that signed the edge's tunnel certificate.
    #[serde(rename = "EdgeCA", default, skip_serializing_if = "Option::is_none")]
    edge_ca: Option<String>,
    /// Edge addresses (`host:port`) known when the credentials were made.
    #[serde(rename = "Edges", default, skip_serializing_if = "Vec::is_empty")]
    edges: Vec<String>,
    /// The edge domain (SNI names are `quic.<domain>` and `h2.<domain>`).
    #[serde(
        rename = "EdgeDomain",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    edge_domain: Option<String>,
}

/// Validated tunnel credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Account id.
    pub account_id: uuid::Uuid,
    /// Tunnel id.
    pub tunnel_id: uuid::Uuid,
    /// Tunnel secret bytes, base64 in the file.
    pub secret: SecretBytes,
    /// Tunnel name, when known.
    pub tunnel_name: Option<String>,
    /// Edge CA certificate (PEM), when embedded.
    pub edge_ca_pem: Option<String>,
    /// Edge addresses, when embedded.
    pub edges: Vec<String>,
    /// Edge domain, when embedded.
    pub edge_domain: Option<String>,
}

/// Secret bytes whose `Debug` prints a mask.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(pub Vec<u8>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

const TOKEN_PREFIX: &str = "burrow1.";

impl Credentials {
    /// Parses a credentials JSON document.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field (`TunnelID`, `TunnelSecret`, ...).
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let raw: RawCredentials = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("credentials", e.to_string()))?;
        let account_id = uuid::Uuid::parse_str(&raw.account_tag)
            .map_err(|e| ConfigError::new("AccountTag", format!("not a UUID: {e}")))?;
        let tunnel_id = uuid::Uuid::parse_str(&raw.tunnel_id)
            .map_err(|e| ConfigError::new("TunnelID", format!("not a UUID: {e}")))?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(raw.tunnel_secret.as_bytes())
            .map_err(|_| ConfigError::new("TunnelSecret", "not valid base64"))?;
        if secret.len() < 16 || secret.len() > burrow_secret_max() {
            return Err(ConfigError::new(
                "TunnelSecret",
                format!(
                    "must decode to 16-{} bytes, got {}",
                    burrow_secret_max(),
                    secret.len()
                ),
            ));
        }
        Ok(Self {
            account_id,
            tunnel_id,
            secret: SecretBytes(secret),
            tunnel_name: raw.tunnel_name,
            edge_ca_pem: raw.edge_ca,
            edges: raw.edges,
            edge_domain: raw.edge_domain,
        })
    }

    /// Serializes to the credentials JSON (pretty-printed).
    pub fn to_json(&self) -> String {
        let raw = RawCredentials {
            account_tag: self.account_id.to_string(),
            tunnel_id: self.tunnel_id.to_string(),
            tunnel_secret: base64::engine::general_purpose::STANDARD.encode(&self.secret.0),
            tunnel_name: self.tunnel_name.clone(),
            edge_ca: self.edge_ca_pem.clone(),
            edges: self.edges.clone(),
            edge_domain: self.edge_domain.clone(),
        };
        serde_json::to_string_pretty(&raw).expect("credentials always serialize")
    }

    /// The credentials as one token string (`burrow1.` + base64url of the JSON).
    pub fn to_token(&self) -> Secret {
        Secret::new(format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.to_json())
        ))
    }

    /// Parses a token made by [`Credentials::to_token`].
    ///
    /// # Errors
    /// [`ConfigError`] on field `token`, or naming a field inside it.
    pub fn from_token(token: &str) -> Result<Self, ConfigError> {
        let body = token.trim().strip_prefix(TOKEN_PREFIX).ok_or_else(|| {
            ConfigError::new("token", format!("must start with '{TOKEN_PREFIX}'"))
        })?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| ConfigError::new("token", "not valid base64url"))?;
        let json =
            String::from_utf8(json).map_err(|_| ConfigError::new("token", "not UTF-8 inside"))?;
        Self::from_json(&json)
    }
}

fn burrow_secret_max() -> usize {
    256
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_token_round_trip_and_debug_masks_secret() {
        let c = Credentials {
            account_id: uuid::Uuid::new_v4(),
            tunnel_id: uuid::Uuid::new_v4(),
            secret: SecretBytes(vec![7; 32]),
            tunnel_name: Some("t".into()),
            edge_ca_pem: None,
            edges: vec!["127.0.0.1:7844".into()],
            edge_domain: None,
        };
        assert_eq!(Credentials::from_json(&c.to_json()).unwrap(), c);
        assert_eq!(Credentials::from_token(c.to_token().expose()).unwrap(), c);
        assert!(!format!("{c:?}").contains("7, 7"));
        assert_eq!(format!("{}", c.to_token()), "***");
    }

    #[test]
    fn errors_name_the_field() {
        let e = Credentials::from_json(
            r#"{"AccountTag":"x","TunnelID":"6ff42ae2-765d-4adf-8112-31c55c1551ef","TunnelSecret":"AAAA"}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "AccountTag");
        let e = Credentials::from_json(
            r#"{"AccountTag":"6ff42ae2-765d-4adf-8112-31c55c1551ef","TunnelID":"6ff42ae2-765d-4adf-8112-31c55c1551ef","TunnelSecret":"AAAA"}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "TunnelSecret");
    }
}

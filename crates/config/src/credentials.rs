//! Tunnel credentials: the JSON file `burrow tunnel create` writes (field
//! names follow cloudflared's `AccountTag`, `TunnelID`, `TunnelSecret`), and
//! the same content as one token string (`burrow tunnel token`).
//! cloudflared's own credentials files and tokens (base64 of
//! `{"a","t","s"}`) are read too; they carry no edge CA or addresses,
//! which then come from flags, the config file or SRV.

use crate::{ConfigError, Secret};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Raw shape of a credentials file. Fields it does not know (a newer
/// burrow's, cloudflared's `Endpoint`) are kept aside and warned about.
#[derive(Serialize, Deserialize)]
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
    #[serde(flatten, skip_serializing)]
    unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

/// cloudflared's token: base64 of this JSON.
#[derive(Deserialize)]
struct CloudflaredToken {
    /// Account tag (32 hex digits).
    a: String,
    /// Tunnel id.
    t: String,
    /// Tunnel secret, base64.
    s: String,
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
    /// Parses a credentials JSON document (burrow's or cloudflared's).
    ///
    /// # Errors
    /// [`ConfigError`] naming the field (`TunnelID`, `TunnelSecret`, ...).
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        Self::from_json_warning(text).map(|(c, _)| c)
    }

    /// [`Credentials::from_json`], and a warning for each field it does
    /// not know (ignored, not refused: a cloudflared file has
    /// `Endpoint`, a newer burrow's may have more).
    ///
    /// # Errors
    /// As [`Credentials::from_json`].
    pub fn from_json_warning(text: &str) -> Result<(Self, Vec<String>), ConfigError> {
        let raw: RawCredentials = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("credentials", e.to_string()))?;
        let warnings = raw
            .unknown
            .keys()
            .map(|k| format!("credentials: field '{k}' is not used by burrow; ignored"))
            .collect();
        let mut c = Self::parts(
            ("AccountTag", &raw.account_tag),
            ("TunnelID", &raw.tunnel_id),
            ("TunnelSecret", &raw.tunnel_secret),
        )?;
        c.tunnel_name = raw.tunnel_name;
        c.edge_ca_pem = raw.edge_ca;
        c.edges = raw.edges;
        c.edge_domain = raw.edge_domain;
        Ok((c, warnings))
    }

    /// Account (a UUID, or cloudflared's 32 hex digits), tunnel id and
    /// base64 secret, each with the name of the field it came from.
    fn parts(
        (account_field, account): (&'static str, &str),
        (tunnel_field, tunnel): (&'static str, &str),
        (secret_field, secret): (&'static str, &str),
    ) -> Result<Self, ConfigError> {
        let account_id = uuid::Uuid::parse_str(account).map_err(|e| {
            ConfigError::new(account_field, format!("not a UUID or 32 hex digits: {e}"))
        })?;
        let tunnel_id = uuid::Uuid::parse_str(tunnel)
            .map_err(|e| ConfigError::new(tunnel_field, format!("not a UUID: {e}")))?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.as_bytes())
            .map_err(|_| ConfigError::new(secret_field, "not valid base64"))?;
        if secret.len() < 16 || secret.len() > burrow_secret_max() {
            return Err(ConfigError::new(
                secret_field,
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
            tunnel_name: None,
            edge_ca_pem: None,
            edges: Vec::new(),
            edge_domain: None,
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
            unknown: std::collections::BTreeMap::new(),
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

    /// Parses a token made by [`Credentials::to_token`], or a cloudflared
    /// token (base64 of `{"a": account tag, "t": tunnel id, "s": secret}`;
    /// it carries no edge CA or addresses).
    ///
    /// # Errors
    /// [`ConfigError`] on field `token`, or naming a field inside it.
    pub fn from_token(token: &str) -> Result<Self, ConfigError> {
        let token = token.trim();
        let Some(body) = token.strip_prefix(TOKEN_PREFIX) else {
            return Self::from_cloudflared_token(token);
        };
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| ConfigError::new("token", "not valid base64url"))?;
        let json =
            String::from_utf8(json).map_err(|_| ConfigError::new("token", "not UTF-8 inside"))?;
        Self::from_json(&json)
    }
}

impl Credentials {
    fn from_cloudflared_token(token: &str) -> Result<Self, ConfigError> {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
        let not_one = || {
            ConfigError::new(
                "token",
                format!(
                    "neither a burrow token ('{TOKEN_PREFIX}…', from `burrow tunnel token`) nor a \
                     cloudflared token (base64 of {{\"a\",\"t\",\"s\"}})"
                ),
            )
        };
        let json = [STANDARD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(token).ok())
            .ok_or_else(not_one)?;
        let t: CloudflaredToken = serde_json::from_slice(&json).map_err(|_| not_one())?;
        Self::parts(
            ("token: a (account tag)", &t.a),
            ("token: t (tunnel id)", &t.t),
            ("token: s (tunnel secret)", &t.s),
        )
    }
}

fn burrow_secret_max() -> usize {
    256
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudflared_tokens_and_credentials_files_are_read() {
        use base64::engine::general_purpose::STANDARD;
        let secret = STANDARD.encode([7u8; 32]);
        let json = format!(
            r#"{{"a":"699d98642c564d2e855e9661899b7252","t":"a1b2c3d4-0000-4000-8000-000000000001","s":"{secret}"}}"#
        );
        let c = Credentials::from_token(&STANDARD.encode(&json)).unwrap();
        assert_eq!(
            c.account_id.simple().to_string(),
            "699d98642c564d2e855e9661899b7252"
        );
        assert_eq!(c.secret.0, vec![7u8; 32]);
        assert!(c.edge_ca_pem.is_none() && c.edges.is_empty());
        // A bad field inside is named; a string that is neither kind says so.
        let bad = json.replace("a1b2c3d4", "zz");
        let e = Credentials::from_token(&STANDARD.encode(bad)).unwrap_err();
        assert!(e.to_string().contains("t (tunnel id)"), "{e}");
        let e = Credentials::from_token("not a token").unwrap_err();
        assert!(e.to_string().contains("cloudflared token"), "{e}");
        // cloudflared's credentials file: Endpoint is warned about, not refused.
        let file = format!(
            r#"{{"AccountTag":"699d98642c564d2e855e9661899b7252","TunnelSecret":"{secret}","TunnelID":"a1b2c3d4-0000-4000-8000-000000000001","Endpoint":""}}"#
        );
        let (c2, warnings) = Credentials::from_json_warning(&file).unwrap();
        assert_eq!(c2, c);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("'Endpoint'"), "{warnings:?}");
        assert!(!c2.to_json().contains("Endpoint"));
    }

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

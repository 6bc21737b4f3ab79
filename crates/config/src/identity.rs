//! Users and devices of the zero-trust client: name rules and the device
//! credential file (`burrow device enroll` writes it; `burrow client` reads
//! it). Field names follow the tunnel credentials' style.

use crate::ConfigError;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Checks an email: `local@domain`, at most 254 characters, no spaces or
/// control characters; returns it in lower case.
///
/// # Errors
/// [`ConfigError`] on `field`.
pub fn validate_email(field: &str, email: &str) -> Result<String, ConfigError> {
    let e = email.trim();
    let bad = |why: &str| ConfigError::new(field, format!("'{email}' {why}"));
    if e.is_empty() || e.len() > 254 {
        return Err(bad("must be 1-254 characters"));
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains spaces or control characters"));
    }
    // It is a path segment of the admin API (`/api/v1/users/{email}`).
    if e.chars().any(|c| matches!(c, '/' | '\\' | '?' | '#' | '%')) {
        return Err(bad("contains '/', '\\', '?', '#' or '%'"));
    }
    match e.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@') =>
        {
            Ok(e.to_ascii_lowercase())
        }
        _ => Err(bad("is not an email address (name@example.com)")),
    }
}

/// Checks a group or device name: 1-64 letters, digits, `.`, `_`, `-`.
///
/// # Errors
/// [`ConfigError`] on `field`.
pub fn validate_label(field: &str, s: &str) -> Result<(), ConfigError> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(ConfigError::new(
            field,
            format!("'{s}' must be 1-64 letters, digits, '.', '_' or '-'"),
        ));
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    #[serde(rename = "AccountTag")]
    account_tag: String,
    #[serde(rename = "DeviceID")]
    device_id: String,
    #[serde(rename = "UserEmail")]
    user_email: String,
    #[serde(rename = "DeviceSecret")]
    device_secret: String,
    #[serde(rename = "EdgeCA", default, skip_serializing_if = "Option::is_none")]
    edge_ca: Option<String>,
    #[serde(rename = "Edges", default, skip_serializing_if = "Vec::is_empty")]
    edges: Vec<String>,
    #[serde(
        rename = "EdgeDomain",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    edge_domain: Option<String>,
}

/// A device's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCredentials {
    /// Account id.
    pub account_id: uuid::Uuid,
    /// Device id.
    pub device_id: uuid::Uuid,
    /// The owner.
    pub user_email: String,
    /// Secret bytes (base64 in the file).
    pub secret: crate::credentials::SecretBytes,
    /// Edge CA (PEM), when embedded.
    pub edge_ca_pem: Option<String>,
    /// Edge addresses, when embedded.
    pub edges: Vec<String>,
    /// Edge domain, when embedded.
    pub edge_domain: Option<String>,
}

impl DeviceCredentials {
    /// Parses a device credential file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let raw: RawDevice = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("device credentials", e.to_string()))?;
        let uuid = |field: &str, s: &str| {
            uuid::Uuid::parse_str(s).map_err(|_| ConfigError::new(field, "is not a UUID"))
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(raw.device_secret.trim())
            .map_err(|_| ConfigError::new("DeviceSecret", "is not base64"))?;
        if !(16..=256).contains(&secret.len()) {
            return Err(ConfigError::new("DeviceSecret", "must be 16-256 bytes"));
        }
        Ok(Self {
            account_id: uuid("AccountTag", &raw.account_tag)?,
            device_id: uuid("DeviceID", &raw.device_id)?,
            user_email: validate_email("UserEmail", &raw.user_email)?,
            secret: crate::credentials::SecretBytes(secret),
            edge_ca_pem: raw.edge_ca,
            edges: raw.edges,
            edge_domain: raw.edge_domain,
        })
    }

    /// The file form.
    pub fn to_json(&self) -> String {
        let raw = RawDevice {
            account_tag: self.account_id.to_string(),
            device_id: self.device_id.to_string(),
            user_email: self.user_email.clone(),
            device_secret: base64::engine::general_purpose::STANDARD.encode(&self.secret.0),
            edge_ca: self.edge_ca_pem.clone(),
            edges: self.edges.clone(),
            edge_domain: self.edge_domain.clone(),
        };
        serde_json::to_string_pretty(&raw).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_labels_are_checked() {
        assert_eq!(
            validate_email("email", " Ana@Example.COM ").unwrap(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@localhost",
            "a b@example.com",
            "@example.com",
            "a@b@c.com",
        ] {
            let e = validate_email("email", bad).unwrap_err();
            assert_eq!(e.field, "email", "{bad}");
        }
        assert!(validate_label("groups[0]", "eng-team_1.x").is_ok());
        assert_eq!(
            validate_label("groups[0]", "no spaces").unwrap_err().field,
            "groups[0]"
        );
    }

    #[test]
    fn credentials_round_trip_and_name_bad_fields() {
        let c = DeviceCredentials {
            account_id: uuid::Uuid::new_v4(),
            device_id: uuid::Uuid::new_v4(),
            user_email: "ana@example.com".into(),
            secret: crate::credentials::SecretBytes(vec![7; 32]),
            edge_ca_pem: Some("PEM".into()),
            edges: vec!["127.0.0.1:7844".into()],
            edge_domain: None,
        };
        assert_eq!(DeviceCredentials::from_json(&c.to_json()).unwrap(), c);
        let bad = c.to_json().replace(&c.device_id.to_string(), "nope");
        assert_eq!(
            DeviceCredentials::from_json(&bad).unwrap_err().field,
            "DeviceID"
        );
        assert!(
            format!("{c:?}").contains("***"),
            "secrets are masked in Debug"
        );
    }
}

//! The edge's `edge.yaml`: the same settings as `burrow edge` flags. Unknown
//! keys are errors here (unlike the connector's cloudflared-compatible file).

use crate::{duration, ConfigError};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEdgeFile {
    colo: Option<String>,
    listen: Option<String>,
    admin: Option<String>,
    state: Option<PathBuf>,
    edge_domain: Option<String>,
    grace_period: Option<String>,
    loglevel: Option<String>,
    disable_quic: Option<bool>,
    geoip_country: Option<PathBuf>,
    geoip_asn: Option<PathBuf>,
    cert_dir: Option<PathBuf>,
    app_address: Option<String>,
    app_ipv4_pool: Option<String>,
    app_ipv6_pool: Option<String>,
    origin_ca: Option<PathBuf>,
    dns_server: Option<String>,
    http: Option<String>,
    https: Option<String>,
    session_log: Option<PathBuf>,
    logpush_url: Option<String>,
    logpush_ca: Option<PathBuf>,
    egress_allow: Option<Vec<String>>,
}

/// A parsed `edge.yaml`; every field optional (flags and defaults fill in).
#[derive(Debug, Default, Clone)]
pub struct EdgeFile {
    /// `colo`: short name of this edge node.
    pub colo: Option<String>,
    /// `listen`: tunnel endpoint address (UDP for QUIC, TCP for HTTP/2).
    pub listen: Option<String>,
    /// `admin`: admin API address.
    pub admin: Option<String>,
    /// `state`: SQLite file.
    pub state: Option<PathBuf>,
    /// `edge-domain`.
    pub edge_domain: Option<String>,
    /// `grace-period`.
    pub grace_period: Option<Duration>,
    /// `loglevel`.
    pub log_level: Option<String>,
    /// `disable-quic`: serve HTTP/2 only.
    pub disable_quic: Option<bool>,
    /// `geoip-country`: MaxMind-DB country file.
    pub geoip_country: Option<PathBuf>,
    /// `geoip-asn`: MaxMind-DB ASN file.
    pub geoip_asn: Option<PathBuf>,
    /// `cert-dir`: app certificates for edge TLS termination.
    pub cert_dir: Option<PathBuf>,
    /// `app-address`: one address for every app.
    pub app_address: Option<String>,
    /// `app-ipv4-pool`: comma-separated IPv4 addresses for apps.
    pub app_ipv4_pool: Option<String>,
    /// `app-ipv6-pool`: comma-separated IPv6 addresses for apps.
    pub app_ipv6_pool: Option<String>,
    /// `origin-ca`: CA file for `tls: strict` origins.
    pub origin_ca: Option<PathBuf>,
    /// `dns-server`: resolver for `origin_dns` names.
    pub dns_server: Option<String>,
    /// `http`: public HTTP listener for routed hostnames.
    pub http: Option<String>,
    /// `https`: public HTTPS listener for routed hostnames.
    pub https: Option<String>,
    /// `session-log`: network session log file.
    pub session_log: Option<PathBuf>,
    /// `logpush-url`: HTTP(S) endpoint for the session log records.
    pub logpush_url: Option<String>,
    /// `logpush-ca`: CA certificates (PEM) for an `https://` logpush URL.
    pub logpush_ca: Option<PathBuf>,
    /// `egress-allow`: ranges clients may reach although the built-in
    /// deny refuses them.
    pub egress_allow: Vec<ipnet::IpNet>,
}

/// Parses `--egress-allow` / `egress-allow` values: CIDRs or single
/// addresses, host bits clear.
///
/// # Errors
/// [`ConfigError`] naming `field[i]`.
pub fn parse_egress_allow(
    field: &str,
    values: &[String],
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let at = || format!("{field}[{i}]");
            let net = match v.parse::<ipnet::IpNet>() {
                Ok(n) => n,
                Err(_) => v
                    .parse::<std::net::IpAddr>()
                    .map(ipnet::IpNet::from)
                    .map_err(|_| {
                        ConfigError::new(at(), format!("'{v}' is not a CIDR or an IP address"))
                    })?,
            };
            if net.trunc() != net {
                return Err(ConfigError::new(
                    at(),
                    format!("'{v}' has host bits set; did you mean {}?", net.trunc()),
                ));
            }
            Ok(net)
        })
        .collect()
}

/// Parses an `edge.yaml`.
///
/// # Errors
/// [`ConfigError`] naming the key (unknown keys included) and the reason.
pub fn parse_edge_yaml(text: &str) -> Result<EdgeFile, ConfigError> {
    if text.trim().is_empty() {
        return Ok(EdgeFile::default());
    }
    let raw: RawEdgeFile =
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::new("edge.yaml", e.to_string()))?;
    let grace_period = raw
        .grace_period
        .as_deref()
        .map(duration::parse)
        .transpose()
        .map_err(|r| ConfigError::new("grace-period", r))?;
    if let Some(c) = &raw.colo {
        validate_colo(c)?;
    }
    Ok(EdgeFile {
        colo: raw.colo,
        listen: raw.listen,
        admin: raw.admin,
        state: raw.state,
        edge_domain: raw.edge_domain,
        grace_period,
        log_level: raw.loglevel,
        disable_quic: raw.disable_quic,
        geoip_country: raw.geoip_country,
        geoip_asn: raw.geoip_asn,
        cert_dir: raw.cert_dir,
        app_address: raw.app_address,
        app_ipv4_pool: raw.app_ipv4_pool,
        app_ipv6_pool: raw.app_ipv6_pool,
        origin_ca: raw.origin_ca,
        dns_server: raw.dns_server,
        http: raw.http,
        https: raw.https,
        session_log: raw.session_log,
        logpush_url: raw.logpush_url,
        logpush_ca: raw.logpush_ca,
        egress_allow: parse_egress_allow("egress-allow", &raw.egress_allow.unwrap_or_default())?,
    })
}

/// Checks a colo name: 1-16 ASCII letters, digits or `-`.
///
/// # Errors
/// [`ConfigError`] on field `colo`.
pub fn validate_colo(c: &str) -> Result<(), ConfigError> {
    if c.is_empty() || c.len() > 16 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ConfigError::new(
            "colo",
            format!("'{c}' must be 1-16 letters, digits or '-', e.g. NRT"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown() {
        let f = parse_edge_yaml("colo: NRT\nlisten: 127.0.0.1:0\ngrace-period: 5s\n").unwrap();
        assert_eq!(f.colo.as_deref(), Some("NRT"));
        assert_eq!(f.grace_period, Some(Duration::from_secs(5)));
        let e = parse_edge_yaml("colour: NRT\n").unwrap_err();
        assert!(e.reason.contains("colour"), "{e}");
        let e = parse_edge_yaml("colo: 'N RT'\n").unwrap_err();
        assert_eq!(e.field, "colo");
        let f = parse_edge_yaml("egress-allow: [127.0.0.0/8, 10.1.2.3]\n").unwrap();
        assert_eq!(f.egress_allow.len(), 2);
        let e = parse_edge_yaml("egress-allow: [127.0.0.1/8]\n").unwrap_err();
        assert_eq!(e.field, "egress-allow[0]");
        assert!(e.reason.contains("127.0.0.0/8"), "{e}");
    }
}

//! `originRequest`: how the connector talks to an origin, as cloudflared
//! spells it. Set at the top level of `config.yml` and per ingress rule;
//! a rule's keys override the top level's, key by key.
//!
//! Durations are strings such as `30s`, `1m30s`, or whole seconds.
//! Unknown keys are warned about and ignored (cloudflared configs load);
//! keys burrow knows but does not carry out are warned about too.

use crate::{duration, ConfigError};
use serde_yaml_ng::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Access (JWT) checks of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessCheck {
    /// Reject requests without a valid token.
    pub required: bool,
    /// Team name (informational; the JWKS source is configured apart).
    pub team_name: Option<String>,
    /// Accepted `aud` values.
    pub aud_tag: Vec<String>,
    /// Where the signing keys are: a JWKS URL (`http(s)://...`) or file.
    /// burrow's addition; without it, `teamName` gives Cloudflare Access's
    /// `https://<teamName>.cloudflareaccess.com/cdn-cgi/access/certs`.
    pub jwks: Option<String>,
    /// `serviceTokens` (burrow's addition, the part of Cloudflare Access
    /// that checks service tokens): a request carrying one of these in
    /// `CF-Access-Client-Id` / `CF-Access-Client-Secret` passes without a
    /// JWT. Only the secret's SHA-256 is configured.
    pub service_tokens: Vec<ServiceToken>,
}

/// One Access service token: its public id and its secret's SHA-256
/// (`burrow access token` makes a pair and prints both forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceToken {
    /// `clientId`, sent as `CF-Access-Client-Id`.
    pub client_id: String,
    /// `clientSecretSha256`: SHA-256 of the `CF-Access-Client-Secret`.
    pub secret_sha256: [u8; 32],
}

/// Resolved origin settings of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginRequest {
    /// TCP connect timeout (`connectTimeout`, 30 s).
    pub connect_timeout: Duration,
    /// TLS handshake timeout toward https origins (`tlsTimeout`, 10 s).
    pub tls_timeout: Duration,
    /// TCP keep-alive period (`tcpKeepAlive`, 30 s).
    pub tcp_keep_alive: Duration,
    /// Idle pooled connections kept per origin (`keepAliveConnections`, 100).
    pub keep_alive_connections: usize,
    /// How long an idle pooled connection is kept (`keepAliveTimeout`, 90 s).
    pub keep_alive_timeout: Duration,
    /// Replaces the `Host` header sent to the origin (`httpHostHeader`).
    pub http_host_header: Option<String>,
    /// TLS name (SNI and verification) of https origins (`originServerName`).
    pub origin_server_name: Option<String>,
    /// CA certificates (PEM) that https origins must chain to (`caPool`);
    /// without it, the system roots.
    pub ca_pool: Option<PathBuf>,
    /// Do not verify https origins' certificates (`noTLSVerify`).
    pub no_tls_verify: bool,
    /// Send request bodies of unknown length with a `Content-Length`, read
    /// whole first up to 16 MiB (`disableChunkedEncoding`).
    pub disable_chunked_encoding: bool,
    /// Speak HTTP/2 to the origin (`http2Origin`).
    pub http2_origin: bool,
    /// JWT checks (`access`).
    pub access: Option<AccessCheck>,
    /// `noHappyEyeballs`: dial an HTTP origin's addresses one after the
    /// other instead of racing IPv6 and IPv4.
    pub no_happy_eyeballs: bool,
    /// `matchSNItoHost`: name the request's Host in the TLS handshake to
    /// an `https://` origin (and check its certificate for it).
    pub match_sni_to_host: bool,
    /// `ipRules`: destinations the connector may dial for clients' private
    /// flows (top level) and for `socks-proxy` and `bastion` rules, first
    /// match, deny by default when any exist.
    pub ip_rules: Vec<IpRule>,
    /// `bastionMode`: the rule is a bastion (its destination comes from
    /// each request's `Cf-Access-Jump-Destination`), whatever its service.
    pub bastion_mode: bool,
    /// `proxyType: socks`: the rule's stream is served as a SOCKS5 proxy,
    /// as `service: socks-proxy` is.
    pub proxy_socks: bool,
}

impl Default for OriginRequest {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            tls_timeout: Duration::from_secs(10),
            tcp_keep_alive: Duration::from_secs(30),
            keep_alive_connections: 100,
            keep_alive_timeout: Duration::from_secs(90),
            http_host_header: None,
            origin_server_name: None,
            ca_pool: None,
            no_tls_verify: false,
            disable_chunked_encoding: false,
            http2_origin: false,
            access: None,
            ip_rules: Vec::new(),
            no_happy_eyeballs: false,
            match_sni_to_host: false,
            bastion_mode: false,
            proxy_socks: false,
        }
    }
}

/// One of `originRequest.ipRules`: which destinations the connector may
/// dial on a client's behalf. The first rule whose prefix (and ports, if
/// any) match decides; with rules and none matching, the flow is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRule {
    /// `prefix`: the network.
    pub prefix: ipnet::IpNet,
    /// `ports`: the ports it covers (empty: every port).
    pub ports: Vec<u16>,
    /// `allow`: allow (true) or deny (false).
    pub allow: bool,
}

/// Whether `ipRules` let the connector dial `to`: the first matching
/// rule decides; no rules allow everything; rules and no match deny.
/// The index of the deciding rule, when one matched.
#[must_use]
pub fn ip_rules_allow(rules: &[IpRule], to: std::net::SocketAddr) -> (bool, Option<usize>) {
    let ip = match to.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(to.ip(), std::net::IpAddr::V4),
        v4 => v4,
    };
    match rules.iter().position(|r| {
        r.prefix.contains(&ip) && (r.ports.is_empty() || r.ports.contains(&to.port()))
    }) {
        Some(i) => (rules[i].allow, Some(i)),
        None => (rules.is_empty(), None),
    }
}

fn ip_rules(at: &str, v: &Value) -> Result<Vec<IpRule>, ConfigError> {
    let Value::Sequence(items) = v else {
        return Err(ConfigError::new(
            at,
            "must be a list of {prefix, ports, allow}",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{at}[{i}]");
            let Value::Mapping(m) = item else {
                return Err(ConfigError::new(
                    &at,
                    "must be a mapping {prefix, ports, allow}",
                ));
            };
            let mut rule = IpRule {
                prefix: "0.0.0.0/0".parse().expect("valid literal"),
                ports: Vec::new(),
                allow: false,
            };
            let (mut prefix, mut allow) = (false, false);
            for (k, v) in m {
                let key = k.as_str().unwrap_or_default();
                let field = format!("{at}.{key}");
                match key {
                    "prefix" => {
                        let text = v.as_str().unwrap_or_default();
                        rule.prefix = text
                            .parse::<ipnet::IpNet>()
                            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                            .map_err(|_| {
                                ConfigError::new(&field, format!("'{text}' is not a CIDR prefix"))
                            })?
                            .trunc();
                        prefix = true;
                    }
                    "ports" => {
                        let Value::Sequence(ports) = v else {
                            return Err(ConfigError::new(&field, "must be a list of ports"));
                        };
                        rule.ports = ports
                            .iter()
                            .map(|p| {
                                p.as_u64()
                                    .and_then(|n| u16::try_from(n).ok())
                                    .filter(|n| *n > 0)
                                    .ok_or_else(|| ConfigError::new(&field, "ports are 1-65535"))
                            })
                            .collect::<Result<_, _>>()?;
                    }
                    "allow" => {
                        rule.allow = boolean(&field, v)?;
                        allow = true;
                    }
                    _ => {
                        return Err(ConfigError::new(
                            &field,
                            "unknown key (expected prefix, ports, allow)",
                        ))
                    }
                }
            }
            if !prefix {
                return Err(ConfigError::new(format!("{at}.prefix"), "is required"));
            }
            if !allow {
                return Err(ConfigError::new(
                    format!("{at}.allow"),
                    "is required (true or false)",
                ));
            }
            Ok(rule)
        })
        .collect()
}

/// Keys cloudflared has that burrow accepts without acting on them: the
/// listen address of cloudflared's own local WebSocket proxy (burrow
/// bridges in process and listens on nothing).
const IGNORED: &[&str] = &["proxyAddress", "proxyPort"];

pub(crate) fn dur(field: &str, v: &Value) -> Result<Duration, ConfigError> {
    match v {
        Value::String(s) => duration::parse(s).map_err(|r| ConfigError::new(field, r)),
        Value::Number(n) => n
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| ConfigError::new(field, "must be a duration such as 30s")),
        _ => Err(ConfigError::new(field, "must be a duration such as 30s")),
    }
}

pub(crate) fn boolean(field: &str, v: &Value) -> Result<bool, ConfigError> {
    v.as_bool()
        .ok_or_else(|| ConfigError::new(field, "must be true or false"))
}

fn string(field: &str, v: &Value) -> Result<String, ConfigError> {
    match v {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(ConfigError::new(field, "must be a non-empty string")),
    }
}

impl OriginRequest {
    /// `base` with the keys of the `originRequest` mapping `v` applied.
    /// `at` prefixes field names in errors and warnings (e.g.
    /// `ingress[2].originRequest`).
    ///
    /// # Errors
    /// [`ConfigError`] naming the key and the reason.
    pub fn apply(
        base: &Self,
        v: &Value,
        at: &str,
        warnings: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let Value::Mapping(map) = v else {
            return Err(ConfigError::new(at, "must be a mapping of settings"));
        };
        let mut o = base.clone();
        for (k, v) in map {
            let Some(key) = k.as_str() else {
                return Err(ConfigError::new(at, "keys must be strings"));
            };
            let field = format!("{at}.{key}");
            match key {
                "connectTimeout" => o.connect_timeout = dur(&field, v)?,
                "tlsTimeout" => o.tls_timeout = dur(&field, v)?,
                "tcpKeepAlive" => o.tcp_keep_alive = dur(&field, v)?,
                "keepAliveTimeout" => o.keep_alive_timeout = dur(&field, v)?,
                "keepAliveConnections" => {
                    o.keep_alive_connections = v
                        .as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|n| *n <= 100_000)
                        .ok_or_else(|| {
                            ConfigError::new(&field, "must be a number from 0 to 100000")
                        })?;
                }
                "httpHostHeader" => {
                    let h = string(&field, v)?;
                    // What an HTTP header value may hold: visible ASCII, space, tab.
                    if !h.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
                        return Err(ConfigError::new(
                            &field,
                            "must be printable ASCII (it becomes the Host header)",
                        ));
                    }
                    o.http_host_header = Some(h);
                }
                "originServerName" => o.origin_server_name = Some(string(&field, v)?),
                "caPool" => o.ca_pool = Some(PathBuf::from(string(&field, v)?)),
                "noTLSVerify" => o.no_tls_verify = boolean(&field, v)?,
                "disableChunkedEncoding" => o.disable_chunked_encoding = boolean(&field, v)?,
                "http2Origin" => o.http2_origin = boolean(&field, v)?,
                "noHappyEyeballs" => o.no_happy_eyeballs = boolean(&field, v)?,
                "matchSNItoHost" => o.match_sni_to_host = boolean(&field, v)?,
                "access" => o.access = Some(access(&field, v, warnings)?),
                "ipRules" => o.ip_rules = ip_rules(&field, v)?,
                "bastionMode" => o.bastion_mode = boolean(&field, v)?,
                "proxyType" => {
                    o.proxy_socks = match v.as_str() {
                        Some("socks") => true,
                        Some("") => false,
                        None if v.is_null() => false,
                        _ => {
                            return Err(ConfigError::new(
                                &field,
                                "must be \"socks\" or empty (cloudflared's two values)",
                            ))
                        }
                    };
                }
                k if IGNORED.contains(&k) => {
                    warnings.push(format!("{field} is not supported by burrow and is ignored"));
                }
                _ => warnings.push(format!("unknown key '{key}' in {at} ignored")),
            }
        }
        Ok(o)
    }
}

fn access(at: &str, v: &Value, warnings: &mut Vec<String>) -> Result<AccessCheck, ConfigError> {
    let Value::Mapping(map) = v else {
        return Err(ConfigError::new(
            at,
            "must be a mapping: {required, teamName, audTag}",
        ));
    };
    let get = |k: &str| map.get(Value::String(k.into()));
    let required = get("required")
        .map(|v| boolean(&format!("{at}.required"), v))
        .transpose()?
        .unwrap_or(false);
    let team_name = get("teamName")
        .map(|v| string(&format!("{at}.teamName"), v))
        .transpose()?;
    let aud_tag = match get("audTag") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| string(&format!("{at}.audTag[{i}]"), v))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ConfigError::new(
                format!("{at}.audTag"),
                "must be a string or a list of strings",
            ))
        }
    };
    // As cloudflared: accepted (a first setup), and every request is
    // refused until an audience tag is given.
    if required && aud_tag.is_empty() {
        warnings.push(format!(
            "{at}.audTag: none given, so every request is refused until one is"
        ));
    }
    for k in map.keys() {
        if let Some(k) = k.as_str() {
            if ![
                "required",
                "teamName",
                "audTag",
                "jwks",
                "environment",
                "serviceTokens",
            ]
            .contains(&k)
            {
                return Err(ConfigError::new(
                    format!("{at}.{k}"),
                    "unknown key (expected required, teamName, audTag, environment, jwks, serviceTokens)",
                ));
            }
        }
    }
    // cloudflared's `environment: fed`: Access's FedRAMP key host.
    let fed = match get("environment") {
        None => false,
        Some(Value::String(e)) if e.is_empty() => false,
        Some(Value::String(e)) if e == "fed" => true,
        Some(_) => {
            return Err(ConfigError::new(
                format!("{at}.environment"),
                "must be \"fed\" or empty",
            ))
        }
    };
    let jwks = get("jwks")
        .map(|v| string(&format!("{at}.jwks"), v))
        .transpose()?
        .or_else(|| {
            team_name.as_ref().map(|t| match fed {
                true => format!("https://{t}.fed.cloudflareaccess.com/cdn-cgi/access/certs"),
                false => format!("https://{t}.cloudflareaccess.com/cdn-cgi/access/certs"),
            })
        });
    let service_tokens = match get("serviceTokens") {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| service_token(&format!("{at}.serviceTokens[{i}]"), v))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ConfigError::new(
                format!("{at}.serviceTokens"),
                "must be a list of {clientId, clientSecretSha256}",
            ))
        }
    };
    if required && jwks.is_none() && service_tokens.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.jwks"),
            "required: true needs the signing keys or service tokens: give jwks (a JWKS URL or file), teamName, or serviceTokens",
        ));
    }
    Ok(AccessCheck {
        required,
        team_name,
        aud_tag,
        jwks,
        service_tokens,
    })
}

fn service_token(at: &str, v: &Value) -> Result<ServiceToken, ConfigError> {
    let Value::Mapping(map) = v else {
        return Err(ConfigError::new(
            at,
            "must be a mapping: {clientId, clientSecretSha256}",
        ));
    };
    for k in map.keys() {
        let k = k.as_str().unwrap_or("?");
        if !["clientId", "clientSecretSha256"].contains(&k) {
            return Err(ConfigError::new(
                format!("{at}.{k}"),
                "unknown key (expected clientId, clientSecretSha256)",
            ));
        }
    }
    let field = |k: &str| -> Result<String, ConfigError> {
        let f = format!("{at}.{k}");
        let v = map
            .get(Value::String(k.into()))
            .ok_or_else(|| ConfigError::new(&f, "missing (`burrow access token` makes a pair)"))?;
        string(&f, v)
    };
    let client_id = field("clientId")?;
    if client_id.is_empty() || client_id.len() > 256 {
        return Err(ConfigError::new(
            format!("{at}.clientId"),
            "must be 1 to 256 characters",
        ));
    }
    let hash = field("clientSecretSha256")?;
    let secret_sha256 = hex::decode(hash.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            ConfigError::new(
                format!("{at}.clientSecretSha256"),
                "must be 64 hex digits: the SHA-256 of the client secret (never the secret itself)",
            )
        })?;
    Ok(ServiceToken {
        client_id,
        secret_sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_rules_first_match_decides_and_rules_deny_the_rest() {
        let (o, w) = apply(
            &OriginRequest::default(),
            "ipRules:\n  - prefix: 10.0.0.5/32\n    allow: false\n  - prefix: 10.0.0.0/8\n    ports: [80, 443]\n    allow: true\n",
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        let (eyeballs, w) = apply(&OriginRequest::default(), "noHappyEyeballs: true\n").unwrap();
        assert!(
            eyeballs.no_happy_eyeballs && w.is_empty(),
            "applied, not warned: {w:?}"
        );
        let at = |s: &str| ip_rules_allow(&o.ip_rules, s.parse().unwrap());
        assert_eq!(at("10.0.0.5:80"), (false, Some(0)));
        assert_eq!(at("10.1.2.3:443"), (true, Some(1)));
        assert_eq!(at("10.1.2.3:22"), (false, None), "not listed: denied");
        assert_eq!(at("[::ffff:10.1.2.3]:80"), (true, Some(1)), "v4-mapped");
        assert_eq!(
            ip_rules_allow(&[], "192.0.2.1:1".parse().unwrap()),
            (true, None)
        );
        for (y, field) in [
            (
                "ipRules:\n  - prefix: nope\n    allow: true\n",
                "ipRules[0].prefix",
            ),
            ("ipRules:\n  - prefix: 10.0.0.0/8\n", "ipRules[0].allow"),
            ("ipRules:\n  - allow: true\n", "ipRules[0].prefix"),
            (
                "ipRules:\n  - prefix: 10.0.0.0/8\n    ports: [0]\n    allow: true\n",
                "ipRules[0].ports",
            ),
        ] {
            let e = apply(&OriginRequest::default(), y).unwrap_err().to_string();
            assert!(e.contains(field), "{y}: {e}");
        }
    }

    fn apply(
        base: &OriginRequest,
        yaml: &str,
    ) -> Result<(OriginRequest, Vec<String>), ConfigError> {
        let v: Value = serde_yaml_ng::from_str(yaml).unwrap();
        let mut w = Vec::new();
        OriginRequest::apply(base, &v, "originRequest", &mut w).map(|o| (o, w))
    }

    #[test]
    fn rule_keys_override_the_top_level_key_by_key() {
        let (top, _) = apply(
            &OriginRequest::default(),
            "connectTimeout: 5s\nnoTLSVerify: true\n",
        )
        .unwrap();
        let (rule, _) =
            apply(&top, "connectTimeout: 1m\nhttpHostHeader: internal.local\n").unwrap();
        assert_eq!(rule.connect_timeout, Duration::from_secs(60));
        assert!(rule.no_tls_verify, "inherited from the top level");
        assert_eq!(rule.http_host_header.as_deref(), Some("internal.local"));
        assert_eq!(rule.keep_alive_connections, 100, "cloudflared's default");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = apply(&OriginRequest::default(), "connectTimeout: soon\n").unwrap_err();
        assert_eq!(e.field, "originRequest.connectTimeout");
        let e = apply(&OriginRequest::default(), "httpHostHeader: \"a\\nb\"\n").unwrap_err();
        assert_eq!(e.field, "originRequest.httpHostHeader");
        let e = apply(&OriginRequest::default(), "noTLSVerify: yes please\n").unwrap_err();
        assert_eq!(e.field, "originRequest.noTLSVerify");
        // Required with no keys to check against: named.
        let e = apply(&OriginRequest::default(), "access: {required: true}\n").unwrap_err();
        assert_eq!(e.field, "originRequest.access.jwks");
        let e = apply(&OriginRequest::default(), "access: {environment: moon}\n").unwrap_err();
        assert_eq!(e.field, "originRequest.access.environment");
    }

    #[test]
    fn access_is_taken_as_cloudflared_takes_it() {
        // No audTag: accepted with a warning (every request is refused).
        let (o, w) = apply(
            &OriginRequest::default(),
            "access: {required: true, teamName: t}\n",
        )
        .unwrap();
        assert!(o.access.unwrap().aud_tag.is_empty());
        assert!(w[0].contains("every request is refused"), "{w:?}");
        // environment: fed takes Access's FedRAMP keys.
        let (o, _) = apply(
            &OriginRequest::default(),
            "access: {required: true, teamName: t, audTag: a, environment: fed}\n",
        )
        .unwrap();
        assert_eq!(
            o.access.unwrap().jwks.as_deref(),
            Some("https://t.fed.cloudflareaccess.com/cdn-cgi/access/certs")
        );
    }

    #[test]
    fn unknown_and_unsupported_keys_warn() {
        let (o, w) = apply(
            &OriginRequest::default(),
            "proxyType: socks\nproxyPort: 9000\nbastionMode: true\nflavour: 1\n",
        )
        .unwrap();
        assert!(o.proxy_socks && o.bastion_mode);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("proxyPort") && w[1].contains("flavour"),
            "{w:?}"
        );
        let e = apply(&OriginRequest::default(), "proxyType: http\n").unwrap_err();
        assert_eq!(e.field, "originRequest.proxyType");
    }

    #[test]
    fn service_tokens_are_configured_by_the_secrets_hash_alone() {
        let hash = "ab".repeat(32);
        let (o, _) = apply(
            &OriginRequest::default(),
            &format!("access: {{required: true, serviceTokens: [{{clientId: id1.access, clientSecretSha256: {hash}}}]}}\n"),
        )
        .unwrap();
        let a = o.access.unwrap();
        assert_eq!(a.jwks, None, "service tokens alone need no keys");
        assert_eq!(a.service_tokens[0].client_id, "id1.access");
        assert_eq!(a.service_tokens[0].secret_sha256, [0xab; 32]);
        for (yaml, field) in [
            (
                "access: {required: true, serviceTokens: [{clientId: a, clientSecretSha256: s3cret}]}\n",
                "originRequest.access.serviceTokens[0].clientSecretSha256",
            ),
            (
                "access: {required: true, serviceTokens: [{clientSecretSha256: 00}]}\n",
                "originRequest.access.serviceTokens[0].clientId",
            ),
            (
                "access: {required: true, serviceTokens: [{clientId: a, secret: x}]}\n",
                "originRequest.access.serviceTokens[0].secret",
            ),
            (
                "access: {required: true, serviceTokens: a}\n",
                "originRequest.access.serviceTokens",
            ),
        ] {
            let e = apply(&OriginRequest::default(), yaml).unwrap_err();
            assert_eq!(e.field, field, "{yaml}");
        }
    }

    #[test]
    fn access_takes_one_or_many_audiences() {
        let (o, _) = apply(
            &OriginRequest::default(),
            "access: {required: true, teamName: t, audTag: [a1, a2]}\n",
        )
        .unwrap();
        let a = o.access.unwrap();
        assert!(a.required);
        assert_eq!(a.aud_tag, vec!["a1", "a2"]);
        assert_eq!(
            a.jwks.as_deref(),
            Some("https://t.cloudflareaccess.com/cdn-cgi/access/certs")
        );
        let e = apply(
            &OriginRequest::default(),
            "access: {required: true, audTag: a}\n",
        )
        .unwrap_err();
        assert_eq!(e.field, "originRequest.access.jwks");
    }
}

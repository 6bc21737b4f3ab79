//! The connector's `config.yml`, in cloudflared's format.
//!
//! Unknown keys are *not* errors here (configs written for cloudflared must
//! keep loading): they are collected into [`ConnectorFile::warnings`], each
//! naming the key, for the caller to log. Malformed values are errors naming
//! the rule index and field, e.g. `ingress[1].service: ...`.

use crate::{duration, ConfigError};
use burrow_policy::host::HostPattern;
use burrow_policy::ingress::Matcher;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Which transport the connector uses to reach the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolChoice {
    /// QUIC first; HTTP/2 when QUIC cannot connect in time; QUIC retried later.
    #[default]
    Auto,
    /// QUIC only.
    Quic,
    /// HTTP/2 over TLS only.
    Http2,
}

impl ProtocolChoice {
    /// Parses `auto`, `quic` or `http2` (also `h2`).
    ///
    /// # Errors
    /// The reason, listing the accepted values.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "quic" => Ok(Self::Quic),
            "http2" | "h2" => Ok(Self::Http2),
            other => Err(format!(
                "unknown protocol '{other}' (expected auto, quic or http2)"
            )),
        }
    }
}

/// Where an ingress rule sends its flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// Dial this `host:port` over TCP and splice bytes. `http://` and
    /// `https://` services are carried this way too for now (the client's
    /// bytes reach the origin unchanged).
    Tcp {
        /// `host:port` to dial.
        addr: String,
        /// The scheme as written (`tcp`, `http`, `https`, `ssh`, `rdp`, `smb`).
        scheme: String,
    },
    /// A UDP origin `host:port` for UDP apps: datagrams are relayed
    /// one for one.
    Udp {
        /// `host:port` to send to.
        addr: String,
    },
    /// Dial a Unix socket (`unix:/path`), with TLS over it for
    /// `unix+tls:/path`.
    Unix {
        /// Socket path.
        path: PathBuf,
        /// Speak TLS over the socket.
        tls: bool,
    },
    /// Answer with this HTTP status and no origin.
    HttpStatus(u16),
    /// burrow's built-in hello-world HTTP origin.
    HelloWorld,
    /// cloudflared's `socks-proxy`: each WebSocket stream (`burrow access
    /// tcp`) is a SOCKS5 proxy whose destinations the rule's `ipRules`
    /// allow (none allowed without rules, as in cloudflared).
    SocksProxy,
    /// cloudflared's `bastion`: each WebSocket stream goes to the
    /// destination its client names (`burrow access ssh --destination`),
    /// within the rule's `ipRules` when it has any.
    Bastion,
}

impl std::fmt::Display for Service {
    /// As written in `config.yml` (what `ingress rule` prints).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp { scheme, addr } => write!(f, "{scheme}://{addr}"),
            Self::Udp { addr } => write!(f, "udp://{addr}"),
            Self::Unix { path, tls } => write!(
                f,
                "{}:{}",
                if *tls { "unix+tls" } else { "unix" },
                path.display()
            ),
            Self::HttpStatus(c) => write!(f, "http_status:{c}"),
            Self::HelloWorld => f.write_str("hello_world"),
            Self::SocksProxy => f.write_str("socks-proxy"),
            Self::Bastion => f.write_str("bastion"),
        }
    }
}

impl Service {
    /// Parses a service string as cloudflared writes it.
    ///
    /// # Errors
    /// The reason, naming what was expected.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "hello_world" || s == "hello-world" {
            return Ok(Self::HelloWorld);
        }
        if s == "socks-proxy" {
            return Ok(Self::SocksProxy);
        }
        if s == "bastion" {
            return Ok(Self::Bastion);
        }
        if let Some(code) = s.strip_prefix("http_status:") {
            let code: u16 = code
                .parse()
                .map_err(|_| format!("'{code}' is not an HTTP status code"))?;
            // cloudflared's range.
            if !(100..=999).contains(&code) {
                return Err(format!("HTTP status {code} is outside 100-999"));
            }
            return Ok(Self::HttpStatus(code));
        }
        for (prefix, tls) in [("unix:", false), ("unix+tls:", true)] {
            if let Some(path) = s.strip_prefix(prefix) {
                if path.is_empty() {
                    return Err(format!(
                        "{prefix} needs a socket path, as in {prefix}/run/app.sock"
                    ));
                }
                return Ok(Self::Unix {
                    path: PathBuf::from(path),
                    tls,
                });
            }
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(format!(
                "'{s}' is not a service: expected tcp://host:port, udp://host:port, \
                 http://host:port, https://host:port, unix:/path, http_status:NNN or hello_world"
            ));
        };
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(format!("'{scheme}' is not a URL scheme"));
        }
        // As cloudflared: ws and wss are HTTP origins (the upgrade is
        // proxied), any other scheme is a TCP stream; tcp:// without a
        // port takes cloudflared's 7864.
        let (scheme, default_port) = match scheme {
            "udp" => ("udp", None),
            "http" | "ws" => ("http", Some(80)),
            "https" | "wss" => ("https", Some(443)),
            "ssh" => ("ssh", Some(22)),
            "rdp" => ("rdp", Some(3389)),
            "smb" => ("smb", Some(445)),
            "tcp" => ("tcp", Some(7864)),
            other => (other, None),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !path.is_empty() {
            return Err(format!(
                "'{s}' has a path: ingress rules do not proxy to another path on the origin \
                 (the request's own path is kept); give {scheme}://{authority}"
            ));
        }
        if authority.contains('@') {
            return Err(format!(
                "'{s}': user information in the origin URL is not supported"
            ));
        }
        if authority.is_empty() {
            return Err(format!("'{s}' has no host"));
        }
        let has_port = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') || host.starts_with('[') => {
                if port.parse::<u16>().map(|p| p == 0).unwrap_or(true) {
                    return Err(format!("'{port}' is not a port number (1-65535)"));
                }
                if host.is_empty() {
                    return Err(format!("'{s}' has no host"));
                }
                true
            }
            _ => false,
        };
        let host = if has_port {
            authority.rsplit_once(':').map_or(authority, |(h, _)| h)
        } else {
            authority
        };
        if !valid_origin_host(host) {
            return Err(format!(
                "'{host}' in '{s}' is not a host name or an IP address"
            ));
        }
        let addr = match (has_port, default_port) {
            (true, _) => authority.to_owned(),
            (false, Some(p)) => format!("{authority}:{p}"),
            (false, None) => {
                return Err(format!(
                    "'{s}' needs a port, as in {scheme}://localhost:{}",
                    if scheme == "udp" { 53 } else { 22 }
                ))
            }
        };
        if scheme == "udp" {
            return Ok(Self::Udp { addr });
        }
        Ok(Self::Tcp {
            addr,
            scheme: scheme.to_owned(),
        })
    }
}

/// A URL's host: a name (letters, digits, `-`, `_`, dots), an IPv4
/// address, or an IPv6 address in brackets.
fn valid_origin_host(h: &str) -> bool {
    if let Some(v6) = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// A rule's hostname in ASCII: internationalised names (written in
/// Unicode) become their punycode form, as browsers send them; `*.` stays.
fn ascii_hostname(h: &str) -> Result<String, String> {
    if h.is_ascii() {
        return Ok(h.to_owned());
    }
    let (wild, name) = match h.strip_prefix("*.") {
        Some(rest) => ("*.", rest),
        None => ("", h),
    };
    idna::domain_to_ascii(name)
        .map(|a| format!("{wild}{a}"))
        .map_err(|_| format!("'{h}' is not a valid internationalised hostname"))
}

/// One validated ingress rule.
#[derive(Debug, Clone)]
pub struct IngressRule {
    /// What the rule matches.
    pub matcher: Matcher,
    /// Where matching flows go.
    pub service: Service,
    /// The hostname as written, for display.
    pub hostname: Option<String>,
    /// How to talk to the origin (`originRequest`, top level merged with
    /// the rule's own).
    pub origin: crate::origin_request::OriginRequest,
}

/// A validated, ordered ingress list whose last rule is a catch-all.
#[derive(Debug, Clone)]
pub struct Ingress {
    /// Rules, first match wins.
    pub rules: Vec<IngressRule>,
}

impl Ingress {
    /// The rule for a flow to `host` (and `path`, for HTTP), with its index.
    /// Always `Some` for a validated list (the last rule catches all).
    pub fn find(&self, host: &str, path: Option<&str>) -> Option<(usize, &IngressRule)> {
        let i =
            burrow_policy::ingress::first_match(self.rules.iter().map(|r| &r.matcher), host, path)?;
        Some((i, &self.rules[i]))
    }

    /// A list with one catch-all rule sending everything to `service`.
    pub fn single(service: Service) -> Self {
        Self {
            rules: vec![IngressRule {
                matcher: Matcher {
                    host: None,
                    path: None,
                },
                service,
                hostname: None,
                origin: Default::default(),
            }],
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawRule {
    hostname: Option<String>,
    path: Option<String>,
    service: Option<String>,
    #[serde(rename = "originRequest")]
    origin_request: Option<Value>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct RawFile {
    tunnel: Option<String>,
    #[serde(rename = "credentials-file")]
    credentials_file: Option<PathBuf>,
    #[serde(default)]
    ingress: Vec<Value>,
    protocol: Option<String>,
    #[serde(rename = "ha-connections")]
    ha_connections: Option<Value>,
    edge: Option<Value>,
    #[serde(rename = "edge-ca")]
    edge_ca: Option<PathBuf>,
    #[serde(rename = "grace-period")]
    grace_period: Option<Value>,
    #[serde(rename = "loglevel")]
    log_level: Option<String>,
    #[serde(rename = "originRequest")]
    origin_request: Option<Value>,
    #[serde(rename = "warp-routing")]
    warp_routing: Option<Value>,
    metrics: Option<String>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

/// `warp-routing`: how the connector serves zero-trust clients' flows into
/// the private networks routed to its tunnel (`burrow route ip add`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarpRouting {
    /// `enabled` (default true): with false, private-network flows are
    /// refused.
    pub enabled: bool,
    /// `connectTimeout` (5 s): dial limit toward a private destination.
    pub connect_timeout: Duration,
    /// `maxActiveFlows` (unlimited): flows over it are refused.
    pub max_active_flows: Option<u64>,
    /// `tcpKeepAlive` (30 s): keep-alive probes on private TCP connections.
    pub tcp_keep_alive: Duration,
    /// The top-level `originRequest.ipRules`: destinations private flows
    /// may reach (first match; with rules, no match is denied).
    pub ip_rules: Vec<crate::origin_request::IpRule>,
}

impl Default for WarpRouting {
    fn default() -> Self {
        Self {
            enabled: true,
            connect_timeout: Duration::from_secs(5),
            max_active_flows: None,
            tcp_keep_alive: Duration::from_secs(30),
            ip_rules: Vec::new(),
        }
    }
}

fn warp_routing(v: &Value, warnings: &mut Vec<String>) -> Result<WarpRouting, ConfigError> {
    use crate::origin_request::{boolean, dur};
    let mut w = WarpRouting::default();
    let Value::Mapping(map) = v else {
        return Err(ConfigError::new("warp-routing", "must be a mapping"));
    };
    for (k, v) in map {
        let key = k.as_str().unwrap_or("?");
        let field = format!("warp-routing.{key}");
        match key {
            "enabled" => w.enabled = boolean(&field, v)?,
            "connectTimeout" => w.connect_timeout = dur(&field, v)?,
            "tcpKeepAlive" => w.tcp_keep_alive = dur(&field, v)?,
            "maxActiveFlows" => {
                w.max_active_flows = Some(v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                    ConfigError::new(&field, "must be a whole number of at least 1")
                })?);
            }
            _ => warnings.push(format!("unknown key '{key}' in warp-routing ignored")),
        }
    }
    if w.connect_timeout.is_zero() {
        return Err(ConfigError::new(
            "warp-routing.connectTimeout",
            "must be more than 0s",
        ));
    }
    Ok(w)
}

/// A validated connector `config.yml`.
#[derive(Debug, Clone)]
pub struct ConnectorFile {
    /// `tunnel`: tunnel id or name.
    pub tunnel: Option<String>,
    /// `credentials-file`.
    pub credentials_file: Option<PathBuf>,
    /// `ingress`, validated; `None` when the file has none.
    pub ingress: Option<Ingress>,
    /// `protocol`.
    pub protocol: Option<ProtocolChoice>,
    /// `ha-connections`.
    pub ha_connections: Option<u8>,
    /// `edge`: `host:port` addresses.
    pub edge: Vec<String>,
    /// `edge-ca`: PEM file of the CA that signed the edge certificate.
    pub edge_ca: Option<PathBuf>,
    /// `grace-period`.
    pub grace_period: Option<Duration>,
    /// `loglevel`.
    pub log_level: Option<String>,
    /// `warp-routing`.
    pub warp_routing: WarpRouting,
    /// `metrics`: where the metrics server listens (`IP:PORT`, `auto`, `off`).
    pub metrics: Option<String>,
    /// The top-level `originRequest` (every rule starts from it).
    pub base_origin: crate::origin_request::OriginRequest,
    /// One line per ignored key, naming it (top-level keys not in
    /// [`ConnectorFile::other_keys`]).
    pub warnings: Vec<String>,
    /// Top-level keys this parser does not know: cloudflared takes any of
    /// its flags as a key (`logfile:`, `edge-ip-version:`), so the caller
    /// applies those as flags and warns about the rest.
    pub other_keys: Vec<String>,
}

/// Most ingress rules accepted in one file.
pub const MAX_INGRESS_RULES: usize = 10_000;

/// Parses and validates a connector `config.yml`.
///
/// # Errors
/// [`ConfigError`] naming the field (`ingress[2].service`, `protocol`, ...)
/// and the reason; YAML syntax errors name the line and column.
pub fn parse_connector_yaml(text: &str) -> Result<ConnectorFile, ConfigError> {
    let raw: RawFile = if text.trim().is_empty() {
        RawFile {
            tunnel: None,
            credentials_file: None,
            ingress: Vec::new(),
            protocol: None,
            ha_connections: None,
            edge: None,
            edge_ca: None,
            grace_period: None,
            log_level: None,
            origin_request: None,
            warp_routing: None,
            metrics: None,
            unknown: BTreeMap::new(),
        }
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::new("config", e.to_string()))?
    };
    let other_keys: Vec<String> = raw.unknown.keys().cloned().collect();
    let mut warnings: Vec<String> = Vec::new();
    let base = match &raw.origin_request {
        Some(v) => crate::origin_request::OriginRequest::apply(
            &Default::default(),
            v,
            "originRequest",
            &mut warnings,
        )?,
        None => Default::default(),
    };
    let protocol = raw
        .protocol
        .as_deref()
        .map(ProtocolChoice::parse)
        .transpose()
        .map_err(|r| ConfigError::new("protocol", r))?;
    let ha_connections = raw
        .ha_connections
        .map(|v| match v.as_u64().and_then(|n| u8::try_from(n).ok()) {
            Some(n) if n >= 1 => Ok(n),
            _ => Err(ConfigError::new(
                "ha-connections",
                "must be a whole number from 1 to 255",
            )),
        })
        .transpose()?;
    let edge = match raw.edge {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Sequence(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                _ => Err(ConfigError::new(
                    format!("edge[{i}]"),
                    "must be a host:port string",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ConfigError::new(
                "edge",
                "must be a host:port string or a list of them",
            ))
        }
    };
    let grace_period = raw
        .grace_period
        .map(|v| match v {
            Value::String(s) => duration::parse(&s),
            Value::Number(n) => n
                .as_u64()
                .map(Duration::from_secs)
                .ok_or_else(|| "must be a whole number of seconds or a duration".into()),
            _ => Err("must be a duration such as 30s".into()),
        })
        .transpose()
        .map_err(|r| ConfigError::new("grace-period", r))?;
    let mut warp_routing = raw
        .warp_routing
        .as_ref()
        .map(|v| warp_routing(v, &mut warnings))
        .transpose()?
        .unwrap_or_default();
    warp_routing.ip_rules = base.ip_rules.clone();
    let ingress = if raw.ingress.is_empty() {
        None
    } else {
        Some(validate_ingress(raw.ingress, &base, &mut warnings)?)
    };
    Ok(ConnectorFile {
        tunnel: raw.tunnel,
        credentials_file: raw.credentials_file,
        ingress,
        protocol,
        ha_connections,
        edge,
        edge_ca: raw.edge_ca,
        grace_period,
        log_level: raw.log_level,
        warp_routing,
        metrics: raw.metrics,
        warnings,
        other_keys,
        base_origin: base,
    })
}

fn validate_ingress(
    raw: Vec<Value>,
    base: &crate::origin_request::OriginRequest,
    warnings: &mut Vec<String>,
) -> Result<Ingress, ConfigError> {
    if raw.len() > MAX_INGRESS_RULES {
        return Err(ConfigError::new(
            "ingress",
            format!(
                "{} rules, more than the maximum {MAX_INGRESS_RULES}",
                raw.len()
            ),
        ));
    }
    let last = raw.len() - 1;
    let mut rules = Vec::with_capacity(raw.len());
    for (i, value) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("ingress[{i}].{field}");
        if !value.is_mapping() {
            return Err(ConfigError::new(
                format!("ingress[{i}]"),
                "must be a mapping with 'service' (and optionally 'hostname', 'path')",
            ));
        }
        let rule: RawRule = serde_yaml_ng::from_value(value)
            .map_err(|e| ConfigError::new(format!("ingress[{i}]"), e.to_string()))?;
        for k in rule.unknown.keys() {
            warnings.push(format!("unknown key '{k}' in ingress[{i}] ignored"));
        }
        let origin = match &rule.origin_request {
            Some(v) => crate::origin_request::OriginRequest::apply(
                base,
                v,
                &at("originRequest"),
                warnings,
            )?,
            None => base.clone(),
        };
        let host = rule
            .hostname
            .as_deref()
            .map(|h| {
                let ascii = ascii_hostname(h).map_err(|r| ConfigError::new(at("hostname"), r))?;
                HostPattern::parse(&ascii)
                    .map_err(|e| ConfigError::new(at("hostname"), e.to_string()))
            })
            .transpose()?;
        let path = rule
            .path
            .as_deref()
            .map(|p| {
                regex::RegexBuilder::new(p)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| ConfigError::new(at("path"), format!("invalid regex: {e}")))
            })
            .transpose()?;
        let service = rule.service.ok_or_else(|| {
            ConfigError::new(at("service"), "missing; every rule needs a service")
        })?;
        let service = Service::parse(&service).map_err(|r| ConfigError::new(at("service"), r))?;
        let matcher = Matcher { host, path };
        if i == last && !matcher.is_catch_all() {
            return Err(ConfigError::new(
                format!("ingress[{i}]"),
                "the last rule must be a catch-all (no hostname and no path), \
                 e.g. '- service: http_status:404'",
            ));
        }
        if i != last && matcher.is_catch_all() {
            return Err(ConfigError::new(
                format!("ingress[{i}]"),
                "a rule without hostname and path matches everything, so the rules after it \
                 could never match; move it to the end",
            ));
        }
        let socks = service == Service::SocksProxy || origin.proxy_socks;
        if socks && origin.ip_rules.is_empty() {
            warnings.push(format!(
                "ingress[{i}]: a SOCKS proxy without originRequest.ipRules allows no destination (as in cloudflared); add ipRules with allow: true"
            ));
        }
        rules.push(IngressRule {
            matcher,
            service,
            hostname: rule.hostname,
            origin,
        });
    }
    Ok(Ingress { rules })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internationalised_hostnames_match_their_punycode() {
        let f = parse_connector_yaml(
            "ingress:\n  - hostname: bücher.example\n    service: http://localhost:8080\n  \
             - hostname: \"*.münchen.example\"\n    service: http://localhost:8081\n  \
             - service: http_status:404\n",
        )
        .unwrap();
        let ing = f.ingress.unwrap();
        assert_eq!(ing.find("xn--bcher-kva.example", None).unwrap().0, 0);
        assert_eq!(ing.find("www.xn--mnchen-3ya.example", None).unwrap().0, 1);
        assert_eq!(ing.find("other.example", None).unwrap().0, 2);
    }

    #[test]
    fn services_parse() {
        assert_eq!(
            Service::parse("tcp://localhost:22"),
            Ok(Service::Tcp {
                addr: "localhost:22".into(),
                scheme: "tcp".into()
            })
        );
        assert_eq!(
            Service::parse("http://127.0.0.1"),
            Ok(Service::Tcp {
                addr: "127.0.0.1:80".into(),
                scheme: "http".into()
            })
        );
        assert_eq!(
            Service::parse("http://[::1]:8080"),
            Ok(Service::Tcp {
                addr: "[::1]:8080".into(),
                scheme: "http".into()
            })
        );
        // As cloudflared: a path (even "/") is refused, not dropped.
        for with_path in [
            "http://[::1]:8080/x",
            "http://localhost:8080/",
            "https://a.example?q=1",
        ] {
            assert!(
                Service::parse(with_path)
                    .unwrap_err()
                    .contains("has a path"),
                "{with_path}"
            );
        }
        assert_eq!(
            Service::parse("http_status:404"),
            Ok(Service::HttpStatus(404))
        );
        assert_eq!(
            Service::parse("http_status:999"),
            Ok(Service::HttpStatus(999))
        );
        assert_eq!(Service::parse("hello_world"), Ok(Service::HelloWorld));
        assert_eq!(
            Service::parse("udp://127.0.0.1:53"),
            Ok(Service::Udp {
                addr: "127.0.0.1:53".into()
            })
        );
        assert!(Service::parse("udp://127.0.0.1")
            .unwrap_err()
            .contains("udp://localhost:53"));
        // ws/wss are HTTP origins; tcp without a port takes cloudflared's
        // 7864; other schemes are TCP streams and need a port.
        assert_eq!(
            Service::parse("ws://localhost:8080"),
            Ok(Service::Tcp {
                addr: "localhost:8080".into(),
                scheme: "http".into()
            })
        );
        assert_eq!(
            Service::parse("wss://ws.internal"),
            Ok(Service::Tcp {
                addr: "ws.internal:443".into(),
                scheme: "https".into()
            })
        );
        assert_eq!(
            Service::parse("tcp://localhost"),
            Ok(Service::Tcp {
                addr: "localhost:7864".into(),
                scheme: "tcp".into()
            })
        );
        assert_eq!(
            Service::parse("vnc://10.0.0.5:5900"),
            Ok(Service::Tcp {
                addr: "10.0.0.5:5900".into(),
                scheme: "vnc".into()
            })
        );
        assert!(Service::parse("ftp://x")
            .unwrap_err()
            .contains("needs a port"));
        assert!(Service::parse("http://bad host:80")
            .unwrap_err()
            .contains("not a host name"));
        assert!(Service::parse("http://us@er@x:80").is_err());
        assert!(Service::parse("tcp://x:99999")
            .unwrap_err()
            .contains("port"));
        assert!(Service::parse("http_status:99").is_err());
        assert!(Service::parse("http_status:1000").is_err());
    }

    #[test]
    fn cloudflared_config_loads_with_warnings() {
        let y = "tunnel: 6ff42ae2-765d-4adf-8112-31c55c1551ef\n\
                 credentials-file: /root/.cloudflared/x.json\n\
                 metrics: localhost:2000\n\
                 no-autoupdate: true\n\
                 ingress:\n\
                 \x20 - hostname: ssh.example.com\n\
                 \x20   service: ssh://localhost:22\n\
                 \x20 - service: http_status:404\n";
        let f = parse_connector_yaml(y).unwrap();
        assert_eq!(f.ingress.as_ref().unwrap().rules.len(), 2);
        assert_eq!(f.metrics.as_deref(), Some("localhost:2000"));
        assert_eq!(f.other_keys, ["no-autoupdate"], "left to the caller");
        let ing = f.ingress.unwrap();
        assert_eq!(ing.find("ssh.example.com", None).unwrap().0, 0);
        assert_eq!(ing.find("other", None).unwrap().0, 1);
    }

    #[test]
    fn warp_routing_has_cloudflared_defaults_and_named_errors() {
        let f = parse_connector_yaml("tunnel: x\n").unwrap();
        assert_eq!(f.warp_routing, WarpRouting::default());
        assert_eq!(f.warp_routing.connect_timeout, Duration::from_secs(5));
        let f = parse_connector_yaml(
            "warp-routing:\n  enabled: true\n  connectTimeout: 2s\n  maxActiveFlows: 10\n  tcpKeepAlive: 15s\n  bogus: 1\n",
        )
        .unwrap();
        assert_eq!(f.warp_routing.connect_timeout, Duration::from_secs(2));
        assert_eq!(f.warp_routing.max_active_flows, Some(10));
        assert_eq!(f.warp_routing.tcp_keep_alive, Duration::from_secs(15));
        assert!(f
            .warnings
            .iter()
            .any(|w| w.contains("'bogus' in warp-routing")));
        for (y, field) in [
            (
                "warp-routing:\n  maxActiveFlows: 0\n",
                "warp-routing.maxActiveFlows",
            ),
            (
                "warp-routing:\n  connectTimeout: soon\n",
                "warp-routing.connectTimeout",
            ),
            (
                "warp-routing:\n  connectTimeout: 0s\n",
                "warp-routing.connectTimeout",
            ),
            (
                "warp-routing:\n  enabled: yes please\n",
                "warp-routing.enabled",
            ),
            ("warp-routing: on\n", "warp-routing"),
        ] {
            assert_eq!(parse_connector_yaml(y).unwrap_err().field, field, "{y}");
        }
    }
}

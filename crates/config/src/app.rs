//! Edge apps in the shape of Cloudflare's Spectrum API, validated into an
//! [`AppSpec`]. Unknown fields are errors; every error names the field
//! (`protocol`, `origin_direct[1]`, `tls`, ...) and the reason.
//!
//! ```json
//! {"protocol": "tcp/1000-2000",
//!  "dns": {"type": "CNAME", "name": "range.example.com"},
//!  "origin_direct": ["tcp://192.0.2.1:3000-4000"],
//!  "ip_firewall": true, "proxy_protocol": "v2", "tls": "off",
//!  "edge_ips": {"type": "dynamic", "connectivity": "all"}}
//! ```
//!
//! Instead of `origin_direct`: `"origin_dns": {"name", "ttl"}` with
//! `"origin_port": "3000-4000"`, or `"origin_tunnel": {"tunnel", "hostname"}`.

use crate::ConfigError;
use burrow_policy::host::HostPattern;
use burrow_policy::ports::{PortMap, PortRange};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Transport of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP pass-through.
    Tcp,
    /// UDP pass-through.
    Udp,
}

impl L4 {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// PROXY protocol header sent to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// None.
    Off,
    /// Text header, TCP only.
    V1,
    /// Binary header, TCP and UDP.
    V2,
    /// Spectrum's Simple Proxy Protocol, UDP only.
    Simple,
}

/// Edge TLS termination mode (TCP apps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Pass-through, no termination.
    Off,
    /// TLS client↔edge, plain edge→origin.
    Flexible,
    /// TLS to the origin, not verified.
    Full,
    /// TLS to the origin, verified.
    Strict,
}

/// Which address families the app listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// IPv4 and IPv6.
    All,
    /// IPv4 only.
    Ipv4,
    /// IPv6 only.
    Ipv6,
}

/// One direct origin address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectOrigin {
    /// Origin IP.
    pub ip: IpAddr,
    /// Edge → origin port mapping.
    pub ports: PortMap,
}

/// Where an app's connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// One or more addresses, balanced.
    Direct(Vec<DirectOrigin>),
    /// A DNS name re-resolved per TTL.
    Dns {
        /// Name to resolve.
        name: String,
        /// Re-resolution period, seconds.
        ttl: u32,
        /// Edge → origin port mapping.
        ports: PortMap,
    },
    /// Through a connector of a tunnel.
    Tunnel {
        /// Tunnel name or id.
        tunnel: String,
        /// Hostname sent to the connector (selects its ingress rule).
        hostname: String,
    },
}

/// A validated app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// TCP or UDP.
    pub l4: L4,
    /// Edge ports.
    pub edge_ports: PortRange,
    /// DNS name the app answers on, if any.
    pub dns_name: Option<String>,
    /// Origin.
    pub origin: Origin,
    /// Whether IP access rules apply.
    pub ip_firewall: bool,
    /// PROXY protocol to the origin.
    pub proxy_protocol: ProxyProtocol,
    /// TLS termination.
    pub tls: TlsMode,
    /// Address families.
    pub connectivity: Connectivity,
    /// What one app lets its clients hold.
    pub limits: AppLimits,
}

/// Per-app limits on what clients can make the edge hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppLimits {
    /// A TCP flow or UDP session with no byte either way for this long is
    /// closed (`idle_timeout`, seconds; default
    /// [`AppLimits::DEFAULT_IDLE_SECS`] for TCP,
    /// [`AppLimits::DEFAULT_UDP_IDLE_SECS`] for UDP).
    pub idle_timeout: std::time::Duration,
    /// Most open TCP connections (UDP sessions) of the app at once
    /// (`max_connections`; default 10,000).
    pub max_connections: u32,
    /// Most open connections (sessions) of one client address
    /// (`max_connections_per_ip`; default 256).
    pub max_per_ip: u32,
}

impl AppLimits {
    /// Default idle timeout of TCP flows: 5 minutes.
    pub const DEFAULT_IDLE_SECS: u32 = 300;
    /// Default idle timeout of UDP sessions: 1 minute.
    pub const DEFAULT_UDP_IDLE_SECS: u32 = 60;
}

impl Default for AppLimits {
    fn default() -> Self {
        Self {
            idle_timeout: std::time::Duration::from_secs(u64::from(Self::DEFAULT_IDLE_SECS)),
            max_connections: 10_000,
            max_per_ip: 256,
        }
    }
}

/// The API body, as sent and stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    /// `tcp/PORT`, `tcp/A-B`, `udp/...`.
    pub protocol: String,
    /// `{type, name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<RawDns>,
    /// `["tcp://IP:PORT[-PORT]", ...]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_direct: Option<Vec<String>>,
    /// `{name, ttl}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_dns: Option<RawOriginDns>,
    /// `PORT` or `A-B`, with `origin_dns`. A number is accepted too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_port: Option<serde_json::Value>,
    /// `{tunnel, hostname}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_tunnel: Option<RawOriginTunnel>,
    /// Apply IP access rules.
    #[serde(default)]
    pub ip_firewall: bool,
    /// `off|v1|v2|simple` (default `off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
    /// `off|flexible|full|strict` (default `off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// `{type: dynamic, connectivity: all|ipv4|ipv6}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_ips: Option<RawEdgeIps>,
    /// Seconds a TCP flow or UDP session may be idle (no byte either way)
    /// before it is closed; 1-86400, default 300 (TCP) or 60 (UDP).
    /// burrow's addition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u32>,
    /// Most connections (TCP) or sessions (UDP) open at once; default
    /// 10,000. burrow's addition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Most connections or sessions of one client address; default 256.
    /// burrow's addition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<u32>,
}

/// `dns` of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    /// `CNAME` or `ADDRESS`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The name.
    pub name: String,
}

/// `origin_dns` of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawOriginDns {
    /// Name to resolve.
    pub name: String,
    /// Seconds between resolutions (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
}

/// `origin_tunnel` of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawOriginTunnel {
    /// Tunnel name or id.
    pub tunnel: String,
    /// Hostname for the connector's ingress rules.
    #[serde(default)]
    pub hostname: String,
}

/// `edge_ips` of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawEdgeIps {
    /// Only `dynamic`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `all`, `ipv4` or `ipv6`.
    #[serde(default = "all")]
    pub connectivity: String,
}

fn all() -> String {
    "all".into()
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(field, reason)
}

/// Parses `tcp/…` or `udp/…`.
fn parse_protocol(p: &str) -> Result<(L4, PortRange), ConfigError> {
    let (l4, ports) = p.split_once('/').ok_or_else(|| {
        err(
            "protocol",
            format!("'{p}' must look like tcp/22 or udp/10000-10100"),
        )
    })?;
    let l4 = match l4 {
        "tcp" => L4::Tcp,
        "udp" => L4::Udp,
        other => return Err(err("protocol", format!("'{other}' is not tcp or udp"))),
    };
    let range = PortRange::parse(ports).map_err(|e| err("protocol", e.0))?;
    Ok((l4, range))
}

fn hostname(field: &str, name: &str) -> Result<(), ConfigError> {
    match HostPattern::parse(name) {
        Ok(HostPattern::Exact(_)) => Ok(()),
        Ok(_) => Err(err(field, "must be a plain DNS name, without wildcards")),
        Err(e) => Err(err(field, e.to_string())),
    }
}

impl RawApp {
    /// Parses an API body.
    ///
    /// # Errors
    /// [`ConfigError`] naming the unknown or malformed field.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(text).map_err(|e| err("body", e.to_string()))
    }

    /// Validates into an [`AppSpec`].
    ///
    /// # Errors
    /// [`ConfigError`] naming the field and the reason.
    pub fn validate(&self) -> Result<AppSpec, ConfigError> {
        let (l4, edge_ports) = parse_protocol(&self.protocol)?;
        let kinds = [
            self.origin_direct.is_some(),
            self.origin_dns.is_some(),
            self.origin_tunnel.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(err(
                "origin_direct",
                "give exactly one of origin_direct, origin_dns (with origin_port) or origin_tunnel",
            ));
        }
        if self.origin_port.is_some() && self.origin_dns.is_none() {
            return Err(err("origin_port", "only used together with origin_dns"));
        }
        let origin = if let Some(list) = &self.origin_direct {
            if list.is_empty() {
                return Err(err("origin_direct", "needs at least one address"));
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, o) in list.iter().enumerate() {
                out.push(direct(&format!("origin_direct[{i}]"), o, l4, edge_ports)?);
            }
            Origin::Direct(out)
        } else if let Some(d) = &self.origin_dns {
            hostname("origin_dns.name", &d.name)?;
            let ttl = d.ttl.unwrap_or(300);
            if ttl == 0 {
                return Err(err("origin_dns.ttl", "must be at least 1 second"));
            }
            let port = match &self.origin_port {
                None => return Err(err("origin_port", "required with origin_dns")),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(_) => {
                    return Err(err(
                        "origin_port",
                        "must be a port or a range such as \"3000-4000\"",
                    ))
                }
            };
            let range = PortRange::parse(&port).map_err(|e| err("origin_port", e.0))?;
            let ports = PortMap::new(edge_ports, range).map_err(|e| err("origin_port", e.0))?;
            Origin::Dns {
                name: d.name.clone(),
                ttl,
                ports,
            }
        } else {
            let t = self
                .origin_tunnel
                .as_ref()
                .expect("checked: exactly one origin kind");
            if t.tunnel.is_empty() {
                return Err(err("origin_tunnel.tunnel", "names the tunnel (name or id)"));
            }
            if !t.hostname.is_empty() {
                hostname("origin_tunnel.hostname", &t.hostname)?;
            }
            Origin::Tunnel {
                tunnel: t.tunnel.clone(),
                hostname: t.hostname.clone(),
            }
        };
        let proxy_protocol = match self.proxy_protocol.as_deref().unwrap_or("off") {
            "off" => ProxyProtocol::Off,
            "v1" if l4 == L4::Tcp => ProxyProtocol::V1,
            "v1" => {
                return Err(err(
                    "proxy_protocol",
                    "v1 is for TCP apps; use v2 or simple for UDP",
                ))
            }
            "v2" => ProxyProtocol::V2,
            "simple" if l4 == L4::Udp => ProxyProtocol::Simple,
            "simple" => {
                return Err(err(
                    "proxy_protocol",
                    "simple is for UDP apps; use v1 or v2 for TCP",
                ))
            }
            other => {
                return Err(err(
                    "proxy_protocol",
                    format!("'{other}' is not off, v1, v2 or simple"),
                ))
            }
        };
        let tls = match self.tls.as_deref().unwrap_or("off") {
            "off" => TlsMode::Off,
            "flexible" => TlsMode::Flexible,
            "full" => TlsMode::Full,
            "strict" => TlsMode::Strict,
            other => {
                return Err(err(
                    "tls",
                    format!("'{other}' is not off, flexible, full or strict"),
                ))
            }
        };
        if l4 == L4::Udp && tls != TlsMode::Off {
            return Err(err(
                "tls",
                "TLS termination is for TCP apps; UDP apps need tls: off",
            ));
        }
        if matches!(origin, Origin::Tunnel { .. }) && matches!(tls, TlsMode::Full | TlsMode::Strict)
        {
            return Err(err(
                "tls",
                "full and strict encrypt edge→origin, but a tunnel origin is reached by the connector: use flexible, and an https:// service in the connector's ingress rule",
            ));
        }
        let connectivity = match &self.edge_ips {
            None => Connectivity::All,
            Some(e) => {
                if e.kind != "dynamic" {
                    return Err(err(
                        "edge_ips.type",
                        format!("'{}' is not supported; use dynamic", e.kind),
                    ));
                }
                match e.connectivity.as_str() {
                    "all" => Connectivity::All,
                    "ipv4" => Connectivity::Ipv4,
                    "ipv6" => Connectivity::Ipv6,
                    other => {
                        return Err(err(
                            "edge_ips.connectivity",
                            format!("'{other}' is not all, ipv4 or ipv6"),
                        ))
                    }
                }
            }
        };
        let dns_name = match &self.dns {
            None => None,
            Some(d) => {
                if d.kind != "CNAME" && d.kind != "ADDRESS" {
                    return Err(err(
                        "dns.type",
                        format!("'{}' is not CNAME or ADDRESS", d.kind),
                    ));
                }
                hostname("dns.name", &d.name)?;
                Some(d.name.clone())
            }
        };
        let limits = self.limits(l4)?;
        Ok(AppSpec {
            l4,
            edge_ports,
            dns_name,
            origin,
            ip_firewall: self.ip_firewall,
            proxy_protocol,
            tls,
            connectivity,
            limits,
        })
    }

    fn limits(&self, l4: L4) -> Result<AppLimits, ConfigError> {
        let d = AppLimits::default();
        let bounded = |field: &str, v: Option<u32>, max: u32, default: u32| match v {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(ConfigError::new(
                field,
                format!("{n} is not within 1-{max}"),
            )),
        };
        let idle = bounded(
            "idle_timeout",
            self.idle_timeout,
            86_400,
            match l4 {
                L4::Tcp => AppLimits::DEFAULT_IDLE_SECS,
                L4::Udp => AppLimits::DEFAULT_UDP_IDLE_SECS,
            },
        )?;
        let max_connections = bounded(
            "max_connections",
            self.max_connections,
            1_000_000,
            d.max_connections,
        )?;
        let max_per_ip = bounded(
            "max_connections_per_ip",
            self.max_connections_per_ip,
            max_connections,
            d.max_per_ip.min(max_connections),
        )?;
        Ok(AppLimits {
            idle_timeout: std::time::Duration::from_secs(u64::from(idle)),
            max_connections,
            max_per_ip,
        })
    }
}

/// Parses `tcp://IP:PORT[-PORT]` (IPv6 in brackets).
fn direct(field: &str, s: &str, l4: L4, edge: PortRange) -> Result<DirectOrigin, ConfigError> {
    let (scheme, rest) = s.split_once("://").ok_or_else(|| {
        err(
            field,
            format!("'{s}' must look like {}://192.0.2.1:3000", l4.as_str()),
        )
    })?;
    if scheme != l4.as_str() {
        return Err(err(
            field,
            format!(
                "scheme '{scheme}' does not match the app protocol {}",
                l4.as_str()
            ),
        ));
    }
    let (host, ports) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, p) = v6
            .split_once("]:")
            .ok_or_else(|| err(field, "IPv6 origins are written [2001:db8::1]:PORT"))?;
        (h, p)
    } else {
        rest.rsplit_once(':')
            .ok_or_else(|| err(field, format!("'{s}' needs a port")))?
    };
    let ip: IpAddr = host.parse().map_err(|_| {
        err(
            field,
            format!("'{host}' is not an IP address (use origin_dns for names)"),
        )
    })?;
    let range = PortRange::parse(ports).map_err(|e| err(field, e.0))?;
    let ports = PortMap::new(edge, range).map_err(|e| err(field, e.0))?;
    Ok(DirectOrigin { ip, ports })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(json: &str) -> Result<AppSpec, ConfigError> {
        RawApp::from_json(json)?.validate()
    }

    #[test]
    fn the_spectrum_example_validates() {
        let a = v(r#"{"protocol": "tcp/1000-2000",
             "dns": {"type": "CNAME", "name": "range.example.com"},
             "origin_direct": ["tcp://192.0.2.1:3000-4000"],
             "ip_firewall": true, "proxy_protocol": "v2", "tls": "off",
             "edge_ips": {"type": "dynamic", "connectivity": "all"}}"#)
        .unwrap();
        let Origin::Direct(d) = &a.origin else {
            panic!()
        };
        assert_eq!(d[0].ports.map(1005), Some(3005));
        assert_eq!(a.proxy_protocol, ProxyProtocol::V2);
        assert!(a.ip_firewall);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"protocol":"tcp/1-2","origin_direct":["tcp://127.0.0.1:5-7"]}"#,
                "origin_direct[0]",
                "has 3 ports",
            ),
            (
                r#"{"protocol":"tcp/0","origin_direct":["tcp://127.0.0.1:5"]}"#,
                "protocol",
                "port 0",
            ),
            (
                r#"{"protocol":"tcp/9-2","origin_direct":["tcp://127.0.0.1:5"]}"#,
                "protocol",
                "reversed",
            ),
            (
                r#"{"protocol":"udp/53","origin_direct":["udp://127.0.0.1:53"],"tls":"full"}"#,
                "tls",
                "TCP apps",
            ),
            (
                r#"{"protocol":"tcp/22","origin_direct":["tcp://127.0.0.1:22"],"proxy_protocol":"simple"}"#,
                "proxy_protocol",
                "UDP",
            ),
            (
                r#"{"protocol":"tcp/22","origin_direct":["udp://127.0.0.1:22"]}"#,
                "origin_direct[0]",
                "does not match",
            ),
            (r#"{"protocol":"tcp/22"}"#, "origin_direct", "exactly one"),
            (
                r#"{"protocol":"tcp/22","origin_dns":{"name":"o.example.com"}}"#,
                "origin_port",
                "required",
            ),
            (
                r#"{"protocol":"tcp/22","origin_direct":["tcp://127.0.0.1:22"],"colour":1}"#,
                "body",
                "colour",
            ),
            (
                r#"{"protocol":"tcp/22","origin_tunnel":{"tunnel":"t"},"tls":"strict"}"#,
                "tls",
                "connector",
            ),
            (
                r#"{"protocol":"sctp/22","origin_direct":["tcp://127.0.0.1:22"]}"#,
                "protocol",
                "not tcp or udp",
            ),
            (
                r#"{"protocol":"tcp/22","origin_direct":["tcp://host:22"]}"#,
                "origin_direct[0]",
                "not an IP",
            ),
        ];
        for (json, field, why) in cases {
            let e = v(json).unwrap_err();
            assert_eq!(e.field, field, "{json}: {e}");
            assert!(e.reason.contains(why), "{json}: {e}");
        }
    }

    #[test]
    fn raw_round_trips_through_json() {
        let raw = RawApp::from_json(
            r#"{"protocol":"udp/10000-10100","origin_dns":{"name":"o.example.com","ttl":60},"origin_port":"20000-20100","proxy_protocol":"simple"}"#,
        )
        .unwrap();
        let again = RawApp::from_json(&serde_json::to_string(&raw).unwrap()).unwrap();
        assert_eq!(raw, again);
        assert!(matches!(
            again.validate().unwrap().origin,
            Origin::Dns { ttl: 60, .. }
        ));
    }
}

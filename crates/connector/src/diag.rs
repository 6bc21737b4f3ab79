//! `burrow tunnel diag`: the connectivity checks operators otherwise run by
//! hand with dig and nc (reference `000_*`, `001_*`): the SRV record of the
//! edge domain, A/AAAA of each target, TCP and TLS to each address, a real
//! QUIC handshake with the expected SNI, and the local port range and UDP
//! buffer sizes. Each line gets a verdict and, when it is not `ok`, a hint.

use std::net::SocketAddr;
use std::time::Duration;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Works.
    Ok,
    /// Works around it (e.g. HTTP/2 instead of QUIC) or may limit capacity.
    Warn,
    /// Breaks the tunnel.
    Fail,
}

impl Verdict {
    /// `ok`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub check: String,
    /// Against what.
    pub target: String,
    /// The outcome.
    pub verdict: Verdict,
    /// What was seen.
    pub detail: String,
    /// What to do about it.
    pub hint: Option<String>,
}

/// What to check.
#[derive(Debug, Clone)]
pub struct DiagOptions {
    /// `--edge host:port` addresses; empty: the SRV record.
    pub edges: Vec<String>,
    /// The edge domain (SRV name, SNI names).
    pub edge_domain: String,
    /// DNS server for the lookups; `None`: the system's.
    pub dns_server: Option<SocketAddr>,
    /// The edge CA (PEM), to verify certificates as a connector does.
    pub ca_pem: Option<String>,
    /// Limit of each network check.
    pub timeout: Duration,
    /// Optional extra ports to probe on every edge address (e.g. 443 when
    /// the edge also listens there); their failures are warnings.
    pub extra_ports: Vec<u16>,
}

fn line(
    check: &str,
    target: &str,
    verdict: Verdict,
    detail: String,
    hint: Option<String>,
) -> Check {
    Check {
        check: check.into(),
        target: target.into(),
        verdict,
        detail,
        hint,
    }
}

/// Runs every check.
pub async fn run(o: &DiagOptions) -> Vec<Check> {
    let mut out = Vec::new();
    let addrs = resolve(o, &mut out).await;
    let trust = o
        .ca_pem
        .as_deref()
        .and_then(|pem| burrow_transport::pki::EdgeTrust::new(pem, &o.edge_domain).ok());
    if o.ca_pem.is_some() && trust.is_none() {
        out.push(line(
            "edge CA",
            "-",
            Verdict::Fail,
            "the CA PEM holds no usable certificate".into(),
            Some("pass the edge's ca.pem with --edge-ca, or --credentials-file".into()),
        ));
    }
    let verified = if trust.is_some() {
        "certificate verified"
    } else {
        "certificate not verified (give --credentials-file or --edge-ca)"
    };
    let mut probes: Vec<(SocketAddr, bool)> = addrs.iter().map(|a| (*a, false)).collect();
    for a in &addrs {
        for p in &o.extra_ports {
            let extra = SocketAddr::new(a.ip(), *p);
            if !probes.iter().any(|(x, _)| *x == extra) {
                probes.push((extra, true));
            }
        }
    }
    for (addr, optional) in probes {
        let before = out.len();
        probe_addr(o, addr, trust.as_ref(), verified, &mut out).await;
        if optional {
            for c in &mut out[before..] {
                if c.verdict == Verdict::Fail {
                    c.verdict = Verdict::Warn;
                    c.hint = Some(format!(
                        "optional port {} endpoint not reachable: the main port is used",
                        addr.port()
                    ));
                }
            }
        }
    }
    local(&mut out);
    out
}

/// TCP, TLS and QUIC checks of one address.
async fn probe_addr(
    o: &DiagOptions,
    addr: SocketAddr,
    trust: Option<&burrow_transport::pki::EdgeTrust>,
    verified: &str,
    out: &mut Vec<Check>,
) {
    {
        let t = addr.to_string();
        let tcp = burrow_transport::probe::tcp(addr, o.timeout).await;
        let tls = match &tcp {
            Ok(_) => {
                Some(burrow_transport::probe::tls(addr, &o.edge_domain, trust, o.timeout).await)
            }
            Err(_) => None,
        };
        let quic = burrow_transport::probe::quic(addr, &o.edge_domain, trust, o.timeout).await;
        let port = addr.port();
        let h2_ok = matches!(tls, Some(Ok(_)));
        match &tcp {
            Ok(d) => out.push(line(
                "TCP connect",
                &t,
                Verdict::Ok,
                format!("{} ms", d.as_millis()),
                None,
            )),
            Err(e) => out.push(line(
                "TCP connect",
                &t,
                if quic.is_ok() {
                    Verdict::Warn
                } else {
                    Verdict::Fail
                },
                e.clone(),
                Some(format!(
                    "TCP {port} blocked: HTTP/2 fallback is unavailable; allow TCP {port} egress"
                )),
            )),
        }
        match tls {
            Some(Ok(d)) => out.push(line(
                "TLS (HTTP/2 transport)",
                &t,
                Verdict::Ok,
                format!("{} ms, SNI h2.{}, {verified}", d.as_millis(), o.edge_domain),
                None,
            )),
            Some(Err(e)) => out.push(line(
                "TLS (HTTP/2 transport)",
                &t,
                if quic.is_ok() { Verdict::Warn } else { Verdict::Fail },
                e,
                Some(
                    "TLS failed over a working TCP connection: a middlebox intercepting TLS, or the wrong edge CA"
                        .into(),
                ),
            )),
            None => {}
        }
        match quic {
            Ok(d) => out.push(line(
                "QUIC handshake",
                &t,
                Verdict::Ok,
                format!("{} ms, SNI quic.{}, {verified}", d.as_millis(), o.edge_domain),
                None,
            )),
            Err(e) => out.push(line(
                "QUIC handshake",
                &t,
                if h2_ok { Verdict::Warn } else { Verdict::Fail },
                e,
                Some(if h2_ok {
                    format!("UDP {port} blocked: the connector will use HTTP/2; allow UDP {port} egress for QUIC")
                } else {
                    format!("neither UDP nor TCP {port} reaches the edge: allow egress to it")
                }),
            )),
        }
    }
}

/// The addresses to probe: `--edge` entries, or the SRV targets' A/AAAA.
async fn resolve(o: &DiagOptions, out: &mut Vec<Check>) -> Vec<SocketAddr> {
    let mut addrs = Vec::new();
    if !o.edges.is_empty() {
        for e in &o.edges {
            match tokio::net::lookup_host(e.as_str()).await {
                Ok(a) => {
                    let a: Vec<SocketAddr> = a.collect();
                    let list = a
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ");
                    out.push(line("resolve --edge", e, Verdict::Ok, list, None));
                    addrs.extend(a);
                }
                Err(err) => out.push(line(
                    "resolve --edge",
                    e,
                    Verdict::Fail,
                    err.to_string(),
                    Some("check the name and the DNS resolver".into()),
                )),
            }
        }
        return addrs;
    }
    let name = format!("_v2-origintunneld._tcp.{}.", o.edge_domain);
    let resolver = match burrow_transport::dns::resolver(o.dns_server, false) {
        Ok(r) => r,
        Err(e) => {
            out.push(line("DNS resolver", "-", Verdict::Fail, e, None));
            return addrs;
        }
    };
    let targets: Vec<(String, u16)> = match resolver.srv_lookup(name.as_str()).await {
        Ok(srv) => srv
            .iter()
            .map(|r| (r.target().to_utf8(), r.port()))
            .collect(),
        Err(e) => {
            out.push(line(
                "DNS SRV",
                &name,
                Verdict::Fail,
                e.to_string(),
                Some("publish the SRV record for the edge domain, or give --edge host:port".into()),
            ));
            return addrs;
        }
    };
    let list = targets
        .iter()
        .map(|(t, p)| format!("{t}:{p}"))
        .collect::<Vec<_>>()
        .join(", ");
    out.push(line("DNS SRV", &name, Verdict::Ok, list, None));
    for (target, port) in targets {
        for (kind, v6) in [("DNS A", false), ("DNS AAAA", true)] {
            let found: Result<Vec<std::net::IpAddr>, String> = if v6 {
                resolver
                    .ipv6_lookup(target.as_str())
                    .await
                    .map(|r| r.iter().map(|a| std::net::IpAddr::V6(a.0)).collect())
                    .map_err(|e| e.to_string())
            } else {
                resolver
                    .ipv4_lookup(target.as_str())
                    .await
                    .map(|r| r.iter().map(|a| std::net::IpAddr::V4(a.0)).collect())
                    .map_err(|e| e.to_string())
            };
            match found {
                Ok(ips) if !ips.is_empty() => {
                    let list = ips
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ");
                    out.push(line(kind, &target, Verdict::Ok, list, None));
                    addrs.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port)));
                }
                // A missing AAAA is normal; a missing A is only a note.
                _ if v6 => {}
                Ok(_) | Err(_) => out.push(line(
                    kind,
                    &target,
                    Verdict::Warn,
                    "no address".into(),
                    Some("the SRV target has no IPv4 address".into()),
                )),
            }
        }
    }
    addrs
}

fn read_num(path: &str) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect(),
    )
}

/// Local limits: ephemeral ports and UDP socket buffers.
fn local(out: &mut Vec<Check>) {
    if let Some(r) = read_num("/proc/sys/net/ipv4/ip_local_port_range") {
        if let [lo, hi, ..] = r[..] {
            let n = hi.saturating_sub(lo) + 1;
            let ok = n >= 50_000;
            out.push(line(
                "ephemeral ports",
                "local",
                if ok { Verdict::Ok } else { Verdict::Warn },
                format!("{n} ({lo}-{hi})"),
                (!ok).then(|| {
                    "each flow uses one; sysctl -w net.ipv4.ip_local_port_range=\"11000 60999\""
                        .into()
                }),
            ));
        }
    }
    for (name, path) in [
        ("UDP receive buffer max", "/proc/sys/net/core/rmem_max"),
        ("UDP send buffer max", "/proc/sys/net/core/wmem_max"),
    ] {
        if let Some(v) = read_num(path).and_then(|v| v.first().copied()) {
            let ok = v >= 7_500_000;
            out.push(line(
                name,
                "local",
                if ok { Verdict::Ok } else { Verdict::Warn },
                format!("{v} bytes"),
                (!ok).then(|| {
                    "QUIC throughput suffers with small buffers: sysctl -w net.core.rmem_max=7500000 net.core.wmem_max=7500000".into()
                }),
            ));
        }
    }
}

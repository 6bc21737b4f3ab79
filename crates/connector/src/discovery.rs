//! Edge addresses: the static `--edge host:port` list, or DNS SRV
//! `_v2-origintunneld._tcp.<edge-domain>` (targets by priority, then
//! weight), each target resolved to A/AAAA records.

use crate::IpVersion;
use std::net::SocketAddr;

fn keep(addr: &SocketAddr, v: IpVersion) -> bool {
    match v {
        IpVersion::V4 => addr.is_ipv4(),
        IpVersion::V6 => addr.is_ipv6(),
        IpVersion::Auto => true,
    }
}

/// Resolves the edge addresses to dial.
///
/// # Errors
/// A readable reason when nothing usable resolves.
pub(crate) async fn edge_addrs(
    static_edges: &[String],
    domain: &str,
    v: IpVersion,
    dns_server: Option<SocketAddr>,
) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    if !static_edges.is_empty() {
        for e in static_edges {
            let addrs = tokio::net::lookup_host(e.as_str())
                .await
                .map_err(|err| format!("edge '{e}': {err}"))?;
            let before = out.len();
            // Literal addresses are kept whatever the IP-version preference.
            let literal = e.parse::<SocketAddr>().is_ok();
            out.extend(addrs.filter(|a| literal || keep(a, v)));
            if out.len() == before {
                return Err(format!(
                    "edge '{e}' has no address of the chosen IP version"
                ));
            }
        }
        return Ok(dedup(out));
    }
    let resolver = burrow_transport::dns::resolver(dns_server, true)?;
    let name = format!("_v2-origintunneld._tcp.{domain}.");
    let srv = resolver
        .srv_lookup(name.as_str())
        .await
        .map_err(|e| format!("SRV {name}: {e} (or give --edge host:port)"))?;
    let mut targets: Vec<(u16, u16, String, u16)> = srv
        .iter()
        .map(|r| (r.priority(), r.weight(), r.target().to_utf8(), r.port()))
        .collect();
    // Lower priority first, then higher weight first.
    targets.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    for (_, _, target, port) in targets {
        match resolver.lookup_ip(target.as_str()).await {
            Ok(ips) => out.extend(
                ips.iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .filter(|a| keep(a, v)),
            ),
            Err(e) => tracing::warn!(%target, error = %e, "edge target does not resolve"),
        }
    }
    if out.is_empty() {
        return Err(format!("SRV {name} gave no usable address"));
    }
    Ok(dedup(out))
}

fn dedup(v: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let mut out = Vec::with_capacity(v.len());
    for a in v {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

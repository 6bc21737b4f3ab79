//! cloudflared's `socks-proxy` service: the stream (a WebSocket from
//! `burrow access tcp`, or an edge app's TCP flow) is a SOCKS5 proxy. Each
//! CONNECT's destination is resolved here and must be allowed by the
//! rule's `ipRules`; as in cloudflared, a rule without `ipRules` allows
//! nothing. The same check bounds `bastion` destinations ([`allowed`]).

use crate::flow::tcp::dial_tcp;
use crate::metrics::Metrics;
use burrow_config::origin_request::{ip_rules_allow, IpRule};
use burrow_proto::socks5::{self, Command, Dest, Reply};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tracing::{debug, info};

/// How long a client has for its SOCKS greeting and request.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The first address of `dest` that `rules` allow; the reason when none is
/// (or it does not resolve). `deny_without_rules`: no rules allow nothing
/// (socks-proxy) rather than everything (bastion without rules).
pub(crate) async fn allowed(
    dest: &Dest,
    rules: &[IpRule],
    deny_without_rules: bool,
) -> Result<SocketAddr, (Reply, String)> {
    if rules.is_empty() && deny_without_rules {
        return Err((
            Reply::NotAllowed,
            "the rule has no ipRules, so no destination is allowed".into(),
        ));
    }
    let addrs: Vec<SocketAddr> = match dest {
        Dest::Ip(a) => vec![*a],
        Dest::Domain(h, p) => tokio::net::lookup_host((h.as_str(), *p))
            .await
            .map_err(|e| (Reply::HostUnreachable, format!("{dest}: {e}")))?
            .collect(),
    };
    let mut refused = None;
    for a in addrs {
        match ip_rules_allow(rules, a) {
            (true, _) => return Ok(a),
            (false, rule) => refused = Some((a, rule)),
        }
    }
    Err(match refused {
        Some((a, Some(i))) => (Reply::NotAllowed, format!("{a} is denied by ipRules[{i}]")),
        Some((a, None)) => (Reply::NotAllowed, format!("{a} matches no ipRules entry")),
        None => (Reply::HostUnreachable, format!("{dest}: no address")),
    })
}

/// Serves one SOCKS5 client on `io` for rule `rule`.
pub(crate) async fn serve<S>(
    mut io: S,
    rules: &[IpRule],
    connect_timeout: Duration,
    metrics: &Metrics,
    rule: usize,
) where
    S: burrow_transport::stream::AsyncStream,
{
    let (req, early) = match burrow_transport::socks::accept(&mut io, HANDSHAKE).await {
        Ok(x) => x,
        Err(reason) => {
            debug!(rule, %reason, "SOCKS handshake failed");
            return;
        }
    };
    if req.command != Command::Connect {
        let _ = io
            .write_all(&socks5::reply(Reply::CommandNotSupported, None))
            .await;
        info!(rule, command = ?req.command, "SOCKS command not supported (CONNECT only)");
        return;
    }
    let to = match allowed(&req.dest, rules, true).await {
        Ok(a) => a,
        Err((code, reason)) => {
            info!(rule, dest = %req.dest, %reason, "SOCKS destination refused");
            let _ = io.write_all(&socks5::reply(code, None)).await;
            return;
        }
    };
    let mut origin = match dial_tcp(&to.to_string(), connect_timeout, metrics).await {
        Ok(o) => o,
        Err(e) => {
            let reason = e.map_or_else(|| "timed out".to_owned(), |e| e.to_string());
            info!(rule, dest = %req.dest, %reason, "SOCKS destination unreachable");
            let _ = io
                .write_all(&socks5::reply(Reply::HostUnreachable, None))
                .await;
            return;
        }
    };
    if io
        .write_all(&socks5::reply(Reply::Succeeded, origin.local_addr().ok()))
        .await
        .is_err()
        || (!early.is_empty() && origin.write_all(&early).await.is_err())
    {
        return;
    }
    metrics.tcp_total.inc();
    metrics.tcp_active.inc();
    match burrow_transport::splice::splice(&mut io, &mut origin).await {
        Ok((to_origin, from_origin)) => {
            metrics.flow_bytes(Some(rule), to_origin + early.len() as u64, from_origin);
        }
        Err(e) => debug!(rule, error = %e, "SOCKS flow ended with an error"),
    }
    metrics.tcp_active.dec();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: &str, allow: bool) -> IpRule {
        IpRule {
            prefix: prefix.parse().unwrap(),
            ports: vec![],
            allow,
        }
    }

    #[tokio::test]
    async fn destinations_pass_only_through_ip_rules() {
        let at = |s: &str| Dest::Ip(s.parse().unwrap());
        let rules = [rule("127.0.0.2/32", false), rule("127.0.0.0/8", true)];
        assert!(allowed(&at("127.0.0.1:80"), &rules, true).await.is_ok());
        let (code, why) = allowed(&at("127.0.0.2:80"), &rules, true)
            .await
            .unwrap_err();
        assert_eq!(code, Reply::NotAllowed);
        assert!(why.contains("ipRules[0]"), "{why}");
        let (_, why) = allowed(&at("10.0.0.1:80"), &rules, true).await.unwrap_err();
        assert!(why.contains("matches no ipRules"), "{why}");
        // socks-proxy without rules allows nothing; bastion without rules
        // allows what its clients name.
        assert!(allowed(&at("127.0.0.1:80"), &[], true).await.is_err());
        assert!(allowed(&at("127.0.0.1:80"), &[], false).await.is_ok());
        // Names are judged by the address they resolve to.
        let name = Dest::Domain("localhost".into(), 80);
        assert!(allowed(&name, &[rule("10.0.0.0/8", true)], true)
            .await
            .is_err());
    }
}

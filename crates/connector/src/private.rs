//! Private-network flows (`FlowKind::PrivateTcp` / `PrivateUdp`): a
//! zero-trust client's connection or UDP session to an address inside a
//! network routed to this tunnel
//! (`burrow route ip add`). No ingress rule applies: the connector dials
//! the destination the edge names, under the `warp-routing` settings —
//! `connectTimeout`, `maxActiveFlows`, `tcpKeepAlive`, or `enabled: false`
//! to refuse them all.

use burrow_config::connector::WarpRouting;
use burrow_proto::{RefuseCode, StreamOpen};
use burrow_transport::BoxStream;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::info;

/// Warp-routing settings and the count of flows they bound.
#[derive(Debug, Default)]
pub(crate) struct PrivateFlows {
    pub(crate) settings: WarpRouting,
    active: AtomicU64,
}

/// One admitted flow; leaving releases its slot.
struct Slot<'a>(&'a AtomicU64);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PrivateFlows {
    pub(crate) fn new(settings: WarpRouting) -> Self {
        Self {
            settings,
            active: AtomicU64::new(0),
        }
    }

    /// Takes a slot, or says why not.
    fn admit(&self) -> Result<Slot<'_>, String> {
        if !self.settings.enabled {
            return Err("private-network routing is disabled in this connector's config (warp-routing.enabled: false)".into());
        }
        let now = self.active.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(&self.active);
        match self.settings.max_active_flows {
            Some(max) if now >= max => Err(format!(
                "connector is at warp-routing.maxActiveFlows ({max} private-network flows)"
            )),
            _ => Ok(slot),
        }
    }
}

/// Dials `to` with the warp-routing timeout and keep-alive.
async fn dial(
    to: SocketAddr,
    w: &WarpRouting,
) -> Result<tokio::net::TcpStream, (Option<std::io::Error>, String)> {
    let socket = if to.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| {
        let msg = format!("cannot reach {to}: {e}");
        (Some(e), msg)
    })?;
    let keepalive = socket2::TcpKeepalive::new().with_time(w.tcp_keep_alive);
    let _ = socket2::SockRef::from(&socket).set_tcp_keepalive(&keepalive);
    match tokio::time::timeout(w.connect_timeout, socket.connect(to)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => {
            let msg = match burrow_transport::dial::classify(&e).hint() {
                Some(hint) => format!("cannot reach {to}: {hint}"),
                None => format!("cannot reach {to}: {e}"),
            };
            Err((Some(e), msg))
        }
        Err(_) => Err((
            None,
            format!(
                "{to} did not answer within {:?} (warp-routing.connectTimeout)",
                w.connect_timeout
            ),
        )),
    }
}

/// Serves one private-network flow to its end.
pub(crate) async fn relay(
    flows: &PrivateFlows,
    metrics: &crate::metrics::Metrics,
    conn: &crate::ConnInfo,
    mut stream: BoxStream,
    leftover: bytes::BytesMut,
    open: &StreamOpen,
) {
    let Some(to) = open.destination() else {
        let msg = format!("'{}' is not an IP address", open.hostname);
        crate::reply::reject(&mut stream, RefuseCode::NoIngress, &msg).await;
        return;
    };
    // originRequest.ipRules: the first matching rule decides; with rules,
    // a destination none matches is denied.
    let (allowed, rule) =
        burrow_config::origin_request::ip_rules_allow(&flows.settings.ip_rules, to);
    if !allowed {
        let msg = match rule {
            Some(i) => format!("{to} is denied by originRequest.ipRules[{i}]"),
            None => format!("{to} matches no originRequest.ipRules rule (the others are denied)"),
        };
        info!(destination = %to, reason = %msg, "private-network flow refused");
        crate::reply::reject(&mut stream, RefuseCode::NoIngress, &msg).await;
        return;
    }
    let slot = match flows.admit() {
        Ok(s) => s,
        Err(msg) => {
            info!(destination = %to, reason = %msg, "private-network flow refused");
            crate::reply::reject(&mut stream, RefuseCode::NoIngress, &msg).await;
            return;
        }
    };
    if open.kind == burrow_proto::FlowKind::PrivateUdp {
        info!(destination = %to, "private-network UDP session");
        // As QUIC datagrams when the connection has them, else framed.
        crate::udp::relay(
            stream,
            &to.to_string(),
            leftover,
            None,
            conn,
            open.flow_id,
            metrics,
        )
        .await;
        drop(slot);
        return;
    }
    let started = std::time::Instant::now();
    let dialled = dial(to, &flows.settings).await;
    match &dialled {
        Ok(_) => metrics
            .connect_latency
            .observe(started.elapsed().as_secs_f64() * 1000.0),
        Err((Some(e), _)) => metrics.dial_failed(e),
        Err((None, _)) => metrics.dial_failed(&std::io::ErrorKind::TimedOut.into()),
    }
    match dialled.map_err(|(_, msg)| msg) {
        Ok(origin) => {
            info!(destination = %to, "private-network flow");
            crate::flow::tcp::splice(stream, origin, leftover, None, metrics).await;
        }
        Err(msg) => {
            info!(destination = %to, reason = %msg, "private destination unreachable");
            crate::reply::reject(&mut stream, RefuseCode::OriginUnreachable, &msg).await;
        }
    }
    drop(slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_active_flows_bounds_and_releases() {
        let f = PrivateFlows::new(WarpRouting {
            max_active_flows: Some(2),
            ..Default::default()
        });
        let a = f.admit().unwrap();
        let _b = f.admit().unwrap();
        let e = f.admit().err().unwrap();
        assert!(e.contains("maxActiveFlows (2"), "{e}");
        drop(a);
        assert!(f.admit().is_ok());
        let off = PrivateFlows::new(WarpRouting {
            enabled: false,
            ..Default::default()
        });
        assert!(off.admit().err().unwrap().contains("enabled: false"));
    }
}

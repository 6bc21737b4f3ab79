//! This node's membership: it announces itself (id, colo, tunnel endpoint,
//! app addresses, version) and renews a [`LEASE`] every [`RENEW`]; at the
//! same beat it reads the others' announcements into `members`, keeps a
//! peer link to each live one (measuring the round trip), and, one node
//! at a time, forgets nodes dead for a minute.

use super::members::{millis, now_ms};
use crate::context::Ctx;
use burrow_store::Node;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// How long an announcement holds without renewal. Flows stop going to a
/// node that vanished within this time.
pub(crate) const LEASE: Duration = Duration::from_secs(6);

/// How often this node renews its lease and reads the others'.
pub(crate) const RENEW: Duration = Duration::from_secs(2);

/// Nodes dead for this long are forgotten (with their connections).
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Advisory-lock key of the pruning job (one node at a time prunes).
const PRUNE_LOCK: i64 = 0x6275_7272_6f77_0001;

/// Keeps a peer link open to every other live node (when this node has
/// the cluster secret), so forwarded flows find it ready and the round
/// trip is measured; exports it as `burrow_edge_node_rtt_seconds`.
fn measure(ctx: &Arc<Ctx>) {
    use crate::telemetry::metrics::NodeLabels;
    if ctx.egress.peers.cfg.secret.is_none() {
        return;
    }
    for (n, live) in ctx
        .members
        .all()
        .iter()
        .filter(|(n, _)| n.id != ctx.id.node_id)
    {
        let labels = NodeLabels {
            node: n.id.clone(),
            colo: n.colo.clone(),
        };
        if !live {
            ctx.telemetry.metrics.node_rtt.remove(&labels);
            continue;
        }
        match ctx.egress.peers.rtt(&n.id) {
            Some(rtt) => {
                ctx.telemetry
                    .metrics
                    .node_rtt
                    .get_or_create(&labels)
                    .set(rtt.as_secs_f64());
            }
            None => {
                let Ok(addr) = n.tunnel_addr.parse() else {
                    continue;
                };
                let (ctx2, id) = (ctx.clone(), n.id.clone());
                ctx.tasks.spawn(async move {
                    if let Err(e) = ctx2.egress.peers.conn_to(&id, addr).await {
                        tracing::debug!(node = %id, error = %e, "no peer link to a live node yet");
                    }
                });
            }
        }
    }
}

/// This node's announcement, renewed now.
pub(crate) fn announcement(ctx: &Ctx, started_at: i64) -> Node {
    let join = |ips: &[std::net::IpAddr]| {
        ips.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    Node {
        id: ctx.id.node_id.clone(),
        colo: ctx.id.colo.clone(),
        tunnel_addr: ctx.id.tunnel_addr.to_string(),
        app_ipv4: join(&ctx.id.app_pools.v4),
        app_ipv6: join(&ctx.id.app_pools.v6),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at,
        renewed_at_ms: now_ms(),
        lease_ms: millis(LEASE),
    }
}

/// One beat: renew this node's lease, read the members, and (one node at
/// a time) forget nodes dead for [`FORGET_AFTER`]. A store that fails
/// pokes the change feed (it may not have noticed).
pub(crate) async fn beat(ctx: &Arc<Ctx>, started_at: i64) {
    let store = &ctx.store;
    if let Err(e) = store.renew_node(&announcement(ctx, started_at)).await {
        warn!(error = %e, "could not renew this node's lease in the state store");
        ctx.store_trouble.notify_one();
        return;
    }
    match store.nodes().await {
        Ok(nodes) => {
            let before = ctx.members.all();
            let now = now_ms();
            for n in nodes.iter().filter(|n| n.id != ctx.id.node_id) {
                let was = before
                    .iter()
                    .find(|(b, _)| b.id == n.id)
                    .is_some_and(|(_, live)| *live);
                if was != n.live_at(now) {
                    if n.live_at(now) {
                        info!(node = %n.id, colo = %n.colo, tunnel = %n.tunnel_addr, "cluster node is live");
                    } else {
                        warn!(node = %n.id, colo = %n.colo, "cluster node's lease lapsed; it is dead to this node");
                    }
                }
            }
            ctx.members.set(nodes);
            measure(ctx);
        }
        Err(e) => warn!(error = %e, "could not read the cluster's nodes"),
    }
    let cutoff = now_ms() - millis(FORGET_AFTER);
    if let Ok(Some(n)) = store.singleton(PRUNE_LOCK, store.prune_nodes(cutoff)).await {
        if n > 0 {
            info!(nodes = n, "forgot nodes dead for over {FORGET_AFTER:?}");
        }
    }
}

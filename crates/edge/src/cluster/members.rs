//! Node membership: this node announces itself (id, colo, tunnel endpoint,
//! app addresses, version) and renews a [`LEASE`] every [`RENEW`]; the
//! others' announcements are read back at the same beat into a snapshot
//! that flows read without locking. A node whose lease lapsed is dead:
//! nothing is forwarded to it and its connections no longer count.

use crate::context::Ctx;
use arc_swap::ArcSwap;
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

/// The members as last read.
#[derive(Default)]
pub(crate) struct Members {
    nodes: ArcSwap<Vec<Node>>,
}

impl Members {
    /// Every known node as last read (live or not).
    pub(crate) fn all(&self) -> Arc<Vec<Node>> {
        self.nodes.load_full()
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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
pub(crate) async fn beat(ctx: &Ctx, started_at: i64) {
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
                    .find(|b| b.id == n.id)
                    .is_some_and(|b| b.live_at(now));
                if was != n.live_at(now) {
                    if n.live_at(now) {
                        info!(node = %n.id, colo = %n.colo, tunnel = %n.tunnel_addr, "cluster node is live");
                    } else {
                        warn!(node = %n.id, colo = %n.colo, "cluster node's lease lapsed; it is dead to this node");
                    }
                }
            }
            ctx.members.nodes.store(Arc::new(nodes));
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

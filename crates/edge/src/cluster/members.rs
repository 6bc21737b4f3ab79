//! The cluster's members as this node last read them: a snapshot flows
//! read without locking. A node whose lease lapsed is dead: nothing is
//! forwarded to it and its connections no longer count. Liveness is judged
//! at the time of the last read: while the store is away this node cannot
//! tell, so the nodes live then stay live to it. (`lease` renews this
//! node's own lease and refreshes the snapshot.)

use arc_swap::ArcSwap;
use burrow_store::Node;
use std::sync::Arc;
use std::time::Duration;

/// The members as last read, and when (Unix milliseconds).
#[derive(Default)]
pub(crate) struct Members {
    nodes: ArcSwap<(i64, Vec<Node>)>,
}

impl Members {
    /// Every known node as last read, with whether it was live then.
    pub(crate) fn all(&self) -> Vec<(Node, bool)> {
        let snap = self.nodes.load();
        snap.1
            .iter()
            .map(|n| (n.clone(), n.live_at(snap.0)))
            .collect()
    }

    /// The nodes live at the last read.
    pub(crate) fn live_nodes(&self) -> Vec<Node> {
        let snap = self.nodes.load();
        snap.1
            .iter()
            .filter(|n| n.live_at(snap.0))
            .cloned()
            .collect()
    }

    /// Replaces the snapshot, read now.
    pub(crate) fn set(&self, nodes: Vec<Node>) {
        self.nodes.store(Arc::new((now_ms(), nodes)));
    }

    /// Reads the members from the store now (keeps the last ones when it
    /// cannot).
    pub(crate) async fn refresh(&self, store: &burrow_store::Store) {
        if let Ok(nodes) = store.nodes().await {
            self.set(nodes);
        }
    }

    /// The live node `id`, other than `me`.
    pub(crate) fn live(&self, id: &str, me: &str) -> Option<Node> {
        self.live_nodes()
            .into_iter()
            .find(|n| n.id == id && n.id != me)
    }

    /// The tunnel endpoint of a live node of `colo` other than `me` (the
    /// one that renewed last).
    pub(crate) fn live_in_colo(&self, colo: &str, me: &str) -> Option<std::net::SocketAddr> {
        self.live_nodes()
            .into_iter()
            .filter(|n| n.colo == colo && n.id != me)
            .max_by_key(|n| n.renewed_at_ms)
            .and_then(|n| n.tunnel_addr.parse().ok())
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

//! The cluster's members as this node last read them: a snapshot flows
//! read without locking. A node whose lease lapsed is dead: nothing is
//! forwarded to it and its connections no longer count. (`lease` renews
//! this node's own and refreshes the snapshot.)

use arc_swap::ArcSwap;
use burrow_store::Node;
use std::sync::Arc;
use std::time::Duration;

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

    /// Replaces the snapshot.
    pub(crate) fn set(&self, nodes: Vec<Node>) {
        self.nodes.store(Arc::new(nodes));
    }

    /// Reads the members from the store now (keeps the last ones when it
    /// cannot).
    pub(crate) async fn refresh(&self, store: &burrow_store::Store) {
        if let Ok(nodes) = store.nodes().await {
            self.nodes.store(Arc::new(nodes));
        }
    }

    /// The live node `id`, other than `me`.
    pub(crate) fn live(&self, id: &str, me: &str) -> Option<Node> {
        let now = now_ms();
        self.nodes
            .load()
            .iter()
            .find(|n| n.id == id && n.id != me && n.live_at(now))
            .cloned()
    }

    /// The tunnel endpoint of a live node of `colo` other than `me` (the
    /// one that renewed last).
    pub(crate) fn live_in_colo(&self, colo: &str, me: &str) -> Option<std::net::SocketAddr> {
        let now = now_ms();
        self.nodes
            .load()
            .iter()
            .filter(|n| n.colo == colo && n.id != me && n.live_at(now))
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

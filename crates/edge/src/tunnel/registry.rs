//! Which tunnel connections this edge node holds, and the choice of one for
//! a new flow.
//!
//! New flows are spread round-robin over the tunnel's connections that are
//! not draining, across all connector replicas. A connection that closes or
//! sends `GoAway` stops receiving new flows at once. A connection that did
//! not acknowledge a flow in time is *suspect*, and so are the other
//! connections of its connector (a killed process takes all of them):
//! suspects come after every other connection, so they get new flows only
//! when nothing else is left, until one of those flows is acknowledged
//! (the connection proves alive) or the connection closes. The lock is held only to clone a handle out (no `.await` under
//! it).

use burrow_transport::EdgeConn;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// One registered connection.
pub(crate) struct Registered {
    pub(crate) id: uuid::Uuid,
    /// The connector process it belongs to.
    pub(crate) connector_id: uuid::Uuid,
    pub(crate) conn: EdgeConn,
    pub(crate) draining: AtomicBool,
    /// UDP-session datagrams as QUIC datagrams (QUIC connections whose
    /// connector supports them).
    pub(crate) mux: Option<Arc<burrow_transport::quic_datagrams::DatagramMux>>,
    /// Its connector acknowledges new flows at once
    /// ([`burrow_proto::FEATURE_STREAM_ACK`]).
    pub(crate) acks: bool,
    /// It missed an acknowledgement and has not acknowledged one since.
    suspect: AtomicBool,
    /// The row recorded for it in the store (recorded again after the
    /// store was away).
    pub(crate) record: burrow_store::Connection,
}

impl Registered {
    pub(crate) fn new(
        record: burrow_store::Connection,
        conn: EdgeConn,
        mux: Option<Arc<burrow_transport::quic_datagrams::DatagramMux>>,
        acks: bool,
    ) -> Self {
        Self {
            id: record.id,
            connector_id: record.connector_id,
            conn,
            draining: false.into(),
            mux,
            acks,
            suspect: AtomicBool::new(false),
            record,
        }
    }

    fn is_suspect(&self) -> bool {
        self.suspect.load(Ordering::Relaxed)
    }

    /// It acknowledged a flow: not suspect any more.
    pub(crate) fn proven(&self) {
        self.suspect.store(false, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub(crate) struct TunnelConns {
    conns: Vec<Arc<Registered>>,
    next: AtomicUsize,
}

/// The registry of this node's tunnel connections.
#[derive(Default)]
pub(crate) struct Registry {
    tunnels: RwLock<HashMap<uuid::Uuid, TunnelConns>>,
}

impl Registry {
    pub(crate) fn add(&self, tunnel: uuid::Uuid, r: Arc<Registered>) {
        let mut map = self.tunnels.write().expect("registry lock poisoned");
        map.entry(tunnel).or_default().conns.push(r);
    }

    pub(crate) fn remove(&self, tunnel: uuid::Uuid, id: uuid::Uuid) {
        let mut map = self.tunnels.write().expect("registry lock poisoned");
        if let Some(t) = map.get_mut(&tunnel) {
            t.conns.retain(|c| c.id != id);
            if t.conns.is_empty() {
                map.remove(&tunnel);
            }
        }
    }

    /// Up to `n` distinct live connections for a new flow, starting at the
    /// round-robin cursor (the first is the choice; the rest are fallbacks).
    pub(crate) fn pick(&self, tunnel: uuid::Uuid, n: usize) -> Vec<Arc<Registered>> {
        let map = self.tunnels.read().expect("registry lock poisoned");
        let Some(t) = map.get(&tunnel) else {
            return Vec::new();
        };
        let len = t.conns.len();
        if len == 0 {
            return Vec::new();
        }
        let start = t.next.fetch_add(1, Ordering::Relaxed);
        let live = (0..len)
            .map(|i| &t.conns[(start + i) % len])
            .filter(|c| !c.draining.load(Ordering::Relaxed));
        // Suspects last, each part in round-robin order; no allocation
        // besides the answer.
        live.clone()
            .filter(|c| !c.is_suspect())
            .chain(live.filter(|c| c.is_suspect()))
            .take(n)
            .cloned()
            .collect()
    }

    /// Whether the tunnel has a live connection outside `tried` (without
    /// moving the round-robin cursor, as [`Registry::pick`] does).
    pub(crate) fn has_other(&self, tunnel: uuid::Uuid, tried: &[uuid::Uuid]) -> bool {
        let map = self.tunnels.read().expect("registry lock poisoned");
        map.get(&tunnel).is_some_and(|t| {
            t.conns
                .iter()
                .any(|c| !c.draining.load(Ordering::Relaxed) && !tried.contains(&c.id))
        })
    }

    /// `conn` missed an acknowledgement: it and the other connections of
    /// its connector go last until they prove alive.
    pub(crate) fn suspect(&self, tunnel: uuid::Uuid, conn: &Registered) {
        conn.suspect.store(true, Ordering::Relaxed);
        let map = self.tunnels.read().expect("registry lock poisoned");
        for c in map.get(&tunnel).into_iter().flat_map(|t| &t.conns) {
            if c.connector_id == conn.connector_id {
                c.suspect.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Every connection, for shutdown.
    pub(crate) fn all(&self) -> Vec<Arc<Registered>> {
        let map = self.tunnels.read().expect("registry lock poisoned");
        map.values().flat_map(|t| t.conns.iter().cloned()).collect()
    }
}

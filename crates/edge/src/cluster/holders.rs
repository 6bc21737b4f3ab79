//! Which other nodes hold connections of which tunnels, as last read from
//! the store: read at most once a [`HOLDERS_FRESH`] per tunnel (an empty
//! answer once a [`NONE_FRESH`], so a connector that just registered
//! elsewhere is found soon), and the last read used while the store is
//! away (without asking it: a query would wait for the pool first).

use burrow_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the nodes holding a tunnel's connections are remembered before
/// the store is asked again (and used past that while the store is away).
const HOLDERS_FRESH: Duration = Duration::from_secs(1);

/// How long "no other node holds it" is remembered.
const NONE_FRESH: Duration = Duration::from_millis(200);

/// Node ids holding a tunnel's connections, and when they were read.
type Read = (Instant, Arc<Vec<String>>);

/// Which nodes hold connections of which tunnels, as last read.
#[derive(Default)]
pub(crate) struct Holders {
    by_tunnel: Mutex<HashMap<uuid::Uuid, Read>>,
}

impl Holders {
    /// Node ids (other than this node) holding connections of `tunnel`;
    /// with `store_up` false, the last read only.
    pub(crate) async fn of(
        &self,
        store: &Store,
        me: &str,
        tunnel: uuid::Uuid,
        store_up: bool,
    ) -> Arc<Vec<String>> {
        let cached = self
            .by_tunnel
            .lock()
            .expect("holders lock poisoned")
            .get(&tunnel)
            .cloned();
        if let Some((at, ids)) = &cached {
            let fresh = if ids.is_empty() {
                NONE_FRESH
            } else {
                HOLDERS_FRESH
            };
            if at.elapsed() < fresh || !store_up {
                return ids.clone();
            }
        }
        if !store_up {
            return Arc::default();
        }
        match store
            .live_connections(tunnel, super::members::now_ms())
            .await
        {
            Ok(conns) => {
                let mut ids: Vec<String> = conns
                    .into_iter()
                    .map(|c| c.node_id)
                    .filter(|n| n != me)
                    .collect();
                ids.sort();
                ids.dedup();
                let ids = Arc::new(ids);
                let mut map = self.by_tunnel.lock().expect("holders lock poisoned");
                // Bounded by the tunnels flows ask for; stale ones go.
                map.retain(|_, (at, _)| at.elapsed() < HOLDERS_FRESH * 60);
                map.insert(tunnel, (Instant::now(), ids.clone()));
                ids
            }
            // The store is away: what was read last.
            Err(_) => cached.map(|(_, ids)| ids).unwrap_or_default(),
        }
    }
}

//! Which other nodes hold connections of which tunnels, as last read from
//! the store: read at most once a [`HOLDERS_FRESH`] per tunnel, and the last
//! read used while the store is away.

use burrow_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the nodes holding a tunnel's connections are remembered before
/// the store is asked again (and used past that while the store is away).
const HOLDERS_FRESH: Duration = Duration::from_secs(1);

/// Node ids holding a tunnel's connections, and when they were read.
type Read = (Instant, Arc<Vec<String>>);

/// Which nodes hold connections of which tunnels, as last read.
#[derive(Default)]
pub(crate) struct Holders {
    by_tunnel: Mutex<HashMap<uuid::Uuid, Read>>,
}

impl Holders {
    /// Node ids (other than this node) holding connections of `tunnel`.
    pub(crate) async fn of(&self, store: &Store, me: &str, tunnel: uuid::Uuid) -> Arc<Vec<String>> {
        let cached = self
            .by_tunnel
            .lock()
            .expect("holders lock poisoned")
            .get(&tunnel)
            .cloned();
        if let Some((at, ids)) = &cached {
            if at.elapsed() < HOLDERS_FRESH {
                return ids.clone();
            }
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

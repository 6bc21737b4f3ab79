//! Tunnels as this node last read them from the store, so a connector can
//! register while the store is away (the node serves on the state it read
//! last). Each successful lookup refreshes its row; a tunnel the store
//! says is gone is forgotten. Revocations made elsewhere meanwhile arrive
//! when the store returns, and the grant re-check then ends what they end.

use std::collections::HashMap;
use std::sync::Mutex;

/// Tunnel rows (with their stored, hashed secrets) by id.
#[derive(Default)]
pub(crate) struct KnownTunnels {
    rows: Mutex<HashMap<uuid::Uuid, burrow_store::Tunnel>>,
}

impl KnownTunnels {
    /// What the store just said about `id`.
    pub(crate) fn learn(&self, id: uuid::Uuid, row: Option<&burrow_store::Tunnel>) {
        let mut rows = self.rows.lock().expect("known tunnels lock poisoned");
        match row {
            Some(t) => {
                rows.insert(id, t.clone());
            }
            None => {
                rows.remove(&id);
            }
        }
    }

    /// The row last read for `id`.
    pub(crate) fn get(&self, id: uuid::Uuid) -> Option<burrow_store::Tunnel> {
        self.rows
            .lock()
            .expect("known tunnels lock poisoned")
            .get(&id)
            .cloned()
    }
}

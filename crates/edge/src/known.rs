//! Credentials as this node last read them from the store (tunnels for
//! connectors, devices with their users' groups for clients), so a party
//! can register while the store is away: the node serves on the state it
//! read last. Each successful lookup refreshes its row; a row the store
//! says is gone is forgotten. Revocations made elsewhere meanwhile arrive
//! when the store returns, and the grant re-check then ends what they end.
//! Bounded by what the operator created (rows are only ever read back).

use std::collections::HashMap;
use std::sync::Mutex;

/// Rows by id, as last read.
pub(crate) struct LastRead<V> {
    rows: Mutex<HashMap<uuid::Uuid, V>>,
}

impl<V> Default for LastRead<V> {
    fn default() -> Self {
        Self {
            rows: Mutex::default(),
        }
    }
}

impl<V: Clone> LastRead<V> {
    /// What the store just said about `id`.
    pub(crate) fn learn(&self, id: uuid::Uuid, row: Option<&V>) {
        let mut rows = self.rows.lock().expect("last-read lock poisoned");
        match row {
            Some(v) => {
                rows.insert(id, v.clone());
            }
            None => {
                rows.remove(&id);
            }
        }
    }

    /// The row last read for `id`.
    pub(crate) fn get(&self, id: uuid::Uuid) -> Option<V> {
        self.rows
            .lock()
            .expect("last-read lock poisoned")
            .get(&id)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_kept_until_the_store_says_it_is_gone() {
        let k = LastRead::<String>::default();
        let id = uuid::Uuid::new_v4();
        assert_eq!(k.get(id), None);
        k.learn(id, Some(&"v1".to_owned()));
        k.learn(id, Some(&"v2".to_owned()));
        assert_eq!(k.get(id).as_deref(), Some("v2"));
        k.learn(id, None);
        assert_eq!(k.get(id), None);
    }
}

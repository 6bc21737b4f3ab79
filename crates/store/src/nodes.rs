//! Cluster membership: the edge nodes sharing this store, each renewing a
//! lease. A node is live while `renewed_at_ms + lease_ms` is not past.

use crate::{on_pool, Store, StoreError};
use serde::Serialize;

/// An edge node as it announced itself.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Node {
    /// Node id (stable per host and tunnel address).
    pub id: String,
    /// Its colo.
    pub colo: String,
    /// Its tunnel endpoint (`IP:PORT`), which is also where other nodes
    /// reach it.
    pub tunnel_addr: String,
    /// Its IPv4 app addresses, comma-separated.
    pub app_ipv4: String,
    /// Its IPv6 app addresses, comma-separated.
    pub app_ipv6: String,
    /// Its version string.
    pub version: String,
    /// Started at, Unix seconds.
    pub started_at: i64,
    /// Last lease renewal, Unix milliseconds.
    pub renewed_at_ms: i64,
    /// Lease length, milliseconds.
    pub lease_ms: i64,
}

impl Node {
    /// Whether the lease holds at `now_ms`.
    #[must_use]
    pub fn live_at(&self, now_ms: i64) -> bool {
        self.renewed_at_ms.saturating_add(self.lease_ms) >= now_ms
    }
}

impl Store {
    /// Registers `n` or renews its lease (all its fields are rewritten).
    ///
    /// # Errors
    /// On database failure.
    pub async fn renew_node(&self, n: &Node) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO nodes (id, colo, tunnel_addr, app_ipv4, app_ipv6, version, started_at, \
             renewed_at_ms, lease_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET colo = excluded.colo, \
             tunnel_addr = excluded.tunnel_addr, app_ipv4 = excluded.app_ipv4, \
             app_ipv6 = excluded.app_ipv6, version = excluded.version, \
             started_at = excluded.started_at, renewed_at_ms = excluded.renewed_at_ms, \
             lease_ms = excluded.lease_ms",
        )
        .bind(&n.id)
        .bind(&n.colo)
        .bind(&n.tunnel_addr)
        .bind(&n.app_ipv4)
        .bind(&n.app_ipv6)
        .bind(&n.version)
        .bind(n.started_at)
        .bind(n.renewed_at_ms)
        .bind(n.lease_ms)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Every node that announced itself, live or not, by colo and id.
    ///
    /// # Errors
    /// On database failure.
    pub async fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        self.all("SELECT * FROM nodes ORDER BY colo, id").await
    }

    /// Forgets a node and the connections it held (a node stopping).
    ///
    /// # Errors
    /// On database failure.
    pub async fn remove_node(&self, id: &str) -> Result<(), StoreError> {
        self.changed("DELETE FROM connections WHERE node_id = $1", id.to_owned())
            .await?;
        self.changed("DELETE FROM nodes WHERE id = $1", id.to_owned())
            .await?;
        Ok(())
    }

    /// Forgets nodes whose lease lapsed before `before_ms`, and the
    /// connections of every node no longer listed (theirs, and rows
    /// recorded before nodes had leases); how many nodes went.
    ///
    /// # Errors
    /// On database failure.
    pub async fn prune_nodes(&self, before_ms: i64) -> Result<u64, StoreError> {
        let n = on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("DELETE FROM nodes WHERE renewed_at_ms + lease_ms < $1")
                .bind(before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM connections WHERE node_id NOT IN (SELECT id FROM nodes)")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            n
        });
        Ok(n)
    }

    /// Runs `job` only if no other node runs it now (PostgreSQL: a
    /// transaction-scoped advisory lock on `key`; SQLite, one host: always).
    /// `None` when another node holds the lock.
    ///
    /// # Errors
    /// On database failure.
    pub async fn singleton<F, T>(&self, key: i64, job: F) -> Result<Option<T>, StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        match &self.pool {
            crate::Pool::Sqlite(_) => job.await.map(Some),
            crate::Pool::Pg(p) => {
                let mut tx = p.begin().await?;
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?;
                if !got {
                    return Ok(None);
                }
                let out = job.await;
                tx.commit().await?;
                out.map(Some)
            }
        }
    }
}

//! The registry of live tunnel connections, by node.

use crate::{on_pool, Store, StoreError};
use serde::Serialize;

/// One live tunnel connection, as registered by an edge node.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Connection {
    /// Connection id.
    #[sqlx(try_from = "String")]
    pub id: uuid::Uuid,
    /// Tunnel served.
    #[sqlx(try_from = "String")]
    pub tunnel_id: uuid::Uuid,
    /// Connector process id.
    #[sqlx(try_from = "String")]
    pub connector_id: uuid::Uuid,
    /// HA connection index within the connector.
    #[sqlx(try_from = "i64")]
    pub conn_index: u8,
    /// Colo of the edge node holding the connection.
    pub colo: String,
    /// Edge node id.
    pub node_id: String,
    /// `quic` or `http2`.
    pub protocol: String,
    /// Connector's address as the edge saw it.
    pub origin_ip: String,
    /// Connector version string.
    pub version: String,
    /// Registered at, Unix seconds.
    pub since: i64,
    /// Last heartbeat of the holding node, Unix seconds.
    pub seen_at: i64,
    /// The tunnel protocol version the connection speaks (1 or 2).
    #[sqlx(try_from = "i64")]
    pub wire: u16,
    /// The key-exchange group of its handshake (`X25519MLKEM768` when
    /// post-quantum; empty when not known).
    pub kx: String,
}
impl Store {
    /// Records a live tunnel connection.
    ///
    /// # Errors
    /// On database failure.
    pub async fn add_connection(&self, c: &Connection) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO connections (id, tunnel_id, connector_id, conn_index, colo, \
             node_id, protocol, origin_ip, version, since, seen_at, wire, kx) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (id) DO UPDATE SET tunnel_id = excluded.tunnel_id, \
             connector_id = excluded.connector_id, conn_index = excluded.conn_index, \
             colo = excluded.colo, node_id = excluded.node_id, protocol = excluded.protocol, \
             origin_ip = excluded.origin_ip, version = excluded.version, since = excluded.since, \
             seen_at = excluded.seen_at, wire = excluded.wire, kx = excluded.kx",
        )
        .bind(c.id.to_string())
        .bind(c.tunnel_id.to_string())
        .bind(c.connector_id.to_string())
        .bind(i64::from(c.conn_index))
        .bind(&c.colo)
        .bind(&c.node_id)
        .bind(&c.protocol)
        .bind(&c.origin_ip)
        .bind(&c.version)
        .bind(c.since)
        .bind(c.seen_at)
        .bind(i64::from(c.wire))
        .bind(&c.kx)
        .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Forgets a connection.
    ///
    /// # Errors
    /// On database failure.
    pub async fn remove_connection(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("DELETE FROM connections WHERE id = $1")
            .bind(id.to_string())
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Drops all of `node_id`'s connections (a node starting again after it
    /// was killed). Dead nodes' rows go with the nodes
    /// ([`Store::prune_nodes`]).
    ///
    /// # Errors
    /// On database failure.
    pub async fn prune_connections(&self, node_id: &str) -> Result<(), StoreError> {
        self.changed(
            "DELETE FROM connections WHERE node_id = $1",
            node_id.to_owned(),
        )
        .await?;
        Ok(())
    }

    /// Connections of a tunnel held by live nodes (lease not past at
    /// `now_ms`), by colo.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn live_connections(
        &self,
        tunnel_id: uuid::Uuid,
        now_ms: i64,
    ) -> Result<Vec<Connection>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as::<_, Connection>(
            // `seen_at`: the holding node's last lease renewal (its
            // heartbeat), in seconds.
            "SELECT c.id, c.tunnel_id, c.connector_id, c.conn_index, c.colo, c.node_id, \
             c.protocol, c.origin_ip, c.version, c.since, n.renewed_at_ms / 1000 AS seen_at, \
             c.wire, c.kx \
             FROM connections c JOIN nodes n ON n.id = c.node_id \
             WHERE c.tunnel_id = $1 AND n.renewed_at_ms + n.lease_ms >= $2 \
             ORDER BY c.colo, c.connector_id, c.conn_index",
        )
        .bind(tunnel_id.to_string())
        .bind(now_ms)
        .fetch_all(p)
        .await)?)
    }

    /// How many connections each node holds, by node id.
    ///
    /// # Errors
    /// On database failure.
    pub async fn connection_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT node_id, COUNT(*) FROM connections GROUP BY node_id",
        )
        .fetch_all(p)
        .await)?)
    }

    /// Live connections of a tunnel seen at or after `fresh_since`.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn connections(
        &self,
        tunnel_id: uuid::Uuid,
        fresh_since: i64,
    ) -> Result<Vec<Connection>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as::<_, Connection>(
            "SELECT * FROM connections WHERE tunnel_id = $1 AND seen_at >= $2 \
             ORDER BY colo, connector_id, conn_index",
        )
        .bind(tunnel_id.to_string())
        .bind(fresh_since)
        .fetch_all(p).await)?)
    }
}

//! Hostname routes of the public HTTP listeners.

use crate::{on_pool, Store, StoreError};
use serde::Serialize;

/// A public hostname routed to a tunnel (`burrow route dns`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Route {
    /// Hostname, lower case; may start with `*.`.
    pub hostname: String,
    /// The tunnel its HTTP requests go to.
    #[sqlx(try_from = "String")]
    pub tunnel_id: uuid::Uuid,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}
impl Store {
    /// Routes a hostname to a tunnel.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when the hostname is routed already.
    pub async fn create_route(&self, r: &Route) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("INSERT INTO routes (hostname, tunnel_id, created_at) VALUES ($1, $2, $3)")
            .bind(&r.hostname)
            .bind(r.tunnel_id.to_string())
            .bind(r.created_at)
            .execute(p).await.map(|r| r.rows_affected()))
            .map_err(StoreError::taken("route", r.hostname.clone()))?;
        Ok(())
    }

    /// Every route, by hostname.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn routes(&self) -> Result<Vec<Route>, StoreError> {
        self.all("SELECT * FROM routes ORDER BY hostname").await
    }

    /// Removes a route; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_route(&self, hostname: &str) -> Result<bool, StoreError> {
        self.changed(
            "DELETE FROM routes WHERE hostname = $1",
            hostname.to_owned(),
        )
        .await
    }
}

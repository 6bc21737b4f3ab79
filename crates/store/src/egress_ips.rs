//! Dedicated egress IPs and the colo that owns each.

use crate::{on_pool, Store, StoreError};
use serde::Serialize;

/// A dedicated egress IP and the colo that owns it (`burrow egress-ip add`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EgressIp {
    /// The address (IPv4, text).
    pub ip: String,
    /// Owning colo.
    pub colo: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}
impl Store {
    /// Declares a dedicated egress IP of `colo`.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when the IP is declared already.
    pub async fn create_egress_ip(&self, e: &EgressIp) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("INSERT INTO egress_ips (ip, colo, created_at) VALUES ($1, $2, $3)")
            .bind(&e.ip)
            .bind(&e.colo)
            .bind(e.created_at)
            .execute(p).await.map(|r| r.rows_affected()))
            .map_err(StoreError::taken("egress IP", e.ip.clone()))?;
        Ok(())
    }

    /// Every declared egress IP, by address.
    ///
    /// # Errors
    /// On database failure.
    pub async fn egress_ips(&self) -> Result<Vec<EgressIp>, StoreError> {
        self.all("SELECT * FROM egress_ips ORDER BY ip").await
    }

    /// Removes an egress IP; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_egress_ip(&self, ip: &str) -> Result<bool, StoreError> {
        self.changed("DELETE FROM egress_ips WHERE ip = $1", ip.to_owned())
            .await
    }
}

//! Published apps: the API's JSON and the edge ports they hold.

use crate::{int_col, uuid_col, Store, StoreError};
use serde::Serialize;
use sqlx::Row;

/// A published app (edge listeners on a port or range).
#[derive(Debug, Clone, Serialize)]
pub struct App {
    /// App id.
    pub id: uuid::Uuid,
    /// The app as the API received it (Spectrum-shaped JSON), re-validated
    /// on load.
    pub spec: String,
    /// `tcp` or `udp`.
    pub l4: String,
    /// First edge port.
    pub port_start: u16,
    /// Last edge port (inclusive).
    pub port_end: u16,
    /// Tunnel that serves it, for tunnel origins.
    pub tunnel_id: Option<uuid::Uuid>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}
impl Store {
    /// Creates an app.
    ///
    /// # Errors
    /// On database failure.
    pub async fn create_app(&self, a: &App) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO apps (id, spec, l4, port_start, port_end, tunnel_id, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(a.id.to_string())
        .bind(&a.spec)
        .bind(&a.l4)
        .bind(i64::from(a.port_start))
        .bind(i64::from(a.port_end))
        .bind(a.tunnel_id.map(|t| t.to_string()))
        .bind(a.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces an app's spec, ports and tunnel; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn update_app(&self, a: &App) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE apps SET spec = ?, l4 = ?, port_start = ?, port_end = ?, tunnel_id = ? \
             WHERE id = ?",
        )
        .bind(&a.spec)
        .bind(&a.l4)
        .bind(i64::from(a.port_start))
        .bind(i64::from(a.port_end))
        .bind(a.tunnel_id.map(|t| t.to_string()))
        .bind(a.id.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// All apps, oldest first.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn apps(&self) -> Result<Vec<App>, StoreError> {
        sqlx::query("SELECT * FROM apps ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let tunnel: Option<String> = row.try_get("tunnel_id")?;
                let tunnel_id = tunnel
                    .map(|t| {
                        uuid::Uuid::parse_str(&t).map_err(|e| StoreError::Corrupt {
                            table: "apps",
                            reason: format!("tunnel_id: {e}"),
                        })
                    })
                    .transpose()?;
                Ok(App {
                    id: uuid_col(row, "id", "apps")?,
                    spec: row.try_get("spec")?,
                    l4: row.try_get("l4")?,
                    port_start: int_col(row, "port_start", "apps")?,
                    port_end: int_col(row, "port_end", "apps")?,
                    tunnel_id,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Deletes an app; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_app(&self, id: uuid::Uuid) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM apps WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }
}

//! Published apps: the API's JSON and the edge ports they hold.

use crate::{on_pool, Store, StoreError};
use serde::Serialize;

/// A published app (edge listeners on a port or range).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct App {
    /// App id.
    #[sqlx(try_from = "String")]
    pub id: uuid::Uuid,
    /// The app as the API received it (Spectrum-shaped JSON), re-validated
    /// on load.
    pub spec: String,
    /// `tcp` or `udp`.
    pub l4: String,
    /// First edge port.
    #[sqlx(try_from = "i64")]
    pub port_start: u16,
    /// Last edge port (inclusive).
    #[sqlx(try_from = "i64")]
    pub port_end: u16,
    /// Tunnel that serves it, for tunnel origins.
    #[sqlx(try_from = "crate::NullableText")]
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
        on_pool!(self, p => sqlx::query(
            "INSERT INTO apps (id, spec, l4, port_start, port_end, tunnel_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(a.id.to_string())
        .bind(&a.spec)
        .bind(&a.l4)
        .bind(i64::from(a.port_start))
        .bind(i64::from(a.port_end))
        .bind(a.tunnel_id.map(|t| t.to_string()))
        .bind(a.created_at)
        .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Replaces an app's spec, ports and tunnel; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn update_app(&self, a: &App) -> Result<bool, StoreError> {
        Ok(on_pool!(self, p => sqlx::query(
            "UPDATE apps SET spec = $1, l4 = $2, port_start = $3, port_end = $4, tunnel_id = $5 \
             WHERE id = $6",
        )
        .bind(&a.spec)
        .bind(&a.l4)
        .bind(i64::from(a.port_start))
        .bind(i64::from(a.port_end))
        .bind(a.tunnel_id.map(|t| t.to_string()))
        .bind(a.id.to_string())
        .execute(p).await.map(|r| r.rows_affected()))?
            > 0)
    }

    /// All apps, oldest first.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn apps(&self) -> Result<Vec<App>, StoreError> {
        self.all("SELECT * FROM apps ORDER BY created_at, id").await
    }

    /// Deletes an app; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_app(&self, id: uuid::Uuid) -> Result<bool, StoreError> {
        self.changed("DELETE FROM apps WHERE id = $1", id.to_string())
            .await
    }
}

//! Tunnels and their (hashed) secrets.

use crate::{on_pool, secret, Store, StoreError};
use serde::Serialize;

/// A tunnel. `Debug` prints the secret as `***`.
#[derive(Clone, Serialize, sqlx::FromRow)]
pub struct Tunnel {
    /// Tunnel id.
    #[sqlx(try_from = "String")]
    pub id: uuid::Uuid,
    /// Owning account.
    #[sqlx(try_from = "String")]
    pub account_id: uuid::Uuid,
    /// Unique name.
    pub name: String,
    /// Secret bytes (never serialized): as given when creating; read back,
    /// the stored (hashed) form — check with [`secret::verify`].
    #[serde(skip)]
    pub secret: Vec<u8>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("name", &self.name)
            .field("secret", &"***")
            .field("created_at", &self.created_at)
            .finish()
    }
}
impl Store {
    /// Creates a tunnel.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when the name is taken.
    pub async fn create_tunnel(&self, t: &Tunnel) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO tunnels (id, account_id, name, secret, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(t.id.to_string())
        .bind(t.account_id.to_string())
        .bind(&t.name)
        .bind(secret::stored(&t.secret))
        .bind(t.created_at)
        .execute(p).await.map(|r| r.rows_affected()))
        .map_err(StoreError::taken("tunnel", t.name.clone()))?;
        Ok(())
    }

    /// A tunnel by id.
    ///
    /// # Errors
    /// On database failure.
    pub async fn tunnel(&self, id: uuid::Uuid) -> Result<Option<Tunnel>, StoreError> {
        self.one("SELECT * FROM tunnels WHERE id = $1", id.to_string())
            .await
    }

    /// A tunnel by name, or by id written as text.
    ///
    /// # Errors
    /// On database failure.
    pub async fn tunnel_by_ref(&self, name_or_id: &str) -> Result<Option<Tunnel>, StoreError> {
        Ok(
            on_pool!(self, p => sqlx::query_as::<_, Tunnel>("SELECT * FROM tunnels WHERE name = $1 OR id = $2")
                .bind(name_or_id)
                .bind(name_or_id.to_ascii_lowercase())
                .fetch_optional(p).await)?,
        )
    }

    /// All tunnels, by name.
    ///
    /// # Errors
    /// On database failure.
    pub async fn tunnels(&self) -> Result<Vec<Tunnel>, StoreError> {
        self.all("SELECT * FROM tunnels ORDER BY name").await
    }

    /// Deletes a tunnel with its apps and routes; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_tunnel(&self, id: uuid::Uuid) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => {
            let mut tx = p.begin().await?;
            for table in ["apps", "routes", "ip_routes"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE tunnel_id = $1"))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            let n = sqlx::query("DELETE FROM tunnels WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// Replaces a tunnel's secret; `false` when the tunnel does not exist.
    ///
    /// # Errors
    /// On database failure.
    pub async fn set_tunnel_secret(
        &self,
        id: uuid::Uuid,
        secret: &[u8],
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query("UPDATE tunnels SET secret = $1 WHERE id = $2")
            .bind(secret::hash(secret))
            .bind(id.to_string())
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }
}

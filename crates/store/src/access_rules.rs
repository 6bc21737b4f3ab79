//! IP access rules of apps.

use crate::{on_pool, Store, StoreError};
use serde::Serialize;

/// An IP access rule, as the API received it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AccessRule {
    /// Rule id.
    #[sqlx(try_from = "String")]
    pub id: uuid::Uuid,
    /// `allow` or `block`.
    pub mode: String,
    /// `ip`, `ip_range`, `country` or `asn`.
    pub target: String,
    /// The address, range, code or number.
    pub value: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}
impl Store {
    /// Adds an IP access rule.
    ///
    /// # Errors
    /// On database failure.
    pub async fn create_access_rule(&self, r: &AccessRule) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO access_rules (id, mode, target, value, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(r.id.to_string())
        .bind(&r.mode)
        .bind(&r.target)
        .bind(&r.value)
        .bind(r.created_at)
        .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// All IP access rules, oldest first.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn access_rules(&self) -> Result<Vec<AccessRule>, StoreError> {
        self.all("SELECT * FROM access_rules ORDER BY created_at, id")
            .await
    }

    /// Deletes an IP access rule; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_access_rule(&self, id: uuid::Uuid) -> Result<bool, StoreError> {
        self.changed("DELETE FROM access_rules WHERE id = $1", id.to_string())
            .await
    }
}

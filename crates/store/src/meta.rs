//! Key–value settings of the store (account id, admin token hash, egress policies, the change generation).

use crate::{on_pool, Store, StoreError};

impl Store {
    /// Reads a meta value, or stores and returns `init()` when absent. Two
    /// processes racing here agree on the first value written.
    ///
    /// # Errors
    /// On database failure.
    pub async fn meta_or_init(
        &self,
        key: &str,
        init: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        on_pool!(self, p => sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(init())
            .execute(p).await.map(|r| r.rows_affected()))?;
        let value: String = on_pool!(self, p => sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_one(p).await)?;
        Ok(value)
    }

    /// A metadata value, if set.
    ///
    /// # Errors
    /// On database failure.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            on_pool!(self, p => sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(p).await)?,
        )
    }

    /// Removes a meta value (absent is fine).
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_meta(&self, key: &str) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("DELETE FROM meta WHERE key = $1")
            .bind(key)
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Sets a meta value.
    ///
    /// # Errors
    /// On database failure.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}

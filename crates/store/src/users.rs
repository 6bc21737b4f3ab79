//! Users and their enrolled devices.

use crate::{on_pool, secret, Store, StoreError};
use serde::Serialize;

/// A user of the zero-trust client.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct User {
    /// Email, lower case; the user's id.
    pub email: String,
    /// Group names.
    #[sqlx(json)]
    pub groups: Vec<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// An enrolled device of a user. `Debug` prints the secret as `***`.
#[derive(Clone, Serialize, sqlx::FromRow)]
pub struct Device {
    /// Device id.
    #[sqlx(try_from = "String")]
    pub id: uuid::Uuid,
    /// Owner's email.
    pub user_email: String,
    /// Name given at enrollment.
    pub name: String,
    /// Secret bytes (never serialized): as given when enrolling; read
    /// back, the stored (hashed) form — check with [`secret::verify`].
    #[serde(skip)]
    pub secret: Vec<u8>,
    /// Revoked devices are refused.
    pub revoked: bool,
    /// Enrollment time, Unix seconds.
    pub created_at: i64,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("user_email", &self.user_email)
            .field("name", &self.name)
            .field("secret", &"***")
            .field("revoked", &self.revoked)
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl Store {
    /// Adds a user.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when the email is taken.
    pub async fn create_user(&self, u: &User) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("INSERT INTO users (email, groups, created_at) VALUES ($1, $2, $3)")
            .bind(&u.email)
            .bind(sqlx::types::Json(&u.groups))
            .bind(u.created_at)
            .execute(p).await.map(|r| r.rows_affected()))
            .map_err(StoreError::taken("user", u.email.clone()))?;
        Ok(())
    }

    /// Every user, by email.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        self.all("SELECT * FROM users ORDER BY email").await
    }

    /// One user by email (lower case).
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn user(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.one("SELECT * FROM users WHERE email = $1", email.to_owned())
            .await
    }

    /// Deletes a user and their devices; returns whether the user existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_user(&self, email: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM devices WHERE user_email = $1")
                .bind(email)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query("DELETE FROM users WHERE email = $1")
                .bind(email)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// Enrolls a device.
    ///
    /// # Errors
    /// On database failure.
    pub async fn create_device(&self, d: &Device) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO devices (id, user_email, name, secret, revoked, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(d.id.to_string())
        .bind(&d.user_email)
        .bind(&d.name)
        .bind(secret::stored(&d.secret))
        .bind(d.revoked)
        .bind(d.created_at)
        .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Every device, oldest first.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn devices(&self) -> Result<Vec<Device>, StoreError> {
        self.all("SELECT * FROM devices ORDER BY created_at, id")
            .await
    }

    /// One device by id.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn device(&self, id: uuid::Uuid) -> Result<Option<Device>, StoreError> {
        self.one("SELECT * FROM devices WHERE id = $1", id.to_string())
            .await
    }

    /// Marks a device revoked; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn revoke_device(&self, id: uuid::Uuid) -> Result<bool, StoreError> {
        self.changed(
            "UPDATE devices SET revoked = TRUE WHERE id = $1",
            id.to_string(),
        )
        .await
    }
}

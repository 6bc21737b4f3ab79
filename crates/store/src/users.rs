//! Users and their enrolled devices.

use crate::{is_unique_violation, secret, uuid_col, Store, StoreError};
use serde::Serialize;
use sqlx::Row;

/// A user of the zero-trust client.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Email, lower case; the user's id.
    pub email: String,
    /// Group names.
    pub groups: Vec<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// An enrolled device of a user. `Debug` prints the secret as `***`.
#[derive(Clone, Serialize)]
pub struct Device {
    /// Device id.
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

pub(crate) fn user_row(row: &sqlx::sqlite::SqliteRow) -> Result<User, StoreError> {
    let groups: String = row.try_get("groups")?;
    Ok(User {
        email: row.try_get("email")?,
        groups: serde_json::from_str(&groups).map_err(|e| StoreError::Corrupt {
            table: "users",
            reason: format!("groups: {e}"),
        })?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn device_row(row: &sqlx::sqlite::SqliteRow) -> Result<Device, StoreError> {
    Ok(Device {
        id: uuid_col(row, "id", "devices")?,
        user_email: row.try_get("user_email")?,
        name: row.try_get("name")?,
        secret: row.try_get("secret")?,
        revoked: row.try_get("revoked")?,
        created_at: row.try_get("created_at")?,
    })
}
impl Store {
    /// Adds a user.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when the email is taken.
    pub async fn create_user(&self, u: &User) -> Result<(), StoreError> {
        let groups = serde_json::to_string(&u.groups).map_err(|e| StoreError::Corrupt {
            table: "users",
            reason: e.to_string(),
        })?;
        sqlx::query("INSERT INTO users (email, groups, created_at) VALUES (?, ?, ?)")
            .bind(&u.email)
            .bind(groups)
            .bind(u.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Exists {
                        what: "user",
                        name: u.email.clone(),
                    }
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    /// Every user, by email.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        sqlx::query("SELECT * FROM users ORDER BY email")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_row)
            .collect()
    }

    /// One user by email (lower case).
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn user(&self, email: &str) -> Result<Option<User>, StoreError> {
        sqlx::query("SELECT * FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_row)
            .transpose()
    }

    /// Deletes a user and their devices; returns whether the user existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_user(&self, email: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM devices WHERE user_email = ?")
            .bind(email)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM users WHERE email = ?")
            .bind(email)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Enrolls a device.
    ///
    /// # Errors
    /// On database failure.
    pub async fn create_device(&self, d: &Device) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO devices (id, user_email, name, secret, revoked, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(d.id.to_string())
        .bind(&d.user_email)
        .bind(&d.name)
        .bind(secret::stored(&d.secret))
        .bind(d.revoked)
        .bind(d.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every device, oldest first.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn devices(&self) -> Result<Vec<Device>, StoreError> {
        sqlx::query("SELECT * FROM devices ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(device_row)
            .collect()
    }

    /// One device by id.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn device(&self, id: uuid::Uuid) -> Result<Option<Device>, StoreError> {
        sqlx::query("SELECT * FROM devices WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(device_row)
            .transpose()
    }

    /// Marks a device revoked; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn revoke_device(&self, id: uuid::Uuid) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE devices SET revoked = 1 WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}

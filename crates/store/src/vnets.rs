//! Virtual networks and the IP routes into tunnels within them.

use crate::{on_pool, Store, StoreError};
use serde::Serialize;

/// A virtual network: a separate address space for private-network
/// routes (`burrow vnet add`). Exactly one is the default.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Vnet {
    /// Vnet id.
    #[sqlx(try_from = "String")]
    pub id: uuid::Uuid,
    /// Unique name.
    pub name: String,
    /// Clients that name no vnet use the default one.
    pub is_default: bool,
    /// Free text.
    pub comment: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Users (emails) whose devices may use it; see [`Vnet::allows`].
    #[sqlx(json)]
    pub allow_users: Vec<String>,
    /// Groups whose members' devices may use it.
    #[sqlx(json)]
    pub allow_groups: Vec<String>,
}

impl Vnet {
    /// Whether a device of `email` in `groups` may use this vnet: the
    /// default vnet is everyone's; any other only its allowed users' and
    /// groups' (none by default).
    #[must_use]
    pub fn allows(&self, email: &str, groups: &[String]) -> bool {
        self.is_default
            || self.allow_users.iter().any(|u| u == email)
            || groups.iter().any(|g| self.allow_groups.contains(g))
    }
}

/// A private network routed to a tunnel (`burrow route ip add`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct IpRoute {
    /// Route id.
    #[sqlx(try_from = "String")]
    pub id: uuid::Uuid,
    /// The network in CIDR form, host bits clear (checked by the caller).
    pub network: String,
    /// The tunnel whose connectors reach it.
    #[sqlx(try_from = "String")]
    pub tunnel_id: uuid::Uuid,
    /// The virtual network it belongs to.
    #[sqlx(try_from = "String")]
    pub vnet_id: uuid::Uuid,
    /// Free text.
    pub comment: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}
impl Store {
    /// Adds a virtual network; with `is_default` it becomes the default.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when the name is taken.
    pub async fn create_vnet(&self, v: &Vnet) -> Result<(), StoreError> {
        on_pool!(self, p => {
            let mut tx = p.begin().await?;
            if v.is_default {
                sqlx::query("UPDATE vnets SET is_default = FALSE")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO vnets (id, name, is_default, comment, created_at, allow_users, allow_groups) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(v.id.to_string())
            .bind(&v.name)
            .bind(v.is_default)
            .bind(&v.comment)
            .bind(v.created_at)
            .bind(sqlx::types::Json(&v.allow_users))
            .bind(sqlx::types::Json(&v.allow_groups))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::taken("virtual network", v.name.clone()))?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Replaces who may use the vnet named `name`; returns whether it
    /// exists.
    ///
    /// # Errors
    /// On database failure.
    pub async fn set_vnet_access(
        &self,
        name: &str,
        users: &[String],
        groups: &[String],
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query("UPDATE vnets SET allow_users = $1, allow_groups = $2 WHERE name = $3")
            .bind(sqlx::types::Json(users))
            .bind(sqlx::types::Json(groups))
            .bind(name)
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Makes the vnet named `name` the default; returns whether it exists.
    ///
    /// # Errors
    /// On database failure.
    pub async fn set_default_vnet(&self, name: &str) -> Result<bool, StoreError> {
        let found = on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let found = sqlx::query("SELECT 1 FROM vnets WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if found {
                sqlx::query("UPDATE vnets SET is_default = (name = $1)")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            found
        });
        Ok(found)
    }

    /// Every virtual network, by name.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn vnets(&self) -> Result<Vec<Vnet>, StoreError> {
        self.all("SELECT * FROM vnets ORDER BY name").await
    }

    /// Removes the vnet named `name`; returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError::InUse`] for the default vnet or one that still has
    /// routes.
    pub async fn delete_vnet(&self, name: &str) -> Result<bool, StoreError> {
        let Some(v) = self.vnets().await?.into_iter().find(|v| v.name == name) else {
            return Ok(false);
        };
        let in_use = |reason: String| StoreError::InUse {
            what: "virtual network",
            name: name.to_owned(),
            reason,
        };
        if v.is_default {
            return Err(in_use(
                "it is the default; make another one the default first".into(),
            ));
        }
        let routes: i64 = on_pool!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM ip_routes WHERE vnet_id = $1")
            .bind(v.id.to_string())
            .fetch_one(p).await)?;
        if routes > 0 {
            return Err(in_use(format!(
                "{routes} route(s) still use it; delete them first"
            )));
        }
        on_pool!(self, p => sqlx::query("DELETE FROM vnets WHERE id = $1 AND is_default = FALSE")
            .bind(v.id.to_string())
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(true)
    }

    /// Routes a network (in a vnet) to a tunnel.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when that vnet routes the network already.
    pub async fn create_ip_route(&self, r: &IpRoute) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO ip_routes (id, network, tunnel_id, vnet_id, comment, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(r.id.to_string())
        .bind(&r.network)
        .bind(r.tunnel_id.to_string())
        .bind(r.vnet_id.to_string())
        .bind(&r.comment)
        .bind(r.created_at)
        .execute(p).await.map(|r| r.rows_affected()))
        .map_err(StoreError::taken("IP route", r.network.clone()))?;
        Ok(())
    }

    /// Every IP route, by network.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn ip_routes(&self) -> Result<Vec<IpRoute>, StoreError> {
        self.all("SELECT * FROM ip_routes ORDER BY network").await
    }

    /// Removes the route of `network` in `vnet_id`; returns whether it
    /// existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_ip_route(
        &self,
        network: &str,
        vnet_id: uuid::Uuid,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query("DELETE FROM ip_routes WHERE network = $1 AND vnet_id = $2")
            .bind(network)
            .bind(vnet_id.to_string())
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }
}

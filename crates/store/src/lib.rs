//! burrow's persistent state: accounts, tunnels, apps and the registry of
//! live tunnel connections, in SQLite through sqlx.
//!
//! Module map: [`secret`] (how secrets are stored: salted hashes); the
//! rest is in this file; [`Store`] is the one handle.
//!
//! Secrets at rest: tunnel and device secrets are hashed on write (their
//! structs carry the stored form when read back; check a presented secret
//! with [`secret::verify`]). The SQLite file and its `-wal`/`-shm` are
//! created mode 0600, their directory 0700.
//!
//! Several edge processes may share one SQLite file on one host (WAL mode,
//! busy timeout); a PostgreSQL backend for real clusters comes later behind
//! the same methods. Times are Unix seconds, passed in by the caller.

pub mod secret;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A unique name is taken.
    #[error("{what} '{name}' already exists")]
    Exists {
        /// Kind of object.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The object cannot be changed or removed as asked.
    #[error("{what} '{name}': {reason}")]
    InUse {
        /// Kind of object.
        what: &'static str,
        /// The name.
        name: String,
        /// Why not.
        reason: String,
    },
    /// The state file or its directory could not be made private.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// A stored value could not be read back.
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// A tunnel. `Debug` prints the secret as `***`.
#[derive(Clone, Serialize)]
pub struct Tunnel {
    /// Tunnel id.
    pub id: uuid::Uuid,
    /// Owning account.
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

/// An IP access rule, as the API received it.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRule {
    /// Rule id.
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

/// A public hostname routed to a tunnel (`burrow route dns`).
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    /// Hostname, lower case; may start with `*.`.
    pub hostname: String,
    /// The tunnel its HTTP requests go to.
    pub tunnel_id: uuid::Uuid,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// A virtual network: a separate address space for private-network
/// routes (`burrow vnet add`). Exactly one is the default.
#[derive(Debug, Clone, Serialize)]
pub struct Vnet {
    /// Vnet id.
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
    pub allow_users: Vec<String>,
    /// Groups whose members' devices may use it.
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
#[derive(Debug, Clone, Serialize)]
pub struct IpRoute {
    /// Route id.
    pub id: uuid::Uuid,
    /// The network in CIDR form, host bits clear (checked by the caller).
    pub network: String,
    /// The tunnel whose connectors reach it.
    pub tunnel_id: uuid::Uuid,
    /// The virtual network it belongs to.
    pub vnet_id: uuid::Uuid,
    /// Free text.
    pub comment: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// A dedicated egress IP and the colo that owns it (`burrow egress-ip add`).
#[derive(Debug, Clone, Serialize)]
pub struct EgressIp {
    /// The address (IPv4, text).
    pub ip: String,
    /// Owning colo.
    pub colo: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// One live tunnel connection, as registered by an edge node.
#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    /// Connection id.
    pub id: uuid::Uuid,
    /// Tunnel served.
    pub tunnel_id: uuid::Uuid,
    /// Connector process id.
    pub connector_id: uuid::Uuid,
    /// HA connection index within the connector.
    pub conn_index: u8,
    /// Colo of the edge node holding the connection.
    pub colo: String,
    /// Edge node id.
    pub node_id: String,
    /// `quic` or `http2`.
    pub protocol: String,
    /// Connector's address as the edge saw it.
    pub origin_ip: String,
    /// Connector version string.
    pub version: String,
    /// Registered at, Unix seconds.
    pub since: i64,
    /// Last heartbeat of the holding node, Unix seconds.
    pub seen_at: i64,
}

/// The store handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tunnels (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, \
     name TEXT NOT NULL UNIQUE, secret BLOB NOT NULL, created_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS apps (id TEXT PRIMARY KEY, spec TEXT NOT NULL, \
     l4 TEXT NOT NULL, port_start INTEGER NOT NULL, port_end INTEGER NOT NULL, \
     tunnel_id TEXT, created_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS connections (id TEXT PRIMARY KEY, tunnel_id TEXT NOT NULL, \
     connector_id TEXT NOT NULL, conn_index INTEGER NOT NULL, colo TEXT NOT NULL, \
     node_id TEXT NOT NULL, protocol TEXT NOT NULL, origin_ip TEXT NOT NULL, \
     version TEXT NOT NULL, since INTEGER NOT NULL, seen_at INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS connections_tunnel ON connections (tunnel_id)",
    "CREATE TABLE IF NOT EXISTS access_rules (id TEXT PRIMARY KEY, mode TEXT NOT NULL, \
     target TEXT NOT NULL, value TEXT NOT NULL, created_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS routes (hostname TEXT PRIMARY KEY, tunnel_id TEXT NOT NULL, \
     created_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS users (email TEXT PRIMARY KEY, groups TEXT NOT NULL, \
     created_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY, user_email TEXT NOT NULL, \
     name TEXT NOT NULL, secret BLOB NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, \
     created_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS vnets (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, \
     is_default INTEGER NOT NULL, comment TEXT NOT NULL, created_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ip_routes (id TEXT PRIMARY KEY, network TEXT NOT NULL, \
     tunnel_id TEXT NOT NULL, vnet_id TEXT NOT NULL, comment TEXT NOT NULL, \
     created_at INTEGER NOT NULL, UNIQUE (vnet_id, network))",
    "CREATE TABLE IF NOT EXISTS egress_ips (ip TEXT PRIMARY KEY, colo TEXT NOT NULL, \
     created_at INTEGER NOT NULL)",
];

/// Name of the virtual network every store starts with.
pub const DEFAULT_VNET: &str = "default";

fn uuid_col(
    row: &sqlx::sqlite::SqliteRow,
    col: &str,
    table: &'static str,
) -> Result<uuid::Uuid, StoreError> {
    let s: String = row.try_get(col)?;
    uuid::Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt {
        table,
        reason: format!("{col}: {e}"),
    })
}

fn int_col<T: TryFrom<i64>>(
    row: &sqlx::sqlite::SqliteRow,
    col: &str,
    table: &'static str,
) -> Result<T, StoreError> {
    let v: i64 = row.try_get(col)?;
    T::try_from(v).map_err(|_| StoreError::Corrupt {
        table,
        reason: format!("{col}: {v} out of range"),
    })
}

fn user_row(row: &sqlx::sqlite::SqliteRow) -> Result<User, StoreError> {
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

fn device_row(row: &sqlx::sqlite::SqliteRow) -> Result<Device, StoreError> {
    Ok(Device {
        id: uuid_col(row, "id", "devices")?,
        user_email: row.try_get("user_email")?,
        name: row.try_get("name")?,
        secret: row.try_get("secret")?,
        revoked: row.try_get("revoked")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The state file and its `-wal`/`-shm` hold identities: mode 0600 (made
/// so before SQLite creates them, which then copies the mode to the WAL and
/// SHM files), and a directory this creates is 0700.
async fn secure_files(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let path = path.to_owned();
    let io = |e: std::io::Error, what: &Path| StoreError::Io {
        path: what.display().to_string(),
        reason: e.to_string(),
    };
    tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| io(e, dir))?;
            }
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io(e, &path))?;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            let p = std::path::PathBuf::from(p);
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| io(e, &p))?;
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| StoreError::Io {
        path: String::new(),
        reason: e.to_string(),
    })?
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    /// Opens (creating if missing) the SQLite file at `path` and its schema.
    ///
    /// # Errors
    /// When the file cannot be opened or created.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        secure_files(path).await?;
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Deleted and overwritten content (a migrated plain secret) is
            // zeroed, not left in free pages.
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&pool).await?;
        }
        // Columns added after the first release of a table.
        for (table, column, decl) in [
            ("vnets", "allow_users", "TEXT NOT NULL DEFAULT '[]'"),
            ("vnets", "allow_groups", "TEXT NOT NULL DEFAULT '[]'"),
        ] {
            let cols = sqlx::query(&format!("PRAGMA table_info({table})"))
                .fetch_all(&pool)
                .await?;
            let has = cols
                .iter()
                .any(|c| c.try_get::<String, _>("name").is_ok_and(|n| n == column));
            if !has {
                sqlx::query(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))
                    .execute(&pool)
                    .await?;
            }
        }
        // Every account has a default virtual network, as in Cloudflare's.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        sqlx::query(
            "INSERT INTO vnets (id, name, is_default, comment, created_at) \
             SELECT ?, ?, 1, 'created with the store', ? WHERE NOT EXISTS (SELECT 1 FROM vnets)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(DEFAULT_VNET)
        .bind(now)
        .execute(&pool)
        .await?;
        let store = Self { pool };
        store.migrate_secrets().await?;
        Ok(store)
    }

    /// Hashes tunnel and device secrets that an older build stored as
    /// they are. Idempotent.
    async fn migrate_secrets(&self) -> Result<(), StoreError> {
        for table in ["tunnels", "devices"] {
            let rows = sqlx::query(&format!("SELECT id, secret FROM {table}"))
                .fetch_all(&self.pool)
                .await?;
            let mut n = 0;
            for row in rows {
                let id: String = row.try_get("id")?;
                let raw: Vec<u8> = row.try_get("secret")?;
                if secret::is_hashed(&raw) {
                    continue;
                }
                sqlx::query(&format!("UPDATE {table} SET secret = ? WHERE id = ?"))
                    .bind(secret::hash(&raw))
                    .bind(&id)
                    .execute(&self.pool)
                    .await?;
                n += 1;
            }
            if n > 0 {
                tracing::info!(
                    table,
                    rows = n,
                    "stored secrets hashed (migrated from plain)"
                );
            }
        }
        Ok(())
    }

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
        sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)")
            .bind(key)
            .bind(init())
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }

    /// Creates a tunnel.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when the name is taken.
    pub async fn create_tunnel(&self, t: &Tunnel) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tunnels (id, account_id, name, secret, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(t.id.to_string())
        .bind(t.account_id.to_string())
        .bind(&t.name)
        .bind(secret::stored(&t.secret))
        .bind(t.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Exists {
                    what: "tunnel",
                    name: t.name.clone(),
                }
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    fn tunnel_row(row: &sqlx::sqlite::SqliteRow) -> Result<Tunnel, StoreError> {
        Ok(Tunnel {
            id: uuid_col(row, "id", "tunnels")?,
            account_id: uuid_col(row, "account_id", "tunnels")?,
            name: row.try_get("name")?,
            secret: row.try_get("secret")?,
            created_at: row.try_get("created_at")?,
        })
    }

    /// A tunnel by id.
    ///
    /// # Errors
    /// On database failure.
    pub async fn tunnel(&self, id: uuid::Uuid) -> Result<Option<Tunnel>, StoreError> {
        sqlx::query("SELECT * FROM tunnels WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(Self::tunnel_row)
            .transpose()
    }

    /// A tunnel by name, or by id written as text.
    ///
    /// # Errors
    /// On database failure.
    pub async fn tunnel_by_ref(&self, name_or_id: &str) -> Result<Option<Tunnel>, StoreError> {
        sqlx::query("SELECT * FROM tunnels WHERE name = ? OR id = ?")
            .bind(name_or_id)
            .bind(name_or_id.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(Self::tunnel_row)
            .transpose()
    }

    /// All tunnels, by name.
    ///
    /// # Errors
    /// On database failure.
    pub async fn tunnels(&self) -> Result<Vec<Tunnel>, StoreError> {
        sqlx::query("SELECT * FROM tunnels ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(Self::tunnel_row)
            .collect()
    }

    /// Deletes a tunnel with its apps and routes; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_tunnel(&self, id: uuid::Uuid) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM apps WHERE tunnel_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        for table in ["routes", "ip_routes"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE tunnel_id = ?"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let n = sqlx::query("DELETE FROM tunnels WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
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
        let n = sqlx::query("UPDATE tunnels SET secret = ? WHERE id = ?")
            .bind(secret::hash(secret))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

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

    /// Records a live tunnel connection.
    ///
    /// # Errors
    /// On database failure.
    pub async fn add_connection(&self, c: &Connection) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO connections (id, tunnel_id, connector_id, conn_index, colo, \
             node_id, protocol, origin_ip, version, since, seen_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id.to_string())
        .bind(c.tunnel_id.to_string())
        .bind(c.connector_id.to_string())
        .bind(i64::from(c.conn_index))
        .bind(&c.colo)
        .bind(&c.node_id)
        .bind(&c.protocol)
        .bind(&c.origin_ip)
        .bind(&c.version)
        .bind(c.since)
        .bind(c.seen_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a connection.
    ///
    /// # Errors
    /// On database failure.
    pub async fn remove_connection(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM connections WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Heartbeat: marks all of `node_id`'s connections as seen at `now`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn touch_node(&self, node_id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE connections SET seen_at = ? WHERE node_id = ?")
            .bind(now)
            .bind(node_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops connections whose node has not been seen since `before`
    /// (crashed nodes), and all of `node_id`'s (used at start and stop).
    ///
    /// # Errors
    /// On database failure.
    pub async fn prune_connections(&self, node_id: &str, before: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM connections WHERE node_id = ? OR seen_at < ?")
            .bind(node_id)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Live connections of a tunnel seen at or after `fresh_since`.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn connections(
        &self,
        tunnel_id: uuid::Uuid,
        fresh_since: i64,
    ) -> Result<Vec<Connection>, StoreError> {
        sqlx::query(
            "SELECT * FROM connections WHERE tunnel_id = ? AND seen_at >= ? \
             ORDER BY colo, connector_id, conn_index",
        )
        .bind(tunnel_id.to_string())
        .bind(fresh_since)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(Connection {
                id: uuid_col(row, "id", "connections")?,
                tunnel_id: uuid_col(row, "tunnel_id", "connections")?,
                connector_id: uuid_col(row, "connector_id", "connections")?,
                conn_index: int_col(row, "conn_index", "connections")?,
                colo: row.try_get("colo")?,
                node_id: row.try_get("node_id")?,
                protocol: row.try_get("protocol")?,
                origin_ip: row.try_get("origin_ip")?,
                version: row.try_get("version")?,
                since: row.try_get("since")?,
                seen_at: row.try_get("seen_at")?,
            })
        })
        .collect()
    }

    /// Adds an IP access rule.
    ///
    /// # Errors
    /// On database failure.
    pub async fn create_access_rule(&self, r: &AccessRule) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO access_rules (id, mode, target, value, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(r.id.to_string())
        .bind(&r.mode)
        .bind(&r.target)
        .bind(&r.value)
        .bind(r.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A metadata value, if set.
    ///
    /// # Errors
    /// On database failure.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("value"))
            .transpose()?)
    }

    /// Copies the write-ahead log into the database file and empties it,
    /// so replaced content (a secret migrated to its hash) is gone from
    /// both files.
    ///
    /// # Errors
    /// On database failure.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a meta value (absent is fine).
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_meta(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM meta WHERE key = ?")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets a meta value.
    ///
    /// # Errors
    /// On database failure.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?, ?) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

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

    /// Routes a hostname to a tunnel.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when the hostname is routed already.
    pub async fn create_route(&self, r: &Route) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO routes (hostname, tunnel_id, created_at) VALUES (?, ?, ?)")
            .bind(&r.hostname)
            .bind(r.tunnel_id.to_string())
            .bind(r.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Exists {
                        what: "route",
                        name: r.hostname.clone(),
                    }
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    /// Every route, by hostname.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn routes(&self) -> Result<Vec<Route>, StoreError> {
        sqlx::query("SELECT * FROM routes ORDER BY hostname")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(Route {
                    hostname: row.try_get("hostname")?,
                    tunnel_id: uuid_col(row, "tunnel_id", "routes")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Removes a route; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_route(&self, hostname: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM routes WHERE hostname = ?")
            .bind(hostname)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Adds a virtual network; with `is_default` it becomes the default.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when the name is taken.
    pub async fn create_vnet(&self, v: &Vnet) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if v.is_default {
            sqlx::query("UPDATE vnets SET is_default = 0")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO vnets (id, name, is_default, comment, created_at, allow_users, allow_groups) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(v.id.to_string())
        .bind(&v.name)
        .bind(v.is_default)
        .bind(&v.comment)
        .bind(v.created_at)
        .bind(serde_json::to_string(&v.allow_users).expect("strings serialize"))
        .bind(serde_json::to_string(&v.allow_groups).expect("strings serialize"))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Exists {
                    what: "virtual network",
                    name: v.name.clone(),
                }
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
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
        let n = sqlx::query("UPDATE vnets SET allow_users = ?, allow_groups = ? WHERE name = ?")
            .bind(serde_json::to_string(users).expect("strings serialize"))
            .bind(serde_json::to_string(groups).expect("strings serialize"))
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Makes the vnet named `name` the default; returns whether it exists.
    ///
    /// # Errors
    /// On database failure.
    pub async fn set_default_vnet(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query("SELECT 1 FROM vnets WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if found {
            sqlx::query("UPDATE vnets SET is_default = (name = ?)")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    /// Every virtual network, by name.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn vnets(&self) -> Result<Vec<Vnet>, StoreError> {
        sqlx::query("SELECT * FROM vnets ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let list = |col: &str| -> Result<Vec<String>, StoreError> {
                    let text: String = row.try_get(col)?;
                    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                        table: "vnets",
                        reason: format!("{col}: {e}"),
                    })
                };
                Ok(Vnet {
                    id: uuid_col(row, "id", "vnets")?,
                    name: row.try_get("name")?,
                    is_default: row.try_get("is_default")?,
                    comment: row.try_get("comment")?,
                    created_at: row.try_get("created_at")?,
                    allow_users: list("allow_users")?,
                    allow_groups: list("allow_groups")?,
                })
            })
            .collect()
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
        let routes: i64 = sqlx::query("SELECT COUNT(*) AS n FROM ip_routes WHERE vnet_id = ?")
            .bind(v.id.to_string())
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        if routes > 0 {
            return Err(in_use(format!(
                "{routes} route(s) still use it; delete them first"
            )));
        }
        sqlx::query("DELETE FROM vnets WHERE id = ? AND is_default = 0")
            .bind(v.id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// Routes a network (in a vnet) to a tunnel.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when that vnet routes the network already.
    pub async fn create_ip_route(&self, r: &IpRoute) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ip_routes (id, network, tunnel_id, vnet_id, comment, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(r.id.to_string())
        .bind(&r.network)
        .bind(r.tunnel_id.to_string())
        .bind(r.vnet_id.to_string())
        .bind(&r.comment)
        .bind(r.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Exists {
                    what: "IP route",
                    name: r.network.clone(),
                }
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    /// Every IP route, by network.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn ip_routes(&self) -> Result<Vec<IpRoute>, StoreError> {
        sqlx::query("SELECT * FROM ip_routes ORDER BY network")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(IpRoute {
                    id: uuid_col(row, "id", "ip_routes")?,
                    network: row.try_get("network")?,
                    tunnel_id: uuid_col(row, "tunnel_id", "ip_routes")?,
                    vnet_id: uuid_col(row, "vnet_id", "ip_routes")?,
                    comment: row.try_get("comment")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
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
        let n = sqlx::query("DELETE FROM ip_routes WHERE network = ? AND vnet_id = ?")
            .bind(network)
            .bind(vnet_id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Declares a dedicated egress IP of `colo`.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when the IP is declared already.
    pub async fn create_egress_ip(&self, e: &EgressIp) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO egress_ips (ip, colo, created_at) VALUES (?, ?, ?)")
            .bind(&e.ip)
            .bind(&e.colo)
            .bind(e.created_at)
            .execute(&self.pool)
            .await
            .map_err(|err| {
                if is_unique_violation(&err) {
                    StoreError::Exists {
                        what: "egress IP",
                        name: e.ip.clone(),
                    }
                } else {
                    err.into()
                }
            })?;
        Ok(())
    }

    /// Every declared egress IP, by address.
    ///
    /// # Errors
    /// On database failure.
    pub async fn egress_ips(&self) -> Result<Vec<EgressIp>, StoreError> {
        sqlx::query("SELECT * FROM egress_ips ORDER BY ip")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(EgressIp {
                    ip: row.try_get("ip")?,
                    colo: row.try_get("colo")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Removes an egress IP; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_egress_ip(&self, ip: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM egress_ips WHERE ip = ?")
            .bind(ip)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// All IP access rules, oldest first.
    ///
    /// # Errors
    /// On database failure or a corrupt row.
    pub async fn access_rules(&self) -> Result<Vec<AccessRule>, StoreError> {
        sqlx::query("SELECT * FROM access_rules ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(AccessRule {
                    id: uuid_col(row, "id", "access_rules")?,
                    mode: row.try_get("mode")?,
                    target: row.try_get("target")?,
                    value: row.try_get("value")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Deletes an IP access rule; returns whether it existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn delete_access_rule(&self, id: uuid::Uuid) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM access_rules WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn vnets_and_ip_routes() {
        let dir = std::env::temp_dir().join(format!("burrow-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Store::open(&dir.join("s.db")).await.unwrap();
        // A new store has exactly one vnet, the default; reopening adds none.
        let s = {
            s.close().await;
            Store::open(&dir.join("s.db")).await.unwrap()
        };
        let v = s.vnets().await.unwrap();
        assert_eq!(v.len(), 1);
        assert!(v[0].is_default && v[0].name == DEFAULT_VNET);
        let lab = Vnet {
            id: uuid::Uuid::new_v4(),
            name: "lab".into(),
            is_default: true,
            comment: String::new(),
            created_at: 1,
            allow_users: vec![],
            allow_groups: vec!["eng".into()],
        };
        s.create_vnet(&lab).await.unwrap();
        assert!(matches!(
            s.create_vnet(&lab).await,
            Err(StoreError::Exists { .. })
        ));
        let defaults: Vec<_> = s
            .vnets()
            .await
            .unwrap()
            .into_iter()
            .filter(|v| v.is_default)
            .map(|v| v.name)
            .collect();
        assert_eq!(defaults, ["lab"]);
        let route = IpRoute {
            id: uuid::Uuid::new_v4(),
            network: "10.0.0.0/8".into(),
            tunnel_id: uuid::Uuid::new_v4(),
            vnet_id: lab.id,
            comment: String::new(),
            created_at: 1,
        };
        s.create_ip_route(&route).await.unwrap();
        assert!(matches!(
            s.create_ip_route(&IpRoute {
                id: uuid::Uuid::new_v4(),
                ..route.clone()
            })
            .await,
            Err(StoreError::Exists { .. })
        ));
        assert!(s.set_default_vnet(DEFAULT_VNET).await.unwrap());
        assert!(!s.set_default_vnet("nope").await.unwrap());
        // In use by a route: refused; then deletable.
        assert!(matches!(
            s.delete_vnet("lab").await,
            Err(StoreError::InUse { .. })
        ));
        assert!(matches!(
            s.delete_vnet(DEFAULT_VNET).await,
            Err(StoreError::InUse { .. })
        ));
        assert!(s.delete_ip_route("10.0.0.0/8", lab.id).await.unwrap());
        assert!(s.delete_vnet("lab").await.unwrap());
        assert!(!s.delete_vnet("lab").await.unwrap());
        let e = EgressIp {
            ip: "203.0.113.7".into(),
            colo: "KIX".into(),
            created_at: 1,
        };
        s.create_egress_ip(&e).await.unwrap();
        assert!(matches!(
            s.create_egress_ip(&e).await,
            Err(StoreError::Exists { .. })
        ));
        assert_eq!(s.egress_ips().await.unwrap()[0].colo, "KIX");
        assert!(s.delete_egress_ip("203.0.113.7").await.unwrap());
        assert!(s.egress_ips().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn tunnels_apps_connections_round_trip() {
        let dir = std::env::temp_dir().join(format!("burrow-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Store::open(&dir.join("s.db")).await.unwrap();
        let a1 = s.meta_or_init("account", || "one".into()).await.unwrap();
        let a2 = s.meta_or_init("account", || "two".into()).await.unwrap();
        assert_eq!((a1.as_str(), a2.as_str()), ("one", "one"));
        let t = Tunnel {
            id: uuid::Uuid::new_v4(),
            account_id: uuid::Uuid::new_v4(),
            name: "web".into(),
            secret: vec![1; 32],
            created_at: 5,
        };
        s.create_tunnel(&t).await.unwrap();
        assert!(matches!(
            s.create_tunnel(&Tunnel {
                id: uuid::Uuid::new_v4(),
                ..t.clone()
            })
            .await,
            Err(StoreError::Exists { .. })
        ));
        assert_eq!(s.tunnel_by_ref("web").await.unwrap().unwrap().id, t.id);
        // Stored hashed: the read-back form verifies the secret, and is not it.
        let stored = s
            .tunnel_by_ref(&t.id.to_string())
            .await
            .unwrap()
            .unwrap()
            .secret;
        assert!(secret::is_hashed(&stored));
        assert!(secret::verify(&stored, &[1; 32]));
        assert_ne!(stored, vec![1; 32]);
        let app = App {
            id: uuid::Uuid::new_v4(),
            spec: "{}".into(),
            l4: "tcp".into(),
            port_start: 1000,
            port_end: 1000,
            tunnel_id: Some(t.id),
            created_at: 6,
        };
        s.create_app(&app).await.unwrap();
        assert_eq!(s.apps().await.unwrap().len(), 1);
        let c = Connection {
            id: uuid::Uuid::new_v4(),
            tunnel_id: t.id,
            connector_id: uuid::Uuid::new_v4(),
            conn_index: 0,
            colo: "NRT".into(),
            node_id: "n1".into(),
            protocol: "quic".into(),
            origin_ip: "127.0.0.1".into(),
            version: "x".into(),
            since: 10,
            seen_at: 10,
        };
        s.add_connection(&c).await.unwrap();
        assert_eq!(s.connections(t.id, 10).await.unwrap().len(), 1);
        assert_eq!(s.connections(t.id, 11).await.unwrap().len(), 0);
        s.touch_node("n1", 20).await.unwrap();
        assert_eq!(s.connections(t.id, 11).await.unwrap().len(), 1);
        s.prune_connections("n2", 15).await.unwrap();
        assert_eq!(s.connections(t.id, 0).await.unwrap().len(), 1);
        s.prune_connections("n1", 0).await.unwrap();
        assert_eq!(s.connections(t.id, 0).await.unwrap().len(), 0);
        assert!(s.delete_tunnel(t.id).await.unwrap());
        assert!(s.apps().await.unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

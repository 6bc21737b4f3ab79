//! burrow's persistent state: accounts, tunnels, apps and the registry of
//! live tunnel connections, in SQLite through sqlx.
//!
//! Module map: one file per aggregate (tunnels, apps, connections, access
//! rules, users and devices, routes, vnets and IP routes, egress IPs,
//! meta), each an `impl Store` block with its row type; [`secret`] (how
//! secrets are stored: salted hashes); this file opens the store and
//! migrates it. [`Store`] is the one handle.
//!
//! Secrets at rest: tunnel and device secrets are hashed on write (their
//! structs carry the stored form when read back; check a presented secret
//! with [`secret::verify`]). The SQLite file and its `-wal`/`-shm` are
//! created mode 0600, their directory 0700.
//!
//! Several edge processes may share one SQLite file on one host (WAL mode,
//! busy timeout); a PostgreSQL backend for real clusters comes later behind
//! the same methods. Times are Unix seconds, passed in by the caller.
//!
//! Schema: versioned migrations in `migrations/` ([`schema_version`]).
//! Queries are written to run on PostgreSQL unchanged: numbered `$N`
//! parameters, `ON CONFLICT` upserts, TEXT ids, INTEGER times. What stays
//! SQLite's own is in this file only: the connection options, the
//! pre-versioning column fix-up (`PRAGMA table_info`), the versioning
//! check (`sqlite_master`) and the WAL checkpoint.

pub mod secret;

mod access_rules;
mod apps;
mod connections;
mod egress_ips;
mod meta;
mod routes;
mod tunnels;
mod users;
mod vnets;

pub use access_rules::AccessRule;
pub use apps::App;
pub use connections::Connection;
pub use egress_ips::EgressIp;
pub use routes::Route;
pub use tunnels::Tunnel;
pub use users::{Device, User};
pub use vnets::{IpRoute, Vnet};

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
    /// The state file's schema is newer than this build's.
    #[error(
        "the state file's schema is version {found}, newer than this build knows ({known}): \
         it was written by a newer burrow; run that version, or a copy of the file made before the upgrade"
    )]
    Schema {
        /// The file's version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// A schema migration failed.
    #[error("schema migration failed: {0}")]
    Migrate(String),
    /// A stored value could not be read back.
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// A nullable TEXT column, as read before it becomes an `Option<Uuid>`
/// (`#[sqlx(try_from = "crate::NullableText")]`).
#[derive(sqlx::Type)]
#[sqlx(transparent)]
pub(crate) struct NullableText(Option<String>);

impl TryFrom<NullableText> for Option<uuid::Uuid> {
    type Error = uuid::Error;
    fn try_from(t: NullableText) -> Result<Self, Self::Error> {
        t.0.as_deref().map(uuid::Uuid::parse_str).transpose()
    }
}

/// The store handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// Name of the virtual network every store starts with.
pub const DEFAULT_VNET: &str = "default";

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

/// The versioned schema: `migrations/*.sql`, applied in order; the
/// version a state file is at is in its `_sqlx_migrations` table.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The newest schema version this build knows.
pub fn schema_version() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Brings the schema to [`schema_version`]: refuses a state file written
/// by a newer build, upgrades one from before versioning (columns it
/// lacks are added first; the first migration then finds its tables),
/// and applies the migrations not applied yet.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let versioned: bool = sqlx::query_scalar(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await?;
    if versioned {
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(pool)
            .await?;
        let known = schema_version();
        if let Some(found) = found.filter(|f| *f > known) {
            return Err(StoreError::Schema { found, known });
        }
    } else {
        legacy_columns(pool).await?;
    }
    MIGRATIONS.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(found) => StoreError::Schema {
            found,
            known: schema_version(),
        },
        e => StoreError::Migrate(e.to_string()),
    })
}

/// Columns that builds before versioned migrations added at start; a
/// file from before them gets them here, so the first migration's
/// `CREATE TABLE IF NOT EXISTS` leaves a complete table.
async fn legacy_columns(pool: &SqlitePool) -> Result<(), StoreError> {
    for (table, column, decl) in [
        ("vnets", "allow_users", "TEXT NOT NULL DEFAULT '[]'"),
        ("vnets", "allow_groups", "TEXT NOT NULL DEFAULT '[]'"),
    ] {
        let cols = sqlx::query(&format!("PRAGMA table_info({table})"))
            .fetch_all(pool)
            .await?;
        // No such table yet: a new file, made whole by the migrations.
        if cols.is_empty() {
            continue;
        }
        let has = cols
            .iter()
            .any(|c| c.try_get::<String, _>("name").is_ok_and(|n| n == column));
        if !has {
            sqlx::query(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl StoreError {
    /// Maps an insert's failure: a unique violation is [`StoreError::Exists`]
    /// for `what` named `name`, anything else a database error.
    pub(crate) fn taken(what: &'static str, name: String) -> impl FnOnce(sqlx::Error) -> Self {
        move |e| {
            if is_unique_violation(&e) {
                StoreError::Exists { what, name }
            } else {
                e.into()
            }
        }
    }
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
        migrate(&pool).await?;
        // Every account has a default virtual network, as in Cloudflare's.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        sqlx::query(
            "INSERT INTO vnets (id, name, is_default, comment, created_at) \
             SELECT $1, $2, 1, 'created with the store', $3 WHERE NOT EXISTS (SELECT 1 FROM vnets)",
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

    /// Every row `sql` selects, mapped by its `FromRow`.
    pub(crate) async fn all<T>(&self, sql: &'static str) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
    {
        Ok(sqlx::query_as::<_, T>(sql).fetch_all(&self.pool).await?)
    }

    /// Runs a one-parameter `DELETE` or `UPDATE`; whether a row changed.
    pub(crate) async fn changed(&self, sql: &'static str, key: String) -> Result<bool, StoreError> {
        let n = sqlx::query(sql)
            .bind(key)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
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
                sqlx::query(&format!("UPDATE {table} SET secret = $1 WHERE id = $2"))
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

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("burrow-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("s.db")
    }

    async fn version(s: &Store) -> i64 {
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&s.pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_new_file_is_at_the_newest_schema_and_reopens() {
        let db = temp_db();
        let s = Store::open(&db).await.unwrap();
        assert_eq!(version(&s).await, schema_version());
        s.close().await;
        let s = Store::open(&db).await.unwrap();
        assert_eq!(version(&s).await, schema_version());
    }

    #[tokio::test]
    async fn a_file_from_a_newer_build_is_refused_with_both_versions() {
        let db = temp_db();
        let s = Store::open(&db).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', 1, x'00', 0)",
        )
        .execute(&s.pool)
        .await
        .unwrap();
        s.close().await;
        let err = Store::open(&db).await.err().expect("refused");
        assert!(
            matches!(err, StoreError::Schema { found: 9999, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("9999") && text.contains("newer"), "{text}");
    }

    #[tokio::test]
    async fn a_file_from_before_versioning_is_upgraded_in_place() {
        // The vnets table as the first builds made it, without the access
        // columns, and a row in it.
        let db = temp_db();
        {
            let opts = SqliteConnectOptions::from_str("sqlite://")
                .unwrap()
                .filename(&db)
                .create_if_missing(true);
            let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
            sqlx::query(
                "CREATE TABLE vnets (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, \
                 is_default INTEGER NOT NULL, comment TEXT NOT NULL, created_at INTEGER NOT NULL)",
            )
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("INSERT INTO vnets VALUES ('6f1c5a1e-8a35-4a3f-9d1e-0c4b7a3e2f10', 'old', 1, '', 1)")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        let s = Store::open(&db).await.unwrap();
        assert_eq!(version(&s).await, schema_version());
        let v = s.vnets().await.unwrap();
        assert_eq!(
            v.len(),
            1,
            "the old row stays and no second default is made"
        );
        assert_eq!(v[0].name, "old");
        assert!(v[0].allow_users.is_empty() && v[0].allow_groups.is_empty());
    }

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

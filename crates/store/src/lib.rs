//! burrow's persistent state: accounts, tunnels, apps and the registry of
//! live tunnel connections, in SQLite (one host) or PostgreSQL (a
//! cluster) through sqlx.
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
//! busy timeout); edge nodes on many hosts share one PostgreSQL database
//! ([`Location`]). Times are Unix seconds, passed in by the caller.
//!
//! Two engines, one set of queries: every query is written once, in the
//! SQL both dialects agree on (numbered `$N` parameters, `ON CONFLICT`
//! upserts, `TRUE`/`FALSE`, TEXT ids), and [`on_pool!`] compiles it for
//! each engine's native driver (sqlx's `Any` driver converts types too
//! loosely: SQLite's INTEGER flags do not decode as `bool` through it).
//! Schema: versioned migrations, `migrations/sqlite/` and
//! `migrations/postgres/`, the same versions in each dialect
//! ([`schema_version`]). An applied migration is never edited (sqlx
//! refuses a file whose checksum changed); changes are new versions in
//! both directories. What stays one engine's own is in this file only:
//! connection options, SQLite's pre-versioning column fix-up and its WAL
//! checkpoint, the versioning check.

pub mod secret;

mod changes;

mod access_rules;
mod apps;
mod connections;
mod egress_ips;
mod meta;
mod nodes;
mod routes;
mod tunnels;
mod users;
mod vnets;

pub use access_rules::AccessRule;
pub use apps::App;
pub use changes::{Change, Changes, CHANNEL};
pub use connections::Connection;
pub use egress_ips::EgressIp;
pub use nodes::Node;
pub use routes::Route;
pub use tunnels::Tunnel;
pub use users::{Device, User};
pub use vnets::{IpRoute, Vnet};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection as _, PgPool, Row, SqlitePool};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed. (Not a `source`: sqlx's message already
    /// carries its cause, which an error chain would print twice.)
    #[error("database: {0}")]
    Db(sqlx::Error),
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
    /// The database could not be reached or logged in to at start.
    #[error("cannot connect to the database: {reason}")]
    Connect {
        /// The database, its password hidden.
        location: String,
        /// What failed.
        reason: String,
    },
    /// The store's schema is newer than this build's.
    #[error(
        "the store's schema is version {found}, newer than this build knows ({known}): \
         it was written by a newer burrow; run that version, or a copy made before the upgrade"
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

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e)
    }
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

/// Where the state lives: `sqlite:PATH` (or a bare path), or
/// `postgres://USER:PASSWORD@HOST:PORT/DB` (`postgresql://` too). Shown
/// (`Display`, `Debug`) with the password as `***`.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file on this host.
    Sqlite(PathBuf),
    /// A PostgreSQL database (the URL as given, password included).
    Postgres(String),
}

impl Location {
    /// Reads a `--store` value; the error says what is accepted.
    ///
    /// # Errors
    /// An unknown scheme, or an empty path or URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            PgConnectOptions::from_str(s).map_err(|e| {
                format!(
                    "'{}' is not a PostgreSQL URL: {e}",
                    Location::Postgres(s.to_owned())
                )
            })?;
            return Ok(Location::Postgres(s.to_owned()));
        }
        let path = s.strip_prefix("sqlite:").unwrap_or(s);
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err("an empty path: give sqlite:PATH or postgres://USER@HOST/DB".into());
        }
        if s.contains("://") && !s.starts_with("sqlite:") {
            return Err(format!(
                "'{}': unknown kind of store; give sqlite:PATH or postgres://USER@HOST/DB",
                s.split("://").next().unwrap_or_default()
            ));
        }
        Ok(Location::Sqlite(PathBuf::from(path)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            Location::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// `url` with the password of its user part (and a `password=` query
/// parameter) replaced by `***`.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// One engine's pool.
#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

/// Runs `$body` with `$p` bound to the store's pool, compiled once per
/// engine: one query text, each engine's native driver and types.
macro_rules! on_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($p) => $body,
            $crate::Pool::Pg($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// The store handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
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

/// The versioned schema, per engine: `migrations/ENGINE/*.sql`, applied
/// in order; the version a store is at is in its `_sqlx_migrations`
/// table. Both directories hold the same versions.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The newest schema version this build knows.
pub fn schema_version() -> i64 {
    SQLITE_MIGRATIONS
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// Brings the schema to [`schema_version`]: refuses a store written by a
/// newer build, upgrades a SQLite file from before versioning (columns it
/// lacks are added first; the first migration then finds its tables), and
/// applies the migrations not applied yet. On PostgreSQL, sqlx holds an
/// advisory lock while it migrates, so nodes starting together take turns.
async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let versioned: bool = match pool {
        Pool::Sqlite(p) => {
            sqlx::query_scalar(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            )
            .fetch_one(p)
            .await?
        }
        Pool::Pg(p) => {
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(p)
                .await?
        }
    };
    let known = schema_version();
    if versioned {
        let max = "SELECT MAX(version) FROM _sqlx_migrations";
        let found: Option<i64> = match pool {
            Pool::Sqlite(p) => sqlx::query_scalar(max).fetch_one(p).await?,
            Pool::Pg(p) => sqlx::query_scalar(max).fetch_one(p).await?,
        };
        if let Some(found) = found.filter(|f| *f > known) {
            return Err(StoreError::Schema { found, known });
        }
    } else if let Pool::Sqlite(p) = pool {
        legacy_columns(p).await?;
    }
    let ran = match pool {
        Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
        Pool::Pg(p) => PG_MIGRATIONS.run(p).await,
    };
    ran.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(found) => StoreError::Schema { found, known },
        e => StoreError::Migrate(e.to_string()),
    })
}

/// Opens (creating if missing) a SQLite file, private to this user.
async fn open_sqlite(path: &Path) -> Result<SqlitePool, StoreError> {
    secure_files(path).await?;
    let opts = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // Deleted and overwritten content (a migrated plain secret) is
        // zeroed, not left in free pages.
        .pragma("secure_delete", "ON")
        .busy_timeout(Duration::from_secs(10));
    Ok(SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await?)
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

/// How long a query waits for a connection to the database before it
/// fails (PostgreSQL away): short, so a node without its database answers
/// from cached state quickly instead of hanging flows.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Store {
    /// Opens the store at `location`, creating a SQLite file if missing,
    /// and brings its schema to this build's version.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the database cannot be reached,
    /// [`StoreError::Schema`] when it is newer than this build, and the
    /// file or database failure otherwise.
    pub async fn open(location: &Location) -> Result<Self, StoreError> {
        let pool = match location {
            Location::Sqlite(path) => Pool::Sqlite(open_sqlite(path).await?),
            Location::Postgres(url) => {
                let opts = PgConnectOptions::from_str(url)?.application_name("burrow-edge");
                let unreachable = |e: sqlx::Error| StoreError::Connect {
                    location: location.to_string(),
                    reason: e.to_string(),
                };
                // One connection first, for its own error (refused, no such
                // database, password refused); the pool's is a timeout.
                opts.connect().await.map_err(unreachable)?.close().await?;
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(opts)
                    .await
                    .map_err(unreachable)?;
                Pool::Pg(pool)
            }
        };
        migrate(&pool).await?;
        // Every account has a default virtual network, as in Cloudflare's.
        // Nodes opening a new database together: the first insert wins,
        // the others' (which saw no row yet) do nothing.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        let store = Self { pool };
        on_pool!(store, p => {
            sqlx::query(
                "INSERT INTO vnets (id, name, is_default, comment, created_at) \
                 SELECT $1, $2, TRUE, 'created with the store', $3 \
                 WHERE NOT EXISTS (SELECT 1 FROM vnets) ON CONFLICT DO NOTHING",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(DEFAULT_VNET)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected()
        });
        store.migrate_secrets().await?;
        Ok(store)
    }

    /// Every row `sql` selects, mapped by its `FromRow`.
    pub(crate) async fn all<T>(&self, sql: &'static str) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        Ok(on_pool!(self, p => sqlx::query_as::<_, T>(sql).fetch_all(p).await?))
    }

    /// The row `sql` selects with one key, if any.
    pub(crate) async fn one<T>(
        &self,
        sql: &'static str,
        key: String,
    ) -> Result<Option<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        Ok(on_pool!(self, p => sqlx::query_as::<_, T>(sql).bind(key).fetch_optional(p).await?))
    }

    /// Runs a one-parameter `DELETE` or `UPDATE`; whether a row changed.
    pub(crate) async fn changed(&self, sql: &'static str, key: String) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(sql).bind(key).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Which engine this store runs on: `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Pg(_) => "postgres",
        }
    }

    /// The PostgreSQL pool, for what only PostgreSQL offers (change
    /// notifications); `None` on SQLite.
    pub fn postgres(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Pg(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }

    /// Hashes tunnel and device secrets that an older build stored as
    /// they are. Idempotent.
    async fn migrate_secrets(&self) -> Result<(), StoreError> {
        for table in ["tunnels", "devices"] {
            let select = format!("SELECT id, secret FROM {table}");
            let rows: Vec<(String, Vec<u8>)> =
                on_pool!(self, p => sqlx::query_as(&select).fetch_all(p).await?);
            let mut n = 0;
            for (id, raw) in rows {
                if secret::is_hashed(&raw) {
                    continue;
                }
                let update = format!("UPDATE {table} SET secret = $1 WHERE id = $2");
                on_pool!(self, p => {
                    sqlx::query(&update)
                        .bind(secret::hash(&raw))
                        .bind(&id)
                        .execute(p)
                        .await?
                        .rows_affected()
                });
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

    /// SQLite: copies the write-ahead log into the database file and
    /// empties it, so replaced content (a secret migrated to its hash) is
    /// gone from both files. PostgreSQL: nothing.
    ///
    /// # Errors
    /// On database failure.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if let Pool::Sqlite(p) = &self.pool {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(p)
                .await?;
        }
        Ok(())
    }

    /// Whether the database answers now.
    pub async fn ping(&self) -> bool {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.is_ok())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, p => p.close().await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first four bytes of version 1's checksum (SHA-384 of the file).
    const FIRST_SQLITE_CHECKSUM_PREFIX: [u8; 4] = [40, 9, 74, 143];

    fn temp_db() -> Location {
        let dir = std::env::temp_dir().join(format!("burrow-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Location::Sqlite(dir.join("s.db"))
    }

    fn sqlite_pool(s: &Store) -> &SqlitePool {
        match &s.pool {
            Pool::Sqlite(p) => p,
            Pool::Pg(_) => panic!("not SQLite"),
        }
    }

    async fn version(s: &Store) -> i64 {
        on_pool!(s, p => sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(p)
            .await
            .unwrap())
    }

    /// A throwaway PostgreSQL and a store on it.
    async fn on_postgres() -> (burrow_testpg::Pg, Store) {
        let pg = burrow_testpg::Pg::start()
            .unwrap_or_else(|why| panic!("PostgreSQL for the store tests: {why}"));
        let s = Store::open(&Location::parse(&pg.url).unwrap())
            .await
            .unwrap();
        (pg, s)
    }

    #[test]
    fn locations_parse_and_never_show_a_password() {
        assert_eq!(
            Location::parse("edge.db").unwrap(),
            Location::Sqlite("edge.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:/var/lib/burrow/edge.db").unwrap(),
            Location::Sqlite("/var/lib/burrow/edge.db".into())
        );
        let pg =
            Location::parse("postgres://burrow:s3cret@db.internal:5432/burrow?sslmode=require")
                .unwrap();
        assert_eq!(
            pg.to_string(),
            "postgres://burrow:***@db.internal:5432/burrow?sslmode=require"
        );
        assert_eq!(format!("{pg:?}"), pg.to_string());
        let q = Location::parse("postgresql://db/burrow?user=b&password=s3cret").unwrap();
        assert!(!q.to_string().contains("s3cret"), "{q}");
        let err = Location::parse("mysql://db/burrow").unwrap_err();
        assert!(
            err.contains("mysql") && err.contains("postgres://"),
            "{err}"
        );
        assert!(Location::parse("sqlite:").is_err());
        let err = Location::parse("postgres://u:s3cret@db:notaport/x").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn both_engines_have_the_same_schema_versions_and_old_ones_stay_as_shipped() {
        let versions = |m: &sqlx::migrate::Migrator| -> Vec<(i64, String)> {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect()
        };
        assert_eq!(versions(&SQLITE_MIGRATIONS), versions(&PG_MIGRATIONS));
        // State files in the field recorded this checksum of version 1;
        // an edit would make every one of them refuse to open.
        let first = SQLITE_MIGRATIONS.iter().next().unwrap();
        assert_eq!(first.checksum[..4], FIRST_SQLITE_CHECKSUM_PREFIX);
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
        .execute(sqlite_pool(&s))
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
            let Location::Sqlite(path) = &db else {
                unreachable!()
            };
            let opts = SqliteConnectOptions::from_str("sqlite://")
                .unwrap()
                .filename(path)
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
    async fn vnets_and_ip_routes_on_sqlite() {
        let db = temp_db();
        let s = Store::open(&db).await.unwrap();
        // A new store has exactly one vnet, the default; reopening adds none.
        s.close().await;
        vnets_and_ip_routes(&Store::open(&db).await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn nodes_opening_a_new_database_together_all_start_and_agree() {
        let pg = burrow_testpg::Pg::start().unwrap();
        // Fresh databases, each opened by eight nodes at once.
        for round in 0..5 {
            pg.psql(&format!("CREATE DATABASE r{round}")).unwrap();
            let url = pg.url.replace("/postgres", &format!("/r{round}"));
            let loc = Location::parse(&url).unwrap();
            let opens = (0..8).map(|_| {
                let loc = loc.clone();
                tokio::spawn(async move { Store::open(&loc).await })
            });
            let opened = futures_util::future::join_all(opens).await;
            for o in &opened {
                let o = o.as_ref().unwrap();
                assert!(o.is_ok(), "{:?}", o.as_ref().err().map(ToString::to_string));
            }
            let s = opened.into_iter().next().unwrap().unwrap().unwrap();
            assert_eq!(s.vnets().await.unwrap().len(), 1, "one default vnet");
        }
    }

    #[tokio::test]
    async fn vnets_and_ip_routes_on_postgres() {
        let (pg, s) = on_postgres().await;
        s.close().await;
        vnets_and_ip_routes(
            &Store::open(&Location::parse(&pg.url).unwrap())
                .await
                .unwrap(),
        )
        .await;
    }

    async fn vnets_and_ip_routes(s: &Store) {
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
    async fn tunnels_apps_connections_users_on_sqlite() {
        round_trip(&Store::open(&temp_db()).await.unwrap()).await;
    }

    #[tokio::test]
    async fn tunnels_apps_connections_users_on_postgres() {
        let (_pg, s) = on_postgres().await;
        round_trip(&s).await;
        // A second node opening the migrated database finds it current.
        assert_eq!(version(&s).await, schema_version());
    }

    async fn round_trip(s: &Store) {
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
            wire: 2,
            kx: "X25519MLKEM768".into(),
        };
        s.add_connection(&c).await.unwrap();
        assert_eq!(s.connections(t.id, 10).await.unwrap().len(), 1);
        assert_eq!(s.connections(t.id, 11).await.unwrap().len(), 0);
        s.prune_connections("n2").await.unwrap();
        assert_eq!(s.connections(t.id, 0).await.unwrap().len(), 1);
        s.prune_connections("n1").await.unwrap();
        assert_eq!(s.connections(t.id, 0).await.unwrap().len(), 0);
        assert!(s.delete_tunnel(t.id).await.unwrap());
        assert!(s.apps().await.unwrap().is_empty());
        // Membership: connections count while their node's lease holds.
        let node = |id: &str, renewed_at_ms: i64| Node {
            id: id.into(),
            colo: "NRT".into(),
            tunnel_addr: "127.0.0.2:7844".into(),
            app_ipv4: "127.0.0.2".into(),
            app_ipv6: String::new(),
            version: "x".into(),
            started_at: 1,
            renewed_at_ms,
            lease_ms: 6_000,
        };
        s.renew_node(&node("n1", 100_000)).await.unwrap();
        s.add_connection(&Connection {
            id: uuid::Uuid::new_v4(),
            node_id: "n1".into(),
            ..c.clone()
        })
        .await
        .unwrap();
        let live = s.live_connections(t.id, 106_000).await.unwrap();
        assert_eq!(
            (live.len(), live[0].wire),
            (1, 2),
            "one, speaking version 2"
        );
        assert_eq!(s.live_connections(t.id, 106_001).await.unwrap().len(), 0);
        s.renew_node(&node("n1", 200_000)).await.unwrap();
        assert_eq!(s.nodes().await.unwrap().len(), 1, "renewed, not added");
        assert!(s.nodes().await.unwrap()[0].live_at(205_000));
        assert_eq!(
            s.singleton(7, async { s.prune_nodes(150_000).await })
                .await
                .unwrap(),
            Some(0)
        );
        // A row of a node that never had a lease (an older build's).
        s.add_connection(&Connection {
            id: uuid::Uuid::new_v4(),
            node_id: "before-leases".into(),
            ..c.clone()
        })
        .await
        .unwrap();
        assert_eq!(s.prune_nodes(300_000).await.unwrap(), 1);
        assert!(s.nodes().await.unwrap().is_empty());
        assert!(
            s.connections(t.id, 0).await.unwrap().is_empty(),
            "its connections went too"
        );
        // Users with groups (a JSON list), devices with a flag.
        let u = User {
            email: "ana@example.com".into(),
            groups: vec!["eng".into(), "ops".into()],
            created_at: 1,
        };
        s.create_user(&u).await.unwrap();
        assert!(matches!(
            s.create_user(&u).await,
            Err(StoreError::Exists { .. })
        ));
        assert_eq!(s.user(&u.email).await.unwrap().unwrap().groups, u.groups);
        let d = Device {
            id: uuid::Uuid::new_v4(),
            user_email: u.email.clone(),
            name: "laptop".into(),
            secret: vec![7; 32],
            revoked: false,
            created_at: 2,
        };
        s.create_device(&d).await.unwrap();
        assert!(!s.device(d.id).await.unwrap().unwrap().revoked);
        assert!(s.revoke_device(d.id).await.unwrap());
        let back = s.device(d.id).await.unwrap().unwrap();
        assert!(back.revoked && secret::verify(&back.secret, &[7; 32]));
        assert!(s.delete_user(&u.email).await.unwrap());
        assert!(s.devices().await.unwrap().is_empty());
    }
}

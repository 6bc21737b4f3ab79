//! How a node learns that another one committed a change: on PostgreSQL a
//! `NOTIFY` on [`CHANNEL`] carrying the [`Change`], on SQLite (edges of one
//! host sharing a file) a one-row mark every change rewrites, read once a
//! second. Either way the follower holds a [`Changes`] feed and, whenever
//! it (re)subscribes, reads the whole state once, so nothing said while it
//! was away is missed.

use crate::{Pool, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "burrow_changes";

/// Meta key whose value every change rewrites (SQLite's feed).
const MARK: &str = "generation";

/// How often a SQLite feed reads the mark.
const SQLITE_POLL: Duration = Duration::from_secs(1);

/// A committed change, as announced to the other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Node that committed it.
    pub node: String,
    /// What changed: the admin API's resource (`apps`, `devices`,
    /// `policies`, ...), or `*` when unknown (anything may have).
    pub what: String,
}

/// A subscription to other nodes' changes.
pub struct Changes(Feed);

enum Feed {
    Pg(Box<sqlx::postgres::PgListener>),
    Sqlite {
        store: Store,
        seen: Option<String>,
        tick: tokio::time::Interval,
    },
}

impl Store {
    /// Tells the other nodes that `change` committed.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn announce(&self, change: &Change) -> Result<(), StoreError> {
        let payload = serde_json::to_string(change).expect("a change serializes");
        match &self.pool {
            Pool::Pg(p) => {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(&payload)
                    .execute(p)
                    .await?;
            }
            Pool::Sqlite(_) => {
                // A fresh value every time, so two equal changes differ.
                let mark = format!("{}|{payload}", uuid::Uuid::new_v4());
                self.set_meta(MARK, &mark).await?;
            }
        }
        Ok(())
    }

    /// Subscribes to the changes other nodes announce. Read the whole
    /// state after this returns: what was announced before is not
    /// replayed.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn changes(&self) -> Result<Changes, StoreError> {
        Ok(Changes(match &self.pool {
            Pool::Pg(p) => {
                let mut l = sqlx::postgres::PgListener::connect_with(p).await?;
                // Lost connections are reported (`Ok(None)`), not hidden.
                l.ignore_pool_close_event(false);
                l.listen(CHANNEL).await?;
                Feed::Pg(Box::new(l))
            }
            Pool::Sqlite(_) => {
                let mut tick = tokio::time::interval(SQLITE_POLL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Feed::Sqlite {
                    store: self.clone(),
                    seen: self.meta(MARK).await?,
                    tick,
                }
            }
        }))
    }
}

impl Changes {
    /// The next change. `Ok(None)`: the subscription is lost (the database
    /// went away); subscribe again and read the whole state.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn next(&mut self) -> Result<Option<Change>, StoreError> {
        match &mut self.0 {
            Feed::Pg(l) => loop {
                let Some(n) = l.try_recv().await? else {
                    return Ok(None);
                };
                match serde_json::from_str(n.payload()) {
                    Ok(c) => return Ok(Some(c)),
                    Err(e) => {
                        tracing::warn!(error = %e, "ignored a malformed change notification");
                    }
                }
            },
            Feed::Sqlite { store, seen, tick } => loop {
                tick.tick().await;
                let now = store.meta(MARK).await?;
                if now != *seen {
                    *seen = now;
                    // Several changes between two reads look like one.
                    let what = seen
                        .as_deref()
                        .and_then(|m| m.split_once('|'))
                        .and_then(|(_, c)| serde_json::from_str::<Change>(c).ok());
                    return Ok(Some(Change {
                        node: what.map(|c| c.node).unwrap_or_default(),
                        what: "*".into(),
                    }));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn one_change_arrives(a: &Store, b: &Store) {
        let mut feed = b.changes().await.unwrap();
        let change = Change {
            node: "NRT-1".into(),
            what: "apps".into(),
        };
        a.announce(&change).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(3), feed.next())
            .await
            .expect("a change within 3 s")
            .unwrap()
            .unwrap();
        assert_eq!(got.node, "NRT-1");
        assert!(got.what == "apps" || got.what == "*", "{got:?}");
    }

    #[tokio::test]
    async fn a_change_reaches_another_handle_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("burrow-store-{}", uuid::Uuid::new_v4()));
        let loc = crate::Location::Sqlite(dir.join("s.db"));
        let (a, b) = (
            Store::open(&loc).await.unwrap(),
            Store::open(&loc).await.unwrap(),
        );
        one_change_arrives(&a, &b).await;
    }

    #[tokio::test]
    async fn a_change_reaches_another_handle_on_postgres_and_a_lost_database_is_reported() {
        let pg = burrow_testpg::Pg::start().unwrap();
        let loc = crate::Location::parse(&pg.url).unwrap();
        let (a, b) = (
            Store::open(&loc).await.unwrap(),
            Store::open(&loc).await.unwrap(),
        );
        one_change_arrives(&a, &b).await;
        let mut feed = b.changes().await.unwrap();
        pg.set_running(false).unwrap();
        let lost = tokio::time::timeout(Duration::from_secs(5), feed.next())
            .await
            .expect("reported within 5 s");
        assert!(matches!(lost, Ok(None) | Err(_)), "{lost:?}");
        assert!(
            b.changes().await.is_err(),
            "subscribed to a stopped database"
        );
        pg.set_running(true).unwrap();
        one_change_arrives(&a, &b).await;
    }
}

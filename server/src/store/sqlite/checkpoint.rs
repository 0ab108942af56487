//! WAL checkpoints off the commit path.
//!
//! By default SQLite checkpoints inside the `COMMIT` that takes the WAL past
//! 1,000 pages: that commit copies the pages into the database file and
//! fsyncs both files. Under load that commit is the group-commit writer's,
//! and every write queued behind it waits: on this project's machine those
//! fsyncs took 90 to 580 ms (`perf trace` on the server under
//! `zkid-loadgen`), which was the submit-to-outcome p99 at 64 sessions in
//! flight. So the store turns automatic checkpoints off on its connections
//! and this task runs a `PASSIVE` checkpoint every [`INTERVAL`] on a pool
//! connection of its own. A passive checkpoint never blocks readers or
//! writers (they go on appending to the WAL while it copies and fsyncs), so
//! a slow fsync delays only the checkpoint.
//!
//! Durability is unchanged: with `synchronous = NORMAL` a commit was never
//! fsynced by its own `COMMIT`; the WAL is fsynced by each checkpoint, as
//! before, and SQLite still checkpoints when the last connection closes.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use sqlx::SqlitePool;

/// How often the WAL is checkpointed.
pub(super) const INTERVAL: Duration = Duration::from_millis(500);

/// Keeps the checkpointer running; it stops within [`INTERVAL`] once the
/// last clone is dropped or the pool is closed.
#[derive(Debug, Clone)]
pub(super) struct Checkpointer {
    _alive: Arc<()>,
}

impl Checkpointer {
    /// Starts checkpointing `pool`'s database, whose connections must have
    /// `wal_autocheckpoint = 0`.
    pub(super) fn start(pool: SqlitePool) -> Self {
        let alive = Arc::new(());
        tokio::spawn(run(pool, Arc::downgrade(&alive)));
        Self { _alive: alive }
    }
}

async fn run(pool: SqlitePool, alive: Weak<()>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if alive.strong_count() == 0 || pool.is_closed() {
            return;
        }
        // Errors (a closed pool racing this tick, a full disk) are logged;
        // the next tick tries again, and the WAL only grows meanwhile.
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if !pool.is_closed() {
                tracing::warn!(%error, "WAL checkpoint failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqliteConnectOptions;

    use super::super::SqliteStore;
    use super::*;

    #[tokio::test]
    async fn committed_writes_reach_the_database_file_without_a_commit_checkpointing() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("zkid.sqlite3");
        let store = SqliteStore::open(&path).await.expect("store");
        let automatic: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&store.pool)
            .await
            .expect("pragma");
        assert_eq!(automatic, 0, "no commit checkpoints");
        sqlx::query("CREATE TABLE probe (x INTEGER)")
            .execute(&store.pool)
            .await
            .expect("create");
        sqlx::query("INSERT INTO probe VALUES (7)")
            .execute(&store.pool)
            .await
            .expect("insert");
        // An immutable connection reads the database file alone, not the
        // WAL: the row shows there only once a checkpoint copied it.
        let file_only = SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .immutable(true);
        let deadline = tokio::time::Instant::now() + INTERVAL * 10;
        loop {
            let pool = SqlitePool::connect_with(file_only.clone())
                .await
                .expect("read the file");
            let rows: Option<i64> = sqlx::query_scalar("SELECT COUNT(*) FROM probe")
                .fetch_one(&pool)
                .await
                .ok();
            pool.close().await;
            if rows == Some(1) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no checkpoint within {:?}",
                INTERVAL * 10
            );
            tokio::time::sleep(INTERVAL / 5).await;
        }
        store.close().await;
    }
}

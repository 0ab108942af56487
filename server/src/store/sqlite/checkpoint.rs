//! WAL checkpoints off the commit path.
//!
//! By default SQLite checkpoints inside the `COMMIT` that takes the WAL past
//! 1,000 pages: that commit copies the pages into the database file and
//! fsyncs both files. Under load that commit is the group-commit writer's,
//! and every write queued behind it waits: on this project's machine those
//! fsyncs took 90 to 580 ms (`perf trace` on the server under
//! `zkid-loadgen`), which was the submit-to-outcome p99 at 64 sessions in
//! flight. So the store turns automatic checkpoints off on its connections
//! and this task checkpoints every [`INTERVAL`] on a pool connection of its
//! own, in two steps:
//!
//! 1. `PASSIVE` copies what the WAL holds into the database file and
//!    fsyncs it, blocking no reader and no writer: the bulk of the work,
//!    and the slow fsync, happen beside the writes.
//! 2. Writers go on appending during a passive checkpoint, so under load
//!    it never reaches the WAL's end, and SQLite only starts the WAL over
//!    after a checkpoint that did: without more, the WAL grew by about
//!    17 MB a second under `zkid-loadgen`. So once the WAL holds more than
//!    [`RESTART_FRAMES`], `RESTART` follows: it waits for the writer's
//!    current transaction and for readers of older snapshots (the busy
//!    timeout), copies the few frames appended since step 1, fsyncs, and
//!    makes the next writer start the WAL from its beginning. Writers wait
//!    for that short tail only.
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

/// WAL frames (pages) beyond which a checkpoint also restarts the WAL:
/// SQLite's own automatic threshold.
pub(super) const RESTART_FRAMES: i64 = 1000;

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
        // Errors (a closed pool racing this tick, a full disk, a busy
        // timeout) are logged; the next tick tries again, and the WAL only
        // grows meanwhile.
        if let Err(error) = checkpoint(&pool).await {
            if !pool.is_closed() {
                tracing::warn!(%error, "WAL checkpoint failed");
            }
        }
    }
}

/// One checkpoint: passive, then a restart if the WAL has grown long.
async fn checkpoint(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    // (busy, frames in the WAL, frames checkpointed)
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    if frames > RESTART_FRAMES {
        sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .execute(pool)
            .await?;
    }
    Ok(())
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_constant_writes_and_reads() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("zkid.sqlite3");
        let store = SqliteStore::open(&path).await.expect("store");
        sqlx::query("CREATE TABLE probe (x BLOB)")
            .execute(&store.pool)
            .await
            .expect("create");
        // A writer that never pauses and readers that always hold a
        // snapshot: a passive checkpoint alone never reaches the WAL's end.
        let until = tokio::time::Instant::now() + INTERVAL * 8;
        let writer = {
            let pool = store.pool.clone();
            tokio::spawn(async move {
                let mut pages = 0u64;
                while tokio::time::Instant::now() < until {
                    sqlx::query("INSERT INTO probe VALUES (randomblob(4000))")
                        .execute(&pool)
                        .await
                        .expect("insert");
                    pages += 1;
                }
                pages
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let pool = store.pool.clone();
                tokio::spawn(async move {
                    while tokio::time::Instant::now() < until {
                        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM probe")
                            .fetch_one(&pool)
                            .await
                            .expect("read");
                    }
                })
            })
            .collect();
        let pages = writer.await.expect("writer");
        for reader in readers {
            reader.await.expect("reader");
        }
        let wal = std::fs::metadata(dir.path().join("zkid.sqlite3-wal"))
            .expect("the WAL")
            .len();
        let written = pages * 4096;
        assert!(
            pages > 4 * RESTART_FRAMES as u64,
            "only {pages} pages written: too few to tell"
        );
        // Without the restarts the WAL outgrew what was written (151 MB
        // for 49 MB: every frame stays, index pages included); with them it
        // stayed at a fraction (at most 24 MB for 47 MB).
        assert!(
            wal < written,
            "the WAL grew to {wal} bytes for {written} written"
        );
        store.close().await;
    }
}

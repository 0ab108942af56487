//! Connections reserved for single-statement reads, checked out and back
//! without sqlx's pool.
//!
//! sqlx's pool pings every connection that goes back to it, in a task of
//! its own: a round trip to the connection's worker thread, there so that
//! a statement abandoned half-way cannot leave the connection unusable. A
//! session's hot path is seven or eight point reads (a credential per RPC,
//! the subject and its device, the session), so the ping doubled the
//! thread hand-offs of every one of them. A reserved reader needs none: it
//! runs one autocommit statement at a time, and sqlx's worker resets a
//! statement when its row iterator drops, on the worker's own thread and in
//! command order, whether the caller read every row or gave up waiting. No
//! transaction is ever begun on a reader, and the connections are opened
//! read-only, so none can be left holding a write lock.

use std::{
    ops::{Deref, DerefMut},
    sync::{Mutex, PoisonError},
};

use sqlx::{
    pool::PoolConnection, sqlite::SqliteConnectOptions, ConnectOptions, Connection, Sqlite,
    SqliteConnection,
};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::backend;
use crate::domain::StoreError;

/// How many reads run at once. The worker threads do microseconds of work
/// per point read; four keep two cores busy with room for a slow scan.
pub(super) const READERS: u32 = 4;

/// A fixed set of read-only connections to one database file.
pub(super) struct Readers {
    idle: Mutex<Vec<SqliteConnection>>,
    /// One permit per idle connection: a checkout waits here, never on the
    /// mutex, which is only held to push or pop.
    free: Semaphore,
    count: u32,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("free", &self.free.available_permits())
            .finish_non_exhaustive()
    }
}

impl Readers {
    /// Opens `count` read-only connections with `options` (the database,
    /// already in WAL mode and migrated, must exist).
    ///
    /// # Errors
    /// A connection cannot be opened.
    pub(super) async fn open(
        options: &SqliteConnectOptions,
        count: u32,
    ) -> Result<Self, StoreError> {
        let options = options.clone().read_only(true).create_if_missing(false);
        let mut connections = Vec::with_capacity(count as usize);
        for _ in 0..count {
            connections.push(options.connect().await.map_err(backend)?);
        }
        Ok(Self {
            idle: Mutex::new(connections),
            free: Semaphore::new(count as usize),
            count,
        })
    }

    /// Checks out a connection, waiting while all are in use.
    ///
    /// # Errors
    /// The readers are closed.
    pub(super) async fn get(&self) -> Result<Reader<'_>, StoreError> {
        let permit = self
            .free
            .acquire()
            .await
            .map_err(|_| StoreError::Backend("the store is closed".into()))?;
        let connection = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .ok_or_else(|| StoreError::Backend("reader checked out without a connection".into()))?;
        Ok(Reader {
            connection: Some(connection),
            readers: self,
            _permit: permit,
        })
    }

    /// Waits for every reader to come back, then closes them. Later
    /// checkouts fail.
    pub(super) async fn close(&self) {
        let Ok(all) = self.free.acquire_many(self.count).await else {
            // Already closed.
            return;
        };
        self.free.close();
        let connections =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        drop(all);
        for connection in connections {
            if let Err(error) = connection.close().await {
                tracing::warn!(%error, "closing a reader connection failed");
            }
        }
    }
}

/// A checked-out reader; it goes back to the set when dropped.
pub(super) struct Reader<'a> {
    /// Present from checkout until drop.
    connection: Option<SqliteConnection>,
    readers: &'a Readers,
    // Released after `drop` has put the connection back.
    _permit: SemaphorePermit<'a>,
}

impl Deref for Reader<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.connection.as_ref().expect("present until drop")
    }
}

impl DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.connection.as_mut().expect("present until drop")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.readers
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(connection);
        }
    }
}

/// A connection for one read: a reserved reader, or, for a database that
/// readers cannot share (in memory), one from the pool.
pub(super) enum ReadConnection<'a> {
    Reserved(Reader<'a>),
    Pooled(PoolConnection<Sqlite>),
}

impl Deref for ReadConnection<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            Self::Reserved(reader) => reader,
            Self::Pooled(connection) => connection,
        }
    }
}

impl DerefMut for ReadConnection<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Self::Reserved(reader) => reader,
            Self::Pooled(connection) => connection,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_stream::StreamExt;

    use super::super::SqliteStore;
    use super::*;

    async fn file_store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("zkid.sqlite3"))
            .await
            .expect("store");
        (dir, store)
    }

    async fn probe_rows(connection: &mut SqliteConnection) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM probe")
            .fetch_one(connection)
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn a_reader_cannot_write() {
        let (_dir, store) = file_store().await;
        let error =
            sqlx::query("INSERT INTO tenants (id, display_name, created_at) VALUES (?, ?, ?)")
                .bind("t")
                .bind("T")
                .bind(1_i64)
                .execute(&mut *store.reader().await.expect("reader"))
                .await
                .expect_err("a read-only connection refuses writes");
        assert!(error.to_string().contains("readonly"), "{error}");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_read_leaves_no_snapshot_behind() {
        let (_dir, store) = file_store().await;
        sqlx::query(
            "CREATE TABLE probe AS WITH RECURSIVE n(x) AS \
             (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000) SELECT x FROM n",
        )
        .execute(&store.pool)
        .await
        .expect("probe table");

        // Every reader starts a scan and gives up after one row, with its
        // statement still open on the worker.
        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.push(store.reader().await.expect("reader"));
        }
        for reader in &mut readers {
            let mut rows = sqlx::query("SELECT x FROM probe").fetch(&mut **reader);
            rows.next().await.expect("a row").expect("row");
        }
        drop(readers);

        sqlx::query("INSERT INTO probe VALUES (0)")
            .execute(&store.pool)
            .await
            .expect("insert");
        // A statement left open would hold its read snapshot: that reader
        // would still count 20,000, and the WAL could not be truncated.
        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.push(store.reader().await.expect("reader"));
        }
        for reader in &mut readers {
            assert_eq!(probe_rows(reader).await, 20_001);
        }
        drop(readers);
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&store.pool)
            .await
            .expect("checkpoint");
        assert_eq!(busy, 0, "no reader holds the WAL");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_waits_for_readers_in_use_and_then_refuses_reads() {
        let (_dir, store) = file_store().await;
        let reader = store.reader().await.expect("reader");
        let closing = {
            let store = store.clone();
            tokio::spawn(async move { store.close().await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!closing.is_finished(), "close waits for the reader in use");
        drop(reader);
        tokio::time::timeout(Duration::from_secs(10), closing)
            .await
            .expect("close finishes once the reader is back")
            .expect("close");
        let error = store.reader().await.err().expect("closed");
        assert!(error.to_string().contains("closed"), "{error}");
    }
}

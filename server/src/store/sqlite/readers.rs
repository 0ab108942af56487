//! Connections for plain reads, held outside sqlx's pool.
//!
//! sqlx's pool pings every connection it takes back (`return_to_pool`), and
//! a SQLite connection's ping is a round trip to that connection's worker
//! thread: for a read of one statement, a second round trip, two more
//! context switches and a spawned task. A profile of the server at
//! saturation put that release at 2.7 % of its CPU on the runtime's
//! threads alone, before the worker threads' side and the context switches
//! (the server's switches per session fell by a quarter without it).
//!
//! The ping is there to notice a connection broken mid-protocol (a network
//! peer gone, a transaction left open by a cancelled caller). A reader here
//! runs single statements outside any transaction on a local file, and a
//! cancelled statement is finished and reset by the worker thread before it
//! takes the next command, so the next caller finds the connection as the
//! last left it, holding no snapshot that would keep a checkpoint waiting.
//!
//! Writes and transactions keep to sqlx's pool.

use std::{
    ops::{Deref, DerefMut},
    time::Duration,
};

use deadpool::unmanaged::{Object, Pool};
use sqlx::{
    pool::PoolConnection,
    sqlite::{SqliteConnectOptions, SqliteConnection},
    ConnectOptions, Connection, Sqlite, SqlitePool,
};

use super::backend;
use crate::domain::StoreError;

/// Readers of a database file. With sqlx's pool down to two connections,
/// the store keeps the five SQLite worker threads it had: five readers
/// beside three pooled connections cut the lookups' wait but slowed the
/// verifier's threads among eight, and the tail at 80 % of saturation grew
/// (`benches/RESULTS.md`, 2026-12-04 evening).
pub(super) const READERS: usize = 3;

/// How long a read waits for a free reader before it fails, as sqlx's pool
/// waits for a connection by default.
const READER_WAIT: Duration = Duration::from_secs(30);

/// Where reads get their connection.
#[derive(Debug, Clone)]
pub(super) enum Readers {
    /// Connections of their own to a database file.
    Own(Pool<SqliteConnection>),
    /// The pool's connections: an in-memory database lives in its one
    /// connection, so reads share it.
    Pooled(SqlitePool),
}

/// A connection lent for one read.
pub(super) enum Reader {
    Own(Object<SqliteConnection>),
    Pooled(PoolConnection<Sqlite>),
}

impl Readers {
    /// `count` connections of their own to the database `options` name.
    pub(super) async fn open(
        options: &SqliteConnectOptions,
        count: usize,
    ) -> Result<Self, StoreError> {
        let mut connections = Vec::with_capacity(count);
        for _ in 0..count {
            connections.push(options.connect().await.map_err(backend)?);
        }
        Ok(Self::Own(Pool::from(connections)))
    }

    /// A connection for one read.
    pub(super) async fn get(&self) -> Result<Reader, StoreError> {
        match self {
            Self::Own(pool) => match tokio::time::timeout(READER_WAIT, pool.get()).await {
                Ok(Ok(connection)) => Ok(Reader::Own(connection)),
                Ok(Err(error)) => Err(StoreError::Backend(format!("database reader: {error}"))),
                Err(_) => Err(StoreError::Backend(
                    "timed out waiting for a database reader".into(),
                )),
            },
            Self::Pooled(pool) => pool.acquire().await.map(Reader::Pooled).map_err(backend),
        }
    }

    /// Closes the idle readers and refuses further reads. A reader lent out
    /// now is dropped, closing its connection, when its read ends.
    pub(super) async fn close(&self) {
        if let Self::Own(pool) = self {
            while let Ok(connection) = pool.try_remove() {
                // A reader holds no transaction: closing it cannot lose a
                // write, and an error here leaves nothing to undo.
                let _ = connection.close().await;
            }
            pool.close();
        }
    }
}

impl Deref for Reader {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            Self::Own(connection) => connection,
            Self::Pooled(connection) => connection,
        }
    }
}

impl DerefMut for Reader {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Self::Own(connection) => connection,
            Self::Pooled(connection) => connection,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_file(dir: &tempfile::TempDir) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(dir.path().join("readers.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
    }

    #[tokio::test]
    async fn readers_see_what_the_pool_committed_and_are_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = wal_file(&dir);
        let pool = SqlitePool::connect_with(options.clone())
            .await
            .expect("pool");
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&pool)
            .await
            .expect("create");
        let readers = Readers::open(&options, 2).await.expect("readers");
        for x in 1..=5_i64 {
            sqlx::query("INSERT INTO t (x) VALUES (?)")
                .bind(x)
                .execute(&pool)
                .await
                .expect("insert");
            let mut reader = readers.get().await.expect("reader");
            let sum: i64 = sqlx::query_scalar("SELECT SUM(x) FROM t")
                .fetch_one(&mut *reader)
                .await
                .expect("sum");
            assert_eq!(sum, x * (x + 1) / 2, "a reader sees every commit");
        }
        let Readers::Own(own) = &readers else {
            panic!("a file's readers are their own");
        };
        let status = own.status();
        assert_eq!(
            (status.size, status.available),
            (2, 2),
            "readers go back, none is lost"
        );
        readers.close().await;
        assert!(readers.get().await.is_err(), "a closed pool lends nothing");
    }

    #[tokio::test]
    async fn a_read_dropped_midway_leaves_its_reader_usable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let readers = Readers::open(&wal_file(&dir), 1).await.expect("readers");
        {
            let mut reader = readers.get().await.expect("reader");
            // A statement long enough to be dropped while the worker runs it.
            let slow = sqlx::query_scalar::<_, i64>(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) \
                 SELECT SUM(i) FROM n",
            )
            .fetch_one(&mut *reader);
            let outcome = tokio::time::timeout(Duration::from_millis(5), slow).await;
            assert!(outcome.is_err(), "the read was dropped before it ended");
        }
        let mut reader = readers.get().await.expect("the reader came back");
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut *reader)
            .await
            .expect("the next read runs");
        assert_eq!(one, 1);
    }
}

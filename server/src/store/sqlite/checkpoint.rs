//! WAL checkpoints off the commit path, with a WAL that stays bounded.
//!
//! By default SQLite checkpoints inside the `COMMIT` that takes the WAL past
//! 1,000 pages: that commit copies the pages into the database file and
//! fsyncs both files. Under load that commit is the group-commit writer's,
//! and every verdict queued behind it waits; on this project's machines an
//! fsync takes about 9 ms, and from time to time 90 to 580 ms, several times
//! a second under load. So the store's connections set
//! `wal_autocheckpoint = 0` and the work is split in two:
//!
//! - [`Checkpoints::passive_steps`] runs a `PASSIVE` checkpoint every
//!   [`PASSIVE_PAUSE`] on a pool connection of its own. It copies and
//!   fsyncs while the writer goes on appending: it blocks nobody.
//! - A passive checkpoint beside a writer that never pauses never reaches
//!   the WAL's end, and SQLite starts the WAL file over only after one that
//!   did, so on its own the WAL grows without bound (a measured 17 MB a
//!   second). Once the WAL holds [`RESTART_FRAMES`] frames, the group-commit
//!   writer itself, between two groups, runs a `RESTART` checkpoint
//!   ([`Checkpoints::restart_if_due`]): it copies only what was appended
//!   since the last passive step, waits for the readers of the old WAL
//!   (short transactions) and starts the WAL over. The writer pauses for
//!   that remainder, once per [`RESTART_FRAMES`] frames, instead of for a
//!   whole checkpoint once per 1,000.
//!
//! Durability is unchanged: with `synchronous = NORMAL` a commit was never
//! fsynced by its own `COMMIT`; checkpoints fsync the WAL and the database,
//! as before, and SQLite still checkpoints when the last connection closes.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Weak,
    },
    time::{Duration, Instant},
};

use sqlx::SqlitePool;
use tokio::sync::Mutex;

/// The pause between two passive checkpoints. Short, so that what a
/// restart still has to copy is little.
pub(super) const PASSIVE_PAUSE: Duration = Duration::from_millis(50);

/// WAL frames (pages of 4 KiB) after which the writer starts the WAL over:
/// about 32 MiB of WAL, a restart every two to three seconds at
/// saturation.
pub(super) const RESTART_FRAMES: u64 = 8192;

/// Beyond this many times the restart threshold a restart waits for
/// readers as long as any other statement would (the connection's busy
/// timeout), whatever it costs the writes queued meanwhile: the WAL must
/// not fill the disk.
const MUST_RESTART_FACTOR: u64 = 4;

/// How long a due restart waits for readers of the old WAL before it gives
/// up until [`RETRY_AFTER`].
const READER_WAIT_MS: u32 = 20;

/// The least time between two restart attempts that found readers.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// The connections' busy timeout, restored after a restart's shorter one.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Checkpoint state shared by the passive task and the writer.
#[derive(Debug)]
pub(super) struct Checkpoints {
    /// Held by whichever checkpoint runs, so that a restart never waits
    /// in SQLite's busy handler (which sleeps in steps of up to 100 ms)
    /// for a passive one.
    running: Mutex<()>,
    /// Frames in the WAL after the last checkpoint.
    wal_frames: AtomicU64,
    /// When a restart last found readers of the old WAL.
    last_refused: std::sync::Mutex<Option<Instant>>,
    /// [`RESTART_FRAMES`], but for tests.
    restart_frames: u64,
}

impl Checkpoints {
    /// The checkpoint state of a database whose connections have
    /// `wal_autocheckpoint = 0`. [`RESTART_FRAMES`] is the production
    /// threshold; tests pass less.
    pub(super) fn new(restart_frames: u64) -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::new(()),
            wal_frames: AtomicU64::new(0),
            last_refused: std::sync::Mutex::new(None),
            restart_frames: restart_frames.max(1),
        })
    }

    /// The passive checkpoints of `pool`'s database, one every
    /// [`PASSIVE_PAUSE`], until this handle and its clones are dropped or
    /// the pool is closed. The group-commit writer runs them on its own
    /// runtime: they are what tells it the WAL's size, and on the shared
    /// runtime, under load, they fell behind a writer that is not there.
    pub(super) fn passive_steps(
        self: &Arc<Self>,
        pool: SqlitePool,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        passive(pool, Arc::downgrade(self))
    }

    /// Frames in the WAL as of the last checkpoint.
    pub(super) fn wal_frames(&self) -> u64 {
        self.wal_frames.load(Ordering::Relaxed)
    }

    /// Starts the WAL over if it has grown past [`RESTART_FRAMES`]. For the
    /// group-commit writer, between groups: it is the one connection that
    /// appends under load, so while it runs this nothing appends.
    pub(super) async fn restart_if_due(&self, pool: &SqlitePool) {
        let frames = self.wal_frames();
        if frames < self.restart_frames {
            return;
        }
        let must = frames >= self.restart_frames.saturating_mul(MUST_RESTART_FACTOR);
        if !must {
            let last_refused = *self
                .last_refused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last_refused.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
                return;
            }
        }
        // A passive step in progress would make the writer wait for its
        // fsyncs: unless the WAL must shrink now, try again after the next
        // group.
        let _running = match self.running.try_lock() {
            Ok(guard) => guard,
            Err(_) if must => self.running.lock().await,
            Err(_) => return,
        };
        match restart(pool, must).await {
            Ok(Outcome { restarted, frames }) => {
                self.wal_frames.store(frames, Ordering::Relaxed);
                *self
                    .last_refused
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    (!restarted).then(Instant::now);
            }
            Err(error) => {
                if !pool.is_closed() {
                    tracing::warn!(%error, "WAL restart failed");
                }
            }
        }
    }
}

/// What a checkpoint reported.
struct Outcome {
    /// The WAL was started over (or was empty).
    restarted: bool,
    /// Frames in the WAL afterwards.
    frames: u64,
}

async fn restart(pool: &SqlitePool, must: bool) -> Result<Outcome, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let reader_wait = if must {
        u32::try_from(BUSY_TIMEOUT.as_millis()).unwrap_or(u32::MAX)
    } else {
        READER_WAIT_MS
    };
    sqlx::query(&format!("PRAGMA busy_timeout = {reader_wait}"))
        .execute(&mut *conn)
        .await?;
    let result = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(RESTART)")
        .fetch_one(&mut *conn)
        .await;
    // Restored before the connection goes back to the pool, whatever the
    // checkpoint did.
    sqlx::query(&format!(
        "PRAGMA busy_timeout = {}",
        BUSY_TIMEOUT.as_millis()
    ))
    .execute(&mut *conn)
    .await?;
    let (busy, log, _copied) = result?;
    Ok(Outcome {
        // After a restart SQLite reports the WAL it just emptied as it was.
        restarted: busy == 0,
        frames: if busy == 0 {
            0
        } else {
            u64::try_from(log).unwrap_or(0)
        },
    })
}

async fn passive(pool: SqlitePool, checkpoints: Weak<Checkpoints>) {
    loop {
        tokio::time::sleep(PASSIVE_PAUSE).await;
        let Some(checkpoints) = checkpoints.upgrade() else {
            return;
        };
        if pool.is_closed() {
            return;
        }
        let _running = checkpoints.running.lock().await;
        // Errors (a closed pool racing this step, a full disk) are logged;
        // the next step tries again, and the WAL only grows meanwhile.
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            Ok((_busy, log, _copied)) => checkpoints
                .wal_frames
                .store(u64::try_from(log).unwrap_or(0), Ordering::Relaxed),
            Err(error) => {
                if !pool.is_closed() {
                    tracing::warn!(%error, "WAL checkpoint failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::super::SqliteStore;
    use super::*;
    use crate::domain::{
        audit::AuditEvent, keyring::KeyRing, model::Timestamp, AuditAppend, Store,
    };
    use crate::metrics::StoreMetrics;

    fn event(n: usize) -> AuditEvent {
        AuditEvent {
            tenant: "t".into(),
            actor_id: "server".into(),
            actor_role: "system".into(),
            action: "probe".into(),
            customer_ref: String::new(),
            session_id: format!("s{n}"),
            outcome: "ok".into(),
            detail: "x".repeat(1000),
            at: Timestamp(1_700_000_000 + i64::try_from(n).expect("small")),
        }
    }

    async fn try_audit_rows(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(pool)
            .await
    }

    async fn audit_rows(pool: &SqlitePool) -> i64 {
        try_audit_rows(pool).await.expect("count")
    }

    const WRITERS: usize = 16;
    const WRITES: usize = 250;
    /// Records appended by one run of [`grouped_writes`].
    const TOTAL: i64 = (WRITERS * WRITES) as i64;

    /// What one run of [`grouped_writes`] left behind.
    struct Run {
        /// The WAL file's size at the end: it keeps its largest size until
        /// the store closes.
        wal_bytes: u64,
        dir: tempfile::TempDir,
        store: SqliteStore,
    }

    /// 16 writers append 4,000 audit records through the group-commit
    /// writer while a reader counts them without pause, as RPCs read
    /// beside the writes: a restart must wait for readers, not skip
    /// forever.
    async fn grouped_writes(restart_frames: u64) -> Run {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("zkid.sqlite3");
        let store =
            SqliteStore::open_restarting_at(&path, restart_frames, StoreMetrics::unregistered())
                .await
                .expect("store");
        let automatic: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&store.pool)
            .await
            .expect("pragma");
        assert_eq!(automatic, 0, "no commit checkpoints");
        let keys = KeyRing::new(SigningKey::from_bytes(&[9; 32]), []);

        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let pool = store.pool.clone();
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    audit_rows(&pool).await;
                }
            })
        };
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                let keys = keys.clone();
                tokio::spawn(async move {
                    for i in 0..WRITES {
                        let events = [event(w * WRITES + i)];
                        store
                            .append_audit(AuditAppend {
                                events: &events,
                                keys: &keys,
                            })
                            .await
                            .expect("append");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        done.store(true, Ordering::Relaxed);
        reader.await.expect("reader");
        assert_eq!(audit_rows(&store.pool).await, TOTAL, "no write lost");
        let wal_bytes = std::fs::metadata(dir.path().join("zkid.sqlite3-wal"))
            .expect("WAL file")
            .len();
        Run {
            wal_bytes,
            dir,
            store,
        }
    }

    // Its 16 writers load both cores: beside the verifier's timing tests,
    // one skews the other (this test failed 3 of 8 full-suite runs, and
    // the batching test once in CI, before they were kept apart).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[serial_test::serial(timing)]
    async fn the_wal_stays_bounded_under_continuous_grouped_writes() {
        // How much the WAL outgrows the threshold depends on how many
        // frames are appended between two passive steps, that is on the
        // machine's speed; what does not is the comparison with the same
        // writes when nothing starts the WAL over.
        let appending = grouped_writes(u64::MAX).await;
        appending.store.close().await;
        let restarting = grouped_writes(64).await;
        assert!(
            restarting.wal_bytes * 3 <= appending.wal_bytes,
            "WAL of {} bytes, against {} bytes without restarts",
            restarting.wal_bytes,
            appending.wal_bytes
        );

        // The passive steps carry every commit into the database file:
        // an immutable connection reads the file alone, not the WAL. It
        // takes no locks, so while a passive step is still copying pages
        // into the file it may read a torn page and report the database
        // malformed; once every frame is copied, nothing writes the file
        // and the read is exact.
        let file_only = SqliteConnectOptions::new()
            .filename(restarting.dir.path().join("zkid.sqlite3"))
            .read_only(true)
            .immutable(true);
        let deadline = tokio::time::Instant::now() + PASSIVE_PAUSE * 40;
        loop {
            let pool = SqlitePool::connect_with(file_only.clone())
                .await
                .expect("read the file");
            let rows = try_audit_rows(&pool).await;
            pool.close().await;
            if rows.as_ref().is_ok_and(|rows| *rows == TOTAL) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the database file holds {rows:?} of {TOTAL} rows"
            );
            tokio::time::sleep(PASSIVE_PAUSE).await;
        }
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&restarting.store.pool)
            .await
            .expect("integrity check");
        assert_eq!(integrity, "ok", "the restarts left a sound database");
        restarting.store.close().await;
    }
}

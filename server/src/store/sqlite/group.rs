//! Group commit for the writes every verification makes: a session's
//! start, its push delivery and its resolution, each with its audit
//! records.
//!
//! Callers hand their write to one writer task, on a thread and runtime of
//! its own, and wait for its answer.
//! The writer takes every write queued at that moment (at most
//! [`MAX_GROUP`]) and applies them in one `BEGIN IMMEDIATE` transaction, in
//! arrival order, chaining their audit records after the log's last record;
//! it answers each caller only after that transaction committed, so no
//! caller goes on before its write is as durable as a write of its own
//! transaction would be. A lone write is applied
//! at once: the writer never waits for company, writes group only because
//! they queue while a transaction runs, that is, under load.
//!
//! Failure: if any write of a group fails (a constraint, a trigger, a full
//! disk) or the commit fails, the whole transaction is rolled back and each
//! of its writes is retried alone, in a transaction of its own, so that a
//! caller gets an error only if its own write fails on its own; no write is
//! dropped. A caller whose writer is gone gets an error, never a success.
//!
//! The audit chain: the writer reads the log's last record once per
//! transaction (it holds SQLite's write lock from `BEGIN IMMEDIATE`, so no
//! other connection or process can append meanwhile) and seals the group's
//! records one after the other in memory, then inserts them with one
//! multi-row statement. Writes outside the group (enrollment, revocation,
//! the admin CLI) take the same write lock and read the log's end
//! themselves, so the chain stays one chain.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{
    backend, checkpoint::Checkpoints, corrupt, hash32, insert_session_in, resolve_in, BEGIN_WRITE,
};
use crate::{
    domain::{
        audit::{AuditEvent, AuditRecord},
        keyring::KeyRing,
        model::{Resolution, Resolved, Session, SessionId},
        StoreError,
    },
    metrics::{observe, StoreMetrics},
};

/// The most writes one transaction takes.
pub(super) const MAX_GROUP: usize = 128;

/// Writes waiting for the writer before callers wait to queue.
const QUEUE: usize = 1024;

/// Audit rows per INSERT statement (14 parameters each, far below SQLite's
/// limit of 32,766).
const ROWS_PER_INSERT: usize = 64;

/// A write the writer applies.
#[derive(Debug)]
pub(super) enum Write {
    /// [`crate::domain::Store::insert_session`].
    InsertSession(Box<Session>, Vec<AuditEvent>),
    /// [`crate::domain::Store::resolve_session`].
    Resolve(SessionId, Box<Resolution>),
    /// [`crate::domain::Store::append_audit`].
    Append(Vec<AuditEvent>),
}

/// What a write returns.
#[derive(Debug)]
pub(super) enum Written {
    /// Stored.
    Done,
    /// The resolution, or `None` if its condition failed.
    Resolved(Option<Box<Resolved>>),
}

struct Job {
    write: Write,
    keys: KeyRing,
    reply: oneshot::Sender<Result<Written, StoreError>>,
    queued: Instant,
}

/// Counters of the group commit, since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupCommitStats {
    /// Writes committed (or failed) through the writer.
    pub writes: u64,
    /// Transactions that committed, grouped or alone.
    pub transactions: u64,
    /// Groups rolled back whose writes were retried alone.
    pub groups_retried: u64,
    /// The most writes one transaction committed.
    pub largest_group: u64,
    /// Writes waiting for the writer right now.
    pub queued: u64,
}

#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    transactions: AtomicU64,
    groups_retried: AtomicU64,
    largest_group: AtomicU64,
}

/// The handle callers queue writes on. Cloning shares the writer.
#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    counters: Arc<Counters>,
}

impl GroupCommit {
    /// Starts the writer on `pool`. It stops when the last handle is
    /// dropped.
    /// With `checkpoints`, the writer starts the WAL over between groups
    /// when it is due (module `checkpoint`).
    pub(super) fn start(
        pool: SqlitePool,
        checkpoints: Option<Arc<Checkpoints>>,
        metrics: StoreMetrics,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let passive = checkpoints
            .as_ref()
            .map(|checkpoints| checkpoints.passive_steps(pool.clone()));
        let writes = writer(pool, queue, Arc::clone(&counters), checkpoints, metrics);
        // The writer awaits the connection's worker thread several times
        // per group. On the shared runtime each of those wake-ups queues
        // behind every RPC task that is ready, and under load that queue,
        // not SQLite, made most of a resolution's commit time. On a
        // runtime of its own it runs as soon as its statement is done.
        // The passive checkpoints run beside it there (module
        // `checkpoint`). If the thread cannot start, the queue's receiver
        // is dropped and every write fails as "the writer stopped", which
        // is logged.
        let started = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|runtime| {
                std::thread::Builder::new()
                    .name("zkid-group-commit".into())
                    .spawn(move || {
                        if let Some(passive) = passive {
                            runtime.spawn(passive);
                        }
                        runtime.block_on(writes);
                    })
            });
        if let Err(error) = started {
            tracing::error!(%error, "could not start the group-commit writer");
        }
        Self { jobs, counters }
    }

    /// Applies `write` (sealing its audit records with `keys`) and returns
    /// once it committed.
    ///
    /// # Errors
    /// The write failed on its own, or the writer is gone.
    pub(super) async fn write(&self, write: Write, keys: &KeyRing) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            write,
            keys: keys.clone(),
            reply,
            queued: Instant::now(),
        };
        let gone = || StoreError::Backend("the group-commit writer stopped".into());
        self.jobs.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// The counters so far.
    pub(super) fn stats(&self) -> GroupCommitStats {
        let c = &self.counters;
        GroupCommitStats {
            writes: c.writes.load(Ordering::Relaxed),
            transactions: c.transactions.load(Ordering::Relaxed),
            groups_retried: c.groups_retried.load(Ordering::Relaxed),
            largest_group: c.largest_group.load(Ordering::Relaxed),
            queued: (self.jobs.max_capacity() - self.jobs.capacity()) as u64,
        }
    }
}

async fn writer(
    pool: SqlitePool,
    mut queue: mpsc::Receiver<Job>,
    counters: Arc<Counters>,
    checkpoints: Option<Arc<Checkpoints>>,
    metrics: StoreMetrics,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = queue.recv().await {
        group.push(first);
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        for job in &group {
            observe(
                &metrics.write_queue_wait,
                started.saturating_duration_since(job.queued),
            );
        }
        metrics.group_size.observe(group.len() as f64);
        commit_group(&pool, &mut group, &counters).await;
        observe(&metrics.group_commit, started.elapsed());
        if let Some(checkpoints) = &checkpoints {
            checkpoints.restart_if_due(&pool).await;
        }
    }
}

/// Commits `group` (emptying it) and answers every caller.
async fn commit_group(pool: &SqlitePool, group: &mut Vec<Job>, counters: &Counters) {
    counters
        .writes
        .fetch_add(group.len() as u64, Ordering::Relaxed);
    if group.len() > 1 {
        match together(pool, group).await {
            Ok(results) => {
                counters.transactions.fetch_add(1, Ordering::Relaxed);
                counters
                    .largest_group
                    .fetch_max(group.len() as u64, Ordering::Relaxed);
                for (job, result) in group.drain(..).zip(results) {
                    // A caller that gave up still had its write committed.
                    let _ = job.reply.send(Ok(result));
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, writes = group.len(), "group commit rolled back; retrying its writes one by one");
                counters.groups_retried.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    for job in group.drain(..) {
        let result = together(pool, std::slice::from_ref(&job))
            .await
            .and_then(|mut results| {
                results.pop().ok_or_else(|| {
                    StoreError::Backend("group commit returned no result for a write".into())
                })
            });
        if result.is_ok() {
            counters.transactions.fetch_add(1, Ordering::Relaxed);
            counters.largest_group.fetch_max(1, Ordering::Relaxed);
        }
        let _ = job.reply.send(result);
    }
}

/// The end of the audit log, as the next record chains to it.
struct LogEnd {
    seq: u64,
    hash: [u8; 32],
}

async fn log_end(conn: &mut SqliteConnection) -> Result<LogEnd, StoreError> {
    let last = sqlx::query("SELECT seq, leaf_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(match last {
        Some(row) => LogEnd {
            seq: u64::try_from(row.try_get::<i64, _>("seq").map_err(backend)?)
                .map_err(|_| corrupt("audit seq"))?,
            hash: hash32(row.try_get("leaf_hash").map_err(backend)?, "leaf hash")?,
        },
        None => LogEnd {
            seq: 0,
            hash: [0; 32],
        },
    })
}

/// A sealed record and its leaf hash.
type Sealed = (AuditRecord, [u8; 32]);

/// Seals `events` after `end`, moving it on.
fn seal(end: &mut LogEnd, events: Vec<AuditEvent>, keys: &KeyRing, out: &mut Vec<Sealed>) {
    for event in events {
        end.seq += 1;
        let record = AuditRecord::seal(end.seq, end.hash, event, keys);
        end.hash = record.hash();
        out.push((record, end.hash));
    }
}

/// Applies `jobs` in one transaction, in order; all or nothing.
async fn together(pool: &SqlitePool, jobs: &[Job]) -> Result<Vec<Written>, StoreError> {
    let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
    let mut end = log_end(&mut tx).await?;
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let written = match &job.write {
            Write::InsertSession(session, events) => {
                insert_session_in(&mut tx, session).await?;
                seal(&mut end, events.clone(), &job.keys, &mut records);
                Written::Done
            }
            Write::Resolve(id, resolution) => match resolve_in(&mut tx, id, resolution).await? {
                Some((resolved, events)) => {
                    seal(&mut end, events, &job.keys, &mut records);
                    Written::Resolved(Some(Box::new(resolved)))
                }
                None => Written::Resolved(None),
            },
            Write::Append(events) => {
                seal(&mut end, events.clone(), &job.keys, &mut records);
                Written::Done
            }
        };
        results.push(written);
    }
    for chunk in records.chunks(ROWS_PER_INSERT) {
        insert_records(&mut tx, chunk).await?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(results)
}

/// Inserts sealed records with one statement.
async fn insert_records(conn: &mut SqliteConnection, records: &[Sealed]) -> Result<(), StoreError> {
    let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
        "INSERT INTO audit_log (seq, prev_hash, at, tenant_id, actor_id, actor_role, action, \
           customer_ref, session_id, outcome, detail, leaf_hash, key_id, signature) ",
    );
    let mut rows = Vec::with_capacity(records.len());
    for (record, hash) in records {
        rows.push((
            i64::try_from(record.seq).map_err(|_| corrupt("audit seq"))?,
            record,
            hash,
        ));
    }
    insert.push_values(&rows, |mut row, (seq, record, hash)| {
        let e = &record.event;
        row.push_bind(*seq)
            .push_bind(record.prev.as_slice())
            .push_bind(e.at.0)
            .push_bind(e.tenant.as_str())
            .push_bind(e.actor_id.as_str())
            .push_bind(e.actor_role.as_str())
            .push_bind(e.action.as_str())
            .push_bind(e.customer_ref.as_str())
            .push_bind(e.session_id.as_str())
            .push_bind(e.outcome.as_str())
            .push_bind(e.detail.as_str())
            .push_bind(hash.as_slice())
            .push_bind(record.key_id.as_str())
            .push_bind(record.signature.as_slice());
    });
    insert.build().execute(&mut *conn).await.map_err(backend)?;
    Ok(())
}

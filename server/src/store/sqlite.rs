//! The SQLite store.

use std::{path::Path, str::FromStr, sync::Arc};

use async_trait::async_trait;
use sqlx::{
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
    Row, SqlitePool,
};

use crate::domain::{
    audit::{self, AuditEvent, AuditRecord, TreeHead},
    keyring::KeyRing,
    model::{
        AssuranceLevel, AttributeCommitment, ChangeId, ChangeKind, CredentialChange, CredentialId,
        CredentialRecord, Customer, CustomerRef, Device, DeviceId, DeviceStatus, FraudEvent,
        LockoutState, Resolution, Resolved, RevertTerms, Role, Scope, Session, SessionId,
        SessionState, SubjectKind, Tenant, TenantId, Timestamp,
    },
    AuditAppend, CustomerRegistration, DeviceEnrollment, RevertOutcome, StandingQuery,
    StartStanding, Store, StoreError,
};

/// Starts a transaction that holds SQLite's write lock from the start, so
/// that reading the log's last record and appending after it cannot
/// interleave with another writer.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

mod certificate;
mod checkpoint;
mod group;
mod readers;

pub use group::GroupCommitStats;
use group::{GroupCommit, Write, Written};
use readers::Readers;

use crate::metrics::StoreMetrics;

/// The SQLite implementation of [`Store`]. A session's start, its push
/// delivery and its resolution go through group commit ([`group`]): under
/// load, concurrent ones share a transaction.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    readers: Readers,
    group: GroupCommit,
}

fn backend(error: sqlx::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt row: {what}"))
}

/// Maps a failed insert: a taken unique key is a conflict over `what`,
/// anything else a backend failure.
fn conflict_over(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| {
        if error
            .as_database_error()
            .is_some_and(|e| e.is_unique_violation())
        {
            StoreError::Conflict(what)
        } else {
            backend(error)
        }
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`, in WAL
    /// mode, and applies pending migrations.
    ///
    /// # Errors
    /// The database cannot be opened or migrated.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_observed(path, StoreMetrics::unregistered()).await
    }

    /// [`SqliteStore::open`], observing the group commit in `metrics`.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub async fn open_observed(path: &Path, metrics: StoreMetrics) -> Result<Self, StoreError> {
        Self::open_restarting_at(path, checkpoint::RESTART_FRAMES, metrics).await
    }

    /// [`SqliteStore::open_observed`], starting the WAL over once it holds
    /// `restart_frames` pages (module `checkpoint`).
    async fn open_restarting_at(
        path: &Path,
        restart_frames: u64,
        metrics: StoreMetrics,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(checkpoint::BUSY_TIMEOUT)
            // Checkpoints run beside the commits, not inside one
            // (`checkpoint`).
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            // The group-commit writer, and one for the passive
            // checkpoints and the few writes outside group commit; reads
            // have connections of their own (`readers`).
            .max_connections(2)
            // A connection to a local file has nothing to test: sqlx's
            // default ping before each acquire costs a round trip to the
            // connection's worker thread on every statement.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        let checkpoints = checkpoint::Checkpoints::new(restart_frames);
        let readers = Readers::open(&options, readers::READERS).await?;
        Self::migrated(pool, readers, Some(checkpoints), metrics).await
    }

    /// A private in-memory database (for tests).
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(backend)?
            .foreign_keys(true);
        // One connection: each in-memory connection is its own database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(backend)?;
        // An in-memory database has no WAL, and lives in its one
        // connection: reads share it.
        let readers = Readers::Pooled(pool.clone());
        Self::migrated(pool, readers, None, StoreMetrics::unregistered()).await
    }

    async fn migrated(
        pool: SqlitePool,
        readers: Readers,
        checkpoints: Option<Arc<checkpoint::Checkpoints>>,
        metrics: StoreMetrics,
    ) -> Result<Self, StoreError> {
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        Ok(Self {
            group: GroupCommit::start(pool.clone(), checkpoints, metrics),
            readers,
            pool,
        })
    }

    /// The group commit's counters: writes, and the transactions they took.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.group.stats()
    }

    /// Closes the readers and the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.readers.close().await;
        self.pool.close().await;
    }
}

fn hash32(bytes: Vec<u8>, what: &str) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| corrupt(what))
}

fn opt_ts(value: Option<i64>) -> Option<Timestamp> {
    value.map(Timestamp)
}

fn credential_from(row: &SqliteRow) -> Result<CredentialRecord, StoreError> {
    let get = |e: sqlx::Error| backend(e);
    Ok(CredentialRecord {
        id: CredentialId::parse(&row.try_get::<String, _>("id").map_err(get)?)
            .map_err(|_| corrupt("credential id"))?,
        tenant: TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(get)?)
            .map_err(|_| corrupt("tenant id"))?,
        role: row
            .try_get::<String, _>("role")
            .map_err(get)?
            .parse::<Role>()
            .map_err(|_| corrupt("role"))?,
        scope: Scope::parse(&row.try_get::<String, _>("scope").map_err(get)?)
            .ok_or_else(|| corrupt("scope"))?,
        token_hash: hash32(row.try_get("token_hash").map_err(get)?, "token hash")?,
        customer: row
            .try_get::<Option<String>, _>("customer_ref")
            .map_err(get)?
            .map(|c| CustomerRef::parse(&c).map_err(|_| corrupt("customer_ref")))
            .transpose()?,
        device: row
            .try_get::<Option<String>, _>("device_id")
            .map_err(get)?
            .map(|d| DeviceId::parse(&d).map_err(|_| corrupt("device_id")))
            .transpose()?,
        label: row.try_get("label").map_err(get)?,
        created_at: Timestamp(row.try_get("created_at").map_err(get)?),
        expires_at: opt_ts(row.try_get("expires_at").map_err(get)?),
        used_at: opt_ts(row.try_get("used_at").map_err(get)?),
        revoked_at: opt_ts(row.try_get("revoked_at").map_err(get)?),
    })
}

/// A customer row's own columns (`attribute_commitment`,
/// `attribute_schema`, `attributes_at`, `kind`).
fn customer_from(
    row: &SqliteRow,
    tenant: &TenantId,
    customer_ref: &CustomerRef,
) -> Result<Customer, StoreError> {
    let commitment: Option<Vec<u8>> = row.try_get("attribute_commitment").map_err(backend)?;
    let schema: Option<i64> = row.try_get("attribute_schema").map_err(backend)?;
    let attributes = match (commitment, schema) {
        (Some(c), Some(s)) => Some(AttributeCommitment {
            commitment: hash32(c, "attribute commitment")?,
            schema_version: u32::try_from(s).map_err(|_| corrupt("attribute schema"))?,
        }),
        _ => None,
    };
    let attributes_at: Option<i64> = row.try_get("attributes_at").map_err(backend)?;
    let kind: String = row.try_get("kind").map_err(backend)?;
    Ok(Customer {
        tenant: tenant.clone(),
        customer_ref: customer_ref.clone(),
        attributes,
        attributes_at: opt_ts(attributes_at),
        kind: SubjectKind::parse(&kind).ok_or_else(|| corrupt("subject kind"))?,
    })
}

fn device_from(row: &SqliteRow) -> Result<Device, StoreError> {
    let get = |e: sqlx::Error| backend(e);
    Ok(Device {
        id: DeviceId::parse(&row.try_get::<String, _>("id").map_err(get)?)
            .map_err(|_| corrupt("device id"))?,
        tenant: TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(get)?)
            .map_err(|_| corrupt("tenant id"))?,
        customer_ref: CustomerRef::parse(&row.try_get::<String, _>("customer_ref").map_err(get)?)
            .map_err(|_| corrupt("customer_ref"))?,
        commitment: hash32(row.try_get("commitment").map_err(get)?, "commitment")?,
        credential: CredentialId::parse(&row.try_get::<String, _>("credential_id").map_err(get)?)
            .map_err(|_| corrupt("credential id"))?,
        status: DeviceStatus::parse(&row.try_get::<String, _>("status").map_err(get)?)
            .ok_or_else(|| corrupt("device status"))?,
        enrolled_at: Timestamp(row.try_get("enrolled_at").map_err(get)?),
        changed_at: opt_ts(row.try_get("changed_at").map_err(get)?),
    })
}

fn session_from(row: &SqliteRow) -> Result<Session, StoreError> {
    let get = |e: sqlx::Error| backend(e);
    let circuits: String = row.try_get("circuits").map_err(get)?;
    Ok(Session {
        id: SessionId::parse(&row.try_get::<String, _>("id").map_err(get)?)
            .map_err(|_| corrupt("session id"))?,
        tenant: TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(get)?)
            .map_err(|_| corrupt("tenant id"))?,
        customer_ref: CustomerRef::parse(&row.try_get::<String, _>("customer_ref").map_err(get)?)
            .map_err(|_| corrupt("customer_ref"))?,
        account_ref: row
            .try_get::<Option<String>, _>("account_ref")
            .map_err(get)?
            .map(|a| {
                crate::domain::model::AccountRef::parse(&a).map_err(|_| corrupt("account_ref"))
            })
            .transpose()?,
        device: DeviceId::parse(&row.try_get::<String, _>("device_id").map_err(get)?)
            .map_err(|_| corrupt("device id"))?,
        agent_credential: CredentialId::parse(
            &row.try_get::<String, _>("agent_credential_id")
                .map_err(get)?,
        )
        .map_err(|_| corrupt("agent credential id"))?,
        operation: row.try_get("operation").map_err(get)?,
        required_level: AssuranceLevel::from_i64(row.try_get("required_level").map_err(get)?)
            .ok_or_else(|| corrupt("required level"))?,
        level_reached: AssuranceLevel::from_i64(row.try_get("level_reached").map_err(get)?)
            .ok_or_else(|| corrupt("level reached"))?,
        circuits: circuits.split(',').map(str::to_owned).collect(),
        challenge: hash32(row.try_get("challenge").map_err(get)?, "challenge")?,
        binding_code: row.try_get("binding_code").map_err(get)?,
        state: SessionState::parse(&row.try_get::<String, _>("state").map_err(get)?)
            .ok_or_else(|| corrupt("state"))?,
        created_at: Timestamp(row.try_get("created_at").map_err(get)?),
        expires_at: Timestamp(row.try_get("expires_at").map_err(get)?),
        resolved_at: opt_ts(row.try_get("resolved_at").map_err(get)?),
        step_up_of: row
            .try_get::<Option<String>, _>("step_up_of")
            .map_err(get)?
            .map(|id| SessionId::parse(&id).map_err(|_| corrupt("step_up_of")))
            .transpose()?,
    })
}

/// A change to record, in the store's terms.
struct ChangeRow<'a> {
    tenant: &'a TenantId,
    customer_ref: &'a CustomerRef,
    kind: ChangeKind,
    at: Timestamp,
    earlier_device: &'a str,
    new_device: Option<&'a str>,
    earlier_commitment: Option<&'a [u8]>,
    earlier_schema: Option<i64>,
    earlier_attributes_at: Option<i64>,
}

async fn insert_change(
    conn: &mut sqlx::SqliteConnection,
    terms: &RevertTerms,
    row: ChangeRow<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO credential_changes (id, tenant_id, customer_ref, kind, at, revert_until, \
           earlier_device, new_device, earlier_attribute_commitment, earlier_attribute_schema, \
           earlier_attributes_at, challenge) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(terms.id.as_str())
    .bind(row.tenant.as_str())
    .bind(row.customer_ref.as_str())
    .bind(row.kind.as_str())
    .bind(row.at.0)
    .bind(terms.until.0)
    .bind(row.earlier_device)
    .bind(row.new_device)
    .bind(row.earlier_commitment)
    .bind(row.earlier_schema)
    .bind(row.earlier_attributes_at)
    .bind(terms.challenge.as_slice())
    .execute(conn)
    .await
    .map_err(backend)?;
    Ok(())
}

fn change_from(row: &SqliteRow) -> Result<CredentialChange, StoreError> {
    let get = |e: sqlx::Error| backend(e);
    let device = |column: &str| -> Result<Option<DeviceId>, StoreError> {
        row.try_get::<Option<String>, _>(column)
            .map_err(get)?
            .map(|d| DeviceId::parse(&d).map_err(|_| corrupt("device id")))
            .transpose()
    };
    let commitment: Option<Vec<u8>> = row.try_get("earlier_attribute_commitment").map_err(get)?;
    let schema: Option<i64> = row.try_get("earlier_attribute_schema").map_err(get)?;
    let earlier_attributes = match (commitment, schema) {
        (Some(c), Some(s)) => Some(AttributeCommitment {
            commitment: hash32(c, "attribute commitment")?,
            schema_version: u32::try_from(s).map_err(|_| corrupt("attribute schema"))?,
        }),
        _ => None,
    };
    Ok(CredentialChange {
        id: ChangeId::parse(&row.try_get::<String, _>("id").map_err(get)?)
            .map_err(|_| corrupt("change id"))?,
        tenant: TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(get)?)
            .map_err(|_| corrupt("tenant id"))?,
        customer_ref: CustomerRef::parse(&row.try_get::<String, _>("customer_ref").map_err(get)?)
            .map_err(|_| corrupt("customer_ref"))?,
        kind: ChangeKind::parse(&row.try_get::<String, _>("kind").map_err(get)?)
            .ok_or_else(|| corrupt("change kind"))?,
        at: Timestamp(row.try_get("at").map_err(get)?),
        revert_until: Timestamp(row.try_get("revert_until").map_err(get)?),
        earlier_device: device("earlier_device")?.ok_or_else(|| corrupt("earlier device"))?,
        new_device: device("new_device")?,
        earlier_attributes,
        earlier_attributes_at: opt_ts(row.try_get("earlier_attributes_at").map_err(get)?),
        challenge: hash32(row.try_get("challenge").map_err(get)?, "challenge")?,
        failed_attempts: u32::try_from(row.try_get::<i64, _>("failed_attempts").map_err(get)?)
            .map_err(|_| corrupt("failed attempts"))?,
        reverted_at: opt_ts(row.try_get("reverted_at").map_err(get)?),
    })
}

const INSERT_CREDENTIAL: &str = "INSERT INTO credentials (id, tenant_id, role, scope, token_hash, \
     customer_ref, device_id, label, created_at, expires_at, used_at, revoked_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

async fn lockout_row(
    conn: &mut sqlx::SqliteConnection,
    tenant: &TenantId,
    customer_ref: &CustomerRef,
) -> Result<LockoutState, StoreError> {
    let row = sqlx::query(
        "SELECT failures, locks, locked_until FROM lockouts WHERE tenant_id = ? AND customer_ref = ?",
    )
    .bind(tenant.as_str())
    .bind(customer_ref.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?;
    let Some(row) = row else {
        return Ok(LockoutState::default());
    };
    let count = |name: &str| -> Result<u32, StoreError> {
        let value: i64 = row.try_get(name).map_err(backend)?;
        u32::try_from(value).map_err(|_| corrupt("lockout counter"))
    };
    Ok(LockoutState {
        failures: count("failures")?,
        locks: count("locks")?,
        locked_until: opt_ts(row.try_get("locked_until").map_err(backend)?),
    })
}

/// Appends `events` after the log's last record, sealing each.
async fn append_audit_in(
    conn: &mut sqlx::SqliteConnection,
    events: &[AuditEvent],
    keys: &KeyRing,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let last = sqlx::query("SELECT seq, leaf_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    let (mut seq, mut prev) = match last {
        Some(row) => {
            let seq: i64 = row.try_get("seq").map_err(backend)?;
            (
                u64::try_from(seq).map_err(|_| corrupt("audit seq"))?,
                hash32(row.try_get("leaf_hash").map_err(backend)?, "leaf hash")?,
            )
        }
        None => (0, [0; 32]),
    };
    for event in events {
        seq += 1;
        let record = AuditRecord::seal(seq, prev, event.clone(), keys);
        prev = record.hash();
        let e = &record.event;
        sqlx::query(
            "INSERT INTO audit_log (seq, prev_hash, at, tenant_id, actor_id, actor_role, action, \
               customer_ref, session_id, outcome, detail, leaf_hash, key_id, signature) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(i64::try_from(seq).map_err(|_| corrupt("audit seq"))?)
        .bind(record.prev.as_slice())
        .bind(e.at.0)
        .bind(&e.tenant)
        .bind(&e.actor_id)
        .bind(&e.actor_role)
        .bind(&e.action)
        .bind(&e.customer_ref)
        .bind(&e.session_id)
        .bind(&e.outcome)
        .bind(&e.detail)
        .bind(prev.as_slice())
        .bind(&record.key_id)
        .bind(record.signature.as_slice())
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    }
    Ok(())
}

fn audit_record_from(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    let get = |e: sqlx::Error| backend(e);
    let text = |name: &str| -> Result<String, StoreError> { row.try_get(name).map_err(get) };
    let seq: i64 = row.try_get("seq").map_err(get)?;
    Ok(AuditRecord {
        seq: u64::try_from(seq).map_err(|_| corrupt("audit seq"))?,
        prev: hash32(row.try_get("prev_hash").map_err(get)?, "prev hash")?,
        event: AuditEvent {
            tenant: text("tenant_id")?,
            actor_id: text("actor_id")?,
            actor_role: text("actor_role")?,
            action: text("action")?,
            customer_ref: text("customer_ref")?,
            session_id: text("session_id")?,
            outcome: text("outcome")?,
            detail: text("detail")?,
            at: Timestamp(row.try_get("at").map_err(get)?),
        },
        key_id: text("key_id")?,
        signature: row.try_get("signature").map_err(get)?,
    })
}

fn insert_credential_query(
    c: &CredentialRecord,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    sqlx::query(INSERT_CREDENTIAL)
        .bind(c.id.as_str())
        .bind(c.tenant.as_str())
        .bind(c.role.as_str())
        .bind(c.scope.as_str())
        .bind(c.token_hash.as_slice())
        .bind(c.customer.as_ref().map(CustomerRef::as_str))
        .bind(c.device.as_ref().map(DeviceId::as_str))
        .bind(c.label.as_deref())
        .bind(c.created_at.0)
        .bind(c.expires_at.map(|t| t.0))
        .bind(c.used_at.map(|t| t.0))
        .bind(c.revoked_at.map(|t| t.0))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tenants (id, display_name, created_at) VALUES (?, ?, ?)")
            .bind(tenant.id.as_str())
            .bind(&tenant.display_name)
            .bind(tenant.created_at.0)
            .execute(&self.pool)
            .await
            .map_err(conflict_over("tenant"))?;
        Ok(())
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT id, display_name, created_at FROM tenants WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *self.readers.get().await?)
            .await
            .map_err(backend)?;
        row.map(|row| {
            Ok(Tenant {
                id: id.clone(),
                display_name: row.try_get("display_name").map_err(backend)?,
                created_at: Timestamp(row.try_get("created_at").map_err(backend)?),
            })
        })
        .transpose()
    }

    async fn insert_credential(
        &self,
        credential: &CredentialRecord,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        insert_credential_query(credential)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        append_audit_in(&mut tx, audit.events, audit.keys).await?;
        tx.commit().await.map_err(backend)
    }

    async fn credential(&self, id: &CredentialId) -> Result<Option<CredentialRecord>, StoreError> {
        sqlx::query("SELECT * FROM credentials WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *self.readers.get().await?)
            .await
            .map_err(backend)?
            .as_ref()
            .map(credential_from)
            .transpose()
    }

    async fn revoke_credential(
        &self,
        id: &CredentialId,
        at: Timestamp,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        let found =
            sqlx::query("UPDATE credentials SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
                .bind(at.0)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected()
                == 1;
        sqlx::query(
            "UPDATE devices SET status = 'revoked', changed_at = ? \
             WHERE credential_id = ? AND status != 'revoked'",
        )
        .bind(at.0)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if found {
            append_audit_in(&mut tx, audit.events, audit.keys).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(found)
    }

    async fn credentials(&self, tenant: &TenantId) -> Result<Vec<CredentialRecord>, StoreError> {
        sqlx::query(
            "SELECT * FROM credentials WHERE tenant_id = ? AND scope = 'full' ORDER BY created_at",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?
        .iter()
        .map(credential_from)
        .collect()
    }

    async fn register_customer(
        &self,
        reg: &CustomerRegistration,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        let earlier = sqlx::query(
            "SELECT attribute_commitment, attribute_schema, attributes_at, kind FROM customers \
             WHERE tenant_id = ? AND customer_ref = ?",
        )
        .bind(reg.tenant.as_str())
        .bind(reg.customer_ref.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let existed = earlier.is_some();
        let (earlier_commitment, earlier_schema, earlier_at) = match &earlier {
            Some(row) => (
                row.try_get::<Option<Vec<u8>>, _>("attribute_commitment")
                    .map_err(backend)?,
                row.try_get::<Option<i64>, _>("attribute_schema")
                    .map_err(backend)?,
                row.try_get::<Option<i64>, _>("attributes_at")
                    .map_err(backend)?,
            ),
            None => (None, None, None),
        };
        // A reference names one kind of subject for good: re-registering it
        // as the other kind would hand one's device and standing to the other.
        if let Some(row) = &earlier {
            let kind: String = row.try_get("kind").map_err(backend)?;
            if kind != reg.kind.as_str() {
                return Err(StoreError::Conflict(
                    "a subject of another kind with this reference",
                ));
            }
        }
        let (commitment, schema) = match &reg.attributes {
            Some(a) => (
                Some(a.commitment.to_vec()),
                Some(i64::from(a.schema_version)),
            ),
            None => (None, None),
        };
        let attributes_changed =
            commitment.is_some() && (commitment != earlier_commitment || schema != earlier_schema);
        sqlx::query(
            "INSERT INTO customers (tenant_id, customer_ref, attribute_commitment, attribute_schema, created_at, updated_at, attributes_at, kind) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, customer_ref) DO UPDATE SET \
               attribute_commitment = COALESCE(excluded.attribute_commitment, customers.attribute_commitment), \
               attribute_schema = COALESCE(excluded.attribute_schema, customers.attribute_schema), \
               attributes_at = COALESCE(excluded.attributes_at, customers.attributes_at), \
               updated_at = excluded.updated_at",
        )
        .bind(reg.tenant.as_str())
        .bind(reg.customer_ref.as_str())
        .bind(commitment)
        .bind(schema)
        .bind(reg.at.0)
        .bind(reg.at.0)
        .bind(attributes_changed.then_some(reg.at.0))
        .bind(reg.kind.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        // Replacing an issued credential is a change the customer can
        // revert with the phone they hold; a first issue is not.
        if attributes_changed && earlier_commitment.is_some() {
            let active: Option<String> = sqlx::query_scalar(
                "SELECT id FROM devices WHERE tenant_id = ? AND customer_ref = ? AND status = 'active' \
                 ORDER BY enrolled_at DESC LIMIT 1",
            )
            .bind(reg.tenant.as_str())
            .bind(reg.customer_ref.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            if let Some(active) = active {
                insert_change(
                    &mut tx,
                    &reg.revert,
                    ChangeRow {
                        tenant: &reg.tenant,
                        customer_ref: &reg.customer_ref,
                        kind: ChangeKind::Attributes,
                        at: reg.at,
                        earlier_device: &active,
                        new_device: None,
                        earlier_commitment: earlier_commitment.as_deref(),
                        earlier_schema,
                        earlier_attributes_at: earlier_at,
                    },
                )
                .await?;
            }
        }
        sqlx::query(
            "UPDATE credentials SET revoked_at = ? \
             WHERE tenant_id = ? AND customer_ref = ? AND scope = 'enrollment' \
               AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(reg.at.0)
        .bind(reg.tenant.as_str())
        .bind(reg.customer_ref.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_credential_query(&reg.code)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        append_audit_in(&mut tx, audit.events, audit.keys).await?;
        tx.commit().await.map_err(backend)?;
        Ok(existed)
    }

    async fn customer(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
    ) -> Result<Option<Customer>, StoreError> {
        let row = sqlx::query(
            "SELECT attribute_commitment, attribute_schema, attributes_at, kind FROM customers \
             WHERE tenant_id = ? AND customer_ref = ?",
        )
        .bind(tenant.as_str())
        .bind(customer_ref.as_str())
        .fetch_optional(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?;
        row.map(|row| customer_from(&row, tenant, customer_ref))
            .transpose()
    }

    async fn subject_with_device(
        &self,
        tenant: &TenantId,
        subject_ref: &CustomerRef,
    ) -> Result<Option<(Customer, Option<Device>)>, StoreError> {
        // The device columns are named as in `devices`, so `device_from`
        // reads them; the customer's own columns do not collide.
        let row = sqlx::query(
            "SELECT c.attribute_commitment, c.attribute_schema, c.attributes_at, c.kind,                d.id, d.tenant_id, d.customer_ref, d.commitment, d.credential_id, d.status,                d.enrolled_at, d.changed_at              FROM customers c LEFT JOIN devices d ON d.id = (                SELECT id FROM devices WHERE tenant_id = c.tenant_id                  AND customer_ref = c.customer_ref AND status = 'active'                ORDER BY enrolled_at DESC LIMIT 1)              WHERE c.tenant_id = ? AND c.customer_ref = ?",
        )
        .bind(tenant.as_str())
        .bind(subject_ref.as_str())
        .fetch_optional(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let subject = customer_from(&row, tenant, subject_ref)?;
        let has_device = row
            .try_get::<Option<String>, _>("id")
            .map_err(backend)?
            .is_some();
        let device = if has_device {
            Some(device_from(&row)?)
        } else {
            None
        };
        Ok(Some((subject, device)))
    }

    async fn enroll_device(
        &self,
        enrollment: &DeviceEnrollment,
        audit: AuditAppend<'_>,
    ) -> Result<Option<Vec<DeviceId>>, StoreError> {
        let at = enrollment.at.0;
        let device = &enrollment.device;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        let consumed = sqlx::query(
            "UPDATE credentials SET used_at = ? \
             WHERE id = ? AND scope = 'enrollment' AND used_at IS NULL AND revoked_at IS NULL \
               AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(at)
        .bind(enrollment.code.as_str())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if consumed != 1 {
            return Ok(None);
        }
        let replaced: Vec<String> = sqlx::query_scalar(
            "UPDATE devices SET status = 'replaced', changed_at = ? \
             WHERE tenant_id = ? AND customer_ref = ? AND status = 'active' RETURNING id",
        )
        .bind(at)
        .bind(device.tenant.as_str())
        .bind(device.customer_ref.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        insert_credential_query(&enrollment.credential)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO devices (id, tenant_id, customer_ref, commitment, credential_id, status, enrolled_at, changed_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
        )
        .bind(device.id.as_str())
        .bind(device.tenant.as_str())
        .bind(device.customer_ref.as_str())
        .bind(device.commitment.as_slice())
        .bind(device.credential.as_str())
        .bind(device.status.as_str())
        .bind(device.enrolled_at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if let Some(earlier) = replaced.first() {
            insert_change(
                &mut tx,
                &enrollment.revert,
                ChangeRow {
                    tenant: &device.tenant,
                    customer_ref: &device.customer_ref,
                    kind: ChangeKind::Reenrollment,
                    at: enrollment.at,
                    earlier_device: earlier,
                    new_device: Some(device.id.as_str()),
                    earlier_commitment: None,
                    earlier_schema: None,
                    earlier_attributes_at: None,
                },
            )
            .await?;
        }
        append_audit_in(&mut tx, audit.events, audit.keys).await?;
        tx.commit().await.map_err(backend)?;
        replaced
            .iter()
            .map(|id| DeviceId::parse(id).map_err(|_| corrupt("device id")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    async fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        sqlx::query("SELECT * FROM devices WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *self.readers.get().await?)
            .await
            .map_err(backend)?
            .as_ref()
            .map(device_from)
            .transpose()
    }

    async fn active_device(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
    ) -> Result<Option<Device>, StoreError> {
        sqlx::query(
            "SELECT * FROM devices WHERE tenant_id = ? AND customer_ref = ? AND status = 'active' \
             ORDER BY enrolled_at DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(customer_ref.as_str())
        .fetch_optional(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?
        .as_ref()
        .map(device_from)
        .transpose()
    }

    async fn revoke_device(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
        device: &DeviceId,
        at: Timestamp,
        revert: &RevertTerms,
        audit: AuditAppend<'_>,
    ) -> Result<Option<Timestamp>, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        let row = sqlx::query(
            "SELECT credential_id, status, changed_at FROM devices \
             WHERE id = ? AND tenant_id = ? AND customer_ref = ?",
        )
        .bind(device.as_str())
        .bind(tenant.as_str())
        .bind(customer_ref.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let credential: String = row.try_get("credential_id").map_err(backend)?;
        let status: String = row.try_get("status").map_err(backend)?;
        if status == DeviceStatus::Revoked.as_str() {
            let changed: Option<i64> = row.try_get("changed_at").map_err(backend)?;
            return Ok(Some(Timestamp(changed.unwrap_or(at.0))));
        }
        sqlx::query("UPDATE devices SET status = 'revoked', changed_at = ? WHERE id = ?")
            .bind(at.0)
            .bind(device.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("UPDATE credentials SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(at.0)
            .bind(&credential)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // Revoking the active device takes the customer's factor away: a
        // change they can revert if it was not theirs. A replaced device
        // answered nothing any more.
        if status == DeviceStatus::Active.as_str() {
            insert_change(
                &mut tx,
                revert,
                ChangeRow {
                    tenant,
                    customer_ref,
                    kind: ChangeKind::Revocation,
                    at,
                    earlier_device: device.as_str(),
                    new_device: None,
                    earlier_commitment: None,
                    earlier_schema: None,
                    earlier_attributes_at: None,
                },
            )
            .await?;
        }
        append_audit_in(&mut tx, audit.events, audit.keys).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(at))
    }

    async fn insert_session(&self, s: &Session, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        let write = Write::InsertSession(Box::new(s.clone()), audit.events.to_vec());
        self.group.write(write, audit.keys).await.map(|_| ())
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        sqlx::query("SELECT * FROM sessions WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *self.readers.get().await?)
            .await
            .map_err(backend)?
            .as_ref()
            .map(session_from)
            .transpose()
    }

    async fn session_with_subject(
        &self,
        id: &SessionId,
    ) -> Result<Option<(Session, Option<Customer>)>, StoreError> {
        // The customer's own columns do not collide with the session's.
        let row = sqlx::query(
            "SELECT s.*, c.attribute_commitment, c.attribute_schema, c.attributes_at, c.kind \
             FROM sessions s LEFT JOIN customers c \
               ON c.tenant_id = s.tenant_id AND c.customer_ref = s.customer_ref \
             WHERE s.id = ?",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let session = session_from(&row)?;
        let has_subject = row
            .try_get::<Option<String>, _>("kind")
            .map_err(backend)?
            .is_some();
        let subject = if has_subject {
            Some(customer_from(&row, &session.tenant, &session.customer_ref)?)
        } else {
            None
        };
        Ok(Some((session, subject)))
    }

    async fn pending_sessions(
        &self,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        sqlx::query(
            "SELECT * FROM sessions WHERE device_id = ? AND state = 'pending' AND expires_at > ? \
             ORDER BY created_at",
        )
        .bind(device.as_str())
        .bind(now.0)
        .fetch_all(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?
        .iter()
        .map(session_from)
        .collect()
    }

    async fn resolve_session(
        &self,
        id: &SessionId,
        r: &Resolution,
        keys: &KeyRing,
    ) -> Result<Option<Resolved>, StoreError> {
        let write = Write::Resolve(id.clone(), Box::new(r.clone()));
        match self.group.write(write, keys).await? {
            Written::Resolved(resolved) => Ok(resolved.map(|r| *r)),
            Written::Done => Err(StoreError::Backend(
                "group commit answered a resolution with nothing".into(),
            )),
        }
    }

    async fn lockout(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
    ) -> Result<LockoutState, StoreError> {
        let mut reader = self.readers.get().await?;
        lockout_row(&mut reader, tenant, customer_ref).await
    }

    async fn clear_lock(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
        until: Timestamp,
        keys: &KeyRing,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        let cleared = sqlx::query(
            "UPDATE lockouts SET locked_until = NULL \
             WHERE tenant_id = ? AND customer_ref = ? AND locked_until = ?",
        )
        .bind(tenant.as_str())
        .bind(customer_ref.as_str())
        .bind(until.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        if cleared {
            let server = crate::domain::model::Actor::server();
            let event = AuditEvent {
                tenant: tenant.to_string(),
                actor_id: server.id,
                actor_role: server.role,
                action: "unlock".into(),
                customer_ref: customer_ref.to_string(),
                session_id: String::new(),
                outcome: "unlocked".into(),
                detail: format!("lock ended at {}", until.0),
                at: Timestamp::now(),
            };
            append_audit_in(&mut tx, &[event], keys).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(cleared)
    }

    async fn change(&self, id: &ChangeId) -> Result<Option<CredentialChange>, StoreError> {
        sqlx::query("SELECT * FROM credential_changes WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *self.readers.get().await?)
            .await
            .map_err(backend)?
            .as_ref()
            .map(change_from)
            .transpose()
    }

    async fn latest_change(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
    ) -> Result<Option<CredentialChange>, StoreError> {
        sqlx::query(
            "SELECT * FROM credential_changes WHERE tenant_id = ? AND customer_ref = ? \
             ORDER BY at DESC, rowid DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(customer_ref.as_str())
        .fetch_optional(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?
        .as_ref()
        .map(change_from)
        .transpose()
    }

    async fn open_changes_for_device(
        &self,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<Vec<CredentialChange>, StoreError> {
        sqlx::query(
            "SELECT * FROM credential_changes \
             WHERE earlier_device = ? AND reverted_at IS NULL AND revert_until > ? \
             ORDER BY at, rowid",
        )
        .bind(device.as_str())
        .bind(now.0)
        .fetch_all(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?
        .iter()
        .map(change_from)
        .collect()
    }

    async fn count_failed_revert(
        &self,
        id: &ChangeId,
        audit: AuditAppend<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        sqlx::query(
            "UPDATE credential_changes SET failed_attempts = failed_attempts + 1 WHERE id = ?",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        append_audit_in(&mut tx, audit.events, audit.keys).await?;
        tx.commit().await.map_err(backend)
    }

    async fn revert_change(
        &self,
        id: &ChangeId,
        at: Timestamp,
        max_failed: u32,
        audit: AuditAppend<'_>,
    ) -> Result<RevertOutcome, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        let Some(change) = sqlx::query("SELECT * FROM credential_changes WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .as_ref()
            .map(change_from)
            .transpose()?
        else {
            return Ok(RevertOutcome::NotRevertible("no such change"));
        };
        if change.reverted_at.is_some() {
            return Ok(RevertOutcome::NotRevertible(
                "the change was already reverted",
            ));
        }
        if change.revert_until <= at {
            return Ok(RevertOutcome::NotRevertible(
                "the change's revert window has closed",
            ));
        }
        if change.failed_attempts >= max_failed {
            return Ok(RevertOutcome::NotRevertible(
                "too many rejected revert proofs for this change",
            ));
        }
        let latest: String = sqlx::query_scalar(
            "SELECT id FROM credential_changes WHERE tenant_id = ? AND customer_ref = ? \
             ORDER BY at DESC, rowid DESC LIMIT 1",
        )
        .bind(change.tenant.as_str())
        .bind(change.customer_ref.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if latest != change.id.as_str() {
            return Ok(RevertOutcome::NotRevertible(
                "a later change must be reverted first",
            ));
        }
        let earlier = change.earlier_device.as_str();
        match change.kind {
            ChangeKind::Reenrollment => {
                let new_device = change
                    .new_device
                    .as_ref()
                    .ok_or_else(|| corrupt("re-enrollment without new device"))?;
                let revoked: Vec<String> = sqlx::query_scalar(
                    "UPDATE devices SET status = 'revoked', changed_at = ? \
                     WHERE id = ? AND status = 'active' RETURNING credential_id",
                )
                .bind(at.0)
                .bind(new_device.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
                let Some(credential) = revoked.first() else {
                    return Ok(RevertOutcome::NotRevertible(
                        "the device enrolled by the change is no longer active",
                    ));
                };
                sqlx::query(
                    "UPDATE credentials SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                )
                .bind(at.0)
                .bind(credential)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                sqlx::query(
                    "UPDATE devices SET status = 'active', changed_at = NULL \
                     WHERE id = ? AND status = 'replaced'",
                )
                .bind(earlier)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
            ChangeKind::Revocation => {
                let others: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM devices WHERE tenant_id = ? AND customer_ref = ? \
                     AND status = 'active'",
                )
                .bind(change.tenant.as_str())
                .bind(change.customer_ref.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
                if others > 0 {
                    return Ok(RevertOutcome::NotRevertible(
                        "the customer has enrolled another device since",
                    ));
                }
                let credential: Option<String> = sqlx::query_scalar(
                    "UPDATE devices SET status = 'active', changed_at = NULL \
                     WHERE id = ? AND status = 'revoked' RETURNING credential_id",
                )
                .bind(earlier)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
                let Some(credential) = credential else {
                    return Ok(RevertOutcome::NotRevertible("the device is not revoked"));
                };
                sqlx::query("UPDATE credentials SET revoked_at = NULL WHERE id = ?")
                    .bind(credential)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
            ChangeKind::Attributes => {
                let earlier_attributes = change
                    .earlier_attributes
                    .as_ref()
                    .ok_or_else(|| corrupt("attribute change without earlier commitment"))?;
                sqlx::query(
                    "UPDATE customers SET attribute_commitment = ?, attribute_schema = ?, \
                       attributes_at = ?, updated_at = ? \
                     WHERE tenant_id = ? AND customer_ref = ?",
                )
                .bind(earlier_attributes.commitment.as_slice())
                .bind(i64::from(earlier_attributes.schema_version))
                .bind(change.earlier_attributes_at.map(|t| t.0))
                .bind(at.0)
                .bind(change.tenant.as_str())
                .bind(change.customer_ref.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
        }
        sqlx::query("UPDATE credential_changes SET reverted_at = ? WHERE id = ?")
            .bind(at.0)
            .bind(change.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        append_audit_in(&mut tx, audit.events, audit.keys).await?;
        tx.commit().await.map_err(backend)?;
        Ok(RevertOutcome::Reverted(Box::new(CredentialChange {
            reverted_at: Some(at),
            ..change
        })))
    }

    async fn lift_lockout(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
        audit: AuditAppend<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(backend)?;
        let lifted = sqlx::query(
            "UPDATE lockouts SET locked_until = NULL, failures = 0 \
             WHERE tenant_id = ? AND customer_ref = ? AND (locked_until IS NOT NULL OR failures > 0)",
        )
        .bind(tenant.as_str())
        .bind(customer_ref.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        if lifted {
            append_audit_in(&mut tx, audit.events, audit.keys).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(lifted)
    }

    async fn append_audit(&self, audit: AuditAppend<'_>) -> Result<(), StoreError> {
        if audit.events.is_empty() {
            return Ok(());
        }
        let write = Write::Append(audit.events.to_vec());
        self.group.write(write, audit.keys).await.map(|_| ())
    }

    async fn audit_records(
        &self,
        tenant: Option<&TenantId>,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = match tenant {
            Some(tenant) => sqlx::query(
                "SELECT * FROM audit_log WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            )
            .bind(tenant.as_str())
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.readers.get().await?)
            .await
            .map_err(backend)?,
            None => sqlx::query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&mut *self.readers.get().await?)
                .await
                .map_err(backend)?,
        };
        rows.iter().map(audit_record_from).collect()
    }

    async fn insert_tree_head(&self, head: &TreeHead) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tree_heads (size, root, at, key_id, signature) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (size) DO NOTHING",
        )
        .bind(i64::try_from(head.size).map_err(|_| corrupt("tree size"))?)
        .bind(head.root.as_slice())
        .bind(head.at.0)
        .bind(&head.key_id)
        .bind(head.signature.as_slice())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn tree_heads(&self) -> Result<Vec<TreeHead>, StoreError> {
        let rows = sqlx::query("SELECT * FROM tree_heads ORDER BY size")
            .fetch_all(&mut *self.readers.get().await?)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let size: i64 = row.try_get("size").map_err(backend)?;
                Ok(TreeHead {
                    size: u64::try_from(size).map_err(|_| corrupt("tree size"))?,
                    root: hash32(row.try_get("root").map_err(backend)?, "root")?,
                    at: Timestamp(row.try_get("at").map_err(backend)?),
                    key_id: row.try_get("key_id").map_err(backend)?,
                    signature: row.try_get("signature").map_err(backend)?,
                })
            })
            .collect()
    }

    async fn start_standing(&self, q: &StandingQuery<'_>) -> Result<StartStanding, StoreError> {
        // The same conditions as the four methods it stands for, in one
        // statement (one round trip to the connection's thread instead of
        // four).
        let row = sqlx::query(
            "SELECT                (SELECT COUNT(*) FROM sessions WHERE agent_credential_id = ? AND created_at > ?)                  AS started_by_credential,                (SELECT COUNT(*) FROM sessions WHERE tenant_id = ? AND customer_ref = ?                   AND created_at > ? AND state != 'locked') AS pushed_to_subject,                (SELECT COUNT(*) FROM sessions WHERE device_id = ? AND created_at > ?)                  AS asked_of_device,                l.failures, l.locks, l.locked_until              FROM (SELECT 1) LEFT JOIN lockouts l ON l.tenant_id = ? AND l.customer_ref = ?",
        )
        .bind(q.credential.as_str())
        .bind(q.minute_ago.0)
        .bind(q.tenant.as_str())
        .bind(q.subject_ref.as_str())
        .bind(q.day_ago.0)
        .bind(q.device.as_str())
        .bind(q.minute_ago.0)
        .bind(q.tenant.as_str())
        .bind(q.subject_ref.as_str())
        .fetch_one(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?;
        let count = |name: &str| -> Result<u64, StoreError> {
            let value: i64 = row.try_get(name).map_err(backend)?;
            u64::try_from(value).map_err(|_| corrupt("count"))
        };
        let counter = |name: &str| -> Result<u32, StoreError> {
            let value: Option<i64> = row.try_get(name).map_err(backend)?;
            u32::try_from(value.unwrap_or(0)).map_err(|_| corrupt("lockout counter"))
        };
        Ok(StartStanding {
            started_by_credential: count("started_by_credential")?,
            lockout: LockoutState {
                failures: counter("failures")?,
                locks: counter("locks")?,
                locked_until: opt_ts(row.try_get("locked_until").map_err(backend)?),
            },
            pushed_to_subject: count("pushed_to_subject")?,
            asked_of_device: count("asked_of_device")?,
        })
    }

    async fn sessions_by_agent_since(
        &self,
        agent: &CredentialId,
        since: Timestamp,
    ) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE agent_credential_id = ? AND created_at > ?",
        )
        .bind(agent.as_str())
        .bind(since.0)
        .fetch_one(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?;
        u64::try_from(count).map_err(|_| corrupt("count"))
    }

    async fn sessions_for_customer_since(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
        since: Timestamp,
    ) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE tenant_id = ? AND customer_ref = ? \
               AND created_at > ? AND state != 'locked'",
        )
        .bind(tenant.as_str())
        .bind(customer_ref.as_str())
        .bind(since.0)
        .fetch_one(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?;
        u64::try_from(count).map_err(|_| corrupt("count"))
    }

    async fn sessions_for_device_since(
        &self,
        device: &DeviceId,
        since: Timestamp,
    ) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE device_id = ? AND created_at > ?",
        )
        .bind(device.as_str())
        .bind(since.0)
        .fetch_one(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?;
        u64::try_from(count).map_err(|_| corrupt("count"))
    }

    async fn fraud_events(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<FraudEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, customer_ref, session_id, kind, created_at FROM fraud_signals \
             WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| backend(e);
                Ok(FraudEvent {
                    id: row.try_get("id").map_err(get)?,
                    tenant: TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(get)?)
                        .map_err(|_| corrupt("tenant id"))?,
                    customer_ref: CustomerRef::parse(
                        &row.try_get::<String, _>("customer_ref").map_err(get)?,
                    )
                    .map_err(|_| corrupt("customer_ref"))?,
                    session: SessionId::parse(
                        &row.try_get::<String, _>("session_id").map_err(get)?,
                    )
                    .map_err(|_| corrupt("session id"))?,
                    kind: row.try_get("kind").map_err(get)?,
                    at: Timestamp(row.try_get("created_at").map_err(get)?),
                })
            })
            .collect()
    }

    async fn due_sessions(&self, now: Timestamp, limit: u32) -> Result<Vec<SessionId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE state = 'pending' AND expires_at <= ? \
             ORDER BY expires_at LIMIT ?",
        )
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?;
        ids.iter()
            .map(|id| SessionId::parse(id).map_err(|_| corrupt("session id")))
            .collect()
    }

    async fn fraud_signal_count(
        &self,
        tenant: &TenantId,
        customer_ref: &CustomerRef,
    ) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM fraud_signals WHERE tenant_id = ? AND customer_ref = ?",
        )
        .bind(tenant.as_str())
        .bind(customer_ref.as_str())
        .fetch_one(&mut *self.readers.get().await?)
        .await
        .map_err(backend)?;
        u64::try_from(count).map_err(|_| corrupt("count"))
    }

    async fn insert_login_audience(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        audience: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO operator_logins (session_id, tenant_id, audience, created_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(session.as_str())
        .bind(tenant.as_str())
        .bind(audience)
        .bind(at.0)
        .execute(&self.pool)
        .await
        .map_err(conflict_over("operator login"))?;
        Ok(())
    }

    async fn login_audience(&self, session: &SessionId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT audience FROM operator_logins WHERE session_id = ?")
            .bind(session.as_str())
            .fetch_optional(&mut *self.readers.get().await?)
            .await
            .map_err(backend)
    }
}

/// The resolved session's subject's lockout row, for an UPDATE of
/// `sessions` to return (NULLs when there is none).
const LOCKOUT_OF_SESSION: &str = "\
    (SELECT failures FROM lockouts l WHERE l.tenant_id = sessions.tenant_id \
       AND l.customer_ref = sessions.customer_ref) AS lockout_failures, \
    (SELECT locks FROM lockouts l WHERE l.tenant_id = sessions.tenant_id \
       AND l.customer_ref = sessions.customer_ref) AS lockout_locks, \
    (SELECT locked_until FROM lockouts l WHERE l.tenant_id = sessions.tenant_id \
       AND l.customer_ref = sessions.customer_ref) AS lockout_locked_until";

/// The lockout standing [`LOCKOUT_OF_SESSION`] returned (the default if the
/// subject has no row).
fn lockout_returned(row: &SqliteRow) -> Result<LockoutState, StoreError> {
    let counter = |name: &str| -> Result<u32, StoreError> {
        let value: Option<i64> = row.try_get(name).map_err(backend)?;
        u32::try_from(value.unwrap_or(0)).map_err(|_| corrupt("lockout counter"))
    };
    Ok(LockoutState {
        failures: counter("lockout_failures")?,
        locks: counter("lockout_locks")?,
        locked_until: opt_ts(row.try_get("lockout_locked_until").map_err(backend)?),
    })
}

/// Inserts a session (in the caller's transaction).
async fn insert_session_in(
    conn: &mut sqlx::SqliteConnection,
    s: &Session,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, customer_ref, account_ref, device_id, agent_credential_id, \
           operation, required_level, level_reached, circuits, challenge, binding_code, state, \
           created_at, expires_at, resolved_at, step_up_of) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(s.id.as_str())
    .bind(s.tenant.as_str())
    .bind(s.customer_ref.as_str())
    .bind(s.account_ref.as_ref().map(|a| a.as_str()))
    .bind(s.device.as_str())
    .bind(s.agent_credential.as_str())
    .bind(&s.operation)
    .bind(s.required_level as i64)
    .bind(s.level_reached as i64)
    .bind(s.circuits.join(","))
    .bind(s.challenge.as_slice())
    .bind(&s.binding_code)
    .bind(s.state.as_str())
    .bind(s.created_at.0)
    .bind(s.expires_at.0)
    .bind(s.resolved_at.map(|t| t.0))
    .bind(s.step_up_of.as_ref().map(|id| id.as_str()))
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Resolves a session (in the caller's transaction, which must hold the
/// write lock: the lockout row is read, then written) as
/// [`Store::resolve_session`] describes. Returns the resolution and the
/// audit events to append, or `None` if the condition failed (then nothing
/// was written).
async fn resolve_in(
    conn: &mut sqlx::SqliteConnection,
    id: &SessionId,
    r: &Resolution,
) -> Result<Option<(Resolved, Vec<AuditEvent>)>, StoreError> {
    // The expiry condition makes EXPIRED and every other outcome mutually
    // exclusive at any instant, and `state = 'pending'` makes the
    // transition happen once.
    // The subject's lockout row comes back with the session, read in the
    // same statement (and transaction) as before its own SELECT did.
    let sql = format!(
        "UPDATE sessions SET state = ?, level_reached = ?, resolved_at = ? \
         WHERE id = ? AND state = 'pending' AND {} RETURNING *, {LOCKOUT_OF_SESSION}",
        if r.state == SessionState::Expired {
            "expires_at <= ?"
        } else {
            "expires_at > ?"
        }
    );
    let row = sqlx::query(&sql)
        .bind(r.state.as_str())
        .bind(r.level_reached as i64)
        .bind(r.at.0)
        .bind(id.as_str())
        .bind(r.at.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let session = session_from(&row)?;
    let mut signals: Vec<&str> = r.fraud_signal.into_iter().collect();
    let mut locked_until = None;
    if let Some(policy) = &r.lockout {
        let before = lockout_returned(&row)?;
        let (after, lock) = policy.after(before, r.state, r.at);
        if after != before {
            sqlx::query(
                "INSERT INTO lockouts (tenant_id, customer_ref, failures, locks, locked_until) \
                 VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (tenant_id, customer_ref) DO UPDATE SET \
                   failures = excluded.failures, locks = excluded.locks, \
                   locked_until = excluded.locked_until",
            )
            .bind(session.tenant.as_str())
            .bind(session.customer_ref.as_str())
            .bind(i64::from(after.failures))
            .bind(i64::from(after.locks))
            .bind(after.locked_until.map(|t| t.0))
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        }
        if lock.is_some() {
            signals.push("locked");
        }
        locked_until = lock;
    }
    for kind in signals {
        sqlx::query(
            "INSERT INTO fraud_signals (tenant_id, customer_ref, session_id, device_id, kind, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(session.tenant.as_str())
        .bind(session.customer_ref.as_str())
        .bind(session.id.as_str())
        .bind(session.device.as_str())
        .bind(kind)
        .bind(r.at.0)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    }
    // Fail closed: the caller appends these in the same transaction, so
    // without its audit records the verdict is not committed and never
    // released.
    let events = audit::resolution_events(&session, r, locked_until);
    Ok(Some((
        Resolved {
            session,
            locked_until,
        },
        events,
    )))
}

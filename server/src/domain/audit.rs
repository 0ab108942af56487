//! The audit log: append-only records of who did what, for whom (the
//! customer's opaque reference, never PII), with what outcome and when.
//!
//! Tamper evidence works on two levels:
//! - each record is a leaf of an RFC 6962 Merkle tree (as in Certificate
//!   Transparency) and the server signs tree heads, so an auditor holding a
//!   head checks offline, with inclusion and consistency proofs, that a
//!   record is in the log and that the log only ever grew;
//! - each record carries the leaf hash of the one before it and the
//!   server's Ed25519 signature over its own leaf hash, so that a check of
//!   the whole log names the first record that was altered, removed or
//!   moved, not just the first head that fails.
//!
//! # Leaf encoding (version 1)
//! The leaf of record `seq` is the bytes
//! `"zkid-audit-v1"`, `seq` (u64 big-endian), `prev` (32 bytes: the
//! previous record's leaf hash, zeros for the first), `at` (i64 big-endian,
//! Unix milliseconds), then `tenant`, `actor_id`, `actor_role`, `action`,
//! `customer_ref`, `session_id`, `outcome`, `detail`, each as a u32
//! big-endian length and its UTF-8 bytes. Its leaf hash is RFC 6962's:
//! SHA-256(0x00 ‖ leaf). A record's signature is over
//! `"zkid-audit-record-v1" ‖ leaf hash`; a tree head's over
//! `"zkid-tree-head-v1" ‖ size (u64 BE) ‖ root (32) ‖ at (i64 BE)`.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use sha2::{Digest, Sha256};

use super::{
    keyring::KeyRing,
    model::{Actor, Resolution, Session, SessionState, Timestamp},
    DomainError, Store,
};

/// SHA-256 through digest 0.11, the version ct-merkle hashes with; the
/// same function as `sha2::Sha256`.
pub type TreeHash = sha2_11::Sha256;

/// The Merkle tree over leaf encodings.
pub type AuditTree = MemoryBackedTree<TreeHash, Vec<u8>>;

/// What happened, before it gets its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The tenant concerned.
    pub tenant: String,
    /// Who: the credential id, or `server` for the server's own acts
    /// (expiry, lock ends), or `cli` for the admin CLI.
    pub actor_id: String,
    /// The actor's role (`agent`, `device`, ..., or `system`).
    pub actor_role: String,
    /// What, e.g. `session.start`, `verdict`, `lock`.
    pub action: String,
    /// For whom: the customer's opaque reference, or empty.
    pub customer_ref: String,
    /// The session concerned, or empty.
    pub session_id: String,
    /// The outcome, e.g. `passed`, `locked`.
    pub outcome: String,
    /// More, never secret: circuits and key ids, a lock's end.
    pub detail: String,
    /// When.
    pub at: Timestamp,
}

impl AuditEvent {
    /// An event about a session.
    pub fn for_session(
        actor: &Actor,
        action: &str,
        session: &Session,
        outcome: &str,
        detail: String,
        at: Timestamp,
    ) -> Self {
        Self {
            tenant: session.tenant.to_string(),
            actor_id: actor.id.clone(),
            actor_role: actor.role.clone(),
            action: action.into(),
            customer_ref: session.customer_ref.to_string(),
            session_id: session.id.to_string(),
            outcome: outcome.into(),
            detail,
            at,
        }
    }
}

/// The audit records of a session's resolution: the verdict (or decline,
/// expiry, cancellation), then the lock it set, if any.
pub fn resolution_events(
    session: &Session,
    resolution: &Resolution,
    locked_until: Option<Timestamp>,
) -> Vec<AuditEvent> {
    let action = match resolution.state {
        SessionState::Passed | SessionState::Failed => "verdict",
        SessionState::Declined => "decline",
        SessionState::Expired => "expire",
        SessionState::Cancelled => "cancel",
        SessionState::Locked | SessionState::Pending => "resolve",
    };
    let mut events = vec![AuditEvent::for_session(
        &resolution.actor,
        action,
        session,
        resolution.state.as_str(),
        resolution.detail.clone(),
        resolution.at,
    )];
    if let Some(until) = locked_until {
        events.push(AuditEvent::for_session(
            &Actor::server(),
            "lock",
            session,
            "locked",
            format!("until={}", until.0),
            resolution.at,
        ));
    }
    events
}

/// A record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position, from 1.
    pub seq: u64,
    /// The previous record's leaf hash (zeros for the first).
    pub prev: [u8; 32],
    /// The event.
    pub event: AuditEvent,
    /// The id of the key that signed it.
    pub key_id: String,
    /// Ed25519 over `"zkid-audit-record-v1" ‖ leaf hash`.
    pub signature: Vec<u8>,
}

/// A signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of records covered.
    pub size: u64,
    /// RFC 6962 root of the first `size` leaves.
    pub root: [u8; 32],
    /// When it was signed.
    pub at: Timestamp,
    /// The signing key's id.
    pub key_id: String,
    /// Ed25519 over [`TreeHead::message`].
    pub signature: Vec<u8>,
}

const LEAF_TAG: &[u8] = b"zkid-audit-v1";
const RECORD_TAG: &[u8] = b"zkid-audit-record-v1";
const HEAD_TAG: &[u8] = b"zkid-tree-head-v1";

fn field(out: &mut Vec<u8>, text: &str) {
    // Fields are short texts; a length above u32 cannot occur.
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// The leaf encoding (see the module docs).
pub fn leaf_bytes(seq: u64, prev: &[u8; 32], event: &AuditEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(LEAF_TAG);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(prev);
    out.extend_from_slice(&event.at.0.to_be_bytes());
    for text in [
        &event.tenant,
        &event.actor_id,
        &event.actor_role,
        &event.action,
        &event.customer_ref,
        &event.session_id,
        &event.outcome,
        &event.detail,
    ] {
        field(&mut out, text);
    }
    out
}

/// RFC 6962's leaf hash: SHA-256(0x00 ‖ leaf).
pub fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(leaf);
    hasher.finalize().into()
}

fn record_message(hash: &[u8; 32]) -> Vec<u8> {
    [RECORD_TAG, hash.as_slice()].concat()
}

impl AuditRecord {
    /// Gives `event` position `seq` after a record whose leaf hash is
    /// `prev`, and signs it.
    pub fn seal(seq: u64, prev: [u8; 32], event: AuditEvent, keys: &KeyRing) -> Self {
        let hash = leaf_hash(&leaf_bytes(seq, &prev, &event));
        let (key_id, signature) = keys.sign(&record_message(&hash));
        Self {
            seq,
            prev,
            event,
            key_id,
            signature: signature.to_vec(),
        }
    }

    /// This record's leaf encoding.
    pub fn leaf(&self) -> Vec<u8> {
        leaf_bytes(self.seq, &self.prev, &self.event)
    }

    /// This record's leaf hash.
    pub fn hash(&self) -> [u8; 32] {
        leaf_hash(&self.leaf())
    }
}

impl TreeHead {
    /// The signed bytes.
    pub fn message(size: u64, root: &[u8; 32], at: Timestamp) -> Vec<u8> {
        let mut out = HEAD_TAG.to_vec();
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(root);
        out.extend_from_slice(&at.0.to_be_bytes());
        out
    }

    /// Signs the head of `tree`.
    pub fn sign(tree: &AuditTree, at: Timestamp, keys: &KeyRing) -> Self {
        let size = tree.len();
        let root: [u8; 32] = tree
            .root()
            .as_bytes()
            .as_slice()
            .try_into()
            .unwrap_or([0; 32]);
        let (key_id, signature) = keys.sign(&Self::message(size, &root, at));
        Self {
            size,
            root,
            at,
            key_id,
            signature: signature.to_vec(),
        }
    }

    /// Whether the signature is good.
    pub fn is_signed_by(&self, keys: &KeyRing) -> bool {
        keys.verify(
            &self.key_id,
            &Self::message(self.size, &self.root, self.at),
            &self.signature,
        )
    }
}

/// The whole log as a Merkle tree, with its records.
///
/// # Errors
/// The store's failure.
pub async fn load_tree(store: &dyn Store) -> Result<(AuditTree, Vec<AuditRecord>), DomainError> {
    let records = store.audit_records(None, 0, u32::MAX).await?;
    let mut tree = AuditTree::new();
    for record in &records {
        tree.push(record.leaf());
    }
    Ok((tree, records))
}

/// Signs a tree head over the whole log if it grew since the newest
/// signed head (periodically, and on demand), and returns the newest head.
///
/// # Errors
/// The store's failure.
pub async fn sign_head(store: &dyn Store, keys: &KeyRing) -> Result<TreeHead, DomainError> {
    let (tree, _) = load_tree(store).await?;
    if let Some(last) = store.tree_heads().await?.pop() {
        if last.size == tree.len() {
            return Ok(last);
        }
    }
    let head = TreeHead::sign(&tree, Timestamp::now(), keys);
    store.insert_tree_head(&head).await?;
    tracing::info!(size = head.size, "signed an audit tree head");
    Ok(head)
}

/// The first problem a check of the log found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditFinding {
    /// A record is missing: the log jumps from `seq - 1` to a later one.
    #[error("audit record {seq} is missing (removed)")]
    Missing {
        /// The missing position.
        seq: u64,
    },
    /// A record does not follow its predecessor: it was moved, or the one
    /// before it was replaced.
    #[error("audit record {seq} does not follow record {}: records were removed, reordered or replaced", seq - 1)]
    Unlinked {
        /// The record.
        seq: u64,
    },
    /// A record's content does not match its signature.
    #[error("audit record {seq} was altered: its signature does not match its content")]
    Altered {
        /// The record.
        seq: u64,
    },
    /// A signed tree head does not verify.
    #[error("tree head of size {size} has a bad signature")]
    BadHead {
        /// Its size.
        size: u64,
    },
    /// A signed tree head does not match the records.
    #[error("tree head of size {size} does not match the records: the log was rewritten")]
    HeadMismatch {
        /// Its size.
        size: u64,
    },
    /// A signed head covers more records than the log holds.
    #[error("the log holds {records} records but a signed head covers {size}: records after {records} were removed")]
    Truncated {
        /// Records present.
        records: u64,
        /// The head's size.
        size: u64,
    },
}

/// What a successful check covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSummary {
    /// Records checked.
    pub records: u64,
    /// Signed heads checked.
    pub heads: u64,
}

/// Checks records (in `seq` order as stored) and signed heads (in size
/// order): each record's position, link and signature, then each head's
/// signature and root.
///
/// # Errors
/// The first [`AuditFinding`].
pub fn verify_log(
    records: &[AuditRecord],
    heads: &[TreeHead],
    keys: &KeyRing,
) -> Result<AuditSummary, AuditFinding> {
    let mut prev = [0u8; 32];
    let mut tree = AuditTree::new();
    let mut heads_iter = heads.iter().peekable();
    let mut expected = 1u64;
    while let Some(head) = heads_iter.next_if(|h| h.size == 0) {
        check_head(head, &tree, keys)?;
    }
    for record in records {
        if record.seq > expected {
            return Err(AuditFinding::Missing { seq: expected });
        }
        if record.seq < expected || record.prev != prev {
            return Err(AuditFinding::Unlinked { seq: record.seq });
        }
        let leaf = record.leaf();
        let hash = leaf_hash(&leaf);
        if !keys.verify(&record.key_id, &record_message(&hash), &record.signature) {
            return Err(AuditFinding::Altered { seq: record.seq });
        }
        tree.push(leaf);
        prev = hash;
        expected += 1;
        while let Some(head) = heads_iter.next_if(|h| h.size <= tree.len()) {
            check_head(head, &tree, keys)?;
        }
    }
    if let Some(head) = heads_iter.next() {
        if !head.is_signed_by(keys) {
            return Err(AuditFinding::BadHead { size: head.size });
        }
        return Err(AuditFinding::Truncated {
            records: tree.len(),
            size: head.size,
        });
    }
    Ok(AuditSummary {
        records: tree.len(),
        heads: heads.len() as u64,
    })
}

fn check_head(head: &TreeHead, tree: &AuditTree, keys: &KeyRing) -> Result<(), AuditFinding> {
    if !head.is_signed_by(keys) {
        return Err(AuditFinding::BadHead { size: head.size });
    }
    // Heads come in size order and are checked as soon as the tree
    // reaches their size; a size-0 head covers nothing.
    if head.size == 0 {
        return Ok(());
    }
    if head.size != tree.len() || tree.root().as_bytes().as_slice() != head.root.as_slice() {
        return Err(AuditFinding::HeadMismatch { size: head.size });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;

    fn keys() -> KeyRing {
        KeyRing::new(SigningKey::from_bytes(&[7; 32]), [])
    }

    fn event(n: u64) -> AuditEvent {
        AuditEvent {
            tenant: "acme".into(),
            actor_id: "0123456789abcdef01234567".into(),
            actor_role: "agent".into(),
            action: "session.start".into(),
            customer_ref: format!("cust-{n}"),
            session_id: String::new(),
            outcome: "pending".into(),
            detail: String::new(),
            at: Timestamp(1_700_000_000_000 + n as i64),
        }
    }

    fn log(n: u64, keys: &KeyRing) -> (Vec<AuditRecord>, Vec<TreeHead>) {
        let mut records = Vec::new();
        let mut heads = Vec::new();
        let mut tree = AuditTree::new();
        let mut prev = [0; 32];
        for seq in 1..=n {
            let record = AuditRecord::seal(seq, prev, event(seq), keys);
            prev = record.hash();
            tree.push(record.leaf());
            records.push(record);
            if seq % 3 == 0 {
                heads.push(TreeHead::sign(&tree, Timestamp(seq as i64), keys));
            }
        }
        (records, heads)
    }

    #[test]
    fn an_intact_log_verifies() {
        let keys = keys();
        let empty = TreeHead::sign(&AuditTree::new(), Timestamp(0), &keys);
        assert_eq!(
            verify_log(&[], std::slice::from_ref(&empty), &keys),
            Ok(AuditSummary {
                records: 0,
                heads: 1
            })
        );
        let (records, heads) = log(10, &keys);
        assert_eq!(
            verify_log(&records, &heads, &keys),
            Ok(AuditSummary {
                records: 10,
                heads: 3
            })
        );
    }

    #[test]
    fn alterations_removals_and_moves_are_named() {
        let keys = keys();
        let (records, heads) = log(10, &keys);
        let mut altered = records.clone();
        altered[4].event.outcome = "passed".into();
        assert_eq!(
            verify_log(&altered, &heads, &keys),
            Err(AuditFinding::Altered { seq: 5 })
        );
        let mut removed = records.clone();
        removed.remove(6);
        assert_eq!(
            verify_log(&removed, &heads, &keys),
            Err(AuditFinding::Missing { seq: 7 })
        );
        let mut swapped = records.clone();
        swapped.swap(2, 3);
        assert_eq!(
            verify_log(&swapped, &heads, &keys),
            Err(AuditFinding::Missing { seq: 3 })
        );
        // Contents swapped but positions kept: the link breaks.
        let mut moved = records.clone();
        let (a, b) = (moved[2].event.clone(), moved[3].event.clone());
        moved[2].event = b;
        moved[3].event = a;
        assert_eq!(
            verify_log(&moved, &heads, &keys),
            Err(AuditFinding::Altered { seq: 3 })
        );
        let truncated = &records[..7];
        assert_eq!(
            verify_log(truncated, &heads, &keys),
            Err(AuditFinding::Truncated {
                records: 7,
                size: 9
            })
        );
    }

    #[test]
    fn a_rewritten_log_fails_its_signed_heads() {
        // Whoever holds the key could re-sign records, but heads that
        // auditors already hold pin the old roots.
        let keys = keys();
        let (records, heads) = log(6, &keys);
        let mut rewritten = Vec::new();
        let mut prev = [0; 32];
        for (i, r) in records.iter().enumerate() {
            let mut e = r.event.clone();
            if i == 4 {
                e.outcome = "passed".into();
            }
            let record = AuditRecord::seal(r.seq, prev, e, &keys);
            prev = record.hash();
            rewritten.push(record);
        }
        assert_eq!(
            verify_log(&rewritten, &heads, &keys),
            Err(AuditFinding::HeadMismatch { size: 6 })
        );
        let mut forged = heads.clone();
        forged[0].root[0] ^= 1;
        assert_eq!(
            verify_log(&records, &forged, &keys),
            Err(AuditFinding::BadHead { size: 3 })
        );
    }

    #[test]
    fn the_leaf_hash_is_rfc_6962s_as_ct_merkle_computes_it() {
        let keys = keys();
        let record = AuditRecord::seal(1, [0; 32], event(1), &keys);
        let mut tree = AuditTree::new();
        tree.push(record.leaf());
        // A one-leaf tree's root is its leaf hash.
        assert_eq!(tree.root().as_bytes().as_slice(), record.hash().as_slice());
    }
}

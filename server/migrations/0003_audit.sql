-- The audit log (see `domain::audit` for the leaf encoding and what is
-- signed). Append-only: the triggers refuse updates and deletes, and the
-- signatures and signed tree heads reveal any change made around them.
-- `leaf_hash` is a cache for appending; checks recompute it.
CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 1),
    prev_hash     BLOB NOT NULL CHECK (length(prev_hash) = 32),
    at            INTEGER NOT NULL,
    tenant_id     TEXT NOT NULL,
    actor_id      TEXT NOT NULL,
    actor_role    TEXT NOT NULL,
    action        TEXT NOT NULL,
    customer_ref  TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    detail        TEXT NOT NULL,
    leaf_hash     BLOB NOT NULL CHECK (length(leaf_hash) = 32),
    key_id        TEXT NOT NULL,
    signature     BLOB NOT NULL CHECK (length(signature) = 64)
);
CREATE INDEX audit_log_by_tenant ON audit_log(tenant_id, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- Signed tree heads: RFC 6962 roots of the first `size` records.
CREATE TABLE tree_heads (
    size       INTEGER PRIMARY KEY NOT NULL CHECK (size >= 0),
    root       BLOB NOT NULL CHECK (length(root) = 32),
    at         INTEGER NOT NULL,
    key_id     TEXT NOT NULL,
    signature  BLOB NOT NULL CHECK (length(signature) = 64)
);

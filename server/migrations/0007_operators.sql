-- BPO operators and workstation login systems.
--
-- Operators are subjects like customers (same devices, lockout, budget and
-- audit machinery, keyed by the tenant and reference), told apart by
-- `kind`: a customer verification never reaches an operator, an operator
-- login never reaches a customer, and one reference cannot be both.
--
-- Login systems are credentials of the new role `login`. SQLite cannot
-- change a CHECK constraint in place, so `credentials` is rebuilt. sqlx
-- runs a migration inside a transaction, where foreign keys cannot be
-- switched off, so they are deferred instead: dropping the table leaves the
-- devices' references dangling until the same rows are inserted again
-- into the new table, which resolves them before the commit checks.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE credentials_copy AS SELECT * FROM credentials;
DROP TABLE credentials;

CREATE TABLE credentials (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    role          TEXT NOT NULL CHECK (role IN ('agent', 'device', 'enroller', 'auditor', 'admin', 'login')),
    scope         TEXT NOT NULL CHECK (scope IN ('full', 'enrollment')),
    token_hash    BLOB NOT NULL CHECK (length(token_hash) = 32),
    customer_ref  TEXT,
    device_id     TEXT,
    label         TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    used_at       INTEGER,
    revoked_at    INTEGER,
    kind          TEXT NOT NULL DEFAULT 'token' CHECK (kind IN ('token', 'certificate'))
);
INSERT INTO credentials
    SELECT id, tenant_id, role, scope, token_hash, customer_ref, device_id, label,
           created_at, expires_at, used_at, revoked_at, kind
    FROM credentials_copy;
DROP TABLE credentials_copy;
CREATE INDEX credentials_by_customer ON credentials(tenant_id, customer_ref);
-- As in 0005: a certificate names one credential only.
CREATE UNIQUE INDEX credentials_by_certificate ON credentials(token_hash)
    WHERE kind = 'certificate';

ALTER TABLE customers ADD COLUMN kind TEXT NOT NULL DEFAULT 'customer'
    CHECK (kind IN ('customer', 'operator'));

-- The audience each operator login was started for: the assertion names
-- it. Written before its session, so a session never lacks one, and no
-- foreign key for that reason.
CREATE TABLE operator_logins (
    session_id  TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL,
    audience    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

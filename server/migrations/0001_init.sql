-- zkid's store. No personal data: customers and accounts appear only as the
-- organization's opaque references; tokens only as SHA-256 hashes; the
-- device and attribute commitments are hiding commitments. Times are Unix
-- milliseconds.

CREATE TABLE tenants (
    id            TEXT PRIMARY KEY NOT NULL,
    display_name  TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Bearer credentials. Device credentials name their customer and device;
-- enrollment codes are device credentials of scope 'enrollment', single use.
CREATE TABLE credentials (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    role          TEXT NOT NULL CHECK (role IN ('agent', 'device', 'enroller', 'auditor', 'admin')),
    scope         TEXT NOT NULL CHECK (scope IN ('full', 'enrollment')),
    token_hash    BLOB NOT NULL CHECK (length(token_hash) = 32),
    customer_ref  TEXT,
    device_id     TEXT,
    label         TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    used_at       INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX credentials_by_customer ON credentials(tenant_id, customer_ref);

CREATE TABLE customers (
    tenant_id             TEXT NOT NULL REFERENCES tenants(id),
    customer_ref          TEXT NOT NULL,
    attribute_commitment  BLOB CHECK (attribute_commitment IS NULL OR length(attribute_commitment) = 32),
    attribute_schema      INTEGER,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, customer_ref)
);

CREATE TABLE devices (
    id             TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL,
    customer_ref   TEXT NOT NULL,
    commitment     BLOB NOT NULL CHECK (length(commitment) = 32),
    credential_id  TEXT NOT NULL REFERENCES credentials(id),
    status         TEXT NOT NULL CHECK (status IN ('active', 'replaced', 'revoked')),
    enrolled_at    INTEGER NOT NULL,
    changed_at     INTEGER,
    FOREIGN KEY (tenant_id, customer_ref) REFERENCES customers(tenant_id, customer_ref)
);
CREATE INDEX devices_by_customer ON devices(tenant_id, customer_ref, status);

CREATE TABLE sessions (
    id                   TEXT PRIMARY KEY NOT NULL,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    customer_ref         TEXT NOT NULL,
    account_ref          TEXT,
    device_id            TEXT NOT NULL REFERENCES devices(id),
    agent_credential_id  TEXT NOT NULL,
    operation            TEXT NOT NULL,
    required_level       INTEGER NOT NULL,
    level_reached        INTEGER NOT NULL DEFAULT 0,
    circuits             TEXT NOT NULL,
    challenge            BLOB NOT NULL CHECK (length(challenge) = 32),
    binding_code         TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('pending', 'passed', 'failed', 'declined', 'expired', 'locked', 'cancelled')),
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    resolved_at          INTEGER
);
CREATE INDEX sessions_pending_by_device ON sessions(device_id, state);
CREATE INDEX sessions_pending_by_expiry ON sessions(state, expires_at);

-- Fraud signals, e.g. a customer declining a request they did not ask for.
CREATE TABLE fraud_signals (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     TEXT NOT NULL,
    customer_ref  TEXT NOT NULL,
    session_id    TEXT NOT NULL REFERENCES sessions(id),
    device_id     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX fraud_signals_by_customer ON fraud_signals(tenant_id, customer_ref);

-- Lockout: each customer's consecutive failed proofs and locks (see
-- `LockoutPolicy`). A passed session deletes nothing but resets the row.
CREATE TABLE lockouts (
    tenant_id     TEXT NOT NULL,
    customer_ref  TEXT NOT NULL,
    failures      INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    locks         INTEGER NOT NULL DEFAULT 0 CHECK (locks >= 0),
    locked_until  INTEGER,
    PRIMARY KEY (tenant_id, customer_ref),
    FOREIGN KEY (tenant_id, customer_ref) REFERENCES customers(tenant_id, customer_ref)
);

-- Rate limits count the sessions started per agent credential and per
-- device in the last minute.
CREATE INDEX sessions_by_agent ON sessions(agent_credential_id, created_at);
CREATE INDEX sessions_by_device ON sessions(device_id, created_at);
CREATE INDEX fraud_signals_by_tenant ON fraud_signals(tenant_id, id);

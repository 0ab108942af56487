-- Level-3 policies and step-up.

-- When the customer's current attribute commitment was registered: the
-- credential's age for level-3 operations. Rows from before this column
-- take their last update time, the closest record there is.
ALTER TABLE customers ADD COLUMN attributes_at INTEGER;
UPDATE customers SET attributes_at = updated_at WHERE attribute_commitment IS NOT NULL;

-- The PASSED session a step-up session builds on.
ALTER TABLE sessions ADD COLUMN step_up_of TEXT REFERENCES sessions(id);

-- Enrollment and credential changes. Each can be reverted, within its
-- window, by whoever can prove the PIN and device secret of the device
-- that was active before it (`earlier_device`), with a proof bound to the
-- change's one-time challenge. What the change replaced is kept here so
-- that a revert can restore it. Level-3 operations are refused while a
-- change's window is open.
CREATE TABLE credential_changes (
    id                            TEXT PRIMARY KEY NOT NULL,
    tenant_id                     TEXT NOT NULL,
    customer_ref                  TEXT NOT NULL,
    kind                          TEXT NOT NULL CHECK (kind IN ('reenrollment', 'revocation', 'attributes')),
    at                            INTEGER NOT NULL,
    revert_until                  INTEGER NOT NULL,
    earlier_device                TEXT NOT NULL REFERENCES devices(id),
    new_device                    TEXT REFERENCES devices(id),
    earlier_attribute_commitment  BLOB CHECK (earlier_attribute_commitment IS NULL OR length(earlier_attribute_commitment) = 32),
    earlier_attribute_schema      INTEGER,
    earlier_attributes_at         INTEGER,
    challenge                     BLOB NOT NULL CHECK (length(challenge) = 32),
    failed_attempts               INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    reverted_at                   INTEGER,
    FOREIGN KEY (tenant_id, customer_ref) REFERENCES customers(tenant_id, customer_ref)
);
CREATE INDEX credential_changes_by_customer ON credential_changes(tenant_id, customer_ref, at);
CREATE INDEX credential_changes_by_device ON credential_changes(earlier_device);

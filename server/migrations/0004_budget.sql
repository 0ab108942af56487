-- The per-customer daily budget counts the sessions pushed to a customer
-- in the last 24 hours.
CREATE INDEX sessions_by_customer ON sessions(tenant_id, customer_ref, created_at);

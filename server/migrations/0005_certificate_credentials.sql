-- Client certificates (mTLS) as credentials. A certificate credential's
-- token_hash holds the SHA-256 fingerprint of the client's leaf certificate
-- (its DER encoding); the certificate itself is not stored.
ALTER TABLE credentials ADD COLUMN kind TEXT NOT NULL DEFAULT 'token'
    CHECK (kind IN ('token', 'certificate'));

-- A certificate names one credential only, across tenants and even after
-- revocation (a revoked certificate must not come back by re-registering
-- it); the lookup at every RPC goes through this index.
CREATE UNIQUE INDEX credentials_by_certificate ON credentials(token_hash)
    WHERE kind = 'certificate';

-- A digest of each mutation's name and arguments, so a reused id with other content is refused.
ALTER TABLE sync_mutations ADD COLUMN digest TEXT;

-- Leases: a job that must run on one replica at a time holds its row until `expires_at`.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

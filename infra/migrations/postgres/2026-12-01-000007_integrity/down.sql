DROP TABLE leases;
ALTER TABLE sync_mutations DROP COLUMN digest;

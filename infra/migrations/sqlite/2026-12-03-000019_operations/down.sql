ALTER TABLE members DROP COLUMN erased_at;
ALTER TABLE members DROP COLUMN left_at;
DROP INDEX clock_ins_precise;
ALTER TABLE clock_ins DROP COLUMN coarse;
DROP TABLE audit_events;

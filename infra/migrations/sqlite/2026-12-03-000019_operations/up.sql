-- The audit log: every write a person makes, in the writer's transaction. Append-only (the
-- retention job deletes whole rows past the township's retention, nothing updates one).
CREATE TABLE audit_events (
    id                  TEXT PRIMARY KEY,
    at                  TIMESTAMP NOT NULL,
    -- NULL: the operator at the command line (`yunlian create-admin`).
    actor_id            TEXT,
    operation           TEXT NOT NULL,
    subject_kind        TEXT NOT NULL,
    subject_id          TEXT NOT NULL,
    org_path            TEXT NOT NULL,
    request_id          TEXT,
    changes             TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at, id);
CREATE INDEX audit_events_path ON audit_events (org_path, at);
CREATE INDEX audit_events_subject ON audit_events (subject_id, at);

-- Clock-in coordinates are kept precise for the township's retention, then coarsened.
ALTER TABLE clock_ins ADD COLUMN coarse BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX clock_ins_precise ON clock_ins (coarse, created_at);

-- A member who left: deactivated at once, their phone number and device keys erased after
-- the retention period (their attendance stays counted).
ALTER TABLE members ADD COLUMN left_at TIMESTAMP;
ALTER TABLE members ADD COLUMN erased_at TIMESTAMP;

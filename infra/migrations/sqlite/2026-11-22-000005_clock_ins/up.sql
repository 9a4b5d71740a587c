-- Clock-ins with their evidence. One per meeting and member, whatever the phone retries.
CREATE TABLE clock_ins (
    id              TEXT PRIMARY KEY,
    meeting_id      TEXT NOT NULL REFERENCES meetings (id),
    member_id       TEXT NOT NULL REFERENCES members (id),
    device_id       TEXT NOT NULL REFERENCES devices (id),
    punctuality     TEXT NOT NULL,
    event_time      TIMESTAMP NOT NULL,
    time_source     TEXT NOT NULL,
    device_time     TIMESTAMP NOT NULL,
    code            TEXT NOT NULL,
    lat             DOUBLE PRECISION,
    lng             DOUBLE PRECISION,
    accuracy_m      DOUBLE PRECISION,
    signature       TEXT NOT NULL,
    unlock          TEXT NOT NULL,
    via             TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    UNIQUE (meeting_id, member_id)
);
CREATE INDEX clock_ins_member ON clock_ins (member_id);

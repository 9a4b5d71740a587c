-- Attendance: members' registered device keys, meetings, and clock-ins.
CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    member_id   TEXT NOT NULL REFERENCES members (id),
    algorithm   TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    unlock      TEXT NOT NULL,
    label       TEXT,
    created_at  TIMESTAMP NOT NULL,
    revoked_at  TIMESTAMP,
    revoked_by  TEXT REFERENCES members (id)
);
CREATE INDEX devices_member ON devices (member_id);

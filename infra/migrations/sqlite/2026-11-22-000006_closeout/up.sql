-- Leave requests, video connections, each expected attendee's final status, and the outbox
-- of domain events written in the same transaction as the change they report.
CREATE TABLE leave_requests (
    id          TEXT PRIMARY KEY,
    meeting_id  TEXT NOT NULL REFERENCES meetings (id),
    member_id   TEXT NOT NULL REFERENCES members (id),
    reason      TEXT NOT NULL,
    status      TEXT NOT NULL,
    decided_by  TEXT REFERENCES members (id),
    decided_at  TIMESTAMP,
    note        TEXT,
    created_at  TIMESTAMP NOT NULL,
    UNIQUE (meeting_id, member_id)
);

CREATE TABLE video_events (
    event_id    TEXT PRIMARY KEY,
    meeting_id  TEXT NOT NULL REFERENCES meetings (id),
    member_id   TEXT NOT NULL REFERENCES members (id),
    kind        TEXT NOT NULL,
    at          TIMESTAMP NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
CREATE INDEX video_events_meeting ON video_events (meeting_id, member_id, at);

CREATE TABLE meeting_attendance (
    meeting_id  TEXT NOT NULL REFERENCES meetings (id),
    member_id   TEXT NOT NULL REFERENCES members (id),
    status      TEXT NOT NULL,
    video_secs  BIGINT NOT NULL,
    migrant     BOOLEAN NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (meeting_id, member_id)
);
CREATE INDEX meeting_attendance_member ON meeting_attendance (member_id);

CREATE TABLE outbox (
    id            TEXT PRIMARY KEY,
    topic         TEXT NOT NULL,
    subject       TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    published_at  TIMESTAMP
);
CREATE INDEX outbox_unpublished ON outbox (created_at) WHERE published_at IS NULL;

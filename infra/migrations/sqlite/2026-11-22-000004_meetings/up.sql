-- Meetings of organisational life, with the secret their rotating codes derive from.
CREATE TABLE meetings (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    meeting_type        TEXT NOT NULL,
    title               TEXT NOT NULL,
    agenda              TEXT,
    starts_at           TIMESTAMP NOT NULL,
    ends_at             TIMESTAMP NOT NULL,
    place               TEXT,
    fence_lat           DOUBLE PRECISION,
    fence_lng           DOUBLE PRECISION,
    fence_radius_m      DOUBLE PRECISION,
    video_room          TEXT,
    opens_before_min    BIGINT NOT NULL,
    on_time_after_min   BIGINT NOT NULL,
    status              TEXT NOT NULL,
    minutes             TEXT,
    secret              TEXT NOT NULL,
    created_by          TEXT NOT NULL REFERENCES members (id),
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);
CREATE INDEX meetings_org_starts ON meetings (org_id, starts_at);

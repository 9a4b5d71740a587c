-- Warnings (预警): one row per rule, subject and period (the dedup key), raised by the scan or
-- by an event, resolved when its condition clears; read and acknowledged by its recipient (a
-- member, or an org's committee).
CREATE TABLE warnings (
    id                  TEXT PRIMARY KEY,
    dedup_key           TEXT NOT NULL UNIQUE,
    rule                TEXT NOT NULL,
    level               TEXT NOT NULL,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    recipient_member_id TEXT REFERENCES members (id),
    recipient_org_id    TEXT REFERENCES orgs (id),
    subject             TEXT NOT NULL,
    period              TEXT NOT NULL,
    detail              TEXT NOT NULL,
    created_at          TIMESTAMP NOT NULL,
    delivered_at        TIMESTAMP,
    read_at             TIMESTAMP,
    read_by             TEXT,
    acknowledged_at     TIMESTAMP,
    acknowledged_by     TEXT,
    resolved_at         TIMESTAMP,
    resolution          TEXT,
    updated_at          TIMESTAMP NOT NULL
);
CREATE INDEX warnings_org ON warnings (org_id, id);
CREATE INDEX warnings_member ON warnings (recipient_member_id, id);
CREATE INDEX warnings_committee ON warnings (recipient_org_id, id);

-- Rectification notices (整改提示单) issued with a red warning: issued -> answered -> verified,
-- or returned for another answer.
CREATE TABLE rectifications (
    id                  TEXT PRIMARY KEY,
    warning_id          TEXT NOT NULL UNIQUE REFERENCES warnings (id),
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    period              TEXT NOT NULL,
    state               TEXT NOT NULL,
    due_at              TIMESTAMP NOT NULL,
    answer              TEXT,
    attachments         TEXT NOT NULL,
    answered_by         TEXT,
    answered_at         TIMESTAMP,
    decided_by          TEXT,
    decided_at          TIMESTAMP,
    return_reason       TEXT,
    rounds              BIGINT NOT NULL,
    escalated_at        TIMESTAMP,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);
CREATE INDEX rectifications_org ON rectifications (org_id, state);

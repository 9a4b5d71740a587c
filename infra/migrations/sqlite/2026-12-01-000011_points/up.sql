-- The points ledger: township rules (whole sets, versioned), entries that are never edited
-- (one per idempotency key; a decision on a pending entry is another entry keyed by it), and
-- volunteer services waiting for the secretary's confirmation.
CREATE TABLE points_rules (
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    version             BIGINT NOT NULL,
    rules               TEXT NOT NULL,
    created_by          TEXT,
    created_at          TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id, version)
);

CREATE TABLE points_entries (
    id                  TEXT PRIMARY KEY,
    member_id           TEXT NOT NULL REFERENCES members (id),
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    delta               BIGINT NOT NULL,
    rule                TEXT NOT NULL,
    rule_version        TEXT NOT NULL,
    source              TEXT NOT NULL,
    idem_key            TEXT NOT NULL UNIQUE,
    period              TEXT NOT NULL,
    day                 TEXT NOT NULL,
    occurred_at         TIMESTAMP NOT NULL,
    pending             BOOLEAN NOT NULL,
    resolves            TEXT,
    resolution          TEXT,
    reason              TEXT,
    created_by          TEXT,
    created_at          TIMESTAMP NOT NULL
);
CREATE INDEX points_entries_member ON points_entries (member_id, period);
CREATE INDEX points_entries_org ON points_entries (org_id, period);
CREATE INDEX points_entries_source ON points_entries (source);
CREATE INDEX points_entries_resolves ON points_entries (resolves);

CREATE TABLE volunteer_services (
    id                  TEXT PRIMARY KEY,
    member_id           TEXT NOT NULL REFERENCES members (id),
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    title               TEXT NOT NULL,
    served_at           TIMESTAMP NOT NULL,
    confirmed_by        TEXT,
    confirmed_at        TIMESTAMP,
    created_at          TIMESTAMP NOT NULL
);
CREATE INDEX volunteer_services_org ON volunteer_services (org_id, id);

-- The red and yellow lists (红黄榜) of a branch for a period: a draft the secretary may
-- regenerate, then published once (and from then on synced to the branch).
CREATE TABLE points_lists (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    period              TEXT NOT NULL,
    state               TEXT NOT NULL,
    entries             TEXT NOT NULL,
    generated_by        TEXT NOT NULL,
    generated_at        TIMESTAMP NOT NULL,
    published_by        TEXT,
    published_at        TIMESTAMP,
    UNIQUE (org_id, period)
);

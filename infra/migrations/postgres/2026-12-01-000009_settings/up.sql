-- What each org overrides of the settings (JSON of the fields it sets), versioned: a change is
-- a new version, so history is never rewritten; the highest version is in force.
CREATE TABLE org_settings (
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    version     BIGINT NOT NULL,
    overrides   TEXT NOT NULL,
    created_by  TEXT REFERENCES members (id),
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id, version)
);

-- Foundation: the org tree, members, role grants, login sessions.
-- Ids are UUIDv7 kept as text so one schema serves PostgreSQL and SQLite; times are UTC.
CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    parent_id   TEXT REFERENCES orgs (id),
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    path        TEXT NOT NULL UNIQUE,
    depth       INTEGER NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX orgs_sibling_name ON orgs (parent_id, name);
CREATE INDEX orgs_path ON orgs (path);

CREATE TABLE members (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    group_id            TEXT REFERENCES orgs (id),
    name                TEXT NOT NULL,
    phone               TEXT NOT NULL UNIQUE,
    password_hash       TEXT,
    status              TEXT NOT NULL,
    join_date           DATE,
    residence           TEXT NOT NULL,
    migrant_city        TEXT,
    elderly_or_infirm   BOOLEAN NOT NULL,
    central_household   BOOLEAN NOT NULL,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);
CREATE INDEX members_org ON members (org_id, id);
CREATE INDEX members_group ON members (group_id);

CREATE TABLE role_grants (
    id          TEXT PRIMARY KEY,
    member_id   TEXT NOT NULL REFERENCES members (id),
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    role        TEXT NOT NULL,
    granted_by  TEXT REFERENCES members (id),
    created_at  TIMESTAMP NOT NULL,
    UNIQUE (member_id, org_id, role)
);
CREATE INDEX role_grants_org ON role_grants (org_id);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    member_id       TEXT NOT NULL REFERENCES members (id),
    created_at      TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    revoked_at      TIMESTAMP,
    revoke_reason   TEXT
);
CREATE INDEX sessions_member ON sessions (member_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    issued_at   TIMESTAMP NOT NULL,
    used_at     TIMESTAMP
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

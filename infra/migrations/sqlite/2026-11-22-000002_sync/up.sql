-- Sync: per-scope version counters that commit in order, an index of the latest version of
-- every synced row (tombstones included), and each phone's mutation ledger.
CREATE TABLE sync_scopes (
    scope       TEXT PRIMARY KEY,
    version     BIGINT NOT NULL,
    epoch       TEXT NOT NULL,
    floor       BIGINT NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

CREATE TABLE sync_index (
    scope       TEXT NOT NULL,
    entity      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    deleted     BOOLEAN NOT NULL,
    changed_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, entity, entity_id)
);
CREATE UNIQUE INDEX sync_index_scope_version ON sync_index (scope, version);
CREATE INDEX sync_index_tombstones ON sync_index (changed_at) WHERE deleted;

CREATE TABLE sync_clients (
    client_id         TEXT PRIMARY KEY,
    member_id         TEXT NOT NULL REFERENCES members (id),
    last_mutation_id  BIGINT NOT NULL,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);

CREATE TABLE sync_mutations (
    client_id     TEXT NOT NULL REFERENCES sync_clients (client_id),
    mutation_id   BIGINT NOT NULL,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    code          TEXT,
    result        TEXT,
    event_time    TIMESTAMP NOT NULL,
    time_source   TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (client_id, mutation_id)
);

-- A device's push token (one per device; gone when the device is revoked).
CREATE TABLE push_tokens (
    device_id           TEXT PRIMARY KEY REFERENCES devices (id),
    member_id           TEXT NOT NULL REFERENCES members (id),
    provider            TEXT NOT NULL,
    token               TEXT NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);
CREATE INDEX push_tokens_member ON push_tokens (member_id);

-- Pushes to a member's phones: warnings gathered for a window, then sent (retried with a
-- growing pause), and kept dead after the last attempt until an admin replays them.
CREATE TABLE pushes (
    id                  TEXT PRIMARY KEY,
    member_id           TEXT NOT NULL REFERENCES members (id),
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    items               TEXT NOT NULL,
    state               TEXT NOT NULL,
    attempts            BIGINT NOT NULL,
    send_at             TIMESTAMP NOT NULL,
    last_error          TEXT,
    created_at          TIMESTAMP NOT NULL,
    sent_at             TIMESTAMP,
    updated_at          TIMESTAMP NOT NULL
);
CREATE INDEX pushes_due ON pushes (state, send_at);
CREATE INDEX pushes_member ON pushes (member_id, state);

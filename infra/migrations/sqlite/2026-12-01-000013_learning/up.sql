-- Learning: items published to an org subtree, each member's progress as the server saw it,
-- quiz submissions (one per member and quiz), and learning visits to elderly members.
CREATE TABLE learning_items (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    kind                TEXT NOT NULL,
    title               TEXT NOT NULL,
    body                TEXT,
    length_secs         BIGINT NOT NULL,
    required_percent    BIGINT NOT NULL,
    questions           TEXT NOT NULL,
    created_by          TEXT NOT NULL REFERENCES members (id),
    created_at          TIMESTAMP NOT NULL
);
CREATE INDEX learning_items_org ON learning_items (org_id, id);

CREATE TABLE learning_progress (
    member_id           TEXT NOT NULL REFERENCES members (id),
    item_id             TEXT NOT NULL REFERENCES learning_items (id),
    last_at             TIMESTAMP,
    last_position       BIGINT NOT NULL,
    credited_secs       BIGINT NOT NULL,
    completed_at        TIMESTAMP,
    visit               BOOLEAN NOT NULL,
    PRIMARY KEY (member_id, item_id)
);
CREATE INDEX learning_progress_item ON learning_progress (item_id);

CREATE TABLE quiz_submissions (
    member_id           TEXT NOT NULL REFERENCES members (id),
    item_id             TEXT NOT NULL REFERENCES learning_items (id),
    answers             TEXT NOT NULL,
    correct             BIGINT NOT NULL,
    total               BIGINT NOT NULL,
    submitted_at        TIMESTAMP NOT NULL,
    PRIMARY KEY (member_id, item_id)
);

CREATE TABLE learning_visits (
    id                  TEXT PRIMARY KEY,
    item_id             TEXT NOT NULL REFERENCES learning_items (id),
    member_id           TEXT NOT NULL REFERENCES members (id),
    visitor_id          TEXT NOT NULL REFERENCES members (id),
    duration_secs       BIGINT NOT NULL,
    confirmation        TEXT NOT NULL,
    note                TEXT,
    visited_at          TIMESTAMP NOT NULL
);

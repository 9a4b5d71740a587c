-- The branch board (党建朋友圈): households members relay for, topics, comments, likes,
-- reports, images, and the cases suggestions and life needs become, with their history.
CREATE TABLE households (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    name                TEXT NOT NULL,
    address             TEXT,
    central_member_id   TEXT REFERENCES members (id),
    created_by          TEXT NOT NULL REFERENCES members (id),
    created_at          TIMESTAMP NOT NULL
);
CREATE INDEX households_org ON households (org_id, id);
CREATE INDEX households_central ON households (central_member_id);

CREATE TABLE images (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    uploaded_by         TEXT NOT NULL REFERENCES members (id),
    content_type        TEXT NOT NULL,
    width               BIGINT NOT NULL,
    height              BIGINT NOT NULL,
    bytes               BIGINT NOT NULL,
    post_id             TEXT,
    created_at          TIMESTAMP NOT NULL
);
CREATE INDEX images_post ON images (post_id);

CREATE TABLE posts (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    title               TEXT NOT NULL,
    body                TEXT NOT NULL,
    image_ids           TEXT NOT NULL,
    feedback_until      TIMESTAMP NOT NULL,
    commenters          TEXT NOT NULL,
    group_ids           TEXT NOT NULL,
    pinned              BOOLEAN NOT NULL,
    closed_at           TIMESTAMP,
    created_by          TEXT NOT NULL REFERENCES members (id),
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL,
    comment_count       BIGINT NOT NULL,
    like_count          BIGINT NOT NULL
);
CREATE INDEX posts_org ON posts (org_id, id);

CREATE TABLE comments (
    id                  TEXT PRIMARY KEY,
    post_id             TEXT NOT NULL REFERENCES posts (id),
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    author_id           TEXT NOT NULL REFERENCES members (id),
    body                TEXT NOT NULL,
    category            TEXT NOT NULL,
    household_id        TEXT REFERENCES households (id),
    case_id             TEXT,
    like_count          BIGINT NOT NULL,
    hidden_reason       TEXT,
    hidden_by           TEXT,
    hidden_at           TIMESTAMP,
    created_at          TIMESTAMP NOT NULL
);
CREATE INDEX comments_post ON comments (post_id, id);
CREATE INDEX comments_org ON comments (org_id, created_at);
CREATE INDEX comments_author ON comments (author_id);

CREATE TABLE post_likes (
    post_id             TEXT NOT NULL REFERENCES posts (id),
    member_id           TEXT NOT NULL REFERENCES members (id),
    created_at          TIMESTAMP NOT NULL,
    PRIMARY KEY (post_id, member_id)
);

CREATE TABLE comment_likes (
    comment_id          TEXT NOT NULL REFERENCES comments (id),
    member_id           TEXT NOT NULL REFERENCES members (id),
    created_at          TIMESTAMP NOT NULL,
    PRIMARY KEY (comment_id, member_id)
);

CREATE TABLE comment_reports (
    id                  TEXT PRIMARY KEY,
    comment_id          TEXT NOT NULL REFERENCES comments (id),
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    reporter_id         TEXT NOT NULL REFERENCES members (id),
    reason              TEXT NOT NULL,
    state               TEXT NOT NULL,
    decided_by          TEXT,
    decided_at          TIMESTAMP,
    created_at          TIMESTAMP NOT NULL,
    UNIQUE (comment_id, reporter_id)
);
CREATE INDEX comment_reports_org ON comment_reports (org_id, state);

CREATE TABLE cases (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    handler_org_id      TEXT NOT NULL REFERENCES orgs (id),
    post_id             TEXT NOT NULL REFERENCES posts (id),
    comment_id          TEXT NOT NULL UNIQUE REFERENCES comments (id),
    author_id           TEXT NOT NULL REFERENCES members (id),
    household_id        TEXT REFERENCES households (id),
    category            TEXT NOT NULL,
    body                TEXT NOT NULL,
    state               TEXT NOT NULL,
    assignee_id         TEXT REFERENCES members (id),
    due_at              TIMESTAMP,
    overdue_at          TIMESTAMP,
    reply               TEXT,
    decline_reason      TEXT,
    merged_into         TEXT REFERENCES cases (id),
    transferred_at      TIMESTAMP,
    closed_at           TIMESTAMP,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);
CREATE INDEX cases_org ON cases (org_id, id);
CREATE INDEX cases_handler ON cases (handler_org_id, id);
CREATE INDEX cases_due ON cases (state, due_at);
CREATE INDEX cases_author ON cases (author_id);
CREATE INDEX cases_merged ON cases (merged_into);

CREATE TABLE case_steps (
    id                  TEXT PRIMARY KEY,
    case_id             TEXT NOT NULL REFERENCES cases (id),
    action              TEXT NOT NULL,
    actor_id            TEXT,
    at                  TIMESTAMP NOT NULL,
    note                TEXT
);
CREATE INDEX case_steps_case ON case_steps (case_id, id);

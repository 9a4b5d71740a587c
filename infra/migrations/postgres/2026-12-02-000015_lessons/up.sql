-- Courses of lessons: a course keeps its lessons in order; each member's progress on each
-- lesson is timed as an item of the lesson's kind, and the course completes when all have.
ALTER TABLE learning_items ADD COLUMN lessons TEXT NOT NULL DEFAULT '[]';
CREATE TABLE lesson_progress (
    member_id           TEXT NOT NULL REFERENCES members (id),
    item_id             TEXT NOT NULL REFERENCES learning_items (id),
    lesson              BIGINT NOT NULL,
    last_at             TIMESTAMP,
    last_position       BIGINT NOT NULL,
    credited_secs       BIGINT NOT NULL,
    completed_at        TIMESTAMP,
    PRIMARY KEY (member_id, item_id, lesson)
);

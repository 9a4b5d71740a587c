DROP TABLE lesson_progress;
ALTER TABLE learning_items DROP COLUMN lessons;

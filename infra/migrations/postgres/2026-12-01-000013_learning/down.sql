DROP TABLE learning_visits;
DROP TABLE quiz_submissions;
DROP TABLE learning_progress;
DROP TABLE learning_items;

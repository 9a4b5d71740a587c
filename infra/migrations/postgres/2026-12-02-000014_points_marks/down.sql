DROP TABLE points_marks;

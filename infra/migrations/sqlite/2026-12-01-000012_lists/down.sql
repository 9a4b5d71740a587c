DROP TABLE points_lists;

DROP TABLE points_totals;

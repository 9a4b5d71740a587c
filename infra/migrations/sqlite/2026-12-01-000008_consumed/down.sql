DROP TABLE consumed;

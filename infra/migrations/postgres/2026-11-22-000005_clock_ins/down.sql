DROP TABLE clock_ins;

DROP TABLE volunteer_services;
DROP TABLE points_entries;
DROP TABLE points_rules;

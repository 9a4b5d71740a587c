DROP TABLE rectifications;
DROP TABLE warnings;

DROP TABLE sync_mutations;
DROP TABLE sync_clients;
DROP TABLE sync_index;
DROP TABLE sync_scopes;

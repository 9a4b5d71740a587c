//! End-to-end tests: the real server on a random port, spoken to over HTTP. One binary, so it
//! compiles once. On SQLite by default; on PostgreSQL when `TEST_DATABASE_URL` is set, and with
//! Redis when `TEST_REDIS_URL` is set (`.ci/run` runs both).

mod helpers;

mod access;
mod accounts;
mod attendance;
mod bad_input;
mod bad_input_table;
mod closeout;
mod contract;
mod contract_check;
mod events;
mod foundation;
mod golden;
mod images;
mod jobs;
mod moments;
mod operations;
mod points;
mod process;
mod push;
mod races;
mod redis_outage;
mod repository;
mod rosters;
mod settings;
mod sync;
mod sync_sim;
mod units;
mod warnings;

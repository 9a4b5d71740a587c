//! Yunlian's ports made real: diesel repositories on PostgreSQL and SQLite from one code path,
//! embedded migrations, Redis, password hashing and the system clock.

/// The bus committed domain events leave the outbox for (a Redis stream, or in-process).
pub mod backup;
pub mod bus;
pub mod datadir;
pub mod db;
pub mod disk;
pub mod images;
pub mod objects;
pub mod password;
pub mod push;
pub mod ratelimit;
/// The Redis client, behind a circuit breaker.
pub mod redis;
pub mod stream;
pub mod workbook;

pub use db::Db;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl yunlian_domain::ports::Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        yunlian_domain::truncate_micros(chrono::Utc::now())
    }
}

//! Yunlian's ports made real: diesel repositories on PostgreSQL and SQLite from one code path,
//! embedded migrations, Redis, password hashing and the system clock.

pub mod db;
pub mod events;
pub mod password;
pub mod ratelimit;
pub mod redis_bus;

pub use db::Db;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl yunlian_domain::ports::Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        yunlian_domain::truncate_micros(chrono::Utc::now())
    }
}

//! Yunlian's party-building domain: types parsed once at the edge, rules as plain functions,
//! and the ports (traits) that `infra` makes real. No IO lives here.

pub mod attendance;
pub mod audit;
pub mod auth;
pub mod error;
pub mod events;
pub mod learning;
pub mod member;
pub mod moments;
pub mod org;
pub mod points;
pub mod ports;
pub mod rfc3339;
pub mod roster;
pub mod settings;
pub mod sync;
pub mod text;
pub mod warnings;

pub use error::{Error, FieldError};

/// Truncate a timestamp to microseconds: PostgreSQL keeps micro, SQLite would keep nano, and a
/// value must read back equal on both.
pub fn truncate_micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::{DurationRound, TimeDelta};
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

//! Ports: the small traits that `infra` makes real and tests can replace.

use chrono::{DateTime, Utc};
use std::future::Future;

/// Where time comes from. Rules take times as arguments; only the edges ask the clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// A clock that stands still, for tests that walk time by hand.
#[derive(Debug)]
pub struct FixedClock(pub std::sync::Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn at(t: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(t))
    }
    pub fn advance(&self, by: chrono::TimeDelta) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *g += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The outcome of counting one attempt against a fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    Denied { retry_after_secs: u64 },
}

/// Counts failed attempts per key in fixed windows (login per phone, per client address).
/// Shared across replicas when backed by Redis; in-process otherwise.
pub trait RateLimiter: Send + Sync {
    /// Whether `key` may try again: denied once `max` failures fall in its current window.
    fn check(
        &self,
        key: &str,
        max: u32,
    ) -> impl Future<Output = crate::error::Result<Admission>> + Send;
    /// Count one failure of `key`; its window of `window_secs` starts at its first failure.
    fn record(
        &self,
        key: &str,
        window_secs: u64,
    ) -> impl Future<Output = crate::error::Result<()>> + Send;
    /// Forget the failures of `key` (after a successful login).
    fn clear(&self, key: &str) -> impl Future<Output = crate::error::Result<()>> + Send;
}

/// A domain event as committed to the outbox, with the change it reports. Its id is unique, so
/// a consumer that sees it twice (delivery is at least once) drops the repeat.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutboxEvent {
    pub id: uuid::Uuid,
    pub topic: String,
    pub subject: String,
    pub payload: serde_json::Value,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
}

/// Where committed events go once the relay has read them from the outbox: a Redis stream that
/// every replica and consumer reads, or subscribers inside this one process. An error leaves
/// the events unpublished in the outbox, to be tried again.
pub trait EventBus: Send + Sync {
    fn publish(
        &self,
        events: &[OutboxEvent],
    ) -> impl Future<Output = crate::error::Result<()>> + Send;
}

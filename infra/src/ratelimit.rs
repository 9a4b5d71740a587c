//! Fixed-window attempt counters: in-process for a single server, Redis for replicas.

use crate::redis_bus::Redis;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use yunlian_domain::ports::{Admission, RateLimiter};
use yunlian_domain::Error;

/// Counters in this process's memory: key → (window end, failures).
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter for MemoryLimiter {
    async fn check(&self, key: &str, max: u32) -> Result<Admission, Error> {
        let now = Instant::now();
        let w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match w.get(key) {
            Some((end, n)) if *end > now && *n >= max => Admission::Denied {
                retry_after_secs: end.duration_since(now).as_secs().max(1),
            },
            _ => Admission::Allowed,
        })
    }

    async fn record(&self, key: &str, window_secs: u64) -> Result<(), Error> {
        let now = Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() > 100_000 {
            w.retain(|_, (end, _)| *end > now);
        }
        let entry = w.entry(key.to_string()).or_insert((now, 0));
        if entry.0 <= now {
            *entry = (now + Duration::from_secs(window_secs), 0);
        }
        entry.1 += 1;
        Ok(())
    }

    async fn clear(&self, key: &str) -> Result<(), Error> {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        Ok(())
    }
}

/// Counters in Redis, shared by every replica: INCR, with the expiry set on the first failure.
#[derive(Clone)]
pub struct RedisLimiter {
    pub redis: Redis,
    pub prefix: String,
}

impl RedisLimiter {
    fn key(&self, key: &str) -> String {
        format!("{}rl:{key}", self.prefix)
    }
}

impl RateLimiter for RedisLimiter {
    async fn check(&self, key: &str, max: u32) -> Result<Admission, Error> {
        let (count, ttl) = self.redis.get_with_ttl(&self.key(key)).await?;
        if count >= u64::from(max) && ttl > 0 {
            Ok(Admission::Denied {
                retry_after_secs: ttl as u64,
            })
        } else {
            Ok(Admission::Allowed)
        }
    }

    async fn record(&self, key: &str, window_secs: u64) -> Result<(), Error> {
        self.redis
            .incr_with_ttl(&self.key(key), window_secs)
            .await
            .map(|_| ())
    }

    async fn clear(&self, key: &str) -> Result<(), Error> {
        self.redis.del(&self.key(key)).await
    }
}

/// The limiter a server runs with: Redis when configured, memory otherwise.
pub enum Limiter {
    Memory(MemoryLimiter),
    Redis(RedisLimiter),
}

impl RateLimiter for Limiter {
    async fn check(&self, key: &str, max: u32) -> Result<Admission, Error> {
        match self {
            Limiter::Memory(m) => m.check(key, max).await,
            Limiter::Redis(r) => r.check(key, max).await,
        }
    }
    async fn record(&self, key: &str, window_secs: u64) -> Result<(), Error> {
        match self {
            Limiter::Memory(m) => m.record(key, window_secs).await,
            Limiter::Redis(r) => r.record(key, window_secs).await,
        }
    }
    async fn clear(&self, key: &str) -> Result<(), Error> {
        match self {
            Limiter::Memory(m) => m.clear(key).await,
            Limiter::Redis(r) => r.clear(key).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn three_failures_lock_a_key_until_cleared() {
        let l = MemoryLimiter::default();
        for _ in 0..3 {
            assert_eq!(l.check("p", 3).await.ok(), Some(Admission::Allowed));
            l.record("p", 60).await.ok();
        }
        assert!(matches!(
            l.check("p", 3).await,
            Ok(Admission::Denied {
                retry_after_secs: 1..=60
            })
        ));
        assert_eq!(l.check("q", 3).await.ok(), Some(Admission::Allowed));
        l.clear("p").await.ok();
        assert_eq!(l.check("p", 3).await.ok(), Some(Admission::Allowed));
    }
}

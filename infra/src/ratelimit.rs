//! Fixed-window attempt counters: in-process for a single server, Redis for replicas.

use crate::redis_bus::Redis;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use yunlian_domain::ports::{Admission, RateLimiter};
use yunlian_domain::Error;

/// Counters in this process's memory. Windows are kept per key and swept as they expire.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter for MemoryLimiter {
    async fn hit(&self, key: &str, max: u32, window_secs: u64) -> Result<Admission, Error> {
        let now = Instant::now();
        let window = Duration::from_secs(window_secs);
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = w.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > max {
            let left = window
                .saturating_sub(now.duration_since(entry.0))
                .as_secs()
                .max(1);
            Ok(Admission::Denied {
                retry_after_secs: left,
            })
        } else {
            Ok(Admission::Allowed)
        }
    }

    async fn clear(&self, key: &str) -> Result<(), Error> {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        Ok(())
    }
}

/// Counters in Redis, shared by every replica: INCR, and EXPIRE on the first hit of a window.
#[derive(Clone)]
pub struct RedisLimiter {
    pub redis: Redis,
    pub prefix: String,
}

impl RateLimiter for RedisLimiter {
    async fn hit(&self, key: &str, max: u32, window_secs: u64) -> Result<Admission, Error> {
        let k = format!("{}rl:{key}", self.prefix);
        let (count, ttl): (u64, i64) = self.redis.incr_with_ttl(&k, window_secs).await?;
        if count > u64::from(max) {
            Ok(Admission::Denied {
                retry_after_secs: ttl.max(1) as u64,
            })
        } else {
            Ok(Admission::Allowed)
        }
    }

    async fn clear(&self, key: &str) -> Result<(), Error> {
        self.redis.del(&format!("{}rl:{key}", self.prefix)).await
    }
}

/// The limiter a server runs with: Redis when configured, memory otherwise.
pub enum Limiter {
    Memory(MemoryLimiter),
    Redis(RedisLimiter),
}

impl RateLimiter for Limiter {
    async fn hit(&self, key: &str, max: u32, window_secs: u64) -> Result<Admission, Error> {
        match self {
            Limiter::Memory(m) => m.hit(key, max, window_secs).await,
            Limiter::Redis(r) => r.hit(key, max, window_secs).await,
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
    async fn the_fourth_hit_of_three_is_denied_until_cleared() {
        let l = MemoryLimiter::default();
        for _ in 0..3 {
            assert_eq!(l.hit("p", 3, 60).await.ok(), Some(Admission::Allowed));
        }
        assert!(matches!(
            l.hit("p", 3, 60).await,
            Ok(Admission::Denied {
                retry_after_secs: 1..=60
            })
        ));
        assert_eq!(l.hit("q", 3, 60).await.ok(), Some(Admission::Allowed));
        l.clear("p").await.ok();
        assert_eq!(l.hit("p", 3, 60).await.ok(), Some(Admission::Allowed));
    }
}

//! Fixed-window attempt counters: in-process for a single server, Redis for replicas.

use crate::redis::Redis;
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

/// Where the counters live.
pub enum Backend {
    Memory(MemoryLimiter),
    Redis(RedisLimiter),
}

/// The limiter a server runs with: Redis when configured, memory otherwise.
///
/// Keys are a keyed hash of what they count (a phone number, an address), so no phone number
/// appears in a Redis key name. Redis is never the source of truth: while it cannot be reached,
/// each replica counts in its own memory with half the allowance (stricter, never none), and
/// logins go on.
pub struct Limiter {
    backend: Backend,
    secret: Vec<u8>,
    fallback: MemoryLimiter,
    redis_down: std::sync::atomic::AtomicBool,
}

impl Limiter {
    pub fn new(backend: Backend, secret: &[u8]) -> Self {
        Limiter {
            backend,
            secret: secret.to_vec(),
            fallback: MemoryLimiter::default(),
            redis_down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// HMAC-SHA256 of `key` under the server's secret, hex (the first 128 bits).
    fn hashed(&self, key: &str) -> String {
        use hmac::{Mac, SimpleHmac};
        use sha2::Sha256;
        let mut mac = match SimpleHmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            // Any key length is accepted by HMAC; unreachable, but never panic on it.
            Err(_) => return key.len().to_string(),
        };
        mac.update(key.as_bytes());
        mac.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn degraded(&self, e: &Error) {
        if !self
            .redis_down
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(error = %e, "rate limiter: Redis unreachable; counting per instance with half the allowance");
        }
    }

    fn recovered(&self) {
        if self
            .redis_down
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!("rate limiter: Redis is back");
        }
    }
}

/// The allowance while Redis is down: half, at least one.
fn stricter(max: u32) -> u32 {
    (max / 2).max(1)
}

impl RateLimiter for Limiter {
    async fn check(&self, key: &str, max: u32) -> Result<Admission, Error> {
        let k = self.hashed(key);
        match &self.backend {
            Backend::Memory(m) => m.check(&k, max).await,
            Backend::Redis(r) => match r.check(&k, max).await {
                Ok(a) => {
                    self.recovered();
                    Ok(a)
                }
                Err(e) => {
                    self.degraded(&e);
                    self.fallback.check(&k, stricter(max)).await
                }
            },
        }
    }
    async fn record(&self, key: &str, window_secs: u64) -> Result<(), Error> {
        let k = self.hashed(key);
        match &self.backend {
            Backend::Memory(m) => m.record(&k, window_secs).await,
            Backend::Redis(r) => match r.record(&k, window_secs).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    self.degraded(&e);
                    self.fallback.record(&k, window_secs).await
                }
            },
        }
    }
    async fn clear(&self, key: &str) -> Result<(), Error> {
        let k = self.hashed(key);
        self.fallback.clear(&k).await?;
        match &self.backend {
            Backend::Memory(m) => m.clear(&k).await,
            Backend::Redis(r) => {
                if let Err(e) = r.clear(&k).await {
                    self.degraded(&e);
                }
                Ok(())
            }
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

    #[test]
    fn keys_are_hashed_under_the_secret_and_hide_the_phone() {
        let a = Limiter::new(Backend::Memory(MemoryLimiter::default()), b"secret-a");
        let b = Limiter::new(Backend::Memory(MemoryLimiter::default()), b"secret-b");
        let k = a.hashed("login:phone:13800138000");
        assert_eq!(k.len(), 32);
        assert!(!k.contains("13800138000"));
        assert_eq!(k, a.hashed("login:phone:13800138000"));
        assert_ne!(k, b.hashed("login:phone:13800138000"));
        assert_eq!((stricter(5), stricter(1), stricter(30)), (2, 1, 15));
    }
}

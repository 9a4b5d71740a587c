//! Redis: optional, never the source of truth. A connection manager reconnects by itself;
//! every call has a short timeout so a Redis outage degrades to an error, not a hang.

use redis::aio::ConnectionManager;
use std::time::Duration;
use yunlian_domain::Error;

#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    breaker: std::sync::Arc<Breaker>,
}

const TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed call, calls fail at once for this long instead of each waiting on a dead
/// server: a login during an outage must not pay a connection timeout three times over.
const OPEN_FOR: Duration = Duration::from_secs(2);

/// A circuit breaker: open (failing fast) until a moment after the last failure.
#[derive(Default)]
struct Breaker {
    open_until_ms: std::sync::atomic::AtomicU64,
}

fn since_start_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

impl Breaker {
    fn is_open(&self) -> bool {
        since_start_ms()
            < self
                .open_until_ms
                .load(std::sync::atomic::Ordering::Relaxed)
    }
    fn trip(&self) {
        let until = since_start_ms() + OPEN_FOR.as_millis() as u64;
        self.open_until_ms
            .store(until, std::sync::atomic::Ordering::Relaxed);
    }
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("redis: {e}"))
}

impl Redis {
    pub async fn connect(url: &str) -> Result<Redis, Error> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn =
            tokio::time::timeout(TIMEOUT * 2, ConnectionManager::new_with_config(client, cfg))
                .await
                .map_err(|_| unavailable("connect timed out"))?
                .map_err(unavailable)?;
        Ok(Redis {
            conn,
            breaker: Default::default(),
        })
    }

    /// Runs one call: at once unavailable while the breaker is open; a failure or a timeout
    /// opens it.
    async fn call<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        if self.breaker.is_open() {
            return Err(unavailable("unreachable a moment ago"));
        }
        match tokio::time::timeout(TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.breaker.trip();
                Err(unavailable(e))
            }
            Err(_) => {
                self.breaker.trip();
                Err(unavailable("timed out"))
            }
        }
    }

    pub async fn ping(&self) -> Result<(), Error> {
        let mut c = self.conn.clone();
        let pong: String = self.call(redis::cmd("PING").query_async(&mut c)).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(unavailable(pong))
        }
    }

    /// INCR `key`, setting its expiry on the first increment; returns the count and the TTL left.
    pub async fn incr_with_ttl(&self, key: &str, ttl_secs: u64) -> Result<(u64, i64), Error> {
        let mut c = self.conn.clone();
        let (count, _, ttl): (u64, i64, i64) = self
            .call(
                redis::pipe()
                    .atomic()
                    .incr(key, 1)
                    .cmd("EXPIRE")
                    .arg(key)
                    .arg(ttl_secs)
                    .arg("NX")
                    .ttl(key)
                    .query_async(&mut c),
            )
            .await?;
        Ok((count, ttl))
    }

    /// The integer at `key` (0 when absent) and its TTL in seconds (negative when none).
    pub async fn get_with_ttl(&self, key: &str) -> Result<(u64, i64), Error> {
        let mut c = self.conn.clone();
        let (count, ttl): (Option<u64>, i64) = self
            .call(redis::pipe().get(key).ttl(key).query_async(&mut c))
            .await?;
        Ok((count.unwrap_or(0), ttl))
    }

    pub async fn del(&self, key: &str) -> Result<(), Error> {
        let mut c = self.conn.clone();
        let _: i64 = self
            .call(redis::cmd("DEL").arg(key).query_async(&mut c))
            .await?;
        Ok(())
    }
}

impl Redis {
    /// Appends entries to a stream in one round trip, trimming it to about `maxlen` entries.
    pub async fn xadd_all(
        &self,
        key: &str,
        maxlen: usize,
        entries: &[Vec<(&str, String)>],
    ) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for fields in entries {
            let cmd = pipe
                .cmd("XADD")
                .arg(key)
                .arg("MAXLEN")
                .arg("~")
                .arg(maxlen)
                .arg("*");
            for (f, v) in fields {
                cmd.arg(*f).arg(v);
            }
        }
        let mut c = self.conn.clone();
        let _: Vec<String> = self.call(pipe.query_async(&mut c)).await?;
        Ok(())
    }
}

/// A ranking as kept in Redis: a sorted set whose scores are the negated totals (so ascending
/// order is the most points first, and equal scores fall in member-id order: the database's
/// tie order), the members' names and branches beside it, and the mark of the ledger it was
/// built from (the newest entry's id). Never the source of truth: rebuilt from the ledger
/// whenever the mark is behind.
impl Redis {
    pub async fn rank_replace(
        &self,
        key: &str,
        mark: &str,
        totals: &[(String, i64, String)],
    ) -> Result<(), Error> {
        let (names, mark_key) = (format!("{key}:names"), format!("{key}:mark"));
        let mut pipe = redis::pipe();
        pipe.atomic().del(key).del(&names);
        for chunk in totals.chunks(1000) {
            let z: Vec<(i64, &str)> = chunk.iter().map(|(m, t, _)| (-*t, m.as_str())).collect();
            pipe.zadd_multiple(key, &z);
            let h: Vec<(&str, &str)> = chunk
                .iter()
                .map(|(m, _, who)| (m.as_str(), who.as_str()))
                .collect();
            pipe.hset_multiple(&names, &h);
        }
        pipe.set(&mark_key, mark);
        let mut c = self.conn.clone();
        let _: redis::Value = self.call(pipe.query_async(&mut c)).await?;
        Ok(())
    }

    /// The mark of the ranking stored under `key`, if one is.
    pub async fn rank_mark(&self, key: &str) -> Result<Option<String>, Error> {
        let mut c = self.conn.clone();
        self.call(
            redis::cmd("GET")
                .arg(format!("{key}:mark"))
                .query_async(&mut c),
        )
        .await
    }

    /// The mark a ranking was built from, and its first `limit` lines (member, total, the
    /// stored name and branch); `None` when it was never built.
    #[allow(clippy::type_complexity)]
    pub async fn rank_read(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Option<(String, Vec<(String, i64, String)>)>, Error> {
        let mut c = self.conn.clone();
        let (mark, lines): (Option<String>, Vec<(String, f64)>) = self
            .call(
                redis::pipe()
                    .get(format!("{key}:mark"))
                    .zrange_withscores(key, 0, limit as isize - 1)
                    .query_async(&mut c),
            )
            .await?;
        let Some(mark) = mark else { return Ok(None) };
        if lines.is_empty() {
            return Ok(Some((mark, Vec::new())));
        }
        let ids: Vec<&str> = lines.iter().map(|(m, _)| m.as_str()).collect();
        let who: Vec<Option<String>> = self
            .call(
                redis::cmd("HMGET")
                    .arg(format!("{key}:names"))
                    .arg(&ids)
                    .query_async(&mut c),
            )
            .await?;
        Ok(Some((
            mark,
            lines
                .into_iter()
                .zip(who)
                .map(|((m, s), w)| (m, -(s as i64), w.unwrap_or_default()))
                .collect(),
        )))
    }
}

/// Streams, for delivery to connected phones: the reader holds a connection of its own (a
/// blocking read would hold up every other command on a shared one).
pub type StreamEntry = (String, Vec<(String, String)>);

impl Redis {
    /// The value at `key`, set to `value` first when there is none (`SET NX` then `GET`).
    pub async fn get_or_set(&self, key: &str, value: &str) -> Result<String, Error> {
        let mut c = self.conn.clone();
        let (_, v): (Option<String>, Option<String>) = self
            .call(
                redis::pipe()
                    .cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .get(key)
                    .query_async(&mut c),
            )
            .await?;
        v.ok_or_else(|| unavailable("epoch vanished"))
    }

    /// The id of the stream's newest entry (`0-0` when it is empty or absent).
    pub async fn xlast(&self, key: &str) -> Result<String, Error> {
        let mut c = self.conn.clone();
        let last: Vec<StreamEntry> = self
            .call(
                redis::cmd("XREVRANGE")
                    .arg(key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut c),
            )
            .await?;
        Ok(last
            .into_iter()
            .next()
            .map(|(id, _)| id)
            .unwrap_or_else(|| "0-0".into()))
    }

    /// Entries after `after`, waiting up to `block_ms` for the first (`XREAD BLOCK`).
    pub async fn xread(
        &self,
        key: &str,
        after: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<StreamEntry>, Error> {
        let mut c = self.conn.clone();
        let r: Option<Vec<(String, Vec<StreamEntry>)>> = self
            .call(
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(count)
                    .arg("BLOCK")
                    .arg(block_ms)
                    .arg("STREAMS")
                    .arg(key)
                    .arg(after)
                    .query_async(&mut c),
            )
            .await?;
        Ok(r.into_iter().flatten().flat_map(|(_, e)| e).collect())
    }

    /// Entries from `from` (inclusive; `-` for the oldest) to `to`, at most `count`.
    pub async fn xrange(
        &self,
        key: &str,
        from: &str,
        to: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>, Error> {
        let mut c = self.conn.clone();
        self.call(
            redis::cmd("XRANGE")
                .arg(key)
                .arg(from)
                .arg(to)
                .arg("COUNT")
                .arg(count)
                .query_async(&mut c),
        )
        .await
    }
}

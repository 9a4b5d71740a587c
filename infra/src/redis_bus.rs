//! Redis: optional, never the source of truth. A connection manager reconnects by itself;
//! every call has a short timeout so a Redis outage degrades to an error, not a hang.

use redis::aio::ConnectionManager;
use std::time::Duration;
use yunlian_domain::Error;

#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
}

const TIMEOUT: Duration = Duration::from_secs(2);

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("redis: {e}"))
}

impl Redis {
    pub async fn connect(url: &str) -> Result<Redis, Error> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let conn =
            tokio::time::timeout(TIMEOUT * 2, ConnectionManager::new_with_config(client, cfg))
                .await
                .map_err(|_| unavailable("connect timed out"))?
                .map_err(unavailable)?;
        Ok(Redis { conn })
    }

    pub async fn ping(&self) -> Result<(), Error> {
        let mut c = self.conn.clone();
        let pong: String = redis::cmd("PING")
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(unavailable(pong))
        }
    }

    /// INCR `key`, setting its expiry on the first increment; returns the count and the TTL left.
    pub async fn incr_with_ttl(&self, key: &str, ttl_secs: u64) -> Result<(u64, i64), Error> {
        let mut c = self.conn.clone();
        let (count, _, ttl): (u64, i64, i64) = redis::pipe()
            .atomic()
            .incr(key, 1)
            .cmd("EXPIRE")
            .arg(key)
            .arg(ttl_secs)
            .arg("NX")
            .ttl(key)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok((count, ttl))
    }

    /// The integer at `key` (0 when absent) and its TTL in seconds (negative when none).
    pub async fn get_with_ttl(&self, key: &str) -> Result<(u64, i64), Error> {
        let mut c = self.conn.clone();
        let (count, ttl): (Option<u64>, i64) = redis::pipe()
            .get(key)
            .ttl(key)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok((count.unwrap_or(0), ttl))
    }

    pub async fn del(&self, key: &str) -> Result<(), Error> {
        let mut c = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
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
        let _: Vec<String> = pipe.query_async(&mut c).await.map_err(unavailable)?;
        Ok(())
    }
}

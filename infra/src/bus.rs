//! The outbox relay: committed domain events leave the database for a bus, never before their
//! transaction commits. With Redis they go to one stream (`{prefix}events`) that every replica
//! and consumer reads; without it, to subscribers in this process. Delivery is at least once
//! (a crash between publishing and marking republishes); consumers drop repeats by event id.

use crate::db::{self, Db, ScopedFutureExt};
use crate::redis::Redis;
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use yunlian_domain::ports::{EventBus, OutboxEvent};
use yunlian_domain::Error;

/// Events a relay round reads and publishes at most.
const BATCH: i64 = 500;
/// About how many events the Redis stream keeps; a consumer further behind reads the outbox.
const STREAM_MAXLEN: usize = 100_000;

#[derive(Clone)]
pub enum Bus {
    Redis { redis: Redis, key: String },
    Memory(broadcast::Sender<OutboxEvent>),
}

impl Bus {
    /// The stream `{prefix}events` on Redis.
    pub fn redis(redis: Redis, prefix: &str) -> Bus {
        Bus::Redis {
            redis,
            key: format!("{prefix}events"),
        }
    }

    /// In-process: subscribers that lag by more than `capacity` events miss the oldest.
    pub fn memory(capacity: usize) -> Bus {
        Bus::Memory(broadcast::channel(capacity).0)
    }

    /// A receiver of what the in-process bus publishes from now on (None on Redis: read the
    /// stream there).
    pub fn subscribe(&self) -> Option<broadcast::Receiver<OutboxEvent>> {
        match self {
            Bus::Memory(tx) => Some(tx.subscribe()),
            Bus::Redis { .. } => None,
        }
    }
}

impl EventBus for Bus {
    async fn publish(&self, events: &[OutboxEvent]) -> Result<(), Error> {
        match self {
            Bus::Redis { redis, key } => {
                let entries: Vec<Vec<(&str, String)>> = events
                    .iter()
                    .map(|e| {
                        vec![
                            ("id", e.id.to_string()),
                            ("topic", e.topic.clone()),
                            ("subject", e.subject.clone()),
                            ("payload", e.payload.to_string()),
                            ("created_at", e.created_at.to_rfc3339()),
                        ]
                    })
                    .collect();
                redis.xadd_all(key, STREAM_MAXLEN, &entries).await
            }
            Bus::Memory(tx) => {
                for e in events {
                    // No subscriber is not an error: the event stays in the outbox table.
                    let _ = tx.send(e.clone());
                }
                Ok(())
            }
        }
    }
}

/// One relay round: publishes the oldest unpublished events and marks them, in one
/// transaction. A bus error rolls the round back: the events stay for the next round.
pub async fn relay<B>(db: &Db, bus: &B, now: DateTime<Utc>) -> Result<usize, Error>
where
    B: EventBus + Clone + 'static,
{
    let bus = bus.clone();
    db.write(move |mut c| {
        async move {
            let events = db::outbox::unpublished(&mut c, BATCH).await?;
            if events.is_empty() {
                return Ok(0);
            }
            bus.publish(&events).await?;
            let ids: Vec<_> = events.iter().map(|e| e.id).collect();
            db::outbox::mark_published(&mut c, &ids, now).await?;
            Ok(events.len())
        }
        .scope_boxed()
    })
    .await
}

//! Delivery to connected phones: every instance keeps a hub of the warning events it has seen,
//! each with an offset within an epoch (Centrifugo's design). With Redis the offsets are the
//! ids of the events stream that the outbox relay writes (every instance reads it, so a client
//! on any instance gets every warning) and the epoch is a key beside it: a Redis that lost the
//! stream has a new epoch. Without Redis the hub numbers the in-process bus's events and the
//! epoch is the process's. A client that reconnects with its last event id gets what it
//! missed, from the hub's memory or the stream; one whose id is of another epoch, or older than
//! what is kept, is told to reset (pull from the database, the source of truth).

use crate::bus::Bus;
use crate::redis::{Redis, StreamEntry};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

/// What the hub remembers for reconnecting clients, per instance.
const KEEP: usize = 10_000;
/// The topics delivered to phones.
pub const TOPICS: &[&str] = &["warning.raised", "warning.resolved"];

/// A position in an epoch's stream: a Redis stream id (`ms-seq`), or `0-n` in process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub u64, pub u64);

impl Offset {
    pub fn parse(s: &str) -> Option<Offset> {
        let (a, b) = s.split_once('-')?;
        Some(Offset(a.parse().ok()?, b.parse().ok()?))
    }
}

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// What the hub hands a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A warning event: its id on the wire is `epoch:offset`.
    Event {
        epoch: String,
        offset: Offset,
        topic: String,
        payload: serde_json::Value,
    },
    /// What came before can no longer be recovered from here (`epoch_changed`, `gap`): the
    /// phone pulls, and reconnects from the new epoch.
    Reset { epoch: String, reason: &'static str },
}

struct State {
    epoch: String,
    /// The offset this hub started from in its epoch: everything after it is in `ring` (until
    /// evicted), everything up to it only in the stream.
    floor: Offset,
    ring: VecDeque<Arc<Item>>,
    /// Oldest offset evicted from the ring.
    evicted: Option<Offset>,
}

/// A connection's start: what it missed (oldest first), a reset when that cannot be told, and
/// the live feed (which may repeat the tail of `missed`: skip offsets already sent).
pub struct Subscription {
    pub epoch: String,
    pub missed: Vec<Arc<Item>>,
    pub reset: Option<&'static str>,
    pub live: broadcast::Receiver<Arc<Item>>,
}

#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Item>>,
    state: Arc<Mutex<State>>,
    /// The stream, when the hub reads one (Redis).
    stream: Option<(Redis, String)>,
    /// Warnings this instance has marked delivered (once each).
    delivered: Arc<Mutex<std::collections::HashSet<Uuid>>>,
}

fn fields(entry: &StreamEntry) -> Option<(String, serde_json::Value)> {
    let get = |k: &str| {
        entry
            .1
            .iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.as_str())
    };
    let topic = get("topic")?;
    if !TOPICS.contains(&topic) {
        return None;
    }
    Some((
        topic.to_string(),
        serde_json::from_str(get("payload")?).ok()?,
    ))
}

impl Hub {
    fn new(epoch: String, floor: Offset, stream: Option<(Redis, String)>) -> Hub {
        Hub {
            tx: broadcast::channel(4096).0,
            state: Arc::new(Mutex::new(State {
                epoch,
                floor,
                ring: VecDeque::new(),
                evicted: None,
            })),
            stream,
            delivered: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an event to the ring and hands it to every connection.
    fn push(&self, topic: String, payload: serde_json::Value, offset: Offset) {
        let item = {
            let mut s = self.lock();
            let item = Arc::new(Item::Event {
                epoch: s.epoch.clone(),
                offset,
                topic,
                payload,
            });
            s.ring.push_back(item.clone());
            if s.ring.len() > KEEP {
                if let Some(old) = s.ring.pop_front() {
                    if let Item::Event { offset, .. } = *old {
                        s.evicted = Some(offset);
                    }
                }
            }
            item
        };
        let _ = self.tx.send(item);
    }

    /// A new epoch (Redis lost its stream): connections are told, and the hub starts again.
    fn new_epoch(&self, epoch: String) {
        {
            let mut s = self.lock();
            s.epoch = epoch.clone();
            s.floor = Offset(0, 0);
            s.ring.clear();
            s.evicted = None;
        }
        let _ = self.tx.send(Arc::new(Item::Reset {
            epoch,
            reason: "epoch_changed",
        }));
    }

    /// Starts the hub: in process, numbering what the in-process bus carries; on Redis,
    /// reading the events stream from its newest entry, with the epoch key beside it.
    pub async fn start(bus: &Bus, reader: Option<Redis>, prefix: &str) -> Hub {
        match (bus.subscribe(), reader) {
            (Some(mut rx), _) => {
                let hub = Hub::new(Uuid::now_v7().to_string(), Offset(0, 0), None);
                let h = hub.clone();
                tokio::spawn(async move {
                    let mut n = 0;
                    loop {
                        match rx.recv().await {
                            Ok(e) => {
                                if TOPICS.contains(&e.topic.as_str()) {
                                    n += 1;
                                    h.push(e.topic.clone(), e.payload.clone(), Offset(0, n));
                                }
                            }
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                // Events were lost in this process: a new epoch says so.
                                n = 0;
                                h.new_epoch(Uuid::now_v7().to_string());
                            }
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                });
                hub
            }
            (None, Some(r)) => {
                let (key, epoch_key) = (format!("{prefix}events"), format!("{prefix}events:epoch"));
                let epoch = r
                    .get_or_set(&epoch_key, &Uuid::now_v7().to_string())
                    .await
                    .unwrap_or_default();
                let last = r.xlast(&key).await.unwrap_or_else(|_| "0-0".into());
                let floor = Offset::parse(&last).unwrap_or(Offset(0, 0));
                let hub = Hub::new(epoch, floor, Some((r.clone(), key.clone())));
                let h = hub.clone();
                tokio::spawn(async move { h.read(r, key, epoch_key, floor).await });
                hub
            }
            (None, None) => Hub::new(Uuid::now_v7().to_string(), Offset(0, 0), None),
        }
    }

    /// The Redis reader: blocks on the stream for what follows `after`; after an error, waits
    /// and checks the epoch again (a Redis that came back empty has a new one).
    async fn read(&self, r: Redis, key: String, epoch_key: String, mut after: Offset) {
        loop {
            let current = self.lock().epoch.clone();
            match r.get_or_set(&epoch_key, &Uuid::now_v7().to_string()).await {
                Ok(e) if e != current => {
                    tracing::warn!(stream = %key, "the events stream has a new epoch");
                    self.new_epoch(e);
                    after = Offset(0, 0);
                }
                Ok(_) => {}
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            match r.xread(&key, &after.to_string(), 500, 1000).await {
                Ok(entries) => {
                    for e in entries {
                        let Some(offset) = Offset::parse(&e.0) else {
                            continue;
                        };
                        after = offset;
                        if let Some((topic, payload)) = fields(&e) {
                            self.push(topic, payload, offset);
                        }
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// A connection's start, after `last` (`(epoch, offset)` from `Last-Event-ID`).
    pub async fn subscribe(&self, last: Option<(String, Offset)>) -> Subscription {
        let live = self.tx.subscribe();
        let (epoch, floor, evicted, ring) = {
            let s = self.lock();
            (s.epoch.clone(), s.floor, s.evicted, s.ring.clone())
        };
        let mut sub = Subscription {
            epoch: epoch.clone(),
            missed: Vec::new(),
            reset: None,
            live,
        };
        let Some((their_epoch, after)) = last else {
            return sub;
        };
        if their_epoch != epoch {
            sub.reset = Some("epoch_changed");
            return sub;
        }
        if evicted.is_some_and(|e| e > after) {
            sub.reset = Some("gap");
            return sub;
        }
        if after < floor {
            // Before this hub started: in the stream, if it still holds it.
            let Some((r, key)) = &self.stream else {
                sub.reset = Some("gap");
                return sub;
            };
            let oldest = r.xrange(key, "-", "+", 1).await;
            let kept = matches!(&oldest, Ok(o) if o.first().and_then(|e| Offset::parse(&e.0)).is_none_or(|o| o <= after));
            let older = if kept {
                r.xrange(key, &format!("({after}"), &floor.to_string(), KEEP)
                    .await
                    .ok()
            } else {
                None
            };
            match older {
                Some(entries) if entries.len() < KEEP => {
                    for e in entries {
                        if let (Some(offset), Some((topic, payload))) =
                            (Offset::parse(&e.0), fields(&e))
                        {
                            sub.missed.push(Arc::new(Item::Event {
                                epoch: epoch.clone(),
                                offset,
                                topic,
                                payload,
                            }));
                        }
                    }
                }
                _ => {
                    sub.reset = Some("gap");
                    return sub;
                }
            }
        }
        sub.missed.extend(
            ring.into_iter()
                .filter(|i| matches!(**i, Item::Event { offset, .. } if offset > after)),
        );
        sub
    }

    /// Whether this instance is the first to deliver this warning (it then records the time).
    pub fn first_delivery(&self, warning: Uuid) -> bool {
        let mut d = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
        if d.len() > 100_000 {
            d.clear();
        }
        d.insert(warning)
    }

    /// The epoch connections start in now.
    /// Connections subscribed to this hub now.
    pub fn connections(&self) -> usize {
        self.tx.receiver_count()
    }

    pub fn epoch(&self) -> String {
        self.lock().epoch.clone()
    }
}

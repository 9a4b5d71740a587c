//! Use cases: authorise the actor, load the facts, ask the domain, write the result and its
//! events, all in the caller's transaction and with no HTTP in sight. Handlers, sync mutations
//! and jobs call them alike; none calls another entry point.

pub mod assessment;
pub mod attendance;
pub mod audit;
pub mod cases;
pub mod learning;
pub mod lists;
pub mod meetings;
pub mod members;
pub mod moments;
pub mod points;
pub mod privacy;
pub mod push;
pub mod settings;
pub mod video;
pub mod warnings;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::events::DomainEvent;
use yunlian_domain::Error;
use yunlian_infra::db::{self, Conn, ScopedBoxFuture, ScopedFutureExt};

/// Authorise `action` on the org at `path`: not found when the caller cannot see the org at all
/// (its existence does not leak to a sibling branch), forbidden when they see it but lack the
/// role.
pub fn authorize(p: &Principal, action: Action, path: &str) -> Result<(), Error> {
    if p.can(action, path) {
        Ok(())
    } else if p.sees(path) {
        Err(Error::Forbidden("forbidden"))
    } else {
        Err(Error::NotFound)
    }
}

/// What an event consumer does with one event (the event, its id, now), in the transaction
/// that recorded the event as handled; returns how much it wrote.
pub type Handler = for<'a, 'c> fn(
    &'a mut Conn<'c>,
    DomainEvent,
    Uuid,
    DateTime<Utc>,
) -> ScopedBoxFuture<'a, 'a, Result<usize, Error>>;

/// An event consumer's round (points, warnings): every outbox event of its topics it has not
/// handled, oldest first, each in its own transaction that first records it as handled (a
/// redelivery, or a replay of the whole outbox, then changes nothing). The job runs it under
/// its lease, so one replica consumes at a time and sees every change of a source in order.
pub async fn consume(
    store: &yunlian_infra::Db,
    consumer: &'static str,
    topics: &'static [&'static str],
    handle: Handler,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let mut done = 0;
    loop {
        let events = store
            .read(move |mut c| {
                async move { db::outbox::unconsumed(&mut c, consumer, topics, 200).await }
                    .scope_boxed()
            })
            .await?;
        if events.is_empty() {
            return Ok(done);
        }
        for e in events {
            done += store
                .write(move |mut c| {
                    let e = e.clone();
                    async move {
                        if !db::outbox::consume_once(&mut c, consumer, e.id, now).await? {
                            return Ok(0);
                        }
                        match DomainEvent::parse(&e.topic, &e.payload) {
                            Some(ev) => handle(&mut c, ev, e.id, now).await,
                            None => Ok(0),
                        }
                    }
                    .scope_boxed()
                })
                .await?;
        }
    }
}

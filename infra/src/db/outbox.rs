//! The outbox: domain events written in the same transaction as the change they report, each
//! with a unique id, for points and warnings to consume idempotently. Nothing is published to
//! any transport before the writer commits; a relay reads committed rows.

use super::schema::outbox;
use super::{db_error, naive, Conn, Raw};
use crate::on;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::events::DomainEvent;
use yunlian_domain::ports::OutboxEvent;
use yunlian_domain::Error;

/// Appends a domain event in the caller's transaction; returns its id (UUIDv7).
pub async fn append(
    conn: &mut Conn<'_>,
    event: &DomainEvent,
    now: DateTime<Utc>,
) -> Result<Uuid, Error> {
    let id = Uuid::now_v7();
    let row = (
        outbox::id.eq(id.to_string()),
        outbox::topic.eq(event.topic()),
        outbox::subject.eq(event.subject()),
        outbox::payload.eq(event.payload().to_string()),
        outbox::created_at.eq(naive(now)),
    );
    on!(conn, |c| diesel::insert_into(outbox::table)
        .values(row)
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(id)
}

/// Events of a topic about a subject, oldest first: (id, payload).
pub async fn of_subject(
    conn: &mut Conn<'_>,
    topic: &str,
    subject: &str,
) -> Result<Vec<(Uuid, serde_json::Value)>, Error> {
    let rows: Vec<(String, String)> = on!(conn, |c| outbox::table
        .filter(outbox::topic.eq(topic))
        .filter(outbox::subject.eq(subject))
        .select((outbox::id, outbox::payload))
        .order(outbox::id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(id, p)| {
            Ok((
                super::uuid(&id)?,
                serde_json::from_str(&p)
                    .map_err(|e| Error::Internal(format!("outbox payload: {e}")))?,
            ))
        })
        .collect()
}

/// The oldest events not yet published, at most `limit`. On PostgreSQL the rows stay locked
/// until the caller's transaction ends and rows another relay holds are skipped, so two
/// replicas relaying at once publish each event once (SQLite has one writer anyway).
pub async fn unpublished(conn: &mut Conn<'_>, limit: i64) -> Result<Vec<OutboxEvent>, Error> {
    let q = outbox::table
        .filter(outbox::published_at.is_null())
        .select(OUTBOX_COLUMNS)
        .order((outbox::created_at, outbox::id))
        .limit(limit);
    let rows: Vec<OutboxRow> = match &mut conn.raw {
        Raw::Pg(c) => q.for_update().skip_locked().load(c).await,
        Raw::Sqlite(c) => q.load(&mut **c).await,
    }
    .map_err(db_error)?;
    rows.into_iter().map(into_event).collect()
}

type OutboxRow = (String, String, String, String, chrono::NaiveDateTime);

const OUTBOX_COLUMNS: (
    outbox::id,
    outbox::topic,
    outbox::subject,
    outbox::payload,
    outbox::created_at,
) = (
    outbox::id,
    outbox::topic,
    outbox::subject,
    outbox::payload,
    outbox::created_at,
);

fn into_event((id, topic, subject, payload, at): OutboxRow) -> Result<OutboxEvent, Error> {
    Ok(OutboxEvent {
        id: super::uuid(&id)?,
        topic,
        subject,
        payload: serde_json::from_str(&payload)
            .map_err(|e| Error::Internal(format!("outbox payload: {e}")))?,
        created_at: super::utc(at),
    })
}

/// Every event, oldest first (an operator's or a test's view; consumers read the bus).
pub async fn all(conn: &mut Conn<'_>) -> Result<Vec<OutboxEvent>, Error> {
    let rows: Vec<OutboxRow> = on!(conn, |c| outbox::table
        .select(OUTBOX_COLUMNS)
        .order((outbox::created_at, outbox::id))
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(into_event).collect()
}

pub async fn mark_published(
    conn: &mut Conn<'_>,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    on!(conn, |c| diesel::update(
        outbox::table.filter(outbox::id.eq_any(&ids))
    )
    .set(outbox::published_at.eq(naive(now)))
    .execute(c)
    .await)
    .map_err(db_error)?;
    Ok(())
}

/// Records that `consumer` handled `event`, in the consumer's own transaction; `false` when it
/// already had (a redelivery), and the consumer then changes nothing. Every event consumer
/// (points scoring attendance, warnings) starts its transaction with this.
pub async fn consume_once(
    conn: &mut Conn<'_>,
    consumer: &str,
    event: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    use super::schema::consumed;
    let n = on!(conn, |c| diesel::insert_into(consumed::table)
        .values((
            consumed::consumer.eq(consumer),
            consumed::event_id.eq(event.to_string()),
            consumed::consumed_at.eq(naive(now)),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(n == 1)
}

/// The oldest events of `topics` that `consumer` has not handled yet, at most `limit`, in the
/// order they were written (a consumer that reads the outbox itself, under its lease, sees
/// every change of a source in order).
pub async fn unconsumed(
    conn: &mut Conn<'_>,
    consumer: &str,
    topics: &[&str],
    limit: i64,
) -> Result<Vec<OutboxEvent>, Error> {
    use super::schema::consumed;
    let rows: Vec<OutboxRow> = on!(conn, |c| outbox::table
        .filter(outbox::topic.eq_any(topics))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            consumed::table
                .filter(consumed::consumer.eq(consumer))
                .filter(consumed::event_id.eq(outbox::id)),
        )))
        .select(OUTBOX_COLUMNS)
        .order((outbox::created_at, outbox::id))
        .limit(limit)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(into_event).collect()
}

/// How many committed events wait for the relay, without taking their locks (a relay mid-round
/// holds them; `unpublished` would skip them and count none).
pub async fn waiting(conn: &mut Conn<'_>) -> Result<i64, Error> {
    on!(conn, |c| outbox::table
        .filter(outbox::published_at.is_null())
        .count()
        .get_result(c)
        .await)
    .map_err(db_error)
}

/// When the oldest committed event still waiting for the relay was committed.
pub async fn oldest_waiting(conn: &mut Conn<'_>) -> Result<Option<DateTime<Utc>>, Error> {
    let t: Option<chrono::NaiveDateTime> = on!(conn, |c| outbox::table
        .filter(outbox::published_at.is_null())
        .select(diesel::dsl::min(outbox::created_at))
        .first(c)
        .await)
    .map_err(db_error)?;
    Ok(t.map(|t| t.and_utc()))
}

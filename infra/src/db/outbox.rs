//! The outbox: domain events written in the same transaction as the change they report, each
//! with a unique id, for points and warnings to consume idempotently. Nothing is published to
//! any transport before the writer commits; a relay reads committed rows.

use super::schema::outbox;
use super::{db_error, naive, Conn};
use crate::on;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::Error;

/// Appends an event; returns its id.
pub async fn append(
    conn: &mut Conn<'_>,
    topic: &str,
    subject: &str,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Uuid, Error> {
    let id = Uuid::now_v7();
    let row = (
        outbox::id.eq(id.to_string()),
        outbox::topic.eq(topic),
        outbox::subject.eq(subject),
        outbox::payload.eq(payload.to_string()),
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

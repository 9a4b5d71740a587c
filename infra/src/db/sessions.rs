//! Login sessions and their rotating refresh tokens. A session is one refresh-token family:
//! each refresh spends its token and issues the next; presenting a spent token again means it
//! was stolen or replayed, and the whole family is revoked.

use super::schema::{refresh_tokens, sessions};
use super::{db_error, naive, uuid, Conn};
use crate::on;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::Error;

/// What a presented refresh token turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Spent {
    /// Valid and now spent: issue the next token of this session.
    Rotated { session_id: Uuid, member_id: Uuid },
    /// Already spent before: the family is now revoked.
    Reused,
    /// Unknown, expired, or of a revoked session.
    Invalid,
}

type TokenRow<'a> = (
    diesel::dsl::Eq<refresh_tokens::token_hash, &'a str>,
    diesel::dsl::Eq<refresh_tokens::session_id, String>,
    diesel::dsl::Eq<refresh_tokens::issued_at, NaiveDateTime>,
);

fn token_row(session_id: Uuid, token_hash: &str, now: DateTime<Utc>) -> TokenRow<'_> {
    (
        refresh_tokens::token_hash.eq(token_hash),
        refresh_tokens::session_id.eq(session_id.to_string()),
        refresh_tokens::issued_at.eq(naive(now)),
    )
}

pub async fn create(
    conn: &mut Conn<'_>,
    session_id: Uuid,
    member_id: Uuid,
    token_hash: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), Error> {
    let session = (
        sessions::id.eq(session_id.to_string()),
        sessions::member_id.eq(member_id.to_string()),
        sessions::created_at.eq(naive(now)),
        sessions::expires_at.eq(naive(expires_at)),
    );
    on!(conn, |c| async {
        diesel::insert_into(sessions::table)
            .values(session)
            .execute(c)
            .await?;
        diesel::insert_into(refresh_tokens::table)
            .values(token_row(session_id, token_hash, now))
            .execute(c)
            .await
    }
    .await)
    .map_err(db_error)?;
    Ok(())
}

type TokenLookup = (
    String,
    Option<NaiveDateTime>,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
);

/// Spends a refresh token (in the caller's transaction) and, when it was valid, stores the next.
pub async fn rotate(
    conn: &mut Conn<'_>,
    token_hash: &str,
    next_hash: &str,
    now: DateTime<Utc>,
) -> Result<Spent, Error> {
    let t = naive(now);
    let found: Option<TokenLookup> = on!(conn, |c| refresh_tokens::table
        .inner_join(sessions::table)
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((
            sessions::id,
            refresh_tokens::used_at,
            sessions::member_id,
            sessions::expires_at,
            sessions::revoked_at,
        ))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    let Some((sid, used, member, expires, revoked)) = found else {
        return Ok(Spent::Invalid);
    };
    if revoked.is_some() || expires <= t {
        return Ok(Spent::Invalid);
    }
    // Spend it only if nobody spent it first: of two racing refreshes one wins.
    let spent = match used {
        Some(_) => 0,
        None => on!(conn, |c| diesel::update(
            refresh_tokens::table.find(token_hash)
        )
        .filter(refresh_tokens::used_at.is_null())
        .set(refresh_tokens::used_at.eq(t))
        .execute(c)
        .await)
        .map_err(db_error)?,
    };
    let session_id = uuid(&sid)?;
    if spent == 0 {
        revoke(conn, session_id, "refresh_token_reused", now).await?;
        return Ok(Spent::Reused);
    }
    on!(conn, |c| diesel::insert_into(refresh_tokens::table)
        .values(token_row(session_id, next_hash, now))
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(Spent::Rotated {
        session_id,
        member_id: uuid(&member)?,
    })
}

/// The session if it is live (not revoked, not expired), as a query: the member load of every
/// authenticated request filters on it, so logout and a password change take effect at once.
#[diesel::dsl::auto_type(no_type_alias)]
pub(crate) fn live(session: String, member: String, now: chrono::NaiveDateTime) -> _ {
    sessions::table
        .filter(sessions::id.eq(session))
        .filter(sessions::member_id.eq(member))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
}

pub async fn revoke(
    conn: &mut Conn<'_>,
    session_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    on!(conn, |c| diesel::update(
        sessions::table.find(session_id.to_string())
    )
    .filter(sessions::revoked_at.is_null())
    .set((
        sessions::revoked_at.eq(naive(now)),
        sessions::revoke_reason.eq(reason)
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    conn.access_changed();
    Ok(())
}

/// Revokes every live session of a member (password changed or reset).
pub async fn revoke_all(
    conn: &mut Conn<'_>,
    member_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let n = on!(conn, |c| diesel::update(sessions::table)
        .filter(sessions::member_id.eq(member_id.to_string()))
        .filter(sessions::revoked_at.is_null())
        .set((
            sessions::revoked_at.eq(naive(now)),
            sessions::revoke_reason.eq(reason)
        ))
        .execute(c)
        .await)
    .map_err(db_error)?;
    conn.access_changed();
    Ok(n)
}

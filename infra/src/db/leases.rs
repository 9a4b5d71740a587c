//! Leases: what must run on one replica at a time (a job's round) holds a named row until it
//! expires. Taking one is a single conditional write, so two replicas never both hold it.

use super::schema::leases;
use super::{db_error, naive, Conn};
use crate::on;
use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use yunlian_domain::Error;

/// Takes (or renews) the lease `name` for `holder` until `now + ttl`, if it is free, expired,
/// or already `holder`'s. Returns whether `holder` now holds it.
pub async fn try_take(
    conn: &mut Conn<'_>,
    name: &str,
    holder: &str,
    now: DateTime<Utc>,
    ttl: TimeDelta,
) -> Result<bool, Error> {
    let (t, until) = (naive(now), naive(now + ttl));
    let taken = on!(conn, |c| diesel::update(leases::table.find(name))
        .filter(leases::expires_at.le(t).or(leases::holder.eq(holder)))
        .set((leases::holder.eq(holder), leases::expires_at.eq(until)))
        .execute(c)
        .await)
    .map_err(db_error)?;
    if taken == 1 {
        return Ok(true);
    }
    let created = on!(conn, |c| diesel::insert_into(leases::table)
        .values((
            leases::name.eq(name),
            leases::holder.eq(holder),
            leases::expires_at.eq(until),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(created == 1)
}

/// Gives the lease back early (a finished round), if `holder` still holds it.
pub async fn release(conn: &mut Conn<'_>, name: &str, holder: &str) -> Result<(), Error> {
    on!(conn, |c| diesel::delete(
        leases::table.find(name).filter(leases::holder.eq(holder))
    )
    .execute(c)
    .await)
    .map_err(db_error)?;
    Ok(())
}

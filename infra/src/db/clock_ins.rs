//! Clock-ins, stored: one per meeting and member. Synced to the member's own scope and to the
//! committee scope of the meeting's org.

use super::devices::DeviceRow;
use super::rows::within;
use super::schema::{clock_ins, devices, members};
use super::{db_error, enum_parse, enum_text, meetings, naive, sync, utc, uuid, Conn};
use crate::{load, on};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::attendance::{ClockIn, Location, Punctuality, Unlock};
use yunlian_domain::sync::{Entity, Scope, TimeSource};
use yunlian_domain::Error;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = clock_ins, treat_none_as_default_value = false)]
struct ClockInRow {
    id: String,
    meeting_id: String,
    member_id: String,
    device_id: String,
    punctuality: String,
    #[diesel(deserialize_as = super::rows::Ts)]
    event_time: chrono::NaiveDateTime,
    time_source: String,
    #[diesel(deserialize_as = super::rows::Ts)]
    device_time: chrono::NaiveDateTime,
    code: String,
    lat: Option<f64>,
    lng: Option<f64>,
    accuracy_m: Option<f64>,
    signature: String,
    unlock: String,
    via: String,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
}

impl ClockInRow {
    fn from_domain(c: &ClockIn) -> Self {
        ClockInRow {
            id: c.id.to_string(),
            meeting_id: c.meeting_id.to_string(),
            member_id: c.member_id.to_string(),
            device_id: c.device_id.to_string(),
            punctuality: enum_text(c.punctuality),
            event_time: naive(c.event_time),
            time_source: enum_text(c.time_source),
            device_time: naive(c.device_time),
            code: c.code.clone(),
            lat: c.location.map(|l| l.lat),
            lng: c.location.map(|l| l.lng),
            accuracy_m: c.location.map(|l| l.accuracy_m),
            signature: c.signature.clone(),
            unlock: enum_text(c.unlock),
            via: c.via.clone(),
            created_at: naive(c.created_at),
        }
    }

    fn into_domain(self) -> Result<ClockIn, Error> {
        let location = match (self.lat, self.lng, self.accuracy_m) {
            (Some(lat), Some(lng), Some(accuracy_m)) => Some(Location {
                lat,
                lng,
                accuracy_m,
            }),
            _ => None,
        };
        Ok(ClockIn {
            id: uuid(&self.id)?,
            meeting_id: uuid(&self.meeting_id)?,
            member_id: uuid(&self.member_id)?,
            device_id: uuid(&self.device_id)?,
            punctuality: enum_parse::<Punctuality>("punctuality", &self.punctuality)?,
            event_time: utc(self.event_time),
            time_source: enum_parse::<TimeSource>("time source", &self.time_source)?,
            device_time: utc(self.device_time),
            code: self.code,
            location,
            signature: self.signature,
            unlock: enum_parse::<Unlock>("unlock", &self.unlock)?,
            via: self.via,
            created_at: utc(self.created_at),
        })
    }
}

/// The clock-in of a member at a meeting, if any.
pub async fn of(
    conn: &mut Conn<'_>,
    meeting: Uuid,
    member: Uuid,
) -> Result<Option<ClockIn>, Error> {
    let row: Option<ClockInRow> = on!(conn, |c| clock_ins::table
        .filter(clock_ins::meeting_id.eq(meeting.to_string()))
        .filter(clock_ins::member_id.eq(member.to_string()))
        .select(ClockInRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(ClockInRow::into_domain).transpose()
}

/// The facts' one query on a connection `$c` of either engine (PostgreSQL's may be shared, to
/// pipeline it), written once.
macro_rules! facts_query {
    ($c:expr, $meeting:expr, $member:expr, $device:expr) => {
        members::table
            .left_join(devices::table.on(devices::id.eq($device.to_owned())))
            .left_join(
                clock_ins::table.on(clock_ins::meeting_id
                    .eq($meeting.to_owned())
                    .and(clock_ins::member_id.eq(members::id))),
            )
            .filter(members::id.eq($member))
            .select((
                members::org_id,
                members::group_id,
                Option::<DeviceRow>::as_select(),
                Option::<ClockInRow>::as_select(),
            ))
            .first::<FactsRow>($c)
            .await
            .optional()
    };
}

/// What judging a member's clock-in needs besides the meeting, in one query: the member's org
/// and group, the device the evidence names (whoever's it is: the domain checks the owner), and
/// the member's clock-in at this meeting so far. `None` when there is no such member.
pub async fn facts(
    conn: &mut Conn<'_>,
    meeting: Uuid,
    member: Uuid,
    device: Uuid,
) -> Result<Option<ClockInFacts>, Error> {
    let (meeting, member, device) = (meeting.to_string(), member.to_string(), device.to_string());
    let row = on!(conn, |c| facts_query!(c, &meeting, &member, &device));
    facts_of(row)
}

type FactsRow = (
    String,
    Option<String>,
    Option<DeviceRow>,
    Option<ClockInRow>,
);

fn facts_of(row: QueryResult<Option<FactsRow>>) -> Result<Option<ClockInFacts>, Error> {
    row.map_err(db_error)?
        .map(|(org, group, device, first)| {
            Ok(ClockInFacts {
                org_id: uuid(&org)?,
                group_id: group.as_deref().map(uuid).transpose()?,
                device: device.map(DeviceRow::into_domain).transpose()?,
                first: first.map(ClockInRow::into_domain).transpose()?,
            })
        })
        .transpose()
}

/// A clock-in's meeting locked for the change ([`meetings::lock_for_change`]) and its
/// [`facts`], read after the lock. On PostgreSQL the facts' read is sent with the lock, in one
/// round trip: it runs after the lock as a read sent later would, so it sees what that would.
/// `None` when there is no such meeting.
pub async fn lock_meeting_with_facts(
    conn: &mut Conn<'_>,
    meeting: Uuid,
    member: Uuid,
    device: Uuid,
) -> Result<Option<(meetings::Locked, Option<ClockInFacts>)>, Error> {
    let Some(c) = conn.pg() else {
        let Some(locked) = meetings::lock_for_change(conn, meeting).await? else {
            return Ok(None);
        };
        return Ok(Some((locked, facts(conn, meeting, member, device).await?)));
    };
    let c: &diesel_async::AsyncPgConnection = c;
    let Some(how) = meetings::change_lock_pg(c, meeting).await? else {
        return Ok(None);
    };
    let (ids, mut shared) = (
        (meeting.to_string(), member.to_string(), device.to_string()),
        c,
    );
    let (locked, row) = tokio::join!(biased; meetings::lock_pg(c, meeting, how), async {
        facts_query!(&mut shared, &ids.0, &ids.1, &ids.2)
    });
    // The lock's error first: it was sent first, and the read's only says the transaction was
    // aborted.
    let Some(locked) = meetings::closed_while_locking(how, locked?)? else {
        return Ok(None);
    };
    Ok(Some((locked, facts_of(row)?)))
}

/// See [`facts`].
pub struct ClockInFacts {
    pub org_id: Uuid,
    pub group_id: Option<Uuid>,
    pub device: Option<yunlian_domain::attendance::Device>,
    pub first: Option<ClockIn>,
}

/// A member's clock-ins at these meetings.
pub async fn of_member_at(
    conn: &mut Conn<'_>,
    member: Uuid,
    meetings: &[String],
) -> Result<Vec<ClockIn>, Error> {
    let rows: Vec<ClockInRow> = on!(conn, |c| clock_ins::table
        .filter(clock_ins::member_id.eq(member.to_string()))
        .filter(clock_ins::meeting_id.eq_any(meetings))
        .select(ClockInRow::as_select())
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(ClockInRow::into_domain).collect()
}

/// Stores a clock-in; when the member already has one at this meeting (a retry, a second
/// phone, a reinstalled app), the first stands and is returned.
pub async fn insert_first(
    conn: &mut Conn<'_>,
    ci: &ClockIn,
    meeting_org: Uuid,
) -> Result<ClockIn, Error> {
    let row = ClockInRow::from_domain(ci);
    let inserted = on!(conn, |c| diesel::insert_into(clock_ins::table)
        .values(&row)
        .on_conflict((clock_ins::meeting_id, clock_ins::member_id))
        .do_nothing()
        .execute(c)
        .await)
    .map_err(db_error)?;
    if inserted == 0 {
        return of(conn, ci.meeting_id, ci.member_id)
            .await?
            .ok_or_else(|| Error::Internal("clock-in conflict without a first".into()));
    }
    sync::record(
        conn,
        &[Scope::Member(ci.member_id), Scope::Committee(meeting_org)],
        Entity::ClockIn,
        ci.id,
        false,
        ci.created_at,
    )
    .await?;
    Ok(ci.clone())
}

pub async fn of_meeting(conn: &mut Conn<'_>, meeting: Uuid) -> Result<Vec<ClockIn>, Error> {
    let rows: Vec<ClockInRow> = on!(conn, |c| clock_ins::table
        .filter(clock_ins::meeting_id.eq(meeting.to_string()))
        .select(ClockInRow::as_select())
        .order(clock_ins::id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(ClockInRow::into_domain).collect()
}

pub async fn by_ids(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<ClockIn>, Error> {
    let rows: Vec<ClockInRow> = load!(
        conn,
        clock_ins::table
            .filter(within(clock_ins::id, ids))
            .select(ClockInRow::as_select())
    )
    .map_err(db_error)?;
    rows.into_iter().map(ClockInRow::into_domain).collect()
}

/// Every clock-in of a member (their data export), oldest first.
pub async fn of_member(conn: &mut Conn<'_>, member: Uuid) -> Result<Vec<ClockIn>, Error> {
    let rows: Vec<ClockInRow> = on!(conn, |c| clock_ins::table
        .filter(clock_ins::member_id.eq(member.to_string()))
        .order(clock_ins::id.asc())
        .select(ClockInRow::as_select())
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(ClockInRow::into_domain).collect()
}

/// Coordinates of the clock-ins at `org`'s meetings stored before `before` rounded to two decimals (about a
/// kilometre) and their accuracy widened to match, at most `limit` rows a call; returns how
/// many. The attendance judged from them stays as it was.
pub async fn coarsen(
    conn: &mut Conn<'_>,
    org: Uuid,
    before: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<usize, Error> {
    use super::schema::meetings;
    use diesel::dsl::sql;
    use diesel::sql_types::{Double, Nullable};
    let t = naive(before);
    let at_org: Vec<String> = on!(conn, |c| meetings::table
        .filter(meetings::org_id.eq(org.to_string()))
        .select(meetings::id)
        .load(c)
        .await)
    .map_err(db_error)?;
    let ids: Vec<String> = on!(conn, |c| clock_ins::table
        .filter(clock_ins::meeting_id.eq_any(&at_org))
        .filter(clock_ins::coarse.eq(false))
        .filter(clock_ins::created_at.lt(t))
        .select(clock_ins::id)
        .limit(limit)
        .load(c)
        .await)
    .map_err(db_error)?;
    if ids.is_empty() {
        return Ok(0);
    }
    on!(conn, |c| diesel::update(
        clock_ins::table.filter(clock_ins::id.eq_any(&ids))
    )
    .set((
        clock_ins::lat.eq(sql::<Nullable<Double>>("ROUND(lat * 100.0) / 100.0")),
        clock_ins::lng.eq(sql::<Nullable<Double>>("ROUND(lng * 100.0) / 100.0")),
        clock_ins::accuracy_m.eq(sql::<Nullable<Double>>(
            "CASE WHEN lat IS NULL THEN accuracy_m \
                 WHEN accuracy_m IS NULL OR accuracy_m < 1000.0 THEN 1000.0 ELSE accuracy_m END",
        )),
        clock_ins::coarse.eq(true),
    ))
    .execute(c)
    .await)
    .map_err(db_error)
}

/// The orgs whose meetings have clock-ins stored before `before` that are still precise.
pub async fn orgs_with_precise(
    conn: &mut Conn<'_>,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(Uuid, String)>, Error> {
    use super::schema::{meetings, orgs};
    let t = naive(before);
    let meeting_ids: Vec<String> = on!(conn, |c| clock_ins::table
        .filter(clock_ins::coarse.eq(false))
        .filter(clock_ins::created_at.lt(t))
        .select(clock_ins::meeting_id)
        .distinct()
        .load(c)
        .await)
    .map_err(db_error)?;
    // Bound as one list each (`within`): no chunks for SQLite's parameter limit.
    let org_ids: Vec<String> = load!(
        conn,
        meetings::table
            .filter(within(meetings::id, &meeting_ids))
            .select(meetings::org_id)
            .distinct()
    )
    .map_err(db_error)?;
    let rows: Vec<(String, String)> = load!(
        conn,
        orgs::table
            .filter(within(orgs::id, &org_ids))
            .select((orgs::id, orgs::path))
    )
    .map_err(db_error)?;
    let mut out = rows
        .into_iter()
        .map(|(id, p)| Ok((uuid(&id)?, p)))
        .collect::<Result<Vec<_>, Error>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

//! Meetings, stored. A meeting row is synced to its org's scope; its code secret only to the
//! org's committee scope, whose phones show the rotating code offline.

use super::rows::within;
use super::schema::{meetings, orgs};
use super::{db_error, enum_parse, enum_text, naive, sync, utc, uuid, CachedDsl, Conn};
use crate::{load, on};
use base64::Engine as _;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::attendance::{CheckinWindow, Geofence, Meeting, MeetingStatus, MeetingType};
use yunlian_domain::sync::{Entity, Scope};
use yunlian_domain::Error;

#[derive(Queryable, QueryableByName, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = meetings, treat_none_as_default_value = false, treat_none_as_null = true)]
struct MeetingRow {
    id: String,
    org_id: String,
    meeting_type: String,
    title: String,
    agenda: Option<String>,
    #[diesel(deserialize_as = super::rows::Ts)]
    starts_at: chrono::NaiveDateTime,
    #[diesel(deserialize_as = super::rows::Ts)]
    ends_at: chrono::NaiveDateTime,
    place: Option<String>,
    fence_lat: Option<f64>,
    fence_lng: Option<f64>,
    fence_radius_m: Option<f64>,
    video_room: Option<String>,
    opens_before_min: i64,
    on_time_after_min: i64,
    status: String,
    minutes: Option<String>,
    created_by: String,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
    #[diesel(deserialize_as = super::rows::Ts)]
    updated_at: chrono::NaiveDateTime,
}

impl MeetingRow {
    fn from_domain(m: &Meeting) -> Self {
        MeetingRow {
            id: m.id.to_string(),
            org_id: m.org_id.to_string(),
            meeting_type: enum_text(m.meeting_type),
            title: m.title.clone(),
            agenda: m.agenda.clone(),
            starts_at: naive(m.starts_at),
            ends_at: naive(m.ends_at),
            place: m.place.clone(),
            fence_lat: m.geofence.map(|f| f.lat),
            fence_lng: m.geofence.map(|f| f.lng),
            fence_radius_m: m.geofence.map(|f| f.radius_m),
            video_room: m.video_room.clone(),
            opens_before_min: m.checkin_window.opens_before_min,
            on_time_after_min: m.checkin_window.on_time_after_min,
            status: enum_text(m.status),
            minutes: m.minutes.clone(),
            created_by: m.created_by.to_string(),
            created_at: naive(m.created_at),
            updated_at: naive(m.updated_at),
        }
    }

    fn into_domain(self) -> Result<Meeting, Error> {
        let geofence = match (self.fence_lat, self.fence_lng, self.fence_radius_m) {
            (Some(lat), Some(lng), Some(radius_m)) => Some(Geofence { lat, lng, radius_m }),
            _ => None,
        };
        Ok(Meeting {
            id: uuid(&self.id)?,
            org_id: uuid(&self.org_id)?,
            meeting_type: enum_parse::<MeetingType>("type", &self.meeting_type)?,
            title: self.title,
            agenda: self.agenda,
            starts_at: utc(self.starts_at),
            ends_at: utc(self.ends_at),
            place: self.place,
            geofence,
            video_room: self.video_room,
            checkin_window: CheckinWindow {
                opens_before_min: self.opens_before_min,
                on_time_after_min: self.on_time_after_min,
            },
            status: enum_parse::<MeetingStatus>("status", &self.status)?,
            minutes: self.minutes,
            created_by: uuid(&self.created_by)?,
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        })
    }
}

async fn record(conn: &mut Conn<'_>, m: &Meeting, with_secret: bool) -> Result<(), Error> {
    sync::record(
        conn,
        &[Scope::Org(m.org_id)],
        Entity::Meeting,
        m.id,
        false,
        m.updated_at,
    )
    .await?;
    if with_secret {
        let s = Scope::Committee(m.org_id);
        sync::record(conn, &[s], Entity::MeetingSecret, m.id, false, m.updated_at).await?;
    }
    Ok(())
}

/// Stores a new meeting with its code secret.
pub async fn insert(conn: &mut Conn<'_>, m: &Meeting, secret: &[u8]) -> Result<(), Error> {
    let row = MeetingRow::from_domain(m);
    let secret = base64::engine::general_purpose::STANDARD.encode(secret);
    on!(conn, |c| diesel::insert_into(meetings::table)
        .values((&row, meetings::secret.eq(&secret)))
        .execute(c)
        .await)
    .map_err(db_error)?;
    record(conn, m, true).await
}

pub async fn update(conn: &mut Conn<'_>, m: &Meeting) -> Result<(), Error> {
    let row = MeetingRow::from_domain(m);
    let n = on!(conn, |c| diesel::update(
        meetings::table.find(m.id.to_string())
    )
    .set(&row)
    .execute(c)
    .await)
    .map_err(db_error)?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    record(conn, m, false).await
}

/// A meeting with the path of its org (for authorisation) and its code secret.
pub async fn get(
    conn: &mut Conn<'_>,
    id: Uuid,
) -> Result<Option<(Meeting, String, Vec<u8>)>, Error> {
    let row: Option<(MeetingRow, String, String)> = on!(conn, |c| meetings::table
        .inner_join(orgs::table)
        .filter(meetings::id.eq(id.to_string()))
        .select((MeetingRow::as_select(), orgs::path, meetings::secret))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(m, path, secret)| with_secret(m, path, &secret))
        .transpose()
}

/// A stored meeting with its org's path and its decoded code secret.
fn with_secret(
    m: MeetingRow,
    path: String,
    secret: &str,
) -> Result<(Meeting, String, Vec<u8>), Error> {
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret)
        .map_err(|e| Error::Internal(format!("bad meeting secret: {e}")))?;
    Ok((m.into_domain()?, path, secret))
}

/// A meeting's status alone (one indexed column, no join).
pub async fn status(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<MeetingStatus>, Error> {
    let s: Option<String> = on!(conn, |c| meetings::table
        .find(id.to_string())
        .select(meetings::status)
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    s.map(|s| enum_parse::<MeetingStatus>("status", &s))
        .transpose()
}

/// How [`lock`] holds a meeting row until the transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// `FOR SHARE`: many holders at once (clock-ins of one planned meeting), none while an
    /// exclusive holder has it.
    Share,
    /// `FOR UPDATE`: one holder (a close-out, a recompute of a held meeting).
    Update,
}

/// A meeting locked and read in one statement (PostgreSQL): its row, its org's path, its secret.
#[derive(QueryableByName)]
struct LockedRow {
    #[diesel(embed)]
    meeting: MeetingRow,
    #[diesel(sql_type = diesel::sql_types::Text)]
    path: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    secret: String,
}

/// Locks a meeting's row (PostgreSQL; SQLite's write transaction already excludes other
/// writers) and reads it as [`get`] does, in one statement. Only the meeting's row is locked
/// (`FOR … OF m`), not its org's.
pub async fn lock(conn: &mut Conn<'_>, id: Uuid, how: Lock) -> Result<Option<Locked>, Error> {
    match conn.pg() {
        Some(c) => lock_pg(c, id, how).await,
        None => get(conn, id).await,
    }
}

/// A meeting as [`lock`] and [`get`] read it: its row, its org's path, its code secret.
pub type Locked = (Meeting, String, Vec<u8>);

/// [`lock`] on PostgreSQL, on a shared connection: reads sent behind it are pipelined (run
/// after it, in one round trip).
pub async fn lock_pg(
    c: &diesel_async::AsyncPgConnection,
    id: Uuid,
    how: Lock,
) -> Result<Option<Locked>, Error> {
    let sql = match how {
        Lock::Share => {
            "SELECT m.*, o.path FROM meetings m JOIN orgs o ON o.id = m.org_id \
             WHERE m.id = $1 FOR SHARE OF m"
        }
        Lock::Update => {
            "SELECT m.*, o.path FROM meetings m JOIN orgs o ON o.id = m.org_id \
             WHERE m.id = $1 FOR UPDATE OF m"
        }
    };
    let row: Option<LockedRow> = diesel::sql_query(sql)
        .bind::<diesel::sql_types::Text, _>(id.to_string())
        .cached()
        .get_result(&mut &*c)
        .await
        .optional()
        .map_err(db_error)?;
    row.map(|r| with_secret(r.meeting, r.path, &r.secret))
        .transpose()
}

/// Locks a meeting before a change its close-out must see (a clock-in, a video event): shared
/// with other such changes while it is planned, exclusive once it is held (the change then
/// recomputes the final statuses). A close-out holds it exclusively, so it never misses a change
/// that committed before it, and a change that commits after it finds the meeting held and
/// recomputes. On PostgreSQL the mode is chosen from a look at the status first
/// ([`change_lock`]): taking the exclusive lock over a shared one would deadlock two late
/// uploads of one held meeting (and PostgreSQL takes a second to see it). A meeting closed
/// between the look and the shared lock is a lost race ([`Error::Busy`]: the transaction runs
/// again). SQLite's write transaction excludes every other writer already: the meeting is only
/// read.
pub async fn lock_for_change(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<Locked>, Error> {
    if conn.pg().is_none() {
        return get(conn, id).await;
    }
    let Some(how) = change_lock(conn, id).await? else {
        return Ok(None);
    };
    let locked = lock(conn, id, how).await?;
    closed_while_locking(how, locked)
}

/// How [`lock_for_change`] locks the meeting, from a look at its status; `None` when there is no
/// such meeting.
pub async fn change_lock(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<Lock>, Error> {
    Ok(status(conn, id).await?.map(lock_for))
}

/// [`change_lock`] on a PostgreSQL connection shared with the statements sent with it.
pub async fn change_lock_pg(
    c: &diesel_async::AsyncPgConnection,
    id: Uuid,
) -> Result<Option<Lock>, Error> {
    let s: Option<String> = meetings::table
        .find(id.to_string())
        .select(meetings::status)
        .first(&mut &*c)
        .await
        .optional()
        .map_err(db_error)?;
    s.map(|s| enum_parse::<MeetingStatus>("status", &s).map(lock_for))
        .transpose()
}

/// A held meeting is locked exclusively (the change recomputes its final statuses); any other,
/// shared with the other changes.
fn lock_for(seen: MeetingStatus) -> Lock {
    match seen {
        MeetingStatus::Held => Lock::Update,
        _ => Lock::Share,
    }
}

/// The meeting locked as [`change_lock`] chose, unless it was closed in between (a lost race).
pub fn closed_while_locking(how: Lock, locked: Option<Locked>) -> Result<Option<Locked>, Error> {
    if let Some((m, _, _)) = &locked {
        if how == Lock::Share && m.status == MeetingStatus::Held {
            return Err(Error::Busy("meeting closed while locking".into()));
        }
    }
    Ok(locked)
}

/// Meetings by id, as phones see them (no secrets).
pub async fn by_ids(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<Meeting>, Error> {
    let rows: Vec<MeetingRow> = load!(
        conn,
        meetings::table
            .filter(within(meetings::id, ids))
            .select(MeetingRow::as_select())
    )
    .map_err(db_error)?;
    rows.into_iter().map(MeetingRow::into_domain).collect()
}

/// The code secrets of meetings, base64, for committee phones.
pub async fn secrets(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<(Uuid, String)>, Error> {
    let rows: Vec<(String, String)> = load!(
        conn,
        meetings::table
            .filter(within(meetings::id, ids))
            .select((meetings::id, meetings::secret))
    )
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(id, s)| Ok((uuid(&id)?, s)))
        .collect()
}

#[derive(Debug, Default, Clone)]
pub struct MeetingFilter {
    pub within: String,
    pub meeting_type: Option<MeetingType>,
    pub status: Option<MeetingStatus>,
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

pub async fn list(conn: &mut Conn<'_>, f: &MeetingFilter) -> Result<Vec<Meeting>, Error> {
    let within = format!("{}%", f.within);
    let rows: Vec<MeetingRow> = on!(conn, |c| {
        let mut q = meetings::table
            .inner_join(orgs::table)
            .filter(orgs::path.like(within))
            .select(MeetingRow::as_select())
            .order(meetings::id)
            .limit(f.limit)
            .into_boxed();
        if let Some(t) = f.meeting_type {
            q = q.filter(meetings::meeting_type.eq(enum_text(t)));
        }
        if let Some(s) = f.status {
            q = q.filter(meetings::status.eq(enum_text(s)));
        }
        if let Some(from) = f.from {
            q = q.filter(meetings::starts_at.ge(naive(from)));
        }
        if let Some(to) = f.to {
            q = q.filter(meetings::starts_at.lt(naive(to)));
        }
        if let Some(a) = f.after {
            q = q.filter(meetings::id.gt(a.to_string()));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter().map(MeetingRow::into_domain).collect()
}

/// Planned meetings that ended before `before` (the scheduled close-out's work).
pub async fn due_for_close(
    conn: &mut Conn<'_>,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Uuid>, Error> {
    let rows: Vec<String> = on!(conn, |c| meetings::table
        .filter(meetings::status.eq(enum_text(MeetingStatus::Planned)))
        .filter(meetings::ends_at.lt(naive(before)))
        .select(meetings::id)
        .order(meetings::id)
        .limit(500)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.iter().map(|r| uuid(r)).collect()
}

/// The meeting whose video room has this name.
pub async fn by_video_room(conn: &mut Conn<'_>, room: &str) -> Result<Option<Meeting>, Error> {
    let row: Option<MeetingRow> = on!(conn, |c| meetings::table
        .filter(meetings::video_room.eq(room))
        .select(MeetingRow::as_select())
        .order(meetings::id.desc())
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(MeetingRow::into_domain).transpose()
}

/// Every meeting starting at or after `since`, as the compliance calendar reads it.
pub async fn facts_since(
    conn: &mut Conn<'_>,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<yunlian_domain::warnings::MeetingFact>, Error> {
    let rows: Vec<(String, String, chrono::NaiveDateTime, String)> = on!(conn, |c| meetings::table
        .filter(meetings::starts_at.ge(naive(since)))
        .select((
            meetings::org_id,
            meetings::meeting_type,
            meetings::starts_at,
            meetings::status
        ))
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(org, t, at, status)| {
            Ok(yunlian_domain::warnings::MeetingFact {
                org_id: uuid(&org)?,
                meeting_type: enum_parse("meeting type", &t)?,
                starts_at: utc(at),
                status: enum_parse("meeting status", &status)?,
            })
        })
        .collect()
}

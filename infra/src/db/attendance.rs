//! Leave requests, video connection events, and each expected attendee's final status.

use super::rows::within;
use super::schema::{
    leave_requests, meeting_attendance, meetings, members, orgs, role_grants, video_events,
};
use super::{db_error, enum_parse, enum_text, naive, sync, utc, uuid, Conn};
use crate::{load, on};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::attendance::{
    FinalStatus, LeaveRequest, LeaveStatus, MeetingType, VideoEventKind,
};
use yunlian_domain::auth::{Role, COMMITTEE_ROLES};
use yunlian_domain::member::Residence;
use yunlian_domain::sync::{Entity, Scope};
use yunlian_domain::Error;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = leave_requests, treat_none_as_default_value = false)]
struct LeaveRow {
    id: String,
    meeting_id: String,
    member_id: String,
    reason: String,
    status: String,
    decided_by: Option<String>,
    decided_at: Option<chrono::NaiveDateTime>,
    note: Option<String>,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
}

impl LeaveRow {
    fn into_domain(self) -> Result<LeaveRequest, Error> {
        Ok(LeaveRequest {
            id: uuid(&self.id)?,
            meeting_id: uuid(&self.meeting_id)?,
            member_id: uuid(&self.member_id)?,
            reason: self.reason,
            status: enum_parse::<LeaveStatus>("leave status", &self.status)?,
            decided_by: self.decided_by.as_deref().map(uuid).transpose()?,
            decided_at: self.decided_at.map(utc),
            note: self.note,
            created_at: utc(self.created_at),
        })
    }
}

async fn record_leave(
    conn: &mut Conn<'_>,
    l: &LeaveRequest,
    org: Uuid,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    sync::record(
        conn,
        &[Scope::Member(l.member_id), Scope::Committee(org)],
        Entity::Leave,
        l.id,
        false,
        at,
    )
    .await?;
    Ok(())
}

pub async fn insert_leave(conn: &mut Conn<'_>, l: &LeaveRequest, org: Uuid) -> Result<(), Error> {
    let row = LeaveRow {
        id: l.id.to_string(),
        meeting_id: l.meeting_id.to_string(),
        member_id: l.member_id.to_string(),
        reason: l.reason.clone(),
        status: enum_text(l.status),
        decided_by: None,
        decided_at: None,
        note: None,
        created_at: naive(l.created_at),
    };
    on!(conn, |c| diesel::insert_into(leave_requests::table)
        .values(&row)
        .execute(c)
        .await)
    .map_err(|e| match db_error(e) {
        Error::Conflict(_) => Error::Conflict("leave_already_requested"),
        other => other,
    })?;
    record_leave(conn, l, org, l.created_at).await
}

/// A leave request with the org path of its meeting.
pub async fn leave(
    conn: &mut Conn<'_>,
    id: Uuid,
) -> Result<Option<(LeaveRequest, Uuid, String)>, Error> {
    let row: Option<(LeaveRow, String, String)> = on!(conn, |c| leave_requests::table
        .inner_join(meetings::table.inner_join(orgs::table))
        .filter(leave_requests::id.eq(id.to_string()))
        .select((LeaveRow::as_select(), meetings::org_id, orgs::path))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(l, org, path)| Ok((l.into_domain()?, uuid(&org)?, path)))
        .transpose()
}

pub async fn decide_leave(conn: &mut Conn<'_>, l: &LeaveRequest, org: Uuid) -> Result<(), Error> {
    let n = on!(conn, |c| diesel::update(
        leave_requests::table.find(l.id.to_string())
    )
    .filter(leave_requests::status.eq(enum_text(LeaveStatus::Requested)))
    .set((
        leave_requests::status.eq(enum_text(l.status)),
        leave_requests::decided_by.eq(l.decided_by.map(|d| d.to_string())),
        leave_requests::decided_at.eq(l.decided_at.map(naive)),
        leave_requests::note.eq(l.note.clone()),
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    if n == 0 {
        return Err(Error::Conflict("leave_already_decided"));
    }
    record_leave(conn, l, org, l.decided_at.unwrap_or(l.created_at)).await
}

pub async fn leaves_of_meeting(
    conn: &mut Conn<'_>,
    meeting: Uuid,
) -> Result<Vec<LeaveRequest>, Error> {
    let rows: Vec<LeaveRow> = on!(conn, |c| leave_requests::table
        .filter(leave_requests::meeting_id.eq(meeting.to_string()))
        .select(LeaveRow::as_select())
        .order(leave_requests::id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(LeaveRow::into_domain).collect()
}

pub async fn leaves_by_ids(
    conn: &mut Conn<'_>,
    ids: &[String],
) -> Result<Vec<LeaveRequest>, Error> {
    let rows: Vec<LeaveRow> = load!(
        conn,
        leave_requests::table
            .filter(within(leave_requests::id, ids))
            .select(LeaveRow::as_select())
    )
    .map_err(db_error)?;
    rows.into_iter().map(LeaveRow::into_domain).collect()
}

/// Records a video service event once (a redelivered webhook changes nothing); returns whether
/// it was new.
pub async fn video_event(
    conn: &mut Conn<'_>,
    event_id: &str,
    meeting: Uuid,
    member: Uuid,
    kind: VideoEventKind,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let row = (
        video_events::event_id.eq(event_id),
        video_events::meeting_id.eq(meeting.to_string()),
        video_events::member_id.eq(member.to_string()),
        video_events::kind.eq(enum_text(kind)),
        video_events::at.eq(naive(at)),
        video_events::created_at.eq(naive(now)),
    );
    let n = on!(conn, |c| diesel::insert_into(video_events::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(n == 1)
}

/// A meeting's video events, by member: (member, at, kind).
pub async fn video_events_of(
    conn: &mut Conn<'_>,
    meeting: Uuid,
) -> Result<Vec<(Uuid, DateTime<Utc>, VideoEventKind)>, Error> {
    let rows: Vec<(String, chrono::NaiveDateTime, String)> = on!(conn, |c| video_events::table
        .filter(video_events::meeting_id.eq(meeting.to_string()))
        .select((
            video_events::member_id,
            video_events::at,
            video_events::kind
        ))
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(m, at, k)| {
            Ok((
                uuid(&m)?,
                utc(at),
                enum_parse::<VideoEventKind>("video event", &k)?,
            ))
        })
        .collect()
}

/// Who is expected at a meeting: the members of an org, of a party group, or the holders of
/// committee roles on the org. Returns (member, migrant).
pub async fn expected(
    conn: &mut Conn<'_>,
    org: Uuid,
    group: bool,
    committee_only: bool,
    starts_at: DateTime<Utc>,
) -> Result<Vec<(Uuid, bool)>, Error> {
    let o = org.to_string();
    // A member who left before the meeting began is not expected; one who left after stays
    // counted for it.
    let began = naive(starts_at);
    let rows: Vec<(String, String)> = if committee_only {
        on!(conn, |c| role_grants::table
            .inner_join(members::table)
            .filter(role_grants::org_id.eq(&o))
            .filter(role_grants::role.eq_any(COMMITTEE_ROLES.map(Role::as_str)))
            .select((members::id, members::residence))
            .distinct()
            .load(c)
            .await)
    } else if group {
        on!(conn, |c| members::table
            .filter(members::group_id.eq(&o))
            .filter(members::left_at.is_null().or(members::left_at.gt(began)))
            .select((members::id, members::residence))
            .load(c)
            .await)
    } else {
        on!(conn, |c| members::table
            .filter(members::org_id.eq(&o))
            .filter(members::left_at.is_null().or(members::left_at.gt(began)))
            .select((members::id, members::residence))
            .load(c)
            .await)
    }
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(id, r)| Ok((uuid(&id)?, r == Residence::Migrant.as_str())))
        .collect()
}

/// One expected attendee's final status.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Final {
    pub member_id: Uuid,
    pub status: FinalStatus,
    pub video_secs: i64,
    pub migrant: bool,
}

/// Sets a member's final status at a meeting; returns the previous one, if it changed.
pub async fn set_final(
    conn: &mut Conn<'_>,
    meeting: Uuid,
    f: &Final,
    now: DateTime<Utc>,
) -> Result<Option<Option<FinalStatus>>, Error> {
    let (m, mem) = (meeting.to_string(), f.member_id.to_string());
    let before: Option<String> = on!(conn, |c| meeting_attendance::table
        .find((&m, &mem))
        .select(meeting_attendance::status)
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    let before = before
        .as_deref()
        .map(|s| enum_parse::<FinalStatus>("final status", s))
        .transpose()?;
    if before == Some(f.status) {
        return Ok(None);
    }
    let row = (
        meeting_attendance::meeting_id.eq(m.clone()),
        meeting_attendance::member_id.eq(mem.clone()),
        meeting_attendance::status.eq(enum_text(f.status)),
        meeting_attendance::video_secs.eq(f.video_secs),
        meeting_attendance::migrant.eq(f.migrant),
        meeting_attendance::updated_at.eq(naive(now)),
    );
    on!(conn, |c| diesel::insert_into(meeting_attendance::table)
        .values(row)
        .on_conflict((
            meeting_attendance::meeting_id,
            meeting_attendance::member_id
        ))
        .do_update()
        .set((
            meeting_attendance::status.eq(enum_text(f.status)),
            meeting_attendance::video_secs.eq(f.video_secs),
            meeting_attendance::updated_at.eq(naive(now)),
        ))
        .execute(c)
        .await)
    .map_err(db_error)?;
    // The member's phone holds their own attendance (`listMyAttendance`), keyed by meeting.
    sync::record(
        conn,
        &[Scope::Member(f.member_id)],
        Entity::Attendance,
        meeting,
        false,
        now,
    )
    .await?;
    Ok(Some(before))
}

/// A member's attendance at one held meeting, as they see it: the meeting, the final status,
/// what it rests on (`clock_in`, `video`, `leave`, or nothing for an absence) and the clock-in
/// and leave request behind it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MyAttendance {
    pub meeting_id: Uuid,
    pub org_id: Uuid,
    pub meeting_type: MeetingType,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: FinalStatus,
    pub evidence: Option<&'static str>,
    pub video_secs: i64,
    pub clock_in: Option<serde_json::Value>,
    pub leave: Option<serde_json::Value>,
    pub updated_at: DateTime<Utc>,
}

type MyRow = (
    String,
    String,
    String,
    String,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
    String,
    i64,
    chrono::NaiveDateTime,
);

/// A member's attendance at held meetings: these meetings (for sync pages), or a page after
/// the meeting `after`, by meeting id.
pub async fn of_member(
    conn: &mut Conn<'_>,
    member: Uuid,
    only: Option<&[String]>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<MyAttendance>, Error> {
    let mem = member.to_string();
    let rows: Vec<MyRow> = on!(conn, |c| {
        let mut q = meeting_attendance::table
            .inner_join(meetings::table)
            .filter(meeting_attendance::member_id.eq(&mem))
            .select((
                meetings::id,
                meetings::org_id,
                meetings::meeting_type,
                meetings::title,
                meetings::starts_at,
                meetings::ends_at,
                meeting_attendance::status,
                meeting_attendance::video_secs,
                meeting_attendance::updated_at,
            ))
            .order(meetings::id)
            .limit(limit)
            .into_boxed();
        if let Some(ids) = only {
            q = q.filter(meetings::id.eq_any(ids));
        }
        if let Some(a) = after {
            q = q.filter(meetings::id.gt(a.to_string()));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let clock_ins = super::clock_ins::of_member_at(conn, member, &ids).await?;
    let leaves: Vec<LeaveRow> = on!(conn, |c| leave_requests::table
        .filter(leave_requests::member_id.eq(&mem))
        .filter(leave_requests::meeting_id.eq_any(&ids))
        .select(LeaveRow::as_select())
        .load(c)
        .await)
    .map_err(db_error)?;
    let leaves: Vec<LeaveRequest> = leaves
        .into_iter()
        .map(LeaveRow::into_domain)
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(id, org, kind, title, starts, ends, status, video_secs, updated)| {
            let meeting_id = uuid(&id)?;
            let status: FinalStatus = enum_parse("final status", &status)?;
            let ci = clock_ins.iter().find(|c| c.meeting_id == meeting_id);
            let leave = leaves.iter().find(|l| l.meeting_id == meeting_id);
            let evidence = match (ci, status) {
                (Some(_), _) => Some("clock_in"),
                (None, FinalStatus::Video) => Some("video"),
                (None, FinalStatus::Excused) => Some("leave"),
                _ => None,
            };
            Ok(MyAttendance {
                meeting_id,
                org_id: uuid(&org)?,
                meeting_type: enum_parse("meeting type", &kind)?,
                title,
                starts_at: utc(starts),
                ends_at: utc(ends),
                status,
                evidence,
                video_secs,
                clock_in: ci.map(|c| {
                    serde_json::json!({
                        "punctuality": c.punctuality, "event_time": c.event_time,
                        "time_source": c.time_source, "via": c.via, "unlock": c.unlock,
                        "with_location": c.location.is_some(),
                    })
                }),
                leave: leave.map(|l| {
                    serde_json::json!({"id": l.id, "status": l.status, "reason": l.reason, "note": l.note})
                }),
                updated_at: utc(updated),
            })
        })
        .collect()
}

pub async fn finals_of(conn: &mut Conn<'_>, meeting: Uuid) -> Result<Vec<Final>, Error> {
    let rows: Vec<(String, String, i64, bool)> = on!(conn, |c| meeting_attendance::table
        .filter(meeting_attendance::meeting_id.eq(meeting.to_string()))
        .select((
            meeting_attendance::member_id,
            meeting_attendance::status,
            meeting_attendance::video_secs,
            meeting_attendance::migrant
        ))
        .order(meeting_attendance::member_id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(m, s, v, mig)| {
            Ok(Final {
                member_id: uuid(&m)?,
                status: enum_parse("final status", &s)?,
                video_secs: v,
                migrant: mig,
            })
        })
        .collect()
}

/// Final statuses of held meetings in an org subtree and period: (meeting org, member, status,
/// migrant) for the rates.
pub async fn finals_within(
    conn: &mut Conn<'_>,
    within: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    member: Option<Uuid>,
) -> Result<Vec<(Uuid, Uuid, FinalStatus, bool)>, Error> {
    let prefix = format!("{within}%");
    let rows: Vec<(String, String, String, bool)> = on!(conn, |c| {
        let mut q = meeting_attendance::table
            .inner_join(meetings::table.inner_join(orgs::table))
            .filter(orgs::path.like(prefix))
            .filter(meetings::starts_at.ge(naive(from)))
            .filter(meetings::starts_at.lt(naive(to)))
            .select((
                meetings::org_id,
                meeting_attendance::member_id,
                meeting_attendance::status,
                meeting_attendance::migrant,
            ))
            .into_boxed();
        if let Some(m) = member {
            q = q.filter(meeting_attendance::member_id.eq(m.to_string()));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(o, m, s, mig)| Ok((uuid(&o)?, uuid(&m)?, enum_parse("final status", &s)?, mig)))
        .collect()
}

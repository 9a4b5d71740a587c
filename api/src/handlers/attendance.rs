//! Attendance over HTTP: clock-in, close, leave, one's own attendance, rates. Each handler
//! parses, calls one use case of `ops::attendance` (or one read), and renders.

use super::{authorize, load_meeting, load_org};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::ops::attendance::{self as ops, Evidence, Judging};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use yunlian_domain::auth::Action;
use yunlian_domain::sync::{EventTime, TimeSource};
use yunlian_domain::{text, Error};
use yunlian_infra::db::{self, ScopedFutureExt};

pub async fn clock_in_online(
    state: web::Data<AppState>,
    user: AuthUser,
    meeting: web::Path<Uuid>,
    body: web::Json<Evidence>,
) -> Result<HttpResponse, ApiError> {
    let (meeting, ev) = (meeting.into_inner(), body.into_inner());
    let principal = user.0.clone();
    let now = state.clock.now();
    // Online, the server's clock judges; the phone's signed clock is kept as evidence.
    let judged = EventTime {
        at: now,
        source: TimeSource::Server,
    };
    let share = state.config.settings_root();
    let pre = std::sync::Arc::new(ops::precheck(&state.db, &principal, meeting, &ev).await?);
    let result = state
        .db
        .write(move |mut c| {
            let pre = pre.clone();
            async move {
                let j = Judging {
                    judged,
                    now,
                    via: "online",
                    settings: share,
                };
                ops::clock_in(&mut c, &principal, meeting, &ev, j, pre.as_ref().as_ref()).await
            }
            .scope_boxed()
        })
        .await;
    match result {
        Ok(ci) => Ok(HttpResponse::Ok().json(ci)),
        Err(e) => {
            if let Error::Unprocessable(code) = &e {
                tracing::info!(meeting = %meeting, member = %user.member_id, code, "clock-in refused");
            }
            Err(e.into())
        }
    }
}

/// Who was expected and how they attended: the clock-ins and leave requests so far, and the
/// final statuses once the meeting has closed (the committee's view).
pub async fn get_meeting_attendance(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (meeting, path, _) = load_meeting(&state, id.into_inner()).await?;
    authorize(&user, Action::ManageMeetings, &path)?;
    let mid = meeting.id;
    let (clock_ins, leaves, finals) = state
        .db
        .read(move |mut c| {
            async move {
                Ok((
                    db::clock_ins::of_meeting(&mut c, mid).await?,
                    db::attendance::leaves_of_meeting(&mut c, mid).await?,
                    db::attendance::finals_of(&mut c, mid).await?,
                ))
            }
            .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "meeting": meeting, "clock_ins": clock_ins, "leave_requests": leaves, "attendance": finals,
    })))
}

/// The committee closes a meeting (or the scheduled job does, after its end and a grace period).
pub async fn close_meeting(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (principal, mid, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    let share = state.config.settings_root();
    let finals = state
        .db
        .write(move |mut c| {
            async move { ops::close_meeting(&mut c, &principal, mid, share, now).await }
                .scope_boxed()
        })
        .await?;
    tracing::info!(meeting = %mid, expected = finals.len(), by = %user.member_id, "meeting closed");
    Ok(HttpResponse::Ok().json(json!({ "meeting_id": mid, "attendance": finals })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaveBody {
    reason: String,
}

/// A member asks for leave (请假) before the meeting starts.
pub async fn request_leave(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<LeaveBody>,
) -> Result<HttpResponse, ApiError> {
    let reason = text::clean("reason", &body.into_inner().reason, text::Kind::Block, 500)
        .map_err(|e| Error::Invalid(vec![e]))?;
    let (principal, mid, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    let leave = state
        .db
        .write(move |mut c| {
            async move { ops::request_leave(&mut c, &principal, mid, reason, now).await }
                .scope_boxed()
        })
        .await?;
    Ok(super::created(&leave))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    approve: bool,
    note: Option<String>,
}

/// The secretary (or a committee member) approves or refuses a leave request.
pub async fn decide_leave(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<DecisionBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let note = text::clean_opt("note", b.note.as_deref(), text::Kind::Block, 500)
        .map_err(|e| Error::Invalid(vec![e]))?;
    let (principal, id, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    let leave = state
        .db
        .write(move |mut c| {
            async move { ops::decide_leave(&mut c, &principal, id, b.approve, note, now).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(leave))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MyAttendanceQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

/// The caller's own attendance at held meetings (`listMyAttendance`): status, what it rests on,
/// the clock-in and leave behind it. The phone also holds it through sync (entity `attendance`).
pub async fn list_my_attendance(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<MyAttendanceQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = super::limit(q.limit)?;
    let after = super::decode_cursor(q.cursor.as_deref())?;
    let member = user.member_id;
    let rows = state
        .db
        .read(move |mut c| {
            async move { db::attendance::of_member(&mut c, member, None, after, limit + 1).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(super::page(rows, limit, |a| a.meeting_id)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    org_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    member_id: Option<Uuid>,
}

#[derive(Default, serde::Serialize)]
struct Counts {
    expected: u64,
    present: u64,
    late: u64,
    video: u64,
    excused: u64,
    absent: u64,
    /// (present + late + video) / expected, in per mille (an integer; 1000 = everyone).
    rate_permille: u64,
}

impl Counts {
    fn add(&mut self, s: yunlian_domain::attendance::FinalStatus) {
        use yunlian_domain::attendance::FinalStatus::*;
        self.expected += 1;
        match s {
            Present => self.present += 1,
            Late => self.late += 1,
            Video => self.video += 1,
            Excused => self.excused += 1,
            Absent => self.absent += 1,
        }
        self.rate_permille = (self.present + self.late + self.video) * 1000 / self.expected;
    }
}

/// Attendance rates of an org subtree (per org, and in all) or of one member, over the meetings
/// held in a period, with migrant members counted apart.
pub async fn get_attendance_stats(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let org = load_org(&state, q.org_id).await?;
    match q.member_id {
        // One's own rates, within an org one sees (an unseen org is not found, as for anyone).
        Some(m) if m == user.member_id => authorize(&user, Action::ReadOrg, &org.path)?,
        _ => authorize(&user, Action::ReadMembers, &org.path)?,
    }
    if q.to <= q.from {
        return Err(ApiError::field("to", "out_of_range"));
    }
    let (path, from, to, member) = (org.path.clone(), q.from, q.to, q.member_id);
    let rows = state
        .db
        .read(move |mut c| {
            async move { db::attendance::finals_within(&mut c, &path, from, to, member).await }
                .scope_boxed()
        })
        .await?;
    let (mut all, mut migrants, mut at_home) =
        (Counts::default(), Counts::default(), Counts::default());
    let mut by_org: std::collections::BTreeMap<Uuid, Counts> = std::collections::BTreeMap::new();
    for (org_id, _, status, migrant) in rows {
        all.add(status);
        if migrant {
            migrants.add(status)
        } else {
            at_home.add(status)
        }
        by_org.entry(org_id).or_default().add(status);
    }
    let by_org: Vec<serde_json::Value> = by_org
        .into_iter()
        .map(|(o, c)| json!({"org_id": o, "counts": c}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "org_id": org.id, "from": from, "to": to, "member_id": member,
        "all": all, "migrant": migrants, "at_home": at_home, "by_org": by_org,
    })))
}

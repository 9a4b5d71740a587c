//! Clock-in: a member proves presence at a meeting from a phone, online or (queued offline)
//! through sync. Both paths run `clock_in`, inside the caller's transaction.

use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::handlers::authorize;
use crate::handlers::meetings::load as load_meeting;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;
use yunlian_domain::attendance::{
    check_code, check_fence, final_status, is_expected, judge_time, verify_signature,
    video_seconds, ClockIn, ClockInError, ClockInEvidence, LeaveStatus, Location, Meeting,
    MeetingStatus, Punctuality, VideoEventKind,
};
use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::sync::{EventTime, TimeSource};
use yunlian_domain::{text, Error};
use yunlian_infra::db::{self, meetings::Lock, Conn, ScopedFutureExt};

/// How far ahead of the server a queued clock-in's time may be before it is refused.
const FUTURE_TOLERANCE: TimeDelta = TimeDelta::minutes(2);

/// The evidence a phone sends (and signs, with `meeting_id` and the member).
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Generated on the phone (UUIDv7); the server's own when absent.
    pub id: Option<Uuid>,
    pub device_id: Uuid,
    pub code: String,
    /// The phone's clock when the member clocked in, as signed.
    pub device_time: DateTime<Utc>,
    pub location: Option<Location>,
    /// Base64 of the device key's signature over the canonical evidence.
    pub signature: String,
}

impl Evidence {
    /// The bounds of what a phone can send: a code of at most 16 characters, a signature of at
    /// most 1,024 (a DER ECDSA or Ed25519 signature in base64 is under 100).
    pub fn check(&self) -> Result<(), Error> {
        let mut errs = Vec::new();
        if self.code.len() > 16 {
            errs.push(yunlian_domain::FieldError::new("code", "too_long"));
        }
        if self.signature.len() > 1024 {
            errs.push(yunlian_domain::FieldError::new("signature", "too_long"));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(errs))
        }
    }
}

fn refuse(e: ClockInError) -> Error {
    Error::Unprocessable(e.code())
}

/// How a clock-in is judged: at which time (and how that time was derived), by the server's
/// clock `now`, through which path, and with which video share for a closed meeting's refresh.
#[derive(Debug, Clone, Copy)]
pub struct Judging {
    pub judged: EventTime,
    pub now: DateTime<Utc>,
    pub via: &'static str,
    pub video_share: (i64, i64),
}

/// Checks every piece of evidence and records the clock-in (or returns the member's first).
pub async fn clock_in(
    c: &mut Conn<'_>,
    p: &Principal,
    meeting_id: Uuid,
    ev: &Evidence,
    j: Judging,
) -> Result<ClockIn, Error> {
    let Judging {
        judged,
        now,
        via,
        video_share,
    } = j;
    let (meeting, path, secret) = lock_for_attendance(c, meeting_id).await?;
    if !p.sees(&path) {
        return Err(Error::NotFound);
    }
    let (member, _) = db::members::get(c, p.member_id)
        .await?
        .ok_or(Error::NotFound)?;
    let committee = p.on_committee_of(meeting.org_id);
    if !is_expected(&meeting, member.org_id, member.group_id, committee) {
        return Err(refuse(ClockInError::NotExpected));
    }
    if meeting.status == MeetingStatus::Cancelled {
        return Err(refuse(ClockInError::MeetingCancelled));
    }
    if meeting.status == MeetingStatus::Held && now > meeting.ends_at + LATE_UPLOAD_LIMIT {
        return Err(refuse(ClockInError::MeetingClosed));
    }
    let (device, _) = db::devices::get(c, ev.device_id)
        .await?
        .ok_or(refuse(ClockInError::DeviceNotYours))?;
    if device.member_id != member.id {
        return Err(refuse(ClockInError::DeviceNotYours));
    }
    if device
        .revoked_at
        .is_some_and(|r| r <= judged.at.max(device.created_at))
    {
        return Err(refuse(ClockInError::DeviceRevoked));
    }
    let evidence = ClockInEvidence {
        meeting_id: meeting.id,
        member_id: member.id,
        device_id: device.id,
        code: ev.code.clone(),
        event_time: ev.device_time,
        location: ev.location,
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(&device.public_key)
        .map_err(|e| Error::Internal(format!("stored key: {e}")))?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(ev.signature.trim())
        .map_err(|_| refuse(ClockInError::BadSignature))?;
    verify_signature(device.algorithm, &key, &evidence.canonical(), &sig).map_err(refuse)?;
    // A repeat, from any of the member's phones, returns the first, once its own evidence is
    // shown to be the member's: an unsigned request learns nothing.
    if let Some(first) = db::clock_ins::of(c, meeting.id, member.id).await? {
        return Ok(first);
    }
    if judged.at > now + FUTURE_TOLERANCE {
        return Err(refuse(ClockInError::EventInFuture));
    }
    check_code(&secret, &ev.code, judged.at).map_err(refuse)?;
    if let Some(fence) = &meeting.geofence {
        check_fence(fence, ev.location.as_ref()).map_err(refuse)?;
    }
    let punctuality = judge_time(
        meeting.starts_at,
        meeting.ends_at,
        meeting.checkin_window,
        judged.at,
    )
    .map_err(refuse)?;
    let ci = ClockIn {
        id: ev.id.unwrap_or_else(Uuid::now_v7),
        meeting_id: meeting.id,
        member_id: member.id,
        device_id: device.id,
        punctuality,
        event_time: yunlian_domain::truncate_micros(judged.at),
        time_source: judged.source,
        device_time: yunlian_domain::truncate_micros(ev.device_time),
        code: ev.code.clone(),
        location: ev.location,
        signature: ev.signature.trim().to_string(),
        unlock: device.unlock,
        via: via.to_string(),
        created_at: now,
    };
    let ci = db::clock_ins::insert_first(c, &ci, meeting.org_id).await?;
    // A late-arriving offline clock-in of a closed meeting changes its final status (and
    // everything derived from it, through the outbox).
    if meeting.status == MeetingStatus::Held {
        close_out(c, meeting.id, video_share, now).await?;
    }
    Ok(ci)
}

/// Locks a meeting before a change its close-out must see (a clock-in, a video event): shared
/// with other such changes while it is planned, exclusive once it is held (the change then
/// recomputes the final statuses). A close-out holds it exclusively, so it never misses a change
/// that committed before it, and a change that commits after it finds the meeting held and
/// recomputes. A meeting closed between the first read and the shared lock is a lost race: the
/// transaction runs again and takes the exclusive lock.
pub async fn lock_for_attendance(
    c: &mut Conn<'_>,
    id: Uuid,
) -> Result<(Meeting, String, Vec<u8>), Error> {
    let (seen, _, _) = db::meetings::get(c, id).await?.ok_or(Error::NotFound)?;
    let how = if seen.status == MeetingStatus::Held {
        Lock::Update
    } else {
        Lock::Share
    };
    let locked = db::meetings::lock(c, id, how)
        .await?
        .ok_or(Error::NotFound)?;
    if how == Lock::Share && locked.0.status == MeetingStatus::Held {
        return Err(Error::Busy("meeting closed while locking".into()));
    }
    Ok(locked)
}

/// How long after its end a held meeting still takes queued clock-ins.
const LATE_UPLOAD_LIMIT: TimeDelta = TimeDelta::days(30);

/// Gives every expected attendee their final status and marks the meeting held. Run again (a
/// late clock-in, a late webhook), it changes only what changed; each change is an outbox event.
pub async fn close_out(
    c: &mut Conn<'_>,
    meeting_id: Uuid,
    video_share: (i64, i64),
    now: DateTime<Utc>,
) -> Result<Vec<db::attendance::Final>, Error> {
    let (mut meeting, _, _) = db::meetings::lock(c, meeting_id, Lock::Update)
        .await?
        .ok_or(Error::NotFound)?;
    let org = db::orgs::get(c, meeting.org_id)
        .await?
        .ok_or(Error::NotFound)?;
    let expected = db::attendance::expected(
        c,
        meeting.org_id,
        org.kind == yunlian_domain::org::OrgKind::Group,
        meeting.meeting_type.committee_only(),
    )
    .await?;
    let clock_ins: HashMap<Uuid, Punctuality> = db::clock_ins::of_meeting(c, meeting.id)
        .await?
        .into_iter()
        .map(|ci| (ci.member_id, ci.punctuality))
        .collect();
    let excused: HashSet<Uuid> = db::attendance::leaves_of_meeting(c, meeting.id)
        .await?
        .into_iter()
        .filter(|l| l.status == LeaveStatus::Approved)
        .map(|l| l.member_id)
        .collect();
    let mut video: HashMap<Uuid, Vec<(DateTime<Utc>, VideoEventKind)>> = HashMap::new();
    for (member, at, kind) in db::attendance::video_events_of(c, meeting.id).await? {
        video.entry(member).or_default().push((at, kind));
    }
    let meeting_secs = (meeting.ends_at - meeting.starts_at).num_seconds();
    let mut finals = Vec::with_capacity(expected.len());
    for (member, migrant) in expected {
        let video_secs = video_seconds(
            video.remove(&member).unwrap_or_default(),
            meeting.starts_at,
            meeting.ends_at,
        );
        let status = final_status(
            clock_ins.get(&member).copied(),
            video_secs,
            meeting_secs,
            video_share,
            excused.contains(&member),
        );
        let f = db::attendance::Final {
            member_id: member,
            status,
            video_secs,
            migrant,
        };
        if let Some(previous) = db::attendance::set_final(c, meeting.id, &f, now).await? {
            let payload = json!({
                "meeting_id": meeting.id,
                "org_id": meeting.org_id,
                "meeting_type": meeting.meeting_type,
                "member_id": member,
                "status": status,
                "previous": previous,
                "starts_at": meeting.starts_at,
            });
            db::outbox::append(
                c,
                "attendance.final_status",
                &format!("meeting:{}", meeting.id),
                &payload,
                now,
            )
            .await?;
        }
        finals.push(f);
    }
    if meeting.status == MeetingStatus::Planned {
        meeting.status = MeetingStatus::Held;
        meeting.updated_at = now;
        db::meetings::update(c, &meeting).await?;
    }
    Ok(finals)
}

/// The sync mutation `attendance.clock_in.v1`: the evidence plus its meeting.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockInArgs {
    pub meeting_id: Uuid,
    #[serde(flatten)]
    pub evidence: Evidence,
}

/// Judges a queued clock-in at its derived time: the phone's uptime when the boot matches, else
/// the signed clock of the phone.
pub fn queued_time(derived: EventTime, signed: DateTime<Utc>) -> EventTime {
    match derived.source {
        TimeSource::Uptime => derived,
        _ => EventTime {
            at: signed,
            source: TimeSource::DeviceClock,
        },
    }
}

pub async fn clock_in_online(
    state: web::Data<AppState>,
    user: AuthUser,
    meeting: web::Path<Uuid>,
    body: web::Json<Evidence>,
) -> Result<HttpResponse, ApiError> {
    let (meeting, ev) = (meeting.into_inner(), body.into_inner());
    ev.check()?;
    let principal = user.0.clone();
    let now = state.clock.now();
    // Online, the server's clock judges; the phone's signed clock is kept as evidence.
    let judged = EventTime {
        at: now,
        source: TimeSource::Server,
    };
    let share = state.config.video_present_share;
    let result = state
        .db
        .write(move |mut c| {
            async move {
                let j = Judging {
                    judged,
                    now,
                    via: "online",
                    video_share: share,
                };
                clock_in(&mut c, &principal, meeting, &ev, j).await
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
    let (meeting, path, _) = load_meeting(&state, id.into_inner()).await?;
    authorize(&user, Action::ManageMeetings, &path)?;
    let now = state.clock.now();
    let (mid, share) = (meeting.id, state.config.video_present_share);
    // Checked under the meeting's lock: of two closes at once, the second finds it held.
    let finals = state
        .db
        .write(move |mut c| {
            async move {
                let (meeting, _, _) = db::meetings::lock(&mut c, mid, Lock::Update)
                    .await?
                    .ok_or(Error::NotFound)?;
                if meeting.status != MeetingStatus::Planned {
                    return Err(Error::Conflict("meeting_not_planned"));
                }
                if now < meeting.starts_at {
                    return Err(Error::Conflict("meeting_not_started"));
                }
                close_out(&mut c, mid, share, now).await
            }
            .scope_boxed()
        })
        .await?;
    tracing::info!(meeting = %mid, expected = finals.len(), by = %user.member_id, "meeting closed");
    Ok(HttpResponse::Ok().json(json!({ "meeting_id": mid, "attendance": finals })))
}

/// Closes, one transaction each, every planned meeting that ended more than `grace` ago.
pub async fn close_due(
    db: &yunlian_infra::Db,
    grace: TimeDelta,
    share: (i64, i64),
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let due = db
        .read(move |mut c| {
            async move { db::meetings::due_for_close(&mut c, now - grace).await }.scope_boxed()
        })
        .await?;
    let mut closed = 0;
    for id in due {
        let done = db
            .write(move |mut c| {
                async move {
                    // Closed by hand (or by another round) since the list was read: leave it.
                    match db::meetings::lock(&mut c, id, Lock::Update).await? {
                        Some((m, _, _)) if m.status == MeetingStatus::Planned => {
                            close_out(&mut c, id, share, now).await.map(|_| true)
                        }
                        _ => Ok(false),
                    }
                }
                .scope_boxed()
            })
            .await?;
        closed += usize::from(done);
    }
    Ok(closed)
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
    let (meeting, path, _) = load_meeting(&state, id.into_inner()).await?;
    if !user.sees(&path) {
        return Err(ApiError::not_found());
    }
    let now = state.clock.now();
    if meeting.status != MeetingStatus::Planned || now >= meeting.starts_at {
        return Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "too_late_for_leave",
        ));
    }
    let principal = user.0.clone();
    let leave = state
        .db
        .write(move |mut c| {
            async move {
                let (member, _) = db::members::get(&mut c, principal.member_id)
                    .await?
                    .ok_or(Error::NotFound)?;
                let committee = principal.on_committee_of(meeting.org_id);
                if !is_expected(&meeting, member.org_id, member.group_id, committee) {
                    return Err(refuse(ClockInError::NotExpected));
                }
                let leave = yunlian_domain::attendance::LeaveRequest {
                    id: Uuid::now_v7(),
                    meeting_id: meeting.id,
                    member_id: member.id,
                    reason,
                    status: LeaveStatus::Requested,
                    decided_by: None,
                    decided_at: None,
                    note: None,
                    created_at: now,
                };
                db::attendance::insert_leave(&mut c, &leave, meeting.org_id).await?;
                Ok(leave)
            }
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
    let id = id.into_inner();
    let (mut leave, org, path) = state
        .db
        .read(move |mut c| async move { db::attendance::leave(&mut c, id).await }.scope_boxed())
        .await?
        .ok_or_else(ApiError::not_found)?;
    authorize(&user, Action::ManageMeetings, &path)?;
    leave.status = if b.approve {
        LeaveStatus::Approved
    } else {
        LeaveStatus::Refused
    };
    leave.decided_by = Some(user.member_id);
    leave.decided_at = Some(state.clock.now());
    leave.note = note;
    let saved = leave.clone();
    state
        .db
        .write(move |mut c| {
            async move { db::attendance::decide_leave(&mut c, &saved, org).await }.scope_boxed()
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
    let org = crate::handlers::orgs::load(&state, q.org_id).await?;
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

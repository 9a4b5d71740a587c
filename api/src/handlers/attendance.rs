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
use uuid::Uuid;
use yunlian_domain::attendance::{
    check_code, check_fence, is_expected, judge_time, verify_signature, ClockIn, ClockInError,
    ClockInEvidence, Location, MeetingStatus,
};
use yunlian_domain::auth::{Action, Principal, Role};
use yunlian_domain::sync::{EventTime, TimeSource};
use yunlian_domain::Error;
use yunlian_infra::db::{self, Conn, ScopedFutureExt};

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

fn refuse(e: ClockInError) -> Error {
    Error::Unprocessable(e.code())
}

/// Checks every piece of evidence and records the clock-in (or returns the member's first).
pub async fn clock_in(
    c: &mut Conn<'_>,
    p: &Principal,
    meeting_id: Uuid,
    ev: &Evidence,
    judged: EventTime,
    now: DateTime<Utc>,
    via: &str,
) -> Result<ClockIn, Error> {
    let (meeting, path, secret) = db::meetings::get(c, meeting_id)
        .await?
        .ok_or(Error::NotFound)?;
    if !p.sees(&path) {
        return Err(Error::NotFound);
    }
    let (member, _) = db::members::get(c, p.member_id)
        .await?
        .ok_or(Error::NotFound)?;
    let committee = p.grants.iter().any(|g| {
        g.org_id == meeting.org_id && matches!(g.role, Role::Secretary | Role::CommitteeMember)
    });
    if !is_expected(&meeting, member.org_id, member.group_id, committee) {
        return Err(refuse(ClockInError::NotExpected));
    }
    if meeting.status == MeetingStatus::Cancelled {
        return Err(refuse(ClockInError::MeetingCancelled));
    }
    // A repeat, from any phone, returns the first.
    if let Some(first) = db::clock_ins::of(c, meeting.id, member.id).await? {
        return Ok(first);
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
    db::clock_ins::insert_first(c, &ci, meeting.org_id).await
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
    let principal = user.0.clone();
    let now = state.clock.now();
    // Online, the server's clock judges; the phone's signed clock is kept as evidence.
    let judged = EventTime {
        at: now,
        source: TimeSource::Server,
    };
    let result = state
        .db
        .write(move |mut c| {
            async move { clock_in(&mut c, &principal, meeting, &ev, judged, now, "online").await }
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

/// Who was expected and who has clocked in so far (the committee's view).
pub async fn get_meeting_attendance(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (meeting, path, _) = load_meeting(&state, id.into_inner()).await?;
    authorize(&user, Action::ManageMeetings, &path)?;
    let mid = meeting.id;
    let clock_ins = state
        .db
        .read(move |mut c| {
            async move { db::clock_ins::of_meeting(&mut c, mid).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "meeting": meeting, "clock_ins": clock_ins })))
}

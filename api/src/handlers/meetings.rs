//! Meetings: the branch committee (and admins above) plan, edit, cancel them; every member of
//! the org sees them. The rotating code is for the committee's phones.

use super::{authorize, created, decode_cursor, limit, load_meeting, load_org, nullable, page};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::ops;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use yunlian_domain::attendance::{
    meeting_code, CheckinWindow, Geofence, Meeting, MeetingPatch, MeetingStatus, MeetingType,
    CODE_STEP_SECS,
};
use yunlian_domain::auth::Action;
use yunlian_domain::text;
use yunlian_infra::db::{self, meetings::MeetingFilter, ScopedFutureExt};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMeeting {
    org_id: Uuid,
    meeting_type: MeetingType,
    title: String,
    agenda: Option<String>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    place: Option<String>,
    geofence: Option<Geofence>,
    /// Migrant members join by video: the server names the room.
    #[serde(default)]
    video: bool,
    checkin_window: Option<CheckinWindow>,
}

fn trimmed(s: Option<String>) -> Option<String> {
    s.map(|s| text::tidy(&s)).filter(|s| !s.is_empty())
}

pub async fn create_meeting(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<CreateMeeting>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let org = load_org(&state, b.org_id).await?;
    authorize(&user, Action::ManageMeetings, &org.path)?;
    // A party group meets as a group; every other meeting is a branch's (or a committee's).
    if !b.meeting_type.fits(org.kind) {
        return Err(ApiError::field("meeting_type", "meeting_type_not_for_org"));
    }
    let now = state.clock.now();
    let id = Uuid::now_v7();
    // The window the org's settings give, unless the meeting names its own.
    let checkin_window = match b.checkin_window {
        Some(w) => w,
        None => {
            let (path, root) = (org.path.clone(), state.config.settings_root());
            let s = state
                .db
                .read(move |mut c| {
                    async move { ops::settings::effective(&mut c, &path, root).await }.scope_boxed()
                })
                .await?;
            CheckinWindow {
                opens_before_min: s.checkin_opens_before_min,
                on_time_after_min: s.checkin_on_time_after_min,
            }
        }
    };
    let meeting = Meeting {
        id,
        org_id: org.id,
        meeting_type: b.meeting_type,
        title: text::tidy(&b.title),
        agenda: trimmed(b.agenda),
        starts_at: yunlian_domain::truncate_micros(b.starts_at),
        ends_at: yunlian_domain::truncate_micros(b.ends_at),
        place: trimmed(b.place),
        geofence: b.geofence,
        video_room: b.video.then(|| Meeting::room_name(id)),
        checkin_window,
        status: MeetingStatus::Planned,
        minutes: None,
        created_by: user.member_id,
        created_at: now,
        updated_at: now,
    };
    meeting.validate()?;
    let secret: [u8; 20] = rand::random();
    let m = meeting.clone();
    state
        .db
        .write(move |mut c| {
            async move { db::meetings::insert(&mut c, &m, &secret).await }.scope_boxed()
        })
        .await?;
    tracing::info!(meeting = %meeting.id, org = %org.id, kind = ?meeting.meeting_type, "meeting planned");
    Ok(created(&meeting))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMeetingsQuery {
    org_id: Option<Uuid>,
    meeting_type: Option<MeetingType>,
    status: Option<MeetingStatus>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_meetings(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListMeetingsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let within = super::list_root(
        &state,
        &user,
        q.org_id,
        user.visible_roots(),
        Action::ReadOrg,
    )
    .await?;
    let filter = MeetingFilter {
        within,
        meeting_type: q.meeting_type,
        status: q.status,
        from: q.from,
        to: q.to,
        after: decode_cursor(q.cursor.as_deref())?,
        limit: limit + 1,
    };
    let rows = state
        .db
        .read(move |mut c| async move { db::meetings::list(&mut c, &filter).await }.scope_boxed())
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |m| m.id)))
}

pub async fn get_meeting(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (meeting, path, _) = load_meeting(&state, id.into_inner()).await?;
    authorize(&user, Action::ReadOrg, &path)?;
    Ok(HttpResponse::Ok().json(meeting))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeeting {
    title: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    agenda: Option<Option<String>>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "nullable")]
    place: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    geofence: Option<Option<Geofence>>,
    video: Option<bool>,
    checkin_window: Option<CheckinWindow>,
    #[serde(default, deserialize_with = "nullable")]
    minutes: Option<Option<String>>,
}

pub async fn update_meeting(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<UpdateMeeting>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let patch = MeetingPatch {
        title: b.title,
        agenda: b.agenda,
        starts_at: b.starts_at,
        ends_at: b.ends_at,
        place: b.place,
        geofence: b.geofence,
        video: b.video,
        checkin_window: b.checkin_window,
        minutes: b.minutes,
    };
    let (principal, id, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    let m = state
        .db
        .write(move |mut c| {
            async move { ops::meetings::update(&mut c, &principal, id, &patch, now).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

pub async fn cancel_meeting(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (principal, id, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    let m = state
        .db
        .write(move |mut c| {
            async move { ops::meetings::cancel(&mut c, &principal, id, now).await }.scope_boxed()
        })
        .await?;
    tracing::info!(meeting = %m.id, by = %user.member_id, "meeting cancelled");
    Ok(HttpResponse::Ok().json(m))
}

/// The code to show now, and the secret and parameters to compute it offline (RFC 6238: SHA1,
/// 6 digits, 30 s steps), for the committee's phones.
pub async fn get_meeting_code(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (m, path, secret) = load_meeting(&state, id.into_inner()).await?;
    authorize(&user, Action::ManageMeetings, &path)?;
    let now = state.clock.now();
    let step = CODE_STEP_SECS as i64;
    let valid_until =
        DateTime::<Utc>::from_timestamp((now.timestamp() / step + 1) * step, 0).unwrap_or(now);
    Ok(HttpResponse::Ok().json(json!({
        "meeting_id": m.id,
        "code": meeting_code(&secret, now),
        "valid_until": valid_until,
        "secret_b64": base64::engine::general_purpose::STANDARD.encode(&secret),
        "algorithm": "SHA1",
        "digits": 6,
        "step_secs": CODE_STEP_SECS,
    })))
}

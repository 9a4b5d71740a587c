//! Video meetings on LiveKit (an open-source WebRTC server a county can host): room tokens for
//! expected attendees, and LiveKit's signed webhooks, whose participant join and leave events
//! become connected intervals.

use super::load_meeting;
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::ops::{self, video::VideoEvent};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use yunlian_domain::attendance::{is_expected, MeetingStatus, VideoEventKind};
use yunlian_domain::Error;
use yunlian_infra::db::{self, ScopedFutureExt};

/// How long a room token lets a phone join.
const TOKEN_TTL_SECS: i64 = 6 * 3600;

fn not_configured() -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "video_not_configured")
}

/// Mints a LiveKit access token for an expected attendee of a meeting with a video room.
pub async fn join_meeting_video(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let lk = state.config.livekit.clone().ok_or_else(not_configured)?;
    let (meeting, path, _) = load_meeting(&state, id.into_inner()).await?;
    if !user.sees(&path) {
        return Err(ApiError::not_found());
    }
    let room = meeting
        .video_room
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "no_video_room"))?;
    match meeting.status {
        MeetingStatus::Cancelled => {
            return Err(ApiError::new(StatusCode::CONFLICT, "meeting_cancelled"))
        }
        MeetingStatus::Held => return Err(ApiError::new(StatusCode::CONFLICT, "meeting_closed")),
        MeetingStatus::Planned => {}
    }
    let mid = user.member_id;
    let (member, _) = state
        .db
        .read(move |mut c| async move { db::members::get(&mut c, mid).await }.scope_boxed())
        .await?
        .ok_or_else(ApiError::not_found)?;
    let committee = user.on_committee_of(meeting.org_id);
    if !is_expected(&meeting, member.org_id, member.group_id, committee) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_expected",
        ));
    }
    let now = state.clock.now();
    // A token works until the meeting's end plus the grace, and never longer than a day's
    // session: a leaked one does not open the room of a later meeting.
    let (p, root) = (path.clone(), state.config.settings_root());
    let settings = state
        .db
        .read(move |mut c| {
            async move { ops::settings::effective(&mut c, &p, root).await }.scope_boxed()
        })
        .await?;
    let grace = chrono::TimeDelta::minutes(settings.video_token_grace_minutes);
    let exp = (meeting.ends_at + grace)
        .timestamp()
        .min(now.timestamp() + TOKEN_TTL_SECS);
    if exp <= now.timestamp() {
        return Err(ApiError::new(StatusCode::CONFLICT, "meeting_closed"));
    }
    let claims = json!({
        "iss": lk.api_key,
        "sub": member.id,
        "name": member.fields.name,
        "nbf": now.timestamp(),
        "exp": exp,
        "video": {"room": room, "roomJoin": true, "canPublish": true, "canSubscribe": true},
    });
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(lk.api_secret.as_bytes()),
    )
    .map_err(|e| ApiError::from(Error::Internal(format!("livekit token: {e}"))))?;
    Ok(HttpResponse::Ok()
        .json(json!({ "url": lk.url, "room": room, "token": token, "identity": member.id })))
}

fn bad_signature() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "bad_webhook_signature")
}

/// Checks a webhook as LiveKit signs it: the `Authorization` header is a JWT (HS256, the API
/// secret) issued by the API key, whose `sha256` claim is the base64 SHA-256 of the body.
pub fn verify_webhook(
    auth: Option<&str>,
    body: &[u8],
    api_key: &str,
    api_secret: &str,
    now: i64,
) -> Result<(), ApiError> {
    let token = auth
        .map(|a| a.strip_prefix("Bearer ").unwrap_or(a).trim())
        .ok_or_else(bad_signature)?;
    let mut v = Validation::new(Algorithm::HS256);
    v.validate_exp = false; // judged below by the clock port
    v.required_spec_claims = ["iss"].into_iter().map(String::from).collect();
    v.set_issuer(&[api_key]);
    let claims = decode::<Value>(token, &DecodingKey::from_secret(api_secret.as_bytes()), &v)
        .map_err(|_| bad_signature())?
        .claims;
    if claims["exp"].as_i64().is_some_and(|exp| exp + 60 < now) {
        return Err(bad_signature());
    }
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    if claims["sha256"].as_str() != Some(digest.as_str()) {
        return Err(bad_signature());
    }
    Ok(())
}

fn event_time(v: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    let secs = v
        .as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))?;
    chrono::DateTime::from_timestamp(secs, 0)
}

/// LiveKit's webhook: participant joined / left, room finished. Duplicates and out-of-order
/// deliveries are harmless (events are kept once by id and ordered by their own time).
pub async fn video_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let lk = state.config.livekit.clone().ok_or_else(not_configured)?;
    let now = state.clock.now();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok());
    if let Err(e) = verify_webhook(auth, &body, &lk.api_key, &lk.api_secret, now.timestamp()) {
        tracing::warn!("video webhook with a bad signature refused");
        return Err(e);
    }
    let ev: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("malformed_json"))?;
    let kind = match ev["event"].as_str() {
        Some("participant_joined") => Some(VideoEventKind::Joined),
        Some("participant_left") | Some("room_finished") => Some(VideoEventKind::Left),
        _ => None,
    };
    let (Some(kind), Some(room), Some(event_id), Some(at)) = (
        kind,
        ev["room"]["name"].as_str(),
        ev["id"].as_str(),
        event_time(&ev["createdAt"]),
    ) else {
        return Ok(HttpResponse::Ok()
            .json(json!({"recorded": false, "reason": "not_an_attendance_event"})));
    };
    // Names and ids as LiveKit makes them: short, printable. Anything else is not its event.
    let printable = |s: &str| (1..=200).contains(&s.len()) && !s.chars().any(char::is_control);
    if !printable(room) || !printable(event_id) {
        return Ok(HttpResponse::Ok()
            .json(json!({"recorded": false, "reason": "not_an_attendance_event"})));
    }
    let (room, event_id) = (room.to_string(), event_id.to_string());
    let identity = ev["participant"]["identity"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok());
    let finished = ev["event"] == "room_finished";
    let share = state.config.settings_root();
    let event = VideoEvent {
        room,
        event_id,
        identity,
        kind,
        at,
        finished,
    };
    let recorded = state
        .db
        .write(move |mut c| {
            async move { ops::video::record(&mut c, &event, share, now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(match recorded {
        Ok(_) => json!({ "recorded": true }),
        Err(reason) => json!({ "recorded": false, "reason": reason }),
    }))
}

//! Devices: a member registers a phone's public key (the private half stays in its secure
//! hardware, behind fingerprint or face unlock); the member, or an admin of their subtree,
//! revokes it.

use super::{authorize, created};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use base64::Engine as _;
use serde::Deserialize;
use uuid::Uuid;
use yunlian_domain::attendance::{check_public_key, Device, KeyAlgorithm, Unlock};
use yunlian_domain::auth::Action;
use yunlian_domain::text;
use yunlian_infra::db::{self, ScopedFutureExt};

/// Devices a member may keep registered at once.
const MAX_ACTIVE_DEVICES: usize = 5;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterDevice {
    algorithm: KeyAlgorithm,
    /// Base64 (standard or URL-safe) of the public key.
    public_key: String,
    unlock: Unlock,
    label: Option<String>,
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let s = s.trim();
    STANDARD
        .decode(s)
        .ok()
        .or_else(|| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
}

pub async fn register_device(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<RegisterDevice>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    if b.public_key.len() > 1024 {
        return Err(ApiError::field("public_key", "too_long"));
    }
    let key = decode_b64(&b.public_key).filter(|k| check_public_key(b.algorithm, k));
    let Some(key) = key else {
        return Err(ApiError::field("public_key", "invalid_public_key"));
    };
    let label = text::clean_opt("label", b.label.as_deref(), text::Kind::Line, 50)
        .map_err(|e| yunlian_domain::Error::Invalid(vec![e]))?;
    let device = Device {
        id: Uuid::now_v7(),
        member_id: user.member_id,
        algorithm: b.algorithm,
        public_key: base64::engine::general_purpose::STANDARD.encode(key),
        unlock: b.unlock,
        label,
        created_at: state.clock.now(),
        revoked_at: None,
    };
    let d = device.clone();
    state
        .db
        .write(move |mut c| {
            async move {
                // Counted under the member's row lock: two registrations at once cannot both
                // take the last place.
                db::members::lock(&mut c, d.member_id)
                    .await?
                    .ok_or(yunlian_domain::Error::NotFound)?;
                let active = db::devices::of_member(&mut c, d.member_id)
                    .await?
                    .into_iter()
                    .filter(|x| x.revoked_at.is_none())
                    .count();
                if active >= MAX_ACTIVE_DEVICES {
                    return Err(yunlian_domain::Error::Conflict("too_many_devices"));
                }
                db::devices::insert(&mut c, &d).await
            }
            .scope_boxed()
        })
        .await?;
    tracing::info!(device = %device.id, member = %device.member_id, unlock = ?device.unlock, "device registered");
    Ok(created(&device))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListDevicesQuery {
    /// Another member's devices (an admin of their subtree); one's own by default.
    member_id: Option<Uuid>,
}

pub async fn list_devices(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListDevicesQuery>,
) -> Result<HttpResponse, ApiError> {
    let member = q.member_id.unwrap_or(user.member_id);
    if member != user.member_id {
        let (_, path) = state
            .db
            .read(move |mut c| async move { db::members::get(&mut c, member).await }.scope_boxed())
            .await?
            .ok_or_else(ApiError::not_found)?;
        authorize(&user, Action::ManageMembers, &path)?;
    }
    let items = state
        .db
        .read(move |mut c| {
            async move { db::devices::of_member(&mut c, member).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

pub async fn revoke_device(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (device, path) = state
        .db
        .read(move |mut c| async move { db::devices::get(&mut c, id).await }.scope_boxed())
        .await?
        .ok_or_else(ApiError::not_found)?;
    if device.member_id != user.member_id {
        authorize(&user, Action::ManageMembers, &path)?;
    }
    let (by, now) = (user.member_id, state.clock.now());
    state
        .db
        .write(move |mut c| {
            async move { db::devices::revoke(&mut c, &device, by, now).await }.scope_boxed()
        })
        .await?;
    tracing::info!(device = %id, by = %by, "device revoked");
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PushTokenBody {
    provider: String,
    token: String,
}

/// `registerPushToken`: the phone's own device only.
pub async fn register_push_token(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<PushTokenBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, now, b) = (
        user.0.clone(),
        id.into_inner(),
        state.clock.now(),
        body.into_inner(),
    );
    let t = state
        .db
        .write(move |mut c| {
            let (p, b) = (p.clone(), b.clone());
            async move {
                let t = yunlian_domain::warnings::push::PushToken {
                    provider: b.provider,
                    token: b.token,
                };
                crate::ops::push::register_token(&mut c, &p, id, t, now).await
            }
            .scope_boxed()
        })
        .await?;
    // The token addresses a person's phone: its provider only in the log.
    tracing::info!(device = %id, provider = %t.provider, "push token registered");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "device_id": id, "provider": t.provider })))
}

pub async fn delete_push_token(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id) = (user.0.clone(), id.into_inner());
    state
        .db
        .write(move |mut c| {
            let p = p.clone();
            async move { crate::ops::push::delete_token(&mut c, &p, id).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

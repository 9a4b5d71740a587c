//! Login, token refresh, logout, the caller's own profile and password.

use crate::auth::{AuthUser, Claims};
use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use yunlian_domain::member::{check_password, Member, Phone};
use yunlian_domain::ports::{Admission, RateLimiter};
use yunlian_domain::Error;
use yunlian_infra::db::{self, sessions::Spent, ScopedFutureExt};
use yunlian_infra::password;

/// Failed attempts per phone number in a window (cleared by a successful login).
const PHONE_ATTEMPTS: u32 = 5;
/// Failed attempts per client address in a window. Only failures count: a village hall where
/// thirty members log in behind one address on a themed party day must not be locked out.
const ADDRESS_ATTEMPTS: u32 = 30;
const WINDOW_SECS: u64 = 15 * 60;
/// The longest password a login checks (a password one may set is at most 128 characters).
const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    phone: String,
    password: String,
}

#[derive(Serialize)]
pub struct Tokens {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: i64,
}

fn new_refresh_token() -> (String, String) {
    let raw: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = hash_token(&token);
    (token, hash)
}

fn hash_token(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn client_address(req: &HttpRequest, state: &AppState) -> String {
    let info = req.connection_info();
    let addr = if state.config.trust_proxy {
        info.realip_remote_addr()
    } else {
        info.peer_addr()
    };
    addr.unwrap_or("unknown").to_string()
}

async fn admit(state: &AppState, key: &str, max: u32) -> Result<(), ApiError> {
    match state.limiter.check(key, max).await? {
        Admission::Allowed => Ok(()),
        Admission::Denied { retry_after_secs } => {
            Err(Error::RateLimited { retry_after_secs }.into())
        }
    }
}

fn issue(
    state: &AppState,
    member: Uuid,
    session: Uuid,
    refresh: String,
) -> Result<Tokens, ApiError> {
    let now = state.clock.now().timestamp();
    let ttl = state.config.access_token_ttl_secs;
    let access = state.jwt.issue(&Claims {
        sub: member,
        sid: session,
        iat: now,
        exp: now + ttl,
    })?;
    Ok(Tokens {
        access_token: access,
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: ttl,
    })
}

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let phone = Phone::parse(&body.phone).map_err(|e| Error::Invalid(vec![e]))?;
    if body.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::field("password", "too_long"));
    }
    let addr_key = format!("login:addr:{}", client_address(&req, &state));
    let phone_key = format!("login:phone:{}", phone.as_str());
    admit(&state, &addr_key, ADDRESS_ATTEMPTS).await?;
    admit(&state, &phone_key, PHONE_ATTEMPTS).await?;

    let p = phone.clone();
    let found = state
        .db
        .read(move |mut c| async move { db::members::by_phone(&mut c, &p).await }.scope_boxed())
        .await?;
    let (member_id, stored) = match found {
        Some((m, hash)) => (Some(m.id), hash),
        None => (None, None),
    };
    let ok = password::verify(&body.password, stored).await?;
    let Some(member_id) = member_id.filter(|_| ok) else {
        state.limiter.record(&addr_key, WINDOW_SECS).await?;
        state.limiter.record(&phone_key, WINDOW_SECS).await?;
        tracing::info!(phone = %phone.masked(), "login refused");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ));
    };
    state.limiter.clear(&phone_key).await?;

    let now = state.clock.now();
    let session = Uuid::now_v7();
    let (refresh, hash) = new_refresh_token();
    let expires = now + chrono::TimeDelta::days(state.config.refresh_token_ttl_days);
    state
        .db
        .write(move |mut c| {
            async move { db::sessions::create(&mut c, session, member_id, &hash, now, expires).await }
                .scope_boxed()
        })
        .await?;
    tracing::info!(phone = %phone.masked(), member = %member_id, "login ok");
    Ok(HttpResponse::Ok().json(issue(&state, member_id, session, refresh)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: String,
}

pub async fn refresh_token(
    state: web::Data<AppState>,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let presented = hash_token(body.refresh_token.trim());
    let (next, next_hash) = new_refresh_token();
    let now = state.clock.now();
    let spent = state
        .db
        .write(move |mut c| {
            async move { db::sessions::rotate(&mut c, &presented, &next_hash, now).await }
                .scope_boxed()
        })
        .await?;
    match spent {
        Spent::Rotated {
            session_id,
            member_id,
        } => Ok(HttpResponse::Ok().json(issue(&state, member_id, session_id, next)?)),
        Spent::Reused => {
            tracing::warn!("refresh token reused: session revoked");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
            ))
        }
        Spent::Invalid => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "refresh_token_invalid",
        )),
    }
}

pub async fn logout(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let sid = user.session_id;
    let now = state.clock.now();
    state
        .db
        .write(move |mut c| {
            async move { db::sessions::revoke(&mut c, sid, "logout", now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize)]
struct RoleOut {
    org_id: Uuid,
    role: yunlian_domain::auth::Role,
}

#[derive(Serialize)]
struct Me {
    #[serde(flatten)]
    member: Member,
    roles: Vec<RoleOut>,
}

pub async fn get_me(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let id = user.member_id;
    let (member, _) = state
        .db
        .read(move |mut c| async move { db::members::get(&mut c, id).await }.scope_boxed())
        .await?
        .ok_or_else(ApiError::not_found)?;
    let roles = user
        .grants
        .iter()
        .map(|g| RoleOut {
            org_id: g.org_id,
            role: g.role,
        })
        .collect();
    Ok(HttpResponse::Ok().json(Me { member, roles }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<ChangePasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_password(&body.new_password).map_err(|e| Error::Invalid(vec![e]))?;
    let id = user.member_id;
    let key = format!("password:{id}");
    admit(&state, &key, PHONE_ATTEMPTS).await?;
    let stored = state
        .db
        .read(move |mut c| {
            async move { db::members::password_hash(&mut c, id).await }.scope_boxed()
        })
        .await?;
    if body.current_password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::field("current_password", "too_long"));
    }
    if !password::verify(&body.current_password, stored).await? {
        state.limiter.record(&key, WINDOW_SECS).await?;
        return Err(ApiError::new(StatusCode::FORBIDDEN, "wrong_password"));
    }
    let hash = password::hash(&body.new_password).await?;
    set_password_and_revoke(&state, id, hash, "password_changed").await?;
    tracing::info!(member = %id, "password changed; sessions revoked");
    Ok(HttpResponse::NoContent().finish())
}

/// Stores a new password hash and ends every session of the member, in one transaction.
pub async fn set_password_and_revoke(
    state: &AppState,
    member: Uuid,
    hash: String,
    reason: &'static str,
) -> Result<(), ApiError> {
    let now = state.clock.now();
    state
        .db
        .write(move |mut c| {
            async move {
                let path = db::members::get(&mut c, member)
                    .await?
                    .map(|(_, p)| p)
                    .unwrap_or_default();
                let changes = vec![yunlian_domain::audit::secret_changed("password")];
                db::audit::note(&mut c, "member", member, &path, changes);
                db::members::set_password(&mut c, member, &hash, now).await?;
                db::sessions::revoke_all(&mut c, member, reason, now).await?;
                Ok(())
            }
            .scope_boxed()
        })
        .await?;
    Ok(())
}

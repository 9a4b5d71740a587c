//! Access tokens (short-lived HS256 JWTs) and the `AuthUser` extractor, which turns a bearer
//! token into a `Principal` with every grant the member holds now. Authorisation itself is
//! `Principal::can` in the domain: one place, not re-derived per handler.

use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;
use yunlian_domain::auth::Principal;
use yunlian_domain::sync::Scope;
use yunlian_domain::Error;
use yunlian_infra::db::{self, ScopedFutureExt};

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Clone)]
pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        JwtKeys {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
        }
    }

    pub fn issue(&self, claims: &Claims) -> Result<String, ApiError> {
        encode(&Header::new(Algorithm::HS256), claims, &self.enc)
            .map_err(|e| Error::Internal(format!("jwt: {e}")).into())
    }

    /// Checks signature and expiry against `now` (from the clock port, not the system time).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, ApiError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false; // checked below against the clock port
        v.required_spec_claims = ["exp", "sub"].into_iter().map(String::from).collect();
        let claims = decode::<Claims>(token, &self.dec, &v)
            .map_err(|_| ApiError::new(actix_web::http::StatusCode::UNAUTHORIZED, "token_invalid"))?
            .claims;
        if claims.exp <= now {
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "token_expired",
            ));
        }
        Ok(claims)
    }
}

/// The authenticated caller. Extracting it checks the token, that its session is still live
/// (so logout and password changes bite at once), and loads the caller's current grants.
pub struct AuthUser(pub Principal);

impl std::ops::Deref for AuthUser {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::from(Error::Internal("no state".into())))?;
            let unauth =
                || ApiError::new(actix_web::http::StatusCode::UNAUTHORIZED, "unauthenticated");
            let header = header.ok_or_else(unauth)?;
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .ok_or_else(unauth)?
                .trim();
            let now = state.clock.now();
            let claims = state.jwt.verify(token, now.timestamp())?;
            let principal = match state.principals.get(claims.sid, claims.sub, now) {
                Some(p) => p,
                None => {
                    let generation = db::access_generation();
                    let p = load_principal(&state, claims.sub, claims.sid, now).await?;
                    state.principals.put(&p, generation, now);
                    p
                }
            };
            yunlian_infra::db::audit::set_actor(principal.member_id);
            Ok(AuthUser(principal))
        })
    }
}

/// Principals loaded in the last moment, by session: a phone's requests come in bursts (a pull's
/// pages, a push after a clock-in), and each would otherwise reload the same grants.
///
/// An entry serves only while three things hold: it is younger than the TTL (by the monotonic
/// clock, and by the clock port, so a test clock moved on sees it expired), and no write that
/// changed access has committed in this process since it was loaded (the access generation,
/// read before the load: a revocation racing the load leaves the entry stale, never fresh).
/// So logout, a password change, a role granted or ended and a move bite at once here, and a
/// revocation on another replica within the TTL.
pub struct Principals {
    ttl: std::time::Duration,
    entries: std::sync::Mutex<std::collections::HashMap<Uuid, Cached>>,
}

struct Cached {
    principal: Principal,
    /// The sync scopes this principal sees, once a pull or a status has computed them from the
    /// orgs under its grants (an org created drops them with the principal: see
    /// `db::orgs::insert`).
    scopes: Option<Arc<BTreeSet<Scope>>>,
    generation: u64,
    loaded: std::time::Instant,
    loaded_at: chrono::DateTime<chrono::Utc>,
}

/// Entries kept at most; past that, expired ones are dropped, and if none is, all of them.
const MAX_CACHED_PRINCIPALS: usize = 20_000;

impl Principals {
    pub fn new(ttl: std::time::Duration) -> Self {
        Principals {
            ttl,
            entries: Default::default(),
        }
    }

    fn fresh(&self, e: &Cached, generation: u64, now: chrono::DateTime<chrono::Utc>) -> bool {
        let age = now.signed_duration_since(e.loaded_at);
        e.generation == generation
            && e.loaded.elapsed() < self.ttl
            && age >= chrono::TimeDelta::zero()
            && age.to_std().is_ok_and(|a| a < self.ttl)
    }

    pub fn get(
        &self,
        session: Uuid,
        member: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<Principal> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = db::access_generation();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(&session)?;
        (e.principal.member_id == member && self.fresh(e, generation, now))
            .then(|| e.principal.clone())
    }

    /// Keeps `p`, loaded under access generation `generation` (read before the load).
    pub fn put(&self, p: &Principal, generation: u64, now: chrono::DateTime<chrono::Utc>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_CACHED_PRINCIPALS {
            let current = db::access_generation();
            entries.retain(|_, e| self.fresh(e, current, now));
            if entries.len() >= MAX_CACHED_PRINCIPALS {
                entries.clear();
            }
        }
        entries.insert(
            p.session_id,
            Cached {
                principal: p.clone(),
                scopes: None,
                generation,
                loaded: std::time::Instant::now(),
                loaded_at: now,
            },
        );
    }

    /// The sync scopes cached for `p`'s session, if its entry is still fresh.
    pub fn scopes(
        &self,
        p: &Principal,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<Arc<BTreeSet<Scope>>> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = db::access_generation();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(&p.session_id)?;
        (e.principal.member_id == p.member_id && self.fresh(e, generation, now))
            .then(|| e.scopes.clone())
            .flatten()
    }

    /// Keeps the sync scopes `p` sees, computed under access generation `generation` (read
    /// before the orgs were), on its session's entry if that entry was loaded under the same
    /// generation: scopes and grants then go stale together.
    pub fn put_scopes(&self, p: &Principal, generation: u64, scopes: Arc<BTreeSet<Scope>>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = entries.get_mut(&p.session_id) {
            if e.generation == generation && e.principal.member_id == p.member_id {
                e.scopes = Some(scopes);
            }
        }
    }
}

async fn load_principal(
    state: &AppState,
    member_id: Uuid,
    session_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Principal, ApiError> {
    let grants = state
        .db
        .read(move |mut c| {
            async move { db::roles::of_live_session(&mut c, member_id, session_id, now).await }
                .scope_boxed()
        })
        .await?
        .ok_or_else(|| {
            ApiError::new(actix_web::http::StatusCode::UNAUTHORIZED, "session_revoked")
        })?;
    Ok(Principal {
        member_id,
        session_id,
        grants,
    })
}

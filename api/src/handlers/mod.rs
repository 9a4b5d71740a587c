//! Handlers, one file per resource. A handler parses, authorises, calls infra, maps the result.

pub mod attendance;
pub mod audit;
pub mod auth;
pub mod cases;
pub mod devices;
pub mod docs;
pub mod events;
pub mod health;
pub mod images;
pub mod learning;
pub mod meetings;
pub mod members;
pub mod moments;
pub mod orgs;
pub mod points;
pub mod roles;
pub mod settings;
pub mod sync;
pub mod video;
pub mod warnings;

use crate::errors::ApiError;
use actix_web::http::StatusCode;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;
use yunlian_domain::auth::{Action, Principal};

/// An org by id (not found: 404).
pub async fn load_org(
    state: &crate::state::AppState,
    id: Uuid,
) -> Result<yunlian_domain::org::Org, ApiError> {
    use yunlian_infra::db::{self, ScopedFutureExt};
    state
        .db
        .read(move |mut c| async move { db::orgs::get(&mut c, id).await }.scope_boxed())
        .await?
        .ok_or_else(ApiError::not_found)
}

/// A meeting, the path of its org, and its code secret (not found: 404).
pub async fn load_meeting(
    state: &crate::state::AppState,
    id: Uuid,
) -> Result<(yunlian_domain::attendance::Meeting, String, Vec<u8>), ApiError> {
    use yunlian_infra::db::{self, ScopedFutureExt};
    state
        .db
        .read(move |mut c| async move { db::meetings::get(&mut c, id).await }.scope_boxed())
        .await?
        .ok_or_else(ApiError::not_found)
}

/// The path of the org a list is about: the one named (authorised for `action`), or else the
/// caller's only subtree among `roots` (with several, `org_id_required`).
pub async fn list_root(
    state: &crate::state::AppState,
    p: &Principal,
    org_id: Option<Uuid>,
    mut roots: Vec<String>,
    action: Action,
) -> Result<String, ApiError> {
    let path = match org_id {
        Some(id) => load_org(state, id).await?.path,
        None if roots.len() == 1 => roots.remove(0),
        None => return Err(ApiError::field("org_id", "org_id_required")),
    };
    authorize(p, action, &path)?;
    Ok(path)
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// One page of a list, with the opaque cursor of the next page when there is one.
#[derive(Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says that more exist.
pub fn page<T>(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> Uuid) -> Page<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| encode_cursor(id(r)))
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

pub fn encode_cursor(id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

pub fn decode_cursor(c: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    let Some(c) = c else { return Ok(None) };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| ApiError::bad_request("invalid_cursor"))?;
    Uuid::from_slice(&bytes)
        .map(Some)
        .map_err(|_| ApiError::bad_request("invalid_cursor"))
}

pub fn limit(l: Option<i64>) -> Result<i64, ApiError> {
    match l {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if n < 1 => Err(ApiError::field("limit", "invalid_limit")),
        Some(n) if n > MAX_LIMIT => Err(ApiError::field("limit", "limit_too_large")),
        Some(n) => Ok(n),
    }
}

/// Authorise `action` on the org at `path`: 404 when the caller cannot see the org at all (its
/// existence does not leak to a sibling branch), 403 when they see it but lack the role.
pub fn authorize(p: &Principal, action: Action, path: &str) -> Result<(), ApiError> {
    crate::ops::authorize(p, action, path).map_err(ApiError::from)
}

/// For PATCH bodies: absent → `None`, `null` → `Some(None)`, a value → `Some(Some(v))`.
pub fn nullable<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub fn created<T: Serialize>(body: &T) -> actix_web::HttpResponse {
    actix_web::HttpResponse::build(StatusCode::CREATED).json(body)
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A workbook for the notice board, as a download.
pub fn workbook(bytes: Vec<u8>, filename: &str) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type(XLSX)
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(bytes)
}

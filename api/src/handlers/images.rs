//! Images of the board: uploaded by the committee as raw bytes (the type is sniffed from them,
//! never taken from the header), checked, stripped of metadata and thumbnailed off the async
//! workers, kept in the object store, and served to those who may see their branch.

use super::{authorize, created, load_org};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use uuid::Uuid;
use yunlian_domain::auth::Action;
use yunlian_domain::Error;
use yunlian_infra::db::{self, moments::ImageRecord, ScopedFutureExt};
use yunlian_infra::images::{self, MAX_BYTES};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    org_id: Uuid,
}

fn keys(id: Uuid) -> (String, String) {
    (format!("images/{id}/full"), format!("images/{id}/thumb"))
}

pub async fn upload_image(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    q: crate::extract::Query<UploadQuery>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(declared.starts_with("image/") || declared.starts_with("application/octet-stream")) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ));
    }
    let org = load_org(&state, q.into_inner().org_id).await?;
    authorize(&user, Action::ManageBoard, &org.path)?;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("malformed_body"))?;
        if bytes.len() + chunk.len() > MAX_BYTES {
            return Err(ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "image_too_large",
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let prepared = web::block(move || images::prepare(&bytes))
        .await
        .map_err(|e| ApiError::from(Error::Internal(e.to_string())))??;
    let record = ImageRecord {
        id: Uuid::now_v7(),
        org_id: org.id,
        uploaded_by: user.member_id,
        content_type: prepared.content_type.to_string(),
        width: i64::from(prepared.width),
        height: i64::from(prepared.height),
        bytes: prepared.full.len() as i64,
        post_id: None,
        created_at: state.clock.now(),
    };
    // The objects first: a record never names an object that is not there.
    let (full, thumb) = keys(record.id);
    state.objects.put(&full, prepared.full).await?;
    state.objects.put(&thumb, prepared.thumb).await?;
    let r = record.clone();
    state
        .db
        .write(move |mut c| {
            async move { db::moments::insert_image(&mut c, &r).await }.scope_boxed()
        })
        .await?;
    tracing::info!(image = %record.id, org = %org.id, width = record.width, height = record.height, "image stored");
    Ok(created(&record))
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    Full,
    Thumb,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetImageQuery {
    size: Option<Size>,
}

pub async fn get_image(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
    q: crate::extract::Query<GetImageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let size = q.into_inner().size.unwrap_or(Size::Full);
    let (record, path) = state
        .db
        .read(move |mut c| async move { db::moments::get_image(&mut c, id).await }.scope_boxed())
        .await?
        .ok_or_else(ApiError::not_found)?;
    authorize(&user, Action::ReadOrg, &path)?;
    // An image never changes under its id: the phone keeps it, and asks again only to check.
    let etag = format!(
        "\"{}-{}\"",
        record.id,
        if size == Size::Thumb { "t" } else { "f" }
    );
    let cache = "private, max-age=31536000, immutable";
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, cache))
            .finish());
    }
    let (full, thumb) = keys(record.id);
    let key = if size == Size::Thumb { thumb } else { full };
    let bytes = state
        .objects
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::from(Error::Internal(format!("object {key} missing"))))?;
    Ok(HttpResponse::Ok()
        .content_type(record.content_type.as_str())
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(bytes))
}

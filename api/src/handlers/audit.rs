//! The audit log and a member's own data: thin handlers over `ops::audit` and
//! `ops::privacy`.

use super::{decode_cursor, limit, page};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::ops;
use crate::state::AppState;
use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;
use yunlian_infra::db::ScopedFutureExt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    org_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    subject_id: Option<String>,
    operation: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_audit_events(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let query = ops::audit::Query {
        org_id: q.org_id,
        actor: q.actor_id,
        subject: q.subject_id.filter(|s| !s.is_empty()),
        operation: q.operation.filter(|s| !s.is_empty()),
        from: q.from,
        to: q.to,
        before: decode_cursor(q.cursor.as_deref())?,
        limit: limit + 1,
    };
    let (p, now) = (user.0.clone(), state.clock.now());
    let rows = state
        .db
        .read(move |mut c| {
            async move { ops::audit::list(&mut c, &p, &query, now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |e| e.id)))
}

/// The caller's own data as one JSON download.
pub async fn export_my_data(
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let data = ops::privacy::export(&state.db, &user, state.clock.now()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(format!(
                "yunlian-my-data-{}.json",
                data.exported_at.format("%Y%m%d")
            ))],
        })
        .insert_header(("Cache-Control", "no-store"))
        .json(data))
}

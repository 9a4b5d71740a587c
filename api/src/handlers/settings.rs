//! Org settings over HTTP: read what is in force, and (township admins) change an org's own.

use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::ops;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;
use yunlian_domain::settings::Overrides;
use yunlian_infra::db::ScopedFutureExt;

pub async fn get_org_settings(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, root) = (
        user.0.clone(),
        id.into_inner(),
        state.config.settings_root(),
    );
    let s = state
        .db
        .read(move |mut c| {
            async move { ops::settings::get(&mut c, &p, id, root).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    overrides: Overrides,
    /// The version this change was made from; a change made meanwhile is refused.
    expected_version: Option<i64>,
}

pub async fn update_org_settings(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<UpdateSettings>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let (p, id, root, now) = (
        user.0.clone(),
        id.into_inner(),
        state.config.settings_root(),
        state.clock.now(),
    );
    let s = state
        .db
        .write(move |mut c| {
            async move {
                ops::settings::update(&mut c, &p, id, b.overrides, b.expected_version, root, now)
                    .await
            }
            .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

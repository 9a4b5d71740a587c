//! Warnings: thin handlers over `ops::warnings`.

use super::{decode_cursor, limit, page};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::ops;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;
use yunlian_domain::warnings::{Level, Rule};
use yunlian_infra::db::ScopedFutureExt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListWarningsQuery {
    org_id: Option<Uuid>,
    open: Option<bool>,
    level: Option<Level>,
    rule: Option<Rule>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_warnings(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListWarningsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let query = ops::warnings::ListQuery {
        org_id: q.org_id,
        open_only: q.open.unwrap_or(false),
        level: q.level,
        rule: q.rule,
        after: decode_cursor(q.cursor.as_deref())?,
        limit: limit + 1,
    };
    let p = user.0.clone();
    let rows = state
        .db
        .read(move |mut c| {
            async move { ops::warnings::list(&mut c, &p, query).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |w| w.id)))
}

pub async fn get_warning(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id) = (user.0.clone(), id.into_inner());
    let w = state
        .db
        .read(move |mut c| async move { ops::warnings::get(&mut c, &p, id).await }.scope_boxed())
        .await?;
    Ok(HttpResponse::Ok().json(w))
}

async fn mark(
    state: web::Data<AppState>,
    user: AuthUser,
    id: Uuid,
    acknowledge: bool,
) -> Result<HttpResponse, ApiError> {
    let (p, now) = (user.0.clone(), state.clock.now());
    let w = state
        .db
        .write(move |mut c| {
            let p = p.clone();
            async move { ops::warnings::mark(&mut c, &p, id, acknowledge, now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(w))
}

pub async fn mark_warning_read(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    mark(state, user, id.into_inner(), false).await
}

pub async fn acknowledge_warning(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    mark(state, user, id.into_inner(), true).await
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    answer: String,
    #[serde(default)]
    attachments: Vec<Uuid>,
}

pub async fn answer_rectification(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<AnswerBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, now, b) = (
        user.0.clone(),
        id.into_inner(),
        state.clock.now(),
        body.into_inner(),
    );
    let w = state
        .db
        .write(move |mut c| {
            let (p, b) = (p.clone(), b.clone());
            async move {
                ops::warnings::answer(&mut c, &p, id, &b.answer, b.attachments, now).await
            }
            .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(w))
}

async fn decide(
    state: web::Data<AppState>,
    user: AuthUser,
    id: Uuid,
    returned: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let (p, now, root) = (
        user.0.clone(),
        state.clock.now(),
        state.config.settings_root(),
    );
    let w = state
        .db
        .write(move |mut c| {
            let (p, r) = (p.clone(), returned.clone());
            async move { ops::warnings::decide(&mut c, &p, id, r, root, now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(w))
}

pub async fn verify_rectification(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    decide(state, user, id.into_inner(), None).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnBody {
    reason: String,
}

pub async fn return_rectification(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<ReturnBody>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.into_inner().reason;
    decide(state, user, id.into_inner(), Some(reason)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceQuery {
    org_id: Uuid,
}

pub async fn get_compliance(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ComplianceQuery>,
) -> Result<HttpResponse, ApiError> {
    let org = q.into_inner().org_id;
    let (p, now, root) = (
        user.0.clone(),
        state.clock.now(),
        state.config.settings_root(),
    );
    let r = state
        .db
        .snapshot(move |mut c| {
            async move { ops::warnings::compliance(&mut c, &p, org, root, now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersQuery {
    org_id: Uuid,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_dead_letters(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<DeadLettersQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let after = decode_cursor(q.cursor.as_deref())?;
    let (p, org) = (user.0.clone(), q.org_id);
    let rows = state
        .db
        .read(move |mut c| {
            async move { ops::push::dead_letters(&mut c, &p, org, after, limit + 1).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |p| p.id)))
}

pub async fn replay_dead_letter(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    let r = state
        .db
        .write(move |mut c| {
            let p = p.clone();
            async move { ops::push::replay(&mut c, &p, id, now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YearQuery {
    year: Option<i32>,
}

pub async fn get_branch_assessment(
    state: web::Data<AppState>,
    user: AuthUser,
    org: web::Path<Uuid>,
    q: crate::extract::Query<YearQuery>,
) -> Result<HttpResponse, ApiError> {
    let (p, org, year) = (user.0.clone(), org.into_inner(), q.into_inner().year);
    let (now, root) = (state.clock.now(), state.config.settings_root());
    let r = state
        .db
        .snapshot(move |mut c| {
            async move { ops::assessment::get(&mut c, &p, org, year, root, now).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentsQuery {
    org_id: Uuid,
    year: Option<i32>,
}

pub async fn list_branch_assessments(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<AssessmentsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let (p, org, year) = (user.0.clone(), q.org_id, q.year);
    let (now, root) = (state.clock.now(), state.config.settings_root());
    let items = state
        .db
        .snapshot(move |mut c| {
            async move { ops::assessment::list(&mut c, &p, org, year, root, now).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

pub async fn export_branch_assessments(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<AssessmentsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let (p, org, year) = (user.0.clone(), q.org_id, q.year);
    let (now, root) = (state.clock.now(), state.config.settings_root());
    let (bytes, name) = state
        .db
        .snapshot(move |mut c| {
            async move { ops::assessment::export(&mut c, &p, org, year, root, now).await }
                .scope_boxed()
        })
        .await?;
    Ok(super::workbook(bytes, &name))
}

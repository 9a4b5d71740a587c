//! Learning: thin handlers over `ops::learning`.

use super::{created, decode_cursor, limit, page};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::ops;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;
use yunlian_domain::learning::{ItemKind, Lesson, Question};
use yunlian_infra::db::ScopedFutureExt;

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CreateItem {
    org_id: Uuid,
    kind: ItemKind,
    title: String,
    body: Option<String>,
    #[serde(default)]
    length_secs: i64,
    #[serde(default)]
    questions: Vec<Question>,
    #[serde(default)]
    lessons: Vec<Lesson>,
}

pub async fn create_learning_item(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<CreateItem>,
) -> Result<HttpResponse, ApiError> {
    let (p, now, b) = (user.0.clone(), state.clock.now(), body.into_inner());
    let item = state
        .db
        .write(move |mut c| {
            let b = b.clone();
            async move {
                ops::learning::create_item(
                    &mut c,
                    &p,
                    b.org_id,
                    b.kind,
                    &b.title,
                    b.body.as_deref(),
                    b.length_secs,
                    b.questions,
                    b.lessons,
                    now,
                )
                .await
            }
            .scope_boxed()
        })
        .await?;
    Ok(created(&ops::learning::ItemView::from(item)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListItemsQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_learning_items(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListItemsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let before = decode_cursor(q.cursor.as_deref())?;
    let p = user.0.clone();
    let rows = state
        .db
        .read(move |mut c| {
            async move { ops::learning::list_items(&mut c, &p, before, limit + 1).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |i| i.item.id)))
}

pub async fn get_learning_item(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id) = (user.0.clone(), id.into_inner());
    let item = state
        .db
        .read(move |mut c| {
            async move { ops::learning::get_item(&mut c, &p, id).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(item))
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ProgressBody {
    position_secs: i64,
    /// For a course: which lesson, from 0.
    lesson: Option<usize>,
}

pub async fn report_learning_progress(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<ProgressBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, now, b) = (
        user.0.clone(),
        id.into_inner(),
        state.clock.now(),
        body.into_inner(),
    );
    let (lesson, pos) = (b.lesson, b.position_secs);
    let r = state
        .db
        .write(move |mut c| {
            async move { ops::learning::report(&mut c, &p, id, lesson, pos, now, now).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct QuizBody {
    answers: Vec<usize>,
}

pub async fn submit_quiz(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<QuizBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, now, b) = (
        user.0.clone(),
        id.into_inner(),
        state.clock.now(),
        body.into_inner(),
    );
    let r = state
        .db
        .write(move |mut c| {
            let b = b.clone();
            async move { ops::learning::submit_quiz(&mut c, &p, id, &b.answers, now).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct VisitBody {
    member_id: Uuid,
    item_id: Uuid,
    duration_secs: i64,
    /// `member_confirmed` (on the visitor's phone) or `note`.
    confirmation: String,
    note: Option<String>,
}

pub async fn record_learning_visit(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<VisitBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, now, b) = (user.0.clone(), state.clock.now(), body.into_inner());
    let r = state
        .db
        .write(move |mut c| {
            let b = b.clone();
            async move {
                ops::learning::record_visit(
                    &mut c,
                    &p,
                    b.member_id,
                    b.item_id,
                    b.duration_secs,
                    &b.confirmation,
                    b.note.as_deref(),
                    now,
                )
                .await
            }
            .scope_boxed()
        })
        .await?;
    Ok(created(&r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    org_id: Uuid,
}

pub async fn get_learning_item_stats(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    q: crate::extract::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, org) = (user.0.clone(), id.into_inner(), q.into_inner().org_id);
    let rows = state
        .db
        .read(move |mut c| {
            async move { ops::learning::stats(&mut c, &p, id, org).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"item_id": id, "branches": rows})))
}

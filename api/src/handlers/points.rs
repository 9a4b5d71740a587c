//! The points ledger: thin handlers over `ops::points`.

use super::{created, decode_cursor, limit, page, workbook};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::ops;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;
use yunlian_domain::auth::Action;
use yunlian_domain::points::{Period, RuleKind, Rules};
use yunlian_infra::db::{self, ScopedFutureExt};

fn period(raw: &str) -> Result<Period, ApiError> {
    Period::parse(raw).ok_or_else(|| ApiError::field("period", "invalid_period"))
}

pub async fn get_points_rules(
    state: web::Data<AppState>,
    user: AuthUser,
    org: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, org) = (user.0.clone(), org.into_inner());
    let r = state
        .db
        .read(move |mut c| {
            async move { ops::points::get_rules(&mut c, &p, org).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct UpdateRules {
    rules: Rules,
    expected_version: i64,
}

pub async fn update_points_rules(
    state: web::Data<AppState>,
    user: AuthUser,
    org: web::Path<Uuid>,
    body: web::Json<UpdateRules>,
) -> Result<HttpResponse, ApiError> {
    let (p, org, now, b) = (
        user.0.clone(),
        org.into_inner(),
        state.clock.now(),
        body.into_inner(),
    );
    let r = state
        .db
        .write(move |mut c| {
            let b = b.clone();
            async move {
                ops::points::update_rules(&mut c, &p, org, b.rules, b.expected_version, now).await
            }
            .scope_boxed()
        })
        .await?;
    tracing::info!(org = %org, version = r.version, by = %user.member_id, "points rules changed");
    Ok(HttpResponse::Ok().json(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    period: String,
}

pub async fn get_member_points(
    state: web::Data<AppState>,
    user: AuthUser,
    member: web::Path<Uuid>,
    q: crate::extract::Query<PeriodQuery>,
) -> Result<HttpResponse, ApiError> {
    let period = period(&q.into_inner().period)?;
    let (p, member) = (user.0.clone(), member.into_inner());
    let r = state
        .db
        .read(move |mut c| {
            async move { ops::points::member_points(&mut c, &p, member, period).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListEntriesQuery {
    org_id: Uuid,
    period: Option<String>,
    pending: Option<bool>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// The entries of a branch (or a township), for its committee.
pub async fn list_points_entries(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListEntriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let org = super::load_org(&state, q.org_id).await?;
    super::authorize(&user, Action::ReadMembers, &org.path)?;
    let f = db::points::EntryFilter {
        within: Some(org.path),
        months: q
            .period
            .as_deref()
            .map(period)
            .transpose()?
            .map(Period::months)
            .unwrap_or_default(),
        pending: q.pending,
        after: decode_cursor(q.cursor.as_deref())?,
        limit: limit + 1,
        ..Default::default()
    };
    let rows = state
        .db
        .read(move |mut c| async move { db::points::list(&mut c, &f).await }.scope_boxed())
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |e| e.id)))
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    Violation,
    Admonition,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CreateAdjustment {
    member_id: Uuid,
    kind: AdjustmentKind,
    delta: Option<i64>,
    reason: String,
}

pub async fn create_points_adjustment(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<CreateAdjustment>,
) -> Result<HttpResponse, ApiError> {
    let (p, now, b) = (user.0.clone(), state.clock.now(), body.into_inner());
    let kind = match b.kind {
        AdjustmentKind::Violation => RuleKind::Violation,
        AdjustmentKind::Admonition => RuleKind::Admonition,
    };
    let e = state
        .db
        .write(move |mut c| {
            let b = b.clone();
            async move {
                ops::points::adjust(&mut c, &p, b.member_id, kind, b.delta, &b.reason, now).await
            }
            .scope_boxed()
        })
        .await?;
    tracing::info!(entry = %e.id, member = %e.member_id, by = %user.member_id, "points adjustment entered");
    Ok(created(&e))
}

async fn decide(
    state: web::Data<AppState>,
    user: AuthUser,
    id: Uuid,
    post: bool,
) -> Result<HttpResponse, ApiError> {
    let (p, now) = (user.0.clone(), state.clock.now());
    let e = state
        .db
        .write(move |mut c| {
            async move { ops::points::decide(&mut c, &p, id, post, now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(e))
}

pub async fn post_points_adjustment(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    decide(state, user, id.into_inner(), true).await
}

pub async fn void_points_adjustment(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    decide(state, user, id.into_inner(), false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankingQuery {
    org_id: Uuid,
    period: String,
    limit: Option<i64>,
}

pub async fn get_ranking(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<RankingQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let (period, limit) = (period(&q.period)?, limit(q.limit)?);
    let redis = state
        .redis
        .as_ref()
        .map(|r| (r, state.config.redis_prefix.as_str()));
    let (items, source) =
        ops::points::ranking_cached(&state.db, redis, &user, q.org_id, period, limit as usize)
            .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "org_id": q.org_id,
        "period": period.to_string(),
        "source": source,
        "items": items,
    })))
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RecordService {
    title: String,
    served_at: DateTime<Utc>,
}

pub async fn record_volunteer_service(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<RecordService>,
) -> Result<HttpResponse, ApiError> {
    let (p, now, b) = (user.0.clone(), state.clock.now(), body.into_inner());
    let s = state
        .db
        .write(move |mut c| {
            let b = b.clone();
            async move {
                ops::points::record_service(
                    &mut c,
                    &p,
                    &b.title,
                    yunlian_domain::truncate_micros(b.served_at),
                    now,
                )
                .await
            }
            .scope_boxed()
        })
        .await?;
    Ok(created(&s))
}

pub async fn confirm_volunteer_service(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    let s = state
        .db
        .write(move |mut c| {
            async move { ops::points::confirm_service(&mut c, &p, id, now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct GenerateLists {
    org_id: Uuid,
    period: String,
}

pub async fn generate_lists(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<GenerateLists>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let period = period(&b.period)?;
    let (p, now, org) = (user.0.clone(), state.clock.now(), b.org_id);
    let l = state
        .db
        .write(move |mut c| {
            async move { ops::lists::generate_lists(&mut c, &p, org, period, now).await }
                .scope_boxed()
        })
        .await?;
    Ok(created(&l))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListListsQuery {
    org_id: Uuid,
    period: Option<String>,
}

pub async fn list_lists(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListListsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let period = q.period.as_deref().map(period).transpose()?;
    let (p, org) = (user.0.clone(), q.org_id);
    let items = state
        .db
        .read(move |mut c| {
            async move { ops::lists::list(&mut c, &p, org, period).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items, "next_cursor": null})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmonitionQuery {
    org_id: Uuid,
    from: String,
    to: String,
}

pub async fn get_admonition_counts(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<AdmonitionQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let month = |field: &'static str, raw: &str| match Period::parse(raw) {
        Some(m @ Period::Month(..)) => Ok(m),
        _ => Err(ApiError::field(field, "invalid_period")),
    };
    let (from, to) = (month("from", &q.from)?, month("to", &q.to)?);
    let (p, org) = (user.0.clone(), q.org_id);
    let counts = state
        .db
        .read(move |mut c| {
            async move { ops::lists::admonition_counts(&mut c, &p, org, from, to).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(counts))
}

pub async fn get_list(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id) = (user.0.clone(), id.into_inner());
    let (l, _) = state
        .db
        .read(move |mut c| async move { ops::lists::visible(&mut c, &p, id).await }.scope_boxed())
        .await?;
    Ok(HttpResponse::Ok().json(l))
}

pub async fn publish_list(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    let l = state
        .db
        .write(move |mut c| {
            async move { ops::lists::publish(&mut c, &p, id, now).await }.scope_boxed()
        })
        .await?;
    tracing::info!(list = %l.id, org = %l.org_id, period = %l.period, by = %user.member_id, "lists published");
    Ok(HttpResponse::Ok().json(l))
}

pub async fn export_list(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id) = (user.0.clone(), id.into_inner());
    let (bytes, name) = state
        .db
        .read(move |mut c| async move { ops::lists::export(&mut c, &p, id).await }.scope_boxed())
        .await?;
    Ok(workbook(bytes, &name))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRankingQuery {
    org_id: Uuid,
    period: String,
}

pub async fn export_ranking(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ExportRankingQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let period = period(&q.period)?;
    let org = super::load_org(&state, q.org_id).await?;
    let redis = state
        .redis
        .as_ref()
        .map(|r| (r, state.config.redis_prefix.as_str()));
    let (lines, _) =
        ops::points::ranking_cached(&state.db, redis, &user, org.id, period, 100_000).await?;
    let bytes = ops::lists::export_ranking(&org.name, period, &lines)?;
    Ok(workbook(bytes, &format!("ranking-{period}.xlsx")))
}

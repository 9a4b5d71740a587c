//! Cases: thin handlers over `ops::cases`, the list and the board's figures.

use super::{decode_cursor, limit, page};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::ops::{self, cases::Ask};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use yunlian_domain::auth::Action;
use yunlian_domain::moments::{
    case_stats, search_word, BoardFacts, Case, CaseState, CaseStats, CaseStep, Category, Period,
};
use yunlian_domain::org::OrgKind;
use yunlian_infra::db::{self, cases::CaseFilter, cases::Due, orgs::OrgFilter, ScopedFutureExt};

/// A case with its history: who did what, and when.
#[derive(Serialize)]
struct CaseView {
    #[serde(flatten)]
    case: Case,
    history: Vec<CaseStep>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DueFilter {
    Soon,
    Overdue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListCasesQuery {
    org_id: Option<Uuid>,
    state: Option<CaseState>,
    assignee_id: Option<Uuid>,
    category: Option<Category>,
    due: Option<DueFilter>,
    transferred: Option<bool>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// The org a case list or figure is about: the one named, or the caller's only subtree; the
/// committee of it (or an admin above) only.
async fn committee_path(
    state: &AppState,
    user: &AuthUser,
    org_id: Option<Uuid>,
) -> Result<String, ApiError> {
    super::list_root(
        state,
        user,
        org_id,
        user.member_read_roots(),
        Action::ManageBoard,
    )
    .await
}

pub async fn list_cases(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListCasesQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let within = committee_path(&state, &user, q.org_id).await?;
    let now = state.clock.now();
    let soon = {
        let (path, root) = (within.clone(), state.config.settings_root());
        state
            .db
            .read(move |mut c| {
                async move { ops::settings::effective(&mut c, &path, root).await }.scope_boxed()
            })
            .await?
            .case_due_soon_hours
    };
    let f = CaseFilter {
        within,
        state: q.state,
        assignee: q.assignee_id,
        category: q.category,
        due: q.due.map(|d| match d {
            DueFilter::Soon => Due::Soon(soon),
            DueFilter::Overdue => Due::Overdue,
        }),
        transferred: q.transferred,
        q: q.q
            .map(|w| search_word(&w).map_err(|e| ApiError::from(yunlian_domain::Error::from(e))))
            .transpose()?,
        now: Some(now),
        after: decode_cursor(q.cursor.as_deref())?,
        limit: limit + 1,
    };
    let rows = state
        .db
        .read(move |mut c| async move { db::cases::list(&mut c, &f).await }.scope_boxed())
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |c| c.id)))
}

pub async fn get_case(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id) = (user.0.clone(), id.into_inner());
    let (case, history) = state
        .db
        .read(move |mut c| async move { ops::cases::visible(&mut c, &p, id).await }.scope_boxed())
        .await?;
    Ok(HttpResponse::Ok().json(CaseView { case, history }))
}

async fn act(
    state: web::Data<AppState>,
    user: AuthUser,
    id: Uuid,
    ask: Ask,
) -> Result<HttpResponse, ApiError> {
    let (p, now, root) = (
        user.0.clone(),
        state.clock.now(),
        state.config.settings_root(),
    );
    let case = state
        .db
        .write(move |mut c| {
            let ask = ask.clone();
            async move { ops::cases::act(&mut c, &p, id, ask, now, root).await }.scope_boxed()
        })
        .await?;
    tracing::info!(case = %case.id, state = ?case.state, by = %user.member_id, "case moved");
    Ok(HttpResponse::Ok().json(case))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssigneeBody {
    assignee_id: Uuid,
}

pub async fn accept_case(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<AssigneeBody>,
) -> Result<HttpResponse, ApiError> {
    let assignee = body.into_inner().assignee_id;
    act(state, user, id.into_inner(), Ask::Accept { assignee }).await
}

pub async fn assign_case(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<AssigneeBody>,
) -> Result<HttpResponse, ApiError> {
    let assignee = body.into_inner().assignee_id;
    act(state, user, id.into_inner(), Ask::Assign { assignee }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyBody {
    reply: String,
}

pub async fn resolve_case(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<ReplyBody>,
) -> Result<HttpResponse, ApiError> {
    let reply = body.into_inner().reply;
    act(state, user, id.into_inner(), Ask::Resolve { reply }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    reason: String,
}

pub async fn decline_case(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<ReasonBody>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.into_inner().reason;
    act(state, user, id.into_inner(), Ask::Decline { reason }).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    note: Option<String>,
}

pub async fn transfer_case(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<TransferBody>,
) -> Result<HttpResponse, ApiError> {
    let note = body.into_inner().note;
    act(state, user, id.into_inner(), Ask::Transfer { note }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    into: Uuid,
}

pub async fn merge_cases(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<MergeBody>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, into, now, root) = (
        user.0.clone(),
        id.into_inner(),
        body.into_inner().into,
        state.clock.now(),
        state.config.settings_root(),
    );
    let (merged, into) = state
        .db
        .write(move |mut c| {
            async move { ops::cases::merge(&mut c, &p, id, into, now, root).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"merged": merged, "into": into})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    org_id: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// One branch's figures in a township's report.
#[derive(Serialize)]
struct BranchStats {
    org_id: Uuid,
    name: String,
    stats: CaseStats,
}

/// The board's figures for a branch, or a township: its totals and each of its branches'
/// (every branch, the quiet ones too: a township looks for the laggards).
pub async fn get_case_stats(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    if q.to <= q.from {
        return Err(ApiError::field("to", "period_empty"));
    }
    let within = committee_path(&state, &user, q.org_id).await?;
    let now = state.clock.now();
    let period = Period {
        from: q.from,
        to: q.to,
    };
    let (stats, branches) = state
        .db
        .read(move |mut c| {
            async move {
                let facts = BoardFacts {
                    topics: db::moments::post_facts(&mut c, &within, period.from, period.to)
                        .await?,
                    comments: db::moments::comment_facts(&mut c, &within, period.from, period.to)
                        .await?,
                    cases: db::cases::of_branches_within(&mut c, &within).await?,
                };
                let f = OrgFilter {
                    roots: vec![within],
                    limit: 10_000,
                    ..OrgFilter::default()
                };
                let branches: Vec<BranchStats> = db::orgs::list(&mut c, &f)
                    .await?
                    .into_iter()
                    .filter(|o| matches!(o.kind, OrgKind::Branch | OrgKind::GeneralBranch))
                    .map(|o| BranchStats {
                        stats: case_stats(period, &facts.of_branch(o.id), now),
                        org_id: o.id,
                        name: o.name,
                    })
                    .collect();
                Ok((case_stats(period, &facts, now), branches))
            }
            .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": q.from,
        "to": q.to,
        "stats": stats,
        "branches": branches,
    })))
}

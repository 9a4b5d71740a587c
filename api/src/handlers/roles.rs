//! Role grants: who is secretary, committee member, group leader or township admin where.

use super::{authorize, created, decode_cursor, limit, load_org, page};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;
use yunlian_domain::auth::{grant_fits_place, Action, Grant, Role};
use yunlian_infra::db::{self, roles::RoleGrant, ScopedFutureExt};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    member_id: Uuid,
    org_id: Uuid,
    role: Role,
}

fn out_of_scope() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "role_out_of_scope")
}

pub async fn grant_role(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<GrantBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let org = load_org(&state, b.org_id).await?;
    if !user.sees(&org.path) {
        return Err(ApiError::not_found());
    }
    if !user.can(Action::GrantRole(b.role), &org.path) {
        return Err(out_of_scope());
    }
    if !b.role.fits(org.kind) {
        return Err(ApiError::field("role", "role_not_allowed_for_org"));
    }
    let mid = b.member_id;
    let (member, member_path) = state
        .db
        .read(move |mut c| async move { db::members::get(&mut c, mid).await }.scope_boxed())
        .await?
        .ok_or_else(|| ApiError::field("member_id", "member_outside_org"))?;
    // A role is held by a member of that org (or of an org below it; a party group's role by a
    // member placed in that group), never by an outsider.
    let held = Grant {
        org_id: org.id,
        org_path: org.path.clone(),
        role: b.role,
    };
    if !grant_fits_place(&held, &member_path, member.group_id) {
        return Err(ApiError::field("member_id", "member_outside_org"));
    }
    let grant = RoleGrant {
        id: Uuid::now_v7(),
        member_id: b.member_id,
        org_id: org.id,
        role: b.role,
        granted_by: Some(user.member_id),
        created_at: state.clock.now(),
    };
    let (g, path) = (grant.clone(), org.path.clone());
    state
        .db
        .write(move |mut c| {
            async move {
                let after = serde_json::json!({"member_id": g.member_id, "role": g.role});
                let changes = yunlian_domain::audit::diff(&serde_json::Value::Null, &after);
                db::audit::note(&mut c, "role_grant", g.id, &path, changes);
                db::roles::insert(&mut c, &g).await
            }
            .scope_boxed()
        })
        .await?;
    tracing::info!(grant = %grant.id, member = %grant.member_id, org = %org.id, role = grant.role.as_str(), by = %user.member_id, "role granted");
    Ok(created(&grant))
}

pub async fn revoke_role(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (grant, path) = state
        .db
        .read(move |mut c| async move { db::roles::get(&mut c, id).await }.scope_boxed())
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !user.sees(&path) {
        return Err(ApiError::not_found());
    }
    if !user.can(Action::GrantRole(grant.role), &path) {
        return Err(out_of_scope());
    }
    if grant.member_id == user.member_id && grant.role == Role::TownshipAdmin {
        // An administrator cannot lock themselves (and maybe everyone) out.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "cannot_revoke_own_admin",
        ));
    }
    let g = grant.clone();
    state
        .db
        .write(move |mut c| {
            async move {
                let before = serde_json::json!({"member_id": g.member_id, "role": g.role});
                let changes = yunlian_domain::audit::diff(&before, &serde_json::Value::Null);
                db::audit::note(&mut c, "role_grant", id, &path, changes);
                db::roles::delete(&mut c, id).await
            }
            .scope_boxed()
        })
        .await?;
    tracing::info!(grant = %id, by = %user.member_id, "role revoked");
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRolesQuery {
    org_id: Uuid,
    member_id: Option<Uuid>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_roles(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListRolesQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let org = load_org(&state, q.org_id).await?;
    authorize(&user, Action::ReadRoles, &org.path)?;
    let after = decode_cursor(q.cursor.as_deref())?;
    let (path, member) = (org.path, q.member_id);
    let rows = state
        .db
        .read(move |mut c| {
            async move { db::roles::list(&mut c, &path, member, after, limit + 1).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |g| g.id)))
}

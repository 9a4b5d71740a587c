//! The org tree: create, list, read, rename.

use super::{authorize, created, decode_cursor, limit, load_org, page};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;
use yunlian_domain::auth::Action;
use yunlian_domain::org::{self, Org, OrgKind};
use yunlian_domain::Error;
use yunlian_infra::db::{self, orgs::OrgFilter, ScopedFutureExt};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    parent_id: Uuid,
    kind: OrgKind,
    name: String,
}

pub async fn create_org(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<CreateOrg>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let parent = load_org(&state, body.parent_id).await?;
    authorize(&user, Action::ManageOrg, &parent.path)?;
    let name = org::parse_name(&body.name).map_err(|e| Error::Invalid(vec![e]))?;
    org::check_placement(body.kind, parent.kind)?;
    let now = state.clock.now();
    let id = Uuid::now_v7();
    let new = Org {
        id,
        parent_id: Some(parent.id),
        kind: body.kind,
        name,
        path: org::child_path(&parent.path, id),
        depth: parent.depth + 1,
        created_at: now,
        updated_at: now,
    };
    let o = new.clone();
    state
        .db
        .write(move |mut c| {
            async move {
                let after =
                    serde_json::json!({"name": o.name, "kind": o.kind, "parent_id": o.parent_id});
                let changes = yunlian_domain::audit::diff(&serde_json::Value::Null, &after);
                db::audit::note(&mut c, "org", o.id, &o.path, changes);
                db::orgs::insert(&mut c, &o).await
            }
            .scope_boxed()
        })
        .await?;
    tracing::info!(org = %id, parent = %parent.id, kind = new.kind.as_str(), "org created");
    Ok(created(&new))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListOrgsQuery {
    parent_id: Option<Uuid>,
    kind: Option<OrgKind>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_orgs(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListOrgsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let filter = OrgFilter {
        roots: user.visible_roots(),
        parent_id: q.parent_id,
        kind: q.kind,
        after: decode_cursor(q.cursor.as_deref())?,
        limit: limit + 1,
    };
    let rows = state
        .db
        .read(move |mut c| async move { db::orgs::list(&mut c, &filter).await }.scope_boxed())
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |o| o.id)))
}

pub async fn get_org(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let org = load_org(&state, id.into_inner()).await?;
    authorize(&user, Action::ReadOrg, &org.path)?;
    Ok(HttpResponse::Ok().json(org))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrg {
    name: Option<String>,
}

pub async fn update_org(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<UpdateOrg>,
) -> Result<HttpResponse, ApiError> {
    let mut org = load_org(&state, id.into_inner()).await?;
    authorize(&user, Action::ManageOrg, &org.path)?;
    if let Some(name) = body.into_inner().name {
        let name = org::parse_name(&name).map_err(|e| Error::Invalid(vec![e]))?;
        let now = state.clock.now();
        let (oid, n, old, path) = (org.id, name.clone(), org.name.clone(), org.path.clone());
        state
            .db
            .write(move |mut c| {
                async move {
                    let changes = yunlian_domain::audit::diff(
                        &serde_json::json!({ "name": old }),
                        &serde_json::json!({ "name": n }),
                    );
                    db::audit::note(&mut c, "org", oid, &path, changes);
                    db::orgs::rename(&mut c, oid, &n, now).await
                }
                .scope_boxed()
            })
            .await?;
        org.name = name;
        org.updated_at = now;
    }
    Ok(HttpResponse::Ok().json(org))
}

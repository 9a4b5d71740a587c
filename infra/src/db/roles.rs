//! Role grants, stored.

use super::schema::{orgs, role_grants};
use super::{db_error, naive, utc, uuid, Conn};
use crate::on;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use uuid::Uuid;
use yunlian_domain::auth::{Grant, Role};
use yunlian_domain::Error;

/// One stored grant, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleGrant {
    pub id: Uuid,
    pub member_id: Uuid,
    pub org_id: Uuid,
    pub role: Role,
    pub granted_by: Option<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = role_grants)]
struct GrantRow {
    id: String,
    member_id: String,
    org_id: String,
    role: String,
    granted_by: Option<String>,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
}

impl GrantRow {
    fn into_domain(self) -> Result<RoleGrant, Error> {
        Ok(RoleGrant {
            id: uuid(&self.id)?,
            member_id: uuid(&self.member_id)?,
            org_id: uuid(&self.org_id)?,
            role: Role::parse(&self.role)
                .ok_or_else(|| Error::Internal(format!("bad role {}", self.role)))?,
            granted_by: self.granted_by.as_deref().map(uuid).transpose()?,
            created_at: utc(self.created_at),
        })
    }
}

pub async fn insert(conn: &mut Conn<'_>, g: &RoleGrant) -> Result<(), Error> {
    let row = GrantRow {
        id: g.id.to_string(),
        member_id: g.member_id.to_string(),
        org_id: g.org_id.to_string(),
        role: g.role.as_str().into(),
        granted_by: g.granted_by.map(|u| u.to_string()),
        created_at: naive(g.created_at),
    };
    on!(conn, |c| diesel::insert_into(role_grants::table)
        .values(&row)
        .execute(c)
        .await)
    .map_err(|e| match db_error(e) {
        Error::Conflict(_) => Error::Conflict("role_already_granted"),
        other => other,
    })?;
    conn.access_changed();
    Ok(())
}

/// A grant with the path of its org, for authorising its revocation.
pub async fn get(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(RoleGrant, String)>, Error> {
    let row: Option<(GrantRow, String)> = on!(conn, |c| role_grants::table
        .inner_join(orgs::table)
        .filter(role_grants::id.eq(id.to_string()))
        .select((GrantRow::as_select(), orgs::path))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(r, p)| Ok((r.into_domain()?, p))).transpose()
}

pub async fn delete(conn: &mut Conn<'_>, id: Uuid) -> Result<(), Error> {
    let n = on!(conn, |c| diesel::delete(
        role_grants::table.find(id.to_string())
    )
    .execute(c)
    .await)
    .map_err(db_error)?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    conn.access_changed();
    Ok(())
}

/// Every grant a member holds, with its org's path and kind (for ending the ones a move leaves).
pub async fn of_member(
    conn: &mut Conn<'_>,
    member: Uuid,
) -> Result<Vec<(RoleGrant, String)>, Error> {
    let rows: Vec<(GrantRow, String)> = on!(conn, |c| role_grants::table
        .inner_join(orgs::table)
        .filter(role_grants::member_id.eq(member.to_string()))
        .select((GrantRow::as_select(), orgs::path))
        .order(role_grants::id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(r, p)| Ok((r.into_domain()?, p)))
        .collect()
}

/// Every grant a member holds, with org paths: what authorisation reads on each request.
pub async fn grants_of(conn: &mut Conn<'_>, member: Uuid) -> Result<Vec<Grant>, Error> {
    let rows: Vec<(String, String, String)> = on!(conn, |c| role_grants::table
        .inner_join(orgs::table)
        .filter(role_grants::member_id.eq(member.to_string()))
        .select((role_grants::org_id, orgs::path, role_grants::role))
        .order(role_grants::id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(org, path, role)| stored_grant(org, path, role))
        .collect()
}

/// A grant as stored: its org's id and path and the role's name.
fn stored_grant(org: String, path: String, role: String) -> Result<Grant, Error> {
    Ok(Grant {
        org_id: uuid(&org)?,
        org_path: path,
        role: Role::parse(&role).ok_or_else(|| Error::Internal(format!("bad role {role}")))?,
    })
}

/// Everything a request's principal holds, in one query, when `session` is live (not revoked,
/// not expired) for `member`: the roles granted (in the order granted), then membership of the
/// member's branch and of their group. `None` when the session is not live.
pub async fn of_live_session(
    conn: &mut Conn<'_>,
    member: Uuid,
    session: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Vec<Grant>>, Error> {
    use super::schema::members;
    let (granted_on, group) = diesel::alias!(orgs as granted_on, orgs as group_org);
    let live = super::sessions::live(session.to_string(), member.to_string(), naive(now));
    type Row = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = on!(conn, |c| members::table
        .inner_join(orgs::table)
        .left_join(group.on(members::group_id.eq(group.field(orgs::id).nullable())))
        .left_join(role_grants::table.on(role_grants::member_id.eq(members::id)))
        .left_join(granted_on.on(granted_on.field(orgs::id).eq(role_grants::org_id)))
        .filter(members::id.eq(member.to_string()))
        .filter(diesel::dsl::exists(live))
        .select((
            members::org_id,
            orgs::path,
            members::group_id,
            group.field(orgs::path).nullable(),
            role_grants::org_id.nullable(),
            granted_on.field(orgs::path).nullable(),
            role_grants::role.nullable(),
        ))
        .order(role_grants::id.nullable())
        .load(c)
        .await)
    .map_err(db_error)?;
    let Some(first) = <[Row]>::first(&rows) else {
        return Ok(None);
    };
    let (org, org_path, group_id, group_path) = (
        first.0.clone(),
        first.1.clone(),
        first.2.clone(),
        first.3.clone(),
    );
    let mut grants = Vec::with_capacity(rows.len() + 2);
    for (_, _, _, _, on, path, role) in rows {
        if let (Some(on), Some(path), Some(role)) = (on, path, role) {
            grants.push(stored_grant(on, path, role)?);
        }
    }
    grants.push(Grant {
        org_id: uuid(&org)?,
        org_path,
        role: Role::Member,
    });
    if let (Some(g), Some(path)) = (group_id, group_path) {
        grants.push(Grant {
            org_id: uuid(&g)?,
            org_path: path,
            role: Role::Member,
        });
    }
    Ok(Some(grants))
}

/// Grants held on orgs inside `within` (optionally of one member).
pub async fn list(
    conn: &mut Conn<'_>,
    within: &str,
    member: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RoleGrant>, Error> {
    let prefix = format!("{within}%");
    let rows: Vec<GrantRow> = on!(conn, |c| {
        let mut q = role_grants::table
            .inner_join(orgs::table)
            .filter(orgs::path.like(prefix))
            .select(GrantRow::as_select())
            .order(role_grants::id)
            .limit(limit)
            .into_boxed();
        if let Some(m) = member {
            q = q.filter(role_grants::member_id.eq(m.to_string()));
        }
        if let Some(a) = after {
            q = q.filter(role_grants::id.gt(a.to_string()));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter().map(GrantRow::into_domain).collect()
}

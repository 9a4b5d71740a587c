//! The org tree, stored.

use super::schema::orgs;
use super::{db_error, naive, sync, utc, uuid, Conn};
use crate::on;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::org::{Org, OrgKind};
use yunlian_domain::sync::{Entity, Scope};
use yunlian_domain::Error;

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = orgs)]
pub(crate) struct OrgRow {
    id: String,
    parent_id: Option<String>,
    kind: String,
    name: String,
    path: String,
    depth: i32,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
    #[diesel(deserialize_as = super::rows::Ts)]
    updated_at: chrono::NaiveDateTime,
}

impl OrgRow {
    fn from_domain(o: &Org) -> Self {
        OrgRow {
            id: o.id.to_string(),
            parent_id: o.parent_id.map(|p| p.to_string()),
            kind: o.kind.as_str().into(),
            name: o.name.clone(),
            path: o.path.clone(),
            depth: o.depth,
            created_at: naive(o.created_at),
            updated_at: naive(o.updated_at),
        }
    }

    pub(crate) fn into_domain(self) -> Result<Org, Error> {
        Ok(Org {
            id: uuid(&self.id)?,
            parent_id: self.parent_id.as_deref().map(uuid).transpose()?,
            kind: OrgKind::parse(&self.kind)
                .ok_or_else(|| Error::Internal(format!("bad org kind {}", self.kind)))?,
            name: self.name,
            path: self.path,
            depth: self.depth,
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        })
    }
}

/// `path LIKE root%` for any of `roots` (at least one), as one boxed condition; usable in any
/// backend's arm of `on!`.
#[macro_export]
macro_rules! within_any {
    ($col:expr, $first:expr, $rest:expr) => {{
        use diesel::BoolExpressionMethods as _;
        use diesel::TextExpressionMethods as _;
        let mut cond: Box<dyn diesel::BoxableExpression<_, _, SqlType = diesel::sql_types::Bool>> =
            Box::new($col.like(format!("{}%", $first)));
        for root in $rest.iter() {
            cond = Box::new(cond.or($col.like(format!("{root}%"))));
        }
        cond
    }};
}

/// Filters for listing orgs; `roots` bounds the result to what the caller may see.
#[derive(Debug, Default, Clone)]
pub struct OrgFilter {
    pub roots: Vec<String>,
    pub parent_id: Option<Uuid>,
    pub kind: Option<OrgKind>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// Inserts an org and records it in its own sync scope.
pub async fn insert(conn: &mut Conn<'_>, org: &Org) -> Result<(), Error> {
    let row = OrgRow::from_domain(org);
    on!(conn, |c| diesel::insert_into(orgs::table)
        .values(&row)
        .execute(c)
        .await)
    .map_err(|e| match db_error(e) {
        Error::Conflict(_) => Error::Conflict("org_name_taken"),
        other => other,
    })?;
    sync::record(
        conn,
        &[Scope::Org(org.id)],
        Entity::Org,
        org.id,
        false,
        org.updated_at,
    )
    .await?;
    // A new org is a new scope for everyone who sees it: the sync scopes cached per session
    // (beside their principals) are dropped when this commits. A rename changes no scope, and
    // orgs never move.
    conn.access_changed();
    Ok(())
}

pub async fn get(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<Org>, Error> {
    let row: Option<OrgRow> = on!(conn, |c| orgs::table
        .find(id.to_string())
        .select(OrgRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(OrgRow::into_domain).transpose()
}

/// The org at the top of the tree (there is exactly one, made on first start).
pub async fn root(conn: &mut Conn<'_>) -> Result<Option<Org>, Error> {
    let row: Option<OrgRow> = on!(conn, |c| orgs::table
        .filter(orgs::parent_id.is_null())
        .order(orgs::id)
        .select(OrgRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(OrgRow::into_domain).transpose()
}

/// A direct child of `parent` with this name (party groups are named within their branch).
pub async fn child_by_name(
    conn: &mut Conn<'_>,
    parent: Uuid,
    name: &str,
) -> Result<Option<Org>, Error> {
    let row: Option<OrgRow> = on!(conn, |c| orgs::table
        .filter(orgs::parent_id.eq(parent.to_string()))
        .filter(orgs::name.eq(name))
        .select(OrgRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(OrgRow::into_domain).transpose()
}

pub async fn list(conn: &mut Conn<'_>, f: &OrgFilter) -> Result<Vec<Org>, Error> {
    let Some((first, rest)) = f.roots.split_first() else {
        return Ok(Vec::new());
    };
    let rows: Vec<OrgRow> = on!(conn, |c| {
        let mut q = orgs::table
            .filter(within_any!(orgs::path, first, rest))
            .select(OrgRow::as_select())
            .order(orgs::id)
            .limit(f.limit)
            .into_boxed();
        if let Some(p) = f.parent_id {
            q = q.filter(orgs::parent_id.eq(p.to_string()));
        }
        if let Some(k) = f.kind {
            q = q.filter(orgs::kind.eq(k.as_str()));
        }
        if let Some(a) = f.after {
            q = q.filter(orgs::id.gt(a.to_string()));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter().map(OrgRow::into_domain).collect()
}

pub async fn rename(
    conn: &mut Conn<'_>,
    id: Uuid,
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    let n = on!(conn, |c| diesel::update(orgs::table.find(id.to_string()))
        .set((orgs::name.eq(name), orgs::updated_at.eq(naive(now))))
        .execute(c)
        .await)
    .map_err(|e| match db_error(e) {
        Error::Conflict(_) => Error::Conflict("org_name_taken"),
        other => other,
    })?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    sync::record(conn, &[Scope::Org(id)], Entity::Org, id, false, now).await?;
    Ok(())
}

/// Every org of these kinds (the warnings scan reads every branch and party group).
pub async fn of_kinds(conn: &mut Conn<'_>, kinds: &[OrgKind]) -> Result<Vec<Org>, Error> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let rows: Vec<OrgRow> = on!(conn, |c| orgs::table
        .filter(orgs::kind.eq_any(&kinds))
        .select(OrgRow::as_select())
        .order(orgs::id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(OrgRow::into_domain).collect()
}

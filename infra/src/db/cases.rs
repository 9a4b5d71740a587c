//! Cases and their history, stored. A case is synced to the committee that handles it (and,
//! after a transfer, still to its branch's committee), and to every member who relayed it or a
//! duplicate merged into it: their phones show each change and the reply.

use super::rows::within;
use super::schema::{case_steps, cases, orgs};
use super::{db_error, enum_parse, enum_text, naive, sync, utc, uuid, Conn};
use crate::{load, on};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::moments::{Case, CaseState, CaseStep, Category};
use yunlian_domain::sync::{Entity, Scope};
use yunlian_domain::Error;

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = cases, treat_none_as_default_value = false, treat_none_as_null = true)]
struct CaseRow {
    id: String,
    org_id: String,
    handler_org_id: String,
    post_id: String,
    comment_id: String,
    author_id: String,
    household_id: Option<String>,
    category: String,
    body: String,
    state: String,
    assignee_id: Option<String>,
    due_at: Option<chrono::NaiveDateTime>,
    overdue_at: Option<chrono::NaiveDateTime>,
    reply: Option<String>,
    decline_reason: Option<String>,
    merged_into: Option<String>,
    transferred_at: Option<chrono::NaiveDateTime>,
    closed_at: Option<chrono::NaiveDateTime>,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
    #[diesel(deserialize_as = super::rows::Ts)]
    updated_at: chrono::NaiveDateTime,
}

fn s(id: Option<Uuid>) -> Option<String> {
    id.map(|i| i.to_string())
}

fn u(s: Option<String>) -> Result<Option<Uuid>, Error> {
    s.as_deref().map(uuid).transpose()
}

impl CaseRow {
    fn from_domain(c: &Case) -> Self {
        CaseRow {
            id: c.id.to_string(),
            org_id: c.org_id.to_string(),
            handler_org_id: c.handler_org_id.to_string(),
            post_id: c.post_id.to_string(),
            comment_id: c.comment_id.to_string(),
            author_id: c.author_id.to_string(),
            household_id: s(c.household_id),
            category: enum_text(c.category),
            body: c.body.clone(),
            state: enum_text(c.state),
            assignee_id: s(c.assignee_id),
            due_at: c.due_at.map(naive),
            overdue_at: c.overdue_at.map(naive),
            reply: c.reply.clone(),
            decline_reason: c.decline_reason.clone(),
            merged_into: s(c.merged_into),
            transferred_at: c.transferred_at.map(naive),
            closed_at: c.closed_at.map(naive),
            created_at: naive(c.created_at),
            updated_at: naive(c.updated_at),
        }
    }

    fn into_domain(self) -> Result<Case, Error> {
        Ok(Case {
            id: uuid(&self.id)?,
            org_id: uuid(&self.org_id)?,
            handler_org_id: uuid(&self.handler_org_id)?,
            post_id: uuid(&self.post_id)?,
            comment_id: uuid(&self.comment_id)?,
            author_id: uuid(&self.author_id)?,
            household_id: u(self.household_id)?,
            category: enum_parse::<Category>("category", &self.category)?,
            body: self.body,
            state: enum_parse::<CaseState>("case state", &self.state)?,
            assignee_id: u(self.assignee_id)?,
            due_at: self.due_at.map(utc),
            overdue_at: self.overdue_at.map(utc),
            reply: self.reply,
            decline_reason: self.decline_reason,
            merged_into: u(self.merged_into)?,
            transferred_at: self.transferred_at.map(utc),
            closed_at: self.closed_at.map(utc),
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        })
    }
}

/// The members who follow a case: who relayed it, and who relayed a duplicate merged into it.
pub async fn followers(conn: &mut Conn<'_>, c: &Case) -> Result<Vec<Uuid>, Error> {
    let rows: Vec<String> = on!(conn, |cx| cases::table
        .filter(cases::merged_into.eq(c.id.to_string()))
        .select(cases::author_id)
        .load(cx)
        .await)
    .map_err(db_error)?;
    let mut out = vec![c.author_id];
    for r in rows {
        out.push(uuid(&r)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Queues the case for every phone that shows it.
async fn record(conn: &mut Conn<'_>, c: &Case) -> Result<(), Error> {
    let mut scopes = vec![Scope::Committee(c.org_id)];
    if c.handler_org_id != c.org_id {
        scopes.push(Scope::Committee(c.handler_org_id));
    }
    for m in followers(conn, c).await? {
        scopes.push(Scope::Member(m));
    }
    sync::record(conn, &scopes, Entity::Case, c.id, false, c.updated_at).await
}

async fn insert_step(conn: &mut Conn<'_>, case: Uuid, st: &CaseStep) -> Result<(), Error> {
    let row = (
        case_steps::id.eq(Uuid::now_v7().to_string()),
        case_steps::case_id.eq(case.to_string()),
        case_steps::action.eq(&st.action),
        case_steps::actor_id.eq(s(st.actor_id)),
        case_steps::at.eq(naive(st.at)),
        case_steps::note.eq(&st.note),
    );
    on!(conn, |c| diesel::insert_into(case_steps::table)
        .values(row)
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(())
}

/// Stores a new case with its first step.
pub async fn insert(conn: &mut Conn<'_>, c: &Case, step: &CaseStep) -> Result<(), Error> {
    let row = CaseRow::from_domain(c);
    on!(conn, |cx| diesel::insert_into(cases::table)
        .values(&row)
        .execute(cx)
        .await)
    .map_err(db_error)?;
    insert_step(conn, c.id, step).await?;
    record(conn, c).await
}

/// Writes a case after a transition, with the step that made it.
pub async fn update(conn: &mut Conn<'_>, c: &Case, step: &CaseStep) -> Result<(), Error> {
    let row = CaseRow::from_domain(c);
    let n = on!(conn, |cx| diesel::update(cases::table.find(&row.id))
        .set(&row)
        .execute(cx)
        .await)
    .map_err(db_error)?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    insert_step(conn, c.id, step).await?;
    record(conn, c).await
}

/// Re-syncs a case to its followers (a duplicate was merged into it: its commenter now
/// follows it too), recording the step on the surviving case as well.
pub async fn touch(conn: &mut Conn<'_>, c: &Case, step: &CaseStep) -> Result<(), Error> {
    on!(conn, |cx| diesel::update(
        cases::table.find(c.id.to_string())
    )
    .set(cases::updated_at.eq(naive(step.at)))
    .execute(cx)
    .await)
    .map_err(db_error)?;
    insert_step(conn, c.id, step).await?;
    let mut c = c.clone();
    c.updated_at = step.at;
    record(conn, &c).await
}

/// A case with the paths of its branch and of the org handling it.
pub async fn get(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(Case, String, String)>, Error> {
    let row: Option<(CaseRow, String)> = on!(conn, |cx| cases::table
        .inner_join(orgs::table.on(orgs::id.eq(cases::org_id)))
        .filter(cases::id.eq(id.to_string()))
        .select((CaseRow::as_select(), orgs::path))
        .first(cx)
        .await
        .optional())
    .map_err(db_error)?;
    let Some((row, branch_path)) = row else {
        return Ok(None);
    };
    let case = row.into_domain()?;
    let handler_path = if case.handler_org_id == case.org_id {
        branch_path.clone()
    } else {
        on!(conn, |cx| orgs::table
            .find(case.handler_org_id.to_string())
            .select(orgs::path)
            .first::<String>(cx)
            .await)
        .map_err(db_error)?
    };
    Ok(Some((case, branch_path, handler_path)))
}

/// Locks cases' rows in id order (the one global order, so two merges never deadlock) and
/// reads them as [`get`] does; a missing id is `None` in its place.
pub async fn lock(
    conn: &mut Conn<'_>,
    ids: &[Uuid],
) -> Result<Vec<Option<(Case, String, String)>>, Error> {
    if let Some(c) = conn.pg() {
        let mut keys: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        keys.sort();
        keys.dedup();
        let _: Vec<String> = cases::table
            .filter(cases::id.eq_any(&keys))
            .select(cases::id)
            .order(cases::id)
            .for_update()
            .load(&mut &*c)
            .await
            .map_err(db_error)?;
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(get(conn, *id).await?);
    }
    Ok(out)
}

/// A case's history, oldest first.
pub async fn steps(conn: &mut Conn<'_>, case: Uuid) -> Result<Vec<CaseStep>, Error> {
    type Row = (
        String,
        Option<String>,
        chrono::NaiveDateTime,
        Option<String>,
    );
    let rows: Vec<Row> = on!(conn, |cx| case_steps::table
        .filter(case_steps::case_id.eq(case.to_string()))
        .select((
            case_steps::action,
            case_steps::actor_id,
            case_steps::at,
            case_steps::note,
        ))
        .order(case_steps::id)
        .load(cx)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(action, actor, at, note)| {
            Ok(CaseStep {
                action,
                actor_id: u(actor)?,
                at: utc(at),
                note,
            })
        })
        .collect()
}

pub async fn by_ids(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<Case>, Error> {
    let rows: Vec<CaseRow> = load!(
        conn,
        cases::table
            .filter(within(cases::id, ids))
            .select(CaseRow::as_select())
    )
    .map_err(db_error)?;
    rows.into_iter().map(CaseRow::into_domain).collect()
}

/// Which cases a list asks for, by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Assigned and due within the hours given, not yet overdue.
    Soon(i64),
    /// Assigned and past due.
    Overdue,
}

#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Cases of the branches inside this path, or handled by an org inside it.
    pub within: String,
    pub state: Option<CaseState>,
    pub assignee: Option<Uuid>,
    pub category: Option<Category>,
    pub due: Option<Due>,
    pub transferred: Option<bool>,
    pub q: Option<String>,
    pub now: Option<DateTime<Utc>>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// The cases a committee sees: of the branches inside `within`, and the ones transferred to an
/// org inside it, in the order they were opened.
pub async fn list(conn: &mut Conn<'_>, f: &CaseFilter) -> Result<Vec<Case>, Error> {
    let within = format!("{}%", f.within);
    let now = naive(f.now.unwrap_or_else(Utc::now));
    let q = f.q.as_deref().map(super::moments::contains);
    let rows: Vec<CaseRow> = on!(conn, |cx| {
        let handled_within = orgs::table
            .filter(orgs::path.like(within.clone()))
            .select(orgs::id);
        let mut query = cases::table
            .filter(
                cases::org_id
                    .eq_any(handled_within.clone())
                    .or(cases::handler_org_id.eq_any(handled_within)),
            )
            .select(CaseRow::as_select())
            .order(cases::id)
            .limit(f.limit)
            .into_boxed();
        if let Some(st) = f.state {
            query = query.filter(cases::state.eq(enum_text(st)));
        }
        if let Some(a) = f.assignee {
            query = query.filter(cases::assignee_id.eq(a.to_string()));
        }
        if let Some(cat) = f.category {
            query = query.filter(cases::category.eq(enum_text(cat)));
        }
        match f.due {
            Some(Due::Overdue) => {
                query = query
                    .filter(cases::state.eq(enum_text(CaseState::Assigned)))
                    .filter(cases::due_at.lt(now));
            }
            Some(Due::Soon(h)) => {
                let until = now + chrono::TimeDelta::hours(h);
                query = query
                    .filter(cases::state.eq(enum_text(CaseState::Assigned)))
                    .filter(cases::due_at.ge(now))
                    .filter(cases::due_at.le(until));
            }
            None => {}
        }
        match f.transferred {
            Some(true) => query = query.filter(cases::transferred_at.is_not_null()),
            Some(false) => query = query.filter(cases::transferred_at.is_null()),
            None => {}
        }
        if let Some(q) = &q {
            query = query.filter(
                cases::body
                    .like(q.clone())
                    .escape('\\')
                    .or(cases::reply.like(q.clone()).escape('\\')),
            );
        }
        if let Some(a) = f.after {
            query = query.filter(cases::id.gt(a.to_string()));
        }
        query.load(cx).await
    })
    .map_err(db_error)?;
    rows.into_iter().map(CaseRow::into_domain).collect()
}

/// Every case of the branches inside `within` (the figures of a period read them all: a
/// township has thousands, not millions).
pub async fn of_branches_within(conn: &mut Conn<'_>, within: &str) -> Result<Vec<Case>, Error> {
    let within = format!("{within}%");
    let rows: Vec<CaseRow> = on!(conn, |cx| cases::table
        .inner_join(orgs::table.on(orgs::id.eq(cases::org_id)))
        .filter(orgs::path.like(within))
        .select(CaseRow::as_select())
        .load(cx)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(CaseRow::into_domain).collect()
}

/// Assigned cases past due and not yet marked (the overdue job's work), oldest first.
pub async fn due_for_overdue(
    conn: &mut Conn<'_>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, Error> {
    let rows: Vec<String> = on!(conn, |cx| cases::table
        .filter(cases::state.eq(enum_text(CaseState::Assigned)))
        .filter(cases::due_at.lt(naive(now)))
        .filter(cases::overdue_at.is_null())
        .select(cases::id)
        .order(cases::id)
        .limit(limit)
        .load(cx)
        .await)
    .map_err(db_error)?;
    rows.iter().map(|r| uuid(r)).collect()
}

/// (id, branch, handler, assignee, due) of a case.
type DueRow = (
    String,
    String,
    String,
    Option<String>,
    Option<chrono::NaiveDateTime>,
);

/// Every assigned, unresolved case with its branch, as the warning rules read them.
pub async fn assigned_open(
    conn: &mut Conn<'_>,
) -> Result<Vec<(Uuid, yunlian_domain::warnings::CaseFact)>, Error> {
    let rows: Vec<DueRow> = on!(conn, |cx| cases::table
        .filter(cases::state.eq(enum_text(CaseState::Assigned)))
        .filter(cases::due_at.is_not_null())
        .select((
            cases::id,
            cases::org_id,
            cases::handler_org_id,
            cases::assignee_id,
            cases::due_at
        ))
        .load(cx)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .filter_map(|(id, org, handler, assignee, due)| {
            due.map(|d| (id, org, handler, assignee, d))
        })
        .map(|(id, org, handler, assignee, due)| {
            Ok((
                uuid(&org)?,
                yunlian_domain::warnings::CaseFact {
                    id: uuid(&id)?,
                    handler_org_id: uuid(&handler)?,
                    assignee_id: u(assignee)?,
                    due_at: utc(due),
                },
            ))
        })
        .collect()
}

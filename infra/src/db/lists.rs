//! The red and yellow lists, stored: one per branch and period, a draft until published.

use super::rows::within;
use super::schema::{members, orgs, points_entries as pe, points_lists as pl};
use super::{db_error, naive, sync, utc, uuid, Conn};
use crate::{load, on};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::HashMap;
use uuid::Uuid;
use yunlian_domain::points::{ListEntry, MemberFacts, RuleKind};
use yunlian_domain::sync::{Entity, Scope};
use yunlian_domain::Error;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct List {
    pub id: Uuid,
    pub org_id: Uuid,
    pub period: String,
    /// `draft` or `published`.
    pub state: String,
    pub entries: Vec<ListEntry>,
    pub generated_by: Uuid,
    pub generated_at: DateTime<Utc>,
    pub published_by: Option<Uuid>,
    pub published_at: Option<DateTime<Utc>>,
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    chrono::NaiveDateTime,
    Option<String>,
    Option<chrono::NaiveDateTime>,
);

const COLUMNS: (
    pl::id,
    pl::org_id,
    pl::period,
    pl::state,
    pl::entries,
    pl::generated_by,
    pl::generated_at,
    pl::published_by,
    pl::published_at,
) = (
    pl::id,
    pl::org_id,
    pl::period,
    pl::state,
    pl::entries,
    pl::generated_by,
    pl::generated_at,
    pl::published_by,
    pl::published_at,
);

fn list((id, org, period, state, entries, by, at, pby, pat): Row) -> Result<List, Error> {
    Ok(List {
        id: uuid(&id)?,
        org_id: uuid(&org)?,
        period,
        state,
        entries: serde_json::from_str(&entries)
            .map_err(|e| Error::Internal(format!("bad list in db: {e}")))?,
        generated_by: uuid(&by)?,
        generated_at: utc(at),
        published_by: pby.as_deref().map(uuid).transpose()?,
        published_at: pat.map(utc),
    })
}

/// The branch's list for the period, locked (PostgreSQL) for a regeneration or a publication.
pub async fn lock(conn: &mut Conn<'_>, org: Uuid, period: &str) -> Result<Option<List>, Error> {
    let q = pl::table
        .filter(pl::org_id.eq(org.to_string()))
        .filter(pl::period.eq(period))
        .select(COLUMNS);
    let row: Option<Row> = match &mut conn.raw {
        super::Raw::Pg(c) => q.for_update().first(c).await,
        super::Raw::Sqlite(c) => q.first(&mut **c).await,
    }
    .optional()
    .map_err(db_error)?;
    row.map(list).transpose()
}

/// Writes a draft: a new list, or the branch's draft for the period regenerated.
pub async fn save_draft(conn: &mut Conn<'_>, l: &List) -> Result<(), Error> {
    let entries = serde_json::to_string(&l.entries).map_err(|e| Error::Internal(e.to_string()))?;
    let n = on!(conn, |c| diesel::update(
        pl::table
            .filter(pl::id.eq(l.id.to_string()))
            .filter(pl::state.eq("draft"))
    )
    .set((
        pl::entries.eq(&entries),
        pl::generated_by.eq(l.generated_by.to_string()),
        pl::generated_at.eq(naive(l.generated_at))
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    if n == 0 {
        on!(conn, |c| diesel::insert_into(pl::table)
            .values((
                pl::id.eq(l.id.to_string()),
                pl::org_id.eq(l.org_id.to_string()),
                pl::period.eq(&l.period),
                pl::state.eq("draft"),
                pl::entries.eq(&entries),
                pl::generated_by.eq(l.generated_by.to_string()),
                pl::generated_at.eq(naive(l.generated_at)),
            ))
            .execute(c)
            .await)
        .map_err(db_error)?;
    }
    Ok(())
}

/// Publishes a draft once: `false` when it was published already. The branch's phones get it.
pub async fn publish(
    conn: &mut Conn<'_>,
    l: &List,
    by: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let n = on!(conn, |c| diesel::update(
        pl::table
            .filter(pl::id.eq(l.id.to_string()))
            .filter(pl::state.eq("draft"))
    )
    .set((
        pl::state.eq("published"),
        pl::published_by.eq(by.to_string()),
        pl::published_at.eq(naive(now))
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    if n == 1 {
        sync::record(
            conn,
            &[Scope::Org(l.org_id)],
            Entity::PointsList,
            l.id,
            false,
            now,
        )
        .await?;
    }
    Ok(n == 1)
}

/// A list with its branch's path.
pub async fn get(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(List, String)>, Error> {
    let row: Option<(Row, String)> = on!(conn, |c| pl::table
        .inner_join(orgs::table.on(orgs::id.eq(pl::org_id)))
        .filter(pl::id.eq(id.to_string()))
        .select((COLUMNS, orgs::path))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(r, p)| Ok((list(r)?, p))).transpose()
}

pub async fn by_ids(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<List>, Error> {
    let rows: Vec<Row> =
        load!(conn, pl::table.filter(within(pl::id, ids)).select(COLUMNS)).map_err(db_error)?;
    rows.into_iter().map(list).collect()
}

/// The lists of the branches inside `within`, optionally of one period and published only.
pub async fn list_within(
    conn: &mut Conn<'_>,
    within: &str,
    period: Option<&str>,
    published_only: bool,
) -> Result<Vec<List>, Error> {
    let like = format!("{within}%");
    let rows: Vec<Row> = on!(conn, |c| {
        let mut q = pl::table
            .inner_join(orgs::table.on(orgs::id.eq(pl::org_id)))
            .filter(orgs::path.like(like.clone()))
            .select(COLUMNS)
            .order(pl::id)
            .limit(500)
            .into_boxed();
        if let Some(p) = period {
            q = q.filter(pl::period.eq(p.to_string()));
        }
        if published_only {
            q = q.filter(pl::state.eq("published"));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter().map(list).collect()
}

/// What the lists are drawn from, for each member of the branch over `months`: their total,
/// standing absences, learning points and posted admonitions (posted entries only; a reversed
/// absence cancels its absence).
pub async fn member_facts(
    conn: &mut Conn<'_>,
    branch: Uuid,
    months: &[String],
) -> Result<Vec<MemberFacts>, Error> {
    let people: Vec<(String, String)> = on!(conn, |c| members::table
        .filter(members::org_id.eq(branch.to_string()))
        .select((members::id, members::name))
        .order(members::id)
        .load(c)
        .await)
    .map_err(db_error)?;
    let rows: Vec<(String, String, i64, Option<String>)> = on!(conn, |c| pe::table
        .filter(pe::org_id.eq(branch.to_string()))
        .filter(pe::period.eq_any(months))
        .filter(pe::pending.eq(false))
        .select((pe::member_id, pe::rule, pe::delta, pe::resolution))
        .load(c)
        .await)
    .map_err(db_error)?;
    let mut facts: HashMap<String, MemberFacts> = HashMap::new();
    for (id, name) in &people {
        facts.insert(
            id.clone(),
            MemberFacts {
                member_id: uuid(id)?,
                name: name.clone(),
                total: 0,
                absences: 0,
                learning_points: 0,
                admonitions: 0,
            },
        );
    }
    for (member, rule, delta, resolution) in rows {
        let Some(f) = facts.get_mut(&member) else {
            continue;
        };
        f.total += delta;
        let rule = RuleKind::parse(&rule);
        let sign = match resolution.as_deref() {
            None => 1,
            Some("reverse") => -1,
            Some("post") => 1,
            Some(_) => 0,
        };
        match rule {
            Some(RuleKind::Absent) => f.absences += sign,
            Some(RuleKind::LearningCompleted | RuleKind::QuizAllCorrect) => {
                f.learning_points += delta
            }
            Some(RuleKind::Admonition) if resolution.as_deref() == Some("post") => {
                f.admonitions += 1
            }
            _ => {}
        }
    }
    let mut out: Vec<MemberFacts> = facts.into_values().collect();
    out.sort_by_key(|f| f.member_id);
    Ok(out)
}

/// Posted admonitions (告诫) within an org's subtree over `months`: (branch, month, how many).
pub async fn admonitions(
    conn: &mut Conn<'_>,
    within: &str,
    months: &[String],
) -> Result<Vec<(Uuid, String, i64)>, Error> {
    let like = format!("{within}%");
    let rows: Vec<(String, String, i64)> = on!(conn, |c| pe::table
        .inner_join(orgs::table.on(orgs::id.eq(pe::org_id)))
        .filter(orgs::path.like(&like))
        .filter(pe::period.eq_any(months))
        .filter(pe::rule.eq(RuleKind::Admonition.as_str()))
        .filter(pe::pending.eq(false))
        .filter(pe::resolution.eq("post"))
        .group_by((pe::org_id, pe::period))
        .select((pe::org_id, pe::period, diesel::dsl::count_star()))
        .order((pe::period, pe::org_id))
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(org, period, n)| Ok((uuid(&org)?, period, n)))
        .collect()
}

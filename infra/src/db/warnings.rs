//! Warnings and rectification notices, stored. A warning is synced to its recipient's scope (the
//! member's, or the committee scope of the org it is addressed to), with its notice embedded;
//! every change of either records the warning again.

use super::rows::within;
use super::schema::{orgs, rectifications as rt, warnings as wt};
use super::{db_error, enum_parse, enum_text, naive, sync, utc, uuid, Conn, Raw};
use crate::{load, on};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::HashMap;
use uuid::Uuid;
use yunlian_domain::sync::{Entity, Scope};
use yunlian_domain::warnings::{Level, OpenWarning, Recipient, Rectification, Rule, Warning};
use yunlian_domain::Error;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = wt)]
struct WarningRow {
    id: String,
    dedup_key: String,
    rule: String,
    level: String,
    org_id: String,
    recipient_member_id: Option<String>,
    recipient_org_id: Option<String>,
    subject: String,
    period: String,
    detail: String,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
    delivered_at: Option<chrono::NaiveDateTime>,
    read_at: Option<chrono::NaiveDateTime>,
    read_by: Option<String>,
    acknowledged_at: Option<chrono::NaiveDateTime>,
    acknowledged_by: Option<String>,
    resolved_at: Option<chrono::NaiveDateTime>,
    resolution: Option<String>,
    #[diesel(deserialize_as = super::rows::Ts)]
    updated_at: chrono::NaiveDateTime,
}

fn opt(s: Option<String>) -> Result<Option<Uuid>, Error> {
    s.as_deref().map(uuid).transpose()
}

fn rule(s: &str) -> Result<Rule, Error> {
    Rule::parse(s).ok_or_else(|| Error::Internal(format!("bad warning rule in db: {s}")))
}

impl WarningRow {
    fn from_domain(w: &Warning, key: &str) -> Self {
        let (m, o) = match w.recipient {
            Recipient::Member(m) => (Some(m.to_string()), None),
            Recipient::Committee(o) => (None, Some(o.to_string())),
        };
        WarningRow {
            id: w.id.to_string(),
            dedup_key: key.to_string(),
            rule: w.rule.as_str().to_string(),
            level: enum_text(w.level),
            org_id: w.org_id.to_string(),
            recipient_member_id: m,
            recipient_org_id: o,
            subject: w.subject.clone(),
            period: w.period.clone(),
            detail: w.detail.to_string(),
            created_at: naive(w.created_at),
            delivered_at: w.delivered_at.map(naive),
            read_at: w.read_at.map(naive),
            read_by: w.read_by.map(|u| u.to_string()),
            acknowledged_at: w.acknowledged_at.map(naive),
            acknowledged_by: w.acknowledged_by.map(|u| u.to_string()),
            resolved_at: w.resolved_at.map(naive),
            resolution: w.resolution.clone(),
            updated_at: naive(w.updated_at),
        }
    }

    fn into_domain(self) -> Result<Warning, Error> {
        let recipient = match (opt(self.recipient_member_id)?, opt(self.recipient_org_id)?) {
            (Some(m), _) => Recipient::Member(m),
            (None, Some(o)) => Recipient::Committee(o),
            (None, None) => return Err(Error::Internal("warning without recipient".into())),
        };
        Ok(Warning {
            id: uuid(&self.id)?,
            rule: rule(&self.rule)?,
            level: enum_parse::<Level>("warning level", &self.level)?,
            org_id: uuid(&self.org_id)?,
            recipient,
            subject: self.subject,
            period: self.period,
            detail: serde_json::from_str(&self.detail)
                .map_err(|e| Error::Internal(format!("bad warning detail in db: {e}")))?,
            created_at: utc(self.created_at),
            delivered_at: self.delivered_at.map(utc),
            read_at: self.read_at.map(utc),
            read_by: opt(self.read_by)?,
            acknowledged_at: self.acknowledged_at.map(utc),
            acknowledged_by: opt(self.acknowledged_by)?,
            resolved_at: self.resolved_at.map(utc),
            resolution: self.resolution,
            updated_at: utc(self.updated_at),
            rectification: None,
        })
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = rt, treat_none_as_default_value = false, treat_none_as_null = true)]
struct RectRow {
    id: String,
    warning_id: String,
    org_id: String,
    period: String,
    state: String,
    #[diesel(deserialize_as = super::rows::Ts)]
    due_at: chrono::NaiveDateTime,
    answer: Option<String>,
    attachments: String,
    answered_by: Option<String>,
    answered_at: Option<chrono::NaiveDateTime>,
    decided_by: Option<String>,
    decided_at: Option<chrono::NaiveDateTime>,
    return_reason: Option<String>,
    rounds: i64,
    escalated_at: Option<chrono::NaiveDateTime>,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
    #[diesel(deserialize_as = super::rows::Ts)]
    updated_at: chrono::NaiveDateTime,
}

impl RectRow {
    fn from_domain(r: &Rectification) -> Self {
        RectRow {
            id: r.id.to_string(),
            warning_id: r.warning_id.to_string(),
            org_id: r.org_id.to_string(),
            period: r.period.clone(),
            state: enum_text(r.state),
            due_at: naive(r.due_at),
            answer: r.answer.clone(),
            attachments: serde_json::to_string(&r.attachments).unwrap_or_else(|_| "[]".into()),
            answered_by: r.answered_by.map(|u| u.to_string()),
            answered_at: r.answered_at.map(naive),
            decided_by: r.decided_by.map(|u| u.to_string()),
            decided_at: r.decided_at.map(naive),
            return_reason: r.return_reason.clone(),
            rounds: r.rounds,
            escalated_at: r.escalated_at.map(naive),
            created_at: naive(r.created_at),
            updated_at: naive(r.updated_at),
        }
    }

    fn into_domain(self) -> Result<Rectification, Error> {
        Ok(Rectification {
            id: uuid(&self.id)?,
            warning_id: uuid(&self.warning_id)?,
            org_id: uuid(&self.org_id)?,
            period: self.period,
            state: enum_parse("rectification state", &self.state)?,
            due_at: utc(self.due_at),
            answer: self.answer,
            attachments: serde_json::from_str(&self.attachments)
                .map_err(|e| Error::Internal(format!("bad attachments in db: {e}")))?,
            answered_by: opt(self.answered_by)?,
            answered_at: self.answered_at.map(utc),
            decided_by: opt(self.decided_by)?,
            decided_at: self.decided_at.map(utc),
            return_reason: self.return_reason,
            rounds: self.rounds,
            escalated_at: self.escalated_at.map(utc),
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        })
    }
}

/// The scope a warning syncs to.
pub fn scope_of(r: Recipient) -> Scope {
    match r {
        Recipient::Member(m) => Scope::Member(m),
        Recipient::Committee(o) => Scope::Committee(o),
    }
}

async fn synced(conn: &mut Conn<'_>, w: &Warning, now: DateTime<Utc>) -> Result<(), Error> {
    sync::record(
        conn,
        &[scope_of(w.recipient)],
        Entity::Warning,
        w.id,
        false,
        now,
    )
    .await
}

/// Stores a new warning under its dedup key: `false` when one with that key exists already (a
/// scan or consumer racing another raises it once).
pub async fn insert(conn: &mut Conn<'_>, w: &Warning, key: &str) -> Result<bool, Error> {
    let row = WarningRow::from_domain(w, key);
    let n = on!(conn, |c| diesel::insert_into(wt::table)
        .values(&row)
        .on_conflict(wt::dedup_key)
        .do_nothing()
        .execute(c)
        .await)
    .map_err(db_error)?;
    if n == 1 {
        synced(conn, w, w.created_at).await?;
    }
    Ok(n == 1)
}

/// Opens a resolved warning again (its condition holds once more): `false` when it was open.
pub async fn reopen(conn: &mut Conn<'_>, w: &Warning, now: DateTime<Utc>) -> Result<bool, Error> {
    let n = on!(conn, |c| diesel::update(
        wt::table
            .filter(wt::id.eq(w.id.to_string()))
            .filter(wt::resolved_at.is_not_null())
    )
    .set((
        wt::resolved_at.eq(None::<chrono::NaiveDateTime>),
        wt::resolution.eq(None::<String>),
        wt::level.eq(enum_text(w.level)),
        wt::detail.eq(w.detail.to_string()),
        wt::updated_at.eq(naive(now)),
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    if n == 1 {
        synced(conn, w, now).await?;
    }
    Ok(n == 1)
}

/// Resolves an open warning once: `false` when it was resolved already.
pub async fn resolve(
    conn: &mut Conn<'_>,
    w: &Warning,
    resolution: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let n = on!(conn, |c| diesel::update(
        wt::table
            .filter(wt::id.eq(w.id.to_string()))
            .filter(wt::resolved_at.is_null())
    )
    .set((
        wt::resolved_at.eq(naive(now)),
        wt::resolution.eq(resolution),
        wt::updated_at.eq(naive(now)),
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    if n == 1 {
        synced(conn, w, now).await?;
    }
    Ok(n == 1)
}

/// Marks a warning read (`read`) or acknowledged by `by`, the first time only: `false` when it
/// was already. Only those columns change.
pub async fn mark(
    conn: &mut Conn<'_>,
    w: &Warning,
    acknowledge: bool,
    by: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let q = wt::table.filter(wt::id.eq(w.id.to_string()));
    let (at, by_s) = (naive(now), by.to_string());
    let n = if acknowledge {
        on!(conn, |c| diesel::update(
            q.filter(wt::acknowledged_at.is_null())
        )
        .set((
            wt::acknowledged_at.eq(at),
            wt::acknowledged_by.eq(&by_s),
            wt::updated_at.eq(at),
        ))
        .execute(c)
        .await)
    } else {
        on!(conn, |c| diesel::update(q.filter(wt::read_at.is_null()))
            .set((
                wt::read_at.eq(at),
                wt::read_by.eq(&by_s),
                wt::updated_at.eq(at),
            ))
            .execute(c)
            .await)
    }
    .map_err(db_error)?;
    if n == 1 {
        synced(conn, w, now).await?;
    }
    Ok(n == 1)
}

/// A change of the warning's notice: its time moves and its recipients' phones get it again.
pub async fn mark_changed(
    conn: &mut Conn<'_>,
    w: &Warning,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    on!(conn, |c| diesel::update(
        wt::table.filter(wt::id.eq(w.id.to_string()))
    )
    .set(wt::updated_at.eq(naive(now)))
    .execute(c)
    .await)
    .map_err(db_error)?;
    synced(conn, w, now).await
}

/// Sets when a warning first reached a phone (delivery), once.
pub async fn delivered(conn: &mut Conn<'_>, id: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
    on!(conn, |c| diesel::update(
        wt::table
            .filter(wt::id.eq(id.to_string()))
            .filter(wt::delivered_at.is_null())
    )
    .set(wt::delivered_at.eq(naive(now)))
    .execute(c)
    .await)
    .map_err(db_error)?;
    Ok(())
}

async fn with_notices(conn: &mut Conn<'_>, rows: Vec<WarningRow>) -> Result<Vec<Warning>, Error> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let notices: Vec<RectRow> = on!(conn, |c| rt::table
        .filter(rt::warning_id.eq_any(&ids))
        .select(RectRow::as_select())
        .load(c)
        .await)
    .map_err(db_error)?;
    let mut by_warning: HashMap<String, Rectification> = HashMap::new();
    for n in notices {
        by_warning.insert(n.warning_id.clone(), n.into_domain()?);
    }
    rows.into_iter()
        .map(|r| {
            let notice = by_warning.remove(&r.id);
            let mut w = r.into_domain()?;
            w.rectification = notice;
            Ok(w)
        })
        .collect()
}

pub async fn by_ids(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<Warning>, Error> {
    let rows: Vec<WarningRow> = load!(
        conn,
        wt::table
            .filter(within(wt::id, ids))
            .select(WarningRow::as_select())
    )
    .map_err(db_error)?;
    with_notices(conn, rows).await
}

/// A warning with the path of the org it is addressed to (a member's: their branch's).
pub async fn get(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(Warning, String)>, Error> {
    let row: Option<(WarningRow, String)> = on!(conn, |c| wt::table
        .inner_join(orgs::table.on(orgs::id.eq(wt::org_id)))
        .filter(wt::id.eq(id.to_string()))
        .select((WarningRow::as_select(), orgs::path))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    let Some((row, path)) = row else {
        return Ok(None);
    };
    let mut w = with_notices(conn, vec![row]).await?;
    Ok(w.pop().map(|w| (w, path)))
}

/// The warning stored under a dedup key.
pub async fn by_key(conn: &mut Conn<'_>, key: &str) -> Result<Option<Warning>, Error> {
    let row: Option<WarningRow> = on!(conn, |c| wt::table
        .filter(wt::dedup_key.eq(key))
        .select(WarningRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(WarningRow::into_domain).transpose()
}

/// What the scan compares with: every warning of the scanned rules still open, or raised since
/// `since` (so one that holds again is reopened rather than raised twice), by the org it is
/// about.
pub async fn scanned(
    conn: &mut Conn<'_>,
    since: DateTime<Utc>,
) -> Result<HashMap<Uuid, Vec<OpenWarning>>, Error> {
    let rules: Vec<&str> = Rule::ALL
        .into_iter()
        .filter(|r| r.scanned())
        .map(Rule::as_str)
        .collect();
    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        Option<chrono::NaiveDateTime>,
        Option<String>,
    );
    let rows: Vec<Row> = on!(conn, |c| wt::table
        .filter(wt::rule.eq_any(&rules))
        .filter(
            wt::resolved_at
                .is_null()
                .or(wt::created_at.ge(naive(since)))
        )
        .select((
            wt::id,
            wt::org_id,
            wt::dedup_key,
            wt::rule,
            wt::subject,
            wt::period,
            wt::resolved_at,
            wt::resolution
        ))
        .load(c)
        .await)
    .map_err(db_error)?;
    let mut out: HashMap<Uuid, Vec<OpenWarning>> = HashMap::new();
    for (id, org, key, r, subject, period, resolved, resolution) in rows {
        out.entry(uuid(&org)?).or_default().push(OpenWarning {
            id: uuid(&id)?,
            dedup_key: key,
            rule: rule(&r)?,
            subject,
            period,
            resolved: resolved.is_some(),
            settled: resolution.as_deref() == Some(SETTLED),
        });
    }
    Ok(out)
}

/// The resolution a person gives (verifying a rectification), which no scan undoes.
pub const SETTLED: &str = "verified";

/// Who may see which warnings in a list.
pub struct Filter {
    /// Warnings addressed to this member.
    pub member: Option<Uuid>,
    /// Warnings addressed to the committees of orgs inside these subtrees.
    pub committees_within: Vec<String>,
    /// Only warnings about orgs inside this subtree.
    pub within: Option<String>,
    pub open_only: bool,
    pub level: Option<Level>,
    pub rule: Option<Rule>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// Warnings the filter admits, oldest first, keyset-paged by id.
pub async fn list(conn: &mut Conn<'_>, f: &Filter) -> Result<Vec<Warning>, Error> {
    use diesel::dsl::exists;
    let rows: Vec<WarningRow> = on!(conn, |c| {
        let mut q = wt::table
            .select(WarningRow::as_select())
            .order(wt::id)
            .limit(f.limit)
            .into_boxed();
        // Addressed to the member, or to a committee the caller sits on (or oversees).
        let mut admitted: Box<
            dyn BoxableExpression<wt::table, _, SqlType = diesel::sql_types::Bool>,
        > = Box::new(diesel::dsl::sql::<diesel::sql_types::Bool>("1 = 0"));
        if let Some(m) = f.member {
            admitted =
                Box::new(admitted.or(wt::recipient_member_id.assume_not_null().eq(m.to_string())));
        }
        for root in &f.committees_within {
            let under = orgs::table
                .filter(orgs::id.nullable().eq(wt::recipient_org_id))
                .filter(orgs::path.like(format!("{root}%")));
            admitted = Box::new(admitted.or(exists(under)));
        }
        q = q.filter(admitted);
        if let Some(w) = &f.within {
            q = q.filter(exists(
                orgs::table
                    .filter(orgs::id.eq(wt::org_id))
                    .filter(orgs::path.like(format!("{w}%"))),
            ));
        }
        if f.open_only {
            q = q.filter(wt::resolved_at.is_null());
        }
        if let Some(l) = f.level {
            q = q.filter(wt::level.eq(enum_text(l)));
        }
        if let Some(r) = f.rule {
            q = q.filter(wt::rule.eq(r.as_str()));
        }
        if let Some(a) = f.after {
            q = q.filter(wt::id.gt(a.to_string()));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    with_notices(conn, rows).await
}

pub async fn insert_notice(conn: &mut Conn<'_>, r: &Rectification) -> Result<(), Error> {
    let row = RectRow::from_domain(r);
    on!(conn, |c| diesel::insert_into(rt::table)
        .values(&row)
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(())
}

/// A notice, locked (PostgreSQL) until the caller's transaction ends: answers, decisions and
/// the escalation read it under the lock.
pub async fn lock_notice(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<Rectification>, Error> {
    if let Raw::Pg(c) = &mut conn.raw {
        let _: Vec<String> = rt::table
            .filter(rt::id.eq(id.to_string()))
            .select(rt::id)
            .for_update()
            .load(c)
            .await
            .map_err(db_error)?;
    }
    let row: Option<RectRow> = on!(conn, |c| rt::table
        .filter(rt::id.eq(id.to_string()))
        .select(RectRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(RectRow::into_domain).transpose()
}

pub async fn update_notice(conn: &mut Conn<'_>, r: &Rectification) -> Result<(), Error> {
    let row = RectRow::from_domain(r);
    on!(conn, |c| diesel::update(
        rt::table.filter(rt::id.eq(r.id.to_string()))
    )
    .set(&row)
    .execute(c)
    .await)
    .map_err(db_error)?;
    Ok(())
}

/// Notices still owed an answer, by branch.
pub async fn owed(conn: &mut Conn<'_>) -> Result<HashMap<Uuid, Vec<Rectification>>, Error> {
    let rows: Vec<RectRow> = on!(conn, |c| rt::table
        .filter(rt::state.eq_any(["issued", "returned"]))
        .select(RectRow::as_select())
        .order(rt::id)
        .load(c)
        .await)
    .map_err(db_error)?;
    let mut out: HashMap<Uuid, Vec<Rectification>> = HashMap::new();
    for r in rows {
        let r = r.into_domain()?;
        out.entry(r.org_id).or_default().push(r);
    }
    Ok(out)
}

/// Open warnings about each org inside `within`.
pub async fn open_counts(conn: &mut Conn<'_>, within: &str) -> Result<HashMap<Uuid, i64>, Error> {
    let like = format!("{within}%");
    let rows: Vec<(String, i64)> = on!(conn, |c| wt::table
        .inner_join(orgs::table.on(orgs::id.eq(wt::org_id)))
        .filter(orgs::path.like(&like))
        .filter(wt::resolved_at.is_null())
        .group_by(wt::org_id)
        .select((wt::org_id, diesel::dsl::count_star()))
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(|(o, n)| Ok((uuid(&o)?, n))).collect()
}

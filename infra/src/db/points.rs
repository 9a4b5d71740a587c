//! The points ledger, stored: rules by version, entries (inserted, never updated: a duplicate
//! idempotency key inserts nothing), volunteer services.

use super::rows::within;
use super::schema::{
    members, orgs, points_entries as pe, points_marks as pm, points_rules, points_totals as pt,
    volunteer_services as vs,
};
use super::{db_error, naive, sync, utc, uuid, Conn};
use crate::{load, on};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::points::{Entry, RuleKind, Rules, Scored};
use yunlian_domain::sync::{Entity, Scope};
use yunlian_domain::Error;

/// One version of an org's rules.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RulesVersion {
    pub org_id: Uuid,
    pub version: i64,
    pub rules: Rules,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// The newest rules of each of `orgs` that has set any.
pub async fn current_rules(conn: &mut Conn<'_>, orgs: &[Uuid]) -> Result<Vec<RulesVersion>, Error> {
    let ids: Vec<String> = orgs.iter().map(Uuid::to_string).collect();
    type Row = (String, i64, String, Option<String>, chrono::NaiveDateTime);
    let rows: Vec<Row> = on!(conn, |c| points_rules::table
        .filter(points_rules::org_id.eq_any(&ids))
        .select((
            points_rules::org_id,
            points_rules::version,
            points_rules::rules,
            points_rules::created_by,
            points_rules::created_at,
        ))
        .order((points_rules::org_id, points_rules::version.desc()))
        .load(c)
        .await)
    .map_err(db_error)?;
    let mut out: Vec<RulesVersion> = Vec::new();
    for (org, version, rules, by, at) in rows {
        let org = uuid(&org)?;
        if out.iter().any(|v| v.org_id == org) {
            continue;
        }
        out.push(RulesVersion {
            org_id: org,
            version,
            rules: serde_json::from_str(&rules)
                .map_err(|e| Error::Internal(format!("bad rules in db: {e}")))?,
            created_by: by.as_deref().map(uuid).transpose()?,
            created_at: utc(at),
        });
    }
    Ok(out)
}

/// Stores a new version; a version another writer took first is `rules_version_mismatch`.
pub async fn insert_rules(conn: &mut Conn<'_>, v: &RulesVersion) -> Result<(), Error> {
    let rules = serde_json::to_string(&v.rules).map_err(|e| Error::Internal(e.to_string()))?;
    on!(conn, |c| diesel::insert_into(points_rules::table)
        .values((
            points_rules::org_id.eq(v.org_id.to_string()),
            points_rules::version.eq(v.version),
            points_rules::rules.eq(&rules),
            points_rules::created_by.eq(v.created_by.map(|b| b.to_string())),
            points_rules::created_at.eq(naive(v.created_at)),
        ))
        .execute(c)
        .await)
    .map(|_| ())
    .map_err(|e| match db_error(e) {
        Error::Conflict(_) => Error::Conflict("rules_version_mismatch"),
        other => other,
    })
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = pe, treat_none_as_default_value = false, treat_none_as_null = true)]
struct EntryRow {
    id: String,
    member_id: String,
    org_id: String,
    delta: i64,
    rule: String,
    rule_version: String,
    source: String,
    idem_key: String,
    period: String,
    day: String,
    #[diesel(deserialize_as = super::rows::Ts)]
    occurred_at: chrono::NaiveDateTime,
    pending: bool,
    resolves: Option<String>,
    resolution: Option<String>,
    reason: Option<String>,
    created_by: Option<String>,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
}

impl EntryRow {
    fn from_domain(e: &Entry) -> Self {
        EntryRow {
            id: e.id.to_string(),
            member_id: e.member_id.to_string(),
            org_id: e.org_id.to_string(),
            delta: e.delta,
            rule: e.rule.as_str().into(),
            rule_version: e.rule_version.clone(),
            source: e.source.clone(),
            idem_key: e.key.clone(),
            period: e.period.clone(),
            day: yunlian_domain::points::day_of(e.occurred_at),
            occurred_at: naive(e.occurred_at),
            pending: e.pending,
            resolves: e.resolves.map(|r| r.to_string()),
            resolution: e.resolution.clone(),
            reason: e.reason.clone(),
            created_by: e.created_by.map(|b| b.to_string()),
            created_at: naive(e.created_at),
        }
    }

    fn into_domain(self) -> Result<Entry, Error> {
        Ok(Entry {
            id: uuid(&self.id)?,
            member_id: uuid(&self.member_id)?,
            org_id: uuid(&self.org_id)?,
            delta: self.delta,
            rule: RuleKind::parse(&self.rule)
                .ok_or_else(|| Error::Internal(format!("bad rule {}", self.rule)))?,
            rule_version: self.rule_version,
            source: self.source,
            key: self.idem_key,
            period: self.period,
            occurred_at: utc(self.occurred_at),
            pending: self.pending,
            resolves: self.resolves.as_deref().map(uuid).transpose()?,
            resolution: self.resolution,
            reason: self.reason,
            created_by: self.created_by.as_deref().map(uuid).transpose()?,
            created_at: utc(self.created_at),
        })
    }
}

/// Appends an entry; `false` when its idempotency key is taken (it was written before, and
/// nothing changes). The member's phone gets it in their scope.
pub async fn append(conn: &mut Conn<'_>, e: &Entry) -> Result<bool, Error> {
    let row = EntryRow::from_domain(e);
    let n = on!(conn, |c| diesel::insert_into(pe::table)
        .values(&row)
        .on_conflict(pe::idem_key)
        .do_nothing()
        .execute(c)
        .await)
    .map_err(db_error)?;
    if n == 1 {
        let (org, period) = (e.org_id.to_string(), e.period.clone());
        on!(conn, |c| diesel::insert_into(pm::table)
            .values((
                pm::org_id.eq(&org),
                pm::period.eq(&period),
                pm::appended.eq(1i64)
            ))
            .on_conflict((pm::org_id, pm::period))
            .do_update()
            .set(pm::appended.eq(pm::appended + 1i64))
            .execute(c)
            .await)
        .map_err(db_error)?;
        if !e.pending {
            let member = e.member_id.to_string();
            on!(conn, |c| diesel::insert_into(pt::table)
                .values((
                    pt::member_id.eq(&member),
                    pt::org_id.eq(&org),
                    pt::period.eq(&period),
                    pt::total.eq(e.delta)
                ))
                .on_conflict((pt::org_id, pt::period, pt::member_id))
                .do_update()
                .set(pt::total.eq(pt::total + e.delta))
                .execute(c)
                .await)
            .map_err(db_error)?;
        }
        let s = [Scope::Member(e.member_id)];
        sync::record(conn, &s, Entity::PointsEntry, e.id, false, e.created_at).await?;
    }
    Ok(n == 1)
}

/// Every entry of one source, oldest first.
pub async fn of_source(conn: &mut Conn<'_>, source: &str) -> Result<Vec<Entry>, Error> {
    let rows: Vec<EntryRow> = on!(conn, |c| pe::table
        .filter(pe::source.eq(source))
        .select(EntryRow::as_select())
        .order(pe::id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(EntryRow::into_domain).collect()
}

/// What a member already scored under `rule` in the day, month and year of `at` (posted
/// entries only).
pub async fn scored(
    conn: &mut Conn<'_>,
    member: Uuid,
    rule: RuleKind,
    at: DateTime<Utc>,
) -> Result<Scored, Error> {
    let (day, month) = (
        yunlian_domain::points::day_of(at),
        yunlian_domain::points::month_of(at),
    );
    let year = format!("{}-%", &month[..4]);
    let rows: Vec<(String, String, i64)> = on!(conn, |c| pe::table
        .filter(pe::member_id.eq(member.to_string()))
        .filter(pe::rule.eq(rule.as_str()))
        .filter(pe::pending.eq(false))
        .filter(pe::period.like(&year))
        .select((pe::day, pe::period, pe::delta))
        .load(c)
        .await)
    .map_err(db_error)?;
    let mut s = Scored::default();
    for (d, p, delta) in rows {
        s.year += delta;
        if p == month {
            s.month += delta;
        }
        if d == day {
            s.day += delta;
        }
    }
    Ok(s)
}

/// An entry with the path of its member's branch.
pub async fn get(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(Entry, String)>, Error> {
    let row: Option<(EntryRow, String)> = on!(conn, |c| pe::table
        .inner_join(orgs::table.on(orgs::id.eq(pe::org_id)))
        .filter(pe::id.eq(id.to_string()))
        .select((EntryRow::as_select(), orgs::path))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(r, p)| Ok((r.into_domain()?, p))).transpose()
}

/// Whether a pending entry was posted or voided.
pub async fn decided(conn: &mut Conn<'_>, id: Uuid) -> Result<bool, Error> {
    let n: i64 = on!(conn, |c| pe::table
        .filter(pe::resolves.eq(id.to_string()))
        .filter(pe::resolution.eq_any(["post", "void"]))
        .count()
        .get_result(c)
        .await)
    .map_err(db_error)?;
    Ok(n > 0)
}

/// Pending entries written before `before` that nobody decided (the expiry job's work).
pub async fn undecided_before(
    conn: &mut Conn<'_>,
    before: DateTime<Utc>,
) -> Result<Vec<Entry>, Error> {
    let rows: Vec<EntryRow> = on!(conn, |c| pe::table
        .filter(pe::pending.eq(true))
        .filter(pe::created_at.lt(naive(before)))
        .select(EntryRow::as_select())
        .order(pe::id)
        .limit(500)
        .load(c)
        .await)
    .map_err(db_error)?;
    let mut out = Vec::new();
    for r in rows {
        let e = r.into_domain()?;
        if !decided(conn, e.id).await? {
            out.push(e);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub member: Option<Uuid>,
    /// Entries of members of the branches inside this path.
    pub within: Option<String>,
    pub months: Vec<String>,
    pub pending: Option<bool>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

pub async fn list(conn: &mut Conn<'_>, f: &EntryFilter) -> Result<Vec<Entry>, Error> {
    let within = f.within.as_ref().map(|w| format!("{w}%"));
    let rows: Vec<EntryRow> = on!(conn, |c| {
        let mut q = pe::table
            .inner_join(orgs::table.on(orgs::id.eq(pe::org_id)))
            .select(EntryRow::as_select())
            .order(pe::id)
            .limit(f.limit)
            .into_boxed();
        if let Some(m) = f.member {
            q = q.filter(pe::member_id.eq(m.to_string()));
        }
        if let Some(w) = &within {
            q = q.filter(orgs::path.like(w.clone()));
        }
        if !f.months.is_empty() {
            q = q.filter(pe::period.eq_any(f.months.clone()));
        }
        if let Some(p) = f.pending {
            q = q.filter(pe::pending.eq(p));
        }
        if let Some(a) = f.after {
            q = q.filter(pe::id.gt(a.to_string()));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter().map(EntryRow::into_domain).collect()
}

pub async fn by_ids(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<Entry>, Error> {
    let rows: Vec<EntryRow> = load!(
        conn,
        pe::table
            .filter(within(pe::id, ids))
            .select(EntryRow::as_select())
    )
    .map_err(db_error)?;
    rows.into_iter().map(EntryRow::into_domain).collect()
}

/// The first `limit` lines of a ranking, ranked in the database: the totals of `totals`, the
/// most first and ties by member id, computed and cut where the rows are instead of bringing
/// every member of a township across to rank them here (the profile of a township's ranking
/// showed its time in decoding, hashing and sorting 100,000 rows to answer 50).
pub async fn top(
    conn: &mut Conn<'_>,
    within: &str,
    months: &[String],
    limit: i64,
) -> Result<Vec<(Uuid, String, Uuid, i64)>, Error> {
    use diesel::sql_types::{BigInt, Text};
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        org_id: String,
        #[diesel(sql_type = BigInt)]
        total: i64,
    }
    let like = format!("{within}%");
    let sql = |mark: &str, collate: &str| {
        let periods = (0..months.len())
            .map(|i| format!("{mark}{}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT m.id, m.name, m.org_id, CAST(COALESCE(s.total, 0) AS BIGINT) AS total \
             FROM members m JOIN orgs o ON o.id = m.org_id \
             LEFT JOIN (SELECT pt.member_id, SUM(pt.total) AS total FROM points_totals pt \
                        JOIN orgs o2 ON o2.id = pt.org_id \
                        WHERE o2.path LIKE {mark}1 AND pt.period IN ({periods}) \
                        GROUP BY pt.member_id) s ON s.member_id = m.id \
             WHERE o.path LIKE {mark}1 \
             ORDER BY total DESC, m.id{collate} LIMIT {mark}2"
        )
    };
    macro_rules! run {
        ($c:expr, $sql:expr) => {{
            let mut q = diesel::sql_query($sql)
                .into_boxed()
                .bind::<Text, _>(like.clone())
                .bind::<BigInt, _>(limit);
            for m in months {
                q = q.bind::<Text, _>(m.clone());
            }
            q.load::<Line>($c).await
        }};
    }
    let lines: Vec<Line> = match &mut conn.raw {
        super::Raw::Pg(c) => run!(c, sql("$", " COLLATE \"C\"")),
        super::Raw::Sqlite(c) => run!(&mut **c, sql("?", "")),
    }
    .map_err(db_error)?;
    lines
        .into_iter()
        .map(|l| Ok((uuid(&l.id)?, l.name, uuid(&l.org_id)?, l.total)))
        .collect()
}

/// Each member's total over `months` (posted entries, summed from `points_totals`: a row per
/// member, branch and month), for the members of the branches inside `within`, every member
/// listed (0 when they scored nothing): (member, name, branch, total).
pub async fn totals(
    conn: &mut Conn<'_>,
    within: &str,
    months: &[String],
) -> Result<Vec<(Uuid, String, Uuid, i64)>, Error> {
    let like = format!("{within}%");
    let people: Vec<(String, String, String)> = on!(conn, |c| members::table
        .inner_join(orgs::table.on(orgs::id.eq(members::org_id)))
        .filter(orgs::path.like(&like))
        .select((members::id, members::name, members::org_id))
        .load(c)
        .await)
    .map_err(db_error)?;
    let sums: Vec<(String, Option<i64>)> = on!(conn, |c| pt::table
        .inner_join(orgs::table.on(orgs::id.eq(pt::org_id)))
        .filter(orgs::path.like(&like))
        .filter(pt::period.eq_any(months))
        .group_by(pt::member_id)
        .select((
            pt::member_id,
            diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>>(
                "CAST(SUM(points_totals.total) AS BIGINT)",
            ),
        ))
        .load(c)
        .await)
    .map_err(db_error)?;
    let sums: std::collections::HashMap<String, i64> =
        sums.into_iter().map(|(m, s)| (m, s.unwrap_or(0))).collect();
    people
        .into_iter()
        .map(|(id, name, org)| {
            let total = sums.get(&id).copied().unwrap_or(0);
            Ok((uuid(&id)?, name, uuid(&org)?, total))
        })
        .collect()
}

/// How many entries the branches inside `within` have appended over `months`: the mark a cached
/// ranking is checked against. Entries are only ever appended, so any change to the ledger
/// changes it, in whatever order the entries' ids arrive.
pub async fn mark(conn: &mut Conn<'_>, within: &str, months: &[String]) -> Result<String, Error> {
    let like = format!("{within}%");
    let appended: Option<i64> = on!(conn, |c| pm::table
        .inner_join(orgs::table.on(orgs::id.eq(pm::org_id)))
        .filter(orgs::path.like(&like))
        .filter(pm::period.eq_any(months))
        .select(diesel::dsl::sql::<
            diesel::sql_types::Nullable<diesel::sql_types::BigInt>,
        >("CAST(SUM(points_marks.appended) AS BIGINT)",))
        .first(c)
        .await)
    .map_err(db_error)?;
    Ok(appended.unwrap_or(0).to_string())
}

/// A volunteer service a member recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Service {
    pub id: Uuid,
    pub member_id: Uuid,
    pub org_id: Uuid,
    pub title: String,
    pub served_at: DateTime<Utc>,
    pub confirmed_by: Option<Uuid>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

type ServiceRow = (
    String,
    String,
    String,
    String,
    chrono::NaiveDateTime,
    Option<String>,
    Option<chrono::NaiveDateTime>,
    chrono::NaiveDateTime,
);

fn service((id, m, o, t, at, by, cat, created): ServiceRow) -> Result<Service, Error> {
    Ok(Service {
        id: uuid(&id)?,
        member_id: uuid(&m)?,
        org_id: uuid(&o)?,
        title: t,
        served_at: utc(at),
        confirmed_by: by.as_deref().map(uuid).transpose()?,
        confirmed_at: cat.map(utc),
        created_at: utc(created),
    })
}

pub async fn insert_service(conn: &mut Conn<'_>, s: &Service) -> Result<(), Error> {
    on!(conn, |c| diesel::insert_into(vs::table)
        .values((
            vs::id.eq(s.id.to_string()),
            vs::member_id.eq(s.member_id.to_string()),
            vs::org_id.eq(s.org_id.to_string()),
            vs::title.eq(&s.title),
            vs::served_at.eq(naive(s.served_at)),
            vs::created_at.eq(naive(s.created_at)),
        ))
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(())
}

/// A service with its branch's path.
pub async fn get_service(
    conn: &mut Conn<'_>,
    id: Uuid,
) -> Result<Option<(Service, String)>, Error> {
    let row: Option<(ServiceRow, String)> = on!(conn, |c| vs::table
        .inner_join(orgs::table.on(orgs::id.eq(vs::org_id)))
        .filter(vs::id.eq(id.to_string()))
        .select((
            (
                vs::id,
                vs::member_id,
                vs::org_id,
                vs::title,
                vs::served_at,
                vs::confirmed_by,
                vs::confirmed_at,
                vs::created_at
            ),
            orgs::path,
        ))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(r, p)| Ok((service(r)?, p))).transpose()
}

/// Confirms a service once: `false` when it was confirmed already.
pub async fn confirm_service(
    conn: &mut Conn<'_>,
    id: Uuid,
    by: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let n = on!(conn, |c| diesel::update(
        vs::table
            .filter(vs::id.eq(id.to_string()))
            .filter(vs::confirmed_at.is_null())
    )
    .set((
        vs::confirmed_by.eq(by.to_string()),
        vs::confirmed_at.eq(naive(now))
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    Ok(n == 1)
}

//! The points ledger's use cases: township rules, scoring what happened (the consumer of
//! domain events), adjustments by hand with a second committee member's decision, volunteer
//! services, balances and rankings. Entries are only ever appended.

use super::authorize;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use uuid::Uuid;
use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::events::{DomainEvent, VolunteerConfirmed};
use yunlian_domain::moments::block;
use yunlian_domain::org::{path_ids, OrgKind};
use yunlian_domain::points::{
    adjustment_delta, capped, expired, may_decide, month_of, Entry, Period, PointsError, RuleKind,
    Rules,
};
use yunlian_domain::{Error, FieldError};
use yunlian_infra::db::{self, points::RulesVersion, Conn};

/// The consumer name in `consumed`, and the topics it scores.
pub const CONSUMER: &str = "points";
pub const TOPICS: &[&str] = &[
    "attendance.final_status",
    "case.transitioned",
    "volunteer.confirmed",
    "learning.completed",
    "quiz.all_correct",
];

/// The rules in force at the org at `path`: the nearest org on the path that set rules, or
/// DOMAIN.md's defaults; with the version entries record (`<org>@<n>`, or `default`).
pub async fn effective(c: &mut Conn<'_>, path: &str) -> Result<(Rules, String), Error> {
    let ids = path_ids(path);
    let versions = db::points::current_rules(c, &ids).await?;
    for id in ids.iter().rev() {
        if let Some(v) = versions.iter().find(|v| v.org_id == *id) {
            return Ok((v.rules.clone(), format!("{}@{}", v.org_id, v.version)));
        }
    }
    Ok((Rules::default(), "default".into()))
}

/// An org's rules as `getPointsRules` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct OrgRules {
    pub org_id: Uuid,
    /// This org's own version (0: it set none and inherits).
    pub version: i64,
    /// The version in force here (`<org>@<n>` or `default`).
    pub in_force: String,
    pub rules: Rules,
}

async fn org_rules(c: &mut Conn<'_>, org: Uuid, path: &str) -> Result<OrgRules, Error> {
    let own = db::points::current_rules(c, &[org]).await?;
    let (rules, in_force) = effective(c, path).await?;
    Ok(OrgRules {
        org_id: org,
        version: own.first().map(|v| v.version).unwrap_or(0),
        in_force,
        rules,
    })
}

/// `getPointsRules`: anyone who sees the org (members see the rules they are scored by).
pub async fn get_rules(c: &mut Conn<'_>, p: &Principal, org: Uuid) -> Result<OrgRules, Error> {
    let o = db::orgs::get(c, org).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ReadOrg, &o.path)?;
    org_rules(c, o.id, &o.path).await
}

/// `updatePointsRules`: a township admin sets a whole new version; old entries keep the
/// version that made them.
pub async fn update_rules(
    c: &mut Conn<'_>,
    p: &Principal,
    org: Uuid,
    rules: Rules,
    expected_version: i64,
    now: DateTime<Utc>,
) -> Result<OrgRules, Error> {
    let o = db::orgs::get(c, org).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageSettings, &o.path)?;
    rules.validate().map_err(Error::Invalid)?;
    let current = db::points::current_rules(c, &[o.id])
        .await?
        .first()
        .map(|v| v.version)
        .unwrap_or(0);
    if current != expected_version {
        return Err(Error::Conflict("rules_version_mismatch"));
    }
    let v = RulesVersion {
        org_id: o.id,
        version: current + 1,
        rules,
        created_by: Some(p.member_id),
        created_at: now,
    };
    db::points::insert_rules(c, &v).await?;
    org_rules(c, o.id, &o.path).await
}

/// Moves a source's score to `rule`, as the change keyed `key` says: nothing when that change
/// was scored before (a redelivery, a replay of the outbox) or the source's live entry already
/// scores `rule`; otherwise a reversing entry for the live one (a late clock-in turning absent
/// into present: `<key>:reverse`) and the new entry (`key`), capped. Returns how many entries
/// were written.
pub async fn score(
    c: &mut Conn<'_>,
    member: Uuid,
    rule: RuleKind,
    source: &str,
    key: &str,
    occurred_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let Some((m, path)) = db::members::get(c, member).await? else {
        return Ok(0);
    };
    let (rules, version) = effective(c, &path).await?;
    let entries = db::points::of_source(c, source).await?;
    if entries.iter().any(|e| e.key == key) {
        return Ok(0);
    }
    let reversed: Vec<Uuid> = entries
        .iter()
        .filter(|e| e.resolution.as_deref() == Some("reverse"))
        .filter_map(|e| e.resolves)
        .collect();
    let live = entries
        .iter()
        .rev()
        .find(|e| e.resolution.is_none() && !reversed.contains(&e.id));
    if live.is_some_and(|l| l.rule == rule) {
        return Ok(0);
    }
    let mut written = 0;
    let base = |id: Uuid, key: String| Entry {
        id,
        member_id: m.id,
        org_id: m.org_id,
        delta: 0,
        rule,
        rule_version: version.clone(),
        source: source.to_string(),
        key,
        period: month_of(occurred_at),
        occurred_at,
        pending: false,
        resolves: None,
        resolution: None,
        reason: None,
        created_by: None,
        created_at: now,
    };
    if let Some(l) = live {
        let reversal = Entry {
            delta: -l.delta,
            rule: l.rule,
            rule_version: l.rule_version.clone(),
            period: l.period.clone(),
            occurred_at: l.occurred_at,
            resolves: Some(l.id),
            resolution: Some("reverse".into()),
            ..base(Uuid::now_v7(), format!("{key}:reverse"))
        };
        written += usize::from(db::points::append(c, &reversal).await?);
    }
    let scored = db::points::scored(c, m.id, rule, occurred_at).await?;
    let entry = Entry {
        delta: capped(&rules.rule(rule), scored),
        ..base(Uuid::now_v7(), key.to_string())
    };
    written += usize::from(db::points::append(c, &entry).await?);
    Ok(written)
}

/// Scores one domain event (the consumer's body, inside its transaction). A final status can
/// change after the close, so each change is keyed by the event that reported it; a case's
/// acceptance and resolution, and a service, score once whatever reports them.
pub async fn score_event(
    c: &mut Conn<'_>,
    e: &DomainEvent,
    event_id: Uuid,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    match e {
        DomainEvent::FinalStatusSet(f) => {
            let source = format!("meeting:{}:member:{}", f.meeting_id, f.member_id);
            let key = format!("{source}@{event_id}");
            let rule = RuleKind::for_attendance(f.status);
            score(c, f.member_id, rule, &source, &key, f.starts_at, now).await
        }
        DomainEvent::CaseTransitioned(t) => {
            let rule = match t.action.as_str() {
                "accepted" => RuleKind::SuggestionAccepted,
                "resolved" => RuleKind::CaseResolved,
                _ => return Ok(0),
            };
            let source = format!("case:{}:{}", t.case_id, t.action);
            score(c, t.author_id, rule, &source, &source, t.at, now).await
        }
        DomainEvent::LearningCompleted(l) => {
            let source = format!("learning:{}:member:{}", l.item_id, l.member_id);
            let rule = RuleKind::LearningCompleted;
            score(c, l.member_id, rule, &source, &source, l.at, now).await
        }
        DomainEvent::QuizAllCorrect(q) => {
            let source = format!("quiz:{}:member:{}", q.item_id, q.member_id);
            let rule = RuleKind::QuizAllCorrect;
            score(c, q.member_id, rule, &source, &source, q.at, now).await
        }
        DomainEvent::VolunteerConfirmed(v) => {
            let source = format!("service:{}", v.service_id);
            let rule = RuleKind::Volunteer;
            score(c, v.member_id, rule, &source, &source, v.served_at, now).await
        }
        _ => Ok(0),
    }
}

/// The consumer's round (see [`super::consume`]). Returns how many entries were written.
pub async fn consume(db: &yunlian_infra::Db, now: DateTime<Utc>) -> Result<usize, Error> {
    super::consume(
        db,
        CONSUMER,
        TOPICS,
        |c, e, id, now| {
            use yunlian_infra::db::ScopedFutureExt;
            async move { score_event(c, &e, id, now).await }.scope_boxed()
        },
        now,
    )
    .await
}

/// `createPointsAdjustment`: a violation (within the rules' range) or an admonition, with a
/// reason, entered pending by a committee member of the member's branch.
pub async fn adjust(
    c: &mut Conn<'_>,
    p: &Principal,
    member: Uuid,
    kind: RuleKind,
    delta: Option<i64>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Entry, Error> {
    let (m, path) = db::members::get(c, member).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManagePoints, &path)?;
    let reason = block("reason", reason, 500)?;
    let (rules, version) = effective(c, &path).await?;
    let delta = adjustment_delta(&rules, kind, delta)?;
    let id = Uuid::now_v7();
    let e = Entry {
        id,
        member_id: m.id,
        org_id: m.org_id,
        delta,
        rule: kind,
        rule_version: version,
        source: format!("adjustment:{id}"),
        key: format!("adjustment:{id}"),
        period: month_of(now),
        occurred_at: now,
        pending: true,
        resolves: None,
        resolution: None,
        reason: Some(reason),
        created_by: Some(p.member_id),
        created_at: now,
    };
    db::points::append(c, &e).await?;
    Ok(e)
}

/// A decision on a pending entry: the entry that posts it (its delta counts) or voids it (0).
fn decision(
    e: &Entry,
    post: bool,
    by: Option<Uuid>,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Entry {
    Entry {
        id: Uuid::now_v7(),
        delta: if post { e.delta } else { 0 },
        pending: false,
        resolves: Some(e.id),
        resolution: Some(if post { "post" } else { "void" }.into()),
        key: format!("decision:{}", e.id),
        source: e.source.clone(),
        reason,
        created_by: by,
        created_at: now,
        ..e.clone()
    }
}

/// `postPointsAdjustment` / `voidPointsAdjustment`: a second committee member posts it (never
/// its author), or a committee member voids it; once.
pub async fn decide(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    post: bool,
    now: DateTime<Utc>,
) -> Result<Entry, Error> {
    let (e, path) = db::points::get(c, id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManagePoints, &path)?;
    let decided = db::points::decided(c, e.id).await?;
    may_decide(&e, decided, p.member_id, post)?;
    let (rules, _) = effective(c, &path).await?;
    if expired(&e, &rules, now) {
        return Err(PointsError::Decided.into());
    }
    let d = decision(&e, post, Some(p.member_id), None, now);
    // The key is the pending entry's: of two decisions at once, the second writes nothing.
    if !db::points::append(c, &d).await? {
        return Err(PointsError::Decided.into());
    }
    Ok(d)
}

/// The expiry job's round: pending entries left undecided past their township's limit are
/// voided (by the system). Returns how many.
pub async fn expire(c: &mut Conn<'_>, now: DateTime<Utc>) -> Result<usize, Error> {
    let mut n = 0;
    for e in db::points::undecided_before(c, now - TimeDelta::days(1)).await? {
        let Some((_, path)) = db::points::get(c, e.id).await? else {
            continue;
        };
        let (rules, _) = effective(c, &path).await?;
        if expired(&e, &rules, now) {
            let d = decision(&e, false, None, Some("expired".into()), now);
            n += usize::from(db::points::append(c, &d).await?);
        }
    }
    Ok(n)
}

/// `recordVolunteerService`: a member records their own service; it scores once confirmed.
pub async fn record_service(
    c: &mut Conn<'_>,
    p: &Principal,
    title: &str,
    served_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<db::points::Service, Error> {
    let title = yunlian_domain::text::clean("title", title, yunlian_domain::text::Kind::Line, 100)?;
    if served_at > now + TimeDelta::minutes(5) {
        return Err(Error::Invalid(vec![FieldError::new(
            "served_at",
            "in_the_future",
        )]));
    }
    let (m, _) = db::members::get(c, p.member_id)
        .await?
        .ok_or(Error::NotFound)?;
    let s = db::points::Service {
        id: Uuid::now_v7(),
        member_id: m.id,
        org_id: m.org_id,
        title,
        served_at,
        confirmed_by: None,
        confirmed_at: None,
        created_at: now,
    };
    db::points::insert_service(c, &s).await?;
    Ok(s)
}

/// `confirmVolunteerService`: the secretary confirms it, once; the event scores it.
pub async fn confirm_service(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<db::points::Service, Error> {
    let (s, path) = db::points::get_service(c, id)
        .await?
        .ok_or(Error::NotFound)?;
    authorize(p, Action::ManageMembers, &path)?;
    if !db::points::confirm_service(c, id, p.member_id, now).await? {
        return Err(Error::Conflict("service_confirmed"));
    }
    let ev = DomainEvent::VolunteerConfirmed(VolunteerConfirmed {
        service_id: s.id,
        member_id: s.member_id,
        org_id: s.org_id,
        served_at: s.served_at,
        confirmed_by: p.member_id,
    });
    db::outbox::append(c, &ev, now).await?;
    Ok(db::points::Service {
        confirmed_by: Some(p.member_id),
        confirmed_at: Some(now),
        ..s
    })
}

/// A member's points for a period, with every entry that makes them up.
#[derive(Debug, Clone, Serialize)]
pub struct MemberPoints {
    pub member_id: Uuid,
    pub period: String,
    /// The sum of the posted entries.
    pub balance: i64,
    /// Pending deductions waiting for a second committee member.
    pub pending: i64,
    pub entries: Vec<Entry>,
}

/// `getMemberPoints`: the member themself, or who may read the roster of their branch.
pub async fn member_points(
    c: &mut Conn<'_>,
    p: &Principal,
    member: Uuid,
    period: Period,
) -> Result<MemberPoints, Error> {
    let (m, path) = db::members::get(c, member).await?.ok_or(Error::NotFound)?;
    if m.id != p.member_id {
        authorize(p, Action::ReadMembers, &path)?;
    }
    let f = db::points::EntryFilter {
        member: Some(m.id),
        months: period.months(),
        limit: 100_000,
        ..Default::default()
    };
    let entries = db::points::list(c, &f).await?;
    let decided: Vec<Uuid> = entries
        .iter()
        .filter(|e| e.resolution.as_deref().is_some_and(|r| r != "reverse"))
        .filter_map(|e| e.resolves)
        .collect();
    Ok(MemberPoints {
        member_id: m.id,
        period: period.to_string(),
        balance: entries.iter().filter(|e| !e.pending).map(|e| e.delta).sum(),
        pending: entries
            .iter()
            .filter(|e| e.pending && !decided.contains(&e.id))
            .map(|e| e.delta)
            .sum(),
        entries,
    })
}

/// One line of a ranking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ranked {
    pub position: usize,
    pub member_id: Uuid,
    pub name: String,
    pub org_id: Uuid,
    pub total: i64,
}

/// Orders totals for a ranking: the most points first, ties by member id (deterministic: the
/// same order from the database and from Redis).
pub fn rank(mut totals: Vec<(Uuid, String, Uuid, i64)>) -> Vec<Ranked> {
    totals.sort_by(|a, b| b.3.cmp(&a.3).then(a.0.cmp(&b.0)));
    totals
        .into_iter()
        .enumerate()
        .map(|(i, (member_id, name, org_id, total))| Ranked {
            position: i + 1,
            member_id,
            name,
            org_id,
            total,
        })
        .collect()
}

/// Where a ranking was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RankSource {
    Database,
    Redis,
}

/// `getRanking`: from Redis when it holds the ranking built from the ledger as it is now (its
/// mark is the count of entries appended inside the org over the period), else from the
/// database, which then refreshes Redis; the same lines either way, and Redis down only means
/// the database answers. Without Redis, the database ranks and cuts to `limit` itself.
pub async fn ranking_cached(
    db: &yunlian_infra::Db,
    redis: Option<(&yunlian_infra::redis::Redis, &str)>,
    p: &Principal,
    org: Uuid,
    period: Period,
    limit: usize,
) -> Result<(Vec<Ranked>, RankSource), Error> {
    use yunlian_infra::db::ScopedFutureExt;
    let months = period.months();
    let (p2, m2, marked) = (p.clone(), months.clone(), redis.is_some());
    let (path, mark) = db
        .read(move |mut c| {
            async move {
                let o = db::orgs::get(&mut c, org).await?.ok_or(Error::NotFound)?;
                authorize(&p2, Action::ReadOrg, &o.path)?;
                let mark = match marked {
                    true => Some(db::points::mark(&mut c, &o.path, &m2).await?),
                    false => None,
                };
                Ok((o.path, mark))
            }
            .scope_boxed()
        })
        .await?;
    let (Some((r, prefix)), Some(mark)) = (redis, mark) else {
        let lines = db
            .snapshot(move |mut c| {
                async move { db::points::top(&mut c, &path, &months, limit as i64).await }
                    .scope_boxed()
            })
            .await?;
        return Ok((rank(lines), RankSource::Database));
    };
    let key = format!("{prefix}rank:{org}:{period}");
    match r.rank_read(&key, limit).await {
        Ok(Some((m, lines))) if m == mark => {
            let items = lines
                .into_iter()
                .enumerate()
                .filter_map(|(i, (member, total, who))| {
                    let (name, branch) = who.split_once('\t')?;
                    Some(Ranked {
                        position: i + 1,
                        member_id: member.parse().ok()?,
                        name: name.to_string(),
                        org_id: branch.parse().ok()?,
                        total,
                    })
                })
                .collect();
            return Ok((items, RankSource::Redis));
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "rankings: redis unavailable, reading the ledger"),
    }
    let (mark, mut items) = from_ledger(db, path, months).await?;
    if let Err(e) = store_ranking(r, &key, &mark, &items).await {
        tracing::warn!(error = %e, "rankings: could not refresh redis");
    }
    items.truncate(limit);
    Ok((items, RankSource::Database))
}

/// A ranking computed from the ledger, with its mark; the mark and the totals come from one
/// snapshot, so what Redis keeps is labelled with exactly the ledger it was computed from.
async fn from_ledger(
    db: &yunlian_infra::Db,
    path: String,
    months: Vec<String>,
) -> Result<(String, Vec<Ranked>), Error> {
    use yunlian_infra::db::ScopedFutureExt;
    let (mark, totals) = db
        .snapshot(move |mut c| {
            async move {
                let mark = db::points::mark(&mut c, &path, &months).await?;
                Ok((mark, db::points::totals(&mut c, &path, &months).await?))
            }
            .scope_boxed()
        })
        .await?;
    Ok((mark, rank(totals)))
}

async fn store_ranking(
    r: &yunlian_infra::redis::Redis,
    key: &str,
    mark: &str,
    items: &[Ranked],
) -> Result<(), Error> {
    let lines: Vec<(String, i64, String)> = items
        .iter()
        .map(|i| {
            (
                i.member_id.to_string(),
                i.total,
                format!("{}\t{}", i.name, i.org_id),
            )
        })
        .collect();
    r.rank_replace(key, mark, &lines).await
}

/// The rankings job: every org above the groups, for the month, quarter and year `now` falls
/// in, is rebuilt in Redis from the ledger where what Redis holds is missing or older than the
/// ledger. Redis is never the source of truth, so this only saves a reader the rebuild.
/// Returns how many rankings it rebuilt.
pub async fn rebuild_rankings(
    db: &yunlian_infra::Db,
    r: &yunlian_infra::redis::Redis,
    prefix: &str,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    use yunlian_infra::db::ScopedFutureExt;
    let month = Period::parse(&yunlian_domain::points::month_of(now))
        .ok_or_else(|| Error::Internal("month of now".into()))?;
    let Period::Month(y, m) = month else {
        return Err(Error::Internal("month of now".into()));
    };
    let periods = [month, Period::Quarter(y, m.div_ceil(3)), Period::Year(y)];
    let (mut after, mut rebuilt) = (None, 0);
    loop {
        let orgs = db
            .read(move |mut c| {
                async move {
                    let Some(root) = db::orgs::root(&mut c).await? else {
                        return Ok(Vec::new());
                    };
                    let f = db::orgs::OrgFilter {
                        roots: vec![root.path],
                        after,
                        limit: 500,
                        ..Default::default()
                    };
                    db::orgs::list(&mut c, &f).await
                }
                .scope_boxed()
            })
            .await?;
        let Some(last) = orgs.last() else {
            return Ok(rebuilt);
        };
        after = Some(last.id);
        for o in orgs.iter().filter(|o| o.kind != OrgKind::Group) {
            for period in periods {
                let key = format!("{prefix}rank:{}:{period}", o.id);
                let (path, months) = (o.path.clone(), period.months());
                let current = db
                    .read(move |mut c| {
                        async move { db::points::mark(&mut c, &path, &months).await }.scope_boxed()
                    })
                    .await?;
                if r.rank_mark(&key).await?.as_deref() == Some(current.as_str()) {
                    continue;
                }
                let (mark, items) = from_ledger(db, o.path.clone(), period.months()).await?;
                store_ranking(r, &key, &mark, &items).await?;
                rebuilt += 1;
            }
        }
    }
}

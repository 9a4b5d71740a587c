//! Warnings: the scan that evaluates every branch's calendar, cases, learning and notices (a
//! job run once across replicas), the consumer that turns absences and yellow lists into
//! member warnings, and what recipients do: list, read, acknowledge, answer, verify, return.
//! Every raise and resolution commits with its event, which the relay then pushes.

use super::authorize;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;
use yunlian_domain::attendance::FinalStatus;
use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::events::{DomainEvent, WarningRaised, WarningResolved};
use yunlian_domain::org::{Org, OrgKind};
use yunlian_domain::points::month_of;
use yunlian_domain::settings::Settings;
use yunlian_domain::warnings::{
    calendar, evaluate, reconcile, rules::absence_key, CaseFact, Facts, Keeper, LearningFact,
    Level, OpenWarning, Raise, Recipient, RectAction, Rectification, Requirement, Rule, Warning,
    WarningError,
};
use yunlian_domain::Error;
use yunlian_infra::db::{self, Conn, ScopedFutureExt};
use yunlian_infra::Db;

/// The consumer name in `consumed`, and the topics it reads.
pub const CONSUMER: &str = "warnings";
pub const TOPICS: &[&str] = &["attendance.final_status", "list.published"];

/// How far back the scan looks for resolved warnings that may hold again.
const REOPEN_WINDOW_DAYS: i64 = 400;

/// The path of a committee recipient's org, carried in the events for delivery.
async fn committee_path(c: &mut Conn<'_>, r: Recipient) -> Result<Option<String>, Error> {
    match r {
        Recipient::Member(_) => Ok(None),
        Recipient::Committee(o) => Ok(db::orgs::get(c, o).await?.map(|o| o.path)),
    }
}

async fn raised(c: &mut Conn<'_>, w: &Warning, now: DateTime<Utc>) -> Result<(), Error> {
    let committee_path = committee_path(c, w.recipient).await?;
    let e = DomainEvent::WarningRaised(WarningRaised {
        committee_path,
        warning_id: w.id,
        org_id: w.org_id,
        rule: w.rule,
        level: w.level,
        recipient: w.recipient,
        at: now,
    });
    db::outbox::append(c, &e, now).await.map(|_| ())
}

async fn resolved(
    c: &mut Conn<'_>,
    w: &Warning,
    why: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let committee_path = committee_path(c, w.recipient).await?;
    let e = DomainEvent::WarningResolved(WarningResolved {
        committee_path,
        warning_id: w.id,
        org_id: w.org_id,
        rule: w.rule,
        recipient: w.recipient,
        resolution: why.to_string(),
        at: now,
    });
    db::outbox::append(c, &e, now).await.map(|_| ())
}

/// Raises what a rule said holds: stored once under its key (a notice issued with a red
/// meeting warning), or reopened when it had cleared; its event either way. `false` when it
/// was already open.
async fn raise(c: &mut Conn<'_>, r: &Raise, now: DateTime<Utc>) -> Result<bool, Error> {
    let key = r.dedup_key();
    if let Some(mut w) = db::warnings::by_key(c, &key).await? {
        if w.resolved_at.is_none() {
            return Ok(false);
        }
        w.level = r.level;
        w.detail = r.detail.clone();
        if !db::warnings::reopen(c, &w, now).await? {
            return Ok(false);
        }
        raised(c, &w, now).await?;
        return Ok(true);
    }
    let w = Warning::raised(r, now);
    if !db::warnings::insert(c, &w, &key).await? {
        return Ok(false);
    }
    if let Some(due) = r.rectification_due {
        let notice = Rectification::issue(w.id, r.org_id, &r.period, due.max(now), now);
        db::warnings::insert_notice(c, &notice).await?;
    }
    if r.rule == Rule::RectificationOverdue {
        // The notice escalates once per date it misses.
        if let Some(id) = r.detail["rectification_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
        {
            if let Some(mut n) = db::warnings::lock_notice(c, id).await? {
                n.escalated_at = Some(now);
                db::warnings::update_notice(c, &n).await?;
            }
        }
    }
    raised(c, &w, now).await?;
    Ok(true)
}

async fn resolve_one(
    c: &mut Conn<'_>,
    id: Uuid,
    why: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let Some((w, _)) = db::warnings::get(c, id).await? else {
        return Ok(false);
    };
    if !db::warnings::resolve(c, &w, why, now).await? {
        return Ok(false);
    }
    resolved(c, &w, why, now).await?;
    Ok(true)
}

/// What one scan found, for the job's log and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    pub branches: usize,
    pub raised: usize,
    pub resolved: usize,
}

/// The facts of every branch, read in one snapshot.
struct World {
    branches: Vec<Org>,
    /// A keeper's branch, for every branch and party group.
    keepers: HashMap<Uuid, Vec<Keeper>>,
    meetings: Vec<yunlian_domain::warnings::MeetingFact>,
    cases: HashMap<Uuid, Vec<CaseFact>>,
    notices: HashMap<Uuid, Vec<Rectification>>,
    stored: HashMap<Uuid, Vec<OpenWarning>>,
    /// What each org overrides of the settings (resolved along each branch's path).
    settings: HashMap<Uuid, yunlian_domain::settings::Overrides>,
}

/// Every branch, and the orgs that keep each one's cadence (the branch and its party groups).
pub struct Keepers {
    pub branches: Vec<Org>,
    pub of: HashMap<Uuid, Vec<Keeper>>,
}

impl Keepers {
    /// The branch each keeper belongs to (a group's branch, a branch itself).
    pub fn branch_of(&self) -> HashMap<Uuid, Uuid> {
        self.of
            .values()
            .flatten()
            .map(|k| (k.org_id, k.branch_id))
            .collect()
    }
}

/// The branches (and their groups) inside `within` (every one for `/`).
pub async fn keepers(c: &mut Conn<'_>, within: &str) -> Result<Keepers, Error> {
    let orgs = db::orgs::of_kinds(
        c,
        &[OrgKind::Branch, OrgKind::GeneralBranch, OrgKind::Group],
    )
    .await?;
    let mut of: HashMap<Uuid, Vec<Keeper>> = HashMap::new();
    let mut branches = Vec::new();
    for o in orgs.iter().filter(|o| o.path.starts_with(within)) {
        let (branch, is_group) = match o.kind {
            OrgKind::Group => match o.parent_id {
                Some(p) => (p, true),
                None => continue,
            },
            _ => {
                branches.push(o.clone());
                (o.id, false)
            }
        };
        of.entry(branch).or_default().push(Keeper {
            org_id: o.id,
            branch_id: branch,
            is_group,
            created_at: o.created_at,
        });
    }
    Ok(Keepers { branches, of })
}

async fn load_world(c: &mut Conn<'_>, now: DateTime<Utc>) -> Result<World, Error> {
    let Keepers {
        branches,
        of: keepers,
    } = keepers(c, "/").await?;
    // As far back as the calendar looks: two years before the current one.
    let since = now - TimeDelta::days(366 * 3 + 31);
    let meetings = db::meetings::facts_since(c, since).await?;
    let mut cases: HashMap<Uuid, Vec<CaseFact>> = HashMap::new();
    for (org, f) in db::cases::assigned_open(c).await? {
        cases.entry(org).or_default().push(f);
    }
    let notices = db::warnings::owed(c).await?;
    let stored = db::warnings::scanned(c, now - TimeDelta::days(REOPEN_WINDOW_DAYS)).await?;
    let mut ids: Vec<Uuid> = Vec::new();
    for b in &branches {
        ids.extend(yunlian_domain::org::path_ids(&b.path));
    }
    ids.sort();
    ids.dedup();
    let settings = db::settings::current(c, &ids)
        .await?
        .into_iter()
        .map(|v| (v.org_id, v.overrides))
        .collect();
    Ok(World {
        settings,
        branches,
        keepers,
        meetings,
        cases,
        notices,
        stored,
    })
}

/// The scan: every branch's warnings evaluated at `now` and reconciled with what is stored,
/// each branch in its own transaction. Run by the `warnings` job under its lease.
pub async fn scan(db: &Db, root: Settings, now: DateTime<Utc>) -> Result<Scanned, Error> {
    let world = db
        .snapshot(move |mut c| async move { load_world(&mut c, now).await }.scope_boxed())
        .await?;
    let quarters = last_quarter(db, root, now).await?;
    let mut out = Scanned::default();
    for b in &world.branches {
        out.branches += 1;
        let keepers = world.keepers.get(&b.id).cloned().unwrap_or_default();
        let orgs: Vec<Uuid> = keepers.iter().map(|k| k.org_id).collect();
        let meetings: Vec<_> = world
            .meetings
            .iter()
            .filter(|m| orgs.contains(&m.org_id))
            .cloned()
            .collect();
        let stored: Vec<OpenWarning> = orgs
            .iter()
            .flat_map(|o| world.stored.get(o).cloned().unwrap_or_default())
            .collect();
        let chain: Vec<yunlian_domain::settings::Overrides> =
            yunlian_domain::org::path_ids(&b.path)
                .iter()
                .filter_map(|id| world.settings.get(id).copied())
                .collect();
        let s = yunlian_domain::settings::resolve(root, &chain);
        let (branch, path) = (b.id, b.path.clone());
        let (learning, learning_minimum) = if learning_due(&s, now) {
            db.read(move |mut c| {
                async move { learning(&mut c, branch, &path, now).await }.scope_boxed()
            })
            .await?
        } else {
            (Vec::new(), 0)
        };
        let facts = Facts {
            branch_id: b.id,
            parent_id: b.parent_id,
            requirements: calendar(&keepers, &meetings, &s, now),
            cases: world.cases.get(&b.id).cloned().unwrap_or_default(),
            learning,
            learning_minimum,
            rectifications: world.notices.get(&b.id).cloned().unwrap_or_default(),
            quarter: quarters.get(&b.id).cloned(),
        };
        // Decided on the snapshot; written only where something changed. Every write below is
        // conditional (a key raised once, a resolution or reopening only from the state read),
        // so a change made since the snapshot is never undone.
        let changes = reconcile(&stored, evaluate(&facts, &s, now));
        if changes.raise.is_empty() && changes.reopen.is_empty() && changes.resolve.is_empty() {
            continue;
        }
        let changes = std::sync::Arc::new(changes);
        let (raised_n, resolved_n) = db
            .write(move |mut c| {
                let changes = changes.clone();
                async move {
                    let mut n = (0, 0);
                    for r in changes
                        .raise
                        .iter()
                        .chain(changes.reopen.iter().map(|(_, r)| r))
                    {
                        if r.rule == Rule::RectificationOverdue
                            && !still_owed(&mut c, r, now).await?
                        {
                            continue;
                        }
                        n.0 += usize::from(raise(&mut c, r, now).await?);
                    }
                    for (id, why) in &changes.resolve {
                        n.1 += usize::from(resolve_one(&mut c, *id, why, now).await?);
                    }
                    Ok(n)
                }
                .scope_boxed()
            })
            .await?;
        out.raised += raised_n;
        out.resolved += resolved_n;
    }
    Ok(out)
}

/// Each branch's points for the quarter that ended last, in the days after it ended (when its
/// warning is raised, once).
async fn last_quarter(
    db: &Db,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<HashMap<Uuid, (String, i64, usize)>, Error> {
    use yunlian_domain::attendance::Cadence;
    use yunlian_domain::warnings::calendar::{bounds, period_of};
    let q = period_of(Cadence::Quarter, now).previous();
    let (_, end) = bounds(q);
    if now - end > TimeDelta::days(root.warn_due_within_days) {
        return Ok(HashMap::new());
    }
    let yunlian_domain::points::Period::Quarter(year, _) = q else {
        return Ok(HashMap::new());
    };
    let key = q.to_string();
    db.snapshot(move |mut c| {
        let key = key.clone();
        async move {
            let Some(top) = db::orgs::root(&mut c).await? else {
                return Ok(HashMap::new());
            };
            let all = super::assessment::assess_within(&mut c, &top, year, root, end).await?;
            Ok(all
                .into_iter()
                .filter_map(|a| {
                    let t = a.quarters.iter().find(|x| x.quarter == key)?.total;
                    Some((a.org_id, (key.clone(), t, a.quarters_behind)))
                })
                .collect())
        }
        .scope_boxed()
    })
    .await
}

/// A notice answered since the snapshot no longer escalates.
async fn still_owed(c: &mut Conn<'_>, r: &Raise, now: DateTime<Utc>) -> Result<bool, Error> {
    let Some(id) = r.detail["rectification_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
    else {
        return Ok(false);
    };
    Ok(db::warnings::lock_notice(c, id)
        .await?
        .is_some_and(|n| n.is_overdue(now)))
}

/// In the month's last days, when the learning rule can fire.
fn learning_due(s: &Settings, now: DateTime<Utc>) -> bool {
    use yunlian_domain::attendance::Cadence;
    use yunlian_domain::warnings::calendar::{bounds, period_of};
    now >= bounds(period_of(Cadence::Month, now)).1 - TimeDelta::days(s.warn_due_within_days)
}

/// Each member's learning points this month, where the township sets a minimum (the scan
/// asks only when [`learning_due`]).
async fn learning(
    c: &mut Conn<'_>,
    branch: Uuid,
    path: &str,
    now: DateTime<Utc>,
) -> Result<(Vec<LearningFact>, i64), Error> {
    use yunlian_domain::attendance::Cadence;
    use yunlian_domain::warnings::calendar::period_of;
    let month = period_of(Cadence::Month, now);
    let (rules, _) = super::points::effective(c, path).await?;
    let minimum = rules.lists.learning_min_points;
    if minimum <= 0 {
        return Ok((Vec::new(), 0));
    }
    let facts = db::lists::member_facts(c, branch, &[month.to_string()]).await?;
    Ok((
        facts
            .into_iter()
            .map(|f| LearningFact {
                member_id: f.member_id,
                points: f.learning_points,
            })
            .collect(),
        minimum,
    ))
}

/// The consumer's handling of one event, in the transaction that recorded it as handled.
async fn on_event(c: &mut Conn<'_>, e: &DomainEvent, now: DateTime<Utc>) -> Result<usize, Error> {
    match e {
        DomainEvent::FinalStatusSet(f) => {
            let period = month_of(f.starts_at);
            let key = absence_key(f.meeting_id, f.member_id, &period);
            if f.status == FinalStatus::Absent {
                // The member's branch (a group meeting's member still belongs to the branch).
                let org = match db::members::get(c, f.member_id).await? {
                    Some((m, _)) => m.org_id,
                    None => return Ok(0),
                };
                let r = Raise {
                    rule: Rule::MemberAbsent,
                    level: Level::Yellow,
                    recipient: Recipient::Member(f.member_id),
                    org_id: org,
                    subject: format!("meeting:{}:member:{}", f.meeting_id, f.member_id),
                    period,
                    detail: serde_json::json!({
                        "meeting_id": f.meeting_id,
                        "meeting_type": f.meeting_type,
                        "starts_at": f.starts_at,
                    }),
                    rectification_due: None,
                };
                Ok(usize::from(raise(c, &r, now).await?))
            } else if f.previous == Some(FinalStatus::Absent) {
                match db::warnings::by_key(c, &key).await? {
                    Some(w) if w.resolved_at.is_none() => Ok(usize::from(
                        resolve_one(c, w.id, "status_changed", now).await?,
                    )),
                    _ => Ok(0),
                }
            } else {
                Ok(0)
            }
        }
        DomainEvent::ListPublished(l) => {
            let mut n = 0;
            for m in &l.yellow {
                let r = Raise {
                    rule: Rule::MemberYellowListed,
                    level: Level::Yellow,
                    recipient: Recipient::Member(*m),
                    org_id: l.org_id,
                    subject: format!("list:{}:member:{m}", l.list_id),
                    period: l.period.clone(),
                    detail: serde_json::json!({ "list_id": l.list_id, "period": l.period }),
                    rectification_due: None,
                };
                n += usize::from(raise(c, &r, now).await?);
            }
            Ok(n)
        }
        _ => Ok(0),
    }
}

/// The consumer's round (see [`super::consume`]).
pub async fn consume(db: &Db, now: DateTime<Utc>) -> Result<usize, Error> {
    super::consume(
        db,
        CONSUMER,
        TOPICS,
        |c, e, _, now| async move { on_event(c, &e, now).await }.scope_boxed(),
        now,
    )
    .await
}

/// May `p` act on this warning as its recipient? Not found when they cannot see its org at
/// all, `warning_not_yours` when they can but it is addressed to someone else.
async fn as_recipient(c: &mut Conn<'_>, p: &Principal, id: Uuid) -> Result<Warning, Error> {
    let (w, path) = db::warnings::get(c, id).await?.ok_or(Error::NotFound)?;
    let mine = match w.recipient {
        Recipient::Member(m) => m == p.member_id,
        Recipient::Committee(org) => match db::orgs::get(c, org).await? {
            Some(o) => p.can(Action::ReadMembers, &o.path),
            None => false,
        },
    };
    if mine {
        Ok(w)
    } else if p.sees(&path) {
        Err(WarningError::NotRecipient.into())
    } else {
        Err(Error::NotFound)
    }
}

/// `getWarning`.
pub async fn get(c: &mut Conn<'_>, p: &Principal, id: Uuid) -> Result<Warning, Error> {
    as_recipient(c, p, id).await
}

/// `markWarningRead` / `acknowledgeWarning`: the first read (or acknowledgement) is recorded,
/// later ones change nothing.
pub async fn mark(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    acknowledge: bool,
    now: DateTime<Utc>,
) -> Result<Warning, Error> {
    let w = as_recipient(c, p, id).await?;
    db::warnings::mark(c, &w, acknowledge, p.member_id, now).await?;
    db::warnings::get(c, id)
        .await?
        .map(|(w, _)| w)
        .ok_or(Error::NotFound)
}

/// What `listWarnings` asks.
pub struct ListQuery {
    /// Warnings about orgs inside this one, addressed to committees the caller sits on or
    /// oversees; without it, the caller's own (and their committees').
    pub org_id: Option<Uuid>,
    pub open_only: bool,
    pub level: Option<Level>,
    pub rule: Option<Rule>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// `listWarnings`: what is addressed to the caller, or to the committees they sit on or
/// oversee.
pub async fn list(c: &mut Conn<'_>, p: &Principal, q: ListQuery) -> Result<Vec<Warning>, Error> {
    let within = match q.org_id {
        Some(id) => {
            let o = db::orgs::get(c, id).await?.ok_or(Error::NotFound)?;
            authorize(p, Action::ReadOrg, &o.path)?;
            Some(o.path)
        }
        None => None,
    };
    let f = db::warnings::Filter {
        member: Some(p.member_id),
        committees_within: p.member_read_roots(),
        within,
        open_only: q.open_only,
        level: q.level,
        rule: q.rule,
        after: q.after,
        limit: q.limit,
    };
    db::warnings::list(c, &f).await
}

/// The notice of a warning, locked, with the warning and the path of the branch that answers.
async fn notice(c: &mut Conn<'_>, warning: Uuid) -> Result<(Warning, Rectification, Org), Error> {
    let (w, _) = db::warnings::get(c, warning)
        .await?
        .ok_or(Error::NotFound)?;
    let n = w.rectification.as_ref().ok_or(Error::NotFound)?;
    let n = db::warnings::lock_notice(c, n.id)
        .await?
        .ok_or(Error::NotFound)?;
    let branch = db::orgs::get(c, n.org_id).await?.ok_or(Error::NotFound)?;
    Ok((w, n, branch))
}

/// `answerRectification`: the branch's committee says what was done, with images.
pub async fn answer(
    c: &mut Conn<'_>,
    p: &Principal,
    warning: Uuid,
    text: &str,
    attachments: Vec<Uuid>,
    now: DateTime<Utc>,
) -> Result<Warning, Error> {
    let (w, n, branch) = notice(c, warning).await?;
    authorize(p, Action::ManageMeetings, &branch.path)?;
    let text = yunlian_domain::moments::block("answer", text, 2000)?;
    if attachments.len() > 9 {
        return Err(Error::invalid("attachments", "too_many_images"));
    }
    for a in &attachments {
        let found = db::moments::get_image(c, *a).await?;
        if found.is_none_or(|(i, _)| i.org_id != branch.id) {
            return Err(Error::invalid("attachments", "image_not_found"));
        }
    }
    let after = n.transition(RectAction::Answer { text, attachments }, p.member_id, now)?;
    db::warnings::update_notice(c, &after).await?;
    touch(c, &w, now).await
}

/// `verifyRectification` / `returnRectification`: the org above decides on the answer; a
/// verified notice resolves its warning.
pub async fn decide(
    c: &mut Conn<'_>,
    p: &Principal,
    warning: Uuid,
    verify: Option<String>,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<Warning, Error> {
    let (w, n, branch) = notice(c, warning).await?;
    authorize(p, Action::ReadOrg, &branch.path)?;
    let above = match branch.parent_id {
        Some(id) => db::orgs::get(c, id).await?.ok_or(Error::NotFound)?,
        None => return Err(Error::Forbidden("forbidden")),
    };
    if !p.can(Action::ManageMeetings, &above.path) {
        return Err(Error::Forbidden("rectification_decided_above"));
    }
    let action = match verify {
        None => RectAction::Verify,
        Some(reason) => {
            let reason = yunlian_domain::moments::block("reason", &reason, 500)?;
            let s = super::settings::effective(c, &branch.path, root).await?;
            RectAction::Return {
                reason,
                days: s.rectification_days,
            }
        }
    };
    let verified = action == RectAction::Verify;
    let after = n.transition(action, p.member_id, now)?;
    db::warnings::update_notice(c, &after).await?;
    let settled = db::warnings::SETTLED;
    if verified && db::warnings::resolve(c, &w, settled, now).await? {
        resolved(c, &w, settled, now).await?;
    }
    touch(c, &w, now).await
}

/// The warning as it is now, its recipients' phones told of the change.
async fn touch(c: &mut Conn<'_>, w: &Warning, now: DateTime<Utc>) -> Result<Warning, Error> {
    db::warnings::mark_changed(c, w, now).await?;
    db::warnings::get(c, w.id)
        .await?
        .map(|(w, _)| w)
        .ok_or(Error::NotFound)
}

/// A branch's (or a township's) compliance calendar, as `getCompliance` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Compliance {
    pub org_id: Uuid,
    pub at: DateTime<Utc>,
    pub branches: Vec<BranchCompliance>,
    /// Over every branch: requirements held, overdue, and in all (ended periods and running).
    pub held: usize,
    pub overdue: usize,
    pub total: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BranchCompliance {
    pub org_id: Uuid,
    pub name: String,
    pub held: usize,
    pub overdue: usize,
    pub requirements: Vec<Requirement>,
}

/// `getCompliance`: the calendar of every branch inside the org (the org itself when it is one).
pub async fn compliance(
    c: &mut Conn<'_>,
    p: &Principal,
    org: Uuid,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<Compliance, Error> {
    let o = db::orgs::get(c, org).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ReadMembers, &o.path)?;
    let world = keepers(c, &o.path).await?;
    let since = now - TimeDelta::days(366 * 3 + 31);
    let meetings = db::meetings::facts_since(c, since).await?;
    let mut branches = Vec::new();
    for b in &world.branches {
        let keepers = world.of.get(&b.id).cloned().unwrap_or_default();
        let s = super::settings::effective(c, &b.path, root).await?;
        let requirements = calendar(&keepers, &meetings, &s, now);
        let count = |st| requirements.iter().filter(|r| r.standing == st).count();
        branches.push(BranchCompliance {
            org_id: b.id,
            name: b.name.clone(),
            held: count(yunlian_domain::warnings::Standing::Held),
            overdue: count(yunlian_domain::warnings::Standing::Overdue),
            requirements,
        });
    }
    Ok(Compliance {
        org_id: o.id,
        at: now,
        held: branches.iter().map(|b| b.held).sum(),
        overdue: branches.iter().map(|b| b.overdue).sum(),
        total: branches.iter().map(|b| b.requirements.len()).sum(),
        branches,
    })
}

/// The disk job's round: under `low` free bytes on the data directory, one red warning a day
/// to the root's committee (the township's administrators) with the figures; once space is
/// back, the open ones resolve (`cleared`).
pub async fn check_disk(
    store: &Db,
    dir: &std::path::Path,
    low: u64,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let Ok(free) = yunlian_infra::disk::free_bytes(dir) else {
        return Ok(0);
    };
    metrics::gauge!("yunlian_disk_free_bytes").set(free as f64);
    let subject = "disk:data_dir";
    let today = now.date_naive().to_string();
    let yesterday = (now - chrono::TimeDelta::days(1)).date_naive().to_string();
    store
        .write(move |mut c| {
            let (today, yesterday) = (today.clone(), yesterday.clone());
            async move {
                let Some(root) = db::orgs::root(&mut c).await? else {
                    return Ok(0);
                };
                if free < low {
                    let r = Raise {
                        rule: Rule::DiskLow,
                        level: Level::Red,
                        recipient: Recipient::Committee(root.id),
                        org_id: root.id,
                        subject: subject.into(),
                        period: today,
                        detail: serde_json::json!({
                            "free_bytes": free,
                            "threshold_bytes": low,
                        }),
                        rectification_due: None,
                    };
                    return Ok(usize::from(raise(&mut c, &r, now).await?));
                }
                let mut n = 0;
                for period in [today, yesterday] {
                    let key = yunlian_domain::warnings::dedup_key(Rule::DiskLow, subject, &period);
                    if let Some(w) = db::warnings::by_key(&mut c, &key).await? {
                        if w.resolved_at.is_none() {
                            n += usize::from(resolve_one(&mut c, w.id, "cleared", now).await?);
                        }
                    }
                }
                Ok(n)
            }
            .scope_boxed()
        })
        .await
}

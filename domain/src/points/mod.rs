//! The points ledger (党员量化积分制): township rules turn what happened (a final status at a
//! meeting, a relayed suggestion accepted and resolved, a confirmed volunteer service, a
//! violation entered by hand) into entries. The ledger keeps the rules accounting systems
//! agree on: entries are never edited; one entry per idempotency key; a mistake is undone by a
//! reversing entry; an entry that needs approval is pending until a second entry posts or
//! voids it, once, and it voids itself when it times out; balances are sums of entries.

mod lists;
pub use lists::*;

use crate::attendance::FinalStatus;
use crate::error::FieldError;
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What an entry scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    OnTime,
    Late,
    Video,
    Excused,
    Absent,
    LearningCompleted,
    QuizAllCorrect,
    Volunteer,
    SuggestionAccepted,
    CaseResolved,
    Violation,
    Admonition,
}

impl RuleKind {
    pub const ALL: [RuleKind; 12] = [
        RuleKind::OnTime,
        RuleKind::Late,
        RuleKind::Video,
        RuleKind::Excused,
        RuleKind::Absent,
        RuleKind::LearningCompleted,
        RuleKind::QuizAllCorrect,
        RuleKind::Volunteer,
        RuleKind::SuggestionAccepted,
        RuleKind::CaseResolved,
        RuleKind::Violation,
        RuleKind::Admonition,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::OnTime => "on_time",
            RuleKind::Late => "late",
            RuleKind::Video => "video",
            RuleKind::Excused => "excused",
            RuleKind::Absent => "absent",
            RuleKind::LearningCompleted => "learning_completed",
            RuleKind::QuizAllCorrect => "quiz_all_correct",
            RuleKind::Volunteer => "volunteer",
            RuleKind::SuggestionAccepted => "suggestion_accepted",
            RuleKind::CaseResolved => "case_resolved",
            RuleKind::Violation => "violation",
            RuleKind::Admonition => "admonition",
        }
    }

    pub fn parse(s: &str) -> Option<RuleKind> {
        RuleKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The rule a final status at a meeting scores under.
    pub fn for_attendance(s: FinalStatus) -> RuleKind {
        match s {
            FinalStatus::Present => RuleKind::OnTime,
            FinalStatus::Late => RuleKind::Late,
            FinalStatus::Video => RuleKind::Video,
            FinalStatus::Excused => RuleKind::Excused,
            FinalStatus::Absent => RuleKind::Absent,
        }
    }
}

/// A rule: its delta, and the most its entries may add up to in a day, a month, a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub delta: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_day: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_month: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_year: Option<i64>,
}

impl Rule {
    const fn of(delta: i64) -> Rule {
        Rule {
            delta,
            cap_day: None,
            cap_month: None,
            cap_year: None,
        }
    }
}

/// A township's rules, whole: a township that sets them sets every one (an entry names the
/// version that made it, and a version means one set of rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub rules: BTreeMap<RuleKind, Rule>,
    /// A violation is entered between these (−20 and −5).
    pub violation_min: i64,
    pub violation_max: i64,
    /// A pending entry not posted within this many days voids itself (14).
    pub pending_expiry_days: i64,
    /// How the red and yellow lists are drawn.
    #[serde(default)]
    pub lists: ListRules,
}

impl Default for Rules {
    /// DOMAIN.md's defaults.
    fn default() -> Self {
        use RuleKind::*;
        let mut rules = BTreeMap::new();
        for (k, d) in [
            (OnTime, 2),
            (Late, 1),
            (Video, 2),
            (Excused, 0),
            (Absent, -3),
            (QuizAllCorrect, 2),
            (SuggestionAccepted, 1),
            (CaseResolved, 2),
            (Admonition, -10),
            (Violation, -5),
        ] {
            rules.insert(k, Rule::of(d));
        }
        rules.insert(
            LearningCompleted,
            Rule {
                cap_day: Some(6),
                ..Rule::of(1)
            },
        );
        rules.insert(
            Volunteer,
            Rule {
                cap_month: Some(10),
                ..Rule::of(2)
            },
        );
        Rules {
            rules,
            violation_min: -20,
            violation_max: -5,
            pending_expiry_days: 14,
            lists: ListRules::default(),
        }
    }
}

impl Rules {
    pub fn rule(&self, k: RuleKind) -> Rule {
        self.rules.get(&k).copied().unwrap_or(Rule::of(0))
    }

    /// Every rule set, caps that agree with each other (a day's cap not above the month's, the
    /// month's not above the year's; caps only on rules that add), a violation range below
    /// zero: each field that does not, by its path.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        for k in RuleKind::ALL {
            let Some(r) = self.rules.get(&k) else {
                errs.push(FieldError::new(format!("rules.{}", k.as_str()), "required"));
                continue;
            };
            let at = |f: &str| format!("rules.{}.{f}", k.as_str());
            if !(-100..=100).contains(&r.delta) {
                errs.push(FieldError::new(at("delta"), "out_of_range"));
            }
            let caps = [r.cap_day, r.cap_month, r.cap_year];
            if caps.iter().flatten().any(|c| *c <= 0 || *c > 10_000) {
                errs.push(FieldError::new(at("cap_day"), "out_of_range"));
            }
            if r.delta <= 0 && caps.iter().any(Option::is_some) {
                errs.push(FieldError::new(at("cap_day"), "cap_on_a_deduction"));
            }
            let set: Vec<i64> = caps.iter().flatten().copied().collect();
            if set.windows(2).any(|w| w[0] > w[1]) {
                errs.push(FieldError::new(at("cap_month"), "caps_contradict"));
            }
        }
        if self.rule(RuleKind::Absent).delta > 0 || self.rule(RuleKind::Admonition).delta >= 0 {
            errs.push(FieldError::new("rules.admonition.delta", "must_deduct"));
        }
        if !(self.violation_min <= self.violation_max
            && self.violation_max < 0
            && self.violation_min >= -100)
        {
            errs.push(FieldError::new("violation_min", "caps_contradict"));
        }
        if !(0..=100).contains(&self.lists.red_top) {
            errs.push(FieldError::new("lists.red_top", "out_of_range"));
        }
        if !(0..=1000).contains(&self.lists.learning_min_points) {
            errs.push(FieldError::new("lists.learning_min_points", "out_of_range"));
        }
        if !(1..=90).contains(&self.pending_expiry_days) {
            errs.push(FieldError::new("pending_expiry_days", "out_of_range"));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// What a member has already scored under one rule in the day, month and year of an entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scored {
    pub day: i64,
    pub month: i64,
    pub year: i64,
}

/// The delta an entry may carry under its rule's caps, given what was already scored: a
/// capped rule never takes a member past its cap (the entry is still written, for the
/// record, with what was left: possibly 0).
pub fn capped(rule: &Rule, scored: Scored) -> i64 {
    if rule.delta <= 0 {
        return rule.delta;
    }
    let room = [
        rule.cap_day.map(|c| c - scored.day),
        rule.cap_month.map(|c| c - scored.month),
        rule.cap_year.map(|c| c - scored.year),
    ]
    .into_iter()
    .flatten()
    .min();
    match room {
        Some(r) => rule.delta.min(r.max(0)),
        None => rule.delta,
    }
}

/// A period of points: a month (`2026-12`), a quarter (`2026-Q4`) or a year (`2026`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Month(i32, u32),
    Quarter(i32, u32),
    Year(i32),
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        let (y, rest) = match s.split_once('-') {
            Some((y, r)) => (y.parse::<i32>().ok()?, Some(r)),
            None => (s.parse::<i32>().ok()?, None),
        };
        if !(2000..=2099).contains(&y) {
            return None;
        }
        match rest {
            None => Some(Period::Year(y)),
            Some(r) => match r.strip_prefix('Q') {
                Some(q) => q
                    .parse()
                    .ok()
                    .filter(|q| (1..=4).contains(q))
                    .map(|q| Period::Quarter(y, q)),
                None => r
                    .parse()
                    .ok()
                    .filter(|m| (1..=12).contains(m) && r.len() == 2)
                    .map(|m| Period::Month(y, m)),
            },
        }
    }

    /// The period of the same length just before this one.
    pub fn previous(self) -> Period {
        match self {
            Period::Month(y, 1) => Period::Month(y - 1, 12),
            Period::Month(y, m) => Period::Month(y, m - 1),
            Period::Quarter(y, 1) => Period::Quarter(y - 1, 4),
            Period::Quarter(y, q) => Period::Quarter(y, q - 1),
            Period::Year(y) => Period::Year(y - 1),
        }
    }

    /// The months (`YYYY-MM`) it spans.
    pub fn months(self) -> Vec<String> {
        let (y, from, to) = match self {
            Period::Month(y, m) => (y, m, m),
            Period::Quarter(y, q) => (y, q * 3 - 2, q * 3),
            Period::Year(y) => (y, 1, 12),
        };
        (from..=to).map(|m| format!("{y:04}-{m:02}")).collect()
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Period::Month(y, m) => write!(f, "{y:04}-{m:02}"),
            Period::Quarter(y, q) => write!(f, "{y:04}-Q{q}"),
            Period::Year(y) => write!(f, "{y:04}"),
        }
    }
}

/// The month an instant falls in, as entries are filed (China Standard Time: a meeting on the
/// evening of the 31st belongs to that month in the village).
pub fn month_of(t: DateTime<Utc>) -> String {
    let local = t + TimeDelta::hours(8);
    format!("{:04}-{:02}", local.year(), local.month())
}

/// The day (`YYYY-MM-DD`, China Standard Time) an instant falls in.
pub fn day_of(t: DateTime<Utc>) -> String {
    let local = t + TimeDelta::hours(8);
    format!(
        "{:04}-{:02}-{:02}",
        local.year(),
        local.month(),
        local.day()
    )
}

/// A ledger entry. Never edited: a correction is a reversing entry, a decision on a pending
/// entry is another entry that names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: Uuid,
    pub member_id: Uuid,
    /// The member's branch when it was written.
    pub org_id: Uuid,
    pub delta: i64,
    pub rule: RuleKind,
    /// The rules that made it: `default`, or `<org id>@<version>`.
    pub rule_version: String,
    /// The domain key of what scored (`meeting:<id>:member:<id>`, `case:<id>:accepted`, ...).
    pub source: String,
    /// Unique: a retried or redelivered event cannot score twice.
    pub key: String,
    /// The month it counts in (`YYYY-MM`).
    pub period: String,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub occurred_at: DateTime<Utc>,
    /// Waiting for a second committee member (violations, admonitions).
    pub pending: bool,
    /// The entry this one reverses, posts or voids.
    pub resolves: Option<Uuid>,
    /// `reverse`, `post` or `void` when it resolves another.
    pub resolution: Option<String>,
    pub reason: Option<String>,
    /// `None`: the system (a rule applied to an event).
    pub created_by: Option<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
}

/// Why a points action is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PointsError {
    /// Posted or voided already (or voided by its time limit).
    #[error("adjustment_decided")]
    Decided,
    /// The committee member who entered it cannot also post it.
    #[error("own_adjustment")]
    OwnAdjustment,
    #[error("not_pending")]
    NotPending,
}

impl PointsError {
    pub fn code(self) -> &'static str {
        match self {
            PointsError::Decided => "adjustment_decided",
            PointsError::OwnAdjustment => "own_adjustment",
            PointsError::NotPending => "not_pending",
        }
    }
}

impl From<PointsError> for crate::Error {
    fn from(e: PointsError) -> Self {
        match e {
            PointsError::OwnAdjustment => crate::Error::Forbidden(e.code()),
            _ => crate::Error::Conflict(e.code()),
        }
    }
}

/// A hand-entered deduction: a violation within the rules' range, or an admonition (its fixed
/// delta), with a reason.
pub fn adjustment_delta(
    rules: &Rules,
    kind: RuleKind,
    asked: Option<i64>,
) -> Result<i64, FieldError> {
    match kind {
        RuleKind::Violation => match asked {
            Some(d) if (rules.violation_min..=rules.violation_max).contains(&d) => Ok(d),
            Some(_) => Err(FieldError::new("delta", "out_of_range")),
            None => Err(FieldError::new("delta", "required")),
        },
        RuleKind::Admonition => Ok(rules.rule(RuleKind::Admonition).delta),
        _ => Err(FieldError::new("kind", "invalid_value")),
    }
}

/// Whether `actor` may post or void the pending entry `e`, already decided or not.
pub fn may_decide(e: &Entry, decided: bool, actor: Uuid, posting: bool) -> Result<(), PointsError> {
    if !e.pending {
        return Err(PointsError::NotPending);
    }
    if decided {
        return Err(PointsError::Decided);
    }
    if posting && e.created_by == Some(actor) {
        return Err(PointsError::OwnAdjustment);
    }
    Ok(())
}

/// Whether a pending entry has waited past the rules' limit at `now`.
pub fn expired(e: &Entry, rules: &Rules, now: DateTime<Utc>) -> bool {
    e.pending && now > e.created_at + TimeDelta::days(rules.pending_expiry_days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_what_room_there_is() {
        let r = Rules::default();
        let learn = r.rule(RuleKind::LearningCompleted);
        assert_eq!(capped(&learn, Scored::default()), 1);
        assert_eq!(
            capped(
                &learn,
                Scored {
                    day: 5,
                    month: 40,
                    year: 40
                }
            ),
            1
        );
        assert_eq!(
            capped(
                &learn,
                Scored {
                    day: 6,
                    month: 40,
                    year: 40
                }
            ),
            0
        );
        let vol = r.rule(RuleKind::Volunteer);
        assert_eq!(
            capped(
                &vol,
                Scored {
                    day: 0,
                    month: 9,
                    year: 9
                }
            ),
            1
        );
        assert_eq!(
            capped(
                &vol,
                Scored {
                    day: 0,
                    month: 10,
                    year: 10
                }
            ),
            0
        );
        assert_eq!(
            capped(
                &r.rule(RuleKind::Absent),
                Scored {
                    day: 99,
                    month: 99,
                    year: 99
                }
            ),
            -3
        );
    }

    #[test]
    fn the_defaults_hold_and_contradicting_caps_are_refused() {
        assert_eq!(Rules::default().validate(), Ok(()));
        let mut r = Rules::default();
        r.rules.insert(
            RuleKind::Volunteer,
            Rule {
                delta: 2,
                cap_day: Some(20),
                cap_month: Some(10),
                cap_year: None,
            },
        );
        r.rules.insert(
            RuleKind::Absent,
            Rule {
                delta: -3,
                cap_day: Some(3),
                cap_month: None,
                cap_year: None,
            },
        );
        r.rules.remove(&RuleKind::Late);
        let codes: Vec<(String, &str)> = r
            .validate()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect();
        assert!(
            codes.contains(&("rules.volunteer.cap_month".into(), "caps_contradict")),
            "{codes:?}"
        );
        assert!(
            codes.contains(&("rules.absent.cap_day".into(), "cap_on_a_deduction")),
            "{codes:?}"
        );
        assert!(
            codes.contains(&("rules.late".into(), "required")),
            "{codes:?}"
        );
    }

    #[test]
    fn periods_parse_and_span_their_months() {
        assert_eq!(
            Period::parse("2026-12").map(|p| p.months()),
            Some(vec!["2026-12".to_string()])
        );
        assert_eq!(Period::parse("2026-Q4").map(|p| p.months().len()), Some(3));
        assert_eq!(
            Period::parse("2026").map(|p| p.to_string()),
            Some("2026".into())
        );
        for bad in ["2026-13", "2026-Q5", "26", "2026-1", "x"] {
            assert_eq!(Period::parse(bad), None, "{bad}");
        }
        let t: DateTime<Utc> = "2026-11-30T17:00:00Z".parse().unwrap_or_default();
        assert_eq!(month_of(t), "2026-12", "01:00 on 1 December in the village");
        for (p, before) in [
            ("2026-01", "2025-12"),
            ("2026-12", "2026-11"),
            ("2026-Q1", "2025-Q4"),
            ("2026-Q3", "2026-Q2"),
            ("2026", "2025"),
        ] {
            let prev = Period::parse(p).map(|p| p.previous().to_string());
            assert_eq!(prev.as_deref(), Some(before), "{p}");
        }
    }

    #[test]
    fn a_pending_entry_is_decided_once_and_not_by_its_author() {
        let author = Uuid::now_v7();
        let e = Entry {
            id: Uuid::now_v7(),
            member_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            delta: -10,
            rule: RuleKind::Admonition,
            rule_version: "default".into(),
            source: "adjustment".into(),
            key: "k".into(),
            period: "2026-12".into(),
            occurred_at: DateTime::default(),
            pending: true,
            resolves: None,
            resolution: None,
            reason: Some("无故缺席".into()),
            created_by: Some(author),
            created_at: DateTime::default(),
        };
        assert_eq!(
            may_decide(&e, false, author, true),
            Err(PointsError::OwnAdjustment)
        );
        assert_eq!(
            may_decide(&e, false, author, false),
            Ok(()),
            "the author may withdraw it"
        );
        assert_eq!(may_decide(&e, false, Uuid::now_v7(), true), Ok(()));
        assert_eq!(
            may_decide(&e, true, Uuid::now_v7(), true),
            Err(PointsError::Decided)
        );
        assert!(expired(
            &e,
            &Rules::default(),
            DateTime::default() + TimeDelta::days(15)
        ));
        assert_eq!(
            adjustment_delta(&Rules::default(), RuleKind::Violation, Some(-25)),
            Err(FieldError::new("delta", "out_of_range"))
        );
        assert_eq!(
            adjustment_delta(&Rules::default(), RuleKind::Admonition, None),
            Ok(-10)
        );
    }
}

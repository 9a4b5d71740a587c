//! The warning rules: `evaluate(facts, settings, now)` says which warnings hold for one branch
//! now; `reconcile` compares that with what is stored, so a scan run any number of times raises
//! each warning once and resolves it when its condition clears.

use super::calendar::{bounds, period_of, Requirement, Standing};
use super::{dedup_key, Level, Raise, Recipient, Rectification, Rule};
use crate::attendance::{Cadence, MeetingType};
use crate::settings::Settings;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// An assigned, unresolved case of the branch.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFact {
    pub id: Uuid,
    pub handler_org_id: Uuid,
    pub assignee_id: Option<Uuid>,
    pub due_at: DateTime<Utc>,
}

/// A member's learning points this month.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningFact {
    pub member_id: Uuid,
    pub points: i64,
}

/// Everything the rules read about one branch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    pub branch_id: Uuid,
    /// The org above, which an unanswered rectification escalates to.
    pub parent_id: Option<Uuid>,
    /// The branch's and its groups' calendar.
    pub requirements: Vec<Requirement>,
    pub cases: Vec<CaseFact>,
    /// Each member's learning points this month (loaded near the month's end only).
    pub learning: Vec<LearningFact>,
    /// The month's minimum learning points (the list rules').
    pub learning_minimum: i64,
    /// Its rectification notices still owed an answer.
    pub rectifications: Vec<Rectification>,
    /// The last ended quarter's points, when they are known: (quarter, total, quarters behind
    /// running up to it).
    pub quarter: Option<(String, i64, usize)>,
}

fn type_name(t: MeetingType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The warnings that hold for the branch at `now`.
pub fn evaluate(f: &Facts, s: &Settings, now: DateTime<Utc>) -> Vec<Raise> {
    let mut out = Vec::new();
    let committee = Recipient::Committee(f.branch_id);
    let soon = TimeDelta::days(s.warn_due_within_days);
    let mut previous: HashMap<(Uuid, MeetingType), &Requirement> = HashMap::new();
    for r in &f.requirements {
        let subject = format!("org:{}:{}", r.org_id, type_name(r.meeting_type));
        let detail = json!({
            "meeting_type": r.meeting_type,
            "org_id": r.org_id,
            "period_ends_at": r.ends_at,
        });
        let raise = |rule, level, due| Raise {
            rule,
            level,
            recipient: committee,
            org_id: r.org_id,
            subject: subject.clone(),
            period: r.period.clone(),
            detail: detail.clone(),
            rectification_due: due,
        };
        match r.standing {
            Standing::Open if now >= r.ends_at - soon => {
                out.push(raise(Rule::MeetingDueSoon, Level::Blue, None));
            }
            Standing::Overdue if !r.held_since => {
                out.push(raise(Rule::MeetingOverdue, Level::Yellow, None));
                let before = previous.get(&(r.org_id, r.meeting_type));
                if before.is_some_and(|b| b.standing == Standing::Overdue) {
                    let due = r.ends_at + TimeDelta::days(s.rectification_days);
                    out.push(raise(Rule::MeetingOverdueAgain, Level::Red, Some(due)));
                }
            }
            _ => {}
        }
        previous.insert((r.org_id, r.meeting_type), r);
    }
    for c in &f.cases {
        let period = crate::points::day_of(c.due_at);
        let detail = json!({ "case_id": c.id, "due_at": c.due_at });
        let subject = format!("case:{}", c.id);
        if now >= c.due_at {
            out.push(Raise {
                rule: Rule::CaseOverdue,
                level: Level::Yellow,
                recipient: Recipient::Committee(c.handler_org_id),
                org_id: f.branch_id,
                subject,
                period,
                detail,
                rectification_due: None,
            });
        } else if now >= c.due_at - TimeDelta::hours(s.case_due_soon_hours) {
            out.push(Raise {
                rule: Rule::CaseDueSoon,
                level: Level::Blue,
                recipient: c
                    .assignee_id
                    .map(Recipient::Member)
                    .unwrap_or(Recipient::Committee(c.handler_org_id)),
                org_id: f.branch_id,
                subject,
                period,
                detail,
                rectification_due: None,
            });
        }
    }
    let month = period_of(Cadence::Month, now);
    if now >= bounds(month).1 - soon {
        for l in f.learning.iter().filter(|l| l.points < f.learning_minimum) {
            out.push(Raise {
                rule: Rule::LearningBehind,
                level: Level::Blue,
                recipient: Recipient::Member(l.member_id),
                org_id: f.branch_id,
                subject: format!("member:{}:learning", l.member_id),
                period: month.to_string(),
                detail: json!({ "points": l.points, "minimum": f.learning_minimum }),
                rectification_due: None,
            });
        }
    }
    if let Some((q, total, behind)) = &f.quarter {
        if *total < s.assessment_quarter_min {
            out.push(Raise {
                rule: Rule::AssessmentBelow,
                // 太湖's card: blue, yellow, red for one, two, three quarters behind.
                level: match behind {
                    0 | 1 => Level::Blue,
                    2 => Level::Yellow,
                    _ => Level::Red,
                },
                recipient: committee,
                org_id: f.branch_id,
                subject: format!("org:{}:assessment", f.branch_id),
                period: q.clone(),
                detail: json!({ "total": total, "minimum": s.assessment_quarter_min }),
                rectification_due: None,
            });
        }
    }
    if let Some(above) = f.parent_id {
        for r in f.rectifications.iter().filter(|r| r.is_overdue(now)) {
            out.push(Raise {
                rule: Rule::RectificationOverdue,
                level: Level::Red,
                recipient: Recipient::Committee(above),
                org_id: f.branch_id,
                subject: format!("rectification:{}", r.id),
                period: r.period.clone(),
                detail: json!({ "rectification_id": r.id, "due_at": r.due_at, "branch_id": f.branch_id }),
                rectification_due: None,
            });
        }
    }
    out
}

/// A stored warning of the branch, as the scan compares it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenWarning {
    pub id: Uuid,
    pub dedup_key: String,
    pub rule: Rule,
    pub subject: String,
    pub period: String,
    pub resolved: bool,
    /// Resolved by a person (a verified rectification): final, never reopened by a scan.
    pub settled: bool,
}

/// What a scan changes: warnings to raise (new, or reopened when a resolved one holds again)
/// and open ones to resolve, each with why: `superseded` when a louder warning about the same
/// subject and period took its place, `cleared` otherwise.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub raise: Vec<Raise>,
    pub reopen: Vec<(Uuid, Raise)>,
    pub resolve: Vec<(Uuid, &'static str)>,
}

/// Compares what holds with what is stored (the branch's warnings of scanned rules).
pub fn reconcile(stored: &[OpenWarning], holds: Vec<Raise>) -> Changes {
    let keys: HashSet<String> = holds.iter().map(Raise::dedup_key).collect();
    let about: HashSet<(String, String)> = holds
        .iter()
        .map(|r| (r.subject.clone(), r.period.clone()))
        .collect();
    let by_key: HashMap<&str, &OpenWarning> =
        stored.iter().map(|w| (w.dedup_key.as_str(), w)).collect();
    let mut c = Changes::default();
    for r in holds {
        match by_key.get(r.dedup_key().as_str()) {
            None => c.raise.push(r),
            Some(w) if w.resolved && !w.settled => c.reopen.push((w.id, r)),
            Some(_) => {}
        }
    }
    for w in stored.iter().filter(|w| !w.resolved && w.rule.scanned()) {
        if !keys.contains(&w.dedup_key) {
            let why = if about.contains(&(w.subject.clone(), w.period.clone())) {
                "superseded"
            } else {
                "cleared"
            };
            c.resolve.push((w.id, why));
        }
    }
    c
}

/// The key of the warning an absence raises (and a later change away from absent resolves).
pub fn absence_key(meeting_id: Uuid, member_id: Uuid, period: &str) -> String {
    dedup_key(
        Rule::MemberAbsent,
        &format!("meeting:{meeting_id}:member:{member_id}"),
        period,
    )
}

#[cfg(test)]
mod tests {
    use super::super::calendar::{calendar, Keeper, MeetingFact};
    use super::*;
    use crate::attendance::MeetingStatus;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    fn facts_at(branch: Uuid, meetings: &[MeetingFact], now: DateTime<Utc>) -> Facts {
        let keepers = [Keeper {
            org_id: branch,
            branch_id: branch,
            is_group: false,
            created_at: t("2026-09-30T16:00:00Z"),
        }];
        Facts {
            branch_id: branch,
            parent_id: Some(Uuid::nil()),
            requirements: calendar(&keepers, meetings, &Settings::default(), now),
            ..Default::default()
        }
    }

    fn rules_of(raises: &[Raise], t: &str) -> Vec<(Rule, String)> {
        let mut v: Vec<(Rule, String)> = raises
            .iter()
            .filter(|r| r.subject.ends_with(t))
            .map(|r| (r.rule, r.period.clone()))
            .collect();
        v.sort_by_key(|(r, p)| (p.clone(), r.as_str()));
        v
    }

    #[test]
    fn a_party_day_reminded_then_overdue_then_admonished_and_cleared_by_a_make_up() {
        let b = Uuid::now_v7();
        let s = Settings::default();
        // 20 October: no reminder yet; 25 October (7 days before the month's end): blue.
        let early = evaluate(
            &facts_at(b, &[], t("2026-10-20T00:00:00Z")),
            &s,
            t("2026-10-20T00:00:00Z"),
        );
        assert!(rules_of(&early, "themed_party_day").is_empty());
        let now = t("2026-10-25T00:00:00Z");
        let blue = evaluate(&facts_at(b, &[], now), &s, now);
        assert_eq!(
            rules_of(&blue, "themed_party_day"),
            [(Rule::MeetingDueSoon, "2026-10".to_string())]
        );
        // Planned: the reminder no longer holds.
        let planned = [MeetingFact {
            org_id: b,
            meeting_type: MeetingType::ThemedPartyDay,
            starts_at: t("2026-10-28T01:00:00Z"),
            status: MeetingStatus::Cancelled,
        }];
        assert_eq!(
            rules_of(
                &evaluate(&facts_at(b, &planned, now), &s, now),
                "themed_party_day"
            )
            .len(),
            1
        );
        // November 2nd: October is overdue (yellow). December 2nd: November too: red, with a
        // rectification due ten days after November's end.
        let now = t("2026-11-02T00:00:00Z");
        assert_eq!(
            rules_of(
                &evaluate(&facts_at(b, &[], now), &s, now),
                "themed_party_day"
            ),
            [(Rule::MeetingOverdue, "2026-10".to_string())]
        );
        let now = t("2026-12-02T00:00:00Z");
        let red = evaluate(&facts_at(b, &[], now), &s, now);
        assert_eq!(
            rules_of(&red, "themed_party_day"),
            [
                (Rule::MeetingOverdue, "2026-10".to_string()),
                (Rule::MeetingOverdue, "2026-11".to_string()),
                (Rule::MeetingOverdueAgain, "2026-11".to_string()),
            ]
        );
        let admonition = red.iter().find(|r| r.rule == Rule::MeetingOverdueAgain);
        assert_eq!(
            admonition.and_then(|r| r.rectification_due),
            Some(t("2026-11-30T16:00:00Z") + TimeDelta::days(10))
        );
        // A party day held in December clears all three.
        let held = [MeetingFact {
            org_id: b,
            meeting_type: MeetingType::ThemedPartyDay,
            starts_at: t("2026-12-05T01:00:00Z"),
            status: MeetingStatus::Held,
        }];
        let now = t("2026-12-06T00:00:00Z");
        assert!(rules_of(
            &evaluate(&facts_at(b, &held, now), &s, now),
            "themed_party_day"
        )
        .is_empty());
    }

    #[test]
    fn cases_learning_and_unanswered_notices() {
        let (b, above, m) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let now = t("2026-11-28T00:00:00Z");
        let due = |h| CaseFact {
            id: Uuid::now_v7(),
            handler_org_id: b,
            assignee_id: Some(m),
            due_at: now + TimeDelta::hours(h),
        };
        let mut rect = Rectification::issue(Uuid::now_v7(), b, "2026-10", now, now);
        let f = Facts {
            branch_id: b,
            parent_id: Some(above),
            cases: vec![due(47), due(49), due(-1)],
            learning: vec![
                LearningFact {
                    member_id: m,
                    points: 3,
                },
                LearningFact {
                    member_id: Uuid::now_v7(),
                    points: 4,
                },
            ],
            learning_minimum: 4,
            rectifications: vec![rect.clone()],
            ..Default::default()
        };
        let r = evaluate(&f, &Settings::default(), now);
        let got: Vec<(Rule, Recipient)> = r.iter().map(|r| (r.rule, r.recipient)).collect();
        assert_eq!(
            got,
            [
                (Rule::CaseDueSoon, Recipient::Member(m)),
                (Rule::CaseOverdue, Recipient::Committee(b)),
                (Rule::LearningBehind, Recipient::Member(m)),
                (Rule::RectificationOverdue, Recipient::Committee(above)),
            ]
        );
        rect.state = super::super::RectState::Answered;
        let f = Facts {
            rectifications: vec![rect],
            learning: vec![],
            ..f
        };
        assert!(evaluate(&f, &Settings::default(), now)
            .iter()
            .all(|r| r.rule != Rule::RectificationOverdue));
    }

    #[test]
    fn reconcile_raises_once_reopens_and_resolves_what_cleared() {
        let b = Uuid::now_v7();
        let now = t("2026-10-25T00:00:00Z");
        let s = Settings::default();
        let holds = evaluate(&facts_at(b, &[], now), &s, now);
        let first = reconcile(&[], holds.clone());
        assert_eq!(first.raise.len(), holds.len());
        let stored: Vec<OpenWarning> = first
            .raise
            .iter()
            .map(|r| OpenWarning {
                id: Uuid::now_v7(),
                dedup_key: r.dedup_key(),
                rule: r.rule,
                subject: r.subject.clone(),
                period: r.period.clone(),
                resolved: false,
                settled: false,
            })
            .collect();
        // The same scan again changes nothing.
        assert_eq!(reconcile(&stored, holds.clone()), Changes::default());
        // At the month's end the October reminders give way to the overdue warnings.
        let now = t("2026-11-01T00:00:00Z");
        let later = reconcile(&stored, evaluate(&facts_at(b, &[], now), &s, now));
        let october: Vec<&str> = later
            .resolve
            .iter()
            .filter(|(id, _)| stored.iter().any(|w| w.id == *id && w.period == "2026-10"))
            .map(|(_, why)| *why)
            .collect();
        assert!(!october.is_empty() && october.iter().all(|w| *w == "superseded"));
        // A resolved warning that holds again is reopened, not raised twice.
        let resolved: Vec<OpenWarning> = stored
            .iter()
            .map(|w| OpenWarning {
                resolved: true,
                ..w.clone()
            })
            .collect();
        let again = reconcile(&resolved, holds.clone());
        assert!(again.raise.is_empty());
        assert_eq!(again.reopen.len(), stored.len());
        // ... unless a person settled it (a verified rectification).
        let settled: Vec<OpenWarning> = resolved
            .iter()
            .map(|w| OpenWarning {
                settled: true,
                ..w.clone()
            })
            .collect();
        assert_eq!(reconcile(&settled, holds), Changes::default());
    }
}

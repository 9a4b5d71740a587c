//! The board's figures for a period: what `getCaseStats` answers, from loaded facts.

use super::{Case, CaseState, Category};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// A half-open period `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Period {
    pub fn holds(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CommentCounts {
    pub suggestion: i64,
    pub life_need: i64,
    pub other: i64,
    pub total: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CaseStats {
    pub topics: i64,
    pub comments: CommentCounts,
    /// Cases opened in the period (each suggestion or life need).
    pub cases_opened: i64,
    /// Resolved or declined in the period (a merged duplicate is closed by its survivor).
    pub closed: i64,
    pub resolved: i64,
    pub resolved_on_time: i64,
    pub declined: i64,
    pub merged: i64,
    pub transferred: i64,
    /// Assigned and past due now, whatever the period.
    pub overdue_now: i64,
    /// Median hours from submission to resolution or decline, of the cases closed in the
    /// period; `None` when none was.
    pub median_hours_to_close: Option<f64>,
}

/// What the figures are computed from: each topic's branch and time, each comment's branch,
/// category and time, and the cases.
#[derive(Debug, Clone, Default)]
pub struct BoardFacts {
    pub topics: Vec<(Uuid, DateTime<Utc>)>,
    pub comments: Vec<(Uuid, Category, DateTime<Utc>)>,
    pub cases: Vec<Case>,
}

impl BoardFacts {
    /// The facts of one branch.
    pub fn of_branch(&self, branch: Uuid) -> BoardFacts {
        BoardFacts {
            topics: self
                .topics
                .iter()
                .filter(|t| t.0 == branch)
                .copied()
                .collect(),
            comments: self
                .comments
                .iter()
                .filter(|c| c.0 == branch)
                .copied()
                .collect(),
            cases: self
                .cases
                .iter()
                .filter(|c| c.org_id == branch)
                .cloned()
                .collect(),
        }
    }
}

/// The figures of `period` from `facts`.
pub fn case_stats(period: Period, facts: &BoardFacts, now: DateTime<Utc>) -> CaseStats {
    let (topics, comments, cases) = (&facts.topics, &facts.comments, &facts.cases);
    let mut s = CaseStats {
        topics: topics.iter().filter(|(_, t)| period.holds(*t)).count() as i64,
        ..CaseStats::default()
    };
    for (_, cat, _) in comments.iter().filter(|(_, _, at)| period.holds(*at)) {
        match cat {
            Category::Suggestion => s.comments.suggestion += 1,
            Category::LifeNeed => s.comments.life_need += 1,
            Category::Other => s.comments.other += 1,
        }
        s.comments.total += 1;
    }
    let mut hours = Vec::new();
    for c in cases {
        if period.holds(c.created_at) {
            s.cases_opened += 1;
        }
        if c.transferred_at.is_some_and(|t| period.holds(t)) {
            s.transferred += 1;
        }
        if c.is_overdue(now) {
            s.overdue_now += 1;
        }
        let Some(closed) = c.closed_at.filter(|t| period.holds(*t)) else {
            continue;
        };
        match c.state {
            CaseState::Resolved => {
                s.resolved += 1;
                s.resolved_on_time += i64::from(c.resolved_on_time());
            }
            CaseState::Declined => s.declined += 1,
            CaseState::Merged => {
                s.merged += 1;
                continue;
            }
            _ => continue,
        }
        s.closed += 1;
        hours.push((closed - c.created_at).num_seconds() as f64 / 3600.0);
    }
    s.median_hours_to_close = median(&mut hours).map(|h| (h * 10.0).round() / 10.0);
    s
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moments::{open_case, transition, Assignee, CaseAction};
    use crate::settings::Settings;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_000_000 + h * 3600, 0).unwrap_or_default()
    }

    #[test]
    fn counts_by_period_with_the_median_time_to_close() {
        let s = Settings::default();
        let a = Assignee {
            member_id: Uuid::now_v7(),
            on_committee: true,
        };
        let new = |h: i64| {
            open_case(
                Uuid::now_v7(),
                Uuid::nil(),
                Uuid::nil(),
                Uuid::now_v7(),
                Uuid::nil(),
                None,
                Category::LifeNeed,
                "x",
                at(h),
            )
            .0
        };
        let assign = |c: &Case, h: i64| {
            transition(c, &CaseAction::Accept { assignee: a }, None, at(h), &s)
                .expect("accept")
                .0
        };
        let resolve = |c: &Case, h: i64| {
            let r = CaseAction::Resolve {
                reply: "好".into()
            };
            transition(c, &r, None, at(h), &s).expect("resolve").0
        };
        // Closed after 10 h (on time), 200 h (late: due after 168 h), declined after 4 h;
        // one still open and overdue; one opened before the period.
        let on_time = resolve(&assign(&new(0), 0), 10);
        let late = resolve(&assign(&new(0), 0), 200);
        let d = CaseAction::Decline {
            reason: "重复".into(),
        };
        let declined = transition(&new(1), &d, None, at(5), &s).expect("decline").0;
        let overdue = assign(&new(2), 2);
        let before = new(-10);
        let cases = [on_time, late, declined, overdue, before];
        let period = Period {
            from: at(0),
            to: at(24 * 30),
        };
        let b = Uuid::nil();
        let facts = BoardFacts {
            topics: vec![(b, at(0)), (b, at(-1))],
            comments: vec![
                (b, Category::LifeNeed, at(0)),
                (b, Category::Other, at(3)),
                (b, Category::Other, at(-3)),
            ],
            cases: cases.to_vec(),
        };
        let st = case_stats(period, &facts, at(400));
        assert_eq!(case_stats(period, &facts.of_branch(b), at(400)), st);
        assert_eq!(
            case_stats(period, &facts.of_branch(Uuid::now_v7()), at(400)).topics,
            0
        );
        assert_eq!(st.topics, 1);
        assert_eq!(
            (st.comments.life_need, st.comments.other, st.comments.total),
            (1, 1, 2)
        );
        assert_eq!(st.cases_opened, 4);
        assert_eq!(
            (st.closed, st.resolved, st.resolved_on_time, st.declined),
            (3, 2, 1, 1)
        );
        assert_eq!(st.overdue_now, 1);
        // 4, 10, 200 hours: the median is 10.
        assert_eq!(st.median_hours_to_close, Some(10.0));
    }
}

//! Branch assessment (六安's 积分制 and 太湖's cards): monthly points from a checklist, a
//! quarterly warning under the township's minimum, an annual grade, and a card for quarters
//! behind running.
//!
//! The month's checklist (10 points): organisational life on time (4, the share of the
//! requirements whose period ends in the month that were held), attendance (2 at 90% of the
//! expected present, late or by video, 1 at 75%), learning participation (2 when 80% of the
//! members completed an item in the month, 1 at 50%), cases closed on time (1: every case due in
//! the month closed by its due time), warnings answered (1: no rectification notice due in the
//! month left unanswered past its date, or returned and not answered again).

use super::calendar::{bounds, cadence, period_of, Keeper, MeetingFact, MEETING_TYPES};
use crate::attendance::{Cadence, MeetingStatus, MeetingType};
use crate::points::Period;
use crate::settings::Settings;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use uuid::Uuid;

/// What a month's checklist reads about one branch, beside its calendar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonthFacts {
    /// Expected attendees of the branch's meetings held in the month, and how many of them were
    /// present, late or by video.
    pub expected: i64,
    pub attended: i64,
    /// The branch's members, and how many completed a learning item in the month.
    pub members: i64,
    pub learners: i64,
    /// Cases due in the month, and how many were closed by their due time.
    pub cases_due: i64,
    pub cases_on_time: i64,
    /// Rectification notices due in the month, and how many were answered by their date.
    pub notices_due: i64,
    pub notices_answered: i64,
}

/// One month's points, item by item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthScore {
    pub month: String,
    pub org_life: i64,
    pub attendance: i64,
    pub learning: i64,
    pub cases: i64,
    pub warnings: i64,
    pub total: i64,
    /// Requirements whose period ends in the month, and how many were held.
    pub required: i64,
    pub held: i64,
}

pub const MONTH_MAX: i64 = 10;

/// 2, 1 or 0 points for a share at or over `high`, `low`, or under. Nothing to count (no
/// attendee expected, no member) faults nothing: a branch that held no meeting already lost
/// its organisational-life points.
fn tier(num: i64, den: i64, high: (i64, i64), low: (i64, i64)) -> i64 {
    if den <= 0 {
        return 2;
    }
    // num/den >= high.0/high.1, in integers.
    if num * high.1 >= high.0 * den {
        2
    } else if num * low.1 >= low.0 * den {
        1
    } else {
        0
    }
}

/// The requirements of `keepers` whose period ends in `month`, and how many were held.
pub fn month_requirements(
    keepers: &[Keeper],
    meetings: &[MeetingFact],
    s: &Settings,
    month: Period,
) -> (i64, i64) {
    let (m_start, m_end) = bounds(month);
    let (mut required, mut held) = (0, 0);
    for k in keepers {
        for t in MEETING_TYPES {
            if (t == MeetingType::PartyGroupMeeting) != k.is_group {
                continue;
            }
            let p = period_of(cadence(s, t), m_end - TimeDelta::seconds(1));
            let (start, end) = bounds(p);
            if end != m_end || k.created_at > start || end <= m_start {
                continue;
            }
            required += 1;
            let done = meetings.iter().any(|m| {
                m.org_id == k.org_id
                    && m.meeting_type == t
                    && m.status == MeetingStatus::Held
                    && m.starts_at >= start
                    && m.starts_at < end
            });
            held += i64::from(done);
        }
    }
    (required, held)
}

/// The month's checklist.
pub fn score_month(month: Period, required: i64, held: i64, f: &MonthFacts) -> MonthScore {
    let org_life = if required == 0 {
        4
    } else {
        4 * held / required
    };
    let attendance = tier(f.attended, f.expected, (9, 10), (3, 4));
    let learning = tier(f.learners, f.members, (4, 5), (1, 2));
    let cases = i64::from(f.cases_on_time == f.cases_due);
    let warnings = i64::from(f.notices_answered == f.notices_due);
    MonthScore {
        month: month.to_string(),
        org_life,
        attendance,
        learning,
        cases,
        warnings,
        total: org_life + attendance + learning + cases + warnings,
        required,
        held,
    }
}

/// 示范型, 成长型, 孵化型.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Grade {
    A,
    B,
    C,
}

/// 太湖's card for quarters behind running: one blue, two yellow, three or more red.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Card {
    Blue,
    Yellow,
    Red,
}

pub fn card(quarters_behind: usize) -> Option<Card> {
    match quarters_behind {
        0 => None,
        1 => Some(Card::Blue),
        2 => Some(Card::Yellow),
        _ => Some(Card::Red),
    }
}

/// The year's points on a scale of 100 (the months scored so far) and its grade.
pub fn grade(months: &[MonthScore], s: &Settings) -> (i64, Grade) {
    if months.is_empty() {
        return (0, Grade::C);
    }
    let total: i64 = months.iter().map(|m| m.total).sum();
    let score = total * 100 / (MONTH_MAX * months.len() as i64);
    let g = if score >= s.grade_a_min {
        Grade::A
    } else if score >= s.grade_b_min {
        Grade::B
    } else {
        Grade::C
    };
    (score, g)
}

/// A quarter's points: the sum of its months (at most 30).
pub fn quarter_total(months: &[MonthScore], q: Period) -> i64 {
    let ms = q.months();
    months
        .iter()
        .filter(|m| ms.contains(&m.month))
        .map(|m| m.total)
        .sum()
}

/// The months of `year` a branch created at `created` is scored for at `now`: those that began
/// after it existed and have ended.
pub fn scored_months(year: i32, created: DateTime<Utc>, now: DateTime<Utc>) -> Vec<Period> {
    (1..=12)
        .map(|m| Period::Month(year, m))
        .filter(|p| {
            let (start, end) = bounds(*p);
            start >= created - TimeDelta::seconds(1) && end <= now
        })
        .collect()
}

/// The quarter a month is in.
pub fn quarter_of(month: Period) -> Period {
    let (s, _) = bounds(month);
    period_of(Cadence::Quarter, s)
}

/// The branch's id, for the caller's table.
pub type BranchId = Uuid;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checklist_the_quarter_the_grade_and_the_card() {
        let full = MonthFacts {
            expected: 10,
            attended: 9,
            members: 10,
            learners: 8,
            ..Default::default()
        };
        let m = score_month(Period::Month(2026, 10), 2, 2, &full);
        assert_eq!(m.total, 10);
        let weak = MonthFacts {
            expected: 10,
            attended: 7,
            members: 10,
            learners: 5,
            cases_due: 2,
            cases_on_time: 1,
            notices_due: 1,
            notices_answered: 0,
        };
        let w = score_month(Period::Month(2026, 11), 2, 1, &weak);
        assert_eq!(
            (
                w.org_life,
                w.attendance,
                w.learning,
                w.cases,
                w.warnings,
                w.total
            ),
            (2, 0, 1, 0, 0, 3)
        );
        let months = [m.clone(), w.clone(), m.clone()];
        assert_eq!(quarter_total(&months, Period::Quarter(2026, 4)), 23);
        let s = Settings::default();
        assert_eq!(grade(&months, &s), (76, Grade::C));
        assert_eq!(
            grade(
                &[
                    m.clone(),
                    m.clone(),
                    score_month(Period::Month(2026, 12), 2, 1, &full)
                ],
                &s
            ),
            (93, Grade::A)
        );
        assert_eq!(
            grade(
                &[
                    m.clone(),
                    score_month(Period::Month(2026, 12), 2, 1, &full),
                    score_month(Period::Month(2026, 12), 2, 1, &full)
                ],
                &s
            ),
            (86, Grade::B)
        );
        assert_eq!(
            (card(0), card(1), card(2), card(5)),
            (None, Some(Card::Blue), Some(Card::Yellow), Some(Card::Red))
        );
        let t0: DateTime<Utc> = "2026-09-30T16:00:00Z".parse().unwrap_or_default();
        let now: DateTime<Utc> = "2026-12-31T16:00:00Z".parse().unwrap_or_default();
        assert_eq!(scored_months(2026, t0, now).len(), 3);
    }
}

//! The compliance calendar: from the cadences in force, each branch's (and each party group's)
//! required meetings per period, and whether each was held. A requirement is met by a meeting
//! of its type that closed (`held`) with its start inside the period, in village time.

use crate::attendance::{Cadence, MeetingStatus, MeetingType};
use crate::points::Period;
use crate::settings::Settings;
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use uuid::Uuid;

/// How many periods before the current one the calendar looks at: an overdue meeting stays
/// on the calendar (and its warning open) until a meeting of its type is held, or this many
/// periods have passed (four months or quarters, two years).
pub fn lookback(c: Cadence) -> u32 {
    match c {
        Cadence::Month | Cadence::Quarter => 4,
        Cadence::Year => 2,
    }
}

/// The cadence the township sets for a meeting type.
pub fn cadence(s: &Settings, t: MeetingType) -> Cadence {
    match t {
        MeetingType::BranchGeneralMeeting => s.cadence_branch_general_meeting,
        MeetingType::BranchCommitteeMeeting => s.cadence_branch_committee_meeting,
        MeetingType::PartyGroupMeeting => s.cadence_party_group_meeting,
        MeetingType::PartyLecture => s.cadence_party_lecture,
        MeetingType::ThemedPartyDay => s.cadence_themed_party_day,
        MeetingType::OrgLifeMeeting => s.cadence_org_life_meeting,
    }
}

/// Every meeting type, in the order the calendar lists them.
pub const MEETING_TYPES: [MeetingType; 6] = [
    MeetingType::BranchGeneralMeeting,
    MeetingType::BranchCommitteeMeeting,
    MeetingType::PartyGroupMeeting,
    MeetingType::PartyLecture,
    MeetingType::ThemedPartyDay,
    MeetingType::OrgLifeMeeting,
];

/// China Standard Time: periods begin at local midnight.
const VILLAGE: TimeDelta = TimeDelta::hours(8);

/// The period of `cadence` that `t` falls in (village time).
pub fn period_of(cadence: Cadence, t: DateTime<Utc>) -> Period {
    let local = t + VILLAGE;
    let (y, m) = (local.year(), local.month());
    match cadence {
        Cadence::Month => Period::Month(y, m),
        Cadence::Quarter => Period::Quarter(y, (m - 1) / 3 + 1),
        Cadence::Year => Period::Year(y),
    }
}

/// The instants a period spans, `[start, end)`.
pub fn bounds(p: Period) -> (DateTime<Utc>, DateTime<Utc>) {
    let (y, first, months) = match p {
        Period::Month(y, m) => (y, m, 1),
        Period::Quarter(y, q) => (y, q * 3 - 2, 3),
        Period::Year(y) => (y, 1, 12),
    };
    let start = local_midnight(y, first);
    let (ny, nm) = if first + months > 12 {
        (y + 1, first + months - 12)
    } else {
        (y, first + months)
    };
    (start, local_midnight(ny, nm))
}

fn local_midnight(y: i32, m: u32) -> DateTime<Utc> {
    let d = NaiveDate::from_ymd_opt(y, m, 1).unwrap_or_default();
    d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() - VILLAGE
}

/// A meeting as the calendar sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingFact {
    pub org_id: Uuid,
    pub meeting_type: MeetingType,
    pub starts_at: DateTime<Utc>,
    pub status: MeetingStatus,
}

/// An org that must keep the cadence: a branch, or a party group of one.
#[derive(Debug, Clone, PartialEq)]
pub struct Keeper {
    pub org_id: Uuid,
    /// The branch the requirement belongs to (the group's branch, or the branch itself).
    pub branch_id: Uuid,
    pub is_group: bool,
    pub created_at: DateTime<Utc>,
}

/// Where a requirement stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// A meeting of the type was held in the period.
    Held,
    /// The period is running and a meeting is planned in it.
    Scheduled,
    /// The period is running and nothing is planned yet.
    Open,
    /// The period ended with nothing held.
    Overdue,
}

/// One required meeting of one org for one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Requirement {
    pub org_id: Uuid,
    pub branch_id: Uuid,
    pub meeting_type: MeetingType,
    pub cadence: Cadence,
    pub period: String,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub starts_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub ends_at: DateTime<Utc>,
    pub held: u32,
    pub scheduled: u32,
    pub standing: Standing,
    /// Some meeting of the type was held after this period ended (a make-up), which clears an
    /// overdue warning.
    #[serde(skip)]
    pub held_since: bool,
}

/// The calendar of `keepers` at `now`: for each org and required type, the current period and
/// up to [`lookback`] before it (none that ended before the org existed), oldest first.
pub fn calendar(
    keepers: &[Keeper],
    meetings: &[MeetingFact],
    s: &Settings,
    now: DateTime<Utc>,
) -> Vec<Requirement> {
    let mut out = Vec::new();
    for k in keepers {
        for t in MEETING_TYPES {
            if (t == MeetingType::PartyGroupMeeting) != k.is_group {
                continue;
            }
            let c = cadence(s, t);
            let mut periods = vec![period_of(c, now)];
            for _ in 0..lookback(c) {
                let before = periods[periods.len() - 1].previous();
                periods.push(before);
            }
            periods.reverse();
            let of_type: Vec<&MeetingFact> = meetings
                .iter()
                .filter(|m| m.org_id == k.org_id && m.meeting_type == t)
                .collect();
            for p in periods {
                let (start, end) = bounds(p);
                // A period is required of an org that existed when it began.
                if k.created_at > start {
                    continue;
                }
                let inside = |m: &&&MeetingFact| m.starts_at >= start && m.starts_at < end;
                let held = of_type
                    .iter()
                    .filter(inside)
                    .filter(|m| m.status == MeetingStatus::Held)
                    .count() as u32;
                let scheduled = of_type
                    .iter()
                    .filter(inside)
                    .filter(|m| m.status == MeetingStatus::Planned)
                    .count() as u32;
                let held_since = of_type
                    .iter()
                    .any(|m| m.status == MeetingStatus::Held && m.starts_at >= end);
                let standing = if held > 0 {
                    Standing::Held
                } else if now >= end {
                    Standing::Overdue
                } else if scheduled > 0 {
                    Standing::Scheduled
                } else {
                    Standing::Open
                };
                out.push(Requirement {
                    org_id: k.org_id,
                    branch_id: k.branch_id,
                    meeting_type: t,
                    cadence: c,
                    period: p.to_string(),
                    starts_at: start,
                    ends_at: end,
                    held,
                    scheduled,
                    standing,
                    held_since,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn periods_begin_at_village_midnight() {
        let (s, e) = bounds(Period::Quarter(2026, 4));
        assert_eq!(s, t("2026-09-30T16:00:00Z"));
        assert_eq!(e, t("2026-12-31T16:00:00Z"));
        assert_eq!(bounds(Period::Month(2026, 12)).1, t("2026-12-31T16:00:00Z"));
        assert_eq!(
            period_of(Cadence::Month, t("2026-10-31T17:00:00Z")),
            Period::Month(2026, 11)
        );
        assert_eq!(
            period_of(Cadence::Quarter, t("2026-09-30T16:00:00Z")),
            Period::Quarter(2026, 4)
        );
    }

    #[test]
    fn a_requirement_is_held_scheduled_open_or_overdue() {
        let branch = Uuid::now_v7();
        let keepers = [Keeper {
            org_id: branch,
            branch_id: branch,
            is_group: false,
            created_at: t("2026-09-30T16:00:00Z"),
        }];
        let party_day = |at: &str, status| MeetingFact {
            org_id: branch,
            meeting_type: MeetingType::ThemedPartyDay,
            starts_at: t(at),
            status,
        };
        let meetings = [
            party_day("2026-10-10T01:00:00Z", MeetingStatus::Held),
            party_day("2026-11-20T01:00:00Z", MeetingStatus::Cancelled),
            party_day("2026-12-20T01:00:00Z", MeetingStatus::Planned),
        ];
        let cal = calendar(
            &keepers,
            &meetings,
            &Settings::default(),
            t("2026-12-05T00:00:00Z"),
        );
        let days: Vec<(&str, Standing)> = cal
            .iter()
            .filter(|r| r.meeting_type == MeetingType::ThemedPartyDay)
            .map(|r| (r.period.as_str(), r.standing))
            .collect();
        assert_eq!(
            days,
            [
                ("2026-10", Standing::Held),
                ("2026-11", Standing::Overdue),
                ("2026-12", Standing::Scheduled)
            ]
        );
        // A branch keeps no party group meeting (its groups do), and nothing from before it
        // existed is asked of it.
        assert!(cal
            .iter()
            .all(|r| r.meeting_type != MeetingType::PartyGroupMeeting));
        assert!(cal.iter().all(|r| r.starts_at >= keepers[0].created_at));
        // Created in October, it owes 2026 no annual meeting (that year began before it).
        let kinds: std::collections::BTreeSet<String> = cal
            .iter()
            .map(|r| format!("{:?}", r.meeting_type))
            .collect();
        assert_eq!(kinds.len(), 4);
        assert!(cal
            .iter()
            .all(|r| r.meeting_type != MeetingType::OrgLifeMeeting));
    }
}

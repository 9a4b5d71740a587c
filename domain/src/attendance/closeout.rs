//! Close-out: each expected attendee's final status from clock-ins, video intervals and leave.

use super::*;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Each expected attendee's one status when a meeting closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalStatus {
    Present,
    Late,
    /// Present by video: connected for at least the threshold share of the meeting.
    Video,
    /// Leave requested and approved.
    Excused,
    Absent,
}

/// The default share of a meeting a member must be connected by video to count as present.
pub const VIDEO_THRESHOLD: (i64, i64) = (2, 3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoEventKind {
    Joined,
    Left,
}

/// Seconds connected within the meeting, from join and leave events in any order (duplicates
/// and a missing leave are harmless: an open connection ends with the meeting).
pub fn video_seconds(
    mut events: Vec<(DateTime<Utc>, VideoEventKind)>,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
) -> i64 {
    events.sort();
    let mut total = TimeDelta::zero();
    let mut open: Option<DateTime<Utc>> = None;
    for (at, kind) in events {
        match (kind, open) {
            (VideoEventKind::Joined, None) => open = Some(at),
            (VideoEventKind::Left, Some(from)) => {
                total += overlap(from, at, starts, ends);
                open = None;
            }
            _ => {}
        }
    }
    if let Some(from) = open {
        total += overlap(from, ends, starts, ends);
    }
    total.num_seconds()
}

fn overlap(a: DateTime<Utc>, b: DateTime<Utc>, s: DateTime<Utc>, e: DateTime<Utc>) -> TimeDelta {
    let (from, to) = (a.max(s), b.min(e));
    if to > from {
        to - from
    } else {
        TimeDelta::zero()
    }
}

/// The final status: a clock-in first, then enough video, then approved leave, else absent.
pub fn final_status(
    clock_in: Option<Punctuality>,
    video_secs: i64,
    meeting_secs: i64,
    threshold: (i64, i64),
    leave_approved: bool,
) -> FinalStatus {
    match clock_in {
        Some(Punctuality::OnTime) => FinalStatus::Present,
        Some(Punctuality::Late) => FinalStatus::Late,
        None if meeting_secs > 0 && video_secs * threshold.1 >= meeting_secs * threshold.0 => {
            FinalStatus::Video
        }
        None if leave_approved => FinalStatus::Excused,
        None => FinalStatus::Absent,
    }
}

#[cfg(test)]
mod closeout_tests {
    use super::*;

    fn at(m: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_795_000_000 + m * 60, 0).unwrap_or_default()
    }

    #[test]
    fn video_time_is_clipped_to_the_meeting_and_tolerates_disorder() {
        use VideoEventKind::*;
        let (s, e) = (at(0), at(120));
        // Joined early, dropped at 30, back at 40 until the end (no leave event), a duplicate join.
        let ev = vec![
            (at(40), Joined),
            (at(30), Left),
            (at(-10), Joined),
            (at(41), Joined),
        ];
        assert_eq!(video_seconds(ev, s, e), (30 + 80) * 60);
        assert_eq!(
            video_seconds(vec![(at(0), Joined), (at(10), Left)], s, e),
            600
        );
        assert_eq!(video_seconds(vec![(at(10), Left)], s, e), 0);
    }

    #[test]
    fn statuses_follow_their_precedence() {
        let m = 120 * 60;
        assert_eq!(
            final_status(Some(Punctuality::OnTime), 0, m, VIDEO_THRESHOLD, true),
            FinalStatus::Present
        );
        assert_eq!(
            final_status(Some(Punctuality::Late), m, m, VIDEO_THRESHOLD, false),
            FinalStatus::Late
        );
        assert_eq!(
            final_status(None, 80 * 60, m, VIDEO_THRESHOLD, false),
            FinalStatus::Video
        );
        assert_eq!(
            final_status(None, 79 * 60, m, VIDEO_THRESHOLD, false),
            FinalStatus::Absent
        );
        assert_eq!(
            final_status(None, 10 * 60, m, VIDEO_THRESHOLD, true),
            FinalStatus::Excused
        );
    }
}

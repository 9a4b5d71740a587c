//! The offline-first sync protocol's rules: scopes, cursors, mutation envelopes, event times.
//!
//! Every synced row belongs to exactly one scope per audience: an org (`org:<id>`), an org's
//! committee (`org:<id>:committee`, rows only the committee may see) or a member
//! (`member:<id>`). Each scope has a version counter that commits in order; a phone holds a
//! cursor `{v, epoch}` per scope and asks for what changed after it.

use crate::auth::{Action, Principal};
use crate::org::Org;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The protocol version a phone speaks; golden fixtures pin its wire shapes.
pub const SCHEMA_VERSION: u32 = 1;
/// Rows per pull page, by default and at most.
pub const DEFAULT_PULL_LIMIT: u32 = 500;
pub const MAX_PULL_LIMIT: u32 = 1000;
/// Bytes of row JSON per pull page (a page may exceed it by its last row).
pub const MAX_PULL_BYTES: usize = 512 * 1024;
/// Mutations per push.
pub const MAX_PUSH_MUTATIONS: usize = 500;

/// Every kind of row a phone holds, as named on the wire (`entity` of a pulled change). A test
/// keeps this list equal to openapi.yaml's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entity {
    Org,
    Member,
    Device,
    Meeting,
    /// A meeting's code secret, synced to the committee only.
    MeetingSecret,
    ClockIn,
    Leave,
    /// A member's final status at a held meeting, in their own scope, keyed by the meeting.
    Attendance,
    /// A topic on the branch board, in the branch's scope.
    Post,
    /// A comment, in the branch's scope (a hidden one without its text).
    Comment,
    /// A member's own comment, in their scope: a hidden one with its text and why.
    MyComment,
    /// A case: in the handling committee's scope, and in the scope of each member who
    /// relayed it (or a duplicate merged into it).
    Case,
    /// A household of the branch, in the branch's scope (members relay for them).
    Household,
    /// One of a member's points entries, in their own scope ("explain my points").
    PointsEntry,
    /// A published red and yellow list, in its branch's scope.
    PointsList,
    /// A warning (with its rectification notice), in its recipient's scope: the member's, or
    /// the committee scope of the org it is addressed to.
    Warning,
}

impl Entity {
    pub const ALL: [Entity; 16] = [
        Entity::Org,
        Entity::Member,
        Entity::Device,
        Entity::Meeting,
        Entity::MeetingSecret,
        Entity::ClockIn,
        Entity::Leave,
        Entity::Attendance,
        Entity::Post,
        Entity::Comment,
        Entity::MyComment,
        Entity::Case,
        Entity::Household,
        Entity::PointsEntry,
        Entity::PointsList,
        Entity::Warning,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Org => "org",
            Entity::Member => "member",
            Entity::Device => "device",
            Entity::Meeting => "meeting",
            Entity::MeetingSecret => "meeting_secret",
            Entity::ClockIn => "clock_in",
            Entity::Leave => "leave",
            Entity::Attendance => "attendance",
            Entity::Post => "post",
            Entity::Comment => "comment",
            Entity::MyComment => "my_comment",
            Entity::Case => "case",
            Entity::Household => "household",
            Entity::PointsEntry => "points_entry",
            Entity::PointsList => "points_list",
            Entity::Warning => "warning",
        }
    }

    pub fn parse(s: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Entity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Org(Uuid),
    Committee(Uuid),
    Member(Uuid),
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["org", id] => Uuid::parse_str(id).ok().map(Scope::Org),
            ["org", id, "committee"] => Uuid::parse_str(id).ok().map(Scope::Committee),
            ["member", id] => Uuid::parse_str(id).ok().map(Scope::Member),
            _ => None,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Org(id) => write!(f, "org:{id}"),
            Scope::Committee(id) => write!(f, "org:{id}:committee"),
            Scope::Member(id) => write!(f, "member:{id}"),
        }
    }
}

/// The scopes a caller may pull now, from their current grants: each org they can see, the
/// committee scope of each org whose roster they may read, and their own member scope.
pub fn visible_scopes(p: &Principal, orgs_in_view: &[Org]) -> BTreeSet<Scope> {
    let mut scopes = BTreeSet::new();
    for o in orgs_in_view {
        if p.sees(&o.path) {
            scopes.insert(Scope::Org(o.id));
        }
        if p.can(Action::ReadMembers, &o.path) {
            scopes.insert(Scope::Committee(o.id));
        }
    }
    scopes.insert(Scope::Member(p.member_id));
    scopes
}

/// A phone's position in one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    pub v: i64,
    pub epoch: Option<Uuid>,
}

/// A scope as stored: its version, its epoch (a new one means "rebuild"), and its floor: the
/// highest version whose tombstones may have been purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeState {
    pub version: i64,
    pub epoch: Option<Uuid>,
    pub floor: i64,
}

impl ScopeState {
    /// A scope nobody has written to yet.
    pub const EMPTY: ScopeState = ScopeState {
        version: 0,
        epoch: None,
        floor: 0,
    };
}

/// How a pull answers one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Nothing new after the cursor.
    Unchanged,
    /// Changes after this version.
    Delta(i64),
    /// The phone rebuilds the scope from scratch: new to it, a changed epoch, a cursor older than
    /// the tombstone horizon, or one from the future.
    Reset,
}

pub fn plan(cursor: Option<&Cursor>, state: &ScopeState) -> Plan {
    match cursor {
        None => Plan::Reset,
        Some(c) if c.epoch != state.epoch || c.v < state.floor || c.v > state.version => {
            if state.epoch.is_none() && c.v == 0 {
                Plan::Unchanged // still empty, as the phone already knows
            } else {
                Plan::Reset
            }
        }
        Some(c) if c.v == state.version => Plan::Unchanged,
        Some(c) => Plan::Delta(c.v),
    }
}

/// Where a mutation's event time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// The phone's monotonic uptime, in the same boot as the push: a wrong wall clock cannot
    /// move it.
    Uptime,
    /// The phone's wall clock, as reported.
    DeviceClock,
    /// Neither was given: the time the server received it.
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    pub at: DateTime<Utc>,
    pub source: TimeSource,
}

/// The earliest and the latest time a phone's clock can plausibly show: a clock outside them is
/// broken or forged, and a mutation carrying it is refused rather than stored at year 9999.
pub fn plausible_device_time(t: DateTime<Utc>) -> bool {
    let earliest = DateTime::from_timestamp(946_684_800, 0); // 2000-01-01
    let latest = DateTime::from_timestamp(4_102_444_800, 0); // 2100-01-01
    earliest.is_some_and(|e| t >= e) && latest.is_some_and(|l| t < l)
}

/// The longest uptime a phone can report: a year without a reboot.
pub const MAX_UPTIME_MS: i64 = 366 * 86_400_000;

/// A mutation whose device times no phone can have (code `implausible_device_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImplausibleTime;

impl ImplausibleTime {
    pub const CODE: &'static str = "implausible_device_time";
}

/// Derives when a queued mutation happened. With the same boot id at making and at sending, the
/// event happened `sent_uptime - made_uptime` before the server received the push. Uptimes
/// over `MAX_UPTIME_MS` and device clocks outside [`plausible_device_time`] are refused; a
/// negative uptime (or one later at making than at sending) only fails to match, and the
/// device clock decides.
pub fn event_time(
    received_at: DateTime<Utc>,
    push_boot: Option<&str>,
    push_uptime_ms: Option<i64>,
    made_boot: Option<&str>,
    made_uptime_ms: Option<i64>,
    device_time: Option<DateTime<Utc>>,
) -> Result<EventTime, ImplausibleTime> {
    if made_uptime_ms.is_some_and(|u| u > MAX_UPTIME_MS)
        || push_uptime_ms.is_some_and(|u| u > MAX_UPTIME_MS)
        || device_time.is_some_and(|t| !plausible_device_time(t))
    {
        return Err(ImplausibleTime);
    }
    if let (Some(pb), Some(pu), Some(mb), Some(mu)) =
        (push_boot, push_uptime_ms, made_boot, made_uptime_ms)
    {
        if pb == mb && (0..=pu).contains(&mu) {
            // Both within a year: the difference and the subtraction cannot overflow.
            return Ok(EventTime {
                at: received_at - TimeDelta::milliseconds(pu - mu),
                source: TimeSource::Uptime,
            });
        }
    }
    Ok(match device_time {
        Some(t) => EventTime {
            at: t,
            source: TimeSource::DeviceClock,
        },
        None => EventTime {
            at: received_at,
            source: TimeSource::Server,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_text() {
        let id = Uuid::now_v7();
        for s in [Scope::Org(id), Scope::Committee(id), Scope::Member(id)] {
            assert_eq!(Scope::parse(&s.to_string()), Some(s));
        }
        assert_eq!(Scope::parse("org:nope"), None);
        assert_eq!(Scope::parse(&format!("team:{id}")), None);
    }

    #[test]
    fn cursors_plan_delta_reset_or_nothing() {
        let e = Some(Uuid::now_v7());
        let s = ScopeState {
            version: 10,
            epoch: e,
            floor: 3,
        };
        assert_eq!(plan(None, &s), Plan::Reset);
        assert_eq!(plan(Some(&Cursor { v: 5, epoch: e }), &s), Plan::Delta(5));
        assert_eq!(plan(Some(&Cursor { v: 10, epoch: e }), &s), Plan::Unchanged);
        assert_eq!(
            plan(Some(&Cursor { v: 2, epoch: e }), &s),
            Plan::Reset,
            "below the floor"
        );
        assert_eq!(
            plan(Some(&Cursor { v: 11, epoch: e }), &s),
            Plan::Reset,
            "from the future"
        );
        assert_eq!(
            plan(
                Some(&Cursor {
                    v: 5,
                    epoch: Some(Uuid::now_v7())
                }),
                &s
            ),
            Plan::Reset
        );
        assert_eq!(
            plan(Some(&Cursor { v: 0, epoch: None }), &ScopeState::EMPTY),
            Plan::Unchanged
        );
    }

    #[test]
    fn uptime_beats_a_wrong_phone_clock_only_within_one_boot() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let wrong_clock = now + TimeDelta::days(400);
        let t = event_time(
            now,
            Some("b1"),
            Some(90_000_000),
            Some("b1"),
            Some(3_600_000),
            Some(wrong_clock),
        )
        .unwrap_or(EventTime {
            at: now,
            source: TimeSource::Server,
        });
        assert_eq!(t.source, TimeSource::Uptime);
        assert_eq!(t.at, now - TimeDelta::milliseconds(90_000_000 - 3_600_000));
        let t = event_time(
            now,
            Some("b2"),
            Some(5_000),
            Some("b1"),
            Some(3_600_000),
            Some(wrong_clock),
        );
        assert_eq!(
            t.map(|t| (t.source, t.at)),
            Ok((TimeSource::DeviceClock, wrong_clock))
        );
        let t = event_time(now, None, None, None, None, None);
        assert_eq!(t.map(|t| (t.source, t.at)), Ok((TimeSource::Server, now)));
    }

    #[test]
    fn times_no_phone_can_have_are_refused_not_overflowed() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let b = Some("b1");
        for (pu, mu) in [(i64::MAX, 1), (1_000_000_000_000_000, 5), (10, i64::MAX)] {
            assert_eq!(
                event_time(now, b, Some(pu), b, Some(mu), None),
                Err(ImplausibleTime),
                "uptimes {pu} {mu}"
            );
        }
        let y9999 = DateTime::parse_from_rfc3339("9999-01-01T00:00:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        assert_eq!(
            event_time(now, None, None, None, None, Some(y9999)),
            Err(ImplausibleTime)
        );
    }
}

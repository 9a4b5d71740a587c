//! Organisational life (组织生活): meeting types and cadences, and the rules that judge a
//! member's clock-in from a phone: the check-in window, the rotating meeting code (RFC 6238
//! TOTP over the meeting's secret, which the secretary's phone computes offline), the geofence,
//! and the signature of the member's device key over a canonical encoding of the evidence.

mod clock_in;
mod closeout;
mod evidence;
mod meeting;
pub use clock_in::{judge, ClockInFacts, Prechecked, Verdict, FUTURE_TOLERANCE, LATE_UPLOAD_LIMIT};
pub use closeout::*;
pub use evidence::*;
pub use meeting::*;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
/// Why a clock-in is refused: each a stable code, so the phone can tell the member which check
/// failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockInError {
    #[error("bad_signature")]
    BadSignature,
    #[error("device_revoked")]
    DeviceRevoked,
    #[error("device_not_yours")]
    DeviceNotYours,
    #[error("code_invalid")]
    CodeInvalid,
    #[error("location_required")]
    LocationRequired,
    #[error("outside_fence")]
    OutsideFence,
    #[error("too_early")]
    TooEarly,
    #[error("meeting_closed")]
    MeetingClosed,
    #[error("meeting_cancelled")]
    MeetingCancelled,
    #[error("not_expected")]
    NotExpected,
    #[error("event_in_future")]
    EventInFuture,
}

impl ClockInError {
    pub fn code(self) -> &'static str {
        match self {
            ClockInError::BadSignature => "bad_signature",
            ClockInError::DeviceRevoked => "device_revoked",
            ClockInError::DeviceNotYours => "device_not_yours",
            ClockInError::CodeInvalid => "code_invalid",
            ClockInError::LocationRequired => "location_required",
            ClockInError::OutsideFence => "outside_fence",
            ClockInError::TooEarly => "too_early",
            ClockInError::MeetingClosed => "meeting_closed",
            ClockInError::MeetingCancelled => "meeting_cancelled",
            ClockInError::NotExpected => "not_expected",
            ClockInError::EventInFuture => "event_in_future",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Punctuality {
    OnTime,
    Late,
}

/// Judges the moment of a clock-in against the meeting's times.
pub fn judge_time(
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    w: CheckinWindow,
    at: DateTime<Utc>,
) -> Result<Punctuality, ClockInError> {
    if at < starts_at - TimeDelta::minutes(w.opens_before_min) {
        Err(ClockInError::TooEarly)
    } else if at <= starts_at + TimeDelta::minutes(w.on_time_after_min) {
        Ok(Punctuality::OnTime)
    } else if at <= ends_at {
        Ok(Punctuality::Late)
    } else {
        Err(ClockInError::MeetingClosed)
    }
}

/// A recorded clock-in: the judgement and the evidence it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClockIn {
    pub id: Uuid,
    pub meeting_id: Uuid,
    pub member_id: Uuid,
    pub device_id: Uuid,
    pub punctuality: Punctuality,
    /// When it counts as made, and how that was derived (`uptime`, `device_clock`, `server`).
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub event_time: DateTime<Utc>,
    pub time_source: crate::sync::TimeSource,
    /// The phone's clock as signed.
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub device_time: DateTime<Utc>,
    pub code: String,
    pub location: Option<Location>,
    pub signature: String,
    /// The unlock that guarded the device key.
    pub unlock: Unlock,
    /// `online` or `sync`.
    pub via: String,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
}

/// Whether a member is expected at a meeting: every member of the org (a party group's meeting:
/// every member of the group), and for a committee meeting only the committee.
pub fn is_expected(
    meeting: &Meeting,
    member_org: Uuid,
    member_group: Option<Uuid>,
    committee_roles_at_org: bool,
) -> bool {
    if meeting.meeting_type.committee_only() {
        return committee_roles_at_org;
    }
    member_org == meeting.org_id || member_group == Some(meeting.org_id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveStatus {
    Requested,
    Approved,
    Refused,
}

/// A member's request for leave (请假) from a meeting, and the committee's decision.
/// Why a leave request is refused: each a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeaveError {
    /// Leave is asked for before a planned meeting starts.
    #[error("too_late_for_leave")]
    TooLate,
    /// A request is decided once.
    #[error("leave_already_decided")]
    AlreadyDecided,
}

impl LeaveError {
    pub fn code(self) -> &'static str {
        match self {
            LeaveError::TooLate => "too_late_for_leave",
            LeaveError::AlreadyDecided => "leave_already_decided",
        }
    }
}

impl From<LeaveError> for crate::Error {
    fn from(e: LeaveError) -> Self {
        crate::Error::Conflict(e.code())
    }
}

impl LeaveRequest {
    /// Whether leave may still be asked for `meeting` at `now`: before a planned meeting starts.
    pub fn may_request(meeting: &Meeting, now: DateTime<Utc>) -> Result<(), LeaveError> {
        if meeting.status != MeetingStatus::Planned || now >= meeting.starts_at {
            Err(LeaveError::TooLate)
        } else {
            Ok(())
        }
    }

    /// The request approved or refused by `by`, once.
    pub fn decide(
        &self,
        approve: bool,
        by: Uuid,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<LeaveRequest, LeaveError> {
        if self.status != LeaveStatus::Requested {
            return Err(LeaveError::AlreadyDecided);
        }
        Ok(LeaveRequest {
            status: if approve {
                LeaveStatus::Approved
            } else {
                LeaveStatus::Refused
            },
            decided_by: Some(by),
            decided_at: Some(now),
            note,
            ..self.clone()
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaveRequest {
    pub id: Uuid,
    pub meeting_id: Uuid,
    pub member_id: Uuid,
    pub reason: String,
    pub status: LeaveStatus,
    pub decided_by: Option<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub decided_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
}

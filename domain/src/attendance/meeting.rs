//! Meetings: types and cadences, the check-in window, the geofence, and the meeting itself with
//! its transitions (edit while planned, cancel, close).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingType {
    /// 支部党员大会
    BranchGeneralMeeting,
    /// 支部委员会会议
    BranchCommitteeMeeting,
    /// 党小组会
    PartyGroupMeeting,
    /// 党课
    PartyLecture,
    /// 主题党日
    ThemedPartyDay,
    /// 组织生活会 / 民主评议党员
    OrgLifeMeeting,
}

/// How often a branch must hold a meeting type, by default (a township may configure others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    Month,
    Quarter,
    Year,
}

impl MeetingType {
    pub fn default_cadence(self) -> Cadence {
        use MeetingType::*;
        match self {
            BranchGeneralMeeting | PartyLecture => Cadence::Quarter,
            BranchCommitteeMeeting | PartyGroupMeeting | ThemedPartyDay => Cadence::Month,
            OrgLifeMeeting => Cadence::Year,
        }
    }

    /// A committee meeting expects the committee; every other type all members of the org.
    pub fn committee_only(self) -> bool {
        self == MeetingType::BranchCommitteeMeeting
    }

    /// A party group meets as a group (党小组会); every other meeting is a branch's (or a
    /// committee's).
    pub fn fits(self, org: crate::org::OrgKind) -> bool {
        (self == MeetingType::PartyGroupMeeting) == (org == crate::org::OrgKind::Group)
    }
}

/// Why a meeting refuses a transition: each a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MeetingError {
    /// Only a planned meeting is edited, cancelled or closed by hand.
    #[error("meeting_not_planned")]
    NotPlanned,
    /// A meeting is closed by hand only once it has started.
    #[error("meeting_not_started")]
    NotStarted,
}

impl MeetingError {
    pub fn code(self) -> &'static str {
        match self {
            MeetingError::NotPlanned => "meeting_not_planned",
            MeetingError::NotStarted => "meeting_not_started",
        }
    }
}

impl From<MeetingError> for crate::Error {
    fn from(e: MeetingError) -> Self {
        crate::Error::Conflict(e.code())
    }
}

/// When a meeting accepts clock-ins: from `opens_before` before the start; on time until
/// `on_time_after` after it; late until the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinWindow {
    pub opens_before_min: i64,
    pub on_time_after_min: i64,
}

impl Default for CheckinWindow {
    fn default() -> Self {
        CheckinWindow {
            opens_before_min: 30,
            on_time_after_min: 15,
        }
    }
}

/// A place with a radius, in metres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geofence {
    pub lat: f64,
    pub lng: f64,
    pub radius_m: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingStatus {
    Planned,
    Held,
    Cancelled,
}

/// A branch meeting (三会一课, 主题党日...), as stored and shown. Its code secret is kept apart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Meeting {
    pub id: Uuid,
    pub org_id: Uuid,
    pub meeting_type: MeetingType,
    pub title: String,
    pub agenda: Option<String>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub starts_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub ends_at: DateTime<Utc>,
    pub place: Option<String>,
    pub geofence: Option<Geofence>,
    pub video_room: Option<String>,
    pub checkin_window: CheckinWindow,
    pub status: MeetingStatus,
    pub minutes: Option<String>,
    pub created_by: Uuid,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub updated_at: DateTime<Utc>,
}

/// An edit of a meeting: what is absent stays as it is.
#[derive(Debug, Clone, Default)]
pub struct MeetingPatch {
    pub title: Option<String>,
    pub agenda: Option<Option<String>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub place: Option<Option<String>>,
    pub geofence: Option<Option<Geofence>>,
    /// Whether migrant members join by video; the room is named by the server.
    pub video: Option<bool>,
    pub checkin_window: Option<CheckinWindow>,
    pub minutes: Option<Option<String>>,
}

fn trimmed(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(crate::text::tidy)
        .filter(|s| !s.is_empty())
}

impl MeetingPatch {
    /// Whether the edit changes the plan (anything but the minutes).
    pub fn reschedules(&self) -> bool {
        self.title.is_some()
            || self.agenda.is_some()
            || self.starts_at.is_some()
            || self.ends_at.is_some()
            || self.place.is_some()
            || self.geofence.is_some()
            || self.video.is_some()
            || self.checkin_window.is_some()
    }

    /// The meeting after this edit. The plan changes only while the meeting is planned; minutes
    /// may be written after it is held, never to a cancelled one.
    pub fn apply(&self, m: &Meeting) -> Result<Meeting, crate::Error> {
        if (self.reschedules() && m.status != MeetingStatus::Planned)
            || m.status == MeetingStatus::Cancelled
        {
            return Err(MeetingError::NotPlanned.into());
        }
        let mut m = m.clone();
        if let Some(t) = &self.title {
            m.title = crate::text::tidy(t);
        }
        if let Some(a) = &self.agenda {
            m.agenda = trimmed(a);
        }
        if let Some(s) = self.starts_at {
            m.starts_at = crate::truncate_micros(s);
        }
        if let Some(e) = self.ends_at {
            m.ends_at = crate::truncate_micros(e);
        }
        if let Some(p) = &self.place {
            m.place = trimmed(p);
        }
        if let Some(g) = self.geofence {
            m.geofence = g;
        }
        if let Some(v) = self.video {
            m.video_room = v.then(|| Meeting::room_name(m.id));
        }
        if let Some(w) = self.checkin_window {
            m.checkin_window = w;
        }
        if let Some(x) = &self.minutes {
            m.minutes = trimmed(x);
        }
        m.validate()?;
        Ok(m)
    }
}

impl Meeting {
    /// The meeting cancelled, if it is still planned.
    pub fn cancel(&self, now: DateTime<Utc>) -> Result<Meeting, MeetingError> {
        if self.status != MeetingStatus::Planned {
            return Err(MeetingError::NotPlanned);
        }
        Ok(Meeting {
            status: MeetingStatus::Cancelled,
            updated_at: now,
            ..self.clone()
        })
    }

    /// Whether the committee may close it by hand now: planned, and started.
    pub fn may_close(&self, now: DateTime<Utc>) -> Result<(), MeetingError> {
        if self.status != MeetingStatus::Planned {
            Err(MeetingError::NotPlanned)
        } else if now < self.starts_at {
            Err(MeetingError::NotStarted)
        } else {
            Ok(())
        }
    }

    /// The video room of a meeting: named by the server from the meeting's id, so no client can
    /// point a meeting at another branch's room.
    pub fn room_name(id: Uuid) -> String {
        format!("yl-{}", id.simple())
    }

    /// Checks the fields a committee sets; every problem is reported at once.
    pub fn validate(&self) -> Result<(), crate::Error> {
        use crate::FieldError;
        let mut errs = Vec::new();
        use crate::text::{refused, Kind};
        let texts = [
            ("title", Some(&self.title), Kind::Line),
            ("agenda", self.agenda.as_ref(), Kind::Block),
            ("place", self.place.as_ref(), Kind::Line),
            ("minutes", self.minutes.as_ref(), Kind::Block),
        ];
        for (field, value, kind) in texts {
            if let Some(code) = value.and_then(|v| refused(v, kind)) {
                errs.push(FieldError::new(field, code));
            }
        }
        let n = self.title.trim().chars().count();
        if n == 0 {
            errs.push(FieldError::new("title", "required"));
        } else if n > 100 {
            errs.push(FieldError::new("title", "too_long"));
        }
        if self
            .agenda
            .as_ref()
            .is_some_and(|a| a.chars().count() > 5000)
        {
            errs.push(FieldError::new("agenda", "too_long"));
        }
        if self
            .minutes
            .as_ref()
            .is_some_and(|a| a.chars().count() > 20000)
        {
            errs.push(FieldError::new("minutes", "too_long"));
        }
        if self.place.as_ref().is_some_and(|a| a.chars().count() > 200) {
            errs.push(FieldError::new("place", "too_long"));
        }
        if self.ends_at <= self.starts_at || self.ends_at - self.starts_at > TimeDelta::hours(24) {
            errs.push(FieldError::new("ends_at", "out_of_range"));
        }
        if let Some(f) = &self.geofence {
            let ok = (-90.0..=90.0).contains(&f.lat)
                && (-180.0..=180.0).contains(&f.lng)
                && (10.0..=5000.0).contains(&f.radius_m);
            if !ok {
                errs.push(FieldError::new("geofence", "out_of_range"));
            }
        }
        let w = self.checkin_window;
        if !(0..=240).contains(&w.opens_before_min) || !(0..=240).contains(&w.on_time_after_min) {
            errs.push(FieldError::new("checkin_window", "out_of_range"));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(crate::Error::Invalid(errs))
        }
    }
}

//! Warnings (预警推送): the compliance calendar, the rules that turn it (and cases, learning,
//! absences, lists) into warnings, and rectification notices (整改提示单). Every rule is a pure
//! function of loaded facts and the settings in force; a scan stores what they raise under a
//! dedup key (one per rule, subject and period) and resolves what no longer holds.

pub mod assessment;
pub mod calendar;
pub mod push;
pub mod rectification;
pub mod rules;

pub use calendar::{calendar, Keeper, MeetingFact, Requirement, Standing};
pub use rectification::{RectAction, RectError, RectState, Rectification};
pub use rules::{evaluate, reconcile, CaseFact, Facts, LearningFact, OpenWarning};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How loud a warning is: a reminder, a warning, an admonition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Blue,
    Yellow,
    Red,
}

/// The rule that raised a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A required meeting's period ends soon and none is held or planned (blue).
    MeetingDueSoon,
    /// A required meeting's period ended with none held (yellow).
    MeetingOverdue,
    /// ... and the period before it too (red: an admonition with a rectification notice).
    MeetingOverdueAgain,
    /// A branch's quarter scored under the township's minimum (六安's 季度预警).
    AssessmentBelow,
    /// A member was absent without leave (to the member).
    MemberAbsent,
    /// A member was placed on a published yellow list (to the member).
    MemberYellowListed,
    /// A member's learning points for the month are under the minimum near its end.
    LearningBehind,
    /// An assigned case is due within the township's "due soon" hours.
    CaseDueSoon,
    /// An assigned case passed its due time unresolved.
    CaseOverdue,
    /// A rectification notice was not answered by its date: to the org above.
    RectificationOverdue,
    /// The server's data directory is short of free space: to the township's administrators,
    /// before writes start failing.
    DiskLow,
}

impl Rule {
    pub const ALL: [Rule; 11] = [
        Rule::MeetingDueSoon,
        Rule::MeetingOverdue,
        Rule::MeetingOverdueAgain,
        Rule::AssessmentBelow,
        Rule::MemberAbsent,
        Rule::MemberYellowListed,
        Rule::LearningBehind,
        Rule::CaseDueSoon,
        Rule::CaseOverdue,
        Rule::RectificationOverdue,
        Rule::DiskLow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::MeetingDueSoon => "meeting_due_soon",
            Rule::MeetingOverdue => "meeting_overdue",
            Rule::MeetingOverdueAgain => "meeting_overdue_again",
            Rule::AssessmentBelow => "assessment_below",
            Rule::MemberAbsent => "member_absent",
            Rule::MemberYellowListed => "member_yellow_listed",
            Rule::LearningBehind => "learning_behind",
            Rule::CaseDueSoon => "case_due_soon",
            Rule::CaseOverdue => "case_overdue",
            Rule::RectificationOverdue => "rectification_overdue",
            Rule::DiskLow => "disk_low",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Rules the scan evaluates (and so resolves when their condition clears); the others are
    /// raised and resolved by the events that report them, or (a quarter's score, which is
    /// final) raised once and kept.
    pub fn scanned(self) -> bool {
        !matches!(
            self,
            Rule::MemberAbsent | Rule::MemberYellowListed | Rule::AssessmentBelow | Rule::DiskLow
        )
    }
}

/// Who a warning is for: one member, or the committee of an org (its secretary and committee
/// members, and the township above, who see that org's committee).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Recipient {
    Member(Uuid),
    Committee(Uuid),
}

/// What a rule raises; stored once per [`Raise::dedup_key`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Raise {
    pub rule: Rule,
    pub level: Level,
    pub recipient: Recipient,
    /// The org it is about (a branch or group; for a member, their branch), for authorisation.
    pub org_id: Uuid,
    /// What it is about: `org:<id>:<meeting type>`, `meeting:<id>:member:<id>`, `case:<id>`...
    pub subject: String,
    /// The period it belongs to (`2026-11`, `2026-Q4`, a day for a case).
    pub period: String,
    /// Facts a phone shows with it (meeting type, due time, points short...).
    pub detail: serde_json::Value,
    /// A red meeting warning issues a rectification notice due then.
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub rectification_due: Option<DateTime<Utc>>,
}

/// One warning per rule, subject and period, however often a scan runs.
pub fn dedup_key(rule: Rule, subject: &str, period: &str) -> String {
    format!("{}|{subject}|{period}", rule.as_str())
}

impl Raise {
    pub fn dedup_key(&self) -> String {
        dedup_key(self.rule, &self.subject, &self.period)
    }
}

/// What a person may do to a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningError {
    /// The warning is not addressed to the caller.
    NotRecipient,
}

impl WarningError {
    pub fn code(self) -> &'static str {
        match self {
            WarningError::NotRecipient => "warning_not_yours",
        }
    }
}

impl From<WarningError> for crate::Error {
    fn from(e: WarningError) -> Self {
        crate::Error::Forbidden(e.code())
    }
}

/// A stored warning, as its recipients see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    pub id: Uuid,
    pub rule: Rule,
    pub level: Level,
    /// The org it is about.
    pub org_id: Uuid,
    pub recipient: Recipient,
    pub subject: String,
    pub period: String,
    pub detail: serde_json::Value,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
    /// When it first reached a connected phone (set by delivery).
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub read_at: Option<DateTime<Utc>>,
    pub read_by: Option<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// `cleared`, `superseded`, `status_changed`, `answered`...
    pub resolution: Option<String>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub updated_at: DateTime<Utc>,
    /// The rectification notice a red meeting warning issued.
    pub rectification: Option<Rectification>,
}

impl Warning {
    /// A new warning from what a rule raised.
    pub fn raised(r: &Raise, now: DateTime<Utc>) -> Warning {
        Warning {
            id: Uuid::now_v7(),
            rule: r.rule,
            level: r.level,
            org_id: r.org_id,
            recipient: r.recipient,
            subject: r.subject.clone(),
            period: r.period.clone(),
            detail: r.detail.clone(),
            created_at: now,
            delivered_at: None,
            read_at: None,
            read_by: None,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolution: None,
            updated_at: now,
            rectification: None,
        }
    }
}

//! Domain events: what happened, typed, each with its topic and subject. They are written to
//! the outbox in the transaction of the change they report and relayed to the bus; consumers
//! (points, warnings) read them back with [`DomainEvent::parse`] and drop repeats by event id.

use crate::attendance::{FinalStatus, MeetingType};
use crate::auth::Role;
use crate::moments::{CaseState, Category};
use crate::warnings::{Level, Recipient, Rule};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A member's final status at a meeting was set, or changed (a late offline clock-in, a late
/// video webhook). `previous` names the status it replaces, so a consumer can order changes by
/// their content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalStatusSet {
    pub meeting_id: Uuid,
    pub org_id: Uuid,
    pub meeting_type: MeetingType,
    pub member_id: Uuid,
    pub status: FinalStatus,
    pub previous: Option<FinalStatus>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub starts_at: DateTime<Utc>,
}

/// A role ended because its holder left the org's subtree (`reason`: `moved`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleEnded {
    pub grant_id: Uuid,
    pub member_id: Uuid,
    pub org_id: Uuid,
    pub role: Role,
    pub reason: String,
}

/// A case moved: accepted, reassigned, resolved, declined, transferred, merged. Points score
/// acceptance and resolution of a relayed suggestion; warnings follow the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseTransitioned {
    pub case_id: Uuid,
    pub org_id: Uuid,
    pub handler_org_id: Uuid,
    /// The member who relayed it (the one points credit).
    pub author_id: Uuid,
    pub category: Category,
    /// `accepted`, `reassigned`, `resolved`, `declined`, `transferred`, `merged`.
    pub action: String,
    pub state: CaseState,
    pub actor_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub at: DateTime<Utc>,
}

/// An assigned case passed its due time unresolved (the overdue job's mark).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseOverdue {
    pub case_id: Uuid,
    pub org_id: Uuid,
    pub handler_org_id: Uuid,
    pub assignee_id: Option<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub due_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub at: DateTime<Utc>,
}

/// The secretary confirmed a member's volunteer service: it may score now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolunteerConfirmed {
    pub service_id: Uuid,
    pub member_id: Uuid,
    pub org_id: Uuid,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub served_at: DateTime<Utc>,
    pub confirmed_by: Uuid,
}

/// The server decided a member completed a learning item (or a visitor recorded a learning
/// visit long enough to complete it: `visit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearningCompleted {
    pub item_id: Uuid,
    pub member_id: Uuid,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub at: DateTime<Utc>,
    pub visit: bool,
}

/// A member answered every question of a quiz right (graded on the server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuizAllCorrect {
    pub item_id: Uuid,
    pub member_id: Uuid,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub at: DateTime<Utc>,
}

/// The secretary published a branch's red and yellow lists; warnings tell the yellow ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPublished {
    pub list_id: Uuid,
    pub org_id: Uuid,
    pub period: String,
    /// The members on the yellow list.
    pub yellow: Vec<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub at: DateTime<Utc>,
}

/// A warning was raised (or raised again after it had cleared): stored, now to be delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarningRaised {
    pub warning_id: Uuid,
    pub org_id: Uuid,
    pub rule: Rule,
    pub level: Level,
    pub recipient: Recipient,
    /// The path of the committee's org, for a committee recipient: an instance delivering it
    /// tells who sees that committee without a query.
    #[serde(default)]
    pub committee_path: Option<String>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub at: DateTime<Utc>,
}

/// A warning's condition cleared (or its notice was verified): the resolution is pushed too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarningResolved {
    pub warning_id: Uuid,
    pub org_id: Uuid,
    pub rule: Rule,
    pub recipient: Recipient,
    #[serde(default)]
    pub committee_path: Option<String>,
    pub resolution: String,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    FinalStatusSet(FinalStatusSet),
    RoleEnded(RoleEnded),
    CaseTransitioned(CaseTransitioned),
    CaseOverdue(CaseOverdue),
    VolunteerConfirmed(VolunteerConfirmed),
    LearningCompleted(LearningCompleted),
    QuizAllCorrect(QuizAllCorrect),
    ListPublished(ListPublished),
    WarningRaised(WarningRaised),
    WarningResolved(WarningResolved),
}

macro_rules! topics {
    ($( $variant:ident => $topic:literal, $subject:literal, $field:ident ;)*) => {
        /// Every topic, as the bus carries it.
        pub const TOPICS: &[&str] = &[ $( $topic ),* ];

        impl DomainEvent {
            /// The topic on the bus: a consumer's filter.
            pub fn topic(&self) -> &'static str {
                match self { $( DomainEvent::$variant(_) => $topic, )* }
            }

            /// What the event is about (`meeting:<id>`, `member:<id>`).
            pub fn subject(&self) -> String {
                match self { $( DomainEvent::$variant(e) => format!(concat!($subject, ":{}"), e.$field), )* }
            }

            /// The payload as JSON.
            pub fn payload(&self) -> serde_json::Value {
                let v = match self { $( DomainEvent::$variant(e) => serde_json::to_value(e), )* };
                v.unwrap_or(serde_json::Value::Null)
            }

            /// An event read back from the bus; `None` for a topic or payload this version does
            /// not know.
            pub fn parse(topic: &str, payload: &serde_json::Value) -> Option<DomainEvent> {
                match topic {
                    $( $topic => serde_json::from_value(payload.clone()).ok().map(DomainEvent::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

topics! {
    FinalStatusSet => "attendance.final_status", "meeting", meeting_id;
    RoleEnded      => "role.ended",              "member",  member_id;
    CaseTransitioned => "case.transitioned",     "case",    case_id;
    CaseOverdue    => "case.overdue",            "case",    case_id;
    VolunteerConfirmed => "volunteer.confirmed", "member",  member_id;
    LearningCompleted => "learning.completed",   "member",  member_id;
    QuizAllCorrect => "quiz.all_correct",        "member",  member_id;
    ListPublished  => "list.published",          "list",    list_id;
    WarningRaised  => "warning.raised",          "warning", warning_id;
    WarningResolved => "warning.resolved",       "warning", warning_id;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_topic_and_payload() {
        let e = DomainEvent::FinalStatusSet(FinalStatusSet {
            meeting_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            meeting_type: MeetingType::ThemedPartyDay,
            member_id: Uuid::now_v7(),
            status: FinalStatus::Late,
            previous: Some(FinalStatus::Absent),
            starts_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
        });
        assert_eq!(e.topic(), "attendance.final_status");
        assert!(e.subject().starts_with("meeting:"));
        assert_eq!(e.payload()["previous"], "absent");
        assert_eq!(DomainEvent::parse(e.topic(), &e.payload()), Some(e.clone()));
        assert_eq!(DomainEvent::parse("nothing.known", &e.payload()), None);
        assert_eq!(
            TOPICS,
            &[
                "attendance.final_status",
                "role.ended",
                "case.transitioned",
                "case.overdue",
                "volunteer.confirmed",
                "learning.completed",
                "quiz.all_correct",
                "list.published",
                "warning.raised",
                "warning.resolved"
            ]
        );
    }
}

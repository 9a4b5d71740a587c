//! Rectification notices (整改提示单): issued with a red warning, answered by the branch's
//! committee (what was done, with attachments), then verified by the org above or returned for
//! another answer. Unanswered by its date, a notice escalates to the org above once.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RectState {
    /// Waiting for the branch's answer.
    Issued,
    /// Answered; waiting for the org above.
    Answered,
    /// Accepted by the org above: done.
    Verified,
    /// Sent back for another answer, by a new date.
    Returned,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rectification {
    pub id: Uuid,
    pub warning_id: Uuid,
    /// The branch that must answer.
    pub org_id: Uuid,
    pub period: String,
    pub state: RectState,
    /// The branch answers by then.
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub due_at: DateTime<Utc>,
    pub answer: Option<String>,
    /// Images of what was done (ids from `uploadImage`).
    pub attachments: Vec<Uuid>,
    pub answered_by: Option<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub answered_at: Option<DateTime<Utc>>,
    pub decided_by: Option<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub decided_at: Option<DateTime<Utc>>,
    pub return_reason: Option<String>,
    /// How many answers it has had.
    pub rounds: i64,
    /// When it escalated to the org above, unanswered past its date.
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub escalated_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub updated_at: DateTime<Utc>,
}

/// What the branch or the org above does to a notice.
#[derive(Debug, Clone, PartialEq)]
pub enum RectAction {
    Answer {
        text: String,
        attachments: Vec<Uuid>,
    },
    Verify,
    /// Back to the branch, to answer again within `days`.
    Return {
        reason: String,
        days: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RectError {
    /// Answered while it waits for a decision, or after it was verified.
    NotAwaitingAnswer,
    /// Verified or returned before it was answered (or after it was decided).
    NotAnswered,
    /// The one who answered may not decide on their own answer.
    OwnAnswer,
}

impl RectError {
    pub fn code(self) -> &'static str {
        match self {
            RectError::NotAwaitingAnswer => "rectification_not_awaiting_answer",
            RectError::NotAnswered => "rectification_not_answered",
            RectError::OwnAnswer => "rectification_own_answer",
        }
    }
}

impl From<RectError> for crate::Error {
    fn from(e: RectError) -> Self {
        match e {
            RectError::OwnAnswer => crate::Error::Forbidden(e.code()),
            _ => crate::Error::Conflict(e.code()),
        }
    }
}

impl Rectification {
    /// A notice issued with its warning, to be answered by `due_at`.
    pub fn issue(
        warning_id: Uuid,
        org_id: Uuid,
        period: &str,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Rectification {
        Rectification {
            id: Uuid::now_v7(),
            warning_id,
            org_id,
            period: period.to_string(),
            state: RectState::Issued,
            due_at,
            answer: None,
            attachments: Vec::new(),
            answered_by: None,
            answered_at: None,
            decided_by: None,
            decided_at: None,
            return_reason: None,
            rounds: 0,
            escalated_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The only way a notice moves.
    pub fn transition(
        &self,
        action: RectAction,
        actor: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Rectification, RectError> {
        let mut r = self.clone();
        r.updated_at = now;
        match action {
            RectAction::Answer { text, attachments } => {
                if !self.awaits_answer() {
                    return Err(RectError::NotAwaitingAnswer);
                }
                r.state = RectState::Answered;
                r.answer = Some(text);
                r.attachments = attachments;
                r.answered_by = Some(actor);
                r.answered_at = Some(now);
                r.rounds += 1;
            }
            RectAction::Verify | RectAction::Return { .. } => {
                if self.state != RectState::Answered {
                    return Err(RectError::NotAnswered);
                }
                if self.answered_by == Some(actor) {
                    return Err(RectError::OwnAnswer);
                }
                r.decided_by = Some(actor);
                r.decided_at = Some(now);
                if let RectAction::Return { reason, days } = action {
                    r.state = RectState::Returned;
                    r.return_reason = Some(reason);
                    r.due_at = now + TimeDelta::days(days);
                    // A new date: past it, the notice escalates again.
                    r.escalated_at = None;
                } else {
                    r.state = RectState::Verified;
                }
            }
        }
        Ok(r)
    }

    /// Issued or returned: the branch owes an answer.
    pub fn awaits_answer(&self) -> bool {
        matches!(self.state, RectState::Issued | RectState::Returned)
    }

    /// Owed an answer past its date.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.awaits_answer() && now >= self.due_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_answered_then_verified_or_returned_and_never_by_its_answerer() {
        let now: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap_or_default();
        let (branch_sec, township) = (Uuid::now_v7(), Uuid::now_v7());
        let r = Rectification::issue(
            Uuid::now_v7(),
            Uuid::now_v7(),
            "2026-11",
            now + TimeDelta::days(10),
            now,
        );
        assert!(!r.is_overdue(now + TimeDelta::days(9)));
        assert!(r.is_overdue(now + TimeDelta::days(10)));
        assert_eq!(
            r.transition(RectAction::Verify, township, now),
            Err(RectError::NotAnswered)
        );
        let answer = || RectAction::Answer {
            text: "已补开主题党日".into(),
            attachments: vec![],
        };
        let a = r.transition(answer(), branch_sec, now).unwrap_or(r.clone());
        assert_eq!((a.state, a.rounds), (RectState::Answered, 1));
        assert!(!a.is_overdue(now + TimeDelta::days(30)));
        assert_eq!(
            a.transition(answer(), branch_sec, now),
            Err(RectError::NotAwaitingAnswer)
        );
        assert_eq!(
            a.transition(RectAction::Verify, branch_sec, now),
            Err(RectError::OwnAnswer)
        );
        let back = RectAction::Return {
            reason: "缺会议记录".into(),
            days: 7,
        };
        let ret = a.transition(back, township, now).unwrap_or(a.clone());
        assert_eq!(ret.state, RectState::Returned);
        assert_eq!(ret.due_at, now + TimeDelta::days(7));
        let again = ret
            .transition(answer(), branch_sec, now)
            .unwrap_or(ret.clone());
        let done = again
            .transition(RectAction::Verify, township, now)
            .unwrap_or(again.clone());
        assert_eq!((done.state, done.rounds), (RectState::Verified, 2));
        assert_eq!(
            done.transition(answer(), branch_sec, now),
            Err(RectError::NotAwaitingAnswer)
        );
    }
}

//! Cases (办件): every suggestion or life need a member relays becomes one, and only
//! [`transition`] moves it: submitted → assigned (to a committee member, due in the township's
//! days for its category) → resolved with a public reply, or declined with a reason; reassigned;
//! merged into another case as a duplicate; transferred up to the township, which then assigns,
//! resolves or declines it. Open311's lesson: a request has states beyond open and closed
//! ("duplicate", "passed on"), a responsible party and an expected (due) time.

use super::{block, Category, REASON_MAX, REPLY_MAX};
use crate::settings::Settings;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Waiting for the committee (of the branch, or of the township after a transfer).
    Submitted,
    /// Accepted and assigned to a committee member, due by `due_at`.
    Assigned,
    /// Closed with a public reply.
    Resolved,
    /// Closed with a reason.
    Declined,
    /// A duplicate: its commenter follows the case it was merged into.
    Merged,
}

impl CaseState {
    pub const ALL: [CaseState; 5] = [
        CaseState::Submitted,
        CaseState::Assigned,
        CaseState::Resolved,
        CaseState::Declined,
        CaseState::Merged,
    ];

    pub fn is_open(self) -> bool {
        matches!(self, CaseState::Submitted | CaseState::Assigned)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    pub id: Uuid,
    /// The branch whose board it came from; it stays the case's branch after a transfer.
    pub org_id: Uuid,
    /// Who handles it now: the branch, or the township it was transferred to.
    pub handler_org_id: Uuid,
    pub post_id: Uuid,
    pub comment_id: Uuid,
    /// The member who relayed it.
    pub author_id: Uuid,
    pub household_id: Option<Uuid>,
    pub category: Category,
    /// What the comment said.
    pub body: String,
    pub state: CaseState,
    pub assignee_id: Option<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub due_at: Option<DateTime<Utc>>,
    /// When the overdue job saw it pass its due time while still open.
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub overdue_at: Option<DateTime<Utc>>,
    /// The public reply of a resolved case.
    pub reply: Option<String>,
    pub decline_reason: Option<String>,
    pub merged_into: Option<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub transferred_at: Option<DateTime<Utc>>,
    /// When it was resolved, declined or merged.
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub updated_at: DateTime<Utc>,
}

/// What the committee (or the overdue job) does to a case.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseAction {
    /// Accept and assign to a member of the handling committee.
    Accept {
        assignee: Assignee,
    },
    /// Give an assigned case to another committee member; its due time stands.
    Reassign {
        assignee: Assignee,
    },
    Resolve {
        reply: String,
    },
    Decline {
        reason: String,
    },
    /// Pass it up to the township (the committee above the branch).
    Transfer {
        to_org: Uuid,
        note: Option<String>,
    },
    /// A duplicate of `into`, which must be of the same branch and not itself merged.
    MergeInto {
        into: MergeTarget,
    },
    /// The job's mark: an assigned case past its due time.
    MarkOverdue,
}

/// The member a case goes to, with whether they sit on the handling committee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignee {
    pub member_id: Uuid,
    pub on_committee: bool,
}

/// The facts of the surviving case that a merge needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeTarget {
    pub id: Uuid,
    pub org_id: Uuid,
    pub state: CaseState,
}

impl CaseAction {
    /// The name recorded in the case's history and carried by its event.
    pub fn name(&self) -> &'static str {
        match self {
            CaseAction::Accept { .. } => "accepted",
            CaseAction::Reassign { .. } => "reassigned",
            CaseAction::Resolve { .. } => "resolved",
            CaseAction::Decline { .. } => "declined",
            CaseAction::Transfer { .. } => "transferred",
            CaseAction::MergeInto { .. } => "merged",
            CaseAction::MarkOverdue => "overdue",
        }
    }
}

/// One step of a case's history: who did what, and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseStep {
    pub action: String,
    /// `None` for the server's own steps (submitted with the comment, overdue).
    pub actor_id: Option<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub at: DateTime<Utc>,
    /// The reply, the reason, the assignee, the case merged into, as the step carries it.
    pub note: Option<String>,
}

/// Why a transition is refused: each a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    /// Resolved, declined or merged: nothing more happens to it.
    #[error("case_closed")]
    Closed,
    /// Accepting a case that is already assigned.
    #[error("case_already_assigned")]
    AlreadyAssigned,
    /// Reassigning, resolving a case nobody was assigned.
    #[error("case_not_assigned")]
    NotAssigned,
    /// A case goes up to the township once.
    #[error("case_already_transferred")]
    AlreadyTransferred,
    /// Not overdue (the job found it resolved meanwhile, or not yet due).
    #[error("case_not_overdue")]
    NotOverdue,
    #[error("merge_into_self")]
    MergeIntoSelf,
    #[error("merge_other_branch")]
    MergeOtherBranch,
    /// The surviving case is itself merged, or declined.
    #[error("merge_target_closed")]
    MergeTargetClosed,
    #[error("assignee_not_on_committee")]
    AssigneeNotOnCommittee,
}

impl CaseError {
    pub fn code(self) -> &'static str {
        match self {
            CaseError::Closed => "case_closed",
            CaseError::AlreadyAssigned => "case_already_assigned",
            CaseError::NotAssigned => "case_not_assigned",
            CaseError::AlreadyTransferred => "case_already_transferred",
            CaseError::NotOverdue => "case_not_overdue",
            CaseError::MergeIntoSelf => "merge_into_self",
            CaseError::MergeOtherBranch => "merge_other_branch",
            CaseError::MergeTargetClosed => "merge_target_closed",
            CaseError::AssigneeNotOnCommittee => "assignee_not_on_committee",
        }
    }
}

impl From<CaseError> for crate::Error {
    fn from(e: CaseError) -> Self {
        match e {
            // The request names something that cannot take part: the input is wrong.
            CaseError::MergeIntoSelf
            | CaseError::MergeOtherBranch
            | CaseError::MergeTargetClosed
            | CaseError::AssigneeNotOnCommittee => crate::Error::Unprocessable(e.code()),
            // The case's state forbids it now: a conflict with what is stored.
            _ => crate::Error::Conflict(e.code()),
        }
    }
}

/// The days a case has, by category, from the township's settings (7 for a need, 15 for a
/// suggestion by default).
pub fn due_days(category: Category, s: &Settings) -> i64 {
    match category {
        Category::LifeNeed => s.case_due_days_need,
        _ => s.case_due_days_suggestion,
    }
}

/// A new case for a suggestion or life need, as the comment opens it.
#[allow(clippy::too_many_arguments)]
pub fn open_case(
    id: Uuid,
    org_id: Uuid,
    post_id: Uuid,
    comment_id: Uuid,
    author_id: Uuid,
    household_id: Option<Uuid>,
    category: Category,
    body: &str,
    now: DateTime<Utc>,
) -> (Case, CaseStep) {
    let case = Case {
        id,
        org_id,
        handler_org_id: org_id,
        post_id,
        comment_id,
        author_id,
        household_id,
        category,
        body: body.to_string(),
        state: CaseState::Submitted,
        assignee_id: None,
        due_at: None,
        overdue_at: None,
        reply: None,
        decline_reason: None,
        merged_into: None,
        transferred_at: None,
        closed_at: None,
        created_at: now,
        updated_at: now,
    };
    let step = CaseStep {
        action: "submitted".into(),
        actor_id: Some(author_id),
        at: now,
        note: None,
    };
    (case, step)
}

/// The one rule that moves a case: the case after `action` by `actor` at `now`, and the step
/// its history records. A refusal leaves the case as it was.
pub fn transition(
    case: &Case,
    action: &CaseAction,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Result<(Case, CaseStep), crate::Error> {
    use CaseState::*;
    let mut c = case.clone();
    let open = case.state.is_open();
    let note = match action {
        CaseAction::Accept { assignee } => {
            match case.state {
                Submitted => {}
                Assigned => return Err(CaseError::AlreadyAssigned.into()),
                _ => return Err(CaseError::Closed.into()),
            }
            if !assignee.on_committee {
                return Err(CaseError::AssigneeNotOnCommittee.into());
            }
            c.state = Assigned;
            c.assignee_id = Some(assignee.member_id);
            c.due_at = Some(now + TimeDelta::days(due_days(case.category, settings)));
            Some(assignee.member_id.to_string())
        }
        CaseAction::Reassign { assignee } => {
            match case.state {
                Assigned => {}
                Submitted => return Err(CaseError::NotAssigned.into()),
                _ => return Err(CaseError::Closed.into()),
            }
            if !assignee.on_committee {
                return Err(CaseError::AssigneeNotOnCommittee.into());
            }
            c.assignee_id = Some(assignee.member_id);
            Some(assignee.member_id.to_string())
        }
        CaseAction::Resolve { reply } => {
            match case.state {
                Assigned => {}
                Submitted => return Err(CaseError::NotAssigned.into()),
                _ => return Err(CaseError::Closed.into()),
            }
            let reply = block("reply", reply, REPLY_MAX)?;
            c.state = Resolved;
            c.reply = Some(reply.clone());
            c.closed_at = Some(now);
            Some(reply)
        }
        CaseAction::Decline { reason } => {
            if !open {
                return Err(CaseError::Closed.into());
            }
            let reason = block("reason", reason, REASON_MAX)?;
            c.state = Declined;
            c.decline_reason = Some(reason.clone());
            c.closed_at = Some(now);
            Some(reason)
        }
        CaseAction::Transfer { to_org, note } => {
            if !open {
                return Err(CaseError::Closed.into());
            }
            if case.transferred_at.is_some() || case.handler_org_id != case.org_id {
                return Err(CaseError::AlreadyTransferred.into());
            }
            let note = crate::text::clean_opt(
                "note",
                note.as_deref(),
                crate::text::Kind::Block,
                REASON_MAX,
            )?;
            c.handler_org_id = *to_org;
            c.state = Submitted;
            c.assignee_id = None;
            c.due_at = None;
            c.overdue_at = None;
            c.transferred_at = Some(now);
            note
        }
        CaseAction::MergeInto { into } => {
            if !open {
                return Err(CaseError::Closed.into());
            }
            if into.id == case.id {
                return Err(CaseError::MergeIntoSelf.into());
            }
            if into.org_id != case.org_id {
                return Err(CaseError::MergeOtherBranch.into());
            }
            if matches!(into.state, Merged | Declined) {
                return Err(CaseError::MergeTargetClosed.into());
            }
            c.state = Merged;
            c.merged_into = Some(into.id);
            c.closed_at = Some(now);
            Some(into.id.to_string())
        }
        CaseAction::MarkOverdue => {
            let due = case.due_at.filter(|d| *d < now);
            if case.state != Assigned || due.is_none() || case.overdue_at.is_some() {
                return Err(CaseError::NotOverdue.into());
            }
            c.overdue_at = Some(now);
            None
        }
    };
    c.updated_at = now;
    let step = CaseStep {
        action: action.name().into(),
        actor_id: actor,
        at: now,
        note,
    };
    Ok((c, step))
}

impl Case {
    /// Assigned and past its due time at `now`.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.state == CaseState::Assigned && self.due_at.is_some_and(|d| d < now)
    }

    /// Assigned and due within `hours` of `now` (not yet overdue).
    pub fn is_due_soon(&self, now: DateTime<Utc>, hours: i64) -> bool {
        self.state == CaseState::Assigned
            && self
                .due_at
                .is_some_and(|d| d >= now && d <= now + TimeDelta::hours(hours))
    }

    /// Resolved no later than its due time.
    pub fn resolved_on_time(&self) -> bool {
        self.state == CaseState::Resolved
            && matches!((self.closed_at, self.due_at), (Some(c), Some(d)) if c <= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_000_000 + h * 3600, 0).unwrap_or_default()
    }

    fn case(category: Category) -> Case {
        let branch = Uuid::now_v7();
        open_case(
            Uuid::now_v7(),
            branch,
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            None,
            category,
            "村口路灯坏了",
            at(0),
        )
        .0
    }

    fn code(r: Result<(Case, CaseStep), Error>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(Error::Conflict(c) | Error::Unprocessable(c)) => c.into(),
            Err(Error::Invalid(f)) => f[0].code.into(),
            Err(e) => format!("{e}"),
        }
    }

    /// Every action from every state: what a case allows, as one table.
    #[test]
    fn the_transition_table() {
        let s = Settings::default();
        let sec = Some(Uuid::now_v7());
        let on = Assignee {
            member_id: Uuid::now_v7(),
            on_committee: true,
        };
        let off = Assignee {
            on_committee: false,
            ..on
        };
        let base = case(Category::Suggestion);
        let in_state = |state: CaseState| {
            let mut c = base.clone();
            c.state = state;
            if state == CaseState::Assigned {
                c.assignee_id = Some(on.member_id);
                c.due_at = Some(at(24));
            }
            c
        };
        let target = MergeTarget {
            id: Uuid::now_v7(),
            org_id: base.org_id,
            state: CaseState::Assigned,
        };
        let township = Uuid::now_v7();
        use CaseState::*;
        let table: Vec<(CaseState, CaseAction, &str)> = vec![
            (Submitted, CaseAction::Accept { assignee: on }, "ok"),
            (
                Submitted,
                CaseAction::Accept { assignee: off },
                "assignee_not_on_committee",
            ),
            (
                Assigned,
                CaseAction::Accept { assignee: on },
                "case_already_assigned",
            ),
            (Resolved, CaseAction::Accept { assignee: on }, "case_closed"),
            (Assigned, CaseAction::Reassign { assignee: on }, "ok"),
            (
                Submitted,
                CaseAction::Reassign { assignee: on },
                "case_not_assigned",
            ),
            (
                Assigned,
                CaseAction::Reassign { assignee: off },
                "assignee_not_on_committee",
            ),
            (
                Assigned,
                CaseAction::Resolve {
                    reply: "已修好".into(),
                },
                "ok",
            ),
            (
                Assigned,
                CaseAction::Resolve { reply: " ".into() },
                "required",
            ),
            (
                Submitted,
                CaseAction::Resolve { reply: "x".into() },
                "case_not_assigned",
            ),
            (
                Declined,
                CaseAction::Resolve { reply: "x".into() },
                "case_closed",
            ),
            (
                Submitted,
                CaseAction::Decline {
                    reason: "不属实".into(),
                },
                "ok",
            ),
            (
                Assigned,
                CaseAction::Decline {
                    reason: "不属实".into(),
                },
                "ok",
            ),
            (
                Merged,
                CaseAction::Decline { reason: "x".into() },
                "case_closed",
            ),
            (
                Submitted,
                CaseAction::Transfer {
                    to_org: township,
                    note: None,
                },
                "ok",
            ),
            (
                Assigned,
                CaseAction::Transfer {
                    to_org: township,
                    note: None,
                },
                "ok",
            ),
            (
                Resolved,
                CaseAction::Transfer {
                    to_org: township,
                    note: None,
                },
                "case_closed",
            ),
            (Submitted, CaseAction::MergeInto { into: target }, "ok"),
            (
                Submitted,
                CaseAction::MergeInto {
                    into: MergeTarget {
                        id: base.id,
                        ..target
                    },
                },
                "merge_into_self",
            ),
            (
                Submitted,
                CaseAction::MergeInto {
                    into: MergeTarget {
                        org_id: township,
                        ..target
                    },
                },
                "merge_other_branch",
            ),
            (
                Assigned,
                CaseAction::MergeInto {
                    into: MergeTarget {
                        state: Merged,
                        ..target
                    },
                },
                "merge_target_closed",
            ),
            (
                Resolved,
                CaseAction::MergeInto { into: target },
                "case_closed",
            ),
            (Assigned, CaseAction::MarkOverdue, "case_not_overdue"),
        ];
        for (state, action, want) in table {
            let got = code(transition(&in_state(state), &action, sec, at(1), &s));
            assert_eq!(got, want, "{state:?} + {}", action.name());
        }
        // Past its due time an assigned case is marked overdue once.
        let (late, _) = transition(
            &in_state(Assigned),
            &CaseAction::MarkOverdue,
            None,
            at(25),
            &s,
        )
        .expect("overdue");
        assert_eq!(late.overdue_at, Some(at(25)));
        assert_eq!(
            code(transition(
                &late,
                &CaseAction::MarkOverdue,
                None,
                at(26),
                &s
            )),
            "case_not_overdue"
        );
    }

    #[test]
    fn a_case_is_due_by_its_categorys_days_and_knows_when_it_was_on_time() {
        let s = Settings::default();
        let sec = Some(Uuid::now_v7());
        let a = Assignee {
            member_id: Uuid::now_v7(),
            on_committee: true,
        };
        let need = case(Category::LifeNeed);
        let (need, step) =
            transition(&need, &CaseAction::Accept { assignee: a }, sec, at(0), &s).expect("accept");
        assert_eq!(need.due_at, Some(at(7 * 24)));
        assert_eq!(step.action, "accepted");
        assert_eq!(step.actor_id, sec);
        let sug = case(Category::Suggestion);
        let (sug, _) =
            transition(&sug, &CaseAction::Accept { assignee: a }, sec, at(0), &s).expect("accept");
        assert_eq!(sug.due_at, Some(at(15 * 24)));
        assert!(sug.is_due_soon(at(15 * 24 - 47), 48));
        assert!(!sug.is_overdue(at(15 * 24)));
        assert!(sug.is_overdue(at(15 * 24 + 1)));
        let reply = CaseAction::Resolve {
            reply: "已安排维修".into(),
        };
        let (on_time, _) = transition(&sug, &reply, sec, at(15 * 24), &s).expect("resolve");
        assert!(on_time.resolved_on_time());
        let (late, _) = transition(&sug, &reply, sec, at(15 * 24 + 1), &s).expect("resolve");
        assert!(!late.resolved_on_time());
        assert_eq!(late.reply.as_deref(), Some("已安排维修"));
    }

    #[test]
    fn a_transferred_case_waits_for_the_township_and_goes_up_once() {
        let s = Settings::default();
        let township = Uuid::now_v7();
        let c = case(Category::LifeNeed);
        let t = CaseAction::Transfer {
            to_org: township,
            note: Some("村里无力解决".into()),
        };
        let (up, step) = transition(&c, &t, None, at(2), &s).expect("transfer");
        assert_eq!(
            (up.state, up.handler_org_id),
            (CaseState::Submitted, township)
        );
        assert_eq!(up.org_id, c.org_id);
        assert_eq!(step.note.as_deref(), Some("村里无力解决"));
        assert_eq!(
            code(transition(&up, &t, None, at(3), &s)),
            "case_already_transferred"
        );
    }
}

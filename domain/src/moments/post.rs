//! Topics, comments, likes, reports and households: the board itself.

use super::{block, MomentsError, ADDRESS_MAX, COMMENT_MAX, HOUSEHOLD_NAME_MAX, MAX_IMAGES};
use super::{POST_BODY_MAX, REASON_MAX, TITLE_MAX};
use crate::error::FieldError;
use crate::text::{self, Kind};
use crate::Error;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who may comment on a topic: every member of the branch, or only the members of some of its
/// party groups (a topic about one natural village's road asks that village's groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Commenters {
    Branch,
    Groups,
}

/// A topic on the branch board.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Post {
    pub id: Uuid,
    pub org_id: Uuid,
    pub title: String,
    pub body: String,
    pub image_ids: Vec<Uuid>,
    /// Comments are taken until then.
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub feedback_until: DateTime<Utc>,
    pub commenters: Commenters,
    /// With `commenters: groups`, the groups asked.
    pub group_ids: Vec<Uuid>,
    pub pinned: bool,
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub closed_at: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub updated_at: DateTime<Utc>,
    pub comment_count: i64,
    pub like_count: i64,
}

/// A topic as the committee writes it, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub title: String,
    pub body: String,
    pub image_ids: Vec<Uuid>,
    pub feedback_until: Option<DateTime<Utc>>,
    pub commenters: Option<Commenters>,
    pub group_ids: Vec<Uuid>,
}

/// How far ahead a feedback deadline may be set.
pub const FEEDBACK_HORIZON_DAYS: i64 = 366;

impl Draft {
    /// The checked topic text: every field that is wrong, at once. `groups_of_branch` are the
    /// branch's party groups, so a topic cannot ask another branch's group.
    pub fn check(
        &self,
        now: DateTime<Utc>,
        groups_of_branch: &[Uuid],
    ) -> Result<Draft, Vec<FieldError>> {
        let mut errs = Vec::new();
        let mut keep =
            |r: Result<String, FieldError>| r.map_err(|e| errs.push(e)).unwrap_or_default();
        let title = keep(text::clean("title", &self.title, Kind::Line, TITLE_MAX));
        let body = keep(block("body", &self.body, POST_BODY_MAX));
        if self.image_ids.len() > MAX_IMAGES {
            errs.push(FieldError::new("image_ids", "too_many_images"));
        }
        let mut seen = std::collections::HashSet::new();
        if !self.image_ids.iter().all(|i| seen.insert(*i)) {
            errs.push(FieldError::new("image_ids", "duplicate_image"));
        }
        match self.feedback_until {
            Some(t) if t <= now => errs.push(FieldError::new("feedback_until", "in_the_past")),
            Some(t) if t > now + TimeDelta::days(FEEDBACK_HORIZON_DAYS) => {
                errs.push(FieldError::new("feedback_until", "too_far_ahead"))
            }
            _ => {}
        }
        let commenters = self.commenters.unwrap_or(Commenters::Branch);
        match commenters {
            Commenters::Branch if !self.group_ids.is_empty() => errs.push(FieldError::new(
                "group_ids",
                "groups_need_commenters_groups",
            )),
            Commenters::Groups if self.group_ids.is_empty() => {
                errs.push(FieldError::new("group_ids", "required"))
            }
            Commenters::Groups if !self.group_ids.iter().all(|g| groups_of_branch.contains(g)) => {
                errs.push(FieldError::new("group_ids", "group_not_found"))
            }
            _ => {}
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let mut group_ids = self.group_ids.clone();
        group_ids.sort();
        group_ids.dedup();
        Ok(Draft {
            title,
            body,
            image_ids: self.image_ids.clone(),
            feedback_until: self.feedback_until,
            commenters: Some(commenters),
            group_ids,
        })
    }
}

/// Who wants to comment, as the rules need them.
#[derive(Debug, Clone, Copy)]
pub struct Commenter {
    pub branch_id: Uuid,
    pub group_id: Option<Uuid>,
    /// Sits on the committee of the topic's branch (may always comment).
    pub on_committee: bool,
}

impl Post {
    /// Whether `who` may comment now. A member of another branch never gets here (the topic
    /// is not found for them).
    pub fn may_comment(&self, who: &Commenter, now: DateTime<Utc>) -> Result<(), MomentsError> {
        if self.closed_at.is_some() {
            return Err(MomentsError::PostClosed);
        }
        if now > self.feedback_until {
            return Err(MomentsError::FeedbackClosed);
        }
        let asked = match self.commenters {
            Commenters::Branch => who.branch_id == self.org_id,
            Commenters::Groups => who.group_id.is_some_and(|g| self.group_ids.contains(&g)),
        };
        if asked || who.on_committee {
            Ok(())
        } else {
            Err(MomentsError::NotInAudience)
        }
    }

    /// Likes are taken while the topic is open; closing it freezes them with the comments.
    pub fn may_like(&self) -> Result<(), MomentsError> {
        match self.closed_at {
            Some(_) => Err(MomentsError::PostClosed),
            None => Ok(()),
        }
    }

    /// Closes the topic early; closing a closed topic changes nothing.
    pub fn close(&self, now: DateTime<Utc>) -> Post {
        let mut p = self.clone();
        if p.closed_at.is_none() {
            p.closed_at = Some(now);
            p.updated_at = now;
        }
        p
    }
}

/// What a comment is about: the first two each open a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// 意见建议
    Suggestion,
    /// 生活需求
    LifeNeed,
    Other,
}

impl Category {
    pub const ALL: [Category; 3] = [Category::Suggestion, Category::LifeNeed, Category::Other];

    /// Whether a comment of this category becomes a case.
    pub fn opens_case(self) -> bool {
        !matches!(self, Category::Other)
    }
}

/// Why a comment is hidden: shown to its author, and to the committee.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hidden {
    pub reason: String,
    pub by: Uuid,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comment {
    pub id: Uuid,
    pub post_id: Uuid,
    pub org_id: Uuid,
    pub author_id: Uuid,
    pub body: String,
    pub category: Category,
    /// The household whose opinion the member relays, if any.
    pub household_id: Option<Uuid>,
    /// The case it opened (suggestions and life needs).
    pub case_id: Option<Uuid>,
    pub like_count: i64,
    pub hidden: Option<Hidden>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
}

/// A comment's text: several lines, 1 to [`COMMENT_MAX`] characters.
pub fn comment_body(raw: &str) -> Result<String, FieldError> {
    block("body", raw, COMMENT_MAX)
}

impl Comment {
    /// As a member who is neither its author nor on the committee sees it: a hidden comment
    /// keeps its place and says that it was hidden, but not what it said.
    pub fn as_seen_by_others(&self) -> Comment {
        let mut c = self.clone();
        if c.hidden.is_some() {
            c.body = String::new();
            c.household_id = None;
        }
        c
    }

    /// Hides it with a reason; hiding twice is refused (the first reason stands).
    pub fn hide(&self, reason: &str, by: Uuid, now: DateTime<Utc>) -> Result<Comment, Error> {
        if self.hidden.is_some() {
            return Err(MomentsError::AlreadyHidden.into());
        }
        let reason = block("reason", reason, REASON_MAX)?;
        let mut c = self.clone();
        c.hidden = Some(Hidden {
            reason,
            by,
            at: now,
        });
        Ok(c)
    }

    pub fn may_like_or_report(&self) -> Result<(), MomentsError> {
        match self.hidden {
            Some(_) => Err(MomentsError::CommentHidden),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportState {
    Open,
    /// The secretary hid the comment.
    Upheld,
    Dismissed,
}

/// A member's report of an abusive comment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub id: Uuid,
    pub comment_id: Uuid,
    pub org_id: Uuid,
    pub reporter_id: Uuid,
    pub reason: String,
    pub state: ReportState,
    pub decided_by: Option<Uuid>,
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
}

impl Report {
    /// The secretary dismisses an open report.
    pub fn dismiss(&self, by: Uuid, now: DateTime<Utc>) -> Result<Report, MomentsError> {
        if self.state != ReportState::Open {
            return Err(MomentsError::ReportDecided);
        }
        Ok(Report {
            state: ReportState::Dismissed,
            decided_by: Some(by),
            decided_at: Some(now),
            ..self.clone()
        })
    }
}

/// A report's reason: 1 to [`REASON_MAX`] characters.
pub fn report_reason(raw: &str) -> Result<String, FieldError> {
    block("reason", raw, REASON_MAX)
}

/// A household of the village (a small record of the branch: no villager's ID number), and the
/// central household member (党员中心户) who relays for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Household {
    pub id: Uuid,
    pub org_id: Uuid,
    /// How the village knows it: the head of the household, or a house name.
    pub name: String,
    pub address: Option<String>,
    pub central_member_id: Option<Uuid>,
    pub created_by: Uuid,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
}

/// A household's name and address, checked.
pub fn household_text(
    name: &str,
    address: Option<&str>,
) -> Result<(String, Option<String>), Vec<FieldError>> {
    let name = text::clean("name", name, Kind::Line, HOUSEHOLD_NAME_MAX);
    let address = text::clean_opt("address", address, Kind::Line, ADDRESS_MAX);
    match (name, address) {
        (Ok(n), Ok(a)) => Ok((n, a)),
        (n, a) => Err([n.err(), a.err()].into_iter().flatten().collect()),
    }
}

/// Whether a central household member may take one more household.
pub fn may_relay_another(households_now: usize) -> Result<(), MomentsError> {
    if households_now >= super::HOUSEHOLDS_PER_CENTRAL_MEMBER {
        Err(MomentsError::HouseholdLimit)
    } else {
        Ok(())
    }
}

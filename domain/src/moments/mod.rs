//! The branch "moments" board (党建朋友圈) and the suggestion chain behind it
//! (群众反馈 → 党员收集 → 组织汇总 → 限时办结): topics the committee posts, comments members
//! relay for villagers (a household, "1+10"), moderation by report and hide (never delete), and
//! the case every suggestion or life need becomes, moved only by [`transition`].

mod case;
mod post;
mod stats;
pub use case::*;
pub use post::*;
pub use stats::*;

use crate::error::FieldError;
use crate::text::{self, Kind};

/// Character limits of the board's text.
pub const TITLE_MAX: usize = 100;
pub const POST_BODY_MAX: usize = 5000;
pub const COMMENT_MAX: usize = 1000;
pub const REPLY_MAX: usize = 2000;
pub const REASON_MAX: usize = 500;
pub const HOUSEHOLD_NAME_MAX: usize = 50;
pub const ADDRESS_MAX: usize = 200;
/// A topic carries at most nine images, as a phone's photo grid shows them.
pub const MAX_IMAGES: usize = 9;
/// A central household member (党员中心户) relays for up to ten households: "1+10".
pub const HOUSEHOLDS_PER_CENTRAL_MEMBER: usize = 10;
/// A search word is a few characters (Chinese words are often two).
pub const SEARCH_MAX: usize = 50;

/// A reason or reply: several lines, 1 to `max` characters.
pub fn block(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    text::clean(field, raw, Kind::Block, max)
}

/// A search word: one line, 1 to [`SEARCH_MAX`] characters.
pub fn search_word(raw: &str) -> Result<String, FieldError> {
    text::clean("q", raw, Kind::Line, SEARCH_MAX)
}

/// Why a moments action is refused: each a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MomentsError {
    /// The topic was closed by the committee.
    #[error("post_closed")]
    PostClosed,
    /// The topic's feedback deadline has passed.
    #[error("feedback_closed")]
    FeedbackClosed,
    /// The comment was hidden by the secretary: no likes, no reports.
    #[error("comment_hidden")]
    CommentHidden,
    /// The topic asks only some party groups, and the member is in none of them.
    #[error("not_in_audience")]
    NotInAudience,
    /// The report was already decided.
    #[error("report_decided")]
    ReportDecided,
    /// The comment was already hidden.
    #[error("already_hidden")]
    AlreadyHidden,
    /// A central household member relays for at most ten households.
    #[error("household_limit_reached")]
    HouseholdLimit,
}

impl MomentsError {
    pub fn code(self) -> &'static str {
        match self {
            MomentsError::PostClosed => "post_closed",
            MomentsError::FeedbackClosed => "feedback_closed",
            MomentsError::CommentHidden => "comment_hidden",
            MomentsError::NotInAudience => "not_in_audience",
            MomentsError::ReportDecided => "report_decided",
            MomentsError::AlreadyHidden => "already_hidden",
            MomentsError::HouseholdLimit => "household_limit_reached",
        }
    }
}

impl From<MomentsError> for crate::Error {
    fn from(e: MomentsError) -> Self {
        match e {
            MomentsError::NotInAudience => crate::Error::Forbidden(e.code()),
            _ => crate::Error::Conflict(e.code()),
        }
    }
}

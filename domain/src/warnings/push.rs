//! Pushes to phones: the warnings of one member gathered for a short window go out as one
//! message (several within a minute are one push), retried with a growing pause, and after the
//! last attempt kept as a dead letter an admin can replay.

use super::{Level, Rule};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A member's warnings within this long of the first go out as one push.
pub const WINDOW_SECS: i64 = 60;
/// Attempts before a push becomes a dead letter.
pub const MAX_ATTEMPTS: i64 = 5;

/// One warning event in a push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushItem {
    pub warning_id: Uuid,
    /// `warning.raised` or `warning.resolved`.
    pub topic: String,
    pub rule: Rule,
    pub level: Option<Level>,
}

/// Where a push stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushState {
    /// Collecting the member's warnings until its window ends.
    Gathering,
    /// Due to be sent (again) at `send_at`.
    Pending,
    Sent,
    /// Every attempt failed: a dead letter until replayed.
    Dead,
    /// The member has no phone registered for push.
    NoDevice,
}

/// A message to a push relay: what a phone shows, the member's tokens, and the push's id (the
/// relay drops a repeat of one it delivered).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushMessage {
    pub id: Uuid,
    pub member_id: Uuid,
    pub tokens: Vec<PushToken>,
    pub title: String,
    pub body: String,
    pub items: Vec<PushItem>,
}

/// A device's push token at its vendor's channel (Huawei, Xiaomi, OPPO, vivo, Honor, APNs) or
/// an aggregator's (JPush, Getui).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushToken {
    pub provider: String,
    pub token: String,
}

pub const PROVIDERS: &[&str] = &[
    "huawei", "xiaomi", "oppo", "vivo", "honor", "apns", "jpush", "getui",
];

/// The text a phone shows for a push (Chinese: what members read).
pub fn compose(items: &[PushItem]) -> (String, String) {
    let raised = items.iter().filter(|i| i.topic == "warning.raised").count();
    let resolved = items.len() - raised;
    let loudest = items.iter().filter_map(|i| i.level).max();
    let title = match loudest {
        Some(Level::Red) => "党务预警（红色）",
        Some(Level::Yellow) => "党务预警（黄色）",
        _ => "党务提醒",
    };
    let body = match (raised, resolved) {
        (0, r) => format!("{r}条预警已解除"),
        (n, 0) => format!("您有{n}条新的预警，请及时查看处理"),
        (n, r) => format!("您有{n}条新的预警，{r}条预警已解除"),
    };
    (title.to_string(), body)
}

/// The pause before attempt `attempts + 1`: 2, 4, 8 ... seconds, at most an hour.
pub fn retry_after(attempts: i64) -> TimeDelta {
    TimeDelta::seconds(2i64.saturating_pow(attempts.clamp(1, 12) as u32).min(3600))
}

/// What a failed attempt leaves: pending again after its pause, or dead after the last.
pub fn after_failure(
    attempts: i64,
    max_attempts: i64,
    now: DateTime<Utc>,
) -> (PushState, DateTime<Utc>) {
    if attempts >= max_attempts {
        (PushState::Dead, now)
    } else {
        (PushState::Pending, now + retry_after(attempts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_tells_its_warnings_and_retries_then_dies() {
        let item = |topic: &str, level| PushItem {
            warning_id: Uuid::now_v7(),
            topic: topic.into(),
            rule: Rule::MeetingOverdue,
            level,
        };
        let (t, b) = compose(&[
            item("warning.raised", Some(Level::Blue)),
            item("warning.raised", Some(Level::Red)),
            item("warning.resolved", None),
        ]);
        assert_eq!(
            (t.as_str(), b.as_str()),
            ("党务预警（红色）", "您有2条新的预警，1条预警已解除")
        );
        assert_eq!(
            compose(&[item("warning.resolved", None)]).1,
            "1条预警已解除"
        );
        let now: DateTime<Utc> = "2026-12-03T00:00:00Z".parse().unwrap_or_default();
        assert_eq!(
            after_failure(1, 5, now),
            (PushState::Pending, now + TimeDelta::seconds(2))
        );
        assert_eq!(
            after_failure(4, 5, now),
            (PushState::Pending, now + TimeDelta::seconds(16))
        );
        assert_eq!(after_failure(5, 5, now).0, PushState::Dead);
        assert_eq!(retry_after(40), TimeDelta::seconds(3600));
    }
}

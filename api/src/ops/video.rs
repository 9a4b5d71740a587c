//! Video attendance: LiveKit's participant events become connected intervals of the meeting
//! whose room it is, for the attendees that meeting expects.

use chrono::{DateTime, Utc};
use std::collections::HashSet;
use uuid::Uuid;
use yunlian_domain::attendance::{MeetingStatus, VideoEventKind};
use yunlian_domain::settings::Settings;
use yunlian_domain::Error;
use yunlian_infra::db::{self, Conn};

/// One verified webhook event.
#[derive(Debug, Clone)]
pub struct VideoEvent {
    pub room: String,
    pub event_id: String,
    /// The participant's identity (a member id), when it is one.
    pub identity: Option<Uuid>,
    pub kind: VideoEventKind,
    pub at: DateTime<Utc>,
    /// `room_finished`: everyone who was in the room leaves.
    pub finished: bool,
}

/// Records a video event once (a redelivery changes nothing) under the meeting's lock; a held
/// meeting's final statuses follow. Returns how many intervals it recorded, or why none.
pub async fn record(
    c: &mut Conn<'_>,
    ev: &VideoEvent,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<Result<usize, &'static str>, Error> {
    let Some(found) = db::meetings::by_video_room(c, &ev.room).await? else {
        return Ok(Err("unknown_room"));
    };
    let (meeting, _, _) = super::attendance::lock_for_attendance(c, found.id).await?;
    let (finished, kind, at) = (ev.finished, ev.kind, ev.at);
    // A finished room disconnects everyone who was in it.
    let members: Vec<Uuid> = if finished {
        let mut m: Vec<Uuid> = db::attendance::video_events_of(c, meeting.id)
            .await?
            .into_iter()
            .map(|e| e.0)
            .collect();
        m.sort();
        m.dedup();
        m
    } else {
        ev.identity.into_iter().collect()
    };
    let org_is_group = db::orgs::get(c, meeting.org_id)
        .await?
        .is_some_and(|o| o.kind == yunlian_domain::org::OrgKind::Group);
    let expected: HashSet<Uuid> = db::attendance::expected(
        c,
        meeting.org_id,
        org_is_group,
        meeting.meeting_type.committee_only(),
        meeting.starts_at,
    )
    .await?
    .into_iter()
    .map(|(m, _)| m)
    .collect();
    let (mut n, mut seen) = (0, 0);
    for member in members {
        // Only the meeting's own expected attendees count; anyone else in the room (a guest,
        // another branch's member) leaves no attendance.
        if !expected.contains(&member) {
            continue;
        }
        seen += 1;
        let id = if finished {
            format!("{}:{member}", ev.event_id)
        } else {
            ev.event_id.clone()
        };
        if db::attendance::video_event(c, &id, meeting.id, member, kind, at, now).await? {
            n += 1;
        }
    }
    if n > 0 && meeting.status == MeetingStatus::Held {
        super::attendance::close_out(c, meeting.id, root, now).await?;
    }
    Ok(if n > 0 {
        Ok(n)
    } else if seen > 0 {
        Err("already_recorded")
    } else if finished {
        Err("nothing_to_record")
    } else {
        Err("participant_not_expected")
    })
}

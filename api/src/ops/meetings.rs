//! Meetings: edits and cancellation by the committee, each deciding under the meeting's row
//! lock, so an edit never overwrites a close-out or a cancellation that committed meanwhile.

use super::authorize;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use yunlian_domain::attendance::{Meeting, MeetingPatch};
use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::Error;
use yunlian_infra::db::{self, meetings::Lock, Conn};

/// `updateMeeting`: the plan while planned, the minutes afterwards.
pub async fn update(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    patch: &MeetingPatch,
    now: DateTime<Utc>,
) -> Result<Meeting, Error> {
    let (before, path, _) = db::meetings::lock(c, id, Lock::Update)
        .await?
        .ok_or(Error::NotFound)?;
    authorize(p, Action::ManageMeetings, &path)?;
    let mut after = patch.apply(&before)?;
    if after == before {
        return Ok(before);
    }
    after.updated_at = now;
    db::meetings::update(c, &after).await?;
    Ok(after)
}

/// `cancelMeeting`: only a planned meeting.
pub async fn cancel(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Meeting, Error> {
    let (m, path, _) = db::meetings::lock(c, id, Lock::Update)
        .await?
        .ok_or(Error::NotFound)?;
    authorize(p, Action::ManageMeetings, &path)?;
    let m = m.cancel(now)?;
    db::meetings::update(c, &m).await?;
    Ok(m)
}

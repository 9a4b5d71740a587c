//! Attendance: clock-ins (online and queued), the close-out that gives every expected attendee
//! a final status, leave. Each use case runs in the caller's transaction; handlers, the sync
//! mutation `attendance.clock_in.v1`, the video webhook and the close-out job call them alike.

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;
use yunlian_domain::attendance::{
    final_status, is_expected, judge, verify_signature, video_seconds, ClockIn, ClockInError,
    ClockInEvidence, ClockInFacts, KeyAlgorithm, LeaveRequest, LeaveStatus, Location, Meeting,
    MeetingStatus, Prechecked, Punctuality, Verdict, VideoEventKind,
};
use yunlian_domain::auth::Principal;
use yunlian_domain::events::{DomainEvent, FinalStatusSet};
use yunlian_domain::settings::Settings;
use yunlian_domain::sync::{EventTime, TimeSource};
use yunlian_domain::{Error, FieldError};
use yunlian_infra::db::{self, meetings::Lock, Conn, ScopedFutureExt};

/// The evidence a phone sends (and signs, with `meeting_id` and the member).
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Generated on the phone (UUIDv7); the server's own when absent.
    pub id: Option<Uuid>,
    pub device_id: Uuid,
    pub code: String,
    /// The phone's clock when the member clocked in, as signed.
    pub device_time: DateTime<Utc>,
    pub location: Option<Location>,
    /// Base64 of the device key's signature over the canonical evidence.
    pub signature: String,
}

impl Evidence {
    /// The bounds of what a phone can send: a code of at most 16 characters, a signature of at
    /// most 1,024 (a DER ECDSA or Ed25519 signature in base64 is under 100).
    pub fn check(&self) -> Result<(), Error> {
        let mut errs = Vec::new();
        if self.code.len() > 16 {
            errs.push(FieldError::new("code", "too_long"));
        }
        if self.signature.len() > 1024 {
            errs.push(FieldError::new("signature", "too_long"));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(errs))
        }
    }
}

/// The sync mutation `attendance.clock_in.v1`: the evidence plus its meeting.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockInArgs {
    pub meeting_id: Uuid,
    #[serde(flatten)]
    pub evidence: Evidence,
}

fn refuse(e: ClockInError) -> Error {
    Error::Unprocessable(e.code())
}

/// How a clock-in is judged: at which time (and how that time was derived), by the server's
/// clock `now`, through which path, and with which video share for a closed meeting's refresh.
#[derive(Debug, Clone, Copy)]
pub struct Judging {
    pub judged: EventTime,
    pub now: DateTime<Utc>,
    pub via: &'static str,
    /// The configuration's settings, under the org's own.
    pub settings: Settings,
}

/// Judges a queued clock-in at its derived time: the phone's uptime when the boot matches, else
/// the signed clock of the phone.
pub fn queued_time(derived: EventTime, signed: DateTime<Utc>) -> EventTime {
    match derived.source {
        TimeSource::Uptime => derived,
        _ => EventTime {
            at: signed,
            source: TimeSource::DeviceClock,
        },
    }
}

/// `clockIn` and `attendance.clock_in.v1`: loads the facts under the meeting's lock, asks the
/// domain (`judge`), and records the clock-in (a verified repeat returns the first). A late
/// clock-in of a closed meeting changes its final statuses.
pub async fn clock_in(
    c: &mut Conn<'_>,
    p: &Principal,
    meeting_id: Uuid,
    ev: &Evidence,
    j: Judging,
    pre: Option<&Precheck>,
) -> Result<ClockIn, Error> {
    ev.check()?;
    let ((meeting, path, secret), found) =
        db::clock_ins::lock_meeting_with_facts(c, meeting_id, p.member_id, ev.device_id)
            .await?
            .ok_or(Error::NotFound)?;
    if !p.sees(&path) {
        return Err(Error::NotFound);
    }
    let found = found.ok_or(Error::NotFound)?;
    let key = match &found.device {
        Some(d) => base64::engine::general_purpose::STANDARD
            .decode(&d.public_key)
            .map_err(|e| Error::Internal(format!("stored key: {e}")))?,
        None => Vec::new(),
    };
    let facts = ClockInFacts {
        meeting: &meeting,
        secret: &secret,
        member_id: p.member_id,
        member_org: found.org_id,
        member_group: found.group_id,
        on_committee: p.on_committee_of(meeting.org_id),
        device: found.device.as_ref().map(|d| (d, key.as_slice())),
        already: found.first.is_some(),
        prechecked: pre.map(|pre| Prechecked {
            algorithm: pre.algorithm,
            key: &pre.key,
            verified: pre.verified,
        }),
    };
    let evidence = signed(meeting.id, p.member_id, ev);
    let signature = signature_bytes(ev);
    let punctuality =
        match judge(&facts, &evidence, signature.as_deref(), j.judged.at, j.now).map_err(refuse)? {
            Verdict::Repeat => {
                return found
                    .first
                    .ok_or_else(|| Error::Internal("repeat of nothing".into()))
            }
            Verdict::Accept(p) => p,
        };
    let device = found.device.ok_or(Error::NotFound)?;
    let ci = record(&meeting, &p.member_id, &device, ev, j, punctuality);
    let ci = db::clock_ins::insert_first(c, &ci, meeting.org_id).await?;
    if meeting.status == MeetingStatus::Held {
        close_out(c, meeting.id, j.settings, j.now).await?;
    }
    Ok(ci)
}

/// What the phone signed: the evidence with its meeting and member.
fn signed(meeting_id: Uuid, member_id: Uuid, ev: &Evidence) -> ClockInEvidence {
    ClockInEvidence {
        meeting_id,
        member_id,
        device_id: ev.device_id,
        code: ev.code.clone(),
        event_time: ev.device_time,
        location: ev.location,
    }
}

fn signature_bytes(ev: &Evidence) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(ev.signature.trim())
        .ok()
}

/// A clock-in's signature checked before its write transaction (see [`precheck`]).
pub struct Precheck {
    algorithm: KeyAlgorithm,
    key: Vec<u8>,
    verified: bool,
}

/// Where writers take turns (SQLite: one at a time), checks the evidence's signature against
/// the key of the device it names before the write transaction waits for its turn, so the
/// writer does not spend its turn on the curve (about 70 µs of a clock-in's 800 on the
/// benchmark's machine). `judge` trusts the outcome only if the device still has that key when
/// the facts are locked, so a changed or missing device is judged as before, and the outcome
/// never differs from a check made under the lock. `None` on PostgreSQL, where writers do not
/// queue behind one another, and whenever there is nothing to check (no such device, no
/// signature): the transaction then judges alone.
pub async fn precheck(
    store: &db::Db,
    p: &Principal,
    meeting_id: Uuid,
    ev: &Evidence,
) -> Result<Option<Precheck>, Error> {
    if !store.serialises_writes() {
        return Ok(None);
    }
    ev.check()?;
    let Some(signature) = signature_bytes(ev) else {
        return Ok(None);
    };
    let device_id = ev.device_id;
    let found = store
        .read(move |mut c| async move { db::devices::key(&mut c, device_id).await }.scope_boxed())
        .await?;
    let Some((algorithm, public_key)) = found else {
        return Ok(None);
    };
    let Ok(key) = base64::engine::general_purpose::STANDARD.decode(&public_key) else {
        return Ok(None);
    };
    let message = signed(meeting_id, p.member_id, ev).canonical();
    let verified = verify_signature(algorithm, &key, &message, &signature).is_ok();
    Ok(Some(Precheck {
        algorithm,
        key,
        verified,
    }))
}

fn record(
    meeting: &Meeting,
    member: &Uuid,
    device: &yunlian_domain::attendance::Device,
    ev: &Evidence,
    j: Judging,
    punctuality: Punctuality,
) -> ClockIn {
    ClockIn {
        id: ev.id.unwrap_or_else(Uuid::now_v7),
        meeting_id: meeting.id,
        member_id: *member,
        device_id: device.id,
        punctuality,
        event_time: yunlian_domain::truncate_micros(j.judged.at),
        time_source: j.judged.source,
        device_time: yunlian_domain::truncate_micros(ev.device_time),
        code: ev.code.clone(),
        location: ev.location,
        signature: ev.signature.trim().to_string(),
        unlock: device.unlock,
        via: j.via.to_string(),
        created_at: j.now,
    }
}

/// Locks a meeting before a change its close-out must see (see
/// [`db::meetings::lock_for_change`]).
pub async fn lock_for_attendance(
    c: &mut Conn<'_>,
    id: Uuid,
) -> Result<(Meeting, String, Vec<u8>), Error> {
    db::meetings::lock_for_change(c, id)
        .await?
        .ok_or(Error::NotFound)
}

/// Gives every expected attendee their final status and marks the meeting held. Run again (a
/// late clock-in, a late webhook), it changes only what changed; each change is an outbox event.
pub async fn close_out(
    c: &mut Conn<'_>,
    meeting_id: Uuid,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<Vec<db::attendance::Final>, Error> {
    let (mut meeting, path, _) = db::meetings::lock(c, meeting_id, Lock::Update)
        .await?
        .ok_or(Error::NotFound)?;
    let video_share = super::settings::effective(c, &path, root)
        .await?
        .video_present_share
        .as_tuple();
    let org = db::orgs::get(c, meeting.org_id)
        .await?
        .ok_or(Error::NotFound)?;
    let expected = db::attendance::expected(
        c,
        meeting.org_id,
        org.kind == yunlian_domain::org::OrgKind::Group,
        meeting.meeting_type.committee_only(),
        meeting.starts_at,
    )
    .await?;
    let clock_ins: HashMap<Uuid, Punctuality> = db::clock_ins::of_meeting(c, meeting.id)
        .await?
        .into_iter()
        .map(|ci| (ci.member_id, ci.punctuality))
        .collect();
    let excused: HashSet<Uuid> = db::attendance::leaves_of_meeting(c, meeting.id)
        .await?
        .into_iter()
        .filter(|l| l.status == LeaveStatus::Approved)
        .map(|l| l.member_id)
        .collect();
    let mut video: HashMap<Uuid, Vec<(DateTime<Utc>, VideoEventKind)>> = HashMap::new();
    for (member, at, kind) in db::attendance::video_events_of(c, meeting.id).await? {
        video.entry(member).or_default().push((at, kind));
    }
    let meeting_secs = (meeting.ends_at - meeting.starts_at).num_seconds();
    let mut finals = Vec::with_capacity(expected.len());
    for (member, migrant) in expected {
        let video_secs = video_seconds(
            video.remove(&member).unwrap_or_default(),
            meeting.starts_at,
            meeting.ends_at,
        );
        let status = final_status(
            clock_ins.get(&member).copied(),
            video_secs,
            meeting_secs,
            video_share,
            excused.contains(&member),
        );
        let f = db::attendance::Final {
            member_id: member,
            status,
            video_secs,
            migrant,
        };
        if let Some(previous) = db::attendance::set_final(c, meeting.id, &f, now).await? {
            let event = DomainEvent::FinalStatusSet(FinalStatusSet {
                meeting_id: meeting.id,
                org_id: meeting.org_id,
                meeting_type: meeting.meeting_type,
                member_id: member,
                status,
                previous,
                starts_at: meeting.starts_at,
            });
            db::outbox::append(c, &event, now).await?;
        }
        finals.push(f);
    }
    if meeting.status == MeetingStatus::Planned {
        meeting.status = MeetingStatus::Held;
        meeting.updated_at = now;
        db::meetings::update(c, &meeting).await?;
    }
    Ok(finals)
}

/// `closeMeeting`: the committee closes a planned meeting after its start. Checked under the
/// meeting's lock: of two closes at once, the second finds it held.
pub async fn close_meeting(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<Vec<db::attendance::Final>, Error> {
    let (meeting, path, _) = db::meetings::lock(c, id, Lock::Update)
        .await?
        .ok_or(Error::NotFound)?;
    super::authorize(p, yunlian_domain::auth::Action::ManageMeetings, &path)?;
    meeting.may_close(now)?;
    close_out(c, id, root, now).await
}

/// Closes, one transaction each, every planned meeting that ended more than `grace` ago.
pub async fn close_due(
    db: &yunlian_infra::Db,
    grace: TimeDelta,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let due = db
        .read(move |mut c| {
            async move { db::meetings::due_for_close(&mut c, now - grace).await }.scope_boxed()
        })
        .await?;
    let mut closed = 0;
    for id in due {
        let done = db
            .write(move |mut c| {
                async move {
                    // Closed by hand (or by another round) since the list was read: leave it.
                    match db::meetings::lock(&mut c, id, Lock::Update).await? {
                        Some((m, _, _)) if m.status == MeetingStatus::Planned => {
                            close_out(&mut c, id, root, now).await.map(|_| true)
                        }
                        _ => Ok(false),
                    }
                }
                .scope_boxed()
            })
            .await?;
        closed += usize::from(done);
    }
    Ok(closed)
}

/// `requestLeave`: an expected member asks for leave (请假) before the meeting starts.
pub async fn request_leave(
    c: &mut Conn<'_>,
    p: &Principal,
    meeting_id: Uuid,
    reason: String,
    now: DateTime<Utc>,
) -> Result<LeaveRequest, Error> {
    let (meeting, path, _) = db::meetings::get(c, meeting_id)
        .await?
        .ok_or(Error::NotFound)?;
    if !p.sees(&path) {
        return Err(Error::NotFound);
    }
    LeaveRequest::may_request(&meeting, now)?;
    let (member, _) = db::members::get(c, p.member_id)
        .await?
        .ok_or(Error::NotFound)?;
    let committee = p.on_committee_of(meeting.org_id);
    if !is_expected(&meeting, member.org_id, member.group_id, committee) {
        return Err(refuse(ClockInError::NotExpected));
    }
    let leave = LeaveRequest {
        id: Uuid::now_v7(),
        meeting_id: meeting.id,
        member_id: member.id,
        reason,
        status: LeaveStatus::Requested,
        decided_by: None,
        decided_at: None,
        note: None,
        created_at: now,
    };
    db::attendance::insert_leave(c, &leave, meeting.org_id).await?;
    Ok(leave)
}

/// `decideLeave`: the committee approves or refuses a request, once.
pub async fn decide_leave(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    approve: bool,
    note: Option<String>,
    now: DateTime<Utc>,
) -> Result<LeaveRequest, Error> {
    let (leave, org, path) = db::attendance::leave(c, id).await?.ok_or(Error::NotFound)?;
    super::authorize(p, yunlian_domain::auth::Action::ManageMeetings, &path)?;
    let leave = leave.decide(approve, p.member_id, note, now)?;
    db::attendance::decide_leave(c, &leave, org).await?;
    Ok(leave)
}

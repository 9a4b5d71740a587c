//! Judging a clock-in: one pure function over the facts the use case loaded, every refusal in
//! one documented order.

use super::{
    check_code, check_fence, is_expected, judge_time, verify_signature, ClockInError,
    ClockInEvidence, Device, KeyAlgorithm, Meeting, MeetingStatus, Punctuality,
};
use chrono::{DateTime, TimeDelta, Utc};

/// How far ahead of the server a queued clock-in's time may be before it is refused.
pub const FUTURE_TOLERANCE: TimeDelta = TimeDelta::minutes(2);
/// How long after its end a held meeting still takes queued clock-ins.
pub const LATE_UPLOAD_LIMIT: TimeDelta = TimeDelta::days(30);

/// What a clock-in is judged on, as the use case loaded it.
#[derive(Debug, Clone, Copy)]
pub struct ClockInFacts<'a> {
    pub meeting: &'a Meeting,
    /// The meeting's code secret.
    pub secret: &'a [u8],
    pub member_id: uuid::Uuid,
    pub member_org: uuid::Uuid,
    pub member_group: Option<uuid::Uuid>,
    /// Whether the member sits on the committee of the meeting's org.
    pub on_committee: bool,
    /// The device the evidence names, with its decoded public key, if it exists.
    pub device: Option<(&'a Device, &'a [u8])>,
    /// Whether the member already clocked in at this meeting.
    pub already: bool,
    /// The evidence's signature checked before the facts were locked, if it was.
    pub prechecked: Option<Prechecked<'a>>,
}

/// A signature check made before the facts were locked (on SQLite, whose one writer at a time
/// should not spend its turn on elliptic curves): the device key it was made with and its
/// outcome. [`judge`] trusts it only when the device's key and algorithm are still those;
/// otherwise it checks the signature itself.
#[derive(Debug, Clone, Copy)]
pub struct Prechecked<'a> {
    pub algorithm: KeyAlgorithm,
    pub key: &'a [u8],
    pub verified: bool,
}

/// The outcome of a clock-in that is not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The member's first clock-in stands; this one (verified) returns it.
    Repeat,
    /// A new clock-in, on time or late.
    Accept(Punctuality),
}

/// Judges a clock-in made at `at` (the server's clock online, the derived time offline), by
/// the server's clock `now`. The checks, in this order, each with its refusal:
///
/// 1. the member is expected at the meeting (`not_expected`);
/// 2. the meeting is not cancelled (`meeting_cancelled`), nor held longer ago than
///    [`LATE_UPLOAD_LIMIT`] (`meeting_closed`);
/// 3. the device is the member's (`device_not_yours`) and was not revoked by then
///    (`device_revoked`);
/// 4. the signature verifies over the evidence (`bad_signature`); only then is a repeat
///    answered with the first clock-in;
/// 5. the time is not in the future beyond [`FUTURE_TOLERANCE`] (`event_in_future`);
/// 6. the code is the meeting's at that time (`code_invalid`);
/// 7. the location is inside the geofence, if the meeting has one (`location_required`,
///    `outside_fence`);
/// 8. the time falls in the check-in window (`too_early`, `meeting_closed`), on time or late.
pub fn judge(
    f: &ClockInFacts<'_>,
    evidence: &ClockInEvidence,
    signature: Option<&[u8]>,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Verdict, ClockInError> {
    let m = f.meeting;
    if !is_expected(m, f.member_org, f.member_group, f.on_committee) {
        return Err(ClockInError::NotExpected);
    }
    if m.status == MeetingStatus::Cancelled {
        return Err(ClockInError::MeetingCancelled);
    }
    if m.status == MeetingStatus::Held && now > m.ends_at + LATE_UPLOAD_LIMIT {
        return Err(ClockInError::MeetingClosed);
    }
    let (device, key) = f
        .device
        .filter(|(d, _)| d.member_id == f.member_id)
        .ok_or(ClockInError::DeviceNotYours)?;
    if device
        .revoked_at
        .is_some_and(|r| r <= at.max(device.created_at))
    {
        return Err(ClockInError::DeviceRevoked);
    }
    let signature = signature.ok_or(ClockInError::BadSignature)?;
    match f.prechecked {
        Some(pre) if pre.algorithm == device.algorithm && pre.key == key => {
            if !pre.verified {
                return Err(ClockInError::BadSignature);
            }
        }
        _ => verify_signature(device.algorithm, key, &evidence.canonical(), signature)?,
    }
    if f.already {
        return Ok(Verdict::Repeat);
    }
    if at > now + FUTURE_TOLERANCE {
        return Err(ClockInError::EventInFuture);
    }
    check_code(f.secret, &evidence.code, at)?;
    if let Some(fence) = &m.geofence {
        check_fence(fence, evidence.location.as_ref())?;
    }
    judge_time(m.starts_at, m.ends_at, m.checkin_window, at).map(Verdict::Accept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attendance::{
        meeting_code, CheckinWindow, Geofence, KeyAlgorithm, Location, MeetingType, Unlock,
    };
    use p256::ecdsa::{signature::Signer, Signature, SigningKey};
    use uuid::Uuid;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.to_utc())
            .unwrap_or_default()
    }

    struct World {
        meeting: Meeting,
        secret: Vec<u8>,
        member: Uuid,
        member_org: Uuid,
        device: Device,
        key: Vec<u8>,
        signer: SigningKey,
    }

    fn world() -> World {
        let signer = SigningKey::from_slice(&[7u8; 32]).unwrap_or_else(|_| unreachable!());
        let key = signer
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        let (org, member) = (Uuid::now_v7(), Uuid::now_v7());
        let starts = t("2026-11-22T09:00:00Z");
        World {
            meeting: Meeting {
                id: Uuid::now_v7(),
                org_id: org,
                meeting_type: MeetingType::ThemedPartyDay,
                title: "主题党日".into(),
                agenda: None,
                starts_at: starts,
                ends_at: starts + TimeDelta::hours(2),
                place: None,
                geofence: Some(Geofence {
                    lat: 30.889,
                    lng: 119.42,
                    radius_m: 100.0,
                }),
                video_room: None,
                checkin_window: CheckinWindow::default(),
                status: MeetingStatus::Planned,
                minutes: None,
                created_by: member,
                created_at: starts,
                updated_at: starts,
            },
            secret: vec![42; 20],
            member,
            member_org: org,
            device: Device {
                id: Uuid::now_v7(),
                member_id: member,
                algorithm: KeyAlgorithm::P256,
                public_key: String::new(),
                unlock: Unlock::Face,
                label: None,
                created_at: t("2026-11-01T00:00:00Z"),
                revoked_at: None,
            },
            key,
            signer,
        }
    }

    impl World {
        /// The facts of the member's clock-in with their own device.
        fn facts<'a>(
            &'a self,
            already: bool,
            prechecked: Option<Prechecked<'a>>,
        ) -> ClockInFacts<'a> {
            ClockInFacts {
                meeting: &self.meeting,
                secret: &self.secret,
                member_id: self.member,
                member_org: self.member_org,
                member_group: None,
                on_committee: false,
                device: Some((&self.device, &self.key)),
                already,
                prechecked,
            }
        }
    }

    /// The member's evidence at `at`: the meeting's code then, inside the hall's fence.
    fn evidence(w: &World, at: DateTime<Utc>) -> ClockInEvidence {
        ClockInEvidence {
            meeting_id: w.meeting.id,
            member_id: w.member,
            device_id: w.device.id,
            code: meeting_code(&w.secret, at),
            event_time: at,
            location: Some(Location {
                lat: 30.889,
                lng: 119.42,
                accuracy_m: 10.0,
            }),
        }
    }

    /// One clock-in attempt: what to change in the world and the evidence, and what must come
    /// of it.
    struct Row {
        name: &'static str,
        at: &'static str,
        change: fn(&mut World, &mut ClockInEvidence, &mut bool),
        expect: Result<Verdict, ClockInError>,
    }

    /// The row whose evidence is changed after the phone signed it.
    const FORGED: &str = "forged evidence";

    #[test]
    fn every_clock_in_outcome_in_its_documented_order() {
        let none = |_: &mut World, _: &mut ClockInEvidence, _: &mut bool| {};
        let rows = [
            Row {
                name: "on time",
                at: "2026-11-22T09:05:00Z",
                change: none,
                expect: Ok(Verdict::Accept(Punctuality::OnTime)),
            },
            Row {
                name: "late",
                at: "2026-11-22T09:30:00Z",
                change: none,
                expect: Ok(Verdict::Accept(Punctuality::Late)),
            },
            Row {
                name: "another branch's member",
                at: "2026-11-22T09:05:00Z",
                change: |w, _, _| w.member_org = Uuid::now_v7(),
                expect: Err(ClockInError::NotExpected),
            },
            Row {
                name: "cancelled",
                at: "2026-11-22T09:05:00Z",
                change: |w, _, _| w.meeting.status = MeetingStatus::Cancelled,
                expect: Err(ClockInError::MeetingCancelled),
            },
            Row {
                name: "held too long ago",
                at: "2026-11-22T09:05:00Z",
                change: |w, _, _| {
                    w.meeting.status = MeetingStatus::Held;
                    w.meeting.ends_at = t("2026-10-01T00:00:00Z");
                },
                expect: Err(ClockInError::MeetingClosed),
            },
            Row {
                name: "someone else's phone",
                at: "2026-11-22T09:05:00Z",
                change: |w, _, _| w.device.member_id = Uuid::now_v7(),
                expect: Err(ClockInError::DeviceNotYours),
            },
            Row {
                name: "revoked phone",
                at: "2026-11-22T09:05:00Z",
                change: |w, _, _| w.device.revoked_at = Some(t("2026-11-22T08:00:00Z")),
                expect: Err(ClockInError::DeviceRevoked),
            },
            Row {
                name: FORGED,
                at: "2026-11-22T09:05:00Z",
                change: none,
                expect: Err(ClockInError::BadSignature),
            },
            Row {
                name: "a verified repeat",
                at: "2026-11-22T09:05:00Z",
                change: |_, _, already| *already = true,
                expect: Ok(Verdict::Repeat),
            },
            Row {
                name: "from the future",
                at: "2026-11-22T12:05:00Z",
                change: none,
                expect: Err(ClockInError::EventInFuture),
            },
            Row {
                name: "wrong code",
                at: "2026-11-22T09:05:00Z",
                change: |w, _, _| w.secret = vec![1; 20],
                expect: Err(ClockInError::CodeInvalid),
            },
            Row {
                name: "no location",
                at: "2026-11-22T09:05:00Z",
                change: |_, e, _| e.location = None,
                expect: Err(ClockInError::LocationRequired),
            },
            Row {
                name: "far from the hall",
                at: "2026-11-22T09:05:00Z",
                change: |_, e, _| {
                    e.location = Some(Location {
                        lat: 31.0,
                        lng: 119.42,
                        accuracy_m: 5.0,
                    })
                },
                expect: Err(ClockInError::OutsideFence),
            },
            Row {
                name: "too early",
                at: "2026-11-22T08:00:00Z",
                change: none,
                expect: Err(ClockInError::TooEarly),
            },
            Row {
                name: "after the end",
                at: "2026-11-22T11:30:00Z",
                change: |w, _, _| w.meeting.status = MeetingStatus::Held,
                expect: Err(ClockInError::MeetingClosed),
            },
        ];
        let now = t("2026-11-22T11:45:00Z");
        for row in rows {
            let mut w = world();
            let at = t(row.at);
            let mut ev = evidence(&w, at);
            let mut already = false;
            (row.change)(&mut w, &mut ev, &mut already);
            let sig: Signature = w.signer.sign(&ev.canonical());
            let sig = sig.to_der().as_bytes().to_vec();
            if row.name == FORGED {
                ev.code = "000000".into(); // changed after it was signed
            }
            let facts = w.facts(already, None);
            let facts = if row.name == "another branch's member" {
                ClockInFacts {
                    member_org: Uuid::now_v7(),
                    ..facts
                }
            } else {
                facts
            };
            assert_eq!(
                judge(&facts, &ev, Some(&sig), at, now),
                row.expect,
                "{}",
                row.name
            );
        }
    }

    /// A signature checked before the lock is trusted for the key it was checked with, and for
    /// no other: a device whose key changed in between is checked again.
    #[test]
    fn a_prechecked_signature_counts_only_for_the_key_it_was_checked_with() {
        let w = world();
        let at = t("2026-11-22T09:05:00Z");
        let ev = evidence(&w, at);
        let good: Signature = w.signer.sign(&ev.canonical());
        let good = good.to_der().as_bytes().to_vec();
        let forged: Signature = w.signer.sign(b"something else");
        let forged = forged.to_der().as_bytes().to_vec();
        let other_key = vec![4u8; 65];
        let judged = |pre: Option<Prechecked<'_>>, sig: &[u8]| {
            judge(&w.facts(false, pre), &ev, Some(sig), at, at)
        };
        fn with(key: &[u8], verified: bool) -> Option<Prechecked<'_>> {
            Some(Prechecked {
                algorithm: KeyAlgorithm::P256,
                key,
                verified,
            })
        }
        let on_time = Ok(Verdict::Accept(Punctuality::OnTime));
        assert_eq!(judged(None, &good), on_time);
        // Same key: its outcome stands, whichever bytes came (it was made over these).
        let same = w.key.as_slice();
        assert_eq!(judged(with(same, true), &good), on_time);
        assert_eq!(
            judged(with(same, false), &good),
            Err(ClockInError::BadSignature)
        );
        // Another key (the device changed): ignored, the signature checked again.
        let other = other_key.as_slice();
        assert_eq!(
            judged(with(other, true), &forged),
            Err(ClockInError::BadSignature)
        );
        assert_eq!(judged(with(other, false), &good), on_time);
        // Another algorithm with the same bytes: ignored too.
        let ed = Some(Prechecked {
            algorithm: KeyAlgorithm::Ed25519,
            key: same,
            verified: true,
        });
        assert_eq!(judged(ed, &forged), Err(ClockInError::BadSignature));
    }
}

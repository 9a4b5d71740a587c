//! Organisational life (组织生活): meeting types and cadences, and the rules that judge a
//! member's clock-in from a phone: the check-in window, the rotating meeting code (RFC 6238
//! TOTP over the meeting's secret, which the secretary's phone computes offline), the geofence,
//! and the signature of the member's device key over a canonical encoding of the evidence.

mod clock_in;
pub use clock_in::{judge, ClockInFacts, Verdict, FUTURE_TOLERANCE, LATE_UPLOAD_LIMIT};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingType {
    /// 支部党员大会
    BranchGeneralMeeting,
    /// 支部委员会会议
    BranchCommitteeMeeting,
    /// 党小组会
    PartyGroupMeeting,
    /// 党课
    PartyLecture,
    /// 主题党日
    ThemedPartyDay,
    /// 组织生活会 / 民主评议党员
    OrgLifeMeeting,
}

/// How often a branch must hold a meeting type, by default (a township may configure others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    Month,
    Quarter,
    Year,
}

impl MeetingType {
    pub fn default_cadence(self) -> Cadence {
        use MeetingType::*;
        match self {
            BranchGeneralMeeting | PartyLecture => Cadence::Quarter,
            BranchCommitteeMeeting | PartyGroupMeeting | ThemedPartyDay => Cadence::Month,
            OrgLifeMeeting => Cadence::Year,
        }
    }

    /// A committee meeting expects the committee; every other type all members of the org.
    pub fn committee_only(self) -> bool {
        self == MeetingType::BranchCommitteeMeeting
    }
}

/// Why a clock-in is refused: each a stable code, so the phone can tell the member which check
/// failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockInError {
    #[error("bad_signature")]
    BadSignature,
    #[error("device_revoked")]
    DeviceRevoked,
    #[error("device_not_yours")]
    DeviceNotYours,
    #[error("code_invalid")]
    CodeInvalid,
    #[error("location_required")]
    LocationRequired,
    #[error("outside_fence")]
    OutsideFence,
    #[error("too_early")]
    TooEarly,
    #[error("meeting_closed")]
    MeetingClosed,
    #[error("meeting_cancelled")]
    MeetingCancelled,
    #[error("not_expected")]
    NotExpected,
    #[error("event_in_future")]
    EventInFuture,
}

impl ClockInError {
    pub fn code(self) -> &'static str {
        match self {
            ClockInError::BadSignature => "bad_signature",
            ClockInError::DeviceRevoked => "device_revoked",
            ClockInError::DeviceNotYours => "device_not_yours",
            ClockInError::CodeInvalid => "code_invalid",
            ClockInError::LocationRequired => "location_required",
            ClockInError::OutsideFence => "outside_fence",
            ClockInError::TooEarly => "too_early",
            ClockInError::MeetingClosed => "meeting_closed",
            ClockInError::MeetingCancelled => "meeting_cancelled",
            ClockInError::NotExpected => "not_expected",
            ClockInError::EventInFuture => "event_in_future",
        }
    }
}

/// When a meeting accepts clock-ins: from `opens_before` before the start; on time until
/// `on_time_after` after it; late until the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinWindow {
    pub opens_before_min: i64,
    pub on_time_after_min: i64,
}

impl Default for CheckinWindow {
    fn default() -> Self {
        CheckinWindow {
            opens_before_min: 30,
            on_time_after_min: 15,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Punctuality {
    OnTime,
    Late,
}

/// Judges the moment of a clock-in against the meeting's times.
pub fn judge_time(
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    w: CheckinWindow,
    at: DateTime<Utc>,
) -> Result<Punctuality, ClockInError> {
    if at < starts_at - TimeDelta::minutes(w.opens_before_min) {
        Err(ClockInError::TooEarly)
    } else if at <= starts_at + TimeDelta::minutes(w.on_time_after_min) {
        Ok(Punctuality::OnTime)
    } else if at <= ends_at {
        Ok(Punctuality::Late)
    } else {
        Err(ClockInError::MeetingClosed)
    }
}

/// A place with a radius, in metres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geofence {
    pub lat: f64,
    pub lng: f64,
    pub radius_m: f64,
}

/// Where the phone says it is, and how sure it is (metres).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub lat: f64,
    pub lng: f64,
    pub accuracy_m: f64,
}

/// The most a phone's reported inaccuracy may widen a fence: a fix good to 5 km proves nothing.
pub const MAX_ACCURACY_ALLOWANCE_M: f64 = 100.0;

/// Great-circle distance in metres (haversine, mean Earth radius).
pub fn distance_m(a_lat: f64, a_lng: f64, b_lat: f64, b_lng: f64) -> f64 {
    const R: f64 = 6_371_008.8;
    let (p1, p2) = (a_lat.to_radians(), b_lat.to_radians());
    let dp = (b_lat - a_lat).to_radians();
    let dl = (b_lng - a_lng).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().asin()
}

/// Inside when the distance, less the phone's accuracy (capped), is within the radius.
pub fn check_fence(fence: &Geofence, loc: Option<&Location>) -> Result<(), ClockInError> {
    let loc = loc.ok_or(ClockInError::LocationRequired)?;
    let valid = loc.lat.is_finite()
        && loc.lng.is_finite()
        && (-90.0..=90.0).contains(&loc.lat)
        && (-180.0..=180.0).contains(&loc.lng);
    if !valid {
        return Err(ClockInError::OutsideFence);
    }
    let slack = loc.accuracy_m.clamp(0.0, MAX_ACCURACY_ALLOWANCE_M);
    if distance_m(fence.lat, fence.lng, loc.lat, loc.lng) - slack <= fence.radius_m {
        Ok(())
    } else {
        Err(ClockInError::OutsideFence)
    }
}

/// The rotating meeting code: RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30 s steps) over the meeting
/// secret, exactly what a phone's standard authenticator library computes.
pub const CODE_STEP_SECS: u64 = 30;
/// Steps either side of the clock-in time a code may be from (the QR on the secretary's screen
/// may be a step old when scanned, and phone clocks drift).
pub const CODE_SKEW_STEPS: u8 = 2;

/// `new_unchecked`: meeting secrets are 20 random bytes, and RFC 6238's own test secret (used
/// below) is shorter than totp-rs's 128-bit floor.
fn totp(secret: &[u8]) -> totp_rs::TOTP {
    totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        CODE_SKEW_STEPS,
        CODE_STEP_SECS,
        secret.to_vec(),
    )
}

/// The code a secretary's phone shows at `at`.
pub fn meeting_code(secret: &[u8], at: DateTime<Utc>) -> String {
    totp(secret).generate(at.timestamp().max(0) as u64)
}

/// Whether `code` is the meeting's code for a moment within the skew of `at`.
pub fn check_code(secret: &[u8], code: &str, at: DateTime<Utc>) -> Result<(), ClockInError> {
    let ok = code.len() == 6
        && code.bytes().all(|b| b.is_ascii_digit())
        && totp(secret).check(code, at.timestamp().max(0) as u64);
    if ok {
        Ok(())
    } else {
        Err(ClockInError::CodeInvalid)
    }
}

/// What a phone signs when a member clocks in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockInEvidence {
    pub meeting_id: Uuid,
    pub member_id: Uuid,
    pub device_id: Uuid,
    pub code: String,
    pub event_time: DateTime<Utc>,
    pub location: Option<Location>,
}

impl ClockInEvidence {
    /// The canonical bytes a device key signs: one field a line, fixed order, times in whole
    /// seconds UTC, coordinates to 7 decimals (about a centimetre), `-` for no location.
    pub fn canonical(&self) -> Vec<u8> {
        let loc = match &self.location {
            Some(l) => format!("{:.7}\n{:.7}\n{:.1}", l.lat, l.lng, l.accuracy_m),
            None => "-\n-\n-".to_string(),
        };
        format!(
            "yunlian-clockin-v1\n{}\n{}\n{}\n{}\n{}\n{}",
            self.meeting_id,
            self.member_id,
            self.device_id,
            self.code,
            self.event_time.format("%Y-%m-%dT%H:%M:%SZ"),
            loc
        )
        .into_bytes()
    }
}

/// The key kinds phones make in secure hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyAlgorithm {
    /// ECDSA over P-256 with SHA-256 (Android Keystore, iOS Secure Enclave).
    P256,
    Ed25519,
}

/// Checks a public key when a device registers: P-256 as SEC1 (compressed or not) or SPKI DER;
/// Ed25519 as 32 raw bytes.
pub fn check_public_key(alg: KeyAlgorithm, key: &[u8]) -> bool {
    match alg {
        KeyAlgorithm::P256 => p256_key(key).is_some(),
        KeyAlgorithm::Ed25519 => <[u8; 32]>::try_from(key)
            .ok()
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
            .is_some(),
    }
}

fn p256_key(key: &[u8]) -> Option<p256::ecdsa::VerifyingKey> {
    use p256::pkcs8::DecodePublicKey;
    p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
        .ok()
        .or_else(|| p256::ecdsa::VerifyingKey::from_public_key_der(key).ok())
}

/// Verifies a device signature over `msg`. P-256 signatures may be DER (as Android and iOS
/// produce them) or the fixed 64-byte r‖s form.
pub fn verify_signature(
    alg: KeyAlgorithm,
    key: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), ClockInError> {
    let ok = match alg {
        KeyAlgorithm::P256 => {
            use p256::ecdsa::signature::Verifier;
            let signature = p256::ecdsa::Signature::from_der(sig)
                .or_else(|_| p256::ecdsa::Signature::from_slice(sig));
            match (p256_key(key), signature) {
                (Some(k), Ok(s)) => k.verify(msg, &s).is_ok(),
                _ => false,
            }
        }
        KeyAlgorithm::Ed25519 => {
            use ed25519_dalek::Verifier;
            let k = <[u8; 32]>::try_from(key)
                .ok()
                .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok());
            let s = <[u8; 64]>::try_from(sig)
                .ok()
                .map(|s| ed25519_dalek::Signature::from_bytes(&s));
            matches!((k, s), (Some(k), Some(s)) if k.verify(msg, &s).is_ok())
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ClockInError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.to_utc())
            .unwrap_or_default()
    }

    #[test]
    fn the_window_opens_30_minutes_before_and_is_late_after_15() {
        let (s, e) = (at("2026-11-22T09:00:00Z"), at("2026-11-22T11:00:00Z"));
        let w = CheckinWindow::default();
        assert_eq!(
            judge_time(s, e, w, at("2026-11-22T08:29:59Z")),
            Err(ClockInError::TooEarly)
        );
        assert_eq!(
            judge_time(s, e, w, at("2026-11-22T08:30:00Z")),
            Ok(Punctuality::OnTime)
        );
        assert_eq!(
            judge_time(s, e, w, at("2026-11-22T09:15:00Z")),
            Ok(Punctuality::OnTime)
        );
        assert_eq!(
            judge_time(s, e, w, at("2026-11-22T09:15:01Z")),
            Ok(Punctuality::Late)
        );
        assert_eq!(
            judge_time(s, e, w, at("2026-11-22T11:00:01Z")),
            Err(ClockInError::MeetingClosed)
        );
    }

    #[test]
    fn the_fence_allows_for_the_phones_accuracy_up_to_a_cap() {
        // 新杭镇 village hall; a point about 150 m north.
        let hall = Geofence {
            lat: 30.8890,
            lng: 119.4200,
            radius_m: 100.0,
        };
        let north = |acc| Location {
            lat: 30.8890 + 150.0 / 111_195.0,
            lng: 119.4200,
            accuracy_m: acc,
        };
        let d = distance_m(hall.lat, hall.lng, north(0.0).lat, north(0.0).lng);
        assert!((d - 150.0).abs() < 0.5, "{d}");
        assert_eq!(
            check_fence(&hall, Some(&north(10.0))),
            Err(ClockInError::OutsideFence)
        );
        assert_eq!(check_fence(&hall, Some(&north(60.0))), Ok(()));
        let far = Location {
            lat: 31.0,
            lng: 119.42,
            accuracy_m: 50_000.0,
        };
        assert_eq!(
            check_fence(&hall, Some(&far)),
            Err(ClockInError::OutsideFence),
            "accuracy is capped"
        );
        assert_eq!(
            check_fence(&hall, None),
            Err(ClockInError::LocationRequired)
        );
        let nan = Location {
            lat: f64::NAN,
            lng: 0.0,
            accuracy_m: 1.0,
        };
        assert_eq!(
            check_fence(&hall, Some(&nan)),
            Err(ClockInError::OutsideFence)
        );
    }

    #[test]
    fn meeting_codes_follow_rfc_6238() {
        // RFC 6238 appendix B, SHA1 secret "12345678901234567890": 94287082 at 59 s → 287082.
        let secret = b"12345678901234567890";
        assert_eq!(meeting_code(secret, at("1970-01-01T00:00:59Z")), "287082");
        assert_eq!(meeting_code(secret, at("2009-02-13T23:31:30Z")), "005924");
        let t = at("2026-11-22T09:00:10Z");
        let code = meeting_code(secret, t);
        assert_eq!(
            check_code(secret, &code, t + TimeDelta::seconds(50)),
            Ok(()),
            "a step or two old"
        );
        assert_eq!(
            check_code(secret, &code, t + TimeDelta::minutes(5)),
            Err(ClockInError::CodeInvalid)
        );
        assert_eq!(
            check_code(b"another-meeting-secret", &code, t),
            Err(ClockInError::CodeInvalid)
        );
        assert_eq!(
            check_code(secret, "12a456", t),
            Err(ClockInError::CodeInvalid)
        );
    }

    #[test]
    fn a_p256_signature_verifies_only_over_the_same_evidence() {
        use p256::ecdsa::{signature::Signer, Signature, SigningKey};
        let sk = SigningKey::from_slice(&[7u8; 32]).expect("key");
        let pk = sk.verifying_key().to_encoded_point(false);
        assert!(check_public_key(KeyAlgorithm::P256, pk.as_bytes()));
        let ev = ClockInEvidence {
            meeting_id: Uuid::nil(),
            member_id: Uuid::max(),
            device_id: Uuid::nil(),
            code: "287082".into(),
            event_time: at("2026-11-22T09:01:02.345Z"),
            location: Some(Location {
                lat: 30.889,
                lng: 119.42,
                accuracy_m: 12.0,
            }),
        };
        let sig: Signature = sk.sign(&ev.canonical());
        assert_eq!(
            verify_signature(
                KeyAlgorithm::P256,
                pk.as_bytes(),
                &ev.canonical(),
                sig.to_der().as_bytes()
            ),
            Ok(())
        );
        assert_eq!(
            verify_signature(
                KeyAlgorithm::P256,
                pk.as_bytes(),
                &ev.canonical(),
                &sig.to_bytes()
            ),
            Ok(())
        );
        let mut moved = ev.clone();
        moved.location = Some(Location {
            lat: 30.99,
            lng: 119.42,
            accuracy_m: 12.0,
        });
        assert_eq!(
            verify_signature(
                KeyAlgorithm::P256,
                pk.as_bytes(),
                &moved.canonical(),
                &sig.to_bytes()
            ),
            Err(ClockInError::BadSignature)
        );
        let other = SigningKey::from_slice(&[9u8; 32])
            .expect("key")
            .verifying_key()
            .to_encoded_point(true);
        assert_eq!(
            verify_signature(
                KeyAlgorithm::P256,
                other.as_bytes(),
                &ev.canonical(),
                &sig.to_bytes()
            ),
            Err(ClockInError::BadSignature)
        );
        assert!(!check_public_key(KeyAlgorithm::P256, b"not a key"));
        assert!(String::from_utf8(ev.canonical())
            .is_ok_and(|s| s.ends_with("2026-11-22T09:01:02Z\n30.8890000\n119.4200000\n12.0")));
    }

    #[test]
    fn an_ed25519_signature_verifies_too() {
        use ed25519_dalek::{Signer, SigningKey};
        let sk = SigningKey::from_bytes(&[3u8; 32]);
        let pk = sk.verifying_key().to_bytes();
        let msg = b"yunlian-clockin-v1\nx";
        let sig = sk.sign(msg).to_bytes();
        assert_eq!(
            verify_signature(KeyAlgorithm::Ed25519, &pk, msg, &sig),
            Ok(())
        );
        assert_eq!(
            verify_signature(KeyAlgorithm::Ed25519, &pk, b"other", &sig),
            Err(ClockInError::BadSignature)
        );
    }

    #[test]
    fn cadences_are_those_of_the_domain() {
        assert_eq!(
            MeetingType::ThemedPartyDay.default_cadence(),
            Cadence::Month
        );
        assert_eq!(
            MeetingType::PartyLecture.default_cadence(),
            Cadence::Quarter
        );
        assert_eq!(MeetingType::OrgLifeMeeting.default_cadence(), Cadence::Year);
        assert!(MeetingType::BranchCommitteeMeeting.committee_only());
    }
}

/// Which unlock guards a device key's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unlock {
    Fingerprint,
    Face,
    None,
}

/// A member's phone, registered with the public half of a key kept in its secure hardware.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Device {
    pub id: Uuid,
    pub member_id: Uuid,
    pub algorithm: KeyAlgorithm,
    /// Base64 of the public key (SEC1 or SPKI DER for P-256; 32 bytes for Ed25519).
    pub public_key: String,
    pub unlock: Unlock,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingStatus {
    Planned,
    Held,
    Cancelled,
}

/// A branch meeting (三会一课, 主题党日...), as stored and shown. Its code secret is kept apart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Meeting {
    pub id: Uuid,
    pub org_id: Uuid,
    pub meeting_type: MeetingType,
    pub title: String,
    pub agenda: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub place: Option<String>,
    pub geofence: Option<Geofence>,
    pub video_room: Option<String>,
    pub checkin_window: CheckinWindow,
    pub status: MeetingStatus,
    pub minutes: Option<String>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An edit of a meeting: what is absent stays as it is.
#[derive(Debug, Clone, Default)]
pub struct MeetingPatch {
    pub title: Option<String>,
    pub agenda: Option<Option<String>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub place: Option<Option<String>>,
    pub geofence: Option<Option<Geofence>>,
    /// Whether migrant members join by video; the room is named by the server.
    pub video: Option<bool>,
    pub checkin_window: Option<CheckinWindow>,
    pub minutes: Option<Option<String>>,
}

fn trimmed(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(crate::text::tidy)
        .filter(|s| !s.is_empty())
}

impl MeetingPatch {
    /// Whether the edit changes the plan (anything but the minutes).
    pub fn reschedules(&self) -> bool {
        self.title.is_some()
            || self.agenda.is_some()
            || self.starts_at.is_some()
            || self.ends_at.is_some()
            || self.place.is_some()
            || self.geofence.is_some()
            || self.video.is_some()
            || self.checkin_window.is_some()
    }

    /// The meeting after this edit. The plan changes only while the meeting is planned; minutes
    /// may be written after it is held, never to a cancelled one.
    pub fn apply(&self, m: &Meeting) -> Result<Meeting, crate::Error> {
        if (self.reschedules() && m.status != MeetingStatus::Planned)
            || m.status == MeetingStatus::Cancelled
        {
            return Err(crate::Error::Conflict("meeting_not_planned"));
        }
        let mut m = m.clone();
        if let Some(t) = &self.title {
            m.title = crate::text::tidy(t);
        }
        if let Some(a) = &self.agenda {
            m.agenda = trimmed(a);
        }
        if let Some(s) = self.starts_at {
            m.starts_at = crate::truncate_micros(s);
        }
        if let Some(e) = self.ends_at {
            m.ends_at = crate::truncate_micros(e);
        }
        if let Some(p) = &self.place {
            m.place = trimmed(p);
        }
        if let Some(g) = self.geofence {
            m.geofence = g;
        }
        if let Some(v) = self.video {
            m.video_room = v.then(|| Meeting::room_name(m.id));
        }
        if let Some(w) = self.checkin_window {
            m.checkin_window = w;
        }
        if let Some(x) = &self.minutes {
            m.minutes = trimmed(x);
        }
        m.validate()?;
        Ok(m)
    }
}

impl Meeting {
    /// The video room of a meeting: named by the server from the meeting's id, so no client can
    /// point a meeting at another branch's room.
    pub fn room_name(id: Uuid) -> String {
        format!("yl-{}", id.simple())
    }

    /// Checks the fields a committee sets; every problem is reported at once.
    pub fn validate(&self) -> Result<(), crate::Error> {
        use crate::FieldError;
        let mut errs = Vec::new();
        use crate::text::{refused, Kind};
        let texts = [
            ("title", Some(&self.title), Kind::Line),
            ("agenda", self.agenda.as_ref(), Kind::Block),
            ("place", self.place.as_ref(), Kind::Line),
            ("minutes", self.minutes.as_ref(), Kind::Block),
        ];
        for (field, value, kind) in texts {
            if let Some(code) = value.and_then(|v| refused(v, kind)) {
                errs.push(FieldError::new(field, code));
            }
        }
        let n = self.title.trim().chars().count();
        if n == 0 {
            errs.push(FieldError::new("title", "required"));
        } else if n > 100 {
            errs.push(FieldError::new("title", "too_long"));
        }
        if self
            .agenda
            .as_ref()
            .is_some_and(|a| a.chars().count() > 5000)
        {
            errs.push(FieldError::new("agenda", "too_long"));
        }
        if self
            .minutes
            .as_ref()
            .is_some_and(|a| a.chars().count() > 20000)
        {
            errs.push(FieldError::new("minutes", "too_long"));
        }
        if self.place.as_ref().is_some_and(|a| a.chars().count() > 200) {
            errs.push(FieldError::new("place", "too_long"));
        }
        if self.ends_at <= self.starts_at || self.ends_at - self.starts_at > TimeDelta::hours(24) {
            errs.push(FieldError::new("ends_at", "out_of_range"));
        }
        if let Some(f) = &self.geofence {
            let ok = (-90.0..=90.0).contains(&f.lat)
                && (-180.0..=180.0).contains(&f.lng)
                && (10.0..=5000.0).contains(&f.radius_m);
            if !ok {
                errs.push(FieldError::new("geofence", "out_of_range"));
            }
        }
        let w = self.checkin_window;
        if !(0..=240).contains(&w.opens_before_min) || !(0..=240).contains(&w.on_time_after_min) {
            errs.push(FieldError::new("checkin_window", "out_of_range"));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(crate::Error::Invalid(errs))
        }
    }
}

/// A recorded clock-in: the judgement and the evidence it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClockIn {
    pub id: Uuid,
    pub meeting_id: Uuid,
    pub member_id: Uuid,
    pub device_id: Uuid,
    pub punctuality: Punctuality,
    /// When it counts as made, and how that was derived (`uptime`, `device_clock`, `server`).
    pub event_time: DateTime<Utc>,
    pub time_source: crate::sync::TimeSource,
    /// The phone's clock as signed.
    pub device_time: DateTime<Utc>,
    pub code: String,
    pub location: Option<Location>,
    pub signature: String,
    /// The unlock that guarded the device key.
    pub unlock: Unlock,
    /// `online` or `sync`.
    pub via: String,
    pub created_at: DateTime<Utc>,
}

/// Whether a member is expected at a meeting: every member of the org (a party group's meeting:
/// every member of the group), and for a committee meeting only the committee.
pub fn is_expected(
    meeting: &Meeting,
    member_org: Uuid,
    member_group: Option<Uuid>,
    committee_roles_at_org: bool,
) -> bool {
    if meeting.meeting_type.committee_only() {
        return committee_roles_at_org;
    }
    member_org == meeting.org_id || member_group == Some(meeting.org_id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveStatus {
    Requested,
    Approved,
    Refused,
}

/// A member's request for leave (请假) from a meeting, and the committee's decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaveRequest {
    pub id: Uuid,
    pub meeting_id: Uuid,
    pub member_id: Uuid,
    pub reason: String,
    pub status: LeaveStatus,
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Each expected attendee's one status when a meeting closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalStatus {
    Present,
    Late,
    /// Present by video: connected for at least the threshold share of the meeting.
    Video,
    /// Leave requested and approved.
    Excused,
    Absent,
}

/// The default share of a meeting a member must be connected by video to count as present.
pub const VIDEO_THRESHOLD: (i64, i64) = (2, 3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoEventKind {
    Joined,
    Left,
}

/// Seconds connected within the meeting, from join and leave events in any order (duplicates
/// and a missing leave are harmless: an open connection ends with the meeting).
pub fn video_seconds(
    mut events: Vec<(DateTime<Utc>, VideoEventKind)>,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
) -> i64 {
    events.sort();
    let mut total = TimeDelta::zero();
    let mut open: Option<DateTime<Utc>> = None;
    for (at, kind) in events {
        match (kind, open) {
            (VideoEventKind::Joined, None) => open = Some(at),
            (VideoEventKind::Left, Some(from)) => {
                total += overlap(from, at, starts, ends);
                open = None;
            }
            _ => {}
        }
    }
    if let Some(from) = open {
        total += overlap(from, ends, starts, ends);
    }
    total.num_seconds()
}

fn overlap(a: DateTime<Utc>, b: DateTime<Utc>, s: DateTime<Utc>, e: DateTime<Utc>) -> TimeDelta {
    let (from, to) = (a.max(s), b.min(e));
    if to > from {
        to - from
    } else {
        TimeDelta::zero()
    }
}

/// The final status: a clock-in first, then enough video, then approved leave, else absent.
pub fn final_status(
    clock_in: Option<Punctuality>,
    video_secs: i64,
    meeting_secs: i64,
    threshold: (i64, i64),
    leave_approved: bool,
) -> FinalStatus {
    match clock_in {
        Some(Punctuality::OnTime) => FinalStatus::Present,
        Some(Punctuality::Late) => FinalStatus::Late,
        None if meeting_secs > 0 && video_secs * threshold.1 >= meeting_secs * threshold.0 => {
            FinalStatus::Video
        }
        None if leave_approved => FinalStatus::Excused,
        None => FinalStatus::Absent,
    }
}

#[cfg(test)]
mod closeout_tests {
    use super::*;

    fn at(m: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_795_000_000 + m * 60, 0).unwrap_or_default()
    }

    #[test]
    fn video_time_is_clipped_to_the_meeting_and_tolerates_disorder() {
        use VideoEventKind::*;
        let (s, e) = (at(0), at(120));
        // Joined early, dropped at 30, back at 40 until the end (no leave event), a duplicate join.
        let ev = vec![
            (at(40), Joined),
            (at(30), Left),
            (at(-10), Joined),
            (at(41), Joined),
        ];
        assert_eq!(video_seconds(ev, s, e), (30 + 80) * 60);
        assert_eq!(
            video_seconds(vec![(at(0), Joined), (at(10), Left)], s, e),
            600
        );
        assert_eq!(video_seconds(vec![(at(10), Left)], s, e), 0);
    }

    #[test]
    fn statuses_follow_their_precedence() {
        let m = 120 * 60;
        assert_eq!(
            final_status(Some(Punctuality::OnTime), 0, m, VIDEO_THRESHOLD, true),
            FinalStatus::Present
        );
        assert_eq!(
            final_status(Some(Punctuality::Late), m, m, VIDEO_THRESHOLD, false),
            FinalStatus::Late
        );
        assert_eq!(
            final_status(None, 80 * 60, m, VIDEO_THRESHOLD, false),
            FinalStatus::Video
        );
        assert_eq!(
            final_status(None, 79 * 60, m, VIDEO_THRESHOLD, false),
            FinalStatus::Absent
        );
        assert_eq!(
            final_status(None, 10 * 60, m, VIDEO_THRESHOLD, true),
            FinalStatus::Excused
        );
    }
}

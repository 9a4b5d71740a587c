//! Clock-in evidence: the phone's device key and its signature, the rotating meeting code
//! (RFC 6238, computed offline on the secretary's phone), and the location against the fence.

use super::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    #[serde(serialize_with = "crate::rfc3339::ser")]
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
        KeyAlgorithm::P256 => match p256_key(key) {
            Some(k) => {
                use ring::signature::{
                    UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED,
                };
                // ring takes the uncompressed SEC1 point; p256 has parsed and checked it (from
                // SEC1 or SPKI, compressed or not).
                let point = k.to_encoded_point(false);
                let der = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point.as_bytes());
                let fixed = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point.as_bytes());
                der.verify(msg, sig).is_ok() || (sig.len() == 64 && fixed.verify(msg, sig).is_ok())
            }
            None => false,
        },
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
        // The signer's key compressed verifies too.
        let compressed = sk.verifying_key().to_encoded_point(true);
        assert_eq!(
            verify_signature(
                KeyAlgorithm::P256,
                compressed.as_bytes(),
                &ev.canonical(),
                &sig.to_bytes()
            ),
            Ok(())
        );
        // One bit of either form flipped fails.
        let mut der = sig.to_der().as_bytes().to_vec();
        let last = der.len() - 1;
        der[last] ^= 1;
        let mut fixed = sig.to_bytes().to_vec();
        fixed[10] ^= 1;
        for bad in [der, fixed] {
            assert_eq!(
                verify_signature(KeyAlgorithm::P256, pk.as_bytes(), &ev.canonical(), &bad),
                Err(ClockInError::BadSignature)
            );
        }
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
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::ser_opt")]
    pub revoked_at: Option<DateTime<Utc>>,
}

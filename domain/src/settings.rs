//! Township settings: every default DOMAIN.md names is a setting of an org (a township, or any
//! org above its branches), not a constant in code. An org stores only what it overrides;
//! [`resolve`] walks the org path from the root, the nearest ancestor that sets a value winning.
//! The server's configuration gives the root's defaults.

use crate::attendance::Cadence;
use crate::error::FieldError;
use serde::{Deserialize, Serialize};

/// The share of a meeting a member must be connected by video to count present, as `n/d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub num: i64,
    pub den: i64,
}

impl Share {
    /// `2/3`: positive, at most one.
    pub fn parse(s: &str) -> Option<Share> {
        let (a, b) = s.split_once('/')?;
        let (num, den) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        (num > 0 && den > 0 && num <= den && den <= 1000).then_some(Share { num, den })
    }

    pub fn as_tuple(self) -> (i64, i64) {
        (self.num, self.den)
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl Serialize for Share {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Share, D::Error> {
        let s = String::deserialize(d)?;
        Share::parse(&s).ok_or_else(|| serde::de::Error::custom("a fraction like 2/3"))
    }
}

/// The settings in force for an org, every one of them set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// A new meeting's check-in opens this long before its start (30).
    pub checkin_opens_before_min: i64,
    /// ... and counts as on time until this long after it (15); later is late.
    pub checkin_on_time_after_min: i64,
    /// Connected by video for this share of a meeting counts as present (2/3).
    pub video_present_share: Share,
    /// A video room token stops working this long after its meeting's end (30).
    pub video_token_grace_minutes: i64,
    /// An accepted life need (生活需求) is due this many days later (7).
    pub case_due_days_need: i64,
    /// ... and a suggestion (意见建议) this many (15).
    pub case_due_days_suggestion: i64,
    /// A case due within this many hours is "due soon" (48).
    pub case_due_soon_hours: i64,
    /// How often a branch must hold each meeting type (DOMAIN.md's cadences).
    pub cadence_branch_general_meeting: Cadence,
    pub cadence_branch_committee_meeting: Cadence,
    pub cadence_party_group_meeting: Cadence,
    pub cadence_party_lecture: Cadence,
    pub cadence_themed_party_day: Cadence,
    pub cadence_org_life_meeting: Cadence,
    /// A required meeting neither held nor planned this many days before its period ends is
    /// reminded (blue); a member's learning behind this many days before the month ends (7).
    pub warn_due_within_days: i64,
    /// A rectification notice is to be answered this many days after the period it follows
    /// (and after a return) (10).
    pub rectification_days: i64,
    /// A branch's quarter under this many points (of 30) is warned (25).
    pub assessment_quarter_min: i64,
    /// A year at this many points (of 100) or more is graded A, 示范型 (90) ...
    pub grade_a_min: i64,
    /// ... at this many B, 成长型 (80); under it C, 孵化型.
    pub grade_b_min: i64,
    /// Clock-in coordinates are kept precise this many days, then coarsened to about a
    /// kilometre (90).
    pub coordinates_precise_days: i64,
    /// The audit log keeps an entry this many days (1095: three years).
    pub audit_retention_days: i64,
    /// A member who left keeps their phone number and device keys this many days, then they
    /// are erased; their attendance stays counted (365).
    pub departed_retention_days: i64,
}

impl Default for Settings {
    /// DOMAIN.md's defaults.
    fn default() -> Self {
        Settings {
            checkin_opens_before_min: 30,
            checkin_on_time_after_min: 15,
            video_present_share: Share { num: 2, den: 3 },
            video_token_grace_minutes: 30,
            case_due_days_need: 7,
            case_due_days_suggestion: 15,
            case_due_soon_hours: 48,
            cadence_branch_general_meeting: Cadence::Quarter,
            cadence_branch_committee_meeting: Cadence::Month,
            cadence_party_group_meeting: Cadence::Month,
            cadence_party_lecture: Cadence::Quarter,
            cadence_themed_party_day: Cadence::Month,
            cadence_org_life_meeting: Cadence::Year,
            warn_due_within_days: 7,
            rectification_days: 10,
            assessment_quarter_min: 25,
            grade_a_min: 90,
            grade_b_min: 80,
            coordinates_precise_days: 90,
            audit_retention_days: 1095,
            departed_retention_days: 365,
        }
    }
}

/// What one org sets; what it leaves out comes from above.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkin_opens_before_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkin_on_time_after_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_present_share: Option<Share>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_token_grace_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_due_days_need: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_due_days_suggestion: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_due_soon_hours: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadence_branch_general_meeting: Option<Cadence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadence_branch_committee_meeting: Option<Cadence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadence_party_group_meeting: Option<Cadence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadence_party_lecture: Option<Cadence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadence_themed_party_day: Option<Cadence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadence_org_life_meeting: Option<Cadence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_due_within_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectification_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment_quarter_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade_a_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade_b_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates_precise_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_retention_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub departed_retention_days: Option<i64>,
}

impl Overrides {
    /// Every value within its bounds, or every field that is not.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        let mut within = |field: &str, v: Option<i64>, max: i64| {
            if v.is_some_and(|v| !(0..=max).contains(&v)) {
                errs.push(FieldError::new(field, "out_of_range"));
            }
        };
        within(
            "checkin_opens_before_min",
            self.checkin_opens_before_min,
            240,
        );
        within(
            "checkin_on_time_after_min",
            self.checkin_on_time_after_min,
            240,
        );
        within(
            "video_token_grace_minutes",
            self.video_token_grace_minutes,
            24 * 60,
        );
        let mut positive = |field: &str, v: Option<i64>, max: i64| {
            if v.is_some_and(|v| !(1..=max).contains(&v)) {
                errs.push(FieldError::new(field, "out_of_range"));
            }
        };
        positive("case_due_days_need", self.case_due_days_need, 365);
        positive(
            "case_due_days_suggestion",
            self.case_due_days_suggestion,
            365,
        );
        positive("case_due_soon_hours", self.case_due_soon_hours, 24 * 30);
        // A reminder earlier than a month would fire before a monthly period began.
        positive("warn_due_within_days", self.warn_due_within_days, 27);
        positive("rectification_days", self.rectification_days, 90);
        positive("assessment_quarter_min", self.assessment_quarter_min, 30);
        positive("grade_a_min", self.grade_a_min, 100);
        positive("grade_b_min", self.grade_b_min, 100);
        positive(
            "coordinates_precise_days",
            self.coordinates_precise_days,
            3650,
        );
        positive(
            "departed_retention_days",
            self.departed_retention_days,
            3650,
        );
        // An audit log kept less than a month would not outlive the questions asked of it.
        if self
            .audit_retention_days
            .is_some_and(|v| !(30..=3650).contains(&v))
        {
            errs.push(FieldError::new("audit_retention_days", "out_of_range"));
        }
        if let (Some(a), Some(b)) = (self.grade_a_min, self.grade_b_min) {
            if b >= a {
                errs.push(FieldError::new("grade_b_min", "grades_out_of_order"));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// The settings in force where `chain` ends: `root` (the configuration's defaults), then each
/// org's overrides from the root down, the nearest one that sets a value winning.
pub fn resolve(root: Settings, chain: &[Overrides]) -> Settings {
    chain.iter().fold(root, |s, o| Settings {
        checkin_opens_before_min: o
            .checkin_opens_before_min
            .unwrap_or(s.checkin_opens_before_min),
        checkin_on_time_after_min: o
            .checkin_on_time_after_min
            .unwrap_or(s.checkin_on_time_after_min),
        video_present_share: o.video_present_share.unwrap_or(s.video_present_share),
        video_token_grace_minutes: o
            .video_token_grace_minutes
            .unwrap_or(s.video_token_grace_minutes),
        case_due_days_need: o.case_due_days_need.unwrap_or(s.case_due_days_need),
        case_due_days_suggestion: o
            .case_due_days_suggestion
            .unwrap_or(s.case_due_days_suggestion),
        case_due_soon_hours: o.case_due_soon_hours.unwrap_or(s.case_due_soon_hours),
        cadence_branch_general_meeting: o
            .cadence_branch_general_meeting
            .unwrap_or(s.cadence_branch_general_meeting),
        cadence_branch_committee_meeting: o
            .cadence_branch_committee_meeting
            .unwrap_or(s.cadence_branch_committee_meeting),
        cadence_party_group_meeting: o
            .cadence_party_group_meeting
            .unwrap_or(s.cadence_party_group_meeting),
        cadence_party_lecture: o.cadence_party_lecture.unwrap_or(s.cadence_party_lecture),
        cadence_themed_party_day: o
            .cadence_themed_party_day
            .unwrap_or(s.cadence_themed_party_day),
        cadence_org_life_meeting: o
            .cadence_org_life_meeting
            .unwrap_or(s.cadence_org_life_meeting),
        warn_due_within_days: o.warn_due_within_days.unwrap_or(s.warn_due_within_days),
        rectification_days: o.rectification_days.unwrap_or(s.rectification_days),
        assessment_quarter_min: o.assessment_quarter_min.unwrap_or(s.assessment_quarter_min),
        grade_a_min: o.grade_a_min.unwrap_or(s.grade_a_min),
        grade_b_min: o.grade_b_min.unwrap_or(s.grade_b_min),
        coordinates_precise_days: o
            .coordinates_precise_days
            .unwrap_or(s.coordinates_precise_days),
        audit_retention_days: o.audit_retention_days.unwrap_or(s.audit_retention_days),
        departed_retention_days: o
            .departed_retention_days
            .unwrap_or(s.departed_retention_days),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_org_that_sets_a_value_wins() {
        let county = Overrides {
            video_present_share: Share::parse("1/2"),
            checkin_opens_before_min: Some(60),
            ..Default::default()
        };
        let township = Overrides {
            video_present_share: Share::parse("3/4"),
            ..Default::default()
        };
        let s = resolve(
            Settings::default(),
            &[county, township, Overrides::default()],
        );
        assert_eq!(s.video_present_share, Share { num: 3, den: 4 });
        assert_eq!(s.checkin_opens_before_min, 60);
        assert_eq!(s.checkin_on_time_after_min, 15);
        assert_eq!(resolve(Settings::default(), &[]), Settings::default());
    }

    #[test]
    fn overrides_are_bounded_and_shares_are_fractions() {
        assert_eq!(
            Share::parse("2/3").map(|s| s.to_string()),
            Some("2/3".into())
        );
        assert_eq!(Share::parse("4/3"), None);
        assert_eq!(Share::parse("0/3"), None);
        let bad = Overrides {
            checkin_opens_before_min: Some(-1),
            video_token_grace_minutes: Some(100_000),
            ..Default::default()
        };
        let fields: Vec<String> = bad
            .validate()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            ["checkin_opens_before_min", "video_token_grace_minutes"]
        );
        let parsed: Result<Overrides, _> =
            serde_json::from_str(r#"{"video_present_share": "1/1"}"#);
        assert_eq!(
            parsed.ok().and_then(|o| o.video_present_share),
            Share::parse("1/1")
        );
        assert!(serde_json::from_str::<Overrides>(r#"{"nonsense": 1}"#).is_err());
    }
}

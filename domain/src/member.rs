//! Members (党员): the fields DOMAIN.md names, parsed once at the edge.

use crate::error::FieldError;
use crate::text;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A mainland mobile number, normalised to 11 digits. The login of a member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

/// The prefix of an erased phone number.
const ERASED: &str = "erased:";

impl Phone {
    /// Accepts `138 0013 8000`, `138-0013-8000`, `+8613800138000`, `8613800138000`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let digits: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '\u{3000}'))
            .collect();
        let digits = digits
            .strip_prefix("+86")
            .or_else(|| digits.strip_prefix("0086"))
            .or_else(|| {
                (digits.len() == 13)
                    .then(|| digits.strip_prefix("86"))
                    .flatten()
            })
            .unwrap_or(&digits);
        let b = digits.as_bytes();
        let ok = b.len() == 11
            && b[0] == b'1'
            && (b'3'..=b'9').contains(&b[1])
            && b.iter().all(u8::is_ascii_digit);
        if ok {
            Ok(Phone(digits.to_string()))
        } else if digits.is_empty() {
            Err(FieldError::new("phone", "required"))
        } else {
            Err(FieldError::new("phone", "invalid_phone"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What stands in the place of the number of a member who left and whose retention
    /// period ended: unique (the column is), and no number at all.
    pub fn erased(member: uuid::Uuid) -> Phone {
        Phone(format!("{ERASED}{}", member.simple()))
    }

    /// A stored value back: a number, or what an erasure left.
    pub fn stored(raw: &str) -> Result<Phone, FieldError> {
        if raw.starts_with(ERASED) {
            Ok(Phone(raw.to_string()))
        } else {
            Phone::parse(raw)
        }
    }

    pub fn is_erased(&self) -> bool {
        self.0.starts_with(ERASED)
    }

    /// `138****8000`: the only form a phone number takes in a log line.
    pub fn masked(&self) -> String {
        if self.is_erased() {
            return "(erased)".into();
        }
        mask_phone(&self.0)
    }
}

/// Masks anything phone-like for logs, even input that failed to parse.
pub fn mask_phone(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// 预备党员
    Probationary,
    /// 正式党员
    Full,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Probationary => "probationary",
            MemberStatus::Full => "full",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "probationary" => Some(MemberStatus::Probationary),
            "full" => Some(MemberStatus::Full),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Residence {
    /// 在家
    AtHome,
    /// 外出务工: a migrant-worker member, with the city they are in.
    Migrant,
}

impl Residence {
    pub fn as_str(self) -> &'static str {
        match self {
            Residence::AtHome => "at_home",
            Residence::Migrant => "migrant",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "at_home" => Some(Residence::AtHome),
            "migrant" => Some(Residence::Migrant),
            _ => None,
        }
    }
}

/// A member's name: one line of visible characters, NFC, trimmed, 1 to 50 characters.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    text::clean("name", raw, text::Kind::Line, 50)
}

/// The political birthday: not in the future, not before the Party existed.
pub fn check_join_date(d: NaiveDate, today: NaiveDate) -> Result<NaiveDate, FieldError> {
    let founded = NaiveDate::from_ymd_opt(1921, 7, 1).unwrap_or(NaiveDate::MIN);
    if d > today || d < founded {
        Err(FieldError::new("join_date", "out_of_range"))
    } else {
        Ok(d)
    }
}

/// A migrant member must say where they are; a member at home has no migrant city.
pub fn check_residence(
    residence: Residence,
    city: Option<&str>,
) -> Result<Option<String>, FieldError> {
    let city = text::clean_opt("migrant_city", city, text::Kind::Line, 50)?;
    match (residence, city) {
        (Residence::Migrant, None) => Err(FieldError::new("migrant_city", "required")),
        (Residence::Migrant, Some(c)) => Ok(Some(c)),
        (Residence::AtHome, _) => Ok(None),
    }
}

/// A password a member may set: 8 to 128 characters with at least one letter and one digit.
pub fn check_password(p: &str) -> Result<(), FieldError> {
    let n = p.chars().count();
    let letters = p.chars().any(char::is_alphabetic);
    let digits = p.chars().any(|c| c.is_ascii_digit());
    if !(8..=128).contains(&n) || !letters || !digits {
        Err(FieldError::new("password", "password_too_weak"))
    } else {
        Ok(())
    }
}

/// A member as the rules see it: every field already valid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberFields {
    pub name: String,
    pub phone: Phone,
    pub status: MemberStatus,
    pub join_date: Option<NaiveDate>,
    pub residence: Residence,
    pub migrant_city: Option<String>,
    pub elderly_or_infirm: bool,
    pub central_household: bool,
}

/// A member as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub id: uuid::Uuid,
    /// The branch (or committee) the member belongs to.
    pub org_id: uuid::Uuid,
    /// The party group inside that branch, if any.
    pub group_id: Option<uuid::Uuid>,
    #[serde(flatten)]
    pub fields: MemberFields,
    /// Whether the member can log in yet (an imported member gets a password from an admin).
    pub can_login: bool,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// An edit of a member's fields: what is absent stays as it is.
#[derive(Debug, Clone, Default)]
pub struct MemberPatch {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub status: Option<MemberStatus>,
    pub join_date: Option<Option<NaiveDate>>,
    pub residence: Option<Residence>,
    pub migrant_city: Option<Option<String>>,
    pub elderly_or_infirm: Option<bool>,
    pub central_household: Option<bool>,
}

impl MemberPatch {
    /// The fields after this edit of `current`, or every field that is wrong. A migrant city
    /// is checked against the residence the member will have, which may be the stored one.
    pub fn apply(
        &self,
        current: &MemberFields,
        today: NaiveDate,
    ) -> Result<MemberFields, Vec<FieldError>> {
        let mut f = current.clone();
        let mut errs = Vec::new();
        let mut take = |r: Result<(), FieldError>| {
            if let Err(e) = r {
                errs.push(e)
            }
        };
        if let Some(n) = &self.name {
            take(parse_name(n).map(|n| f.name = n));
        }
        if let Some(p) = &self.phone {
            take(Phone::parse(p).map(|p| f.phone = p));
        }
        if let Some(s) = self.status {
            f.status = s;
        }
        if let Some(d) = self.join_date {
            match d {
                Some(d) => take(check_join_date(d, today).map(|d| f.join_date = Some(d))),
                None => f.join_date = None,
            }
        }
        if let Some(r) = self.residence {
            f.residence = r;
        }
        let city = match &self.migrant_city {
            Some(c) => c.clone(),
            None => f.migrant_city.clone(),
        };
        take(check_residence(f.residence, city.as_deref()).map(|c| f.migrant_city = c));
        if let Some(e) = self.elderly_or_infirm {
            f.elderly_or_infirm = e;
        }
        if let Some(c) = self.central_household {
            f.central_household = c;
        }
        if errs.is_empty() {
            Ok(f)
        } else {
            Err(errs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_changes_only_what_it_names_and_checks_the_city_against_the_stored_residence() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default();
        let current = MemberFields {
            name: "张三".into(),
            phone: Phone("13800138000".into()),
            status: MemberStatus::Full,
            join_date: None,
            residence: Residence::Migrant,
            migrant_city: Some("杭州".into()),
            elderly_or_infirm: false,
            central_household: false,
        };
        let renamed = MemberPatch {
            name: Some(" 张三丰 ".into()),
            ..Default::default()
        }
        .apply(&current, today);
        assert_eq!(
            renamed
                .as_ref()
                .map(|f| (f.name.as_str(), f.migrant_city.as_deref())),
            Ok(("张三丰", Some("杭州")))
        );
        let cleared = MemberPatch {
            migrant_city: Some(None),
            ..Default::default()
        }
        .apply(&current, today);
        assert_eq!(
            cleared.map_err(|e| e.iter().map(|e| e.code).collect::<Vec<_>>()),
            Err(vec!["required"])
        );
        let home = MemberPatch {
            residence: Some(Residence::AtHome),
            ..Default::default()
        }
        .apply(&current, today);
        assert_eq!(home.map(|f| f.migrant_city), Ok(None));
    }

    #[test]
    fn phones_normalise_and_mask() {
        for raw in [
            "13800138000",
            "138 0013 8000",
            "+86 138-0013-8000",
            "8613800138000",
        ] {
            assert_eq!(
                Phone::parse(raw).map(|p| p.as_str().to_string()),
                Ok("13800138000".into())
            );
        }
        assert_eq!(
            Phone::parse("12800138000").map_err(|e| e.code),
            Err("invalid_phone")
        );
        assert_eq!(
            Phone::parse("1380013800").map_err(|e| e.code),
            Err("invalid_phone")
        );
        assert_eq!(Phone::parse(" ").map_err(|e| e.code), Err("required"));
        assert_eq!(
            Phone::parse("13800138000").map(|p| p.masked()),
            Ok("138****8000".into())
        );
    }

    #[test]
    fn migrants_need_a_city_and_passwords_need_letters_and_digits() {
        assert!(check_residence(Residence::Migrant, Some(" ")).is_err());
        assert_eq!(check_residence(Residence::AtHome, Some("杭州")), Ok(None));
        assert!(check_password("abcdefgh").is_err());
        assert!(check_password("abc1").is_err());
        assert!(check_password("党建abc12345").is_ok());
    }

    #[test]
    fn join_dates_are_bounded() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap_or_default();
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap_or_default();
        assert!(check_join_date(d(2026, 11, 23), today).is_err());
        assert!(check_join_date(d(1920, 1, 1), today).is_err());
        assert!(check_join_date(d(1998, 7, 1), today).is_ok());
    }
}

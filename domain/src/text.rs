//! Text a person typed, checked once at the edge: every text field of every operation goes
//! through [`clean`], so the same input gets the same code on both engines (PostgreSQL refuses
//! U+0000 in text; SQLite would store it).
//!
//! - No control characters anywhere (`control_character`), except line breaks and tabs in
//!   multi-line text.
//! - In names and one-line fields, no invisible or direction-changing characters
//!   (`invisible_character`): a name must read as it is stored, and a bidi override can make
//!   `管理员` look like something else.
//! - Normalised to NFC, trimmed, and then bounded in characters (`required`, `too_long`).

use crate::error::FieldError;
use unicode_normalization::UnicodeNormalization;

/// What kind of text a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A name or a one-line value: no line breaks, no invisible or bidi characters.
    Line,
    /// Free text over several lines (an agenda, minutes, a reason): line breaks and tabs allowed.
    Block,
}

/// Characters that change nothing visible or the direction of what follows: zero-width
/// spaces and joiners, bidi embeddings, overrides and isolates, the word joiner, BOM, soft
/// hyphen, and the Unicode tag block.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}')
}

/// The code of the first character `raw` may not hold as `kind`, if any.
pub fn refused(raw: &str, kind: Kind) -> Option<&'static str> {
    for c in raw.chars() {
        let allowed_control = kind == Kind::Block && matches!(c, '\n' | '\r' | '\t');
        if c.is_control() && !allowed_control {
            return Some("control_character");
        }
        if kind == Kind::Line && is_invisible(c) {
            return Some("invisible_character");
        }
    }
    None
}

/// Trimmed and in NFC (for fields whose characters [`refused`] checks separately).
pub fn tidy(raw: &str) -> String {
    raw.trim().nfc().collect()
}

/// A required text field: refused characters, then NFC, trimmed, 1 to `max` characters.
pub fn clean(field: &str, raw: &str, kind: Kind, max: usize) -> Result<String, FieldError> {
    if let Some(code) = refused(raw, kind) {
        return Err(FieldError::new(field, code));
    }
    let text: String = raw.trim().nfc().collect();
    let n = text.chars().count();
    if n == 0 {
        Err(FieldError::new(field, "required"))
    } else if n > max {
        Err(FieldError::new(field, "too_long"))
    } else {
        Ok(text)
    }
}

/// An optional text field: absent or blank is `None`; otherwise as [`clean`].
pub fn clean_opt(
    field: &str,
    raw: Option<&str>,
    kind: Kind,
    max: usize,
) -> Result<Option<String>, FieldError> {
    match raw {
        Some(r) if !r.trim().is_empty() => clean(field, r, kind, max).map(Some),
        Some(r) => match refused(r, kind) {
            Some(code) => Err(FieldError::new(field, code)),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_invisibles_and_bidi_are_refused_and_the_rest_normalised() {
        let code = |r: Result<String, FieldError>| r.map_err(|e| e.code);
        assert_eq!(
            code(clean("name", "张\u{0}三", Kind::Line, 50)),
            Err("control_character")
        );
        assert_eq!(
            code(clean("name", "张\u{7}三", Kind::Line, 50)),
            Err("control_character")
        );
        assert_eq!(
            code(clean("name", "张\u{202E}三", Kind::Line, 50)),
            Err("invisible_character")
        );
        assert_eq!(
            code(clean("name", "张\u{200B}三", Kind::Line, 50)),
            Err("invisible_character")
        );
        assert_eq!(
            code(clean("agenda", "一\n二\t三", Kind::Block, 50)),
            Ok("一\n二\t三".into())
        );
        assert_eq!(
            code(clean("agenda", "一\u{0}", Kind::Block, 50)),
            Err("control_character")
        );
        // e + combining acute becomes é: two characters in, one stored.
        assert_eq!(
            code(clean("name", " Cafe\u{301} ", Kind::Line, 4)),
            Ok("Café".into())
        );
        assert_eq!(code(clean("name", "   ", Kind::Line, 4)), Err("required"));
        assert_eq!(code(clean("name", "12345", Kind::Line, 4)), Err("too_long"));
        assert_eq!(clean_opt("place", Some("  "), Kind::Line, 4), Ok(None));
        assert_eq!(
            clean_opt("place", Some("\u{0}"), Kind::Line, 4).map_err(|e| e.code),
            Err("control_character")
        );
    }
}

//! The audit log's rules: what a recorded change looks like (phone numbers masked, secrets
//! never), and which queries of it are acceptable.

use crate::FieldError;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// One field's change, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Change {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// Fields whose values are never recorded: only that they changed.
fn secret(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "hash",
        "public_key",
        "private",
    ]
    .iter()
    .any(|s| f.contains(s))
}

fn phone_field(field: &str) -> bool {
    field == "phone" || field.ends_with("_phone")
}

/// What the log keeps of one value of `field`.
pub fn recorded(field: &str, v: &Value) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    if secret(field) {
        return Value::String("***".into());
    }
    match v {
        Value::String(s) if phone_field(field) => Value::String(crate::member::mask_phone(s)),
        other => other.clone(),
    }
}

/// The top-level fields that differ between `before` and `after` (objects; `null` when the
/// subject did not exist before or does not after), each with what the log may keep.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let empty = Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (
                b.get(k).unwrap_or(&Value::Null),
                a.get(k).unwrap_or(&Value::Null),
            );
            (x != y).then(|| Change {
                field: k.clone(),
                before: recorded(k, x),
                after: recorded(k, y),
            })
        })
        .collect()
}

/// `diff` of two serialisable states.
pub fn diff_of<T: Serialize>(before: Option<&T>, after: Option<&T>) -> Vec<Change> {
    let v = |t: Option<&T>| {
        t.and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or(Value::Null)
    };
    diff(&v(before), &v(after))
}

/// A secret changed: the log says so, never with a value.
pub fn secret_changed(field: &str) -> Change {
    Change {
        field: field.into(),
        before: Value::String("***".into()),
        after: Value::String("***".into()),
    }
}

/// The longest span one audit query may cover.
pub const MAX_RANGE_DAYS: i64 = 92;

/// The time range of a query: `[from, to]`, defaulting to the last 30 days up to `now`;
/// refused when it is reversed or longer than [`MAX_RANGE_DAYS`].
pub fn range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), FieldError> {
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - TimeDelta::days(30));
    if from > to {
        return Err(FieldError::new("from", "range_reversed"));
    }
    if to - from > TimeDelta::days(MAX_RANGE_DAYS) {
        return Err(FieldError::new("from", "range_too_long"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_masks_phones_and_hides_secrets() {
        let d = diff(
            &json!({"name": "张三", "phone": "13800001111", "password_hash": "x", "same": 1}),
            &json!({"name": "张四", "phone": "13900002222", "password_hash": "y", "same": 1}),
        );
        assert_eq!(
            d,
            vec![
                Change {
                    field: "name".into(),
                    before: json!("张三"),
                    after: json!("张四")
                },
                Change {
                    field: "password_hash".into(),
                    before: json!("***"),
                    after: json!("***")
                },
                Change {
                    field: "phone".into(),
                    before: json!("138****1111"),
                    after: json!("139****2222")
                },
            ]
        );
    }

    #[test]
    fn a_range_is_bounded() {
        let now = Utc::now();
        assert!(range(None, None, now).is_ok());
        assert_eq!(
            range(Some(now - TimeDelta::days(93)), Some(now), now)
                .expect_err("93 days")
                .code,
            "range_too_long"
        );
        assert_eq!(
            range(Some(now), Some(now - TimeDelta::days(1)), now)
                .expect_err("reversed")
                .code,
            "range_reversed"
        );
    }
}

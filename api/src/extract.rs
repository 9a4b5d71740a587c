//! Extractors and parsers that say which field was wrong: `Query<T>` for query strings (actix's
//! own names no field), and [`args`] for a sync mutation's arguments.

use crate::errors::ApiError;
use actix_web::{dev::Payload, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use yunlian_domain::{Error, FieldError};

/// The code of a deserialisation error's message: what kind of wrong it is.
fn code_of(msg: &str) -> &'static str {
    if msg.starts_with("unknown field") {
        "unknown_field"
    } else if msg.starts_with("missing field") {
        "missing_field"
    } else if msg.starts_with("unknown variant") {
        "invalid_value"
    } else if msg.starts_with("invalid type") {
        "invalid_type"
    } else {
        "invalid_value"
    }
}

/// The field named in "unknown field `x`" / "missing field `x`", which serde reports at the
/// level of the struct that lacks (or does not know) it.
fn named_field(msg: &str) -> Option<&str> {
    (msg.starts_with("unknown field") || msg.starts_with("missing field"))
        .then(|| msg.split('`').nth(1))
        .flatten()
}

fn field_of<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>, prefix: &str) -> FieldError {
    let msg = e.inner().to_string();
    let code = code_of(&msg);
    let path = e.path().to_string();
    let path = match named_field(&msg) {
        Some(f) if path == "." || path.is_empty() => f.to_string(),
        Some(f) if path == f || path.ends_with(&format!(".{f}")) => path,
        Some(f) => format!("{path}.{f}"),
        None => path,
    };
    let field = match (prefix, path.as_str()) {
        ("", p) => p.to_string(),
        (pre, "." | "") => pre.to_string(),
        (pre, p) => format!("{pre}.{p}"),
    };
    FieldError::new(field, code)
}

/// A query string, parsed into `T`; a bad one is 400 `invalid_query` with an `errors` entry
/// naming the field and the kind of wrong (`invalid_value`, `unknown_field`, ...).
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(
            req.query_string().as_bytes(),
        ));
        std::future::ready(
            serde_path_to_error::deserialize(de)
                .map(Query)
                .map_err(|e| {
                    let mut err = ApiError::bad_request("invalid_query");
                    err.fields.push(field_of(&e, ""));
                    err
                }),
        )
    }
}

/// A sync mutation's arguments as `T`; wrong ones are `invalid_args` naming the argument
/// (`args.migrant_city`) and why.
pub fn args<T: DeserializeOwned>(v: &serde_json::Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let mut f = field_of(&e, "args");
        f.code = match f.code {
            "unknown_field" | "missing_field" | "invalid_type" => f.code,
            _ => "invalid_value",
        };
        Error::Invalid(vec![f])
    })
}

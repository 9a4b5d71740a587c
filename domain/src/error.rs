//! Errors every operation family shares. Each carries a stable machine code: the code is part of
//! the wire contract, the human message is chosen by the api layer per language.

/// One invalid field of an input, with a stable code (`required`, `invalid_phone`, ...).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    /// The 1-based line of a CSV row, when the input was a roster file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str) -> Self {
        Self {
            field: field.into(),
            code,
            line: None,
        }
    }
    pub fn at_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input parsed but is not acceptable; each field says why.
    #[error("validation failed: {0:?}")]
    Invalid(Vec<FieldError>),
    /// A whole-request rule was broken (stable code, e.g. `csv_header_missing`).
    #[error("unprocessable: {0}")]
    Unprocessable(&'static str),
    /// The thing does not exist, or the caller may not know that it does.
    #[error("not found")]
    NotFound,
    /// The caller is known but lacks the role for this action (stable code).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The write conflicts with existing state (stable code, e.g. `phone_taken`).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Credentials or tokens were refused (stable code).
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    #[error("too many attempts, retry after {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    /// The write lost a race with another (a deadlock, a serialization failure, SQLite busy)
    /// every time it was tried; the client should retry shortly.
    #[error("busy: {0}")]
    Busy(String),
    /// A dependency (database, Redis) is down; the client should retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The disk holding the data is full: the write was not made (nothing half-written); the
    /// client retries once an operator frees space.
    #[error("storage full: {0}")]
    StorageFull(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: &str, code: &'static str) -> Self {
        Error::Invalid(vec![FieldError::new(field, code)])
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::Invalid(vec![e])
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Small pure functions of the api crate, tested from here so the api crate is not compiled a
//! second time as its own test harness (CI's budget): languages, the video webhook's signature,
//! the configuration's defaults and its redaction of passwords.

use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use yunlian_api::config::{redact_url, Config, ConfigError};
use yunlian_api::errors::Lang;
use yunlian_api::handlers::video::verify_webhook;

#[test]
fn chinese_unless_english_is_preferred() {
    assert_eq!(Lang::from_header(None), Lang::Zh);
    assert_eq!(Lang::from_header(Some("en-US,en;q=0.9")), Lang::En);
    assert_eq!(Lang::from_header(Some("zh-CN,zh;q=0.9,en;q=0.8")), Lang::Zh);
    assert_eq!(Lang::from_header(Some("fr, en;q=0.5")), Lang::En);
    assert_eq!(Lang::from_header(Some("fr")), Lang::Zh);
}

#[test]
fn a_webhook_verifies_only_with_its_own_body_key_and_secret() {
    let body = br#"{"event":"participant_joined"}"#;
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    let sign = |secret: &str, iss: &str, sha: &str| {
        encode(
            &Header::new(Algorithm::HS256),
            &json!({"iss": iss, "sha256": sha, "exp": 2_000_000_000i64}),
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap_or_default()
    };
    let now = 1_900_000_000;
    assert!(verify_webhook(
        Some(&sign("s3cret", "key", &digest)),
        body,
        "key",
        "s3cret",
        now
    )
    .is_ok());
    assert!(verify_webhook(
        Some(&sign("other", "key", &digest)),
        body,
        "key",
        "s3cret",
        now
    )
    .is_err());
    assert!(verify_webhook(
        Some(&sign("s3cret", "intruder", &digest)),
        body,
        "key",
        "s3cret",
        now
    )
    .is_err());
    assert!(verify_webhook(
        Some(&sign("s3cret", "key", &digest)),
        b"{}",
        "key",
        "s3cret",
        now
    )
    .is_err());
    assert!(verify_webhook(
        Some(&sign("s3cret", "key", &digest)),
        body,
        "key",
        "s3cret",
        2_100_000_000
    )
    .is_err());
    assert!(verify_webhook(None, body, "key", "s3cret", now).is_err());
}

#[test]
fn defaults_put_sqlite_under_the_data_dir() {
    let c = Config::from_map(HashMap::new()).expect("defaults");
    assert_eq!(c.bind, "127.0.0.1:8080");
    assert_eq!(c.database_url, "sqlite://./data/yunlian.db");
    assert!(c.redis_url.is_none());
    let c = Config::from_map(HashMap::from([(
        "YUNLIAN_DATA_DIR".into(),
        "/srv/yl".into(),
    )]))
    .expect("data dir");
    assert_eq!(c.database_url, "sqlite:///srv/yl/yunlian.db");
}

#[test]
fn bad_values_name_their_key_and_urls_hide_passwords() {
    let e = Config::from_map(HashMap::from([("YUNLIAN_DB_POOL_SIZE".into(), "x".into())]));
    assert!(matches!(
        e,
        Err(ConfigError::Invalid {
            key: "YUNLIAN_DB_POOL_SIZE",
            ..
        })
    ));
    assert_eq!(
        redact_url("postgres://yl:s3cret@db:5432/yl"),
        "postgres://yl:***@db:5432/yl"
    );
}

//! Logins, rotating refresh tokens, logout, password changes, rate limits, bad tokens.

use crate::helpers::{spawn_app, spawn_app_with, ADMIN_PASSWORD, ADMIN_PHONE};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::HashMap;

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_family() {
    let app = spawn_app().await;
    let (access, refresh1) = app.login(ADMIN_PHONE, ADMIN_PASSWORD).await;
    let r = app
        .send(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let refresh2 = r.body["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_string();
    assert_ne!(refresh1, refresh2);
    let access2 = r.body["access_token"].as_str().expect("access").to_string();
    assert_eq!(app.get("/v1/me", &access2).await.status, StatusCode::OK);

    // The spent token comes back (stolen, or replayed): the family dies, new token included.
    let r = app
        .send(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh1})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "refresh_token_reused")
    );
    let r = app
        .send(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh2})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "refresh_token_invalid")
    );
    let r = app.get("/v1/me", &access).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "session_revoked")
    );
    // Another login is a new family and works.
    let (fresh, _) = app.login(ADMIN_PHONE, ADMIN_PASSWORD).await;
    assert_eq!(app.get("/v1/me", &fresh).await.status, StatusCode::OK);
    let r = app
        .send(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": "made-up"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "refresh_token_invalid")
    );
}

#[tokio::test]
async fn logout_ends_the_session_and_a_password_change_ends_them_all() {
    let app = spawn_app().await;
    let (a1, r1) = app.login(ADMIN_PHONE, ADMIN_PASSWORD).await;
    let r = app
        .send(Method::POST, "/v1/auth/logout", Some(&a1), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/me", &a1).await.code(), "session_revoked");
    let r = app
        .send(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    assert_eq!(r.code(), "refresh_token_invalid");

    let (phone_session, _) = app.login(ADMIN_PHONE, ADMIN_PASSWORD).await;
    let (tablet_session, tablet_refresh) = app.login(ADMIN_PHONE, ADMIN_PASSWORD).await;
    let r = app
        .post(
            "/v1/me/password",
            &phone_session,
            json!({"current_password": "wrong-one1", "new_password": "xinmima2026"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "wrong_password")
    );
    let r = app
        .post(
            "/v1/me/password",
            &phone_session,
            json!({"current_password": ADMIN_PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    assert_eq!(r.body["errors"][0]["code"], "password_too_weak");
    let r = app
        .post(
            "/v1/me/password",
            &phone_session,
            json!({"current_password": ADMIN_PASSWORD, "new_password": "xinmima2026"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    for t in [&phone_session, &tablet_session] {
        assert_eq!(app.get("/v1/me", t).await.code(), "session_revoked");
    }
    let r = app
        .send(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": tablet_refresh})),
        )
        .await;
    assert_eq!(r.code(), "refresh_token_invalid");
    assert_eq!(
        app.login_res(ADMIN_PHONE, ADMIN_PASSWORD).await.code(),
        "invalid_credentials"
    );
    app.login(ADMIN_PHONE, "xinmima2026").await;
}

#[tokio::test]
async fn repeated_wrong_passwords_are_rate_limited_per_phone() {
    let app = spawn_app().await;
    for _ in 0..5 {
        let r = app.login_res(ADMIN_PHONE, "guess12345").await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "invalid_credentials")
        );
    }
    // Locked for this phone, even with the right password now.
    let r = app.login_res(ADMIN_PHONE, ADMIN_PASSWORD).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
    let retry: u64 = r.headers["retry-after"]
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After");
    assert!((1..=900).contains(&retry), "{retry}");
    // Another phone is not locked by it.
    let r = app.login_res("13811112222", "guess12345").await;
    assert_eq!(r.code(), "invalid_credentials");
    // Unknown phones and wrong passwords answer alike.
    assert_eq!(
        app.login_res("13811112223", ADMIN_PASSWORD).await.code(),
        "invalid_credentials"
    );
}

#[tokio::test]
async fn too_many_logins_from_one_address_are_limited() {
    let app = spawn_app().await;
    for i in 0..30 {
        let r = app
            .login_res(&format!("1370000{:04}", i), "guess12345")
            .await;
        assert_eq!(r.code(), "invalid_credentials", "attempt {i}");
    }
    let r = app.login_res(ADMIN_PHONE, ADMIN_PASSWORD).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
}

#[tokio::test]
async fn forged_expired_and_missing_tokens_are_refused() {
    let secret = "a-test-secret-that-is-long-enough-0123456789";
    let app = spawn_app_with(HashMap::from([("YUNLIAN_JWT_SECRET", secret.to_string())])).await;
    let (good, _) = app.login(ADMIN_PHONE, ADMIN_PASSWORD).await;
    let claims = decode_claims(&good);
    let now = chrono::Utc::now().timestamp();

    let sign = |key: &str, exp: i64| {
        let mut c = claims.clone();
        c["exp"] = json!(exp);
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &c,
            &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
        )
        .expect("sign")
    };
    let forged = sign("some-other-secret-of-the-same-length-0123456", now + 600);
    let r = app.get("/v1/me", &forged).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "token_invalid")
    );
    let expired = sign(secret, now - 1);
    let r = app.get("/v1/me", &expired).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "token_expired")
    );
    // The same claims signed properly and unexpired are accepted: the key is what matters.
    assert_eq!(
        app.get("/v1/me", &sign(secret, now + 600)).await.status,
        StatusCode::OK
    );
    let r = app.send(Method::GET, "/v1/me", None, None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let r = app.get("/v1/me", "not.a.jwt").await;
    assert_eq!(r.code(), "token_invalid");
}

fn decode_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("jwt payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("claims json")
}

#[tokio::test]
async fn the_first_administrator_is_made_once_and_keeps_a_changed_password() {
    let data = crate::helpers::temp_dir();
    let db = crate::helpers::fresh_database(&data).await;
    let vars = |pw: &str| {
        HashMap::from([
            ("YUNLIAN_DATA_DIR", data.display().to_string()),
            ("DATABASE_URL", db.clone()),
            ("YUNLIAN_ADMIN_PASSWORD", pw.to_string()),
        ])
    };
    let first = spawn_app_with(vars(ADMIN_PASSWORD)).await;
    let (t, _) = first.login(ADMIN_PHONE, ADMIN_PASSWORD).await;
    let r = first
        .post(
            "/v1/me/password",
            &t,
            json!({"current_password": ADMIN_PASSWORD, "new_password": "changed2026x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // One server per embedded database: on SQLite the first stops before the second starts;
    // on PostgreSQL both serve, as replicas.
    let replicas = crate::helpers::engine() == "postgres";
    if !replicas {
        first.stop().await;
    }
    // A restart with the same configuration changes nothing: the admin keeps the new password,
    // and the generated signing secret survives in the data dir.
    let second = spawn_app_with(vars(ADMIN_PASSWORD)).await;
    assert_eq!(
        second.login_res(ADMIN_PHONE, ADMIN_PASSWORD).await.code(),
        "invalid_credentials"
    );
    let (t2, _) = second.login(ADMIN_PHONE, "changed2026x").await;
    if replicas {
        assert_eq!(
            first.get("/v1/me", &t2).await.status,
            StatusCode::OK,
            "tokens valid across replicas"
        );
    }
    let roots = second.list_all("/v1/orgs", &t2).await;
    assert_eq!(roots.len(), 1, "one root org, not one per start");
    assert_eq!(roots[0]["name"], "中共广德市委员会");
}

/// A caller's grants serve their next requests for a moment (`YUNLIAN_PRINCIPAL_CACHE_MS`, 1 s
/// by default). Logout and a password change on this server bite at once (above); a
/// revocation this server does not hear of, made by another replica or, as here, straight in
/// the database, bites within that second.
#[tokio::test]
async fn a_revocation_made_elsewhere_bites_within_a_second() {
    use diesel_async::RunQueryDsl;
    use std::time::{Duration, Instant};
    use yunlian_infra::db::ScopedFutureExt;
    let app = spawn_app().await;
    let (token, _) = app.login(ADMIN_PHONE, ADMIN_PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/me", &token).await.status, StatusCode::OK);
    }
    let elsewhere = yunlian_infra::Db::connect(&app.database_url, 1)
        .await
        .expect("db");
    let revoked = Instant::now();
    elsewhere
        .write(|mut c| {
            async move {
                yunlian_infra::on!(&mut c, |c| diesel::sql_query(
                    "UPDATE sessions SET revoked_at = CURRENT_TIMESTAMP, revoke_reason = 'elsewhere'"
                )
                .execute(c)
                .await)
                .map_err(yunlian_infra::db::db_error)
            }
            .scope_boxed()
        })
        .await
        .expect("revoke");
    loop {
        let r = app.get("/v1/me", &token).await;
        if r.status == StatusCode::UNAUTHORIZED {
            assert_eq!(r.code(), "session_revoked");
            break;
        }
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            revoked.elapsed() < Duration::from_millis(1500),
            "the revoked session still served {:?} after its revocation",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

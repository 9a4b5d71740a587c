//! The world a scenario starts from: a branch with its secretary and members who can log in,
//! and a server with LiveKit configured on a clock the test walks.

use crate::helpers::{roster_csv, spawn_app_on, TestApp};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use yunlian_domain::ports::FixedClock;

/// A branch with a secretary and `n` members who can log in; returns (branch, secretary token,
/// member phones and tokens).
pub async fn branch_with_members(
    app: &TestApp,
    admin: &str,
    name: &str,
    first_phone: u64,
    n: usize,
) -> (String, String, Vec<(String, String)>) {
    let root = app.root_id(admin).await;
    let branch = app.create_org(admin, &root, "branch", name).await;
    let csv = roster_csv(n + 1, first_phone);
    assert_eq!(
        app.import(admin, &branch, &csv, false).await.status,
        StatusCode::CREATED
    );
    let roster = app
        .list_all(&format!("/v1/members?org_id={branch}"), admin)
        .await;
    let mut tokens = Vec::new();
    for m in &roster {
        let id = m["id"].as_str().expect("id");
        let r = app
            .post(
                &format!("/v1/members/{id}/password"),
                admin,
                json!({"password": "dangyuan2026"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let sec = roster[0]["id"].as_str().expect("id");
    let r = app
        .post(
            "/v1/roles",
            admin,
            json!({"member_id": sec, "org_id": branch, "role": "secretary"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (sec_token, _) = app
        .login(roster[0]["phone"].as_str().expect("phone"), "dangyuan2026")
        .await;
    for m in &roster[1..] {
        let (t, _) = app
            .login(m["phone"].as_str().expect("phone"), "dangyuan2026")
            .await;
        tokens.push((m["id"].as_str().expect("id").to_string(), t));
    }
    (branch, sec_token, tokens)
}

pub const LK_KEY: &str = "APIyunlian";
pub const LK_SECRET: &str = "livekit-secret-of-the-county-0123456789";
/// A server with LiveKit configured, its time on `clock`, access tokens living `token_secs`,
/// and the outbox relayed every 50 ms.
pub async fn spawn_video_app(clock: Arc<FixedClock>, token_secs: u64) -> TestApp {
    spawn_app_on(
        HashMap::from([
            (
                "YUNLIAN_LIVEKIT_URL",
                "wss://video.county.example".to_string(),
            ),
            ("YUNLIAN_LIVEKIT_API_KEY", LK_KEY.to_string()),
            ("YUNLIAN_LIVEKIT_API_SECRET", LK_SECRET.to_string()),
            ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", token_secs.to_string()),
            ("YUNLIAN_OUTBOX_RELAY_MS", "50".to_string()),
        ]),
        clock,
    )
    .await
}

/// member id → final status, from a meeting's attendance as the committee reads it.
pub fn final_statuses(attendance: &Value) -> std::collections::BTreeMap<String, String> {
    attendance["attendance"]
        .as_array()
        .expect("attendance")
        .iter()
        .map(|a| {
            (
                a["member_id"].as_str().unwrap_or("").to_string(),
                a["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Posts a webhook signed as LiveKit signs it.
pub async fn webhook(app: &TestApp, body: &Value, secret: &str) -> crate::helpers::Res {
    let raw = body.to_string();
    let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(raw.as_bytes()));
    let claims = json!({"iss": LK_KEY, "sha256": sha, "exp": 4_000_000_000i64, "nbf": 0});
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign");
    let res = app
        .client
        .post(format!("{}/v1/video/webhook", app.base))
        .header("authorization", jwt)
        .header("content-type", "application/webhook+json")
        .body(raw)
        .send()
        .await
        .expect("sent");
    TestApp::read(res).await
}

pub fn participant(event: &str, id: &str, room: &str, member: &str, at: DateTime<Utc>) -> Value {
    json!({"event": event, "id": id, "createdAt": at.timestamp(),
           "room": {"name": room, "sid": "RM_1"}, "participant": {"identity": member, "sid": format!("PA_{member}")}})
}

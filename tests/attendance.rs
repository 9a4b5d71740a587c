//! Attendance: phones registered by their device keys.

use crate::helpers::spawn_app;
use crate::sync::{branch_with_members, Phone};
use base64::Engine as _;
use p256::ecdsa::SigningKey;
use reqwest::StatusCode;
use serde_json::json;

/// A phone's hardware key: P-256, public half as uncompressed SEC1 in base64.
pub fn phone_key(seed: u8) -> (SigningKey, String) {
    let sk = SigningKey::from_slice(&[seed.max(1); 32]).expect("key");
    let pk = sk.verifying_key().to_encoded_point(false);
    (
        sk,
        base64::engine::general_purpose::STANDARD.encode(pk.as_bytes()),
    )
}

#[tokio::test]
async fn members_register_and_revoke_their_phones_within_their_subtree() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, sec, members) = branch_with_members(&app, &admin, "设备支部", 13990000000, 2).await;
    let (_, other_sec, other_members) =
        branch_with_members(&app, &admin, "邻村支部", 13990000100, 1).await;
    let (member, token) = members[0].clone();
    let (_, key) = phone_key(11);
    let r = app.post("/v1/devices", &token, json!({"algorithm": "p256", "public_key": key, "unlock": "fingerprint", "label": "华为 Mate"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        (r.body["member_id"].as_str(), r.body["unlock"].as_str()),
        (Some(member.as_str()), Some("fingerprint"))
    );
    let device = r.id();
    let r = app
        .post(
            "/v1/devices",
            &token,
            json!({"algorithm": "p256", "public_key": "bm90IGEga2V5", "unlock": "face"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_public_key"))
    );
    let ed = base64::engine::general_purpose::STANDARD.encode([0u8; 31]);
    let r = app
        .post(
            "/v1/devices",
            &token,
            json!({"algorithm": "ed25519", "public_key": ed, "unlock": "none"}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["code"], "invalid_public_key");

    // The device reaches the member's own phone through sync.
    let mut phone = Phone::new(token.clone());
    phone.pull_all(&app, 100).await;
    assert_eq!(
        phone.rows[&format!("member:{member}")][&format!("device/{device}")]["label"],
        "华为 Mate"
    );

    // Lists: one's own; the secretary may see a member's; a sibling branch's secretary may not.
    let mine = app.get("/v1/devices", &token).await;
    assert_eq!(mine.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.get(&format!("/v1/devices?member_id={member}"), &sec)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get(&format!("/v1/devices?member_id={member}"), &other_sec)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let (_, other_token) = other_members[0].clone();
    assert_eq!(
        app.post(
            &format!("/v1/devices/{device}/revoke"),
            &other_token,
            json!({})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(
            &format!("/v1/devices/{device}/revoke"),
            &other_sec,
            json!({})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // A fellow member of the branch sees it but may not revoke it.
    let (_, fellow) = members[1].clone();
    assert_eq!(
        app.post(&format!("/v1/devices/{device}/revoke"), &fellow, json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // The secretary revokes it; it stays listed, revoked.
    assert_eq!(
        app.post(&format!("/v1/devices/{device}/revoke"), &sec, json!({}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let mine = app.get("/v1/devices", &token).await;
    assert!(mine.body["items"][0]["revoked_at"].is_string());
    phone.pull_all(&app, 100).await;
    assert!(
        phone.rows[&format!("member:{member}")][&format!("device/{device}")]["revoked_at"]
            .is_string()
    );

    // At most five active devices.
    for seed in 20..25 {
        let (_, k) = phone_key(seed);
        let r = app
            .post(
                "/v1/devices",
                &token,
                json!({"algorithm": "p256", "public_key": k, "unlock": "face"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let (_, k) = phone_key(30);
    let r = app
        .post(
            "/v1/devices",
            &token,
            json!({"algorithm": "p256", "public_key": k, "unlock": "face"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "too_many_devices")
    );
}

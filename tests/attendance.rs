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

#[tokio::test]
async fn the_committee_plans_meetings_members_see_them_and_only_the_committee_sees_the_code() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "会议支部", 13991000000, 2).await;
    let (_, other_sec, _) = branch_with_members(&app, &admin, "别村支部", 13991000100, 1).await;
    let (_, member) = members[0].clone();
    let starts = chrono::Utc::now() + chrono::TimeDelta::hours(2);
    let plan = json!({
        "org_id": branch, "meeting_type": "themed_party_day", "title": "十一月主题党日",
        "agenda": "学习党的二十届四中全会精神", "place": "村党群服务中心",
        "starts_at": starts, "ends_at": starts + chrono::TimeDelta::hours(2),
        "geofence": {"lat": 30.889, "lng": 119.42, "radius_m": 150.0}
    });
    assert_eq!(
        app.post("/v1/meetings", &member, plan.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post("/v1/meetings", &other_sec, plan.clone())
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let mut bad = plan.clone();
    bad["ends_at"] = json!(starts - chrono::TimeDelta::minutes(1));
    bad["geofence"]["radius_m"] = json!(1.0);
    let r = app.post("/v1/meetings", &sec, bad).await;
    let codes: Vec<&str> = r.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(codes, vec!["ends_at", "geofence"]);
    let mut group_meeting = plan.clone();
    group_meeting["meeting_type"] = json!("party_group_meeting");
    assert_eq!(
        app.post("/v1/meetings", &sec, group_meeting).await.body["errors"][0]["code"],
        "meeting_type_not_for_org"
    );

    let r = app.post("/v1/meetings", &sec, plan).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let meeting = r.id();
    assert_eq!(
        r.body["checkin_window"],
        json!({"opens_before_min": 30, "on_time_after_min": 15})
    );
    assert_eq!(r.body["status"], "planned");

    // Members see it, by period; a sibling branch does not.
    let listed = app
        .get(
            &format!(
                "/v1/meetings?org_id={branch}&from={}",
                urlencode(starts - chrono::TimeDelta::days(1))
            ),
            &member,
        )
        .await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
    let later = app
        .get(
            &format!(
                "/v1/meetings?org_id={branch}&from={}",
                urlencode(starts + chrono::TimeDelta::days(1))
            ),
            &member,
        )
        .await;
    assert_eq!(later.body["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        app.get(&format!("/v1/meetings/{meeting}"), &member)
            .await
            .body["title"],
        "十一月主题党日"
    );
    assert_eq!(
        app.get(&format!("/v1/meetings/{meeting}"), &other_sec)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // The code: the committee's, computed from the secret exactly as the secretary's phone does.
    assert_eq!(
        app.get(&format!("/v1/meetings/{meeting}/code"), &member)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let code = app.get(&format!("/v1/meetings/{meeting}/code"), &sec).await;
    assert_eq!(code.status, StatusCode::OK);
    let secret = base64::engine::general_purpose::STANDARD
        .decode(code.body["secret_b64"].as_str().expect("secret"))
        .expect("b64");
    assert_eq!(secret.len(), 20);
    let now = chrono::Utc::now();
    assert!(yunlian_domain::attendance::check_code(
        &secret,
        code.body["code"].as_str().expect("code"),
        now
    )
    .is_ok());

    // Sync: the meeting reaches members; its secret only the committee.
    let mut member_phone = Phone::new(member.clone());
    member_phone.pull_all(&app, 100).await;
    assert_eq!(
        member_phone.rows[&format!("org:{branch}")][&format!("meeting/{meeting}")]["place"],
        "村党群服务中心"
    );
    assert!(member_phone
        .rows
        .values()
        .all(|rows| rows.keys().all(|k| !k.starts_with("meeting_secret/"))));
    let mut sec_phone = Phone::new(sec.clone());
    sec_phone.pull_all(&app, 100).await;
    let synced =
        &sec_phone.rows[&format!("org:{branch}:committee")][&format!("meeting_secret/{meeting}")];
    assert_eq!(synced["secret_b64"], code.body["secret_b64"]);

    // Edits while planned; cancelled, it is frozen.
    let r = app
        .patch(
            &format!("/v1/meetings/{meeting}"),
            &sec,
            json!({"place": "村文化礼堂", "geofence": null}),
        )
        .await;
    assert_eq!(
        (
            r.status,
            r.body["place"].as_str(),
            r.body["geofence"].is_null()
        ),
        (StatusCode::OK, Some("村文化礼堂"), true)
    );
    let r = app
        .post(&format!("/v1/meetings/{meeting}/cancel"), &sec, json!({}))
        .await;
    assert_eq!(r.body["status"], "cancelled");
    let r = app
        .patch(
            &format!("/v1/meetings/{meeting}"),
            &sec,
            json!({"title": "改期"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "meeting_not_planned")
    );
    assert_eq!(
        app.post(&format!("/v1/meetings/{meeting}/cancel"), &sec, json!({}))
            .await
            .code(),
        "meeting_not_planned"
    );
    member_phone.pull_all(&app, 100).await;
    assert_eq!(
        member_phone.rows[&format!("org:{branch}")][&format!("meeting/{meeting}")]["status"],
        "cancelled"
    );
}

fn urlencode(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .replace(':', "%3A")
        .replace('+', "%2B")
}

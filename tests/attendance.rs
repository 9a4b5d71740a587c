//! Attendance: phones registered by their device keys.

use crate::helpers::{branch_with_members, code_at, phone_key, spawn_app, KeyPhone, Phone};
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::json;

/// A phone's hardware key: P-256, public half as uncompressed SEC1 in base64.
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

const HALL: (f64, f64) = (30.889, 119.42);

async fn meeting_at(
    app: &crate::helpers::TestApp,
    sec: &str,
    org: &str,
    kind: &str,
    starts: chrono::DateTime<chrono::Utc>,
) -> String {
    let body = json!({"org_id": org, "meeting_type": kind, "title": "支部会议", "starts_at": starts,
                      "ends_at": starts + chrono::TimeDelta::hours(2),
                      "geofence": {"lat": HALL.0, "lng": HALL.1, "radius_m": 100.0}});
    let r = app.post("/v1/meetings", sec, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.id()
}

#[tokio::test]
async fn a_phone_clocks_in_with_signed_evidence_and_every_wrong_piece_is_refused_with_its_code() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "签到支部", 13992000000, 4).await;
    let now = chrono::Utc::now();
    let meeting = meeting_at(
        &app,
        &sec,
        &branch,
        "themed_party_day",
        now - chrono::TimeDelta::minutes(5),
    )
    .await;
    let other_meeting = meeting_at(
        &app,
        &sec,
        &branch,
        "party_lecture",
        now - chrono::TimeDelta::minutes(5),
    )
    .await;
    let phones = [
        KeyPhone::register(&app, &members[0].1, &members[0].0, 41).await,
        KeyPhone::register(&app, &members[1].1, &members[1].0, 42).await,
        KeyPhone::register(&app, &members[2].1, &members[2].0, 43).await,
    ];
    let code = code_at(&app, &sec, &meeting, now).await;
    let at_hall = Some((HALL.0, HALL.1, 15.0));
    let url = format!("/v1/meetings/{meeting}/clock-in");

    // On site, on time.
    let r = app
        .post(
            &url,
            &phones[0].token,
            phones[0].evidence(&meeting, &code, now, at_hall),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (
            r.body["punctuality"].as_str(),
            r.body["unlock"].as_str(),
            r.body["via"].as_str()
        ),
        (Some("on_time"), Some("face"), Some("online"))
    );
    let first = r.id();
    // A repeat, even with new evidence, returns the first.
    let again = app
        .post(
            &url,
            &phones[0].token,
            phones[0].evidence(&meeting, &code, now, at_hall),
        )
        .await;
    assert_eq!(again.id(), first);

    let refused =
        |r: crate::helpers::Res| (r.status, r.body["code"].as_str().unwrap_or("").to_string());
    let p = &phones[1];
    // A forged signature: the evidence was changed after signing.
    let mut forged = p.evidence(&meeting, &code, now, at_hall);
    forged["location"]["lat"] = json!(HALL.0 + 0.0001);
    assert_eq!(
        refused(app.post(&url, &p.token, forged).await),
        (StatusCode::UNPROCESSABLE_ENTITY, "bad_signature".into())
    );
    // Someone else's device.
    let mut borrowed = phones[2].evidence(&meeting, &code, now, at_hall);
    borrowed["device_id"] = json!(phones[2].device_id);
    assert_eq!(
        refused(app.post(&url, &p.token, borrowed).await).1,
        "device_not_yours"
    );
    // A code of another meeting, and this meeting's code from ten minutes ago.
    let foreign = code_at(&app, &sec, &other_meeting, now).await;
    assert_eq!(
        refused(
            app.post(&url, &p.token, p.evidence(&meeting, &foreign, now, at_hall))
                .await
        )
        .1,
        "code_invalid"
    );
    let stale = code_at(&app, &sec, &meeting, now - chrono::TimeDelta::minutes(10)).await;
    assert_eq!(
        refused(
            app.post(&url, &p.token, p.evidence(&meeting, &stale, now, at_hall))
                .await
        )
        .1,
        "code_invalid"
    );
    // Outside the fence (a kilometre away), and no location at all.
    let away = Some((HALL.0 + 0.01, HALL.1, 10.0));
    assert_eq!(
        refused(
            app.post(&url, &p.token, p.evidence(&meeting, &code, now, away))
                .await
        )
        .1,
        "outside_fence"
    );
    assert_eq!(
        refused(
            app.post(&url, &p.token, p.evidence(&meeting, &code, now, None))
                .await
        )
        .1,
        "location_required"
    );
    // A revoked device.
    let r = app
        .post(
            &format!("/v1/devices/{}/revoke", phones[2].device_id),
            &phones[2].token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let q = &phones[2];
    assert_eq!(
        refused(
            app.post(&url, &q.token, q.evidence(&meeting, &code, now, at_hall))
                .await
        )
        .1,
        "device_revoked"
    );
    // Not expected: a committee meeting is for the committee.
    let committee_meeting = meeting_at(
        &app,
        &sec,
        &branch,
        "branch_committee_meeting",
        now - chrono::TimeDelta::minutes(5),
    )
    .await;
    let cm_code = code_at(&app, &sec, &committee_meeting, now).await;
    let r = app
        .post(
            &format!("/v1/meetings/{committee_meeting}/clock-in"),
            &p.token,
            p.evidence(&committee_meeting, &cm_code, now, at_hall),
        )
        .await;
    assert_eq!(refused(r).1, "not_expected");
    // Too early, and over.
    let tomorrow = meeting_at(
        &app,
        &sec,
        &branch,
        "party_lecture",
        now + chrono::TimeDelta::days(1),
    )
    .await;
    let t_code = code_at(&app, &sec, &tomorrow, now).await;
    let r = app
        .post(
            &format!("/v1/meetings/{tomorrow}/clock-in"),
            &p.token,
            p.evidence(&tomorrow, &t_code, now, at_hall),
        )
        .await;
    assert_eq!(refused(r).1, "too_early");
    let yesterday = meeting_at(
        &app,
        &sec,
        &branch,
        "party_lecture",
        now - chrono::TimeDelta::days(1),
    )
    .await;
    let y_code = code_at(&app, &sec, &yesterday, now).await;
    let r = app
        .post(
            &format!("/v1/meetings/{yesterday}/clock-in"),
            &p.token,
            p.evidence(&yesterday, &y_code, now, at_hall),
        )
        .await;
    assert_eq!(refused(r).1, "meeting_closed");
    // A sibling branch's member cannot even see the meeting.
    let (_, _, strangers) = branch_with_members(&app, &admin, "外村支部", 13992000100, 1).await;
    let s = KeyPhone::register(&app, &strangers[0].1, &strangers[0].0, 44).await;
    assert_eq!(
        app.post(&url, &s.token, s.evidence(&meeting, &code, now, at_hall))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Nothing of the refusals was recorded: one clock-in stands.
    let att = app
        .get(&format!("/v1/meetings/{meeting}/attendance"), &sec)
        .await;
    assert_eq!(att.body["clock_ins"].as_array().map(Vec::len), Some(1));
    // Late: 20 minutes after the start, the second member clocks in properly.
    let late_meeting = meeting_at(
        &app,
        &sec,
        &branch,
        "party_lecture",
        now - chrono::TimeDelta::minutes(20),
    )
    .await;
    let l_code = code_at(&app, &sec, &late_meeting, now).await;
    let r = app
        .post(
            &format!("/v1/meetings/{late_meeting}/clock-in"),
            &p.token,
            p.evidence(&late_meeting, &l_code, now, at_hall),
        )
        .await;
    assert_eq!(r.body["punctuality"], "late");
}

#[tokio::test]
async fn an_offline_clock_in_synced_the_next_day_is_judged_at_its_own_time() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "离线支部", 13993000000, 2).await;
    let now = chrono::Utc::now();
    // Yesterday's themed party day, 09:00 to 11:00 (relative to now).
    let starts = now - chrono::TimeDelta::hours(26);
    let meeting = meeting_at(&app, &sec, &branch, "themed_party_day", starts).await;
    let phone = KeyPhone::register(&app, &members[0].1, &members[0].0, 51).await;
    // In the village hall, offline, five minutes after the start; the phone's clock is a year off.
    let made = starts + chrono::TimeDelta::minutes(5);
    let code = code_at(&app, &sec, &meeting, made).await;
    let wrong_clock = made + chrono::TimeDelta::days(365);
    let mut args = phone.evidence(&meeting, &code, wrong_clock, Some((HALL.0, HALL.1, 20.0)));
    args["meeting_id"] = json!(meeting);
    args["id"] = json!(uuid::Uuid::now_v7());
    let uptime_then: i64 = 3_600_000;
    let uptime_now = uptime_then + (now - made).num_milliseconds();
    let client = uuid::Uuid::now_v7();
    let push = json!({"client_id": client, "schema_version": 1, "boot_id": "boot-7", "uptime_ms": uptime_now,
        "mutations": [{"id": 1, "name": "attendance.clock_in.v1", "args": args, "device_time": wrong_clock,
                       "boot_id": "boot-7", "uptime_ms": uptime_then}]});
    let r = app.post("/v1/sync/push", &phone.token, push.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let res = &r.body["results"][0];
    assert_eq!(
        (res["status"].as_str(), res["time_source"].as_str()),
        (Some("applied"), Some("uptime")),
        "{res:?}"
    );
    assert_eq!(
        (
            res["result"]["punctuality"].as_str(),
            res["result"]["via"].as_str()
        ),
        (Some("on_time"), Some("sync"))
    );
    // Uploaded again (a lost answer), and from a reinstalled app under a new client id: one clock-in.
    assert_eq!(
        app.post("/v1/sync/push", &phone.token, push.clone())
            .await
            .body["results"][0],
        r.body["results"][0]
    );
    let mut reinstalled = push.clone();
    reinstalled["client_id"] = json!(uuid::Uuid::now_v7());
    let r2 = app.post("/v1/sync/push", &phone.token, reinstalled).await;
    assert_eq!(r2.body["results"][0]["result"]["id"], res["result"]["id"]);
    let att = app
        .get(&format!("/v1/meetings/{meeting}/attendance"), &sec)
        .await;
    assert_eq!(att.body["clock_ins"].as_array().map(Vec::len), Some(1));

    // Without uptime, the signed clock judges: a year in the future is refused, and recorded so.
    let other = KeyPhone::register(&app, &members[1].1, &members[1].0, 52).await;
    let mut args = other.evidence(&meeting, &code, wrong_clock, Some((HALL.0, HALL.1, 20.0)));
    args["meeting_id"] = json!(meeting);
    let push = json!({"client_id": uuid::Uuid::now_v7(), "schema_version": 1,
        "mutations": [{"id": 1, "name": "attendance.clock_in.v1", "args": args, "device_time": wrong_clock}]});
    let r = app.post("/v1/sync/push", &other.token, push).await;
    assert_eq!(
        (
            r.body["results"][0]["status"].as_str(),
            r.body["results"][0]["code"].as_str()
        ),
        (Some("rejected"), Some("event_in_future"))
    );
    // The secretary's phone sees the clock-in through the committee scope.
    let mut sec_phone = Phone::new(sec.clone());
    sec_phone.pull_all(&app, 200).await;
    let roster = &sec_phone.rows[&format!("org:{branch}:committee")];
    assert_eq!(
        roster.keys().filter(|k| k.starts_with("clock_in/")).count(),
        1
    );
}

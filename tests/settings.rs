//! Township settings: the nearest org that sets a value wins, changes are versioned, only
//! township admins make them, and the use cases follow them.

use crate::helpers::branch_with_members;
use crate::helpers::{participant, spawn_video_app, webhook, LK_SECRET};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;
use yunlian_domain::ports::FixedClock;

#[tokio::test]
async fn a_townships_settings_reach_its_branches_and_their_meetings() {
    let t0: DateTime<Utc> = "2026-11-22T08:00:00Z".parse().expect("time");
    let clock = Arc::new(FixedClock::at(t0));
    let app = spawn_video_app(clock.clone(), 100_000).await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "设置村党支部", 13993000000, 1).await;
    let put = |org: &str, token: &str, body: serde_json::Value| {
        let path = format!("/v1/orgs/{org}/settings");
        let token = token.to_string();
        let app = &app;
        async move { app.send(Method::PUT, &path, Some(&token), Some(body)).await }
    };

    // The county (root) halves the video share; the branch opens check-in earlier.
    let r = put(
        &root,
        &admin,
        json!({"overrides": {"video_present_share": "1/2"}}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["version"].as_i64()),
        (StatusCode::OK, Some(1)),
        "{:?}",
        r.body
    );
    let r = put(
        &branch,
        &sec,
        json!({"overrides": {"checkin_opens_before_min": 45}}),
    )
    .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let body = json!({"overrides": {"checkin_opens_before_min": 45}, "expected_version": 0});
    assert_eq!(
        put(&branch, &admin, body.clone()).await.status,
        StatusCode::OK
    );
    let stale = put(&branch, &admin, body).await;
    assert_eq!(
        (stale.status, stale.code()),
        (StatusCode::CONFLICT, "settings_version_mismatch")
    );
    let bad = put(
        &branch,
        &admin,
        json!({"overrides": {"checkin_on_time_after_min": -5}}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Impossible warning thresholds are refused by field, and an unknown cadence as malformed.
    let bad = put(
        &branch,
        &admin,
        json!({"overrides": {"warn_due_within_days": 40, "rectification_days": 0}}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["warn_due_within_days", "rectification_days"]);
    let bad = put(
        &branch,
        &admin,
        json!({"overrides": {"cadence_themed_party_day": "fortnight"}}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // A B threshold that meets the A one inherited from above is refused too.
    let bad = put(&branch, &admin, json!({"overrides": {"grade_b_min": 95}})).await;
    assert_eq!(
        (bad.status, bad.body["errors"][0]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("grades_out_of_order")
        )
    );

    let s = app
        .get(&format!("/v1/orgs/{branch}/settings"), &sec)
        .await
        .body;
    assert_eq!(s["version"], 1);
    assert_eq!(s["overrides"], json!({"checkin_opens_before_min": 45}));
    assert_eq!(
        s["effective"],
        json!({"checkin_opens_before_min": 45, "checkin_on_time_after_min": 15,
               "video_present_share": "1/2", "video_token_grace_minutes": 30,
               "case_due_days_need": 7, "case_due_days_suggestion": 15, "case_due_soon_hours": 48,
               "cadence_branch_general_meeting": "quarter", "cadence_branch_committee_meeting": "month",
               "cadence_party_group_meeting": "month", "cadence_party_lecture": "quarter",
               "cadence_themed_party_day": "month", "cadence_org_life_meeting": "year",
               "warn_due_within_days": 7, "rectification_days": 10,
               "assessment_quarter_min": 25, "grade_a_min": 90, "grade_b_min": 80,
               "coordinates_precise_days": 90, "audit_retention_days": 1095,
               "departed_retention_days": 365})
    );

    // A meeting planned without its own window takes the branch's.
    let starts = t0 + TimeDelta::minutes(10);
    let r = app
        .post(
            "/v1/meetings",
            &sec,
            json!({"org_id": branch, "meeting_type": "themed_party_day", "title": "主题党日",
                   "starts_at": starts, "ends_at": starts + TimeDelta::hours(1), "video": true}),
        )
        .await;
    assert_eq!(r.body["checkin_window"]["opens_before_min"], 45);
    let (meeting, room) = (
        r.id(),
        r.body["video_room"].as_str().expect("room").to_string(),
    );

    // 35 minutes of 60 on video: under the default 2/3, over the county's 1/2.
    let member = &members[0].0;
    let join = participant("participant_joined", "j1", &room, member, starts);
    let leave = participant(
        "participant_left",
        "l1",
        &room,
        member,
        starts + TimeDelta::minutes(35),
    );
    assert_eq!(webhook(&app, &join, LK_SECRET).await.body["recorded"], true);
    assert_eq!(
        webhook(&app, &leave, LK_SECRET).await.body["recorded"],
        true
    );
    clock.advance(TimeDelta::hours(2));
    let r = app
        .post(&format!("/v1/meetings/{meeting}/close"), &sec, json!({}))
        .await;
    let status = r.body["attendance"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["member_id"] == member.as_str()))
        .map(|f| f["status"].clone());
    assert_eq!(status, Some(json!("video")), "{:?}", r.body);
}

//! Roles end where their holder leaves, accounts are out of reach of those who could not grant
//! their roles, party groups have leaders, video rooms belong to their meeting, and probes learn
//! nothing.

use crate::helpers::branch_with_members;
use crate::helpers::KeyPhone;
use crate::helpers::{spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;

#[tokio::test]
async fn a_moved_secretary_and_a_moved_committee_member_lose_their_old_branch() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (a, sec_a, members) = branch_with_members(&app, &admin, "甲村党支部", 13981000000, 2).await;
    let root = app.root_id(&admin).await;
    let b = app.create_org(&admin, &root, "branch", "乙村党支部").await;
    let (committee, committee_token) = members[0].clone();
    app.grant(&sec_a, &committee, &a, "committee_member").await;
    let me = app.get("/v1/me", &sec_a).await.body;
    let secretary = me["id"].as_str().expect("id").to_string();
    let roster_a = format!("/v1/members?org_id={a}");
    assert_eq!(app.get(&roster_a, &sec_a).await.status, StatusCode::OK);
    assert_eq!(
        app.get(&roster_a, &committee_token).await.status,
        StatusCode::OK
    );

    for m in [&secretary, &committee] {
        let r = app
            .patch(&format!("/v1/members/{m}"), &admin, json!({"org_id": b}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    // Their tokens still work, but A is no longer theirs: not even visible.
    for token in [&sec_a, &committee_token] {
        assert_eq!(
            app.get(&roster_a, token).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(app.get("/v1/me", token).await.status, StatusCode::OK);
    }
    let r = app
        .patch(&format!("/v1/orgs/{a}"), &sec_a, json!({"name": "改名"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let roles = app.get(&format!("/v1/roles?org_id={a}"), &admin).await;
    assert_eq!(
        roles.body["items"].as_array().map(Vec::len),
        Some(0),
        "{:?}",
        roles.body
    );
    let ended: Vec<_> = app
        .published_events()
        .await
        .into_iter()
        .filter(|e| e.topic == "role.ended")
        .collect();
    assert_eq!(ended.len(), 2, "{ended:?}");
}

#[tokio::test]
async fn only_who_could_grant_every_role_of_an_account_may_edit_or_reset_it() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let (a, sec, members) = branch_with_members(&app, &admin, "丙村党支部", 13982000000, 4).await;
    // In branch A: a township admin, a fellow secretary, a committee member, a plain member.
    let (town, fellow, committee, plain) = (
        members[0].0.clone(),
        members[1].0.clone(),
        members[2].0.clone(),
        members[3].0.clone(),
    );
    app.grant(&admin, &town, &root, "township_admin").await;
    app.grant(&admin, &fellow, &a, "secretary").await;
    app.grant(&sec, &committee, &a, "committee_member").await;
    let cases = [
        (&sec, &town, false),
        (&sec, &fellow, false),
        (&sec, &committee, true),
        (&sec, &plain, true),
        (&admin, &town, true),
        (&admin, &fellow, true),
    ];
    for (actor, target, allowed) in cases {
        let edit = app
            .patch(
                &format!("/v1/members/{target}"),
                actor,
                json!({"name": "新名字"}),
            )
            .await;
        let reset = app
            .post(
                &format!("/v1/members/{target}/password"),
                actor,
                json!({"password": "takeover2026"}),
            )
            .await;
        if allowed {
            assert_eq!(edit.status, StatusCode::OK, "{:?}", edit.body);
            assert_eq!(reset.status, StatusCode::NO_CONTENT, "{:?}", reset.body);
        } else {
            for r in [&edit, &reset] {
                assert_eq!(
                    (r.status, r.code()),
                    (StatusCode::FORBIDDEN, "member_holds_higher_role"),
                    "{target}: {:?}",
                    r.body
                );
            }
        }
    }
    // The township admin's password is still theirs: no takeover happened.
    let phone = app.get(&format!("/v1/members/{town}"), &admin).await.body["phone"]
        .as_str()
        .expect("phone")
        .to_string();
    assert_eq!(
        app.login_res(&phone, "takeover2026").await.status,
        StatusCode::OK,
        "the admin (who may) reset it last"
    );
}

#[tokio::test]
async fn a_member_placed_in_a_party_group_can_lead_it_and_an_outsider_cannot() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (a, sec, members) = branch_with_members(&app, &admin, "丁村党支部", 13983000000, 2).await;
    let group = app.create_org(&admin, &a, "group", "第一党小组").await;
    let (inside, outside) = (members[0].0.clone(), members[1].0.clone());
    let r = app
        .patch(
            &format!("/v1/members/{inside}"),
            &sec,
            json!({"group_id": group}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["group_id"].as_str()),
        (StatusCode::OK, Some(group.as_str()))
    );
    app.grant(&sec, &inside, &group, "group_leader").await;
    let r = app
        .post(
            "/v1/roles",
            &sec,
            json!({"member_id": outside, "org_id": group, "role": "group_leader"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["code"], "member_outside_org");
    // Leaving the group ends the role.
    let r = app
        .patch(
            &format!("/v1/members/{inside}"),
            &sec,
            json!({"group_id": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let roles = app.get(&format!("/v1/roles?org_id={group}"), &sec).await;
    assert_eq!(roles.body["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn probes_of_stats_and_repeated_clock_ins_learn_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, sec, members) = branch_with_members(&app, &admin, "戊村党支部", 13984000000, 1).await;
    let root = app.root_id(&admin).await;
    let other = app.create_org(&admin, &root, "branch", "己村党支部").await;
    let (me, token) = members[0].clone();
    let from = "2026-01-01T00:00:00Z";
    let to = "2027-01-01T00:00:00Z";
    for org in [other.clone(), uuid::Uuid::now_v7().to_string()] {
        let r = app
            .get(
                &format!("/v1/attendance/stats?org_id={org}&member_id={me}&from={from}&to={to}"),
                &token,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{org}: {:?}", r.body);
    }

    // A first clock-in, then a repeat whose signature is wrong: refused, not answered with the
    // first.
    let branch = app.get("/v1/me", &token).await.body["org_id"]
        .as_str()
        .expect("org")
        .to_string();
    let phone = KeyPhone::register(&app, &token, &me, 7).await;
    let starts = chrono::Utc::now() + chrono::TimeDelta::minutes(5);
    let meeting = app.plan_party_day(&sec, &branch, starts).await;
    let code = crate::helpers::code_at(&app, &sec, &meeting, chrono::Utc::now()).await;
    let ev = phone.evidence(&meeting, &code, chrono::Utc::now(), None);
    let path = format!("/v1/meetings/{meeting}/clock-in");
    assert_eq!(
        app.post(&path, &token, ev.clone()).await.status,
        StatusCode::OK
    );
    let mut forged = ev;
    forged["signature"] = json!("MEUCIQDn");
    let r = app.post(&path, &token, forged).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "bad_signature"),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn video_rooms_belong_to_their_meeting_and_close_with_it() {
    use crate::helpers::{LK_KEY as KEY, LK_SECRET as SECRET};
    let app = spawn_app_with(HashMap::from([
        (
            "YUNLIAN_LIVEKIT_URL",
            "wss://video.county.example".to_string(),
        ),
        ("YUNLIAN_LIVEKIT_API_KEY", KEY.to_string()),
        ("YUNLIAN_LIVEKIT_API_SECRET", SECRET.to_string()),
    ]))
    .await;
    let admin = app.admin().await;
    let (a, sec_a, members_a) =
        branch_with_members(&app, &admin, "庚村党支部", 13985000000, 1).await;
    let (_, _, members_b) = branch_with_members(&app, &admin, "辛村党支部", 13986000000, 1).await;
    let starts = chrono::Utc::now() - chrono::TimeDelta::minutes(10);
    let ends = starts + chrono::TimeDelta::hours(1);
    // A client cannot name the room.
    let r = app
        .post(
            "/v1/meetings",
            &sec_a,
            json!({"org_id": a, "meeting_type": "themed_party_day", "title": "主题党日",
                   "starts_at": starts, "ends_at": ends, "video_room": "someone-elses-room"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "unknown_field")
    );
    let r = app
        .post(
            "/v1/meetings",
            &sec_a,
            json!({"org_id": a, "meeting_type": "themed_party_day", "title": "主题党日",
                   "starts_at": starts, "ends_at": ends, "video": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let (meeting, room) = (
        r.id(),
        r.body["video_room"].as_str().expect("room").to_string(),
    );
    let join = app
        .post(
            &format!("/v1/meetings/{meeting}/video/join"),
            &members_a[0].1,
            json!({}),
        )
        .await;
    assert_eq!(join.status, StatusCode::OK, "{:?}", join.body);
    let token = join.body["token"].as_str().expect("token");
    let payload = token.split('.').nth(1).expect("payload");
    use base64::Engine as _;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("claims");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(
        exp <= (ends + chrono::TimeDelta::minutes(30)).timestamp(),
        "{claims}"
    );

    // Branch B's member in A's room leaves no attendance in A.
    let body = json!({"event": "participant_joined", "id": "EV_b", "createdAt": starts.timestamp() + 60,
                      "room": {"name": room}, "participant": {"identity": members_b[0].0}});
    let r = crate::helpers::webhook(&app, &body, SECRET).await;
    assert_eq!(
        r.body,
        json!({"recorded": false, "reason": "participant_not_expected"})
    );

    // Closed: no more tokens.
    let r = app
        .post(&format!("/v1/meetings/{meeting}/close"), &sec_a, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let join = app
        .post(
            &format!("/v1/meetings/{meeting}/video/join"),
            &members_a[0].1,
            json!({}),
        )
        .await;
    assert_eq!(
        (join.status, join.code()),
        (StatusCode::CONFLICT, "meeting_closed")
    );
}

#[tokio::test]
async fn a_member_sees_their_own_attendance_listed_and_synced() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "壬村党支部", 13990000000, 2).await;
    let (me, token) = members[0].clone();
    let phone = KeyPhone::register(&app, &token, &me, 31).await;
    let starts = chrono::Utc::now() - chrono::TimeDelta::minutes(5);
    let meeting = app.plan_party_day(&sec, &branch, starts).await;
    let code = crate::helpers::code_at(&app, &sec, &meeting, chrono::Utc::now()).await;
    let ev = phone.evidence(&meeting, &code, chrono::Utc::now(), None);
    let r = app
        .post(&format!("/v1/meetings/{meeting}/clock-in"), &token, ev)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app.get("/v1/me/attendance", &token).await;
    assert_eq!(
        r.body["items"],
        json!([]),
        "nothing until the meeting closes"
    );
    let r = app
        .post(&format!("/v1/meetings/{meeting}/close"), &sec, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let mine = app.get("/v1/me/attendance", &token).await;
    let item = &mine.body["items"][0];
    assert_eq!(
        (
            item["meeting_id"].as_str(),
            item["status"].as_str(),
            item["evidence"].as_str()
        ),
        (Some(meeting.as_str()), Some("present"), Some("clock_in"))
    );
    assert_eq!(item["clock_in"]["punctuality"], "on_time");
    let theirs = app.get("/v1/me/attendance", &members[1].1).await;
    assert_eq!(
        (
            theirs.body["items"][0]["status"].as_str(),
            &theirs.body["items"][0]["evidence"]
        ),
        (Some("absent"), &json!(null))
    );
    // The phone holds the same row in its own scope.
    let mut p = crate::helpers::Phone::new(token.clone());
    p.pull_all(&app, 100).await;
    let row = &p.rows[&format!("member:{me}")][&format!("attendance/{meeting}")];
    assert_eq!(row, item);
}

//! The points ledger end to end: a month of a 30-member branch (a meeting with on-time, late,
//! video, excused and absent members, a late offline clock-in, a case accepted and resolved, volunteering past
//! its cap, a violation posted by a second committee member and an admonition voided) gives
//! entries that match a hand-computed table; redelivering and replaying every event changes
//! nothing; rankings order ties by member id.

use crate::helpers::{
    branch_with_members, code_at, participant, spawn_app_on, webhook, KeyPhone, TestApp, LK_KEY,
    LK_SECRET,
};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use yunlian_domain::ports::{Clock, FixedClock};
use yunlian_infra::db::{self, ScopedFutureExt};

/// Waits until the points consumer has scored every event written so far.
pub(crate) async fn scored(app: &TestApp) {
    let store = yunlian_infra::Db::connect(&app.database_url, 1)
        .await
        .expect("db");
    for _ in 0..200 {
        let left = store
            .read(|mut c| {
                async move {
                    db::outbox::unconsumed(&mut c, "points", yunlian_api::ops::points::TOPICS, 1)
                        .await
                }
                .scope_boxed()
            })
            .await
            .expect("outbox");
        if left.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the points consumer did not catch up");
}

/// The 23 members beyond the story's seven, with how each attends the party day and the points
/// that earns by hand (on time +2, late +1, excused 0, absent −3).
const EXTRA: [(&str, i64); 23] = [
    ("on_time", 2),
    ("late", 1),
    ("excused", 0),
    ("absent", -3),
    ("on_time", 2),
    ("late", 1),
    ("excused", 0),
    ("absent", -3),
    ("on_time", 2),
    ("late", 1),
    ("excused", 0),
    ("absent", -3),
    ("on_time", 2),
    ("late", 1),
    ("excused", 0),
    ("absent", -3),
    ("on_time", 2),
    ("late", 1),
    ("excused", 0),
    ("absent", -3),
    ("on_time", 2),
    ("late", 1),
    ("excused", 0),
];

async fn balances(app: &TestApp, sec: &str, people: &[(String, String)]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (name, id) in people {
        let r = app
            .get(&format!("/v1/members/{id}/points?period=2026-12"), sec)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        out.insert(name.clone(), r.body["balance"].as_i64().expect("balance"));
    }
    out
}

async fn entry_count(app: &TestApp, admin: &str, branch: &str) -> usize {
    app.list_all(&format!("/v1/points/entries?org_id={branch}"), admin)
        .await
        .len()
}

#[tokio::test]
async fn a_month_of_a_branch_scores_as_the_hand_count_and_replays_change_nothing() {
    let t0: DateTime<Utc> = "2026-12-02T00:00:00Z".parse().expect("time");
    let clock = Arc::new(FixedClock::at(t0));
    let vars = HashMap::from([
        ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", (40 * 86400).to_string()),
        ("YUNLIAN_REFRESH_TOKEN_TTL_DAYS", "60".to_string()),
        ("YUNLIAN_OUTBOX_RELAY_MS", "50".to_string()),
        (
            "YUNLIAN_LIVEKIT_URL",
            "wss://video.county.example".to_string(),
        ),
        ("YUNLIAN_LIVEKIT_API_KEY", LK_KEY.to_string()),
        ("YUNLIAN_LIVEKIT_API_SECRET", LK_SECRET.to_string()),
    ]);
    let app = spawn_app_on(vars, clock.clone()).await;
    let admin = app.admin().await;
    // The secretary and 29 members: m0..m3 and the committee member carry the month's story;
    // m5 is away and joins by video; the other 23 attend as the table below plans.
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "积分村党支部", 13998000000, 29).await;
    let sec_id = app.get("/v1/me", &sec).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (c_id, committee) = members[4].clone();
    let r = app
        .post(
            "/v1/roles",
            &admin,
            json!({"member_id": c_id, "org_id": branch, "role": "committee_member"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let now = || clock.now();

    // A themed party day at 09:00 (village time), with a video room: M0 on time, M1 late, M2 on
    // approved leave, M5 on video from the city; M3, the secretary and the committee member
    // absent at the close; the other 23 members as EXTRA plans.
    let starts = t0 + TimeDelta::hours(1);
    let planned = app
        .post(
            "/v1/meetings",
            &sec,
            json!({"org_id": branch, "meeting_type": "themed_party_day", "title": "主题党日",
                   "starts_at": starts, "ends_at": starts + TimeDelta::hours(1), "video": true}),
        )
        .await;
    assert_eq!(planned.status, StatusCode::CREATED, "{:?}", planned.body);
    let meeting = planned.id();
    let room = planned.body["video_room"]
        .as_str()
        .expect("room")
        .to_string();
    let extra = &members[6..];
    assert_eq!(extra.len(), EXTRA.len());
    let excused = std::iter::once(&members[2]).chain(
        extra
            .iter()
            .zip(EXTRA)
            .filter(|(_, (plan, _))| *plan == "excused")
            .map(|(m, _)| m),
    );
    for (_, token) in excused {
        let leave = app
            .post(
                &format!("/v1/meetings/{meeting}/leave"),
                token,
                json!({"reason": "外出就医"}),
            )
            .await;
        let d = app
            .post(
                &format!("/v1/leave-requests/{}/decision", leave.id()),
                &sec,
                json!({"approve": true}),
            )
            .await;
        assert_eq!(d.body["status"], "approved");
    }
    let code = |t: DateTime<Utc>| {
        let (app, sec, meeting) = (&app, sec.clone(), meeting.clone());
        async move { code_at(app, &sec, &meeting, t).await }
    };
    let mut phones = Vec::new();
    for (i, (id, token)) in members[..4].iter().enumerate() {
        phones.push(KeyPhone::register(&app, token, id, 90 + i as u8).await);
    }
    let mut extra_phones = Vec::new();
    for (i, (id, token)) in extra.iter().enumerate() {
        extra_phones.push(KeyPhone::register(&app, token, id, 100 + i as u8).await);
    }
    let clock_in_extra = |plan: &'static str| {
        let (app, meeting, phones, code) = (&app, &meeting, &extra_phones, &code);
        async move {
            for (phone, _) in phones.iter().zip(EXTRA).filter(|(_, (p, _))| *p == plan) {
                let r = app
                    .post(
                        &format!("/v1/meetings/{meeting}/clock-in"),
                        &phone.token,
                        phone.evidence(meeting, &code(now()).await, now(), None),
                    )
                    .await;
                assert_eq!(r.body["punctuality"], plan, "{:?}", r.body);
            }
        }
    };
    let video_member = members[5].0.clone();
    let joined = participant("participant_joined", "j5", &room, &video_member, starts);
    assert_eq!(
        webhook(&app, &joined, LK_SECRET).await.body["recorded"],
        true
    );
    clock.advance(TimeDelta::minutes(55));
    let r = app
        .post(
            &format!("/v1/meetings/{meeting}/clock-in"),
            &phones[0].token,
            phones[0].evidence(&meeting, &code(now()).await, now(), None),
        )
        .await;
    assert_eq!(r.body["punctuality"], "on_time", "{:?}", r.body);
    clock_in_extra("on_time").await;
    // M3 clocks in offline in the hall at the same minute; the phone uploads it tomorrow.
    let made = now();
    let mut queued = phones[3].evidence(&meeting, &code(made).await, made, None);
    queued["meeting_id"] = json!(meeting);
    clock.advance(TimeDelta::minutes(25));
    let r = app
        .post(
            &format!("/v1/meetings/{meeting}/clock-in"),
            &phones[1].token,
            phones[1].evidence(&meeting, &code(now()).await, now(), None),
        )
        .await;
    assert_eq!(r.body["punctuality"], "late", "{:?}", r.body);
    clock_in_extra("late").await;
    let left = participant(
        "participant_left",
        "l5",
        &room,
        &video_member,
        starts + TimeDelta::minutes(58),
    );
    assert_eq!(webhook(&app, &left, LK_SECRET).await.body["recorded"], true);
    clock.advance(TimeDelta::minutes(60));
    assert_eq!(
        app.post(&format!("/v1/meetings/{meeting}/close"), &sec, json!({}))
            .await
            .status,
        StatusCode::OK
    );

    // Learning. The committee publishes a video (600 s: 480 s of watching complete it), a quiz
    // and seven short articles (10 s reading floor each) to the branch.
    let item = |body: Value| {
        let (app, committee) = (&app, committee.clone());
        async move {
            let r = app.post("/v1/learning/items", &committee, body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            r.id()
        }
    };
    let video = item(
        json!({"org_id": branch, "kind": "video", "title": "党课：不忘初心", "length_secs": 600}),
    )
    .await;
    let quiz = item(json!({"org_id": branch, "kind": "quiz", "title": "党章测验", "questions": [
        {"prompt": "党的根本宗旨是什么？", "options": ["全心全意为人民服务", "发展经济"], "answer": 0},
        {"prompt": "党课多久至少一次？", "options": ["每月", "每季度"], "answer": 1}]})).await;
    let q = app
        .get(&format!("/v1/learning/items/{quiz}"), &members[0].1)
        .await;
    assert!(
        !q.body.to_string().contains("\"answer\""),
        "no answers before submission: {}",
        q.body
    );
    let mut articles = Vec::new();
    for i in 0..7 {
        articles.push(item(json!({"org_id": branch, "kind": "article", "title": format!("学习材料{i}"), "body": "……", "length_secs": 10})).await);
    }
    // M0 watches the video in real time; M1 jumps to its end after a minute.
    let progress = |token: String, id: String, pos: i64| {
        let app = &app;
        async move {
            let r = app
                .post(
                    &format!("/v1/learning/items/{id}/progress"),
                    &token,
                    json!({"position_secs": pos}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            r.body
        }
    };
    let mut last = Value::Null;
    for s in (0..=480).step_by(60) {
        last = progress(members[0].1.clone(), video.clone(), s).await;
        clock.advance(TimeDelta::seconds(60));
    }
    assert!(last["completed_at"].is_string(), "{last}");
    progress(members[1].1.clone(), video.clone(), 0).await;
    clock.advance(TimeDelta::seconds(60));
    let skipped = progress(members[1].1.clone(), video.clone(), 600).await;
    assert_eq!(
        (
            skipped["credited_secs"].as_i64(),
            skipped["completed_at"].is_null()
        ),
        (Some(60), true)
    );
    // M1 reads seven articles in a day: the daily cap (6) leaves the seventh at 0.
    for a in &articles {
        progress(members[1].1.clone(), a.clone(), 0).await;
        clock.advance(TimeDelta::seconds(12));
        let r = progress(members[1].1.clone(), a.clone(), 10).await;
        assert!(r["completed_at"].is_string(), "{r}");
    }
    // M0's quiz, all right, once.
    let g = app
        .post(
            &format!("/v1/learning/items/{quiz}/quiz"),
            &members[0].1,
            json!({"answers": [0, 1]}),
        )
        .await;
    assert_eq!(
        (g.body["correct"].as_i64(), g.body["total"].as_i64()),
        (Some(2), Some(2)),
        "{:?}",
        g.body
    );
    let again = app
        .post(
            &format!("/v1/learning/items/{quiz}/quiz"),
            &members[0].1,
            json!({"answers": [0, 1]}),
        )
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "quiz_already_submitted")
    );
    // 送学上门: M2 is elderly; the committee member visits with the video (10 minutes).
    let r = app
        .patch(
            &format!("/v1/members/{}", members[2].0),
            &sec,
            json!({"elderly_or_infirm": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let visit = json!({"member_id": members[2].0, "item_id": video, "duration_secs": 600, "confirmation": "member_confirmed"});
    let r = app.post("/v1/learning/visits", &committee, visit).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let not_elderly = json!({"member_id": members[3].0, "item_id": video, "duration_secs": 600, "confirmation": "member_confirmed"});
    let r = app
        .post("/v1/learning/visits", &committee, not_elderly)
        .await;
    assert_eq!(r.body["errors"][0]["code"], "not_elderly_or_infirm");
    let stats = app
        .get(
            &format!("/v1/learning/items/{video}/stats?org_id={branch}"),
            &sec,
        )
        .await;
    let line = &stats.body["branches"][0];
    assert_eq!(
        (
            line["members"].as_i64(),
            line["viewed"].as_i64(),
            line["completed"].as_i64()
        ),
        (Some(30), Some(3), Some(2)),
        "{:?}",
        stats.body
    );
    // Who: M0 watched it through, M1 skipped ahead (60 s credited), M2 was visited; by id.
    let who: Vec<(String, bool, bool)> = line["learners"]
        .as_array()
        .expect("learners")
        .iter()
        .map(|l| {
            (
                l["member_id"].as_str().unwrap_or("").to_string(),
                l["completed_at"].is_string(),
                l["visit"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let mut want = vec![
        (members[0].0.clone(), true, false),
        (members[1].0.clone(), false, false),
        (members[2].0.clone(), true, true),
    ];
    want.sort();
    assert_eq!(who, want, "{:?}", stats.body);

    // M0's suggestion is accepted and resolved.
    let post = crate::moments::post_topic(&app, &sec, &branch, now() + TimeDelta::days(5)).await;
    let cm = app
        .post(
            &format!("/v1/posts/{post}/comments"),
            &members[0].1,
            json!({"body": "修路", "category": "suggestion"}),
        )
        .await;
    let case = cm.body["case_id"].as_str().expect("case").to_string();
    assert_eq!(
        app.post(
            &format!("/v1/cases/{case}/accept"),
            &committee,
            json!({"assignee_id": c_id})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        app.post(
            &format!("/v1/cases/{case}/resolve"),
            &committee,
            json!({"reply": "已修"})
        )
        .await
        .status,
        StatusCode::OK
    );

    // M1 serves six times; the secretary confirms each; the month's cap (10) stops the sixth.
    for i in 0..6 {
        let s = app
            .post(
                "/v1/volunteer-services",
                &members[1].1,
                json!({"title": format!("清扫村道{i}"), "served_at": now() - TimeDelta::hours(1)}),
            )
            .await;
        assert_eq!(s.status, StatusCode::CREATED, "{:?}", s.body);
        let r = app
            .post(
                &format!("/v1/volunteer-services/{}/confirm", s.id()),
                &sec,
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        if i == 0 {
            let again = app
                .post(
                    &format!("/v1/volunteer-services/{}/confirm", s.id()),
                    &sec,
                    json!({}),
                )
                .await;
            assert_eq!(
                (again.status, again.code()),
                (StatusCode::CONFLICT, "service_confirmed")
            );
        }
    }

    // A violation for M2, entered by the committee member, posted by the secretary; an
    // admonition for M3, voided.
    let v = app.post("/v1/points/adjustments", &committee, json!({"member_id": members[2].0, "kind": "violation", "delta": -5, "reason": "未按时缴纳党费"})).await;
    assert_eq!(v.status, StatusCode::CREATED, "{:?}", v.body);
    assert_eq!(v.body["pending"], true);
    let own = app
        .post(
            &format!("/v1/points/adjustments/{}/post", v.id()),
            &committee,
            json!({}),
        )
        .await;
    assert_eq!(
        (own.status, own.code()),
        (StatusCode::FORBIDDEN, "own_adjustment")
    );
    assert_eq!(
        app.post(
            &format!("/v1/points/adjustments/{}/post", v.id()),
            &sec,
            json!({})
        )
        .await
        .status,
        StatusCode::OK
    );
    let twice = app
        .post(
            &format!("/v1/points/adjustments/{}/void", v.id()),
            &sec,
            json!({}),
        )
        .await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::CONFLICT, "adjustment_decided")
    );
    let a = app
        .post(
            "/v1/points/adjustments",
            &committee,
            json!({"member_id": members[3].0, "kind": "admonition", "reason": "多次无故缺席"}),
        )
        .await;
    assert_eq!(a.body["delta"], -10);
    assert_eq!(
        app.post(
            &format!("/v1/points/adjustments/{}/void", a.id()),
            &sec,
            json!({})
        )
        .await
        .status,
        StatusCode::OK
    );
    let bad = app
        .post(
            "/v1/points/adjustments",
            &committee,
            json!({"member_id": members[2].0, "kind": "violation", "delta": -30, "reason": "x"}),
        )
        .await;
    assert_eq!(bad.body["errors"][0]["code"], "out_of_range");
    let bad = app
        .post(
            "/v1/points/adjustments",
            &committee,
            json!({"member_id": members[2].0, "kind": "violation", "delta": -5, "reason": " "}),
        )
        .await;
    assert_eq!(bad.body["errors"][0]["code"], "required");
    let bad = app
        .post(
            "/v1/points/adjustments",
            &members[0].1,
            json!({"member_id": members[2].0, "kind": "admonition", "reason": "x"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::FORBIDDEN);
    scored(&app).await;

    let mut people: Vec<(String, String)> = vec![
        ("sec".into(), sec_id.clone()),
        ("m0".into(), members[0].0.clone()),
        ("m1".into(), members[1].0.clone()),
        ("m2".into(), members[2].0.clone()),
        ("m3".into(), members[3].0.clone()),
        ("committee".into(), c_id.clone()),
        ("m5".into(), members[5].0.clone()),
    ];
    people.extend(
        extra
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (format!("x{i}"), id.clone())),
    );
    // By hand: the secretary and the committee member absent −3 each; M0 on time +2, video +1,
    // quiz +2, accepted +1, resolved +2 = 8; M1 late +1, six articles (the seventh capped to
    // 0) +6, volunteering 5 × 2 (the sixth capped to 0) = 17; M2 excused 0, learning visit +1,
    // violation −5 = −4; M3 absent −3 (the admonition voided); M5 on video for 58 of 60
    // minutes +2; the other 23 as EXTRA says.
    let want = |m3: i64| {
        let mut w = BTreeMap::from([
            ("committee".to_string(), -3),
            ("m0".into(), 8),
            ("m1".into(), 17),
            ("m2".into(), -4),
            ("m3".into(), m3),
            ("sec".into(), -3),
            ("m5".into(), 2),
        ]);
        w.extend(
            EXTRA
                .iter()
                .enumerate()
                .map(|(i, (_, p))| (format!("x{i}"), *p)),
        );
        w
    };
    assert_eq!(balances(&app, &sec, &people).await, want(-3));
    let m1 = app
        .get(
            &format!("/v1/members/{}/points?period=2026-12", members[1].0),
            &members[1].1,
        )
        .await;
    let vol: Vec<i64> = m1.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["rule"] == "volunteer")
        .map(|e| e["delta"].as_i64().unwrap_or(-99))
        .collect();
    assert_eq!(vol, vec![2, 2, 2, 2, 2, 0], "the cap leaves the sixth at 0");

    // M3's phone uploads the offline clock-in the next day: absent becomes on time, and the
    // ledger reverses −3 and writes +2.
    clock.advance(TimeDelta::hours(20));
    let push = json!({"client_id": uuid::Uuid::now_v7(), "schema_version": 1, "mutations": [
        {"id": 1, "name": "attendance.clock_in.v1", "args": queued}]});
    let r = app.post("/v1/sync/push", &members[3].1, push).await;
    assert_eq!(r.body["results"][0]["status"], "applied", "{:?}", r.body);
    scored(&app).await;
    assert_eq!(balances(&app, &sec, &people).await, want(2));
    let m3 = app
        .get(
            &format!("/v1/members/{}/points?period=2026-12", members[3].0),
            &members[3].1,
        )
        .await;
    let att: Vec<(String, i64, Option<String>)> = m3.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| {
            e["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("meeting:"))
        })
        .map(|e| {
            (
                e["rule"].as_str().unwrap_or("").into(),
                e["delta"].as_i64().unwrap_or(0),
                e["resolution"].as_str().map(String::from),
            )
        })
        .collect();
    assert_eq!(
        att,
        vec![
            ("absent".into(), -3, None),
            ("absent".into(), 3, Some("reverse".into())),
            ("on_time".into(), 2, None)
        ]
    );

    // Replaying the whole outbox (every event handed to the consumer again) writes nothing.
    let before = entry_count(&app, &admin, &branch).await;
    let store = yunlian_infra::Db::connect(&app.database_url, 1)
        .await
        .expect("db");
    store
        .write(|mut c| {
            async move {
                let events = db::outbox::all(&mut c).await?;
                let mut n = 0;
                for e in events {
                    if let Some(ev) =
                        yunlian_domain::events::DomainEvent::parse(&e.topic, &e.payload)
                    {
                        n += yunlian_api::ops::points::score_event(&mut c, &ev, e.id, Utc::now())
                            .await?;
                    }
                }
                assert_eq!(n, 0, "a replay wrote entries");
                Ok(())
            }
            .scope_boxed()
        })
        .await
        .expect("replay");
    assert_eq!(entry_count(&app, &admin, &branch).await, before);
    assert_eq!(balances(&app, &sec, &people).await, want(2));

    // The ranking: most points first, ties by member id; all thirty have a line.
    let r = app
        .get(
            &format!("/v1/points/ranking?org_id={branch}&period=2026-12"),
            &members[0].1,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(lines_of(&r.body), ranked(&want(2), &people));
    let positions: Vec<Value> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["position"].clone())
        .collect();
    assert_eq!(positions, (1..=30).map(|p| json!(p)).collect::<Vec<_>>());

    // With Redis, the second read comes from its sorted set, line for line the same; a new
    // entry makes it stale, and the next read rebuilds it from the ledger.
    let with_redis = app.redis.is_some();
    let ranking = |token: String| {
        let (app, branch) = (&app, branch.clone());
        async move {
            app.get(
                &format!("/v1/points/ranking?org_id={branch}&period=2026-12"),
                &token,
            )
            .await
            .body
        }
    };
    let again = ranking(members[0].1.clone()).await;
    assert_eq!(
        again["source"],
        if with_redis { "redis" } else { "database" }
    );
    assert_eq!(again["items"], r.body["items"]);
    let v = app.post("/v1/points/adjustments", &committee, json!({"member_id": members[1].0, "kind": "violation", "delta": -20, "reason": "违反纪律"})).await;
    app.post(
        &format!("/v1/points/adjustments/{}/post", v.id()),
        &sec,
        json!({}),
    )
    .await;
    let fresh = ranking(members[0].1.clone()).await;
    assert_eq!(fresh["source"], "database");
    let mut after = want(2);
    after.insert("m1".into(), -3);
    assert_eq!(lines_of(&fresh), ranked(&after, &people));
    let cached = ranking(members[0].1.clone()).await;
    assert_eq!(cached["items"], fresh["items"]);
    assert_eq!(
        cached["source"],
        if with_redis { "redis" } else { "database" }
    );

    let mut absent: Vec<String> = vec!["sec".into(), "committee".into()];
    absent.extend(
        EXTRA
            .iter()
            .enumerate()
            .filter(|(_, (plan, _))| *plan == "absent")
            .map(|(i, _)| format!("x{i}")),
    );
    lists_of_the_month(&app, &branch, &sec, &members, &people, &after, &absent).await;
}

/// (member id, total) per line of a ranking response.
fn lines_of(ranking: &Value) -> Vec<(String, i64)> {
    ranking["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["member_id"].as_str().unwrap_or("").to_string(),
                i["total"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

/// The hand table ranked as the rules say: most points first, ties by member id.
fn ranked(table: &BTreeMap<String, i64>, people: &[(String, String)]) -> Vec<(String, i64)> {
    let mut lines: Vec<(String, i64)> = people
        .iter()
        .map(|(name, id)| (id.clone(), table[name]))
        .collect();
    lines.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    lines
}

/// The month's red and yellow lists: drawn by the rules, published once, seen by the branch,
/// and exported to a workbook whose cells are read back.
async fn lists_of_the_month(
    app: &TestApp,
    branch: &str,
    sec: &str,
    members: &[(String, String)],
    people: &[(String, String)],
    table: &BTreeMap<String, i64>,
    absent: &[String],
) {
    let name_of = |id: String| async move {
        app.get(&format!("/v1/members/{id}"), sec).await.body["name"]
            .as_str()
            .expect("name")
            .to_string()
    };
    let draft = app
        .post(
            "/v1/points/lists",
            sec,
            json!({"org_id": branch, "period": "2026-12"}),
        )
        .await;
    assert_eq!(draft.status, StatusCode::CREATED, "{:?}", draft.body);
    let got: Vec<(String, String, i64, Value)> = draft.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["list"].as_str().unwrap_or("").into(),
                e["member_id"].as_str().unwrap_or("").into(),
                e["total"].as_i64().unwrap_or(0),
                e["reasons"].clone(),
            )
        })
        .collect();
    // Red: the five with most points (at least 1), no standing absence (m3's was reversed) and
    // no admonition, ties by member id; yellow: everyone absent without leave, by member id.
    let mut red: Vec<(String, i64)> = ranked(table, people)
        .into_iter()
        .filter(|(id, total)| {
            *total >= 1 && !people.iter().any(|(n, i)| i == id && absent.contains(n))
        })
        .collect();
    red.truncate(5);
    let mut yellow: Vec<(String, i64)> = people
        .iter()
        .filter(|(n, _)| absent.contains(n))
        .map(|(n, id)| (id.clone(), table[n]))
        .collect();
    yellow.sort();
    let want: Vec<(String, String, i64, Value)> = red
        .into_iter()
        .map(|(id, t)| ("red".to_string(), id, t, json!(["most_points"])))
        .chain(
            yellow
                .into_iter()
                .map(|(id, t)| ("yellow".to_string(), id, t, json!(["absent_without_leave"]))),
        )
        .collect();
    assert_eq!(
        (want.len(), want[0].2),
        (12, 8),
        "5 red led by m0, 7 yellow"
    );
    assert_eq!(got, want);
    let list = draft.id();
    assert_eq!(
        app.get(&format!("/v1/points/lists/{list}"), &members[0].1)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "a draft is the committee's"
    );
    let p = app
        .post(&format!("/v1/points/lists/{list}/publish"), sec, json!({}))
        .await;
    assert_eq!(
        (p.status, p.body["state"].as_str()),
        (StatusCode::OK, Some("published"))
    );
    let again = app
        .post(&format!("/v1/points/lists/{list}/publish"), sec, json!({}))
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "list_already_published")
    );
    let regen = app
        .post(
            "/v1/points/lists",
            sec,
            json!({"org_id": branch, "period": "2026-12"}),
        )
        .await;
    assert_eq!(regen.code(), "list_already_published");
    assert_eq!(
        app.get(&format!("/v1/points/lists/{list}"), &members[0].1)
            .await
            .status,
        StatusCode::OK
    );

    // The member's phone gets the published list with the branch.
    let mut phone = crate::helpers::Phone::new(members[0].1.clone());
    phone.pull_all(app, 500).await;
    assert!(phone.rows[&format!("org:{branch}")].contains_key(&format!("points_list/{list}")));

    // The notice-board workbook, read back cell by cell.
    let r = app
        .client
        .get(format!("{}/v1/points/lists/{list}/export", app.base))
        .bearer_auth(&members[0].1)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .contains("spreadsheetml"));
    let bytes = r.bytes().await.expect("bytes").to_vec();
    use calamine::Reader;
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("xlsx");
    let sheet = wb.worksheet_range("红黄榜").expect("sheet");
    let cells: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    let branch_name = app.get(&format!("/v1/orgs/{branch}"), sec).await.body["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert_eq!(cells[0][0], format!("{branch_name} 2026-12 红黄榜"));
    assert_eq!(cells[1], vec!["榜单", "姓名", "积分", "原因"]);
    let mut rows = Vec::new();
    for (list, id, total, _) in &want {
        let zh = if list == "red" { "红榜" } else { "黄榜" };
        let reason = if list == "red" {
            "积分靠前"
        } else {
            "无故缺席组织生活"
        };
        rows.push(vec![
            zh.to_string(),
            name_of(id.clone()).await,
            total.to_string(),
            reason.to_string(),
        ]);
    }
    assert_eq!(cells[2..].to_vec(), rows);

    // A draft cannot be exported by a member.
    let nov = app
        .post(
            "/v1/points/lists",
            sec,
            json!({"org_id": branch, "period": "2026-11"}),
        )
        .await;
    let r = app
        .get(
            &format!("/v1/points/lists/{}/export", nov.id()),
            &members[0].1,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "list_not_published")
    );
}

/// A pending adjustment nobody decides voids itself after the township's limit.
#[tokio::test]
async fn an_undecided_adjustment_voids_itself_after_fourteen_days() {
    let t0: DateTime<Utc> = "2026-12-02T00:00:00Z".parse().expect("time");
    let clock = Arc::new(FixedClock::at(t0));
    let vars = HashMap::from([
        ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", (40 * 86400).to_string()),
        ("YUNLIAN_REFRESH_TOKEN_TTL_DAYS", "60".to_string()),
    ]);
    let app = spawn_app_on(vars, clock.clone()).await;
    let admin = app.admin().await;
    let (_, sec, members) = branch_with_members(&app, &admin, "过期村党支部", 13998100000, 1).await;
    let a = app
        .post(
            "/v1/points/adjustments",
            &sec,
            json!({"member_id": members[0].0, "kind": "admonition", "reason": "无故缺席"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    clock.advance(TimeDelta::days(15));
    let cx = crate::jobs::job_cx(&app.database_url, clock.clone(), None).await;
    let n = yunlian_api::jobs::run_once("points_expiry", &cx, "test")
        .await
        .expect("round");
    assert_eq!(n, Some(1));
    let r = app
        .post(
            &format!("/v1/points/adjustments/{}/post", a.id()),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "adjustment_decided")
    );
    let p = app
        .get(
            &format!("/v1/members/{}/points?period=2026-12", members[0].0),
            &sec,
        )
        .await;
    assert_eq!(
        (p.body["balance"].as_i64(), p.body["pending"].as_i64()),
        (Some(0), Some(0))
    );
}

/// Admonitions counted per month and per branch (how a township follows its 151 → 23), and a
/// member on one month's published yellow list cleared in the next once compliant.
#[tokio::test]
async fn admonitions_are_counted_over_time_and_a_yellow_entry_clears() {
    let t0: DateTime<Utc> = "2026-10-05T02:00:00Z".parse().expect("time");
    let clock = Arc::new(FixedClock::at(t0));
    let vars = HashMap::from([
        ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", (90 * 86400).to_string()),
        ("YUNLIAN_REFRESH_TOKEN_TTL_DAYS", "90".to_string()),
    ]);
    let app = spawn_app_on(vars, clock.clone()).await;
    let admin = app.admin().await;
    let (a, sec_a, ms) = branch_with_members(&app, &admin, "东村党支部", 13998200000, 3).await;
    let (b, sec_b, ns) = branch_with_members(&app, &admin, "西村党支部", 13998300000, 2).await;
    let admonish = |member: String, decider: String, post: bool| {
        let (app, admin) = (&app, admin.clone());
        async move {
            let body = json!({"member_id": member, "kind": "admonition", "reason": "多次无故缺席"});
            let v = app.post("/v1/points/adjustments", &admin, body).await;
            assert_eq!(v.status, StatusCode::CREATED, "{:?}", v.body);
            let act = if post { "post" } else { "void" };
            let r = app
                .post(
                    &format!("/v1/points/adjustments/{}/{act}", v.id()),
                    &decider,
                    json!({}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        }
    };
    // October: two in the east village (a third voided), one in the west.
    admonish(ms[0].0.clone(), sec_a.clone(), true).await;
    admonish(ms[1].0.clone(), sec_a.clone(), true).await;
    admonish(ms[2].0.clone(), sec_a.clone(), false).await;
    admonish(ns[0].0.clone(), sec_b.clone(), true).await;
    let lists = |period: &'static str| {
        let (app, sec, a) = (&app, sec_a.clone(), a.clone());
        async move {
            let d = app
                .post(
                    "/v1/points/lists",
                    &sec,
                    json!({"org_id": a, "period": period}),
                )
                .await;
            assert_eq!(d.status, StatusCode::CREATED, "{:?}", d.body);
            let p = app
                .post(
                    &format!("/v1/points/lists/{}/publish", d.id()),
                    &sec,
                    json!({}),
                )
                .await;
            assert_eq!(p.status, StatusCode::OK);
            let mut got: Vec<(String, String, String)> = p.body["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .filter(|e| e["list"] != "red")
                .map(|e| {
                    (
                        e["list"].as_str().unwrap_or("").to_string(),
                        e["member_id"].as_str().unwrap_or("").to_string(),
                        e["reasons"].to_string(),
                    )
                })
                .collect();
            got.sort();
            got
        }
    };
    let mut october = vec![
        (
            "yellow".to_string(),
            ms[0].0.clone(),
            json!(["admonished"]).to_string(),
        ),
        (
            "yellow".into(),
            ms[1].0.clone(),
            json!(["admonished"]).to_string(),
        ),
    ];
    october.sort();
    assert_eq!(lists("2026-10").await, october);

    // November: the first is admonished again; the second is compliant and comes off.
    clock.advance(TimeDelta::days(31));
    admonish(ms[0].0.clone(), sec_a.clone(), true).await;
    let mut november = vec![
        (
            "yellow".to_string(),
            ms[0].0.clone(),
            json!(["admonished"]).to_string(),
        ),
        (
            "cleared".into(),
            ms[1].0.clone(),
            json!(["compliant_again"]).to_string(),
        ),
    ];
    november.sort();
    assert_eq!(lists("2026-11").await, november);

    let root = app.root_id(&admin).await;
    let r = app
        .get(
            &format!("/v1/points/admonitions?org_id={root}&from=2026-09&to=2026-11"),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let months: Vec<(String, i64)> = r.body["months"]
        .as_array()
        .expect("months")
        .iter()
        .map(|m| {
            (
                m["month"].as_str().unwrap_or("").to_string(),
                m["count"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        months,
        vec![
            ("2026-09".to_string(), 0),
            ("2026-10".into(), 3),
            ("2026-11".into(), 1)
        ]
    );
    let branches: Vec<(String, i64)> = r.body["branches"]
        .as_array()
        .expect("branches")
        .iter()
        .map(|m| {
            (
                m["org_id"].as_str().unwrap_or("").to_string(),
                m["count"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        (r.body["total"].as_i64(), branches),
        (Some(4), vec![(a.clone(), 3), (b.clone(), 1)])
    );
    // A branch secretary sees their own branch, not the township (outside their subtree: not
    // found); a member of the branch may not.
    let own = app
        .get(
            &format!("/v1/points/admonitions?org_id={b}&from=2026-10&to=2026-11"),
            &sec_b,
        )
        .await;
    assert_eq!(own.body["total"], 1, "{:?}", own.body);
    for (token, org, status) in [
        (&sec_b, &root, StatusCode::NOT_FOUND),
        (&ms[0].1, &a, StatusCode::FORBIDDEN),
    ] {
        let r = app
            .get(
                &format!("/v1/points/admonitions?org_id={org}&from=2026-10&to=2026-11"),
                token,
            )
            .await;
        assert_eq!(r.status, status);
    }
    for (query, code) in [
        ("from=2026-11&to=2026-10", "range_reversed"),
        ("from=2020-01&to=2026-10", "range_too_long"),
        ("from=2026-Q3&to=2026-10", "invalid_period"),
    ] {
        let r = app
            .get(
                &format!("/v1/points/admonitions?org_id={root}&{query}"),
                &admin,
            )
            .await;
        assert_eq!(
            (r.status, r.body["errors"][0]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{query}"
        );
    }
}

/// A course of lessons: each lesson is timed as an item of its kind, the course completes when
/// every lesson has, once, and scores as one learning item.
#[tokio::test]
async fn a_course_completes_when_every_lesson_has_and_scores_once() {
    let t0: DateTime<Utc> = "2026-12-02T01:00:00Z".parse().expect("time");
    let clock = Arc::new(FixedClock::at(t0));
    let vars = HashMap::from([
        ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", "86400".to_string()),
        ("YUNLIAN_OUTBOX_RELAY_MS", "50".to_string()),
    ]);
    let app = spawn_app_on(vars, clock.clone()).await;
    let admin = app.admin().await;
    let (branch, _, members) =
        branch_with_members(&app, &admin, "课程村党支部", 13998400000, 1).await;
    let (member, token) = members[0].clone();
    let course = app
        .post(
            "/v1/learning/items",
            &admin,
            json!({"org_id": branch, "kind": "course", "title": "新时代党课", "lessons": [
                {"title": "第一讲：初心使命", "kind": "video", "length_secs": 120},
                {"title": "第二讲：阅读材料", "kind": "article", "length_secs": 10}]}),
        )
        .await;
    assert_eq!(course.status, StatusCode::CREATED, "{:?}", course.body);
    assert_eq!(
        (
            course.body["length_secs"].as_i64(),
            course.body["lessons"][1]["kind"].as_str()
        ),
        (Some(130), Some("article"))
    );
    let video = app
        .post(
            "/v1/learning/items",
            &admin,
            json!({"org_id": branch, "kind": "video", "title": "短片", "length_secs": 60}),
        )
        .await
        .id();
    let at = format!("/v1/learning/items/{}/progress", course.id());
    let report = |lesson: Value, pos: i64| {
        let (app, at, token) = (&app, at.clone(), token.clone());
        async move {
            app.post(&at, &token, json!({"lesson": lesson, "position_secs": pos}))
                .await
        }
    };
    // The first lesson, watched in real time: 96 s of its 120 complete it, not the course.
    report(json!(0), 0).await;
    clock.advance(TimeDelta::seconds(60));
    report(json!(0), 60).await;
    clock.advance(TimeDelta::seconds(40));
    let r = report(json!(0), 100).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (
            r.body["credited_secs"].as_i64(),
            r.body["required_secs"].as_i64(),
            r.body["lesson_completed_at"].is_string(),
            r.body["completed_at"].is_null()
        ),
        (Some(100), Some(106), true, true),
        "{:?}",
        r.body
    );
    // Bad reports: no lesson, a lesson past the last, a lesson of a video, past the lesson's end.
    for (body, field, code) in [
        (json!({"position_secs": 5}), "lesson", "required"),
        (
            json!({"lesson": 2, "position_secs": 5}),
            "lesson",
            "out_of_range",
        ),
        (
            json!({"lesson": 1, "position_secs": 11}),
            "position_secs",
            "out_of_range",
        ),
    ] {
        let r = app.post(&at, &token, body).await;
        assert_eq!(
            (
                r.status,
                r.body["errors"][0]["field"].as_str(),
                r.body["errors"][0]["code"].as_str()
            ),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field), Some(code)),
            "{:?}",
            r.body
        );
    }
    let r = app
        .post(
            &format!("/v1/learning/items/{video}/progress"),
            &token,
            json!({"lesson": 0, "position_secs": 5}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["code"], "not_a_course", "{:?}", r.body);
    // The reading lesson completes the course, once.
    report(json!(1), 0).await;
    clock.advance(TimeDelta::seconds(12));
    let r = report(json!(1), 10).await;
    assert_eq!(
        (
            r.body["credited_secs"].as_i64(),
            r.body["completed_at"].is_string()
        ),
        (Some(112), true),
        "{:?}",
        r.body
    );
    clock.advance(TimeDelta::seconds(5));
    let again = report(json!(1), 10).await;
    assert_eq!(again.body["completed_at"], r.body["completed_at"]);
    scored(&app).await;
    let m = app
        .get(
            &format!("/v1/members/{member}/points?period=2026-12"),
            &token,
        )
        .await;
    let learning: Vec<(String, i64)> = m.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["rule"] == "learning_completed")
        .map(|e| {
            (
                e["source"].as_str().unwrap_or("").to_string(),
                e["delta"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        learning,
        vec![(format!("learning:{}:member:{member}", course.id()), 1)]
    );
    // A course without lessons, and lessons on a video, are refused by field.
    for (body, field, code) in [
        (
            json!({"org_id": branch, "kind": "course", "title": "空课程"}),
            "lessons",
            "out_of_range",
        ),
        (
            json!({"org_id": branch, "kind": "video", "title": "短片", "length_secs": 60,
                   "lessons": [{"title": "一", "kind": "video", "length_secs": 60}]}),
            "lessons",
            "only_for_a_course",
        ),
        (
            json!({"org_id": branch, "kind": "course", "title": "课程",
                   "lessons": [{"title": "一", "kind": "quiz", "length_secs": 60}]}),
            "lessons[0]",
            "invalid_lesson",
        ),
    ] {
        let r = app.post("/v1/learning/items", &admin, body).await;
        assert_eq!(
            (
                r.status,
                r.body["errors"][0]["field"].as_str(),
                r.body["errors"][0]["code"].as_str()
            ),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field), Some(code)),
            "{:?}",
            r.body
        );
    }
}

//! The attendance "done when": a meeting of 30 expected members, 20 clocking in on site (5 of
//! them offline, syncing the next day), 4 by video (one leaving after ten minutes), 2 excused and
//! the rest absent closes with exactly those statuses. Time is walked by hand on a fixed clock.

use crate::helpers::{
    branch_with_members, final_statuses, participant, spawn_video_app, webhook, KeyPhone, LK_KEY,
    LK_SECRET,
};
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use yunlian_domain::ports::FixedClock;

const HALL: (f64, f64) = (30.889, 119.42);

fn counts(attendance: &Value) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for a in attendance.as_array().expect("attendance") {
        *c.entry(a["status"].as_str().unwrap_or("").to_string())
            .or_insert(0) += 1;
    }
    c
}

#[tokio::test]
async fn a_meeting_of_thirty_closes_with_exactly_the_statuses_of_what_happened() {
    let t0: DateTime<Utc> = "2026-11-22T08:50:00Z".parse().expect("time");
    let clock = Arc::new(FixedClock::at(t0));
    // Tokens outlive the walk through the meeting day; the next day everyone logs in again.
    let app = spawn_video_app(clock.clone(), 21600).await;
    let admin = app.admin().await;
    // 30 members: the secretary and 29 (every fifth a migrant worker, as the roster says).
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "阳湾村党支部", 13995000000, 29).await;
    let roster = app
        .list_all(&format!("/v1/members?org_id={branch}"), &admin)
        .await;
    assert_eq!(roster.len(), 30);
    let migrant: Vec<String> = roster
        .iter()
        .filter(|m| m["residence"] == "migrant")
        .filter_map(|m| m["id"].as_str().map(String::from))
        .collect();
    let at_home: Vec<(String, String)> = members
        .iter()
        .filter(|(id, _)| !migrant.contains(id))
        .cloned()
        .collect();
    let away: Vec<(String, String)> = members
        .iter()
        .filter(|(id, _)| migrant.contains(id))
        .cloned()
        .collect();
    assert!(
        at_home.len() >= 21 && away.len() >= 4,
        "{} at home, {} away",
        at_home.len(),
        away.len()
    );

    let starts = t0 + TimeDelta::minutes(10);
    let r = app
        .post(
            "/v1/meetings",
            &sec,
            json!({"org_id": branch, "meeting_type": "themed_party_day", "title": "主题党日：学习强国",
                   "starts_at": starts, "ends_at": starts + TimeDelta::hours(2), "video": true,
                   "geofence": {"lat": HALL.0, "lng": HALL.1, "radius_m": 120.0}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let meeting = r.id();
    let room_name = r.body["video_room"]
        .as_str()
        .expect("the server names the room")
        .to_string();
    assert_eq!(room_name, format!("yl-{}", meeting.replace('-', "")));
    let secret = base64::engine::general_purpose::STANDARD
        .decode(
            app.get(&format!("/v1/meetings/{meeting}/code"), &sec)
                .await
                .body["secret_b64"]
                .as_str()
                .expect("secret"),
        )
        .expect("b64");
    let code_at = |t: DateTime<Utc>| yunlian_domain::attendance::meeting_code(&secret, t);

    // Before it starts: two members ask for leave; the secretary approves both.
    for (_, token) in &at_home[20..22] {
        let r = app
            .post(
                &format!("/v1/meetings/{meeting}/leave"),
                token,
                json!({"reason": "陪家人就医"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let d = app
            .post(
                &format!("/v1/leave-requests/{}/decision", r.id()),
                &sec,
                json!({"approve": true}),
            )
            .await;
        assert_eq!(d.body["status"], "approved");
    }

    // On site: 13 on time, 2 late, online; 5 more offline at the same time, uploaded tomorrow.
    let mut phones = Vec::new();
    for (i, (id, token)) in at_home[..20].iter().enumerate() {
        phones.push(KeyPhone::register(&app, token, id, 60 + i as u8).await);
    }
    clock.advance(TimeDelta::minutes(14)); // 08:50 + 14 = 09:04, six minutes before the start
    let on_site = Some((HALL.0, HALL.1, 8.0));
    for p in &phones[..13] {
        let now = clock_now(&clock);
        let r = app
            .post(
                &format!("/v1/meetings/{meeting}/clock-in"),
                &p.token,
                p.evidence(&meeting, &code_at(now), now, on_site),
            )
            .await;
        assert_eq!(r.body["punctuality"], "on_time", "{:?}", r.body);
    }
    let offline_made = clock_now(&clock);
    let mut queued = Vec::new();
    for p in &phones[15..20] {
        let mut args = p.evidence(&meeting, &code_at(offline_made), offline_made, on_site);
        args["meeting_id"] = json!(meeting);
        args["id"] = json!(uuid::Uuid::now_v7());
        queued.push(args);
    }
    clock.advance(TimeDelta::minutes(30)); // 09:34: more than 15 minutes after the start
    for p in &phones[13..15] {
        let now = clock_now(&clock);
        let r = app
            .post(
                &format!("/v1/meetings/{meeting}/clock-in"),
                &p.token,
                p.evidence(&meeting, &code_at(now), now, on_site),
            )
            .await;
        assert_eq!(r.body["punctuality"], "late", "{:?}", r.body);
    }

    // By video, from the cities: four join; one leaves after ten minutes. LiveKit's webhooks
    // arrive duplicated and out of order; a forged one is refused.
    let room = room_name.as_str();
    let (_, first_token) = &away[0];
    let join = app
        .post(
            &format!("/v1/meetings/{meeting}/video/join"),
            first_token,
            json!({}),
        )
        .await;
    assert_eq!(
        (join.status, join.body["room"].as_str()),
        (StatusCode::OK, Some(room)),
        "{:?}",
        join.body
    );
    let lk_claims = decode_unverified(join.body["token"].as_str().expect("token"));
    assert_eq!(
        (
            lk_claims["iss"].as_str(),
            lk_claims["video"]["room"].as_str()
        ),
        (Some(LK_KEY), Some(room))
    );
    let mut hooks = Vec::new();
    for (n, (id, _)) in away[..4].iter().enumerate() {
        hooks.push(participant(
            "participant_joined",
            &format!("EV_join_{n}"),
            room,
            id,
            starts - TimeDelta::minutes(2),
        ));
    }
    let quitter = &away[3].0;
    hooks.push(participant(
        "participant_left",
        "EV_left_3",
        room,
        quitter,
        starts + TimeDelta::minutes(10),
    ));
    hooks.reverse(); // the leave arrives before its join
    hooks.push(hooks[1].clone()); // a duplicate
    for h in &hooks {
        let r = webhook(&app, h, LK_SECRET).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let forged = participant("participant_left", "EV_forged", room, &away[0].0, starts);
    let r = webhook(&app, &forged, "not-the-county-secret").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "bad_webhook_signature")
    );

    // After the end, the secretary closes the meeting (the room finishes too).
    clock.advance(TimeDelta::minutes(100)); // 11:14, the meeting ended at 11:00
    let fin = participant(
        "room_finished",
        "EV_fin",
        room,
        "",
        starts + TimeDelta::hours(2),
    );
    assert_eq!(webhook(&app, &fin, LK_SECRET).await.status, StatusCode::OK);
    let r = app
        .post(&format!("/v1/meetings/{meeting}/close"), &sec, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let before = counts(&r.body["attendance"]);
    let expect = |p: usize, l: usize, v: usize, e: usize, a: usize| {
        BTreeMap::from([
            ("present".to_string(), p),
            ("late".into(), l),
            ("video".into(), v),
            ("excused".into(), e),
            ("absent".into(), a),
        ])
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(before, expect(13, 2, 3, 2, 10));
    assert_eq!(
        app.get(&format!("/v1/meetings/{meeting}"), &sec).await.body["status"],
        "held"
    );

    // The next day the five offline phones find signal: judged at the time they were made.
    clock.advance(TimeDelta::days(1));
    let uptime_now: i64 = 90_000_000;
    let made_uptime = uptime_now - (clock_now(&clock) - offline_made).num_milliseconds();
    for (p, args) in phones[15..20].iter().zip(&queued) {
        let (token, _) = app
            .login(&phone_of(&roster, &p.member_id), "dangyuan2026")
            .await;
        let push = json!({"client_id": uuid::Uuid::now_v7(), "schema_version": 1, "boot_id": "b", "uptime_ms": uptime_now,
            "mutations": [{"id": 1, "name": "attendance.clock_in.v1", "args": args, "boot_id": "b", "uptime_ms": made_uptime,
                           "device_time": offline_made}]});
        let r = app.post("/v1/sync/push", &token, push).await;
        let res = &r.body["results"][0];
        assert_eq!(
            (
                res["status"].as_str(),
                res["result"]["punctuality"].as_str()
            ),
            (Some("applied"), Some("on_time")),
            "{r:?}"
        );
    }
    let (sec_now, _) = app
        .login(
            &phone_of(&roster, &sec_member(&roster, &members)),
            "dangyuan2026",
        )
        .await;
    let att = app
        .get(&format!("/v1/meetings/{meeting}/attendance"), &sec_now)
        .await;
    assert_eq!(counts(&att.body["attendance"]), expect(18, 2, 3, 2, 5));
    let by_member = final_statuses(&att.body);
    assert_eq!(
        by_member[quitter], "absent",
        "ten minutes of video is not two thirds"
    );
    assert_eq!(by_member[&away[0].0], "video");
    assert_eq!(by_member[&at_home[20].0], "excused");

    // Rates: the branch and its migrant members apart.
    let stats = app
        .get(&format!("/v1/attendance/stats?org_id={branch}&from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z"), &sec_now)
        .await;
    assert_eq!(stats.status, StatusCode::OK, "{:?}", stats.body);
    assert_eq!(
        (
            stats.body["all"]["expected"].as_u64(),
            stats.body["all"]["rate_permille"].as_u64()
        ),
        (Some(30), Some(766))
    );
    assert_eq!(
        stats.body["migrant"]["expected"].as_u64(),
        Some(migrant.len() as u64)
    );
    assert_eq!(stats.body["migrant"]["video"].as_u64(), Some(3));

    // Every final status, and each later change of one, left through the outbox for the bus
    // once, in the order committed: replaying them gives the attendance the committee sees.
    let events = app.published_events().await;
    let finals: Vec<_> = events
        .iter()
        .filter(|e| e.topic == "attendance.final_status")
        .filter(|e| e.subject == format!("meeting:{meeting}"))
        .collect();
    assert_eq!(
        finals.len(),
        35,
        "30 at the close, 5 changed by late clock-ins"
    );
    let ids: std::collections::HashSet<_> = finals.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 35, "each event once");
    let mut replayed: BTreeMap<String, String> = BTreeMap::new();
    for e in &finals {
        let member = e.payload["member_id"].as_str().expect("member").to_string();
        let previous =
            replayed.insert(member, e.payload["status"].as_str().expect("status").into());
        assert_eq!(
            previous.as_deref(),
            e.payload["previous"].as_str(),
            "each change names the status it replaces"
        );
    }
    assert_eq!(replayed, by_member);
}

fn clock_now(c: &FixedClock) -> DateTime<Utc> {
    use yunlian_domain::ports::Clock;
    c.now()
}

fn phone_of(roster: &[Value], member: &str) -> String {
    roster
        .iter()
        .find(|m| m["id"] == member)
        .and_then(|m| m["phone"].as_str())
        .expect("member")
        .to_string()
}

fn sec_member(roster: &[Value], members: &[(String, String)]) -> String {
    roster
        .iter()
        .filter_map(|m| m["id"].as_str())
        .find(|id| members.iter().all(|(m, _)| m != id))
        .expect("the secretary")
        .to_string()
}

fn decode_unverified(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json")
}

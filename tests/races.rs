//! Concurrent writers that must not lose or cross each other's work, each run many times with a
//! seeded interleaving (`RACE_SEED`): a phone's whereabouts against an admin's edit, clock-ins
//! against member edits, two members claiming one new client id, and a meeting's close-out
//! against a late clock-in, a late video webhook and a second close; the board; two decisions on
//! one pending adjustment; duplicate learning progress reports.

use crate::helpers::branch_with_members;
use crate::helpers::KeyPhone;
use crate::helpers::{participant, webhook, LK_SECRET};
use crate::helpers::{race_rounds, seed, spawn_app};
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use yunlian_domain::ports::{Clock, FixedClock};

#[tokio::test]
async fn a_phones_whereabouts_and_an_admins_edit_of_one_member_never_lose_each_other() {
    let seed = seed("RACE_SEED", "whereabouts vs edit");
    let mut rng = StdRng::seed_from_u64(seed);
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, _, members) = branch_with_members(&app, &admin, "城东村党支部", 13971000000, 1).await;
    let (member, token) = members[0].clone();
    let client = Uuid::now_v7();
    let rounds = race_rounds(300, 300);
    let mut lost = Vec::new();
    for round in 1..=rounds {
        let (d1, d2) = (rng.random_range(0..=800), rng.random_range(0..=800));
        let city = format!("杭州{round}");
        let name = format!("党员{round}");
        let push = json!({"client_id": client, "schema_version": 1, "mutations": [
            {"id": round, "name": "member.update_whereabouts.v1",
             "args": {"residence": "migrant", "migrant_city": city}}]});
        let path = format!("/v1/members/{member}");
        let (pushed, patched) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_micros(d1)).await;
                app.post("/v1/sync/push", &token, push).await
            },
            async {
                tokio::time::sleep(Duration::from_micros(d2)).await;
                app.patch(&path, &admin, json!({"name": name})).await
            }
        );
        assert_eq!(
            pushed.status,
            StatusCode::OK,
            "seed {seed}: {:?}",
            pushed.body
        );
        assert_eq!(
            pushed.body["results"][0]["status"], "applied",
            "seed {seed}"
        );
        assert_eq!(
            patched.status,
            StatusCode::OK,
            "seed {seed}: {:?}",
            patched.body
        );
        let now = app.get(&path, &admin).await.body;
        if now["name"] != name.as_str() || now["migrant_city"] != city.as_str() {
            lost.push((round, now["name"].clone(), now["migrant_city"].clone()));
        }
    }
    assert!(
        lost.is_empty(),
        "seed {seed}: {} of {rounds} rounds lost a write, e.g. {:?}",
        lost.len(),
        lost.first()
    );
}

#[tokio::test]
async fn clock_ins_racing_member_edits_answer_no_500_and_no_deadlock() {
    let seed = seed("RACE_SEED", "clock-ins vs edits");
    let mut rng = StdRng::seed_from_u64(seed);
    let app = spawn_app().await;
    let admin = app.admin().await;
    let n = 16;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "城西村党支部", 13972000000, n).await;
    let mut phones = Vec::new();
    for (i, (id, token)) in members.iter().enumerate() {
        phones.push(KeyPhone::register(&app, token, id, 40 + i as u8).await);
    }
    let rounds = race_rounds(6, 3);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for round in 0..rounds {
        let starts = Utc::now() + TimeDelta::minutes(5);
        let r = app
            .post(
                "/v1/meetings",
                &sec,
                json!({"org_id": branch, "meeting_type": "themed_party_day", "title": format!("主题党日{round}"),
                       "starts_at": starts, "ends_at": starts + TimeDelta::hours(2)}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let meeting = r.id();
        let code = crate::helpers::code_at(&app, &sec, &meeting, Utc::now()).await;
        let mut tasks = Vec::new();
        for p in &phones {
            let ev = p.evidence(&meeting, &code, Utc::now(), None);
            let (app, meeting, token) = (&app, meeting.clone(), p.token.clone());
            let (d1, d2, d3) = (
                rng.random_range(0..=3000),
                rng.random_range(0..=3000),
                rng.random_range(0..=3000),
            );
            let (member, admin) = (p.member_id.clone(), admin.clone());
            let city = format!("苏州{round}");
            tasks.push(async move {
                let clock_in = async {
                    tokio::time::sleep(Duration::from_micros(d1)).await;
                    app.post(&format!("/v1/meetings/{meeting}/clock-in"), &token, ev)
                        .await
                };
                let edit = async {
                    tokio::time::sleep(Duration::from_micros(d2)).await;
                    app.patch(
                        &format!("/v1/members/{member}"),
                        &admin,
                        json!({"name": format!("党员{round}")}),
                    )
                    .await
                };
                let whereabouts = async {
                    tokio::time::sleep(Duration::from_micros(d3)).await;
                    let push = json!({"client_id": Uuid::now_v7(), "schema_version": 1, "mutations": [
                        {"id": 1, "name": "member.update_whereabouts.v1",
                         "args": {"residence": "migrant", "migrant_city": city}}]});
                    app.post("/v1/sync/push", &token, push).await
                };
                let (a, b, c) = tokio::join!(clock_in, edit, whereabouts);
                vec![a, b, c]
            });
        }
        for res in futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .flatten()
        {
            *statuses.entry(res.status.as_u16()).or_default() += 1;
            assert_eq!(res.status, StatusCode::OK, "seed {seed}: {:?}", res.body);
        }
        let att = app
            .get(&format!("/v1/meetings/{meeting}/attendance"), &sec)
            .await;
        assert_eq!(
            att.body["clock_ins"].as_array().map(Vec::len),
            Some(n),
            "seed {seed}: every clock-in recorded once"
        );
    }
    eprintln!("clock-ins vs edits: statuses {statuses:?}");
}

#[tokio::test]
async fn two_members_claiming_one_new_client_id_at_once_one_wins_and_neither_sees_the_other() {
    let seed = seed("RACE_SEED", "client id claim");
    let mut rng = StdRng::seed_from_u64(seed);
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, _, members) = branch_with_members(&app, &admin, "城南村党支部", 13973000000, 2).await;
    let rounds = race_rounds(100, 50);
    for round in 0..rounds {
        let client = Uuid::now_v7();
        let push = |who: usize| {
            json!({"client_id": client, "schema_version": 1, "mutations": [
                {"id": 1, "name": "member.update_whereabouts.v1",
                 "args": {"residence": "migrant", "migrant_city": format!("城{who}-{round}")}}]})
        };
        let (d0, d1) = (rng.random_range(0..=500), rng.random_range(0..=500));
        let (a, b) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_micros(d0)).await;
                app.post("/v1/sync/push", &members[0].1, push(0)).await
            },
            async {
                tokio::time::sleep(Duration::from_micros(d1)).await;
                app.post("/v1/sync/push", &members[1].1, push(1)).await
            }
        );
        let mut winners = 0;
        for (who, res) in [(0, &a), (1, &b)] {
            match res.status {
                StatusCode::OK => {
                    winners += 1;
                    let r = &res.body["results"][0];
                    assert_eq!(r["status"], "applied", "seed {seed}: {:?}", res.body);
                    assert_eq!(
                        r["result"]["member_id"],
                        members[who].0.as_str(),
                        "seed {seed}"
                    );
                }
                StatusCode::FORBIDDEN => assert_eq!(res.code(), "client_not_yours", "seed {seed}"),
                other => panic!("seed {seed}: {other} {:?}", res.body),
            }
            let other = format!("城{}-{round}", 1 - who);
            assert!(
                !res.body.to_string().contains(&other),
                "seed {seed}: member {who} saw the other's outcome: {:?}",
                res.body
            );
        }
        assert_eq!(winners, 1, "seed {seed}: round {round}: {a:?} {b:?}");
    }
}

#[tokio::test]
async fn a_close_out_racing_a_late_clock_in_a_late_webhook_and_a_second_close_leaves_one_right_status_and_one_event_per_change(
) {
    let seed = seed("RACE_SEED", "close-out race");
    let mut rng = StdRng::seed_from_u64(seed);
    let t0: DateTime<Utc> = "2026-11-22T08:00:00Z".parse().expect("time");
    let clock = Arc::new(FixedClock::at(t0));
    let app = crate::helpers::spawn_video_app(clock.clone(), 100_000_000).await;
    let admin = app.admin().await;
    // The secretary (absent: never clocks in), a member who clocked in late offline, a migrant
    // member on video, and one who never came.
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "城北村党支部", 13974000000, 3).await;
    let late = KeyPhone::register(&app, &members[0].1, &members[0].0, 90).await;
    let video = members[1].0.clone();
    let rounds = race_rounds(150, 30);
    let mut meetings = Vec::new();
    for round in 0..rounds {
        let starts = clock.now() + TimeDelta::minutes(10);
        let ends = starts + TimeDelta::hours(2);
        let r = app
            .post(
                "/v1/meetings",
                &sec,
                json!({"org_id": branch, "meeting_type": "themed_party_day", "title": format!("主题党日{round}"),
                       "starts_at": starts, "ends_at": ends, "video": true}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let meeting = r.id();
        let room = r.body["video_room"].as_str().expect("room").to_string();
        let made = starts + TimeDelta::minutes(20);
        let code = crate::helpers::code_at(&app, &sec, &meeting, made).await;
        let ev = late.evidence(&meeting, &code, made, None);
        // The meeting is over; nothing of the late member or the video member has arrived yet.
        clock.advance(TimeDelta::hours(2) + TimeDelta::minutes(15));
        let mut args = ev;
        args["meeting_id"] = json!(meeting);
        let push = json!({"client_id": Uuid::now_v7(), "schema_version": 1, "mutations": [
            {"id": 1, "name": "attendance.clock_in.v1", "args": args, "device_time": made}]});
        let joined = participant(
            "participant_joined",
            &format!("j{round}"),
            &room,
            &video,
            starts,
        );
        let left = participant(
            "participant_left",
            &format!("l{round}"),
            &room,
            &video,
            ends,
        );
        let d: Vec<u64> = (0..4).map(|_| rng.random_range(0..=2000)).collect();
        let close = |delay: u64| {
            let (app, sec, meeting) = (&app, sec.clone(), meeting.clone());
            async move {
                tokio::time::sleep(Duration::from_micros(delay)).await;
                app.post(&format!("/v1/meetings/{meeting}/close"), &sec, json!({}))
                    .await
            }
        };
        let (c1, c2, pushed, hooks) = tokio::join!(
            close(d[0]),
            close(d[1]),
            async {
                tokio::time::sleep(Duration::from_micros(d[2])).await;
                app.post("/v1/sync/push", &late.token, push).await
            },
            async {
                tokio::time::sleep(Duration::from_micros(d[3])).await;
                let a = webhook(&app, &joined, LK_SECRET).await;
                let b = webhook(&app, &left, LK_SECRET).await;
                (a, b)
            }
        );
        let closes = [&c1, &c2];
        assert_eq!(
            closes.iter().filter(|c| c.status == StatusCode::OK).count(),
            1,
            "seed {seed}: one close wins: {c1:?} {c2:?}"
        );
        for c in closes.iter().filter(|c| c.status != StatusCode::OK) {
            assert_eq!(
                (c.status, c.code()),
                (StatusCode::CONFLICT, "meeting_not_planned"),
                "seed {seed}"
            );
        }
        assert_eq!(
            pushed.body["results"][0]["status"], "applied",
            "seed {seed}: {:?}",
            pushed.body
        );
        assert_eq!(
            pushed.body["results"][0]["result"]["punctuality"], "late",
            "seed {seed}"
        );
        assert_eq!(
            (hooks.0.status, hooks.1.status),
            (StatusCode::OK, StatusCode::OK)
        );
        let att = app
            .get(&format!("/v1/meetings/{meeting}/attendance"), &sec)
            .await;
        let status = crate::helpers::final_statuses(&att.body);
        assert_eq!(status.len(), 4, "seed {seed}: {status:?}");
        assert_eq!(status[&members[0].0], "late", "seed {seed}: round {round}");
        assert_eq!(status[&video], "video", "seed {seed}: round {round}");
        assert_eq!(status[&members[2].0], "absent", "seed {seed}");
        meetings.push((meeting, status));
        clock.advance(TimeDelta::hours(1));
    }

    // Every change of a final status is one event, naming the status it replaces: replayed in
    // order, each member's chain starts from nothing and ends at the final status.
    let events = app.published_events().await;
    for (meeting, status) in &meetings {
        let mut chain: BTreeMap<String, Vec<(Value, String)>> = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| e.payload["meeting_id"] == meeting.as_str())
        {
            chain
                .entry(e.payload["member_id"].as_str().unwrap_or("").to_string())
                .or_default()
                .push((
                    e.payload["previous"].clone(),
                    e.payload["status"].as_str().unwrap_or("").to_string(),
                ));
        }
        assert_eq!(chain.len(), status.len(), "seed {seed}: meeting {meeting}");
        for (member, links) in &chain {
            let mut previous = Value::Null;
            for (prev, now) in links {
                assert_eq!(
                    prev, &previous,
                    "seed {seed}: meeting {meeting} member {member}: {links:?}"
                );
                assert_ne!(
                    prev.as_str(),
                    Some(now.as_str()),
                    "seed {seed}: an event that changes nothing"
                );
                previous = json!(now);
            }
            assert_eq!(previous, json!(status[member]), "seed {seed}: {links:?}");
        }
    }
}

/// The board under concurrent writers, each round seeded: a comment racing the topic's close
/// (a comment lands before the close or is refused, and the count matches the rows), two
/// opposite merges of one pair of cases (one wins, the other is refused, neither deadlocks
/// into a 503), and two members liking one comment at once (each like that lands counts).
#[tokio::test]
async fn comments_closes_merges_and_likes_on_one_board_never_cross() {
    let seed = seed("RACE_SEED", "board races");
    let mut rng = StdRng::seed_from_u64(seed);
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "并发村党支部", 13972000000, 2).await;
    let until = Utc::now() + TimeDelta::days(30);
    let rounds = race_rounds(200, 40);
    for round in 0..rounds {
        let (d1, d2, d3) = (
            rng.random_range(0..=1500),
            rng.random_range(0..=1500),
            rng.random_range(0..=1500),
        );
        let post = crate::moments::post_topic(&app, &sec, &branch, until).await;
        let write =
            |i: usize| json!({"body": format!("第{round}轮意见{i}"), "category": "suggestion"});
        // Two comments open two cases before the races start.
        let mut cases = Vec::new();
        for (i, (_, token)) in members.iter().enumerate().take(2) {
            let r = app
                .post(&format!("/v1/posts/{post}/comments"), token, write(i))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "seed {seed}");
            cases.push((
                r.id(),
                r.body["case_id"].as_str().expect("case").to_string(),
            ));
        }
        let (a, b) = (cases[0].1.clone(), cases[1].1.clone());
        let liked = cases[0].0.clone();
        let (merge_ba, like) = (
            format!("/v1/cases/{b}/merge"),
            format!("/v1/comments/{liked}/like"),
        );
        let (late, closed, m1, m2, l1, l2) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_micros(d1)).await;
                app.post(
                    &format!("/v1/posts/{post}/comments"),
                    &members[1].1,
                    write(9),
                )
                .await
            },
            async {
                tokio::time::sleep(Duration::from_micros(d2)).await;
                app.post(&format!("/v1/posts/{post}/close"), &sec, json!({}))
                    .await
            },
            async {
                tokio::time::sleep(Duration::from_micros(d3)).await;
                app.post(&format!("/v1/cases/{a}/merge"), &sec, json!({"into": b}))
                    .await
            },
            app.post(&merge_ba, &sec, json!({"into": a})),
            app.post(&like, &members[0].1, json!({})),
            app.post(&like, &members[1].1, json!({})),
        );
        assert_eq!(closed.status, StatusCode::OK, "seed {seed}");
        let landed = match (late.status, late.code()) {
            // It committed before the close (the topic's row lock orders them), or it saw
            // the topic closed.
            (StatusCode::CREATED, _) => 1,
            (StatusCode::CONFLICT, "post_closed") => 0,
            other => panic!("seed {seed}: {other:?} {:?}", late.body),
        };
        let p = app.get(&format!("/v1/posts/{post}"), &sec).await;
        let rows = app
            .list_all(&format!("/v1/posts/{post}/comments"), &sec)
            .await;
        assert_eq!(
            (p.body["comment_count"].as_u64(), rows.len()),
            (Some(2 + landed), 2 + landed as usize),
            "seed {seed}"
        );
        // Exactly one merge wins; the other is refused for a reason a person understands.
        let wins = [&m1, &m2]
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        assert_eq!(wins, 1, "seed {seed}: {:?} / {:?}", m1.body, m2.body);
        for r in [&m1, &m2].iter().filter(|r| r.status != StatusCode::OK) {
            assert!(
                matches!(r.code(), "merge_target_closed" | "case_closed"),
                "seed {seed}: {:?}",
                r.body
            );
        }
        // A like lands while the topic is open, or sees it closed; every one that landed counts.
        let mut likes = 0;
        for l in [&l1, &l2] {
            match (l.status, l.code()) {
                (StatusCode::OK, _) => likes += 1,
                (StatusCode::CONFLICT, "post_closed") => {}
                other => panic!("seed {seed}: {other:?}"),
            }
        }
        let c = rows
            .iter()
            .find(|c| c["id"] == liked.as_str())
            .expect("liked comment");
        assert_eq!(c["like_count"], likes, "seed {seed}");
    }
}

/// Two committee members deciding one pending adjustment at once, one posting and one voiding:
/// exactly one decision lands (the other is told it was decided), and the ledger holds one
/// decision entry whose effect matches the winner.
#[tokio::test]
async fn two_decisions_on_one_pending_adjustment_land_once() {
    let seed = seed("RACE_SEED", "adjustment decisions");
    let mut rng = StdRng::seed_from_u64(seed);
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "审核村党支部", 13973000000, 2).await;
    let (committee_id, committee) = members[0].clone();
    let r = app
        .post(
            "/v1/roles",
            &admin,
            json!({"member_id": committee_id, "org_id": branch, "role": "committee_member"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let target = members[1].0.clone();
    let rounds = race_rounds(200, 30);
    let mut posted = 0;
    for _ in 0..rounds {
        let (d1, d2) = (rng.random_range(0..=1500), rng.random_range(0..=1500));
        let body =
            json!({"member_id": target, "kind": "violation", "delta": -5, "reason": "迟交党费"});
        let v = app.post("/v1/points/adjustments", &admin, body).await;
        assert_eq!(v.status, StatusCode::CREATED, "seed {seed}: {:?}", v.body);
        let id = v.id();
        let (post, void) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_micros(d1)).await;
                app.post(
                    &format!("/v1/points/adjustments/{id}/post"),
                    &sec,
                    json!({}),
                )
                .await
            },
            async {
                tokio::time::sleep(Duration::from_micros(d2)).await;
                app.post(
                    &format!("/v1/points/adjustments/{id}/void"),
                    &committee,
                    json!({}),
                )
                .await
            },
        );
        let outcome = [(&post, "post"), (&void, "void")]
            .iter()
            .map(|(r, _)| (r.status, r.code().to_string()))
            .collect::<Vec<_>>();
        let wins: Vec<&str> = [(&post, "post"), (&void, "void")]
            .iter()
            .filter(|(r, _)| r.status == StatusCode::OK)
            .map(|(_, w)| *w)
            .collect();
        assert_eq!(wins.len(), 1, "seed {seed}: {outcome:?}");
        for r in [&post, &void].iter().filter(|r| r.status != StatusCode::OK) {
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::CONFLICT, "adjustment_decided"),
                "seed {seed}"
            );
        }
        posted += (wins[0] == "post") as i64;
    }
    let month = yunlian_domain::points::month_of(Utc::now());
    let m = app
        .get(&format!("/v1/members/{target}/points?period={month}"), &sec)
        .await;
    let decisions = m.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| matches!(e["resolution"].as_str(), Some("post" | "void")))
        .count();
    assert_eq!(
        (m.body["balance"].as_i64(), decisions),
        (Some(-5 * posted), rounds),
        "seed {seed}: {} posted of {rounds}",
        posted
    );
}

/// A phone and its retry reporting the same learning progress at once: the time is credited
/// once and the item completes once, with one event and one ledger entry.
#[tokio::test]
async fn duplicate_progress_reports_credit_and_complete_once() {
    let seed = seed("RACE_SEED", "learning progress");
    let mut rng = StdRng::seed_from_u64(seed);
    let t0: DateTime<Utc> = "2026-12-02T01:00:00Z".parse().expect("time");
    let clock = Arc::new(FixedClock::at(t0));
    let vars = std::collections::HashMap::from([
        ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", (10 * 86400).to_string()),
        ("YUNLIAN_OUTBOX_RELAY_MS", "50".to_string()),
    ]);
    let app = crate::helpers::spawn_app_on(vars, clock.clone()).await;
    let admin = app.admin().await;
    let (branch, _, members) =
        branch_with_members(&app, &admin, "学习村党支部", 13974000000, 1).await;
    let (member, token) = members[0].clone();
    let rounds = race_rounds(200, 30);
    let mut items = Vec::new();
    for round in 0..rounds {
        let (d1, d2) = (rng.random_range(0..=1500), rng.random_range(0..=1500));
        let item = app
            .post(
                "/v1/learning/items",
                &admin,
                json!({"org_id": branch, "kind": "article", "title": format!("学习材料{round}"), "body": "……", "length_secs": 10}),
            )
            .await;
        assert_eq!(item.status, StatusCode::CREATED, "seed {seed}");
        let at = format!("/v1/learning/items/{}/progress", item.id());
        // The first report and its retry at once: one progress row, opened once.
        let (r1, r2) = tokio::join!(
            app.post(&at, &token, json!({"position_secs": 0})),
            app.post(&at, &token, json!({"position_secs": 0})),
        );
        for r in [&r1, &r2] {
            assert_eq!(r.status, StatusCode::OK, "seed {seed}: {:?}", r.body);
        }
        clock.advance(TimeDelta::seconds(12));
        let (a, b) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_micros(d1)).await;
                app.post(&at, &token, json!({"position_secs": 10})).await
            },
            async {
                tokio::time::sleep(Duration::from_micros(d2)).await;
                app.post(&at, &token, json!({"position_secs": 10})).await
            },
        );
        // Whichever lands second finds the time already credited and the item complete.
        for r in [&a, &b] {
            assert_eq!(r.status, StatusCode::OK, "seed {seed}: {:?}", r.body);
            assert_eq!(
                (
                    r.body["credited_secs"].as_i64(),
                    r.body["completed_at"].is_string()
                ),
                (Some(12), true),
                "seed {seed}: the 12 s spent reading, once: {:?}",
                r.body
            );
        }
        items.push(item.id());
    }
    crate::points::scored(&app).await;
    let store = yunlian_infra::Db::connect(&app.database_url, 1)
        .await
        .expect("db");
    let events = {
        use yunlian_infra::db::{self, ScopedFutureExt};
        store
            .read(|mut c| async move { db::outbox::all(&mut c).await }.scope_boxed())
            .await
            .expect("outbox")
    };
    let mut completions: BTreeMap<String, usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e.topic == "learning.completed") {
        *completions
            .entry(e.payload["item_id"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    let want: BTreeMap<String, usize> = items.iter().map(|i| (i.clone(), 1)).collect();
    assert_eq!(completions, want, "seed {seed}");
    let m = app
        .get(
            &format!("/v1/members/{member}/points?period=2026-12"),
            &token,
        )
        .await;
    let learning = m.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["rule"] == "learning_completed")
        .count();
    assert_eq!(
        learning, rounds,
        "seed {seed}: one entry per completed item"
    );
}

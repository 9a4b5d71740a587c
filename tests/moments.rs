//! The board and its suggestion chain, end to end: a topic, comments online and from phones
//! that were offline, cases sorted, assigned, merged, resolved, declined, transferred and let
//! run overdue, a hidden comment, each commenter's phone after a pull, and the figures.

use crate::helpers::{branch_with_members, spawn_app_on, Phone, TestApp};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use yunlian_domain::ports::FixedClock;

/// A server on a clock the test walks (access tokens live long enough for a walked month).
async fn board_app(t0: DateTime<Utc>) -> (TestApp, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::at(t0));
    let ttl = ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", (90 * 86400).to_string());
    let app = spawn_app_on(HashMap::from([ttl]), clock.clone()).await;
    (app, clock)
}

fn comment_args(post: &str, i: usize, category: &str) -> Value {
    json!({"post_id": post, "body": format!("第{i}条：村口的路灯坏了，晚上看不清路"), "category": category})
}

/// The category of comment `i` of 40: the first twelve are suggestions and life needs.
fn category(i: usize) -> &'static str {
    match i {
        0..=11 if i.is_multiple_of(2) => "suggestion",
        0..=11 => "life_need",
        _ => "other",
    }
}

pub async fn post_topic(app: &TestApp, sec: &str, branch: &str, until: DateTime<Utc>) -> String {
    let r = app
        .post(
            "/v1/posts",
            sec,
            json!({"org_id": branch, "title": "村内道路和路灯改造征求意见",
                   "body": "请各位党员收集联系户的意见建议。", "feedback_until": until}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.id()
}

async fn act(app: &TestApp, token: &str, case: &str, verb: &str, body: Value) -> Value {
    let r = app
        .post(&format!("/v1/cases/{case}/{verb}"), token, body)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{verb} {case}: {:?}", r.body);
    r.body
}

#[tokio::test]
async fn a_topic_gathers_forty_comments_and_its_twelve_cases_close_within_their_limits() {
    let t0: DateTime<Utc> = "2026-12-01T08:00:00Z".parse().expect("time");
    let (app, clock) = board_app(t0).await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "新杭村党支部", 13993000000, 11).await;
    // The eleventh member sits on the committee and takes cases.
    let (committee_id, committee) = members[10].clone();
    let r = app
        .post(
            "/v1/roles",
            &admin,
            json!({"member_id": committee_id, "org_id": branch, "role": "committee_member"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let post = post_topic(&app, &sec, &branch, t0 + TimeDelta::days(10)).await;

    // Ten members write four comments each. Members 0-2 are offline in the village hall: their
    // phones queue the comments and push them later; member 0's first push is answered but the
    // answer is lost, so the phone pushes the same batch again.
    let mut phones: Vec<Phone> = members[..10]
        .iter()
        .map(|(_, t)| Phone::new(t.clone()))
        .collect();
    let mut comment_of: BTreeMap<usize, usize> = BTreeMap::new(); // comment index -> member
    for i in 0..40 {
        let m = i % 10;
        comment_of.insert(i, m);
        let args = comment_args(&post, i, category(i));
        if m < 3 {
            let id = phones[m].next_id;
            phones[m].next_id += 1;
            phones[m]
                .queue
                .push(json!({"id": id, "name": "moments.comment.v1", "args": args}));
        } else {
            let mut body = args;
            body.as_object_mut().expect("object").remove("post_id");
            let r = app
                .post(&format!("/v1/posts/{post}/comments"), &members[m].1, body)
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        }
    }
    clock.advance(TimeDelta::hours(2));
    for (m, phone) in phones.iter_mut().enumerate().take(3) {
        let body = phone.push_body(0, 10);
        let r = phone.push(&app, body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        if m == 0 {
            let again = phone.push(&app, body).await;
            assert_eq!(again.status, StatusCode::OK);
            assert_eq!(
                again.body["results"], r.body["results"],
                "a retried push is answered alike"
            );
        }
        assert!(
            r.body["results"]
                .as_array()
                .expect("results")
                .iter()
                .all(|x| x["status"] == "applied"),
            "{:?}",
            r.body
        );
        let last = r.body["last_mutation_id"].as_i64().expect("last");
        phone.acknowledge(last);
    }

    // Forty comments, page by page (keyset: no comment twice, none missed).
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let r = app
            .get(&format!("/v1/posts/{post}/comments?limit=15{q}"), &sec)
            .await;
        assert_eq!(r.status, StatusCode::OK);
        for c in r.body["items"].as_array().expect("items") {
            seen.push(c["id"].as_str().expect("id").to_string());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (40, 40));
    let p = app.get(&format!("/v1/posts/{post}"), &sec).await;
    assert_eq!(p.body["comment_count"], 40);

    // Twelve cases, each submitted, in the order their comments were written.
    let cases = app
        .list_all(&format!("/v1/cases?org_id={branch}"), &sec)
        .await;
    assert_eq!(cases.len(), 12);
    assert!(cases.iter().all(|c| c["state"] == "submitted"));
    let id = |i: usize| cases[i]["id"].as_str().expect("id").to_string();
    let author = |i: usize| cases[i]["author_id"].as_str().expect("author").to_string();

    // A reported abusive comment is hidden with a reason.
    let others = app
        .list_all(&format!("/v1/posts/{post}/comments?category=other"), &sec)
        .await;
    let abusive = others[0]["id"].as_str().expect("id").to_string();
    let abusive_author = others[0]["author_id"].as_str().expect("author").to_string();
    let reporter = members
        .iter()
        .find(|(id, _)| *id != abusive_author)
        .expect("reporter");
    let r = app
        .post(
            &format!("/v1/comments/{abusive}/reports"),
            &reporter.1,
            json!({"reason": "辱骂他人"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = app
        .post(
            &format!("/v1/comments/{abusive}/hide"),
            &reporter.1,
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "forbidden"),
        "a member cannot hide"
    );
    let r = app
        .post(
            &format!("/v1/comments/{abusive}/hide"),
            &sec,
            json!({"reason": "含有辱骂内容"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let reports = app
        .list_all(&format!("/v1/reports?org_id={branch}"), &sec)
        .await;
    assert_eq!(reports[0]["state"], "upheld");

    // The committee accepts eleven and merges the twelfth (the same road) into the first.
    let sec_id = app.get("/v1/me", &sec).await.body["id"].as_str().expect("id").to_string();
    for i in 0..11_usize {
        let to = if i.is_multiple_of(2) {
            &committee_id
        } else {
            &sec_id
        };
        let c = act(&app, &sec, &id(i), "accept", json!({"assignee_id": to})).await;
        assert_eq!(c["state"], "assigned");
    }
    let r = act(&app, &committee, &id(11), "merge", json!({"into": id(0)})).await;
    assert_eq!(
        (
            r["merged"]["state"].as_str(),
            r["merged"]["merged_into"].as_str()
        ),
        (Some("merged"), Some(id(0).as_str()))
    );
    // Suggestions are due in 15 days, needs in 7: resolve 8 within two days.
    clock.advance(TimeDelta::days(2));
    for i in 0..8 {
        act(
            &app,
            &committee,
            &id(i),
            "resolve",
            json!({"reply": format!("第{i}件已办结：路灯已更换")}),
        )
        .await;
    }
    act(
        &app,
        &sec,
        &id(8),
        "decline",
        json!({"reason": "不属于村级事务范围"}),
    )
    .await;
    // The village cannot mend the county road: up to the township, which resolves it.
    let up = act(
        &app,
        &sec,
        &id(9),
        "transfer",
        json!({"note": "需乡镇协调交通部门"}),
    )
    .await;
    assert_eq!(up["state"], "submitted");
    let r = app
        .post(
            &format!("/v1/cases/{}/resolve", id(9)),
            &sec,
            json!({"reply": "x"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the branch no longer handles it"
    );
    let admin_id = app.get("/v1/me", &admin).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    act(
        &app,
        &admin,
        &id(9),
        "accept",
        json!({"assignee_id": admin_id}),
    )
    .await;
    act(
        &app,
        &admin,
        &id(9),
        "resolve",
        json!({"reply": "乡镇已协调交通部门修复"}),
    )
    .await;
    // Case 10 runs past its time (15 days at most).
    clock.advance(TimeDelta::days(14));
    let overdue = app
        .get(&format!("/v1/cases?org_id={branch}&due=overdue"), &sec)
        .await;
    assert_eq!(overdue.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(overdue.body["items"][0]["id"], id(10));

    // Each commenter's phone, after a pull, shows their cases' states and replies; the author
    // of the merged duplicate sees the surviving case's reply.
    let mut expected: BTreeMap<String, Vec<(String, String, Option<String>)>> = BTreeMap::new();
    let show = |i: usize| -> (String, Option<String>) {
        match i {
            0..=7 => (
                "resolved".into(),
                Some(format!("第{i}件已办结：路灯已更换")),
            ),
            8 => ("declined".into(), None),
            9 => ("resolved".into(), Some("乡镇已协调交通部门修复".into())),
            10 => ("assigned".into(), None),
            _ => ("merged".into(), None),
        }
    };
    for i in 0..12 {
        let (state, reply) = show(i);
        expected
            .entry(author(i))
            .or_default()
            .push((id(i), state, reply));
    }
    expected
        .entry(author(11))
        .or_default()
        .push((id(0), show(0).0, show(0).1));
    for (member, want) in &expected {
        let token = &members
            .iter()
            .find(|(id, _)| id == member)
            .expect("member")
            .1;
        let mut phone = Phone::new(token.clone());
        phone.pull_all(&app, 500).await;
        let mine = &phone.rows[&format!("member:{member}")];
        let mut got: Vec<(String, String, Option<String>)> = mine
            .iter()
            .filter(|(k, _)| k.starts_with("case/"))
            .map(|(_, r)| {
                (
                    r["id"].as_str().unwrap_or("").into(),
                    r["state"].as_str().unwrap_or("").into(),
                    r["reply"].as_str().map(String::from),
                )
            })
            .collect();
        let mut want = want.clone();
        got.sort();
        want.sort();
        want.dedup();
        assert_eq!(got, want, "member {member}");
    }
    // The hidden comment: the branch's board keeps its place without its text; its author's
    // own copy shows it and why.
    let token = &members
        .iter()
        .find(|(id, _)| *id == abusive_author)
        .expect("author")
        .1;
    let mut phone = Phone::new(token.clone());
    phone.pull_all(&app, 500).await;
    let board = &phone.rows[&format!("org:{branch}")][&format!("comment/{abusive}")];
    assert_eq!(
        (board["body"].as_str(), board["hidden"]["reason"].as_str()),
        (Some(""), Some("含有辱骂内容"))
    );
    let own = &phone.rows[&format!("member:{abusive_author}")][&format!("my_comment/{abusive}")];
    assert!(own["body"].as_str().is_some_and(|b| b.contains("路灯")));

    // The figures match the hand count.
    let from = t0 - TimeDelta::days(1);
    let to = t0 + TimeDelta::days(30);
    let r = app
        .get(
            &format!(
                "/v1/cases/stats?org_id={branch}&from={}&to={}",
                enc(from),
                enc(to)
            ),
            &sec,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let s = &r.body["stats"];
    assert_eq!(s["topics"], 1);
    assert_eq!(
        s["comments"],
        json!({"suggestion": 6, "life_need": 6, "other": 28, "total": 40})
    );
    let counts: Vec<i64> = [
        "cases_opened",
        "closed",
        "resolved",
        "resolved_on_time",
        "declined",
        "merged",
        "transferred",
        "overdue_now",
    ]
    .iter()
    .map(|k| s[*k].as_i64().unwrap_or(-1))
    .collect();
    assert_eq!(counts, vec![12, 10, 9, 9, 1, 1, 1, 1]);
    // The median time to close, by hand from each closed case's times.
    let mut hours: Vec<f64> = Vec::new();
    for i in 0..10 {
        let c = app.get(&format!("/v1/cases/{}", id(i)), &sec).await.body;
        let at = |k: &str| {
            c[k].as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                .expect("time")
        };
        hours.push((at("closed_at") - at("created_at")).num_minutes() as f64 / 60.0);
    }
    hours.sort_by(f64::total_cmp);
    assert_eq!(
        s["median_hours_to_close"].as_f64(),
        Some((hours[4] + hours[5]) / 2.0)
    );
}

pub fn enc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .replace('+', "%2B")
}

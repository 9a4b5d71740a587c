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

/// A server on a clock the test walks (sessions and tokens live through a walked year).
async fn board_app(t0: DateTime<Utc>) -> (TestApp, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::at(t0));
    let ttl = ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", (400 * 86400).to_string());
    let session = ("YUNLIAN_REFRESH_TOKEN_TTL_DAYS", "400".to_string());
    let app = spawn_app_on(HashMap::from([ttl, session]), clock.clone()).await;
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
    let sec_id = app.get("/v1/me", &sec).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
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

/// The seed's year (000: 60 topics, 2,000 comments, 326 suggestions, 209 life needs, 500
/// closed), generated through the API from a seed, comes back exactly in the figures.
#[tokio::test]
async fn the_seed_year_generated_through_the_api_gives_its_figures_back() {
    use futures_util::StreamExt;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let seed = crate::helpers::seed("SEED_YEAR_SEED", "seed_year");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("time");
    let (app, clock) = board_app(t0).await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "新杭镇示范村党支部", 13994000000, 20).await;
    let mut categories: Vec<&str> = [
        ("suggestion", 326),
        ("life_need", 209),
        ("other", 2000 - 326 - 209),
    ]
    .iter()
    .flat_map(|(c, n)| std::iter::repeat_n(*c, *n))
    .collect();
    categories.shuffle(&mut rng);
    for t in 0..60usize {
        clock.advance(TimeDelta::days(6));
        let post = post_topic(
            &app,
            &sec,
            &branch,
            yunlian_domain::ports::Clock::now(clock.as_ref()) + TimeDelta::days(5),
        )
        .await;
        let writes: Vec<(String, Value)> = (t * 2000 / 60..(t + 1) * 2000 / 60)
            .map(|i| {
                let token = members[rng.random_range(0..members.len())].1.clone();
                (
                    token,
                    json!({"body": format!("意见{i}"), "category": categories[i]}),
                )
            })
            .collect();
        let statuses: Vec<StatusCode> = futures_util::stream::iter(writes)
            .map(|(token, body)| {
                let (app, post) = (&app, &post);
                async move {
                    app.post(&format!("/v1/posts/{post}/comments"), &token, body)
                        .await
                        .status
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::CREATED),
            "{statuses:?}"
        );
    }
    // Close 500 of the 535 cases: most resolved, some declined.
    let mut cases: Vec<String> = app
        .list_all(&format!("/v1/cases?org_id={branch}"), &sec)
        .await
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(cases.len(), 535);
    cases.shuffle(&mut rng);
    let sec_id = app.get("/v1/me", &sec).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let closes: Vec<(String, bool)> = cases[..500]
        .iter()
        .map(|c| (c.clone(), rng.random_bool(0.9)))
        .collect();
    let outcomes: Vec<bool> = futures_util::stream::iter(closes)
        .map(|(case, resolve)| {
            let (app, sec, sec_id) = (&app, &sec, &sec_id);
            async move {
                if resolve {
                    let a = app
                        .post(
                            &format!("/v1/cases/{case}/accept"),
                            sec,
                            json!({"assignee_id": sec_id}),
                        )
                        .await;
                    let r = app
                        .post(
                            &format!("/v1/cases/{case}/resolve"),
                            sec,
                            json!({"reply": "已办结"}),
                        )
                        .await;
                    a.status == StatusCode::OK && r.status == StatusCode::OK
                } else {
                    let d = app
                        .post(
                            &format!("/v1/cases/{case}/decline"),
                            sec,
                            json!({"reason": "不属实"}),
                        )
                        .await;
                    d.status == StatusCode::OK
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(outcomes.iter().all(|ok| *ok));
    let (from, to) = (t0, t0 + TimeDelta::days(365));
    let r = app
        .get(
            &format!(
                "/v1/cases/stats?org_id={branch}&from={}&to={}",
                enc(from),
                enc(to)
            ),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let s = &r.body["stats"];
    assert_eq!(
        (
            s["topics"].as_i64(),
            s["comments"]["total"].as_i64(),
            s["comments"]["suggestion"].as_i64(),
            s["comments"]["life_need"].as_i64(),
            s["closed"].as_i64(),
            s["cases_opened"].as_i64()
        ),
        (
            Some(60),
            Some(2000),
            Some(326),
            Some(209),
            Some(500),
            Some(535)
        ),
        "seed {seed}"
    );
    // The township sees the same totals, and the branch's own line beside them.
    let root = app.root_id(&admin).await;
    let r = app
        .get(
            &format!(
                "/v1/cases/stats?org_id={root}&from={}&to={}",
                enc(from),
                enc(to)
            ),
            &admin,
        )
        .await;
    assert_eq!(r.body["stats"], *s);
    let branches = r.body["branches"].as_array().expect("branches");
    assert_eq!(branches.len(), 1);
    assert_eq!(
        (branches[0]["org_id"].as_str(), &branches[0]["stats"]),
        (Some(branch.as_str()), s)
    );
}

/// Each wrong move on the board gets its stable code, and nothing is half-written or counted
/// twice.
#[tokio::test]
async fn wrong_moves_on_the_board_are_refused_with_their_codes() {
    let t0: DateTime<Utc> = "2026-12-01T08:00:00Z".parse().expect("time");
    let (app, clock) = board_app(t0).await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "甲村党支部", 13995000000, 3).await;
    let (other_branch, other_sec, others) =
        branch_with_members(&app, &admin, "乙村党支部", 13995100000, 1).await;
    let (m0, t_m0) = members[0].clone();
    let post = post_topic(&app, &sec, &branch, t0 + TimeDelta::days(3)).await;
    let other_post = post_topic(&app, &other_sec, &other_branch, t0 + TimeDelta::days(3)).await;
    let comment = |body: Value| {
        let (app, post, t) = (&app, post.clone(), t_m0.clone());
        async move {
            app.post(&format!("/v1/posts/{post}/comments"), &t, body)
                .await
        }
    };

    // Text: over the limit, control characters, an empty body; a topic of nine images at most.
    let long = "路".repeat(1001);
    let r = comment(json!({"body": long, "category": "other"})).await;
    assert_eq!(
        (r.status, r.body["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("too_long"))
    );
    let r = comment(json!({"body": "路灯\u{0007}坏了", "category": "other"})).await;
    assert_eq!(r.body["errors"][0]["code"], "control_character");
    let r = comment(json!({"body": "  ", "category": "suggestion"})).await;
    assert_eq!(r.body["errors"][0]["code"], "required");
    let ten: Vec<String> = (0..10).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let r = app
        .post("/v1/posts", &sec, json!({"org_id": branch, "title": "t", "body": "b", "image_ids": ten, "feedback_until": t0 + TimeDelta::days(1)}))
        .await;
    assert_eq!(r.body["errors"][0]["code"], "too_many_images");
    let r = app
        .post("/v1/posts", &sec, json!({"org_id": branch, "title": "t", "body": "b", "feedback_until": t0 - TimeDelta::days(1)}))
        .await;
    assert_eq!(r.body["errors"][0]["code"], "in_the_past");
    let r = app.post("/v1/posts", &t_m0, json!({"org_id": branch, "title": "t", "body": "b", "feedback_until": t0 + TimeDelta::days(1)})).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a member does not post topics"
    );

    // Another branch's topic does not exist for this member.
    let r = app
        .post(
            &format!("/v1/posts/{other_post}/comments"),
            &t_m0,
            json!({"body": "x", "category": "other"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    // Another branch's household is not this branch's.
    let h = app
        .post(
            "/v1/households",
            &other_sec,
            json!({"org_id": other_branch, "name": "王家"}),
        )
        .await;
    assert_eq!(h.status, StatusCode::CREATED, "{:?}", h.body);
    let r = comment(json!({"body": "x", "category": "life_need", "household_id": h.id()})).await;
    assert_eq!(r.body["errors"][0]["code"], "household_not_found");

    // Likes: one per member, however often sent; undone once.
    for _ in 0..3 {
        let r = app
            .post(&format!("/v1/posts/{post}/like"), &t_m0, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(
        app.get(&format!("/v1/posts/{post}"), &sec).await.body["like_count"],
        1
    );
    for _ in 0..2 {
        app.delete(&format!("/v1/posts/{post}/like"), &t_m0).await;
    }
    assert_eq!(
        app.get(&format!("/v1/posts/{post}"), &sec).await.body["like_count"],
        0
    );

    // Two cases to move about.
    let a = comment(json!({"body": "修路", "category": "suggestion"})).await;
    let b = comment(json!({"body": "修路（同上）", "category": "suggestion"})).await;
    let (case_a, case_b) = (
        a.body["case_id"].as_str().expect("case").to_string(),
        b.body["case_id"].as_str().expect("case").to_string(),
    );
    let on_other = app
        .post(
            &format!("/v1/posts/{other_post}/comments"),
            &others[0].1,
            json!({"body": "别村", "category": "life_need"}),
        )
        .await;
    let case_other = on_other.body["case_id"].as_str().expect("case").to_string();
    let code = |r: &crate::helpers::Res| (r.status, r.code().to_string());
    let un = StatusCode::UNPROCESSABLE_ENTITY;
    // Assign to a plain member: refused.
    let r = app
        .post(
            &format!("/v1/cases/{case_a}/accept"),
            &sec,
            json!({"assignee_id": m0}),
        )
        .await;
    assert_eq!(code(&r), (un, "assignee_not_on_committee".into()));
    // Merge into itself, into another branch's case (seen by the township), or one unseen.
    let r = app
        .post(
            &format!("/v1/cases/{case_a}/merge"),
            &sec,
            json!({"into": case_a}),
        )
        .await;
    assert_eq!(code(&r), (un, "merge_into_self".into()));
    let r = app
        .post(
            &format!("/v1/cases/{case_a}/merge"),
            &admin,
            json!({"into": case_other}),
        )
        .await;
    assert_eq!(code(&r), (un, "merge_other_branch".into()));
    let r = app
        .post(
            &format!("/v1/cases/{case_a}/merge"),
            &sec,
            json!({"into": case_other}),
        )
        .await;
    assert_eq!(
        r.body["errors"][0]["code"], "case_not_found",
        "another branch's case is unseen"
    );
    // Resolve before accepting; resolve a declined case.
    let r = app
        .post(
            &format!("/v1/cases/{case_b}/resolve"),
            &sec,
            json!({"reply": "好"}),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::CONFLICT, "case_not_assigned".into()));
    act(
        &app,
        &sec,
        &case_b,
        "decline",
        json!({"reason": "重复反映"}),
    )
    .await;
    let r = app
        .post(
            &format!("/v1/cases/{case_b}/resolve"),
            &sec,
            json!({"reply": "好"}),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::CONFLICT, "case_closed".into()));
    let r = app
        .post(
            &format!("/v1/cases/{case_a}/merge"),
            &sec,
            json!({"into": case_b}),
        )
        .await;
    assert_eq!(code(&r), (un, "merge_target_closed".into()));
    // A member neither moves cases nor hides comments; a member's case is theirs to see.
    let r = app
        .post(
            &format!("/v1/cases/{case_a}/decline"),
            &t_m0,
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&format!("/v1/cases/{case_a}"), &t_m0).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get(&format!("/v1/cases/{case_a}"), &members[1].1)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .post(
            &format!("/v1/comments/{}/hide", a.id()),
            &t_m0,
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A second report of one comment by one member; a dismissed report decided twice.
    let rep = app
        .post(
            &format!("/v1/comments/{}/reports", a.id()),
            &members[1].1,
            json!({"reason": "广告"}),
        )
        .await;
    assert_eq!(rep.status, StatusCode::CREATED);
    let r = app
        .post(
            &format!("/v1/comments/{}/reports", a.id()),
            &members[1].1,
            json!({"reason": "广告"}),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::CONFLICT, "already_reported".into()));
    let d = app
        .post(
            &format!("/v1/reports/{}/dismiss", rep.id()),
            &sec,
            json!({}),
        )
        .await;
    assert_eq!(d.body["state"], "dismissed");
    let r = app
        .post(
            &format!("/v1/reports/{}/dismiss", rep.id()),
            &sec,
            json!({}),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::CONFLICT, "report_decided".into()));

    // After the deadline, and on a closed topic: refused, and nothing was written.
    clock.advance(TimeDelta::days(4));
    let r = comment(json!({"body": "晚了", "category": "other"})).await;
    assert_eq!(code(&r), (StatusCode::CONFLICT, "feedback_closed".into()));
    let fresh = post_topic(&app, &sec, &branch, t0 + TimeDelta::days(30)).await;
    assert_eq!(
        app.post(&format!("/v1/posts/{fresh}/close"), &sec, json!({}))
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .post(
            &format!("/v1/posts/{fresh}/comments"),
            &t_m0,
            json!({"body": "x", "category": "other"}),
        )
        .await;
    assert_eq!(code(&r), (StatusCode::CONFLICT, "post_closed".into()));
    let p = app.get(&format!("/v1/posts/{post}"), &sec).await;
    assert_eq!(p.body["comment_count"], 2);
    assert_eq!(
        app.list_all(&format!("/v1/cases?org_id={branch}"), &sec)
            .await
            .len(),
        2
    );

    // A central household member relays for ten households, not eleven.
    let r = app
        .patch(
            &format!("/v1/members/{m0}"),
            &sec,
            json!({"central_household": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    for i in 0..10 {
        let r = app
            .post(
                "/v1/households",
                &sec,
                json!({"org_id": branch, "name": format!("第{i}户"), "central_member_id": m0}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = app
        .post(
            "/v1/households",
            &sec,
            json!({"org_id": branch, "name": "第十一户", "central_member_id": m0}),
        )
        .await;
    assert_eq!(
        code(&r),
        (StatusCode::CONFLICT, "household_limit_reached".into())
    );
    let r = app
        .post(
            "/v1/households",
            &sec,
            json!({"org_id": branch, "name": "x", "central_member_id": members[1].0}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["code"], "not_central_household");
}

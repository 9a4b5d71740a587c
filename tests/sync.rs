//! The sync protocol end to end: pushes applied exactly once, pulls that converge, and a
//! seeded simulation of many phones through a faulty network.

use crate::helpers::{branch_with_members, roster_csv, spawn_app, Phone};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;
use uuid::Uuid;

#[tokio::test]
async fn each_queued_mutation_is_applied_exactly_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, _, members) = branch_with_members(&app, &admin, "同步支部", 13910000000, 2).await;
    let (member_id, token) = members[0].clone();
    let mut phone = Phone::new(token.clone());
    phone.whereabouts(Some("杭州"));
    phone.whereabouts(Some("宁波"));
    phone
        .queue
        .push(json!({"id": 3, "name": "meeting.teleport.v9", "args": {}}));
    phone.next_id = 4;
    phone.whereabouts(Some(""));
    phone.whereabouts(None);
    phone.whereabouts(Some("温州"));

    // The response to the first two is lost after commit; the phone sends them again with more.
    let r = phone.push(&app, phone.push_body(0, 2)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = phone.push(&app, phone.push_body(0, 6)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let statuses: Vec<(i64, &str, &str)> = r.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|x| {
            (
                x["id"].as_i64().unwrap_or(0),
                x["status"].as_str().unwrap_or(""),
                x["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (1, "applied", ""),
            (2, "applied", ""),
            (3, "rejected", "unknown_mutation"),
            (4, "rejected", "invalid_args"),
            (5, "applied", ""),
            (6, "applied", "")
        ]
    );
    assert_eq!(
        r.body["results"][3]["result"]["errors"][0]["field"],
        "migrant_city"
    );
    assert_eq!(r.body["last_mutation_id"], 6);
    let m = app.get(&format!("/v1/members/{member_id}"), &admin).await;
    assert_eq!(
        (
            m.body["residence"].as_str(),
            m.body["migrant_city"].as_str()
        ),
        (Some("migrant"), Some("温州"))
    );

    // A replay of everything changes nothing and answers the same.
    let again = phone.push(&app, phone.push_body(0, 6)).await;
    assert_eq!(again.body["results"], r.body["results"]);
    // A gap: mutation 8 before 7.
    phone.whereabouts(Some("丽水"));
    phone.whereabouts(Some("衢州"));
    let r = phone.push(&app, phone.push_body(7, 1)).await;
    assert_eq!(
        (r.status, r.code(), r.body["expected_id"].as_i64()),
        (StatusCode::CONFLICT, "mutation_gap", Some(7))
    );
    let r = phone.push(&app, phone.push_body(6, 2)).await;
    assert_eq!(r.body["last_mutation_id"], 8);
    assert_eq!(
        app.get(&format!("/v1/members/{member_id}"), &admin)
            .await
            .body["migrant_city"],
        "衢州"
    );

    // Somebody else's client id, bad batches, a newer protocol.
    let (_, other) = members[1].clone();
    let thief = Phone {
        client_id: phone.client_id,
        ..Phone::new(other)
    };
    let r = thief.push(&app, phone.push_body(0, 1)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "client_not_yours")
    );
    let r = thief.pull_page(&app, 10).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "client_not_yours")
    );
    let mut body = phone.push_body(0, 2);
    body["mutations"][1]["id"] = json!(5);
    assert_eq!(
        phone.push(&app, body).await.body["errors"][0]["code"],
        "mutation_ids_not_consecutive"
    );
    let mut body = phone.push_body(0, 1);
    body["schema_version"] = json!(2);
    assert_eq!(
        phone.push(&app, body).await.body["errors"][0]["code"],
        "unsupported_schema_version"
    );
}

/// A push runs its batch under one savepoint first, and again with one savepoint per mutation
/// after a rejection: the mutations around a rejected one are applied exactly once (their first
/// run undone), and the rejected ones leave nothing behind.
#[tokio::test]
async fn mutations_around_a_rejected_one_are_applied_exactly_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "撤回支部", 13911000000, 1).await;
    let until = chrono::Utc::now() + chrono::TimeDelta::days(10);
    let post = crate::moments::post_topic(&app, &sec, &branch, until).await;
    let (member_id, token) = members[0].clone();
    let mut phone = Phone::new(token);
    let comment = |post: &str, category: &str| json!({"post_id": post, "body": "村口的路灯坏了，晚上看不清路", "category": category});
    let queue = [
        ("moments.comment.v1", comment(&post, "suggestion")),
        (
            "member.update_whereabouts.v1",
            json!({"residence": "migrant", "migrant_city": "杭州"}),
        ),
        (
            "moments.comment.v1",
            comment(&Uuid::now_v7().to_string(), "other"),
        ),
        ("moments.comment.v1", comment(&post, "other")),
        (
            "member.update_whereabouts.v1",
            json!({"residence": "migrant", "migrant_city": ""}),
        ),
        ("moments.comment.v1", comment(&post, "life_need")),
    ];
    for (i, (name, args)) in queue.iter().enumerate() {
        phone
            .queue
            .push(json!({"id": i + 1, "name": name, "args": args}));
    }
    let r = phone.push(&app, phone.push_body(0, queue.len())).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let results = r.body["results"].as_array().expect("results");
    let outcomes: Vec<(&str, &str)> = results
        .iter()
        .map(|x| {
            (
                x["status"].as_str().unwrap_or(""),
                x["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("applied", ""),
            ("applied", ""),
            ("rejected", "not_found"),
            ("applied", ""),
            ("rejected", "invalid_args"),
            ("applied", ""),
        ]
    );

    // Three comments, each once, and exactly the ones the outcomes name; two cases.
    let comments = app
        .list_all(&format!("/v1/posts/{post}/comments"), &sec)
        .await;
    let stored: BTreeSet<&str> = comments.iter().filter_map(|c| c["id"].as_str()).collect();
    let answered: BTreeSet<&str> = [0, 3, 5]
        .iter()
        .filter_map(|&i| results[i]["result"]["comment_id"].as_str())
        .collect();
    assert_eq!((comments.len(), &stored), (3, &answered));
    let p = app.get(&format!("/v1/posts/{post}"), &sec).await;
    assert_eq!(p.body["comment_count"], 3);
    let cases = app
        .list_all(&format!("/v1/cases?org_id={branch}"), &sec)
        .await;
    assert_eq!(cases.len(), 2);
    let m = app.get(&format!("/v1/members/{member_id}"), &admin).await;
    assert_eq!(m.body["migrant_city"], "杭州");

    // The secretary's phone pulls each comment once.
    let mut sec_phone = Phone::new(sec.clone());
    sec_phone.pull_all(&app, 100).await;
    let pulled: Vec<&str> = sec_phone
        .rows
        .values()
        .flat_map(|rows| rows.keys())
        .filter_map(|key| key.strip_prefix("comment/"))
        .collect();
    assert_eq!(pulled.len(), 3, "{pulled:?}");
    assert_eq!(pulled.into_iter().collect::<BTreeSet<_>>(), answered);
}

#[tokio::test]
async fn pulls_reset_then_follow_changes_moves_and_lost_access() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (branch, sec_token, members) =
        branch_with_members(&app, &admin, "甲支部", 13920000000, 3).await;
    let root = app.root_id(&admin).await;
    let other = app.create_org(&admin, &root, "branch", "乙支部").await;
    let mut sec = Phone::new(sec_token.clone());
    sec.pull_all(&app, 500).await;
    let committee = format!("org:{branch}:committee");
    assert_eq!(
        sec.rows[&committee].len(),
        4,
        "the roster: secretary and 3 members"
    );
    assert_eq!(
        sec.rows[&format!("org:{branch}")].len(),
        1,
        "the branch itself"
    );
    assert!(
        !sec.rows.contains_key(&format!("org:{other}")),
        "nothing of the sibling branch"
    );
    let member_scope = sec
        .rows
        .keys()
        .find(|k| k.starts_with("member:"))
        .cloned()
        .expect("own scope");
    assert_eq!(sec.rows[&member_scope].len(), 1);

    // A plain member sees the branch and themselves, not the roster.
    let (mid, mtoken) = members[0].clone();
    let mut phone = Phone::new(mtoken);
    phone.pull_all(&app, 500).await;
    assert_eq!(
        phone.rows.keys().cloned().collect::<Vec<_>>(),
        vec![format!("member:{mid}"), format!("org:{branch}")]
    );
    // Nothing new: an empty page.
    let r = phone.pull_page(&app, 500).await;
    assert_eq!(r.body["scopes"], json!([]));

    // A group created under the branch is in the secretary's very next pull, though the
    // scopes their last pull saw are cached with their principal: a new org drops them.
    let r = sec.pull_page(&app, 500).await;
    assert_eq!(r.body["scopes"], json!([]));
    let group = app.create_org(&admin, &branch, "group", "第一党小组").await;
    let r = sec.pull_page(&app, 500).await;
    let new_scope = r.body["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .find(|s| s["scope"] == format!("org:{group}"))
        .cloned()
        .unwrap_or_else(|| panic!("the new group's scope: {:?}", r.body));
    assert_eq!(new_scope["op"], "reset");
    assert_eq!(new_scope["changes"][0]["id"], group.as_str());
    sec.apply(&r.body);

    // The member reports a new city; the secretary's next pull carries just that row.
    phone.whereabouts(Some("上海"));
    assert_eq!(
        phone.push(&app, phone.push_body(0, 1)).await.status,
        StatusCode::OK
    );
    let r = sec.pull_page(&app, 500).await;
    let scopes = r.body["scopes"].as_array().expect("scopes");
    assert_eq!(scopes.len(), 1, "{scopes:?}");
    assert_eq!(
        (scopes[0]["scope"].as_str(), scopes[0]["op"].as_str()),
        (Some(committee.as_str()), Some("changes"))
    );
    assert_eq!(scopes[0]["changes"][0]["row"]["migrant_city"], "上海");
    sec.apply(&r.body);

    // The admin moves a member to the other branch: a tombstone in A's roster.
    let (moved, _) = members[1].clone();
    let r = app
        .patch(
            &format!("/v1/members/{moved}"),
            &admin,
            json!({"org_id": other}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = sec.pull_page(&app, 500).await;
    let ch = &r.body["scopes"][0]["changes"][0];
    assert_eq!(
        (ch["op"].as_str(), ch["id"].as_str()),
        (Some("del"), Some(moved.as_str()))
    );
    sec.apply(&r.body);
    assert_eq!(sec.rows[&committee].len(), 3);

    // The secretary loses the role: the roster scope is dropped from the phone.
    let grants = app
        .list_all(&format!("/v1/roles?org_id={branch}"), &admin)
        .await;
    let grant = grants
        .iter()
        .find(|g| g["role"] == "secretary")
        .and_then(|g| g["id"].as_str())
        .expect("grant");
    assert_eq!(
        app.delete(&format!("/v1/roles/{grant}"), &admin)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = sec.pull_page(&app, 500).await;
    let dropped: BTreeSet<String> = [committee.clone(), format!("org:{group}:committee")]
        .iter()
        .map(|s| json!({"scope": s, "op": "drop", "code": "not_visible"}).to_string())
        .collect();
    let got: BTreeSet<String> = r.body["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        got, dropped,
        "the roster scopes of the branch and of its group, nothing else"
    );
    sec.apply(&r.body);
    assert!(!sec.rows.contains_key(&committee));

    // Bad requests.
    let r = app
        .post(
            "/v1/sync/pull",
            &sec_token,
            json!({"client_id": sec.client_id, "schema_version": 1, "limit": 5000}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["code"], "limit_too_large");
    let r = app.post("/v1/sync/pull", &sec_token, json!({"client_id": sec.client_id, "schema_version": 1, "cursors": {"team:1": {"v": 1, "epoch": null}}})).await;
    assert_eq!(r.body["errors"][0]["code"], "invalid_scope");
    // A cursor for a scope never visible: dropped, with its reason.
    let r = app.post("/v1/sync/pull", &sec_token, json!({"client_id": sec.client_id, "schema_version": 1, "cursors": {format!("org:{other}"): {"v": 3, "epoch": null}}})).await;
    assert_eq!(r.body["scopes"][0]["op"], "drop");

    // The status endpoint tells what is new without pulling.
    let s = app.get("/v1/sync/status", &sec_token).await;
    assert_eq!(
        s.body["scopes"][format!("org:{branch}")]["v"],
        sec.cursors[&format!("org:{branch}")]["v"]
    );
}

#[tokio::test]
async fn pages_are_bounded_and_each_is_a_checkpoint() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let branch = app.create_org(&admin, &root, "branch", "大支部").await;
    assert_eq!(
        app.import(&admin, &branch, &roster_csv(120, 13930000000), false)
            .await
            .status,
        StatusCode::CREATED
    );
    let mut all = Phone::new(admin.clone());
    let pages = all.pull_all(&app, 1000).await;
    let mut paged = Phone::new(admin.clone());
    let small = paged.pull_all(&app, 25).await;
    assert!(
        pages <= 2 && small >= 5,
        "{pages} pages of 1000, {small} pages of 25"
    );
    assert_eq!(all.rows, paged.rows);
    assert_eq!(paged.rows[&format!("org:{branch}:committee")].len(), 120);
    // gzip when asked.
    let res = app
        .client
        .post(format!("{}/v1/sync/pull", app.base))
        .bearer_auth(&admin)
        .header("accept-encoding", "gzip")
        .json(&json!({"client_id": Uuid::now_v7(), "schema_version": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn a_phone_offline_for_a_week_syncs_200_mutations_in_one_push() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (branch, sec_token, members) =
        branch_with_members(&app, &admin, "外出支部", 13940000000, 1).await;
    let (member_id, token) = members[0].clone();
    let mut phone = Phone::new(token);
    phone.pull_all(&app, 500).await;
    let cities = ["杭州", "上海", "苏州", "宁波", "合肥"];
    for i in 0..200 {
        phone.whereabouts(Some(cities[i % cities.len()]));
    }
    // Made over a week in one boot; sent with the phone's clock a year off.
    let mut body = phone.push_body(0, 200);
    let week_ms: i64 = 7 * 24 * 3600 * 1000;
    for (i, m) in body["mutations"]
        .as_array_mut()
        .expect("mutations")
        .iter_mut()
        .enumerate()
    {
        m["boot_id"] = json!("boot-1");
        m["uptime_ms"] = json!(1000 + i as i64 * (week_ms / 200));
        m["device_time"] = json!("2027-11-22T10:00:00Z");
    }
    body["boot_id"] = json!("boot-1");
    body["uptime_ms"] = json!(1000 + week_ms + 60_000);
    // The versions of the member's own scope and of the branch roster, before and after.
    let (own, committee) = (
        format!("member:{member_id}"),
        format!("org:{branch}:committee"),
    );
    let versions = async || {
        let mine = app.get("/v1/sync/status", &phone.token).await;
        let sec = app.get("/v1/sync/status", &sec_token).await;
        (
            mine.body["scopes"][&own]["v"].as_i64().expect("own scope"),
            sec.body["scopes"][&committee]["v"]
                .as_i64()
                .expect("committee"),
        )
    };
    let before = versions().await;
    let r = phone.push(&app, body).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // One transaction for the push: each scope moved once, not 200 times.
    let after = versions().await;
    assert_eq!(after, (before.0 + 1, before.1 + 1));
    let results = r.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 200);
    assert!(results
        .iter()
        .all(|x| x["status"] == "applied" && x["time_source"] == "uptime"));
    let first =
        chrono::DateTime::parse_from_rfc3339(results[0]["event_time"].as_str().expect("time"))
            .expect("rfc3339");
    let age = chrono::Utc::now().signed_duration_since(first);
    assert!(
        (age.num_hours() - 7 * 24).abs() <= 1,
        "first mutation a week old, not a year ahead: {age}"
    );
    phone.acknowledge(r.body["last_mutation_id"].as_i64().expect("last"));
    assert!(phone.queue.is_empty());
    let m = app.get(&format!("/v1/members/{member_id}"), &admin).await;
    assert_eq!(m.body["migrant_city"], cities[199 % cities.len()]);
    // The secretary's phone catches up in one page with one row for the member, not 200.
    let mut sec = Phone::new(sec_token);
    sec.pull_all(&app, 500).await;
    let before = sec.cursors.clone();
    let r = sec.pull_page(&app, 500).await;
    assert_eq!(r.body["scopes"], json!([]), "nothing new since");
    assert_eq!(
        sec.rows[&format!("org:{branch}:committee")][&format!("member/{member_id}")]
            ["migrant_city"],
        cities[199 % cities.len()]
    );
    assert_eq!(before, sec.cursors);
}

/// The database goes away mid-sync: the phone gets 503 with Retry-After, nothing is recorded,
/// and once the database is back the same mutation is applied exactly once.
#[tokio::test]
async fn a_database_outage_answers_503_and_records_nothing() {
    if crate::helpers::engine() != "postgres" {
        eprintln!("skipped: the outage is staged on PostgreSQL (TEST_DATABASE_URL)");
        return;
    }
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, _, members) = branch_with_members(&app, &admin, "停电支部", 13980000000, 1).await;
    let (member_id, token) = members[0].clone();
    let mut phone = Phone::new(token);
    phone.whereabouts(Some("杭州"));
    phone.whereabouts(Some("上海"));
    assert_eq!(
        phone.push(&app, phone.push_body(0, 1)).await.status,
        StatusCode::OK
    );

    let base = std::env::var("TEST_DATABASE_URL").expect("url");
    let name = app
        .database_url
        .rsplit('/')
        .next()
        .expect("db name")
        .to_string();
    let mut pg = AsyncPgConnection::establish(&base)
        .await
        .expect("admin connection");
    pg.batch_execute(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
    ))
    .await
    .expect("outage");
    let r = phone.push(&app, phone.push_body(1, 1)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
        "{:?}",
        r.body
    );
    assert!(r.headers.contains_key("retry-after"));
    let ready = app.send(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);

    pg.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .expect("restore");
    let mut answered = None;
    for _ in 0..20 {
        let r = phone.push(&app, phone.push_body(1, 1)).await;
        if r.status == StatusCode::OK {
            answered = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = answered.expect("the server recovers once the database is back");
    assert_eq!(
        (
            r.body["last_mutation_id"].as_i64(),
            r.body["results"][0]["status"].as_str()
        ),
        (Some(2), Some("applied"))
    );
    let m = app.get(&format!("/v1/members/{member_id}"), &admin).await;
    assert_eq!(m.body["migrant_city"], "上海");
    // The member's own scope moved exactly twice: once per mutation.
    let mut fresh = Phone::new(phone.token.clone());
    fresh.pull_all(&app, 100).await;
    assert_eq!(
        fresh.cursors[&format!("member:{member_id}")]["v"],
        4,
        "created, password, two mutations"
    );
}

//! Jobs: the table names every job once, and a job that runs once across replicas does: two
//! runners on one database close each due meeting, mark each overdue case and rebuild each
//! stale ranking exactly once.

use crate::helpers::branch_with_members;
use crate::helpers::spawn_app_on;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use yunlian_api::jobs::{run_once, JobCx, Runs, JOBS};
use yunlian_domain::ports::{Clock, FixedClock};
use yunlian_infra::db::{self, ScopedFutureExt};

/// What a replica's jobs run with: its own pool on the test's database, the test's clock.
pub async fn job_cx(
    url: &str,
    clock: Arc<FixedClock>,
    redis: Option<(yunlian_infra::redis::Redis, String)>,
) -> JobCx {
    JobCx {
        db: yunlian_infra::Db::connect(url, 2).await.expect("db"),
        bus: yunlian_infra::bus::Bus::memory(16),
        clock: clock as Arc<dyn Clock>,
        close_grace: TimeDelta::minutes(30),
        settings: Default::default(),
        tombstone_days: 180,
        relay_every: std::time::Duration::from_secs(1),
        rankings_every: std::time::Duration::from_secs(300),
        redis,
        push: yunlian_infra::push::Gateway::Log,
        data_dir: std::env::temp_dir(),
        disk_low_bytes: 0,
    }
}

#[test]
fn every_job_is_named_once_and_the_periodic_ones_run_once_across_replicas() {
    let mut names: Vec<&str> = JOBS.iter().map(|(n, _)| *n).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), JOBS.len());
    for (name, runs) in JOBS {
        // The relay and the disk check (each replica's own disk) run everywhere.
        let expected = if matches!(*name, "outbox_relay" | "disk_space") {
            Runs::Everywhere
        } else {
            Runs::Once
        };
        assert_eq!(*runs, expected, "{name}");
    }
}

#[tokio::test]
async fn two_runners_on_one_database_close_each_due_meeting_once() {
    let t0: DateTime<Utc> = "2026-11-22T08:00:00Z".parse().expect("time");
    let clock = Arc::new(FixedClock::at(t0));
    let ttl = ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", "100000".to_string());
    let app = spawn_app_on(HashMap::from([ttl]), clock.clone()).await;
    let admin = app.admin().await;
    let (branch, sec, _) =
        branch_with_members(&app, &admin, "双副本村党支部", 13992000000, 3).await;
    let mut meetings = Vec::new();
    for i in 0..8 {
        meetings.push(
            app.plan_party_day(
                &sec,
                &branch,
                t0 + TimeDelta::hours(1) + TimeDelta::minutes(i),
            )
            .await,
        );
    }
    // The meetings ended two hours ago: all are due.
    clock.advance(TimeDelta::hours(4));
    let runner = |holder: &'static str| {
        let (url, clock) = (app.database_url.clone(), clock.clone());
        async move {
            let cx = job_cx(&url, clock, None).await;
            let mut closed = 0;
            for _ in 0..20 {
                if let Some(n) = run_once("close_out", &cx, holder).await.expect("round") {
                    closed += n;
                }
            }
            closed
        }
    };
    let (a, b) = tokio::join!(runner("replica-a"), runner("replica-b"));
    assert_eq!(a + b, meetings.len(), "closed by a: {a}, by b: {b}");

    let store = yunlian_infra::Db::connect(&app.database_url, 1)
        .await
        .expect("db");
    let events = store
        .read(|mut c| async move { db::outbox::all(&mut c).await }.scope_boxed())
        .await
        .expect("outbox");
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.topic == "attendance.final_status")
    {
        let key = (
            e.payload["meeting_id"].as_str().unwrap_or("").to_string(),
            e.payload["member_id"].as_str().unwrap_or("").to_string(),
        );
        *per.entry(key).or_default() += 1;
    }
    // Four expected attendees (the secretary and three members) at each of eight meetings.
    assert_eq!(per.len(), 4 * meetings.len());
    assert!(per.values().all(|n| *n == 1), "{per:?}");
    for m in &meetings {
        let r = app.get(&format!("/v1/meetings/{m}"), &sec).await;
        assert_eq!(r.body["status"], "held");
    }
}

/// Two replicas' overdue jobs mark each case past due once, with one `case.overdue` event; a
/// case resolved in time is never marked.
#[tokio::test]
async fn two_runners_mark_each_overdue_case_once() {
    let t0: DateTime<Utc> = "2026-12-01T08:00:00Z".parse().expect("time");
    let clock = Arc::new(FixedClock::at(t0));
    let ttl = ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", "10000000".to_string());
    let app = spawn_app_on(HashMap::from([ttl]), clock.clone()).await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "超期村党支部", 13996000000, 2).await;
    let post = crate::moments::post_topic(&app, &sec, &branch, t0 + TimeDelta::days(3)).await;
    let sec_id = app.get("/v1/me", &sec).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut cases = Vec::new();
    for i in 0..6 {
        let body = serde_json::json!({"body": format!("需求{i}"), "category": "life_need"});
        let r = app
            .post(&format!("/v1/posts/{post}/comments"), &members[0].1, body)
            .await;
        let case = r.body["case_id"].as_str().expect("case").to_string();
        let a = serde_json::json!({"assignee_id": sec_id});
        assert_eq!(
            app.post(&format!("/v1/cases/{case}/accept"), &sec, a)
                .await
                .status,
            200
        );
        cases.push(case);
    }
    // One is resolved in time; the other five pass their seven days.
    let reply = serde_json::json!({"reply": "已解决"});
    let r = app
        .post(&format!("/v1/cases/{}/resolve", cases[0]), &sec, reply)
        .await;
    assert_eq!(r.status, 200);
    clock.advance(TimeDelta::days(8));
    let runner = |holder: &'static str| {
        let (url, clock) = (app.database_url.clone(), clock.clone());
        async move {
            let cx = job_cx(&url, clock, None).await;
            let mut marked = 0;
            for _ in 0..10 {
                marked += run_once("case_overdue", &cx, holder)
                    .await
                    .expect("round")
                    .unwrap_or(0);
            }
            marked
        }
    };
    let (a, b) = tokio::join!(runner("replica-a"), runner("replica-b"));
    assert_eq!(a + b, 5, "marked by a: {a}, by b: {b}");
    let store = yunlian_infra::Db::connect(&app.database_url, 1)
        .await
        .expect("db");
    let events = store
        .read(|mut c| async move { db::outbox::all(&mut c).await }.scope_boxed())
        .await
        .expect("outbox");
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e.topic == "case.overdue") {
        *per.entry(e.payload["case_id"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    let want: BTreeMap<String, usize> = cases[1..].iter().map(|c| (c.clone(), 1)).collect();
    assert_eq!(per, want);
    let c = app.get(&format!("/v1/cases/{}", cases[1]), &sec).await.body;
    assert!(c["overdue_at"].is_string());
    assert_eq!(
        c["history"]
            .as_array()
            .and_then(|h| h.last())
            .map(|s| s["action"].clone()),
        Some("overdue".into())
    );
}

/// With Redis, the rankings job rebuilds each org's ranking of the month, quarter and year
/// once across two replicas, leaves fresh ones alone, and rebuilds only those a new entry made
/// stale; a reader then gets the ranking from Redis, the same as the ledger's.
#[tokio::test]
async fn two_runners_rebuild_each_stale_ranking_once() {
    let t0: DateTime<Utc> = "2026-12-03T02:00:00Z".parse().expect("time");
    let clock = Arc::new(FixedClock::at(t0));
    let ttl = ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", "100000".to_string());
    let app = spawn_app_on(HashMap::from([ttl]), clock.clone()).await;
    let Some((redis_url, prefix)) = app.redis.clone() else {
        eprintln!("skipped: the rankings job needs Redis (TEST_REDIS_URL)");
        return;
    };
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "榜单村党支部", 13992200000, 3).await;
    let adjust = |member: String, delta: i64| {
        let (app, admin, sec) = (&app, admin.clone(), sec.clone());
        async move {
            let body = serde_json::json!({"member_id": member, "kind": "violation", "delta": delta, "reason": "违反纪律"});
            let v = app.post("/v1/points/adjustments", &admin, body).await;
            assert_eq!(v.status, 201, "{:?}", v.body);
            let p = app
                .post(
                    &format!("/v1/points/adjustments/{}/post", v.id()),
                    &sec,
                    serde_json::json!({}),
                )
                .await;
            assert_eq!(p.status, 200, "{:?}", p.body);
        }
    };
    adjust(members[0].0.clone(), -5).await;
    let store = yunlian_infra::Db::connect(&app.database_url, 1)
        .await
        .expect("db");
    let orgs = store
        .read(|mut c| {
            async move {
                let root = db::orgs::root(&mut c).await?.expect("root");
                let f = db::orgs::OrgFilter {
                    roots: vec![root.path],
                    limit: 1000,
                    ..Default::default()
                };
                db::orgs::list(&mut c, &f).await
            }
            .scope_boxed()
        })
        .await
        .expect("orgs");
    let ranked_orgs = orgs
        .iter()
        .filter(|o| o.kind != yunlian_domain::org::OrgKind::Group)
        .count();
    let redis = yunlian_infra::redis::Redis::connect(&redis_url)
        .await
        .expect("redis");
    let runner = |holder: &'static str| {
        let (url, clock, redis, prefix) = (
            app.database_url.clone(),
            clock.clone(),
            redis.clone(),
            prefix.clone(),
        );
        async move {
            let cx = job_cx(&url, clock, Some((redis, prefix))).await;
            let mut rebuilt = 0;
            for _ in 0..5 {
                rebuilt += run_once("rankings", &cx, holder)
                    .await
                    .expect("round")
                    .unwrap_or(0);
            }
            rebuilt
        }
    };
    let (a, b) = tokio::join!(runner("replica-a"), runner("replica-b"));
    assert_eq!(a + b, ranked_orgs * 3, "rebuilt by a: {a}, by b: {b}");
    let read = |period: &'static str| {
        let (app, sec, branch) = (&app, sec.clone(), branch.clone());
        async move {
            app.get(
                &format!("/v1/points/ranking?org_id={branch}&period={period}"),
                &sec,
            )
            .await
            .body
        }
    };
    let month = read("2026-12").await;
    assert_eq!(month["source"], "redis", "{month}");
    assert_eq!(month["items"][3]["total"], -5, "{month}");
    assert_eq!(read("2026").await["source"], "redis");

    // A new entry in the branch makes its and every ancestor's three rankings stale.
    adjust(members[1].0.clone(), -10).await;
    let (a, b) = tokio::join!(runner("replica-a"), runner("replica-b"));
    let branch_path = &orgs
        .iter()
        .find(|o| o.id.to_string() == branch)
        .expect("branch")
        .path;
    let above = orgs
        .iter()
        .filter(|o| o.id.to_string() != branch && branch_path.starts_with(&o.path))
        .count();
    assert!(above >= 1, "the branch sits under the township");
    assert_eq!(a + b, (above + 1) * 3, "rebuilt by a: {a}, by b: {b}");
    let month = read("2026-12").await;
    assert_eq!(month["source"], "redis");
    let totals: Vec<i64> = month["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["total"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(totals, vec![0, 0, -5, -10]);
}

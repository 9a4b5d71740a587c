//! Redis is never the source of truth: with it killed under the server, logins (on a stricter
//! per-instance limit), pushes, pulls and clock-ins go on, readiness stays up and reports Redis
//! degraded, and the events of the outage reach the stream once Redis is back.
//! Runs on the PostgreSQL + Redis pass, with a Redis server of its own that it can kill.

use crate::helpers::KeyPhone;
use crate::helpers::{branch_with_members, Phone};
use crate::helpers::{spawn_app_with, ADMIN_PHONE};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` of this test's own on a free port.
pub struct OwnRedis {
    child: Child,
    pub port: u16,
}

impl OwnRedis {
    pub async fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..100 {
            if let Ok(c) = redis::Client::open(url.as_str()) {
                if let Ok(mut conn) = c.get_multiplexed_async_connection().await {
                    let pong: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
                    if pong.is_ok() {
                        return OwnRedis { child, port };
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on port {port}");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn with_redis_killed_logins_pushes_pulls_and_clock_ins_go_on_and_readiness_stays_up() {
    if std::env::var("TEST_REDIS_URL").is_err() {
        eprintln!("skipped: runs on the Redis pass (TEST_REDIS_URL)");
        return;
    }
    let mut redis = OwnRedis::start(free_port()).await;
    let prefix = format!("yltest:{}:", uuid::Uuid::now_v7().simple());
    let app = spawn_app_with(HashMap::from([
        ("REDIS_URL", format!("redis://127.0.0.1:{}", redis.port)),
        ("YUNLIAN_REDIS_PREFIX", prefix.clone()),
        ("YUNLIAN_OUTBOX_RELAY_MS", "50".to_string()),
    ]))
    .await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "断网村党支部", 13987000000, 2).await;
    let ready = app.send(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (ready.status, ready.body["redis"].as_str()),
        (StatusCode::OK, Some("ok"))
    );

    redis.kill();

    let ready = app.send(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (ready.status, ready.body["redis"].as_str()),
        (StatusCode::OK, Some("degraded")),
        "{:?}",
        ready.body
    );
    // Logins go on...
    let roster = app
        .list_all(&format!("/v1/members?org_id={branch}"), &admin)
        .await;
    let phone_of = |id: &str| {
        roster
            .iter()
            .find(|m| m["id"] == id)
            .and_then(|m| m["phone"].as_str())
            .expect("phone")
            .to_string()
    };
    let p0 = phone_of(&members[0].0);
    let (token, _) = app.login(&p0, "dangyuan2026").await;
    // ...under a stricter limit per instance: two failures (half of five) lock the phone.
    let p1 = phone_of(&members[1].0);
    for _ in 0..2 {
        assert_eq!(
            app.login_res(&p1, "wrong-password-1").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = app.login_res(&p1, "dangyuan2026").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
    assert_eq!(
        app.login_res(ADMIN_PHONE, "admin2026pass").await.status,
        StatusCode::OK
    );

    // Pushes and pulls.
    let mut phone = Phone::new(token.clone());
    phone.whereabouts(Some("宁波"));
    let r = phone.push(&app, phone.push_body(0, 1)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(phone.pull_all(&app, 100).await >= 1);

    // A clock-in, and a meeting closed: its final statuses wait in the outbox.
    let key = KeyPhone::register(&app, &token, &members[0].0, 21).await;
    let starts = chrono::Utc::now() - chrono::TimeDelta::minutes(1);
    let meeting = app.plan_party_day(&sec, &branch, starts).await;
    let code = crate::helpers::code_at(&app, &sec, &meeting, chrono::Utc::now()).await;
    let ev = key.evidence(&meeting, &code, chrono::Utc::now(), None);
    let r = app
        .post(&format!("/v1/meetings/{meeting}/clock-in"), &token, ev)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .post(&format!("/v1/meetings/{meeting}/close"), &sec, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Redis returns (empty: it kept nothing); the waiting events reach its stream.
    let _back = OwnRedis::start(redis.port).await;
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}", redis.port))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    // (The absences they report raise warnings too, whose events follow on the same stream.)
    let mut published = 0;
    for _ in 0..100 {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(format!("{prefix}events"))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        published = entries
            .iter()
            .filter(|(_, f)| {
                f.iter()
                    .any(|(k, v)| k == "topic" && v == "attendance.final_status")
            })
            .count();
        if published >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        published, 3,
        "the three final statuses of the closed meeting"
    );
}

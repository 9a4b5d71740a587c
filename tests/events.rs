//! Warnings pushed to connected phones over Server-Sent Events: once each to a connection, a
//! reconnect with Last-Event-ID missing nothing, a Redis outage losing nothing, and a client on
//! either of two instances getting the warning.

use crate::helpers::{branch_with_members, spawn_app_on, TestApp};
use crate::redis_outage::{free_port, OwnRedis};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use yunlian_domain::ports::FixedClock;

/// One event as the stream wrote it.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// An open `streamEvents` connection.
pub struct Stream {
    res: reqwest::Response,
    buf: String,
}

impl Stream {
    pub async fn open(app: &TestApp, token: &str, last: Option<&str>) -> Stream {
        let mut req = app
            .client
            .get(format!("{}/v1/events", app.base))
            .bearer_auth(token);
        if let Some(l) = last {
            req = req.header("last-event-id", l);
        }
        let res = req.send().await.expect("stream");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()["content-type"].to_str().ok(),
            Some("text/event-stream")
        );
        Stream {
            res,
            buf: String::new(),
        }
    }

    /// The next event (keepalive comments skipped), or `None` after `wait` without one.
    pub async fn next(&mut self, wait: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), Value::Null);
                for l in block.lines() {
                    if let Some(v) = l.strip_prefix("id: ") {
                        id = Some(v.to_string());
                    } else if let Some(v) = l.strip_prefix("event: ") {
                        event = v.to_string();
                    } else if let Some(v) = l.strip_prefix("data: ") {
                        data = serde_json::from_str(v).expect("data is JSON");
                    }
                }
                if event.is_empty() {
                    continue;
                }
                return Some(Sse { id, event, data });
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk()).await;
            match chunk {
                Ok(Ok(Some(b))) => self.buf.push_str(&String::from_utf8_lossy(&b)),
                _ => return None,
            }
        }
    }

    /// Every warning event until `wait` passes without one.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Sse> {
        let mut out = Vec::new();
        while let Some(e) = self.next(wait).await {
            out.push(e);
        }
        out
    }
}

/// A server on `clock` relaying every 50 ms (its warnings consumer runs as often).
async fn spawn(clock: Arc<FixedClock>, extra: &[(&'static str, String)]) -> TestApp {
    let mut vars = HashMap::from([
        ("YUNLIAN_OUTBOX_RELAY_MS", "50".to_string()),
        ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", "86400".to_string()),
    ]);
    vars.extend(extra.iter().cloned());
    spawn_app_on(vars, clock).await
}

/// Plans a party day in the branch and closes it after its start: every member who did not
/// clock in is absent, which warns them.
async fn absent_meeting(app: &TestApp, sec: &str, branch: &str, clock: &FixedClock) {
    let now: DateTime<Utc> = yunlian_domain::ports::Clock::now(clock);
    let id = app
        .plan_party_day(sec, branch, now + TimeDelta::minutes(1))
        .await;
    clock.advance(TimeDelta::minutes(2));
    let r = app
        .post(&format!("/v1/meetings/{id}/close"), sec, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

fn raised(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "warning.raised")
        .map(|e| e.data["warning_id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn a_phone_gets_each_warning_once_and_a_reconnect_misses_nothing() {
    let clock = Arc::new(FixedClock::at("2026-12-03T01:00:00Z".parse().expect("t")));
    let app = spawn(clock.clone(), &[]).await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "推送村党支部", 13986000000, 2).await;
    let (m0, other) = (&members[0], &members[1]);
    let wait = Duration::from_millis(1500);

    let mut s = Stream::open(&app, &m0.1, None).await;
    let hello = s.next(wait).await.expect("hello");
    assert_eq!(hello.event, "hello");
    let epoch = hello.data["epoch"].as_str().expect("epoch").to_string();

    absent_meeting(&app, &sec, &branch, &clock).await;
    let first = s
        .next(Duration::from_secs(10))
        .await
        .expect("the warning arrives");
    assert_eq!(first.event, "warning.raised");
    assert_eq!(
        first.data["recipient"],
        json!({"kind": "member", "id": m0.0})
    );
    assert_eq!(first.data["rule"], "member_absent");
    let id1 = first.id.clone().expect("id");
    assert!(id1.starts_with(&format!("{epoch}:")));
    // Nothing else for this member: the other member's and the secretary's warnings go to them.
    assert!(s.drain(wait).await.is_empty());
    drop(s);

    // Raised while the phone was away: the reconnect gets it, and only it.
    absent_meeting(&app, &sec, &branch, &clock).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut s = Stream::open(&app, &m0.1, Some(&id1)).await;
    let got = s.drain(wait).await;
    assert_eq!(got[0].event, "hello");
    let missed = raised(&got);
    assert_eq!(missed.len(), 1, "{got:?}");
    assert_ne!(missed[0], first.data["warning_id"].as_str().expect("id"));

    // The other member's stream got their own two.
    let mut o = Stream::open(&app, &other.1, Some(&format!("{epoch}:0-0"))).await;
    let theirs = raised(&o.drain(wait).await);
    assert_eq!(theirs.len(), 2);
    assert!(!theirs.contains(&missed[0]));

    // The first warning was delivered (its time recorded once).
    let w = app
        .get(
            &format!(
                "/v1/warnings/{}",
                first.data["warning_id"].as_str().expect("id")
            ),
            &m0.1,
        )
        .await;
    assert!(w.body["delivered_at"].is_string(), "{:?}", w.body);

    // Garbage is refused; another epoch's id is told to reset.
    for bad in ["garbage", "1-2", "not-a-uuid:0-1", &format!("{epoch}:x")] {
        let r = app
            .client
            .get(format!("{}/v1/events", app.base))
            .bearer_auth(&m0.1)
            .header("last-event-id", bad)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = r.json().await.expect("problem");
        assert_eq!(body["code"], "invalid_last_event_id");
    }
    let stranger = format!("{}:0-1", uuid::Uuid::now_v7());
    let mut s = Stream::open(&app, &m0.1, Some(&stranger)).await;
    let got = s.drain(wait).await;
    assert_eq!(got[1].event, "reset", "{got:?}");
    assert_eq!(got[1].data["reason"], "epoch_changed");
    let r = app
        .client
        .get(format!("{}/v1/events", app.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn warnings_raised_while_redis_is_down_reach_the_phone_once_when_it_returns() {
    if std::env::var("TEST_REDIS_URL").is_err() {
        eprintln!("skipped: runs on the Redis pass (TEST_REDIS_URL)");
        return;
    }
    let port = free_port();
    let mut redis = OwnRedis::start(port).await;
    let clock = Arc::new(FixedClock::at("2026-12-03T01:00:00Z".parse().expect("t")));
    let prefix = format!("yltest:{}:", uuid::Uuid::now_v7().simple());
    let app = spawn(
        clock.clone(),
        &[
            ("REDIS_URL", format!("redis://127.0.0.1:{port}")),
            ("YUNLIAN_REDIS_PREFIX", prefix),
        ],
    )
    .await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "断线村党支部", 13986100000, 1).await;
    let m0 = &members[0];
    let mut s = Stream::open(&app, &m0.1, None).await;
    assert_eq!(
        s.next(Duration::from_secs(2)).await.map(|e| e.event),
        Some("hello".into())
    );
    absent_meeting(&app, &sec, &branch, &clock).await;
    let before = raised(&[s
        .next(Duration::from_secs(10))
        .await
        .expect("before the outage")]);

    redis.kill();
    for _ in 0..3 {
        absent_meeting(&app, &sec, &branch, &clock).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _redis = OwnRedis::start(port).await;
    // Redis came back empty: a new epoch, told first, then the three warnings of the outage,
    // each once, from the outbox the relay kept them in.
    let mut got = Vec::new();
    while raised(&got).len() < 3 {
        match s.next(Duration::from_secs(15)).await {
            Some(e) => got.push(e),
            None => panic!("the outage's warnings arrive: {got:?}"),
        }
    }
    got.extend(s.drain(Duration::from_secs(2)).await);
    let after = raised(&got);
    assert_eq!(got[0].event, "reset", "{got:?}");
    let unique: std::collections::BTreeSet<&String> = after.iter().collect();
    assert_eq!((after.len(), unique.len()), (3, 3), "{got:?}");
    assert!(!after.contains(&before[0]));
    let stored = app.list_all("/v1/warnings?rule=member_absent", &m0.1).await;
    assert_eq!(stored.len(), 4);
}

#[tokio::test]
async fn a_phone_on_either_instance_gets_a_warning_raised_on_the_other() {
    let Ok(redis_url) = std::env::var("TEST_REDIS_URL") else {
        eprintln!("skipped: two instances share PostgreSQL and Redis (TEST_REDIS_URL)");
        return;
    };
    let clock = Arc::new(FixedClock::at("2026-12-03T01:00:00Z".parse().expect("t")));
    // Replicas share the signing secret, as a county sets it on each.
    let secret = (
        "YUNLIAN_JWT_SECRET",
        "county-secret-0123456789-abcdefghij".to_string(),
    );
    let a = spawn(clock.clone(), std::slice::from_ref(&secret)).await;
    let (_, prefix) = a.redis.clone().expect("redis");
    let b = spawn(
        clock.clone(),
        &[
            secret,
            ("DATABASE_URL", a.database_url.clone()),
            ("REDIS_URL", redis_url),
            ("YUNLIAN_REDIS_PREFIX", prefix),
        ],
    )
    .await;
    let admin = a.admin().await;
    let (branch, sec, members) =
        branch_with_members(&a, &admin, "双机村党支部", 13986200000, 1).await;
    let m0 = &members[0];
    let (mut on_a, mut on_b) = (
        Stream::open(&a, &m0.1, None).await,
        Stream::open(&b, &m0.1, None).await,
    );
    absent_meeting(&a, &sec, &branch, &clock).await;
    let wait = Duration::from_secs(3);
    let (ga, gb) = (
        raised(&on_a.drain(wait).await),
        raised(&on_b.drain(wait).await),
    );
    assert_eq!(ga.len(), 1);
    assert_eq!(ga, gb, "both instances deliver the one warning");
}

//! Pushes through a county's relay: a receiver on loopback checks every signature and fails
//! some deliveries; they are retried, then dead-lettered, then replayed. A member's warnings of
//! one minute go out as one push.

use crate::events::Stream;
use crate::helpers::{branch_with_members, spawn_app_on, KeyPhone, TestApp};
use crate::warnings::run;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::TimeDelta;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use yunlian_domain::ports::{Clock, FixedClock};

const SECRET: &str = "county-push-relay-secret-0123456789";

#[derive(Default)]
struct Relay {
    /// Tokens whose pushes fail until removed.
    failing: HashSet<String>,
    /// Fail this many more requests, whatever they carry.
    fail_next: usize,
    /// Every request: (its push as JSON, whether it was answered 200).
    seen: Vec<(Value, bool)>,
    bad_signatures: usize,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    relay: web::Data<Mutex<Relay>>,
) -> HttpResponse {
    let header = |k: &str| {
        req.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let ts = header("x-yunlian-timestamp");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let mut r = relay.lock().expect("relay");
    if header("x-yunlian-signature") != expected || header("idempotency-key").is_empty() {
        r.bad_signatures += 1;
        return HttpResponse::Unauthorized().finish();
    }
    let push: Value = serde_json::from_slice(&body).expect("a push is JSON");
    let tokens: Vec<String> = push["tokens"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["token"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let fail = r.fail_next > 0 || tokens.iter().any(|t| r.failing.contains(t));
    r.fail_next = r.fail_next.saturating_sub(1);
    r.seen.push((push, !fail));
    if fail {
        HttpResponse::ServiceUnavailable().finish()
    } else {
        HttpResponse::Ok().finish()
    }
}

async fn relay_on_loopback() -> (String, web::Data<Mutex<Relay>>) {
    let relay = web::Data::new(Mutex::new(Relay::default()));
    let r = relay.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(r.clone())
            .route("/push", web::post().to(receive))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}/push"), relay)
}

fn sent_to<'a>(r: &'a Relay, token: &str) -> Vec<&'a (Value, bool)> {
    r.seen
        .iter()
        .filter(|(p, _)| p["tokens"].to_string().contains(token))
        .collect()
}

async fn close_three(app: &TestApp, sec: &str, branch: &str, clock: &FixedClock) {
    let at = clock.now() + TimeDelta::minutes(1);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.plan_party_day(sec, branch, at).await);
    }
    clock.advance(TimeDelta::minutes(2));
    for id in ids {
        let r = app
            .post(&format!("/v1/meetings/{id}/close"), sec, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
}

#[tokio::test]
async fn pushes_are_signed_grouped_retried_dead_lettered_and_replayed() {
    let (url, relay) = relay_on_loopback().await;
    let clock = Arc::new(FixedClock::at("2026-12-03T01:00:00Z".parse().expect("t")));
    let app = spawn_app_on(
        HashMap::from([
            ("YUNLIAN_PUSH_WEBHOOK_URL", url.clone()),
            ("YUNLIAN_PUSH_WEBHOOK_SECRET", SECRET.to_string()),
            ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", "86400".to_string()),
        ]),
        clock.clone(),
    )
    .await;
    let mut cx = crate::jobs::job_cx(&app.database_url, clock.clone(), None).await;
    cx.push = yunlian_infra::push::Gateway::webhook(&url, SECRET).expect("gateway");
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "推送村党支部", 13985000000, 2).await;
    let (m0, m1) = (&members[0], &members[1]);
    let p0 = KeyPhone::register(&app, &m0.1, &m0.0, 41).await;
    let p1 = KeyPhone::register(&app, &m1.1, &m1.0, 42).await;

    // Tokens: each member's own device only; a known channel and a token of printable text.
    let put = |device: &str, token: &str, body: Value| {
        let (app, device, token) = (&app, device.to_string(), token.to_string());
        async move {
            app.send(
                reqwest::Method::PUT,
                &format!("/v1/devices/{device}/push-token"),
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let r = put(
        &p0.device_id,
        &m0.1,
        json!({"provider": "huawei", "token": "tok-m0"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body,
        json!({"device_id": p0.device_id, "provider": "huawei"})
    );
    let r = put(
        &p1.device_id,
        &m1.1,
        json!({"provider": "xiaomi", "token": "tok-m1"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = put(
        &p1.device_id,
        &m0.1,
        json!({"provider": "xiaomi", "token": "mine-now"}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "device_not_yours")
    );
    let r = put(
        &p0.device_id,
        &m0.1,
        json!({"provider": "fcm", "token": "tok m0\u{7}"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["code"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["invalid_provider", "invalid_push_token"]);
    relay.lock().expect("relay").failing.insert("tok-m1".into());
    relay.lock().expect("relay").fail_next = 0;

    // Three absences each, at once: one push per member, once the minute is over. The first
    // request of the round fails and is retried.
    close_three(&app, &sec, &branch, &clock).await;
    for job in ["warnings_events", "push_gather", "push_send"] {
        run(&cx, job).await;
    }
    assert!(
        relay.lock().expect("relay").seen.is_empty(),
        "nothing before the window ends"
    );
    clock.advance(TimeDelta::seconds(61));
    relay.lock().expect("relay").fail_next = 1;
    run(&cx, "push_send").await;
    for _ in 0..6 {
        clock.advance(TimeDelta::seconds(40));
        run(&cx, "push_send").await;
    }
    {
        let r = relay.lock().expect("relay");
        assert_eq!(r.bad_signatures, 0);
        let to_m0 = sent_to(&r, "tok-m0");
        let ok: Vec<&&(Value, bool)> = to_m0.iter().filter(|(_, ok)| *ok).collect();
        assert_eq!(ok.len(), 1, "m0's push delivered once");
        assert!(to_m0.len() <= 2);
        let push = &ok[0].0;
        assert_eq!(push["items"].as_array().map(Vec::len), Some(3));
        assert_eq!(push["title"], "党务预警（黄色）");
        assert_eq!(push["body"], "您有3条新的预警，请及时查看处理");
        assert_eq!(
            push["tokens"],
            json!([{"provider": "huawei", "token": "tok-m0"}])
        );
        // m1's relay keeps failing: five attempts, then it stops.
        let to_m1 = sent_to(&r, "tok-m1");
        assert_eq!(to_m1.len(), 5);
        assert!(to_m1.iter().all(|(_, ok)| !ok));
        assert!(
            to_m1.windows(2).all(|w| w[0].0["id"] == w[1].0["id"]),
            "the same push retried"
        );
    }

    // The dead letter, for the township's admin; the secretary may not see the list.
    let dead = app
        .list_all(&format!("/v1/push/dead-letters?org_id={branch}"), &admin)
        .await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (dead[0]["member_id"].as_str(), dead[0]["attempts"].as_i64()),
        (Some(m1.0.as_str()), Some(5))
    );
    assert_eq!(dead[0]["last_error"], "relay answered 503");
    let r = app
        .get(&format!("/v1/push/dead-letters?org_id={branch}"), &sec)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    relay.lock().expect("relay").failing.clear();
    let id = dead[0]["id"].as_str().expect("id");
    let r = app
        .post(
            &format!("/v1/push/dead-letters/{id}/replay"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["state"].as_str()),
        (StatusCode::OK, Some("pending"))
    );
    let r = app
        .post(
            &format!("/v1/push/dead-letters/{id}/replay"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "push_not_dead")
    );
    run(&cx, "push_send").await;
    {
        let r = relay.lock().expect("relay");
        let to_m1 = sent_to(&r, "tok-m1");
        assert_eq!(
            (to_m1.len(), to_m1.last().map(|(_, ok)| *ok)),
            (6, Some(true))
        );
    }
    assert!(app
        .list_all(&format!("/v1/push/dead-letters?org_id={branch}"), &admin)
        .await
        .is_empty());

    // A revoked phone is pushed to no more: its member's next push finds no device.
    let r = app
        .post(
            &format!("/v1/devices/{}/revoke", p0.device_id),
            &m0.1,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .delete(&format!("/v1/devices/{}/push-token", p0.device_id), &m0.1)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let before = relay.lock().expect("relay").seen.len();
    close_three(&app, &sec, &branch, &clock).await;
    for job in ["warnings_events", "push_gather"] {
        run(&cx, job).await;
    }
    clock.advance(TimeDelta::seconds(61));
    run(&cx, "push_send").await;
    {
        let r = relay.lock().expect("relay");
        assert!(
            sent_to(&r, "tok-m0").len() <= 2,
            "nothing more to the revoked phone"
        );
        assert_eq!(r.seen.len(), before + 1, "only m1's push");
    }
    // The SSE stream is unaffected: live delivery does not depend on the relay.
    let mut s = Stream::open(&app, &m0.1, None).await;
    assert_eq!(
        s.next(std::time::Duration::from_secs(2))
            .await
            .map(|e| e.event),
        Some("hello".into())
    );
}

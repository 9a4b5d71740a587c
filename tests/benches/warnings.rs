//! Warnings benchmark (not a test), on PostgreSQL with Redis:
//! - one township warning fanned out to 2,300 connected SSE clients of the real server (its
//!   release binary, a process of its own): the time from the warning's commit until each client
//!   has it (p50, p99, the last);
//! - the server's resident memory idle, with those 2,300 and with 10,000 idle SSE connections;
//! - the warnings scan over a county of 2,500 branches (the first scan raising their reminders,
//!   the next finding nothing to change);
//! - Redis's PUBLISH and XADD ceilings in the same run (`redis-benchmark`).
//!
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench warnings
//!
//! Env: BENCH_FANOUT (2,300), BENCH_IDLE (10,000), BENCH_BRANCHES (2,500), BENCH_ROUNDS (5),
//! BENCH_PARTS (`redis,fanout,scan`).

mod common;

use common::{env_or, login, ADMIN_PHONE, PASSWORD};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;
use yunlian_domain::events::{DomainEvent, WarningRaised};
use yunlian_domain::org::{child_path, Org, OrgKind};
use yunlian_domain::warnings::{Level, Recipient, Rule};
use yunlian_infra::db::{self, ScopedFutureExt};

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn fresh_db(base: &str, what: &str) -> String {
    let name = format!("yl_bench_{what}_{}", Uuid::now_v7().simple());
    let mut c = AsyncPgConnection::establish(base).await.expect("postgres");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create db");
    format!("{}/{name}", base.rsplit_once('/').expect("url").0)
}

/// The server binary, built in release, started as its own process.
fn start_server(url: &str, redis: &str, port: u16) -> std::process::Child {
    let bin = common::server_bin();
    let data = std::env::temp_dir().join(format!("yl-bench-warnings-{port}"));
    std::process::Command::new(bin)
        .env("YUNLIAN_BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", url)
        .env("REDIS_URL", redis)
        .env(
            "YUNLIAN_REDIS_PREFIX",
            format!("ylbench:{}:", Uuid::now_v7().simple()),
        )
        .env("YUNLIAN_DATA_DIR", data)
        .env("YUNLIAN_ADMIN_PHONE", ADMIN_PHONE)
        .env("YUNLIAN_ADMIN_PASSWORD", PASSWORD)
        .env("YUNLIAN_OUTBOX_RELAY_MS", "20")
        .env("YUNLIAN_ACCESS_TOKEN_TTL_SECS", "86400")
        .env("YUNLIAN_WORKERS", "2")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("server")
}

/// An SSE client: connects, waits for `hello`, then reports when it sees a warning whose id is
/// in `want` (without parsing the JSON: it looks for the id's text).
async fn client(
    http: reqwest::Client,
    api: String,
    token: String,
    ready: Arc<tokio::sync::Barrier>,
    mut rounds: tokio::sync::watch::Receiver<String>,
    got: tokio::sync::mpsc::UnboundedSender<Instant>,
) {
    let mut res = http
        .get(format!("{api}/v1/events"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stream");
    let mut buf = String::new();
    while !buf.contains("event: hello") {
        let b = res.chunk().await.expect("chunk").expect("open");
        buf.push_str(&String::from_utf8_lossy(&b));
    }
    ready.wait().await;
    loop {
        let want = rounds.borrow_and_update().clone();
        if !want.is_empty() && buf.contains(&want) {
            let _ = got.send(Instant::now());
            buf.clear();
            if rounds.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            b = res.chunk() => match b {
                Ok(Some(b)) => buf.push_str(&String::from_utf8_lossy(&b)),
                _ => return,
            },
            r = rounds.changed() => if r.is_err() { return },
        }
    }
}

/// Holds an SSE connection open until dropped.
async fn idle(http: reqwest::Client, api: String, token: String) -> reqwest::Response {
    let mut res = http
        .get(format!("{api}/v1/events"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stream");
    let _ = res.chunk().await;
    res
}

fn pct(v: &[f64], p: f64) -> f64 {
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

async fn redis_ceiling(url: &str) {
    let port = url.rsplit(':').next().unwrap_or("6379");
    for (what, args) in [
        ("PUBLISH", vec!["PUBLISH", "yl:bench", "warning"]),
        (
            "XADD",
            vec![
                "XADD",
                "yl:bench:stream",
                "MAXLEN",
                "~",
                "100000",
                "*",
                "topic",
                "warning.raised",
            ],
        ),
    ] {
        let out = std::process::Command::new("redis-benchmark")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                port,
                "-c",
                "50",
                "-n",
                "200000",
                "-q",
            ])
            .args(&args)
            .output();
        match out {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout).to_string();
                let last = text
                    .rsplit('\r')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                println!("redis-benchmark {what}: {last}");
            }
            Err(_) => println!("redis-benchmark not installed: no {what} ceiling"),
        }
    }
}

async fn fan_out(base: &str, redis: &str) {
    let (fanout, idle_n, rounds) = (
        env_or("BENCH_FANOUT", 2300usize),
        env_or("BENCH_IDLE", 10_000usize),
        env_or("BENCH_ROUNDS", 5usize),
    );
    let url = fresh_db(base, "fanout").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut server = start_server(&url, redis, port);
    let api = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for _ in 0..200 {
        if http.get(format!("{api}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin = login(&http, &api, ADMIN_PHONE).await;
    let rss_idle = rss_kib(server.id());
    let store = yunlian_infra::Db::connect(&url, 2).await.expect("db");
    let root = store
        .read(|mut c| async move { db::orgs::root(&mut c).await }.scope_boxed())
        .await
        .expect("root")
        .expect("a root");

    let ready = Arc::new(tokio::sync::Barrier::new(fanout + 1));
    let (round_tx, round_rx) = tokio::sync::watch::channel(String::new());
    let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..fanout {
        let c = http.clone();
        tokio::spawn(client(
            c,
            api.clone(),
            admin.clone(),
            ready.clone(),
            round_rx.clone(),
            got_tx.clone(),
        ));
    }
    ready.wait().await;
    let rss_fanout = rss_kib(server.id());
    println!(
        "{fanout} SSE clients connected; server RSS {} MiB idle, {} MiB with them",
        rss_idle / 1024,
        rss_fanout / 1024
    );
    for r in 0..rounds {
        let warning = Uuid::now_v7();
        let path = root.path.clone();
        let e = DomainEvent::WarningRaised(WarningRaised {
            warning_id: warning,
            org_id: root.id,
            rule: Rule::RectificationOverdue,
            level: Level::Red,
            recipient: Recipient::Committee(root.id),
            committee_path: Some(path),
            at: chrono::Utc::now(),
        });
        round_tx.send(warning.to_string()).expect("round");
        let at = Instant::now();
        store
            .write(move |mut c| {
                let e = e.clone();
                async move {
                    db::outbox::append(&mut c, &e, chrono::Utc::now())
                        .await
                        .map(|_| ())
                }
                .scope_boxed()
            })
            .await
            .expect("commit");
        let mut lat = Vec::with_capacity(fanout);
        while lat.len() < fanout {
            match tokio::time::timeout(Duration::from_secs(20), got_rx.recv()).await {
                Ok(Some(t)) => lat.push(t.duration_since(at).as_secs_f64() * 1000.0),
                _ => break,
            }
        }
        lat.sort_by(f64::total_cmp);
        println!(
            "fan-out round {r}: {} of {fanout} clients got it; p50 {:.0} ms, p99 {:.0} ms, last {:.0} ms (relay every 20 ms)",
            lat.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(round_tx);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut held = Vec::new();
    let t = Instant::now();
    for chunk in (0..idle_n).collect::<Vec<_>>().chunks(500) {
        let mut joins = Vec::new();
        for _ in chunk {
            joins.push(tokio::spawn(idle(http.clone(), api.clone(), admin.clone())));
        }
        for j in joins {
            held.push(j.await.expect("idle"));
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "{} idle SSE connections opened in {:.1} s: server RSS {} MiB ({:.1} KiB a connection over idle)",
        held.len(),
        t.elapsed().as_secs_f64(),
        rss_kib(server.id()) / 1024,
        (rss_kib(server.id()) as f64 - rss_idle as f64) / held.len().max(1) as f64
    );
    drop(held);
    let _ = server.kill();
    let _ = server.wait();
}

async fn scan(base: &str) {
    let n = env_or("BENCH_BRANCHES", 2500usize);
    let url = fresh_db(base, "scan").await;
    let store = yunlian_infra::Db::connect(&url, 4).await.expect("db");
    // A week before the year's end: every branch owes its month's and its quarter's meetings.
    let created: chrono::DateTime<chrono::Utc> = "2026-09-30T16:00:00Z".parse().expect("t");
    let now: chrono::DateTime<chrono::Utc> = "2026-12-26T00:00:00Z".parse().expect("t");
    let t = Instant::now();
    store
        .write(move |mut c| {
            async move {
                let rid = Uuid::now_v7();
                let root = Org {
                    id: rid,
                    parent_id: None,
                    kind: OrgKind::Committee,
                    name: "县委".into(),
                    path: yunlian_domain::org::root_path(rid),
                    depth: 0,
                    created_at: created,
                    updated_at: created,
                };
                db::orgs::insert(&mut c, &root).await?;
                for i in 0..n {
                    let id = Uuid::now_v7();
                    db::orgs::insert(
                        &mut c,
                        &Org {
                            id,
                            parent_id: Some(root.id),
                            kind: OrgKind::Branch,
                            name: format!("第{i}支部"),
                            path: child_path(&root.path, id),
                            depth: 1,
                            created_at: created,
                            updated_at: created,
                        },
                    )
                    .await?;
                }
                Ok(())
            }
            .scope_boxed()
        })
        .await
        .expect("seed");
    println!(
        "{n} branches inserted in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The first raises every branch's reminders and warnings (October's and November's overdue
    // meetings, with notices already past their date), the second escalates those notices, the
    // third finds nothing to change (the steady state of a scan every minute).
    for what in ["first scan", "second scan", "third scan"] {
        let t = Instant::now();
        let s = yunlian_api::ops::warnings::scan(&store, Default::default(), now)
            .await
            .expect("scan");
        println!(
            "{what}: {} branches, {} raised, {} resolved in {:.2} s",
            s.branches,
            s.raised,
            s.resolved,
            t.elapsed().as_secs_f64()
        );
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    yunlian_api::telemetry::init_for_tests();
    let base = std::env::var("BENCH_DATABASE_URL").expect("set BENCH_DATABASE_URL=postgres://...");
    let redis = std::env::var("BENCH_REDIS_URL").expect("set BENCH_REDIS_URL=redis://...");
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "redis,fanout,scan".into());
    if parts.contains("redis") {
        redis_ceiling(&redis).await;
    }
    if parts.contains("fanout") {
        fan_out(&base, &redis).await;
    }
    if parts.contains("scan") {
        scan(&base).await;
    }
}

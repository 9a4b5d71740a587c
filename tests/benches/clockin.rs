//! Clock-in burst (not a test), on PostgreSQL and on the embedded SQLite default: a
//! township-wide themed party day (主题党日) where
//! 2,300 members of 40 branches clock in from their phones within five minutes. Every clock-in
//! is the real one: a P-256 signature by the member's registered device key over the evidence,
//! the meeting's rotating code, a location inside the hall's geofence, through `POST
//! /v1/meetings/{id}/clock-in`. The burst is fired as fast as the clients go (the worst case:
//! everyone at the same second), once per round, each round a fresh meeting in every branch.
//! The server is the release binary in its own process; the requests are signed and serialised
//! beforehand, and the load generator reads each answer's bytes without parsing them. Next to
//! it, in the same run and on the same database, the ceiling `shared/bench` measures for a
//! clock-in transaction: on PostgreSQL its pgbench script (`clockin.pgbench`, copied here) at 8
//! clients; on SQLite the same two inserts in one transaction from 8 threads on a file with the
//! server's pragmas.
//!
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench clockin
//!
//! Env: BENCH_ENGINES ("postgres sqlite"), BENCH_CLIENTS ("8 64": concurrent phones per
//! burst), BENCH_ROUNDS (3 per client count), BENCH_SECS (15: the ceiling's run), BENCH_POOL
//! (16: the server's pool), BENCH_SERVER_BIN (another server binary), BENCH_PERF (set: `perf
//! record` the server during each client count's first burst into target/perf-clockin-*.data).
//! Creates its own database (or data directory) and removes it afterwards.

mod common;
#[path = "../rosters.rs"]
mod rosters;

use base64::Engine as _;
use chrono::{TimeDelta, Utc};
use common::{
    each, engines, env_or, get, occurrences, post, post_raw, Cost, Engine, Figures, Perf, Proc,
};
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use p256::ecdsa::{signature::Signer, Signature, SigningKey};
use serde_json::json;
use sha2::Digest;
use std::time::Instant;
use yunlian_domain::attendance::{meeting_code, ClockInEvidence, Location};

const BRANCHES: usize = 40;
const MEMBERS: usize = 2_300;
const HALL: Location = Location {
    lat: 30.889,
    lng: 119.42,
    accuracy_m: 12.0,
};

/// A member's phone: its session and the key its secure hardware keeps.
struct Phone {
    member_id: String,
    org: String,
    token: String,
    device_id: String,
    key: SigningKey,
}

#[derive(diesel::QueryableByName)]
struct MemberRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    phone: String,
    #[diesel(sql_type = Text)]
    org_id: String,
}

#[tokio::main]
async fn main() {
    let clients: Vec<usize> = std::env::var("BENCH_CLIENTS")
        .unwrap_or_else(|_| "8 64".into())
        .split_whitespace()
        .map(|c| c.parse().expect("BENCH_CLIENTS: numbers"))
        .collect();
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let secs: u64 = env_or("BENCH_SECS", 15);
    let mut report = String::new();
    for engine in engines() {
        report.push_str(&run(&engine, &clients, rounds, secs).await);
    }
    println!("{report}");
}

async fn run(engine: &Engine, clients: &[usize], rounds: usize, secs: u64) -> String {
    let bench = Proc::start("clockin", engine, &[]).await;
    let idle_rss = bench.rss_mib();
    let (http, api, admin) = (bench.http.clone(), bench.api.clone(), bench.admin.clone());

    // 40 branches and their rosters through the API (57 or 58 members each).
    let t = Instant::now();
    let mut branches = Vec::new();
    for b in 0..BRANCHES {
        let org = bench.branch(&format!("第{b:02}支部")).await;
        let n = MEMBERS / BRANCHES + usize::from(b < MEMBERS % BRANCHES);
        let r = http
            .post(format!("{api}/v1/orgs/{org}/members/import"))
            .bearer_auth(&admin)
            .header("content-type", "text/csv; charset=utf-8")
            .body(rosters::roster_csv(n, 15_000_000_000 + b as u64 * 100))
            .send()
            .await
            .expect("import");
        assert!(r.status().is_success(), "import: {}", r.status());
        branches.push(org);
    }
    // One password for all (hashed once: 2,300 argon2 hashes would only time the setup).
    let hash = yunlian_infra::password::hash(common::PASSWORD)
        .await
        .expect("hash");
    let mut db = bench.store().await;
    // (An argon2 PHC string: letters, digits, `$`, `=`, `,`, `+` and `/`; no quote.)
    assert!(!hash.contains('\''));
    db.batch(&format!(
        "UPDATE members SET password_hash = '{hash}' WHERE phone LIKE '15%'"
    ))
    .await;
    let members: Vec<MemberRow> = db
        .load("SELECT id, phone, org_id FROM members WHERE phone LIKE '15%' ORDER BY phone")
        .await;
    assert_eq!(members.len(), MEMBERS);

    // Each member logs in and registers a phone key.
    let phones = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let register = {
        let (http, api, phones) = (http.clone(), api.clone(), phones.clone());
        move |m: &MemberRow| {
            let (http, api, phones) = (http.clone(), api.clone(), phones.clone());
            let (member_id, phone, org) = (m.id.clone(), m.phone.clone(), m.org_id.clone());
            async move {
                let token = common::login(&http, &api, &phone).await;
                let seed: [u8; 32] = sha2::Sha256::digest(phone.as_bytes()).into();
                let key = SigningKey::from_slice(&seed).expect("key");
                let public = base64::engine::general_purpose::STANDARD
                    .encode(key.verifying_key().to_encoded_point(false).as_bytes());
                let r = post(
                    &http,
                    &format!("{api}/v1/devices"),
                    &token,
                    &json!({"algorithm": "p256", "public_key": public, "unlock": "fingerprint"}),
                )
                .await;
                let device_id = r["id"].as_str().expect("device").to_string();
                phones.lock().expect("phones").push(Phone {
                    member_id,
                    org,
                    token,
                    device_id,
                    key,
                });
            }
        }
    };
    each(members, 4, register).await;
    let phones: Vec<Phone> = std::mem::take(&mut *phones.lock().expect("phones"));
    eprintln!(
        "{} members of {BRANCHES} branches logged in with registered phones in {:.0}s",
        phones.len(),
        t.elapsed().as_secs_f64()
    );

    // The same signature check the server makes, alone, to show what a clock-in costs in CPU.
    let sample = &phones[0];
    let ev = ClockInEvidence {
        meeting_id: uuid::Uuid::now_v7(),
        member_id: sample.member_id.parse().expect("uuid"),
        device_id: sample.device_id.parse().expect("uuid"),
        code: "123456".into(),
        event_time: Utc::now(),
        location: Some(HALL),
    };
    let sig: Signature = sample.key.sign(&ev.canonical());
    let public = sample.key.verifying_key().to_encoded_point(false);
    let t = Instant::now();
    for _ in 0..1_000 {
        yunlian_domain::attendance::verify_signature(
            yunlian_domain::attendance::KeyAlgorithm::P256,
            public.as_bytes(),
            &ev.canonical(),
            sig.to_der().as_bytes(),
        )
        .expect("verify");
    }
    let verify_us = t.elapsed().as_secs_f64() * 1e3;

    // The bursts: per round a themed party day in every branch, starting in ten minutes (so
    // every clock-in is on time), each member's evidence signed on the phone beforehand.
    let mut bursts: Vec<(usize, Figures, Cost)> = Vec::new();
    for &c in clients {
        for round in 0..rounds {
            let starts = Utc::now() + TimeDelta::minutes(10);
            let mut meetings = std::collections::HashMap::new();
            for org in &branches {
                let r = post(
                    &http,
                    &format!("{api}/v1/meetings"),
                    &admin,
                    &json!({"org_id": org, "meeting_type": "themed_party_day",
                            "title": format!("主题党日 {c}/{round}"), "starts_at": starts,
                            "ends_at": starts + TimeDelta::hours(2),
                            "geofence": {"lat": HALL.lat, "lng": HALL.lng, "radius_m": 100.0}}),
                )
                .await;
                let id = r["id"].as_str().expect("meeting").to_string();
                let code = get(&http, &format!("{api}/v1/meetings/{id}/code"), &admin).await;
                let secret = base64::engine::general_purpose::STANDARD
                    .decode(code["secret_b64"].as_str().expect("secret"))
                    .expect("b64");
                meetings.insert(org.clone(), (id, secret));
            }
            let now = Utc::now();
            // Interleaved across branches, as phones in 40 village halls would arrive: the
            // first member of every branch, then the second of every branch, and so on.
            let mut seen: std::collections::HashMap<&str, usize> = Default::default();
            let mut order: Vec<(usize, &str, usize)> = phones
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let rank = seen.entry(p.org.as_str()).or_default();
                    *rank += 1;
                    (*rank, p.org.as_str(), i)
                })
                .collect();
            order.sort();
            let order: Vec<usize> = order.into_iter().map(|(_, _, i)| i).collect();
            let requests: Vec<(String, String, Vec<u8>)> = order
                .into_iter()
                .map(|i| {
                    let p = &phones[i];
                    let (meeting, secret) = &meetings[&p.org];
                    let code = meeting_code(secret, now);
                    let ev = ClockInEvidence {
                        meeting_id: meeting.parse().expect("uuid"),
                        member_id: p.member_id.parse().expect("uuid"),
                        device_id: p.device_id.parse().expect("uuid"),
                        code: code.clone(),
                        event_time: now,
                        location: Some(HALL),
                    };
                    let sig: Signature = p.key.sign(&ev.canonical());
                    let body = serde_json::to_vec(&json!({
                        "device_id": p.device_id, "code": code, "device_time": now,
                        "location": {"lat": HALL.lat, "lng": HALL.lng, "accuracy_m": HALL.accuracy_m},
                        "signature": base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes()),
                    }))
                    .expect("json");
                    (
                        format!("{api}/v1/meetings/{meeting}/clock-in"),
                        p.token.clone(),
                        body,
                    )
                })
                .collect();
            let http = http.clone();
            let perf = (round == 0).then(|| {
                let tag = engine.name().to_lowercase();
                Perf::start(&bench, &format!("clockin-{tag}-{c}"))
            });
            let (fig, cost) = bench
                .costed(each(requests, c, move |(url, token, body)| {
                    let (http, url, token, body) =
                        (http.clone(), url.clone(), token.clone(), body.clone());
                    async move {
                        let r = post_raw(&http, &url, &token, body).await;
                        assert_eq!(occurrences(&r, b"\"punctuality\":\"on_time\""), 1);
                    }
                }))
                .await;
            if let Some(perf) = perf {
                perf.stop(fig.ops);
            }
            eprintln!(
                "burst: {c} phones at a time, round {}: {} clock-ins in {:.2}s",
                round + 1,
                fig.ops,
                fig.secs
            );
            bursts.push((c, fig, cost));
        }
    }
    let recorded = db.count("SELECT count(*) AS n FROM clock_ins").await;
    assert_eq!(
        recorded as usize,
        MEMBERS * rounds * clients.len(),
        "every clock-in recorded once"
    );

    // The ceiling: shared/bench's clock-in transaction, same database engine, same run.
    let ceiling = match engine {
        Engine::Postgres(_) => {
            let mut pg = AsyncPgConnection::establish(&bench.url).await.expect("db");
            pgbench_ceiling(&mut pg, &bench.url, secs).await
        }
        Engine::Sqlite => Some(sqlite_ceiling(&bench.url, secs)),
    };

    let mut out = format!(
        "\n### {} ({MEMBERS} members, {BRANCHES} branches; {rounds} rounds per client count; all {recorded} clock-ins recorded)\n\n",
        engine.name()
    );
    out.push_str(
        "| what | clients | clock-ins/s (min / **median** / max) | p50 ms | p99 ms (median) | server CPU ms/op | load generator CPU ms/op | server peak RSS MiB |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for &c in clients {
        let mut of: Vec<&(usize, Figures, Cost)> = bursts.iter().filter(|b| b.0 == c).collect();
        of.sort_by(|a, b| a.1.rate().total_cmp(&b.1.rate()));
        let (_, mid, cost) = of[of.len() / 2];
        let mut p99: Vec<f64> = of.iter().map(|f| f.1.pct(0.99)).collect();
        p99.sort_by(f64::total_cmp);
        let peak = of.iter().map(|f| f.2.peak_rss_mib).fold(0.0, f64::max);
        out.push_str(&format!(
            "| burst of {MEMBERS} signed clock-ins, API | {c} | {:.0} / **{:.0}** / {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {peak:.0} |\n",
            of[0].1.rate(),
            mid.rate(),
            of[of.len() - 1].1.rate(),
            mid.pct(0.5),
            p99[p99.len() / 2],
            cost.cpu_ms_per_op,
            cost.client_cpu_ms_per_op,
        ));
    }
    if let Some((tps, p50, p99)) = ceiling {
        let what = match engine {
            Engine::Postgres(_) => "shared/bench clock-in transaction, pgbench (ceiling)",
            Engine::Sqlite => "the same two-insert transaction on SQLite, 8 threads (ceiling)",
        };
        out.push_str(&format!(
            "| {what} | 8 | **{tps:.0}** | {p50:.2} | {p99:.2} | | | |\n"
        ));
        let at8: Vec<f64> = bursts
            .iter()
            .filter(|b| b.0 == 8)
            .map(|b| b.1.rate())
            .collect();
        if !at8.is_empty() {
            let mut at8 = at8;
            at8.sort_by(f64::total_cmp);
            out.push_str(&format!(
                "\nmedian burst at 8 in flight / ceiling: {:.3}\n",
                at8[at8.len() / 2] / tps
            ));
        }
    }
    out.push_str(&format!(
        "server RSS idle after start: {idle_rss:.0} MiB; the themed party day needs {:.1} clock-ins/s ({MEMBERS} in 300 s); one P-256 signature check (the server's, in-process): {:.0} µs\n",
        MEMBERS as f64 / 300.0,
        verify_us
    ));
    drop(db);
    bench.finish().await;
    out
}

/// shared/bench's clock-in transaction on SQLite: two inserts in one `BEGIN IMMEDIATE`
/// transaction, from 8 threads on a fresh file beside the server's with the server's pragmas
/// (WAL, synchronous NORMAL), for `secs`; (tps, p50, p99 in ms).
fn sqlite_ceiling(server_db: &str, secs: u64) -> (f64, f64, f64) {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let path = std::path::Path::new(server_db).with_file_name("ceiling.db");
    let open = || {
        let mut c =
            diesel::SqliteConnection::establish(&path.display().to_string()).expect("sqlite");
        c.batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;",
        )
        .expect("pragmas");
        c
    };
    open()
        .batch_execute(
            "CREATE TABLE attendance (id text PRIMARY KEY, meeting_id text NOT NULL, member_id text NOT NULL,
               clocked_at text NOT NULL, method text NOT NULL, UNIQUE (meeting_id, member_id));
             CREATE TABLE change_log (seq integer PRIMARY KEY AUTOINCREMENT, entity text NOT NULL,
               entity_id text NOT NULL, org_id text NOT NULL);
             CREATE INDEX change_log_org_seq ON change_log (org_id, seq);",
        )
        .expect("ceiling schema");
    let f = common::measure_threads(
        8,
        secs,
        |_| open(),
        |c, _, _| {
            let (id, meeting, member, org) = (
                uuid::Uuid::from_u128(rand::random()),
                uuid::Uuid::from_u128(rand::random()),
                uuid::Uuid::from_u128(rand::random()),
                uuid::Uuid::from_u128(rand::random()),
            );
            c.batch_execute(&format!(
                        "BEGIN IMMEDIATE;
                         INSERT INTO attendance (id, meeting_id, member_id, clocked_at, method)
                           VALUES ('{id}', '{meeting}', '{member}', strftime('%Y-%m-%d %H:%M:%f', 'now'), 'qr')
                           ON CONFLICT (meeting_id, member_id) DO NOTHING;
                         INSERT INTO change_log (entity, entity_id, org_id) VALUES ('attendance', '{id}', '{org}');
                         COMMIT;"
                    ))
                    .expect("ceiling transaction");
        },
    );
    (f.rate(), f.pct(0.5), f.pct(0.99))
}

/// Runs `clockin.pgbench` (shared/bench's transaction: two inserts in one transaction) with 8
/// clients for `secs` against the benchmark's database; tps, p50 and p99 in ms. None when
/// pgbench is not installed.
async fn pgbench_ceiling(
    db: &mut AsyncPgConnection,
    url: &str,
    secs: u64,
) -> Option<(f64, f64, f64)> {
    let pgbench = ["pgbench".to_string()]
        .into_iter()
        .chain(
            std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|d| d.path().join("bin/pgbench").display().to_string()),
        )
        .find(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(pgbench) = pgbench else {
        eprintln!("pgbench not found: no ceiling measured (apt-get install postgresql-client)");
        return None;
    };
    db.batch_execute(include_str!("clockin_schema.sql"))
        .await
        .expect("ceiling schema");
    let dir = std::env::temp_dir().join(format!("yl_pgbench_{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let script = dir.join("clockin.pgbench");
    std::fs::write(&script, include_str!("clockin.pgbench")).expect("script");
    let out = std::process::Command::new(&pgbench)
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            "8",
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            "-l",
        ])
        .arg(format!("--log-prefix={}", dir.join("lat").display()))
        .arg("-f")
        .arg(&script)
        .arg(url)
        .output()
        .expect("pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("tps");
    let mut lat: Vec<f64> = Vec::new();
    for f in std::fs::read_dir(&dir).expect("logs").flatten() {
        if f.file_name().to_string_lossy().starts_with("lat") {
            let log = std::fs::read_to_string(f.path()).expect("log");
            lat.extend(
                log.lines()
                    .filter_map(|l| l.split_whitespace().nth(2))
                    .filter_map(|v| v.parse::<f64>().ok())
                    .map(|us| us / 1e3),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let secs_f = lat.len() as f64 / tps;
    let f = Figures::from_latencies(lat, secs_f);
    Some((tps, f.pct(0.5), f.pct(0.99)))
}

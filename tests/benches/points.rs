//! Points benchmark (not a test): a township of 50,000 members in 100 branches and a ledger of
//! 10,000,000 entries over a year, on PostgreSQL:
//! - `getRanking` of the township and of one branch for a month, through the real server over
//!   HTTP, from the database (a server without Redis) and from Redis (a second server on the
//!   same database with Redis); both must answer line for line the same;
//! - the rankings job rebuilding every org's month, quarter and year ranking in Redis;
//! - the points consumer scoring learning completions (events scored per second);
//! - Redis's own ceiling in the same run (`redis-benchmark`: PING and the ZRANGE a ranking read
//!   does), when the tool is installed.
//!
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench points
//!
//! Env: BENCH_ENTRIES (10,000,000), BENCH_EVENTS (20,000), BENCH_SECS (10 per figure),
//! BENCH_CLIENTS (8). The clients parse nothing of a ranking but its status, except once per
//! server to compare the two.

mod common;

use common::{env_or, get, measure, Bench, Figures};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use std::time::Instant;
use uuid::Uuid;
use yunlian_domain::events::{DomainEvent, LearningCompleted};
use yunlian_infra::db::{self, ScopedFutureExt};

const BRANCHES: usize = 100;
const PER_BRANCH: usize = 500;

/// Members, and `entries` ledger entries spread over them and the twelve months of 2026, straight
/// into the tables with the secondary indexes dropped and rebuilt after (as a bulk load is done).
async fn seed(url: &str, branches: &[String], entries: usize) {
    let mut c = AsyncPgConnection::establish(url).await.expect("pg");
    let members = BRANCHES * PER_BRANCH;
    let list = branches
        .iter()
        .enumerate()
        .map(|(i, b)| format!("({i}, '{b}')"))
        .collect::<Vec<_>>()
        .join(",");
    let uuid_of = |seed: &str| {
        format!(
            "substr(md5({seed}),1,8)||'-'||substr(md5({seed}),9,4)||'-7'||substr(md5({seed}),14,3)||'-8'||substr(md5({seed}),18,3)||'-'||substr(md5({seed}),21,12)"
        )
    };
    let t = Instant::now();
    let sql = format!(
        "CREATE TEMP TABLE bb (n INT PRIMARY KEY, id TEXT);
         INSERT INTO bb VALUES {list};
         CREATE TEMP TABLE mm AS
           SELECT g AS n, {member_id} AS id, bb.id AS org_id
           FROM generate_series(0, {last}) g JOIN bb ON bb.n = g / {PER_BRANCH};
         ALTER TABLE mm ADD PRIMARY KEY (n);
         INSERT INTO members (id, org_id, name, phone, status, residence, elderly_or_infirm,
                              central_household, created_at, updated_at)
           SELECT id, org_id, '党员' || n, '139' || lpad(n::text, 8, '0'), 'full', 'at_home',
                  false, false, '2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM mm;",
        member_id = uuid_of("'m' || g"),
        last = members - 1,
    );
    c.batch_execute(&sql).await.expect("members");
    eprintln!(
        "seeded {members} members in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    // Entry g: member g mod 50,000, month (g / 50,000) mod 12 + 1, one of five rules in turn.
    // Ids sort by g, below any UUIDv7 of this century's clock.
    let sql = format!(
        "DROP INDEX points_entries_member; DROP INDEX points_entries_org;
         DROP INDEX points_entries_source; DROP INDEX points_entries_resolves;
         ALTER TABLE points_entries DROP CONSTRAINT points_entries_idem_key_key;
         INSERT INTO points_entries (id, member_id, org_id, delta, rule, rule_version, source,
                                     idem_key, period, day, occurred_at, pending, created_at)
           SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7000-8000-' || h,
                  mm.id, mm.org_id,
                  (ARRAY[2, 1, -3, 1, 2])[r + 1],
                  (ARRAY['on_time', 'late', 'absent', 'learning_completed', 'volunteer'])[r + 1],
                  'default', 'bench:' || g, 'bench:' || g, '2026-' || lpad(m::text, 2, '0'),
                  '2026-' || lpad(m::text, 2, '0') || '-15',
                  make_timestamp(2026, m, 15, 2, 0, 0), false,
                  make_timestamp(2026, m, 15, 2, 0, 0)
           FROM (SELECT g, lpad(to_hex(g), 12, '0') AS h, ((g / {members}) % 12 + 1)::int AS m,
                        ((g / {members} / 12) % 5)::int AS r
                 FROM generate_series(0, {last}::bigint) g) s
           JOIN mm ON mm.n = s.g % {members};
         INSERT INTO points_marks (org_id, period, appended)
           SELECT org_id, period, COUNT(*) FROM points_entries GROUP BY org_id, period;
         INSERT INTO points_totals (member_id, org_id, period, total)
           SELECT member_id, org_id, period, SUM(delta) FROM points_entries
           WHERE NOT pending GROUP BY member_id, org_id, period;
         ALTER TABLE points_entries ADD CONSTRAINT points_entries_idem_key_key UNIQUE (idem_key);
         CREATE INDEX points_entries_member ON points_entries (member_id, period);
         CREATE INDEX points_entries_org ON points_entries (org_id, period);
         CREATE INDEX points_entries_source ON points_entries (source);
         CREATE INDEX points_entries_resolves ON points_entries (resolves);
         ANALYZE;",
        last = entries as i64 - 1,
    );
    c.batch_execute(&sql).await.expect("entries");
    eprintln!(
        "seeded {entries} entries (indexes and statistics included) in {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

/// `clients` loops reading one ranking for `secs`.
async fn read_ranking(b: &Bench, api: &str, path: &str, clients: usize, secs: u64) -> Figures {
    let (http, url, token) = (b.http.clone(), format!("{api}{path}"), b.admin.clone());
    measure(clients, secs, move |_, _| {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            let r = http
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("get");
            assert!(r.status().is_success(), "{url}: {}", r.status());
            r.bytes().await.expect("body");
        }
    })
    .await
}

/// `redis-benchmark`'s requests per second, p50 and p99 (ms) for a command, 8 clients.
fn redis_ceiling(redis_url: &str, args: &[&str]) -> Option<(f64, f64, f64)> {
    let hostport = redis_url
        .trim_start_matches("redis://")
        .trim_end_matches('/');
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "6379"));
    let out = std::process::Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-c", "8", "-n", "200000", "--csv"])
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1)?.replace('"', "");
    let f: Vec<f64> = line
        .rsplit(',')
        .take(7)
        .filter_map(|x| x.parse().ok())
        .collect();
    // rps, avg, min, p50, p95, p99, max: reversed as read.
    (f.len() == 7).then(|| (f[6], f[3], f[1]))
}

#[tokio::main]
async fn main() {
    let entries: usize = env_or("BENCH_ENTRIES", 10_000_000);
    let events: usize = env_or("BENCH_EVENTS", 20_000);
    let secs: u64 = env_or("BENCH_SECS", 10);
    let clients: usize = env_or("BENCH_CLIENTS", 8);
    let redis_url = std::env::var("BENCH_REDIS_URL").ok();
    // No job gets in the way of what is measured: the consumer and the rankings job run only
    // when the benchmark calls them.
    let quiet = [
        ("YUNLIAN_OUTBOX_RELAY_MS", "3600000".to_string()),
        ("YUNLIAN_RANKINGS_EVERY_SECS", "86400".to_string()),
    ];
    let b = Bench::start_with("points", &quiet).await;
    let mut branches = Vec::new();
    for i in 0..BRANCHES {
        branches.push(b.branch(&format!("第{i}村党支部")).await);
    }
    seed(&b.url, &branches, entries).await;
    let mut rows = Vec::new();
    let township = format!(
        "/v1/points/ranking?org_id={}&period=2026-06&limit=50",
        b.root
    );
    let branch = format!(
        "/v1/points/ranking?org_id={}&period=2026-06&limit=50",
        branches[0]
    );
    let from_db = get(&b.http, &format!("{}{township}", b.api), &b.admin).await;
    assert_eq!(from_db["source"], "database");
    for (what, path) in [("township", &township), ("branch (500)", &branch)] {
        let f = read_ranking(&b, &b.api, path, clients, secs).await;
        rows.push(f.row(&format!("getRanking, {what}, month, from the database")));
    }

    if let Some(redis_url) = &redis_url {
        let prefix = format!("ylbench{}:", Uuid::now_v7().simple());
        let store = yunlian_infra::Db::connect(&b.url, 4).await.expect("db");
        let redis = yunlian_infra::redis::Redis::connect(redis_url)
            .await
            .expect("redis");
        let now: chrono::DateTime<chrono::Utc> = "2026-06-20T02:00:00Z".parse().expect("t");
        let t = Instant::now();
        let rebuilt = yunlian_api::ops::points::rebuild_rankings(&store, &redis, &prefix, now)
            .await
            .expect("rebuild");
        let rebuild_secs = t.elapsed().as_secs_f64();
        rows.push(format!(
            "| rankings job: {rebuilt} rankings (101 orgs × month, quarter, year) rebuilt from the ledger | {:.1} s | | |",
            rebuild_secs
        ));
        let t = Instant::now();
        let again = yunlian_api::ops::points::rebuild_rankings(&store, &redis, &prefix, now)
            .await
            .expect("rebuild");
        rows.push(format!(
            "| rankings job, nothing stale ({again} rebuilt: {} marks checked) | {:.0} ms | | |",
            rebuilt,
            t.elapsed().as_secs_f64() * 1e3
        ));
        let name = format!("yl_bench_points_redis_{}", Uuid::now_v7().simple());
        let api = common::server(
            &b.url,
            &name,
            &[
                ("REDIS_URL", redis_url.clone()),
                ("YUNLIAN_REDIS_PREFIX", prefix.clone()),
                quiet[0].clone(),
                quiet[1].clone(),
            ],
        )
        .await;
        let from_redis = get(&b.http, &format!("{api}{township}"), &b.admin).await;
        assert_eq!(from_redis["source"], "redis");
        assert_eq!(
            from_redis["items"], from_db["items"],
            "Redis and the database rank alike"
        );
        for (what, path) in [("township", &township), ("branch (500)", &branch)] {
            let f = read_ranking(&b, &api, path, clients, secs).await;
            rows.push(f.row(&format!("getRanking, {what}, month, from Redis")));
        }
        let key = format!("{prefix}rank:{}:2026-06", b.root);
        for (what, args) in [
            ("redis-benchmark PING (ceiling)", vec!["PING"]),
            (
                "redis-benchmark ZRANGE 0 49 WITHSCORES of the township's ranking (ceiling)",
                vec!["ZRANGE", key.as_str(), "0", "49", "WITHSCORES"],
            ),
        ] {
            match redis_ceiling(redis_url, &args) {
                Some((rps, p50, p99)) => {
                    rows.push(format!("| {what} | {rps:.0} | {p50:.2} | {p99:.2} |"))
                }
                None => eprintln!("redis-benchmark not available: no ceiling row"),
            }
        }
    }

    // The consumer: `events` learning completions of members across the township, queued in
    // the outbox, then scored.
    let store = yunlian_infra::Db::connect(&b.url, 4).await.expect("db");
    let people: Vec<String> = store
        .read(|mut c| {
            async move {
                yunlian_infra::on!(&mut c, |c| {
                    use diesel::prelude::*;
                    use diesel_async::RunQueryDsl;
                    use yunlian_infra::db::schema::members;
                    members::table
                        .select(members::id)
                        .order(members::id)
                        .limit(50_000)
                        .load::<String>(c)
                        .await
                        .map_err(yunlian_infra::db::db_error)
                })
            }
            .scope_boxed()
        })
        .await
        .expect("members");
    let at: chrono::DateTime<chrono::Utc> = "2026-12-10T02:00:00Z".parse().expect("t");
    let evs: Vec<DomainEvent> = (0..events)
        .map(|i| {
            DomainEvent::LearningCompleted(LearningCompleted {
                item_id: Uuid::now_v7(),
                member_id: people[(i * 7919) % people.len()].parse().expect("uuid"),
                at,
                visit: false,
            })
        })
        .collect();
    for chunk in evs.chunks(1000) {
        let chunk = chunk.to_vec();
        store
            .write(move |mut c| {
                async move {
                    for e in &chunk {
                        db::outbox::append(&mut c, e, at).await?;
                    }
                    Ok(())
                }
                .scope_boxed()
            })
            .await
            .expect("outbox");
    }
    let t = Instant::now();
    let written = yunlian_api::ops::points::consume(&store, at)
        .await
        .expect("consume");
    let took = t.elapsed().as_secs_f64();
    assert_eq!(written, events, "every completion scored once");
    rows.push(format!(
        "| points consumer: {events} learning completions scored, one transaction each | {:.0} events/s | {:.2} ms mean | |",
        events as f64 / took,
        took * 1e3 / events as f64
    ));
    b.finish().await;
    println!(
        "\n{entries} entries, 50,000 members; {clients} clients, {secs} s per figure\n\n| what | per s | p50 ms | p99 ms |\n|---|---:|---:|---:|"
    );
    for r in rows {
        println!("{r}");
    }
}

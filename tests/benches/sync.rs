//! Sync benchmark (not a test), on PostgreSQL and on the embedded SQLite default: a delta pull
//! of 100 changes from a branch's scope of a large sync index, and pushes of 50 queued
//! mutations from eight phones of one branch, through the release server running as its own
//! process; next to the raw ceiling of the same pull query on the same database, measured in
//! the same run. The load generator (this process) builds its requests beforehand and reads no
//! body it does not check (it counts bytes), and each figure comes with the server's CPU time
//! per request and its peak RSS, read from /proc.
//!
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench sync
//!
//! Env: BENCH_ENGINES ("postgres sqlite"), BENCH_SECS (15 per figure), BENCH_CLIENTS (8),
//! BENCH_POOL (16: the server's pool), BENCH_SERVER_BIN (another server binary, e.g. the code
//! before a change; default: this tree's, built in release), BENCH_PERF (set: `perf record` the
//! server during each phase into target/perf-*.data), BENCH_SOAK_SECS (0: after the figures,
//! run pulls and pushes at half the measured rates this long, sampling the server's memory).
//! PostgreSQL: 100 branches of 10,000 members (a 1,000,000-row index); SQLite: 10 branches of
//! 5,000 (BENCH_SQLITE_BRANCHES), a large township.

mod common;

use common::{engines, env_or, login, measure, occurrences, post, post_raw, Engine, Perf, Proc};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;
use yunlian_infra::db::schema::sync_index;

#[tokio::main]
async fn main() {
    let secs: u64 = env_or("BENCH_SECS", 15);
    let clients: usize = env_or("BENCH_CLIENTS", 8);
    let mut report = String::new();
    for engine in engines() {
        report.push_str(&run(&engine, secs, clients).await);
    }
    println!("{report}");
}

async fn run(engine: &Engine, secs: u64, clients: usize) -> String {
    let (branches_n, per_branch): (i64, i64) = match engine {
        Engine::Postgres(_) => (100, 10_000),
        Engine::Sqlite => (env_or("BENCH_SQLITE_BRANCHES", 10), 5_000),
    };
    let p = Proc::start("sync", engine, &[]).await;
    let idle_rss = p.rss_mib();
    let (http, api, admin) = (p.http.clone(), p.api.clone(), p.admin.clone());
    let tag = engine.name().to_lowercase();

    // Branches through the API; then their members, straight into the tables with their sync
    // index rows (the API would take minutes for a million rows).
    let mut branches = Vec::new();
    for b in 0..branches_n {
        branches.push(p.branch(&format!("支部{b:03}")).await);
    }
    let t = Instant::now();
    let mut store = p.store().await;
    let values: Vec<String> = branches
        .iter()
        .enumerate()
        .map(|(i, b)| format!("({i}, '{b}')"))
        .collect();
    let seed = match engine {
        Engine::Postgres(_) => format!(
            "CREATE TEMP TABLE b(n int, id text); INSERT INTO b VALUES {v};
             INSERT INTO members (id, org_id, name, phone, status, residence, elderly_or_infirm, central_household, created_at, updated_at)
               SELECT gen_random_uuid()::text, b.id, '党员' || g, '15' || lpad((b.n * {per_branch} + g)::text, 9, '0'),
                      'full', 'at_home', false, false, now(), now()
                 FROM b, generate_series(1, {per_branch}) g;
             INSERT INTO sync_scopes (scope, version, epoch, floor, updated_at)
               SELECT 'org:' || b.id || ':committee', {per_branch}, gen_random_uuid()::text, 0, now() FROM b;
             INSERT INTO sync_index (scope, entity, entity_id, version, deleted, changed_at)
               SELECT 'org:' || m.org_id || ':committee', 'member', m.id,
                      row_number() OVER (PARTITION BY m.org_id ORDER BY m.id), false, now()
                 FROM members m WHERE m.phone LIKE '15%';",
            v = values.join(",")
        ),
        Engine::Sqlite => {
            let uuid = "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-7' || substr(hex(randomblob(2)), 2) || '-8' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))";
            format!(
                "CREATE TEMP TABLE b(n int, id text); INSERT INTO b VALUES {v};
                 WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {per_branch})
                 INSERT INTO members (id, org_id, name, phone, status, residence, elderly_or_infirm, central_household, created_at, updated_at)
                   SELECT {uuid}, b.id, '党员' || x, '15' || substr('000000000' || (b.n * {per_branch} + x), -9, 9),
                          'full', 'at_home', 0, 0, strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now')
                     FROM b, g;
                 INSERT INTO sync_scopes (scope, version, epoch, floor, updated_at)
                   SELECT 'org:' || b.id || ':committee', {per_branch}, {uuid}, 0, strftime('%Y-%m-%d %H:%M:%f', 'now') FROM b;
                 INSERT INTO sync_index (scope, entity, entity_id, version, deleted, changed_at)
                   SELECT 'org:' || m.org_id || ':committee', 'member', m.id,
                          row_number() OVER (PARTITION BY m.org_id ORDER BY m.id), 0, strftime('%Y-%m-%d %H:%M:%f', 'now')
                     FROM members m WHERE m.phone LIKE '15%';",
                v = values.join(",")
            )
        }
    };
    store.batch(&seed).await;
    store
        .batch(match engine {
            Engine::Postgres(_) => "VACUUM ANALYZE",
            Engine::Sqlite => "ANALYZE",
        })
        .await;
    let rows = store.count("SELECT count(*) AS n FROM sync_index").await;
    eprintln!(
        "{}: seeded {rows} sync index rows in {:.1}s",
        engine.name(),
        t.elapsed().as_secs_f64()
    );

    // The secretary of branch 7 (of the last on SQLite) and eight members of it who push.
    let branch = branches[7.min(branches.len() - 1)].clone();
    let roster = common::get(
        &http,
        &format!("{api}/v1/members?org_id={branch}&limit=9"),
        &admin,
    )
    .await;
    let mut tokens = Vec::new();
    for (i, m) in roster["items"]
        .as_array()
        .expect("items")
        .iter()
        .enumerate()
    {
        let id = m["id"].as_str().expect("id");
        post(
            &http,
            &format!("{api}/v1/members/{id}/password"),
            &admin,
            &json!({"password": common::PASSWORD}),
        )
        .await;
        if i == 0 {
            post(
                &http,
                &format!("{api}/v1/roles"),
                &admin,
                &json!({"member_id": id, "org_id": branch, "role": "secretary"}),
            )
            .await;
        }
        tokens.push(login(&http, &api, m["phone"].as_str().expect("phone")).await);
    }
    let secretary = tokens.remove(0);
    let committee = format!("org:{branch}:committee");
    let status = common::get(&http, &format!("{api}/v1/sync/status"), &secretary).await;
    let cursors = status["scopes"].clone();
    let epoch = cursors[&committee]["epoch"].clone();

    // 1. The pull through the API: 100 changes after a varying cursor, every other scope
    // current. The bodies are made beforehand, 256 per client.
    let span = (per_branch - 100) as u64;
    let bodies: Arc<Vec<Vec<Vec<u8>>>> = Arc::new(
        (0..clients)
            .map(|c| {
                (0..256u64)
                    .map(|i| {
                        let mut cursors = cursors.clone();
                        let v = ((c as u64 * 7919 + i * 104_729) % span) as i64;
                        cursors[&committee] = json!({"v": v, "epoch": epoch});
                        serde_json::to_vec(&json!({"client_id": Uuid::now_v7(), "schema_version": 1, "limit": 100, "cursors": cursors}))
                            .expect("json")
                    })
                    .collect()
            })
            .collect(),
    );
    let pull = {
        let (http, url, secretary, bodies) = (
            http.clone(),
            format!("{api}/v1/sync/pull"),
            secretary.clone(),
            bodies.clone(),
        );
        move |c: usize, i: u64| {
            let (http, url, secretary, bodies) =
                (http.clone(), url.clone(), secretary.clone(), bodies.clone());
            async move {
                let body = bodies[c][(i % 256) as usize].clone();
                let r = post_raw(&http, &url, &secretary, body).await;
                assert_eq!(occurrences(&r, b"\"op\":\"put\""), 100);
            }
        }
    };
    let perf = Perf::start(&p, &format!("pull-{tag}"));
    let (api_pull, pull_cost) = p.costed(measure(clients, secs, pull.clone())).await;
    perf.stop(api_pull.ops);

    // 2. The same index query straight on the database, from as many connections.
    let raw_pull = match engine {
        Engine::Postgres(_) => raw_pg(&p.url, &committee, clients, secs, span).await,
        Engine::Sqlite => raw_sqlite(&p.url, &committee, clients, secs, span).await,
    };

    // 3. Pushes of 50 queued mutations from the members' phones.
    let phones: Vec<(String, Uuid)> = tokens.iter().map(|t| (t.clone(), Uuid::now_v7())).collect();
    let push = {
        let (http, url, phones) = (http.clone(), format!("{api}/v1/sync/push"), phones.clone());
        move |c: usize, i: u64| {
            let (http, url, (token, client)) =
                (http.clone(), url.clone(), phones[c % phones.len()].clone());
            async move {
                let cities = ["杭州", "上海", "苏州", "宁波"];
                let mutations: Vec<Value> = (0..50)
                    .map(|k| {
                        json!({"id": i as i64 * 50 + k + 1, "name": "member.update_whereabouts.v1",
                               "args": {"residence": "migrant", "migrant_city": cities[(k % 4) as usize]}})
                    })
                    .collect();
                let body = serde_json::to_vec(
                    &json!({"client_id": client, "schema_version": 1, "mutations": mutations}),
                )
                .expect("json");
                let r = post_raw(&http, &url, &token, body).await;
                let last = format!("\"last_mutation_id\":{}", i * 50 + 50);
                assert_eq!(occurrences(&r, last.as_bytes()), 1);
                assert_eq!(occurrences(&r, b"\"status\":\"applied\""), 50);
            }
        }
    };
    let pushers = phones.len().min(clients);
    let perf = Perf::start(&p, &format!("push-{tag}"));
    let (push_fig, push_cost) = p.costed(measure(pushers, secs, push)).await;
    perf.stop(push_fig.ops);

    let mut out = format!(
        "\n### {} ({rows} rows in the sync index; {clients} clients; {secs} s per figure)\n\n{}\n",
        engine.name(),
        common::COSTED_HEADER
    );
    out.push_str(&common::costed_row(
        "pull of 100 changes, API (`POST /v1/sync/pull`)",
        &api_pull,
        &pull_cost,
    ));
    out.push('\n');
    out.push_str(&format!(
        "| the same index query, raw {} (ceiling) | {:.0} | {:.2} | {:.2} | | | |\n",
        engine.name(),
        raw_pull.rate(),
        raw_pull.pct(0.5),
        raw_pull.pct(0.99)
    ));
    out.push_str(&common::costed_row(
        &format!("push of 50 mutations, API (`POST /v1/sync/push`), {pushers} phones"),
        &push_fig,
        &push_cost,
    ));
    out.push_str(&format!(
        "\n\npull / raw ceiling: {:.3}; mutations applied per second: {:.0}; server RSS idle after start: {idle_rss:.0} MiB\n",
        api_pull.rate() / raw_pull.rate(),
        push_fig.rate() * 50.0,
    ));

    let soak: u64 = env_or("BENCH_SOAK_SECS", 0);
    if soak > 0 {
        out.push_str(
            &soak_run(
                &p,
                soak,
                clients,
                pull,
                api_pull.rate() / 2.0,
                &phones,
                push_fig.rate() / 2.0,
            )
            .await,
        );
    }
    drop(store);
    p.finish().await;
    out
}

/// The pull's index query straight on PostgreSQL, one connection per client.
async fn raw_pg(url: &str, scope: &str, clients: usize, secs: u64, span: u64) -> common::Figures {
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(Arc::new(tokio::sync::Mutex::new(
            AsyncPgConnection::establish(url).await.expect("conn"),
        )));
    }
    let scope = scope.to_string();
    measure(clients, secs, move |c: usize, i: u64| {
        let (conn, scope) = (conns[c].clone(), scope.clone());
        async move {
            let v = ((c as u64 * 7919 + i * 104_729) % span) as i64;
            let mut conn = conn.lock().await;
            let rows: Vec<IndexRow> = index_page(scope.clone(), v)
                .load(&mut *conn)
                .await
                .expect("raw pull");
            let n = rows.len();
            assert_eq!(n, 100);
        }
    })
    .await
}

/// The pull's index query, as the server's `db::sync::changes` builds it for a delta: written
/// with diesel's query builder, so that its prepared statement is cached on each connection
/// (as the server's is, and as `pgbench -M prepared` runs shared/bench's).
#[diesel::dsl::auto_type(no_type_alias)]
fn index_page(scope: String, after: i64) -> _ {
    use diesel::{ExpressionMethods, QueryDsl};
    sync_index::table
        .filter(sync_index::scope.eq(scope))
        .filter(sync_index::version.gt(after))
        .select((
            sync_index::entity,
            sync_index::entity_id,
            sync_index::version,
            sync_index::deleted,
        ))
        .order(sync_index::version)
        .limit(100i64)
}

/// An index row, read to bring each row across as the server's query does.
#[derive(diesel::Queryable)]
#[allow(dead_code)]
struct IndexRow {
    entity: String,
    entity_id: String,
    version: i64,
    deleted: bool,
}

/// The pull's index query straight on the SQLite file (WAL, the server's pragmas), one
/// connection per client thread.
async fn raw_sqlite(
    path: &str,
    scope: &str,
    clients: usize,
    secs: u64,
    span: u64,
) -> common::Figures {
    use diesel::Connection;
    let (path, scope) = (path.to_string(), scope.to_string());
    common::measure_threads(
        clients,
        secs,
        |_| {
            let mut conn = diesel::SqliteConnection::establish(&path).expect("sqlite");
            diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;",
            )
            .expect("pragmas");
            conn
        },
        move |conn, c, i| {
            let v = ((c as u64 * 7919 + i * 104_729) % span) as i64;
            let rows: Vec<IndexRow> =
                diesel::RunQueryDsl::load(index_page(scope.clone(), v), conn).expect("raw pull");
            assert_eq!(rows.len(), 100);
        },
    )
}

/// Pulls and pushes at the given rates for `secs`, sampling the server's RSS every 10 s: the
/// memory must stay flat and no request fail.
async fn soak_run<F, Fut>(
    p: &Proc,
    secs: u64,
    clients: usize,
    pull: F,
    pull_rate: f64,
    phones: &[(String, Uuid)],
    push_rate: f64,
) -> String
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    // Pullers: each at pull_rate / clients, on a fixed schedule.
    for c in 0..clients {
        let pull = pull.clone();
        let every = Duration::from_secs_f64(clients as f64 / pull_rate);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                pull(c, i).await;
                i += 1;
            }
            i
        }));
    }
    // Pushers: each phone at push_rate / phones, continuing its ledger from a fresh client id.
    for (token, _) in phones {
        let (http, url, token) = (
            p.http.clone(),
            format!("{}/v1/sync/push", p.api),
            token.clone(),
        );
        let every = Duration::from_secs_f64(phones.len() as f64 / push_rate);
        tasks.push(tokio::spawn(async move {
            let client = Uuid::now_v7();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                let mutations: Vec<Value> = (0..50)
                    .map(|k| {
                        json!({"id": i as i64 * 50 + k + 1, "name": "member.update_whereabouts.v1",
                                    "args": {"residence": "migrant", "migrant_city": "杭州"}})
                    })
                    .collect();
                let body = serde_json::to_vec(
                    &json!({"client_id": client, "schema_version": 1, "mutations": mutations}),
                )
                .expect("json");
                let r = post_raw(&http, &url, &token, body).await;
                assert_eq!(occurrences(&r, b"\"status\":\"applied\""), 50);
                i += 1;
            }
            i
        }));
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(10)).await;
        samples.push((started.elapsed().as_secs(), p.rss_mib()));
    }
    let mut done = 0u64;
    for t in tasks {
        done += t.await.expect("soak task (a request failed)");
    }
    let rss: Vec<f64> = samples.iter().map(|s| s.1).collect();
    let first_min = rss.iter().take(6).cloned().fold(f64::MAX, f64::min);
    let last_min = rss.iter().rev().take(6).cloned().fold(f64::MAX, f64::min);
    format!(
        "\nsoak: {secs} s at {pull_rate:.0} pulls/s and {:.1} pushes/s of 50 ({done} requests, none failed); server RSS min {:.0} / max {:.0} MiB; first minute's low {first_min:.0} MiB, last minute's low {last_min:.0} MiB\nRSS every 10 s (MiB): {}\n",
        push_rate,
        rss.iter().cloned().fold(f64::MAX, f64::min),
        rss.iter().cloned().fold(0.0, f64::max),
        rss.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

//! Sync benchmark on PostgreSQL (not a test): a delta pull of 100 changes from a scope in a
//! 1,000,000-row sync index, and pushes of 50 queued mutations, through the real server over
//! HTTP; next to the raw PostgreSQL ceiling of the same pull query, measured in the same run.
//!
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench sync
//!
//! Env: BENCH_SECS (15 per figure), BENCH_CLIENTS (8), BENCH_POOL (16: the server's connection
//! pool). Creates its own database.

mod common;

use common::{env_or, login, measure, post, Bench};
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::{json, Value};
use std::time::Instant;
use uuid::Uuid;

const BRANCHES: i64 = 100;
const PER_BRANCH: i64 = 10_000;

#[tokio::main]
async fn main() {
    let secs: u64 = env_or("BENCH_SECS", 15);
    let clients: usize = env_or("BENCH_CLIENTS", 8);
    let bench = Bench::start("sync").await;
    let (http, api, admin, url) = (
        bench.http.clone(),
        bench.api.clone(),
        bench.admin.clone(),
        bench.url.clone(),
    );
    let login = |phone: String| {
        let (http, api) = (http.clone(), api.clone());
        async move { login(&http, &api, &phone).await }
    };

    // 100 branches through the API; then 10,000 members each, straight into the tables with
    // their sync index rows (the API would take minutes for a million rows).
    let mut branches = Vec::new();
    for b in 0..BRANCHES {
        branches.push(bench.branch(&format!("支部{b:03}")).await);
    }
    let t = Instant::now();
    let mut db = AsyncPgConnection::establish(&url).await.expect("bench db");
    let values: Vec<String> = branches
        .iter()
        .enumerate()
        .map(|(i, b)| format!("({i}, '{b}')"))
        .collect();
    db.batch_execute(&format!(
        "CREATE TEMP TABLE b(n int, id text); INSERT INTO b VALUES {};
         INSERT INTO members (id, org_id, name, phone, status, residence, elderly_or_infirm, central_household, created_at, updated_at)
           SELECT gen_random_uuid()::text, b.id, '党员' || g, '15' || lpad((b.n * {PER_BRANCH} + g)::text, 9, '0'),
                  'full', 'at_home', false, false, now(), now()
             FROM b, generate_series(1, {PER_BRANCH}) g;
         INSERT INTO sync_scopes (scope, version, epoch, floor, updated_at)
           SELECT 'org:' || b.id || ':committee', {PER_BRANCH}, gen_random_uuid()::text, 0, now() FROM b;
         INSERT INTO sync_index (scope, entity, entity_id, version, deleted, changed_at)
           SELECT 'org:' || m.org_id || ':committee', 'member', m.id,
                  row_number() OVER (PARTITION BY m.org_id ORDER BY m.id), false, now()
             FROM members m WHERE m.phone LIKE '15%';",
        values.join(",")
    ))
    .await
    .expect("seed");
    db.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
    let rows = common::count(&mut db, "SELECT count(*) AS n FROM sync_index").await;
    eprintln!(
        "seeded {rows} sync index rows in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // The secretary of branch 7 and eight members of it who push from their phones.
    let branch = branches[7].clone();
    let roster = http
        .get(format!("{api}/v1/members?org_id={branch}&limit=9"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("roster")
        .json::<Value>()
        .await
        .expect("json");
    let mut tokens = Vec::new();
    for (i, m) in roster["items"]
        .as_array()
        .expect("items")
        .iter()
        .enumerate()
    {
        let id = m["id"].as_str().expect("id");
        http.post(format!("{api}/v1/members/{id}/password"))
            .bearer_auth(&admin)
            .json(&json!({"password": common::PASSWORD}))
            .send()
            .await
            .expect("password");
        if i == 0 {
            post(
                &http,
                &format!("{api}/v1/roles"),
                &admin,
                &json!({"member_id": id, "org_id": branch, "role": "secretary"}),
            )
            .await;
        }
        tokens.push(login(m["phone"].as_str().expect("phone").to_string()).await);
    }
    let secretary = tokens.remove(0);
    let committee = format!("org:{branch}:committee");
    let status = http
        .get(format!("{api}/v1/sync/status"))
        .bearer_auth(&secretary)
        .send()
        .await
        .expect("status")
        .json::<Value>()
        .await
        .expect("json");
    let cursors = status["scopes"].clone();
    let epoch = cursors[&committee]["epoch"].clone();

    // 1. The pull through the API: 100 changes after a random cursor, every other scope current.
    let pull = {
        let (http, api, secretary, cursors, committee, epoch) = (
            http.clone(),
            api.clone(),
            secretary.clone(),
            cursors.clone(),
            committee.clone(),
            epoch.clone(),
        );
        move |c: usize, i: u64| {
            let (http, api, secretary, mut cursors, committee, epoch) = (
                http.clone(),
                api.clone(),
                secretary.clone(),
                cursors.clone(),
                committee.clone(),
                epoch.clone(),
            );
            async move {
                let v = ((c as u64 * 7919 + i * 104_729) % (PER_BRANCH as u64 - 100)) as i64;
                cursors[&committee] = json!({"v": v, "epoch": epoch});
                let body = json!({"client_id": Uuid::now_v7(), "schema_version": 1, "limit": 100, "cursors": cursors});
                let r = post(&http, &format!("{api}/v1/sync/pull"), &secretary, &body).await;
                assert_eq!(
                    r["scopes"][0]["changes"].as_array().map(Vec::len),
                    Some(100)
                );
            }
        }
    };
    let api_pull = measure(clients, secs, pull).await;

    // 2. The same index query straight on PostgreSQL, from a pool of the same size.
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(std::sync::Arc::new(tokio::sync::Mutex::new(
            AsyncPgConnection::establish(&url).await.expect("conn"),
        )));
    }
    let raw = {
        let (conns, committee) = (conns.clone(), committee.clone());
        move |c: usize, i: u64| {
            let (conn, committee) = (conns[c].clone(), committee.clone());
            async move {
                let v = ((c as u64 * 7919 + i * 104_729) % (PER_BRANCH as u64 - 100)) as i64;
                let mut conn = conn.lock().await;
                let n = diesel::sql_query(
                    "SELECT entity, entity_id, version, deleted FROM sync_index WHERE scope = $1 AND version > $2 ORDER BY version LIMIT 100",
                )
                .bind::<Text, _>(committee)
                .bind::<BigInt, _>(v)
                .execute(&mut *conn)
                .await
                .expect("raw pull");
                assert_eq!(n, 100);
            }
        }
    };
    let raw_pull = measure(clients, secs, raw).await;

    // 3. Pushes of 50 queued mutations from the members' phones.
    let phones: Vec<(String, Uuid)> = tokens.iter().map(|t| (t.clone(), Uuid::now_v7())).collect();
    let push = {
        let (http, api, phones) = (http.clone(), api.clone(), phones.clone());
        move |c: usize, i: u64| {
            let (http, api, (token, client)) =
                (http.clone(), api.clone(), phones[c % phones.len()].clone());
            async move {
                let cities = ["杭州", "上海", "苏州", "宁波"];
                let mutations: Vec<Value> = (0..50)
                    .map(|k| {
                        json!({"id": i as i64 * 50 + k + 1, "name": "member.update_whereabouts.v1",
                               "args": {"residence": "migrant", "migrant_city": cities[(k % 4) as usize]}})
                    })
                    .collect();
                let body =
                    json!({"client_id": client, "schema_version": 1, "mutations": mutations});
                let r = post(&http, &format!("{api}/v1/sync/push"), &token, &body).await;
                assert_eq!(r["last_mutation_id"].as_i64(), Some(i as i64 * 50 + 50));
            }
        }
    };
    let push_fig = measure(phones.len().min(clients), secs, push).await;

    println!("\n{rows} rows in the sync index; {clients} clients; {secs}s per figure\n");
    println!("| what | per second | p50 ms | p99 ms |\n|---|---:|---:|---:|");
    println!(
        "{}",
        api_pull.row("pull of 100 changes, API (`POST /v1/sync/pull`)")
    );
    println!(
        "{}",
        raw_pull.row("the same index query, raw PostgreSQL (ceiling)")
    );
    println!(
        "{}",
        push_fig.row("push of 50 mutations, API (`POST /v1/sync/push`)")
    );
    println!(
        "\nAPI pull / raw ceiling: {:.3}",
        api_pull.rate() / raw_pull.rate()
    );
    println!(
        "mutations applied per second: {:.0}",
        push_fig.rate() * 50.0
    );
    drop(conns);
    drop(db);
    bench.finish().await;
}

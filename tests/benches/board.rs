//! Board benchmark (not a test): a branch board with 100,000 comments on 500 topics and the
//! 20,000 cases its suggestions and life needs opened, through the real server over HTTP:
//! reading a topic's comments page by page (keyset pages of 50), and the committee's case list
//! (open cases, page by page; and the overdue filter). On the embedded default (SQLite, a file
//! in a temp dir) always, and on PostgreSQL too when BENCH_DATABASE_URL names one:
//!
//!   cargo bench --bench board
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench board
//!
//! Env: BENCH_SECS (10 per figure), BENCH_CLIENTS (8). The clients parse only the cursor.

mod common;

use common::{env_or, login, measure, Figures, ADMIN_PHONE, PASSWORD};
use diesel_async::SimpleAsyncConnection;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;
use yunlian_infra::db::ScopedFutureExt;

const TOPICS: usize = 500;
const PER_TOPIC: usize = 200;
const MEMBERS: usize = 50;

/// Only what a page walk needs from a page.
#[derive(Deserialize)]
struct Cursor {
    next_cursor: Option<String>,
}

struct Server {
    api: String,
    http: reqwest::Client,
    admin: String,
    branch: String,
    topics: Vec<String>,
}

async fn start(engine: &str) -> (Server, Option<String>) {
    let data = std::env::temp_dir().join(format!("yl_bench_board_{}", Uuid::now_v7().simple()));
    let (url, pg_db) = match engine {
        "postgres" => {
            let base = std::env::var("BENCH_DATABASE_URL").expect("BENCH_DATABASE_URL");
            let name = format!("yl_bench_board_{}", Uuid::now_v7().simple());
            let mut c =
                <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(
                    &base,
                )
                .await
                .expect("postgres");
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create db");
            (
                format!("{}/{name}", base.rsplit_once('/').expect("url").0),
                Some(name),
            )
        }
        _ => (
            format!("sqlite://{}", data.join("yunlian.db").display()),
            None,
        ),
    };
    let cfg = yunlian_api::config::Config::from_map(HashMap::from([
        ("YUNLIAN_BIND".to_string(), "127.0.0.1:0".to_string()),
        ("DATABASE_URL".into(), url.clone()),
        ("YUNLIAN_DATA_DIR".into(), data.display().to_string()),
        ("YUNLIAN_ADMIN_PHONE".into(), ADMIN_PHONE.into()),
        ("YUNLIAN_ADMIN_PASSWORD".into(), PASSWORD.into()),
        ("YUNLIAN_DB_POOL_SIZE".into(), "16".into()),
        ("YUNLIAN_WORKERS".into(), "2".into()),
        ("RUST_LOG".into(), "warn".into()),
    ]))
    .expect("config");
    let app = yunlian_api::startup::Application::build(cfg)
        .await
        .expect("server");
    let api = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let admin = login(&http, &api, ADMIN_PHONE).await;
    let orgs = common::get(&http, &format!("{api}/v1/orgs"), &admin).await;
    let root = orgs["items"][0]["id"].as_str().expect("root").to_string();
    let me = common::get(&http, &format!("{api}/v1/me"), &admin).await;
    let admin_id = me["id"].as_str().expect("id").to_string();
    let b = common::post(
        &http,
        &format!("{api}/v1/orgs"),
        &admin,
        &serde_json::json!({"parent_id": root, "kind": "branch", "name": "大村党支部"}),
    )
    .await;
    let branch = b["id"].as_str().expect("id").to_string();
    let t = Instant::now();
    let topics = seed(&url, &branch, &admin_id).await;
    eprintln!(
        "{engine}: seeded {} topics, {} comments in {:.1}s",
        TOPICS,
        TOPICS * PER_TOPIC,
        t.elapsed().as_secs_f64()
    );
    (
        Server {
            api,
            http,
            admin,
            branch,
            topics,
        },
        pg_db,
    )
}

/// The board straight into the tables (the API would take minutes for 100,000 comments), one
/// statement per 1,000 rows, on either engine.
async fn seed(url: &str, branch: &str, admin_id: &str) -> Vec<String> {
    let db = yunlian_infra::Db::connect(url, 1).await.expect("db");
    let at = |min: usize| {
        let t = chrono::DateTime::parse_from_rfc3339("2026-06-01T08:00:00Z").expect("t")
            + chrono::TimeDelta::minutes(min as i64);
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    };
    let mut sql = Vec::new();
    let members: Vec<String> = (0..MEMBERS).map(|_| Uuid::now_v7().to_string()).collect();
    sql.push(format!(
        "INSERT INTO members (id, org_id, name, phone, status, residence, elderly_or_infirm, central_household, created_at, updated_at) VALUES {}",
        members
            .iter()
            .enumerate()
            .map(|(i, m)| format!("('{m}', '{branch}', '党员{i}', '159{i:08}', 'full', 'at_home', false, false, '{}', '{}')", at(0), at(0)))
            .collect::<Vec<_>>()
            .join(",")
    ));
    let topics: Vec<String> = (0..TOPICS).map(|_| Uuid::now_v7().to_string()).collect();
    for chunk in topics.chunks(250) {
        sql.push(format!(
            "INSERT INTO posts (id, org_id, title, body, image_ids, feedback_until, commenters, group_ids, pinned, closed_at, created_by, created_at, updated_at, comment_count, like_count) VALUES {}",
            chunk
                .iter()
                .map(|p| format!("('{p}', '{branch}', '征求意见', '请大家提意见', '[]', '{}', 'branch', '[]', false, NULL, '{admin_id}', '{}', '{}', {PER_TOPIC}, 0)", at(600_000), at(0), at(0)))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    let (mut comments, mut cases) = (Vec::new(), Vec::new());
    let mut n = 0usize;
    for p in &topics {
        for _ in 0..PER_TOPIC {
            let (id, author) = (Uuid::now_v7().to_string(), &members[n % MEMBERS]);
            let category = match n % 10 {
                0 => "suggestion",
                1 => "life_need",
                _ => "other",
            };
            let case = (n % 10 < 2).then(|| Uuid::now_v7().to_string());
            comments.push(format!(
                "('{id}', '{p}', '{branch}', '{author}', '第{n}条意见：村口路灯坏了', '{category}', NULL, {}, 0, NULL, NULL, NULL, '{}')",
                case.as_ref().map(|c| format!("'{c}'")).unwrap_or("NULL".into()),
                at(n)
            ));
            if let Some(c) = case {
                // Open, assigned (due over the year: some overdue), or resolved.
                let (state, assignee, due, reply, closed) = match (n / 10) % 3 {
                    0 => (
                        "submitted",
                        "NULL".into(),
                        "NULL".into(),
                        "NULL",
                        "NULL".into(),
                    ),
                    1 => (
                        "assigned",
                        format!("'{admin_id}'"),
                        format!("'{}'", at(n + 15 * 1440)),
                        "NULL",
                        "NULL".into(),
                    ),
                    _ => (
                        "resolved",
                        format!("'{admin_id}'"),
                        format!("'{}'", at(n + 15 * 1440)),
                        "'已办结'",
                        format!("'{}'", at(n + 1440)),
                    ),
                };
                cases.push(format!(
                    "('{c}', '{branch}', '{branch}', '{p}', '{id}', '{author}', NULL, '{category}', '第{n}条意见', '{state}', {assignee}, {due}, NULL, {reply}, NULL, NULL, NULL, {closed}, '{}', '{}')",
                    at(n), at(n)
                ));
            }
            n += 1;
        }
    }
    for chunk in comments.chunks(1000) {
        sql.push(format!(
            "INSERT INTO comments (id, post_id, org_id, author_id, body, category, household_id, case_id, like_count, hidden_reason, hidden_by, hidden_at, created_at) VALUES {}",
            chunk.join(",")
        ));
    }
    for chunk in cases.chunks(1000) {
        sql.push(format!(
            "INSERT INTO cases (id, org_id, handler_org_id, post_id, comment_id, author_id, household_id, category, body, state, assignee_id, due_at, overdue_at, reply, decline_reason, merged_into, transferred_at, closed_at, created_at, updated_at) VALUES {}",
            chunk.join(",")
        ));
    }
    // Fresh statistics, as a live database has them.
    sql.push("ANALYZE".into());
    for s in sql {
        db.write(move |mut c| {
            let s = s.clone();
            async move {
                yunlian_infra::on!(&mut c, |c| c
                    .batch_execute(&s)
                    .await
                    .map_err(yunlian_infra::db::db_error))
            }
            .scope_boxed()
        })
        .await
        .expect("seed");
    }
    topics
}

/// Walks `path` page by page (following `next_cursor`) from the start, `pages` pages at most;
/// each page is one sample.
async fn walk(
    s: &Server,
    clients: usize,
    secs: u64,
    path: Arc<dyn Fn(usize, u64) -> String + Send + Sync>,
    pages: usize,
) -> Figures {
    let (http, api, token) = (s.http.clone(), s.api.clone(), s.admin.clone());
    let cursors: Arc<std::sync::Mutex<HashMap<usize, (String, usize)>>> = Arc::default();
    measure(clients, secs, move |c, i| {
        let (http, api, token, path, cursors) = (
            http.clone(),
            api.clone(),
            token.clone(),
            path.clone(),
            cursors.clone(),
        );
        async move {
            let (start, page) = cursors
                .lock()
                .map(|m| m.get(&c).cloned())
                .ok()
                .flatten()
                .unwrap_or_default();
            let base = if page == 0 { path(c, i) } else { start.clone() };
            let r = http
                .get(format!("{api}{base}"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("get");
            assert!(r.status().is_success(), "{base}: {}", r.status());
            let next: Cursor = r.json().await.expect("page");
            let mut m = cursors.lock().expect("cursors");
            match next.next_cursor {
                Some(cur) if page + 1 < pages => {
                    let root = base.split("&cursor=").next().unwrap_or(&base).to_string();
                    m.insert(c, (format!("{root}&cursor={cur}"), page + 1));
                }
                _ => {
                    m.remove(&c);
                }
            }
        }
    })
    .await
}

#[tokio::main]
async fn main() {
    let secs: u64 = env_or("BENCH_SECS", 10);
    let clients: usize = env_or("BENCH_CLIENTS", 8);
    let mut engines = vec!["sqlite"];
    if std::env::var("BENCH_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        engines.push("postgres");
    }
    let mut rows = Vec::new();
    for engine in engines {
        let (s, pg_db) = start(engine).await;
        let topics = Arc::new(s.topics.clone());
        let t = topics.clone();
        let comments = walk(
            &s,
            clients,
            secs,
            Arc::new(move |c, i| {
                let p = &t[(c * 7919 + i as usize * 104_729) % t.len()];
                format!("/v1/posts/{p}/comments?limit=50")
            }),
            PER_TOPIC / 50,
        )
        .await;
        let b = s.branch.clone();
        let open = walk(
            &s,
            clients,
            secs,
            Arc::new(move |_, _| format!("/v1/cases?org_id={b}&state=submitted&limit=50")),
            20,
        )
        .await;
        let b = s.branch.clone();
        let overdue = walk(
            &s,
            clients,
            secs,
            Arc::new(move |_, _| format!("/v1/cases?org_id={b}&due=overdue&limit=50")),
            5,
        )
        .await;
        rows.push(comments.row(&format!(
            "{engine}: a topic's comments, pages of 50 (200 a topic)"
        )));
        rows.push(open.row(&format!(
            "{engine}: the committee's open cases, pages of 50 (6,667 open)"
        )));
        rows.push(overdue.row(&format!("{engine}: overdue cases, pages of 50")));
        if let Some(name) = pg_db {
            let base = std::env::var("BENCH_DATABASE_URL").expect("url");
            let mut c =
                <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(
                    &base,
                )
                .await
                .expect("pg");
            let _ = c
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
    println!(
        "\n| {clients} clients, {secs} s each | pages/s | p50 ms | p99 ms |\n|---|---:|---:|---:|"
    );
    for r in rows {
        println!("{r}");
    }
}

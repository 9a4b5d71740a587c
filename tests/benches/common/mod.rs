//! What the benchmarks share: a server on a fresh PostgreSQL database, timed loops of
//! concurrent clients, and the table rows they print.
#![allow(dead_code)] // each benchmark uses a part

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub const PASSWORD: &str = "bench2026pass";
pub const ADMIN_PHONE: &str = "13800000000";

/// Latencies (ms) of `ops` operations done in `secs`.
pub struct Figures {
    pub ops: usize,
    pub secs: f64,
    pub lat: Vec<f64>,
}

impl Figures {
    pub fn from_latencies(lat: Vec<f64>, secs: f64) -> Figures {
        Figures {
            ops: lat.len(),
            secs,
            lat,
        }
    }
    pub fn pct(&self, p: f64) -> f64 {
        let mut l = self.lat.clone();
        l.sort_by(|a, b| a.total_cmp(b));
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    }
    pub fn row(&self, what: &str) -> String {
        format!(
            "| {what} | {:.0} | {:.2} | {:.2} |",
            self.rate(),
            self.pct(0.50),
            self.pct(0.99)
        )
    }
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs `clients` loops of `op` for `secs`, collecting latencies in ms.
pub async fn measure<F, Fut>(clients: usize, secs: u64, op: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                op(c, i).await;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                i += 1;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("bench task"));
    }
    Figures::from_latencies(lat, start.elapsed().as_secs_f64())
}

/// Does `op` once for every item, `clients` at a time, as fast as they go; the figures count
/// from the first start to the last finish.
pub async fn each<T, F, Fut>(items: Vec<T>, clients: usize, op: F) -> Figures
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let items = std::sync::Arc::new(items);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (op, items, next) = (op.clone(), items.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let t = Instant::now();
                op(item).await;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("bench task"));
    }
    Figures::from_latencies(lat, start.elapsed().as_secs_f64())
}

pub async fn post(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> Value {
    let r = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

pub async fn get(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.expect("json")
}

/// A server on its own fresh database, dropped by `finish`.
pub struct Bench {
    pub api: String,
    pub http: reqwest::Client,
    pub url: String,
    pub admin: String,
    pub root: String,
    name: String,
    admin_conn: AsyncPgConnection,
}

impl Bench {
    /// Creates the database named after `what`, starts the server on it and logs the admin in.
    pub async fn start(what: &str) -> Bench {
        Bench::start_with(what, &[]).await
    }

    /// As `start`, with configuration of its own (`extra`) over the benchmark's.
    pub async fn start_with(what: &str, extra: &[(&str, String)]) -> Bench {
        let base =
            std::env::var("BENCH_DATABASE_URL").expect("set BENCH_DATABASE_URL=postgres://...");
        let name = format!("yl_bench_{what}_{}", Uuid::now_v7().simple());
        let mut admin_conn = AsyncPgConnection::establish(&base).await.expect("postgres");
        admin_conn
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create db");
        let url = format!("{}/{name}", base.rsplit_once('/').expect("url").0);
        let api = server(&url, &name, extra).await;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("client");
        let admin = login(&http, &api, ADMIN_PHONE).await;
        let orgs = get(&http, &format!("{api}/v1/orgs"), &admin).await;
        let root = orgs["items"][0]["id"].as_str().expect("root").to_string();
        Bench {
            api,
            http,
            url,
            admin,
            root,
            name,
            admin_conn,
        }
    }

    /// A branch under the root, created through the API.
    pub async fn branch(&self, name: &str) -> String {
        let r = post(
            &self.http,
            &format!("{}/v1/orgs", self.api),
            &self.admin,
            &json!({"parent_id": self.root, "kind": "branch", "name": name}),
        )
        .await;
        r["id"].as_str().expect("id").to_string()
    }

    pub async fn finish(mut self) {
        let _ = self
            .admin_conn
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

/// Starts a server (in this process) on the database at `url`, its data dir named after `name`,
/// with `extra` over the benchmark's configuration; returns its base URL.
pub async fn server(url: &str, name: &str, extra: &[(&str, String)]) -> String {
    let data = std::env::temp_dir().join(name);
    let mut vars = HashMap::from([
        ("YUNLIAN_BIND".to_string(), "127.0.0.1:0".to_string()),
        ("DATABASE_URL".into(), url.to_string()),
        ("YUNLIAN_DATA_DIR".into(), data.display().to_string()),
        ("YUNLIAN_ADMIN_PHONE".into(), ADMIN_PHONE.into()),
        ("YUNLIAN_ADMIN_PASSWORD".into(), PASSWORD.into()),
        (
            "YUNLIAN_DB_POOL_SIZE".into(),
            env_or("BENCH_POOL", 16u32).to_string(),
        ),
        ("YUNLIAN_WORKERS".into(), "2".into()),
        ("RUST_LOG".into(), "warn".into()),
        // One secret for every server of a benchmark, as replicas share theirs.
        (
            "YUNLIAN_JWT_SECRET".into(),
            "bench-secret-shared-by-every-replica-0123456789abcdef".into(),
        ),
    ]);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.clone());
    }
    let cfg = yunlian_api::config::Config::from_map(vars).expect("config");
    let app = yunlian_api::startup::Application::build(cfg)
        .await
        .expect("server");
    let api = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    api
}

/// The one number a `SELECT count(*) AS n ...` answers.
pub async fn count(db: &mut AsyncPgConnection, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel_async::RunQueryDsl;
    diesel::sql_query(sql)
        .get_result::<Count>(db)
        .await
        .expect("count")
        .n
}

pub async fn login(http: &reqwest::Client, api: &str, phone: &str) -> String {
    let r = post(
        http,
        &format!("{api}/v1/auth/login"),
        "",
        &json!({"phone": phone, "password": PASSWORD}),
    )
    .await;
    r["access_token"].as_str().expect("token").to_string()
}

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

/// Runs `clients` OS threads of `op` for `secs` (blocking work: a database file opened straight,
/// not through the server), each with its own state from `setup`; latencies in ms.
pub fn measure_threads<S, Setup, Op>(clients: usize, secs: u64, setup: Setup, op: Op) -> Figures
where
    Setup: Fn(usize) -> S,
    S: Send + 'static,
    Op: Fn(&mut S, usize, u64) + Clone + Send + 'static,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (mut state, op) = (setup(c), op.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    op(&mut state, c, i);
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let lat: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("bench thread"))
        .collect();
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
        branch(&self.http, &self.api, &self.admin, &self.root, name).await
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

/// A branch under `root`, created through the API by `admin`.
pub async fn branch(
    http: &reqwest::Client,
    api: &str,
    admin: &str,
    root: &str,
    name: &str,
) -> String {
    let r = post(
        http,
        &format!("{api}/v1/orgs"),
        admin,
        &json!({"parent_id": root, "kind": "branch", "name": name}),
    )
    .await;
    r["id"].as_str().expect("id").to_string()
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

// ---------------------------------------------------------------------------------------------
// The server as its own process, on either engine, with its CPU time and memory read from /proc.

/// Which database a benchmark's server runs on.
#[derive(Clone, Debug)]
pub enum Engine {
    /// A fresh database on the PostgreSQL at this base URL (`BENCH_DATABASE_URL`).
    Postgres(String),
    /// The embedded default: a SQLite file (WAL) in a fresh temporary directory.
    Sqlite,
}

impl Engine {
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Postgres(_) => "PostgreSQL",
            Engine::Sqlite => "SQLite",
        }
    }
}

/// The engines to run on: `BENCH_ENGINES` ("postgres sqlite" by default); PostgreSQL needs
/// `BENCH_DATABASE_URL`.
pub fn engines() -> Vec<Engine> {
    let wanted = std::env::var("BENCH_ENGINES").unwrap_or_else(|_| "postgres sqlite".into());
    wanted
        .split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(|w| match w {
            "postgres" | "pg" => Engine::Postgres(
                std::env::var("BENCH_DATABASE_URL")
                    .expect("set BENCH_DATABASE_URL=postgres://... (or BENCH_ENGINES=sqlite)"),
            ),
            "sqlite" => Engine::Sqlite,
            other => panic!("BENCH_ENGINES: unknown engine {other}"),
        })
        .collect()
}

/// The benchmark's own connection to the server's database, for seeding and checking.
pub enum Store {
    Pg(Box<AsyncPgConnection>),
    Sqlite(diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>),
}

impl Store {
    pub async fn open(url: &str) -> Store {
        if url.starts_with("postgres") {
            Store::Pg(Box::new(
                AsyncPgConnection::establish(url).await.expect("postgres"),
            ))
        } else {
            let mut c = diesel_async::sync_connection_wrapper::SyncConnectionWrapper::<
                diesel::SqliteConnection,
            >::establish(url)
            .await
            .expect("sqlite");
            c.batch_execute("PRAGMA busy_timeout = 10000")
                .await
                .expect("pragma");
            Store::Sqlite(c)
        }
    }

    pub async fn batch(&mut self, sql: &str) {
        match self {
            Store::Pg(c) => c.batch_execute(sql).await,
            Store::Sqlite(c) => c.batch_execute(sql).await,
        }
        .unwrap_or_else(|e| panic!("{e}: {}", sql.chars().take(300).collect::<String>()))
    }

    pub async fn load<T>(&mut self, sql: &str) -> Vec<T>
    where
        T: diesel::QueryableByName<diesel::pg::Pg>
            + diesel::QueryableByName<diesel::sqlite::Sqlite>
            + Send
            + 'static,
    {
        use diesel_async::RunQueryDsl;
        match self {
            Store::Pg(c) => diesel::sql_query(sql).load(&mut **c).await,
            Store::Sqlite(c) => diesel::sql_query(sql).load(c).await,
        }
        .unwrap_or_else(|e| panic!("{e}: {sql}"))
    }

    pub async fn count(&mut self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        self.load::<Count>(sql).await[0].n
    }
}

/// CPU seconds (user + system) of process `pid` so far.
pub fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat(5): 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) / 100.0
}

/// A `VmRSS:`-style line of /proc/<pid>/status, in MiB.
pub fn status_mib(pid: &str, key: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// The release server binary: `BENCH_SERVER_BIN` (to measure another build of it, e.g. the
/// code before a change), or this tree's, built now.
pub fn server_bin() -> String {
    if let Ok(bin) = std::env::var("BENCH_SERVER_BIN") {
        return bin;
    }
    let built = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "yunlian-api",
            "--bin",
            "yunlian",
        ])
        .status()
        .expect("cargo build");
    assert!(built.success(), "cargo build --release failed");
    "target/release/yunlian".into()
}

/// A server process on a fresh database of `engine`, its admin logged in.
pub struct Proc {
    pub engine: Engine,
    pub api: String,
    pub http: reqwest::Client,
    /// The database URL (PostgreSQL) or file path (SQLite) the server runs on.
    pub url: String,
    pub admin: String,
    pub root: String,
    pub pid: String,
    child: std::process::Child,
    data: std::path::PathBuf,
    db_name: Option<String>,
}

/// What a phase of a benchmark cost the server: CPU per request and the peak resident memory.
pub struct Cost {
    pub cpu_ms_per_op: f64,
    pub client_cpu_ms_per_op: f64,
    pub peak_rss_mib: f64,
}

impl Proc {
    pub async fn start(what: &str, engine: &Engine, extra: &[(&str, String)]) -> Proc {
        let tag = format!("yl_bench_{what}_{}", Uuid::now_v7().simple());
        let data = std::env::temp_dir().join(&tag);
        std::fs::create_dir_all(&data).expect("data dir");
        let (url, db_name) = match engine {
            Engine::Postgres(base) => {
                let mut c = AsyncPgConnection::establish(base).await.expect("postgres");
                c.batch_execute(&format!("CREATE DATABASE {tag}"))
                    .await
                    .expect("create db");
                (
                    format!("{}/{tag}", base.rsplit_once('/').expect("url").0),
                    Some(tag.clone()),
                )
            }
            Engine::Sqlite => (data.join("yunlian.db").display().to_string(), None),
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            l.local_addr().expect("addr").port()
        };
        // BENCH_CALLGRIND: the server under callgrind, instrumented only during the phases
        // (`Perf`), for instruction counts that do not depend on what else the host runs.
        let mut cmd = if callgrind() {
            let mut c = std::process::Command::new("valgrind");
            c.args([
                "--tool=callgrind",
                "--instr-atstart=no",
                "--callgrind-out-file=target/callgrind-%p.out",
                &server_bin(),
            ]);
            c
        } else {
            std::process::Command::new(server_bin())
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("YUNLIAN_BIND", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", &url)
            .env("YUNLIAN_DATA_DIR", &data)
            .env("YUNLIAN_ADMIN_PHONE", ADMIN_PHONE)
            .env("YUNLIAN_ADMIN_PASSWORD", PASSWORD)
            .env(
                "YUNLIAN_DB_POOL_SIZE",
                env_or("BENCH_POOL", 16u32).to_string(),
            )
            .env("YUNLIAN_WORKERS", "2")
            .env("YUNLIAN_ACCESS_TOKEN_TTL_SECS", "86400")
            .env("RUST_LOG", "warn")
            .env(
                "YUNLIAN_JWT_SECRET",
                "bench-secret-shared-by-every-replica-0123456789abcdef",
            );
        for (k, v) in extra {
            cmd.env(k, v);
        }
        // The allocator's own options (MIMALLOC_*), to measure their effect.
        for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("MIMALLOC_")) {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("server");
        let pid = child.id().to_string();
        let api = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(if callgrind() { 600 } else { 60 });
        loop {
            match http.get(format!("{api}/readyz")).send().await {
                Ok(r) if r.status().is_success() => break,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => panic!("the server did not start: {other:?}"),
            }
        }
        let admin = login(&http, &api, ADMIN_PHONE).await;
        let orgs = get(&http, &format!("{api}/v1/orgs"), &admin).await;
        let root = orgs["items"][0]["id"].as_str().expect("root").to_string();
        Proc {
            engine: engine.clone(),
            api,
            http,
            url,
            admin,
            root,
            pid,
            child,
            data,
            db_name,
        }
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.url).await
    }

    /// A branch under the root, created through the API.
    pub async fn branch(&self, name: &str) -> String {
        branch(&self.http, &self.api, &self.admin, &self.root, name).await
    }

    pub fn rss_mib(&self) -> f64 {
        status_mib(&self.pid, "VmRSS:")
    }

    /// Runs `phase`, returning what it returns and what it cost the server (its CPU time per
    /// operation, its peak RSS during the phase) and this process, the load generator.
    pub async fn costed<F: std::future::Future<Output = Figures>>(
        &self,
        phase: F,
    ) -> (Figures, Cost) {
        // Writing 5 to clear_refs resets the peak (VmHWM) to the current RSS.
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5");
        let (cpu0, me0) = (cpu_secs(&self.pid), cpu_secs("self"));
        let fig = phase.await;
        let (cpu1, me1) = (cpu_secs(&self.pid), cpu_secs("self"));
        let ops = fig.ops.max(1) as f64;
        let cost = Cost {
            cpu_ms_per_op: (cpu1 - cpu0) * 1e3 / ops,
            client_cpu_ms_per_op: (me1 - me0) * 1e3 / ops,
            peak_rss_mib: status_mib(&self.pid, "VmHWM:"),
        };
        (fig, cost)
    }

    pub async fn finish(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let (Engine::Postgres(base), Some(name)) = (&self.engine, &self.db_name) {
            if let Ok(mut c) = AsyncPgConnection::establish(base).await {
                let _ = c
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// A table row of a phase's figures and its cost.
pub fn costed_row(what: &str, f: &Figures, c: &Cost) -> String {
    format!(
        "| {what} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
        f.rate(),
        f.pct(0.50),
        f.pct(0.99),
        c.cpu_ms_per_op,
        c.client_cpu_ms_per_op,
        c.peak_rss_mib
    )
}

pub const COSTED_HEADER: &str = "| what | per second | p50 ms | p99 ms | server CPU ms/op | load generator CPU ms/op | server peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|";

/// Posts `body` (already JSON text) and returns the response's bytes unparsed, after checking
/// its status: the load generator spends as little as it can.
pub async fn post_raw(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Vec<u8>,
) -> bytes::Bytes {
    let r = client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = r.status();
    let bytes = r.bytes().await.expect("body");
    assert!(
        status.is_success(),
        "{url}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    bytes
}

/// How many times `needle` occurs in `hay`.
pub fn occurrences(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Whether the server runs under callgrind (BENCH_CALLGRIND).
pub fn callgrind() -> bool {
    std::env::var("BENCH_CALLGRIND").is_ok()
}

/// A `perf record` of the server during one phase, when BENCH_PERF is set; or, under
/// BENCH_CALLGRIND, the phase's instructions counted by callgrind.
pub struct Perf {
    record: Option<std::process::Child>,
    counted: Option<(String, String)>,
}

impl Perf {
    pub fn start(p: &Proc, what: &str) -> Perf {
        if callgrind() {
            callgrind_control(&["-z"], &p.pid);
            callgrind_control(&["-i", "on"], &p.pid);
            return Perf {
                record: None,
                counted: Some((what.to_string(), p.pid.clone())),
            };
        }
        if std::env::var("BENCH_PERF").is_err() {
            return Perf {
                record: None,
                counted: None,
            };
        }
        let out = format!("target/perf-{what}.data");
        let child = std::process::Command::new("perf")
            .args(["record", "-F", "999", "-g", "-o", &out, "-p", &p.pid])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok();
        eprintln!("perf record of {what} into {out}");
        Perf {
            record: child,
            counted: None,
        }
    }

    /// Ends the phase, which made `ops` requests.
    pub fn stop(self, ops: usize) {
        if let Some(mut c) = self.record {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        if let Some((what, pid)) = self.counted {
            callgrind_control(&["-i", "off"], &pid);
            callgrind_control(&["-d", &what], &pid);
            let ir = callgrind_total(&pid, &what);
            eprintln!(
                "callgrind: {what}: {ir} instructions over {ops} requests, {:.0} thousand per request",
                ir as f64 / ops.max(1) as f64 / 1e3
            );
        }
    }
}

fn callgrind_control(args: &[&str], pid: &str) {
    let _ = std::process::Command::new("callgrind_control")
        .args(args)
        .arg(pid)
        .stdout(std::process::Stdio::null())
        .status();
}

/// The instructions in the dump callgrind wrote for `what` (its `totals:` line).
fn callgrind_total(pid: &str, what: &str) -> u64 {
    let prefix = format!("callgrind-{pid}.out.");
    let mut best: Option<(std::time::SystemTime, String)> = None;
    for e in std::fs::read_dir("target").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let modified = e.metadata().and_then(|m| m.modified()).ok();
        if let (true, Some(m)) = (name.starts_with(&prefix), modified) {
            if best.as_ref().is_none_or(|(t, _)| m > *t) {
                best = Some((m, name));
            }
        }
    }
    let Some((_, name)) = best else { return 0 };
    let text = std::fs::read_to_string(format!("target/{name}")).unwrap_or_default();
    if !text.contains(what) {
        eprintln!("callgrind: the newest dump, {name}, is not {what}'s");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

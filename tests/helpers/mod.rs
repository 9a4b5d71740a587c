//! `spawn_app()`: the real server on port 0, with its own SQLite file or its own PostgreSQL
//! database (when `TEST_DATABASE_URL` is set) and its own Redis key prefix (when
//! `TEST_REDIS_URL` is set). Tests share nothing and run in parallel.

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use uuid::Uuid;
use yunlian_api::config::Config;
use yunlian_api::startup::Application;

pub const ADMIN_PHONE: &str = "13800000000";
pub const ADMIN_PASSWORD: &str = "admin2026pass";
/// The bucket `tests/s3/start.sh` creates.
pub const S3_BUCKET: &str = "yunlian-test";

pub use crate::rosters::roster_csv;

mod phones;
mod world;
pub use phones::*;
pub use world::*;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub database_url: String,
    /// The server's Redis URL and key prefix, when the suite runs with Redis.
    pub redis: Option<(String, String)>,
    /// Stops the server as SIGTERM would (`None`: a server in another process).
    pub server: Option<actix_web::dev::ServerHandle>,
}

/// Which storage the suite runs on.
pub fn engine() -> &'static str {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(u) if u.starts_with("postgres") => "postgres",
        _ => "sqlite",
    }
}

/// A fresh, empty database: a new PostgreSQL database, or a new SQLite file.
pub async fn fresh_database(data_dir: &std::path::Path) -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) if base.starts_with("postgres") => {
            let name = format!("yl_test_{}", Uuid::now_v7().simple());
            let mut admin = AsyncPgConnection::establish(&base)
                .await
                .expect("TEST_DATABASE_URL reachable");
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create database");
            let (head, _) = base.rsplit_once('/').expect("database url has a path");
            format!("{head}/{name}")
        }
        _ => format!("sqlite://{}", data_dir.join("yunlian.db").display()),
    }
}

/// The seed of a randomised test: `$var` when set, else a fresh one. Printed, so a failure can
/// be rerun with the same seed.
pub fn seed(var: &str, test: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("{test}: seed {seed} (rerun with {var}={seed})");
    seed
}

/// Rounds of a race: more on PostgreSQL, where the races are real, than on SQLite, whose single
/// writer orders them.
pub fn race_rounds(postgres: usize, sqlite: usize) -> usize {
    if engine() == "postgres" {
        postgres
    } else {
        sqlite
    }
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("yunlian-test-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(HashMap::new()).await
}

/// Starts a server; `extra` overrides configuration variables.
pub async fn spawn_app_with(extra: HashMap<&str, String>) -> TestApp {
    spawn_app_on(extra, std::sync::Arc::new(yunlian_infra::SystemClock)).await
}

/// Starts a server whose time comes from `clock` (a test walks it by hand).
pub async fn spawn_app_on(
    extra: HashMap<&str, String>,
    clock: std::sync::Arc<dyn yunlian_domain::ports::Clock>,
) -> TestApp {
    yunlian_api::telemetry::init_for_tests();
    let data_dir = temp_dir();
    let database_url = fresh_database(&data_dir).await;
    let mut vars: HashMap<String, String> = HashMap::from([
        ("YUNLIAN_BIND".into(), "127.0.0.1:0".into()),
        ("YUNLIAN_DATA_DIR".into(), data_dir.display().to_string()),
        ("DATABASE_URL".into(), database_url.clone()),
        ("YUNLIAN_DB_POOL_SIZE".into(), "4".into()),
        ("YUNLIAN_WORKERS".into(), "2".into()),
        ("YUNLIAN_ADMIN_PHONE".into(), ADMIN_PHONE.into()),
        ("YUNLIAN_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
        ("YUNLIAN_ROOT_ORG_NAME".into(), "中共广德市委员会".into()),
    ]);
    let redis = std::env::var("TEST_REDIS_URL")
        .ok()
        .map(|url| (url, format!("yltest:{}:", Uuid::now_v7().simple())));
    if let Some((url, prefix)) = &redis {
        vars.insert("REDIS_URL".into(), url.clone());
        vars.insert("YUNLIAN_REDIS_PREFIX".into(), prefix.clone());
    }
    // Images through the S3 path when the suite has an S3-compatible store (`.ci/run` starts
    // one); credentials come from the standard AWS_* variables.
    if let Ok(endpoint) = std::env::var("TEST_S3_ENDPOINT") {
        vars.insert("YUNLIAN_OBJECT_STORE".into(), format!("s3://{S3_BUCKET}"));
        vars.insert("YUNLIAN_S3_ENDPOINT".into(), endpoint);
    }
    for (k, v) in extra {
        vars.insert(k.to_string(), v);
    }
    // The database the server really uses (a test may have named its own).
    let database_url = vars.get("DATABASE_URL").cloned().unwrap_or(database_url);
    let config = Config::from_map(vars).expect("config");
    let app = Application::build_with_clock(config, clock)
        .await
        .expect("server starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        client: reqwest::Client::new(),
        database_url,
        redis,
        server: Some(server),
    }
}

impl TestApp {
    /// Another handle on the same server (for a task of the test).
    pub fn clone_handle(&self) -> TestApp {
        TestApp {
            base: self.base.clone(),
            client: self.client.clone(),
            database_url: self.database_url.clone(),
            redis: self.redis.clone(),
            server: self.server.clone(),
        }
    }

    /// Stops the server gracefully and waits until it has let go of its data directory.
    pub async fn stop(&self) {
        if let Some(h) = &self.server {
            h.stop(true).await;
        }
        // run_until_stopped then stops the jobs and drops the application (and its lock).
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    /// Waits until the relay has published every committed outbox event, then returns them
    /// as the bus carried them: read back from the Redis stream `{prefix}events` when the
    /// suite runs with Redis, else (the in-process bus) as the outbox holds them.
    pub async fn published_events(&self) -> Vec<yunlian_domain::ports::OutboxEvent> {
        use yunlian_infra::db::{self, ScopedFutureExt};
        let store = yunlian_infra::Db::connect(&self.database_url, 1)
            .await
            .expect("the server's database");
        let mut left = usize::MAX;
        for _ in 0..100 {
            // Counted without locks: a relay mid-round holds the rows it is publishing.
            left = store
                .read(|mut c| async move { db::outbox::waiting(&mut c).await }.scope_boxed())
                .await
                .expect("outbox") as usize;
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(left, 0, "the relay publishes every committed event");
        let Some((url, prefix)) = &self.redis else {
            return store
                .read(|mut c| async move { db::outbox::all(&mut c).await }.scope_boxed())
                .await
                .expect("outbox");
        };
        let mut conn = redis::Client::open(url.as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(format!("{prefix}events"))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .expect("xrange");
        entries
            .into_iter()
            .map(|(_, fields)| {
                let f: HashMap<String, String> = fields.into_iter().collect();
                yunlian_domain::ports::OutboxEvent {
                    id: f["id"].parse().expect("id"),
                    topic: f["topic"].clone(),
                    subject: f["subject"].clone(),
                    payload: serde_json::from_str(&f["payload"]).expect("payload"),
                    created_at: f["created_at"].parse().expect("created_at"),
                }
            })
            .collect()
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "get",
        Method::POST => "post",
        Method::PATCH => "patch",
        Method::PUT => "put",
        Method::DELETE => "delete",
        _ => "other",
    }
}

/// A response as a test reads it: the status and the JSON body (Null when empty).
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Res {
    /// The problem `code` of an error response.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .expect("body has an id")
            .to_string()
    }
}

impl TestApp {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = Self::read(req.send().await.expect("request sent")).await;
        crate::contract_check::check(method_name(&method), path, &res);
        res
    }

    pub async fn read(res: reqwest::Response) -> Res {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Res {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Res {
        self.send(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Res {
        self.send(Method::POST, path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Res {
        self.send(Method::PATCH, path, Some(token), Some(body))
            .await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Res {
        self.send(Method::DELETE, path, Some(token), None).await
    }

    pub async fn login_res(&self, phone: &str, password: &str) -> Res {
        self.send(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"phone": phone, "password": password})),
        )
        .await
    }

    /// Logs in and returns (access token, refresh token).
    pub async fn login(&self, phone: &str, password: &str) -> (String, String) {
        let r = self.login_res(phone, password).await;
        assert_eq!(r.status, StatusCode::OK, "login {phone}: {:?}", r.body);
        (
            r.body["access_token"]
                .as_str()
                .expect("access token")
                .to_string(),
            r.body["refresh_token"]
                .as_str()
                .expect("refresh token")
                .to_string(),
        )
    }

    pub async fn admin(&self) -> String {
        self.login(ADMIN_PHONE, ADMIN_PASSWORD).await.0
    }

    /// The root org (made on first start), as the administrator sees it.
    pub async fn root_id(&self, admin: &str) -> String {
        let r = self.get("/v1/orgs?kind=committee", admin).await;
        r.body["items"]
            .as_array()
            .and_then(|a| a.iter().find(|o| o["parent_id"].is_null()))
            .and_then(|o| o["id"].as_str())
            .expect("root org")
            .to_string()
    }

    pub async fn create_org(&self, token: &str, parent: &str, kind: &str, name: &str) -> String {
        let r = self
            .post(
                "/v1/orgs",
                token,
                json!({"parent_id": parent, "kind": kind, "name": name}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "create org {name}: {:?}",
            r.body
        );
        r.id()
    }

    /// Creates a member who can log in at once.
    pub async fn create_member(
        &self,
        token: &str,
        org: &str,
        name: &str,
        phone: &str,
        password: &str,
    ) -> String {
        let r = self
            .post(
                "/v1/members",
                token,
                json!({"org_id": org, "name": name, "phone": phone, "status": "full", "password": password}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "create member {name}: {:?}",
            r.body
        );
        r.id()
    }

    /// Plans a one-hour themed party day (主题党日) of `org` starting at `starts`; returns its id.
    pub async fn plan_party_day(
        &self,
        token: &str,
        org: &str,
        starts: chrono::DateTime<chrono::Utc>,
    ) -> String {
        let r = self
            .post(
                "/v1/meetings",
                token,
                json!({"org_id": org, "meeting_type": "themed_party_day", "title": "主题党日",
                       "starts_at": starts, "ends_at": starts + chrono::TimeDelta::hours(1)}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "plan a meeting: {:?}",
            r.body
        );
        r.id()
    }

    /// Grants `role` on `org` to `member`; the grant's id.
    pub async fn grant(&self, token: &str, member: &str, org: &str, role: &str) -> String {
        let r = self
            .post(
                "/v1/roles",
                token,
                json!({"member_id": member, "org_id": org, "role": role}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "grant {role}: {:?}", r.body);
        r.id()
    }

    /// Posts a CSV roster to an org's import endpoint.
    pub async fn import(&self, token: &str, org: &str, csv: &str, dry_run: bool) -> Res {
        let res = self
            .client
            .post(format!(
                "{}/v1/orgs/{org}/members/import?dry_run={dry_run}",
                self.base
            ))
            .bearer_auth(token)
            .header("content-type", "text/csv; charset=utf-8")
            .body(csv.to_string())
            .send()
            .await
            .expect("import sent");
        let res = Self::read(res).await;
        crate::contract_check::check("post", &format!("/v1/orgs/{org}/members/import"), &res);
        res
    }

    /// Every item of a paginated list, following cursors.
    pub async fn list_all(&self, path: &str, token: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=20&cursor={c}"),
                None => format!("{path}{sep}limit=20"),
            };
            let r = self.get(&url, token).await;
            assert_eq!(r.status, StatusCode::OK, "list {url}: {:?}", r.body);
            items.extend(r.body["items"].as_array().expect("items").iter().cloned());
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
    }
}

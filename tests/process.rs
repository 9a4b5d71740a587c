//! The server as its own process, as an operator runs it (issue 14): the command line and its
//! refusals, a backup taken during writes and restored (the phones reset), SIGTERM during a
//! push, metrics scraped after a scenario, JSON log lines, and /docs in headless Chromium.
//! On the suite's engine: SQLite files, or PostgreSQL (pg_dump/pg_restore) with Redis.

use crate::helpers::{fresh_database, temp_dir, Phone, TestApp, ADMIN_PASSWORD, ADMIN_PHONE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const METRICS_TOKEN: &str = "scrape-token-of-the-county-2026";

/// The server binary, built by `cargo test` itself (the root package's `yunlian-server-e2e`,
/// the same main.rs as `yunlian`).
fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_yunlian-server-e2e"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What a server process is started with: its data directory and database, and the settings
/// every process test shares.
#[derive(Clone)]
struct Env {
    vars: Vec<(String, String)>,
    data_dir: PathBuf,
    database_url: String,
}

impl Env {
    async fn new() -> Env {
        let data_dir = temp_dir();
        let database_url = fresh_database(&data_dir).await;
        let mut vars: Vec<(String, String)> = [
            ("YUNLIAN_DATA_DIR", data_dir.display().to_string()),
            ("DATABASE_URL", database_url.clone()),
            ("YUNLIAN_ADMIN_PHONE", ADMIN_PHONE.into()),
            ("YUNLIAN_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
            ("YUNLIAN_ROOT_ORG_NAME", "中共广德市委员会".into()),
            ("YUNLIAN_DB_POOL_SIZE", "4".into()),
            ("YUNLIAN_WORKERS", "2".into()),
            ("YUNLIAN_LOG_FORMAT", "json".into()),
            ("YUNLIAN_METRICS_TOKEN", METRICS_TOKEN.into()),
            ("YUNLIAN_OUTBOX_RELAY_MS", "200".into()),
            ("RUST_LOG", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Ok(url) = std::env::var("TEST_REDIS_URL") {
            vars.push(("REDIS_URL".into(), url));
            vars.push((
                "YUNLIAN_REDIS_PREFIX".into(),
                format!("yltest:{}:", uuid::Uuid::now_v7().simple()),
            ));
        }
        Env {
            vars,
            data_dir,
            database_url,
        }
    }

    fn with(&self, key: &str, value: &str) -> Env {
        let mut e = self.clone();
        e.vars.retain(|(k, _)| k != key);
        e.vars.push((key.into(), value.into()));
        e
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(binary());
        c.args(args).env_clear();
        for k in ["PATH", "HOME", "TMPDIR"] {
            if let Ok(v) = std::env::var(k) {
                c.env(k, v);
            }
        }
        c.envs(self.vars.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs a command to its end (with `stdin` written to it).
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn yunlian");
        if let Some(s) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(s.as_bytes())
                .expect("write stdin");
        } else {
            drop(child.stdin.take());
        }
        child.wait_with_output().expect("yunlian ran")
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A server process; its log (stdout and stderr, not a terminal) in a file.
struct Server {
    child: Child,
    app: TestApp,
    log: PathBuf,
}

impl Server {
    async fn start(env: &Env) -> Server {
        let port = free_port();
        let log = env.data_dir.with_extension(format!("{port}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = env
            .with("YUNLIAN_BIND", &format!("127.0.0.1:{port}"))
            .command(&["serve"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn the server");
        let mut s = Server {
            child,
            app: TestApp {
                base: format!("http://127.0.0.1:{port}"),
                client: reqwest::Client::new(),
                database_url: env.database_url.clone(),
                redis: None,
                server: None,
            },
            log,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("the server exited ({status}): {}", s.log_text());
            }
            if let Ok(r) = s
                .app
                .client
                .get(format!("{}/healthz", s.app.base))
                .send()
                .await
            {
                if r.status().is_success() {
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not start: {}", s.log_text());
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM");
    }

    /// Waits for the process to end after a signal; its exit status.
    async fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                started.elapsed() < within,
                "the server did not stop within {within:?}: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(mut self) {
        self.sigterm();
        let status = self.wait(Duration::from_secs(40)).await;
        assert!(status.success(), "{status}: {}", self.log_text());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn member_ids(app: &TestApp, admin: &str, branch: &str) -> BTreeSet<String> {
    app.list_all(&format!("/v1/members?org_id={branch}"), admin)
        .await
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn the_operator_commands_do_their_work_and_refuse_bad_input_overwriting_nothing() {
    let env = Env::new().await;
    let sqlite = !env.database_url.starts_with("postgres");

    let bad = env
        .with("YUNLIAN_LOG_FORMAT", "xml")
        .run(&["check-config"], None);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("YUNLIAN_LOG_FORMAT"), "{}", text(&bad));
    let ok = env.run(&["check-config"], None);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains("configuration ok"));
    assert!(
        !text(&ok).contains(ADMIN_PASSWORD),
        "check-config printed a secret"
    );
    let ok = env.run(&["migrate"], None);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));

    // create-admin reads the password from standard input, refuses a weak one.
    let weak = env.run(
        &["create-admin", "--phone", "13811112222"],
        Some("weakpw\n"),
    );
    assert_eq!(weak.status.code(), Some(2), "{}", text(&weak));
    assert!(text(&weak).contains("password_too_weak"), "{}", text(&weak));
    let made = env.run(
        &[
            "create-admin",
            "--phone",
            "13811112222",
            "--name",
            "县级运维",
        ],
        Some("county2026ops\n"),
    );
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    assert!(!text(&made).contains("13811112222"), "the phone is masked");
    let again = env.run(
        &["create-admin", "--phone", "13811112222"],
        Some("county2026ops\n"),
    );
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("phone_taken"), "{}", text(&again));

    let server = Server::start(&env).await;
    let app = &server.app;
    let (ops, _) = app.login("13811112222", "county2026ops").await;
    let r = app
        .get("/v1/audit-events?operation=cli:create-admin", &ops)
        .await;
    let made: Vec<&Value> = r.body["items"].as_array().expect("items").iter().collect();
    assert!(!made.is_empty(), "{:?}", r.body);
    assert!(made.iter().all(|e| e["actor_id"].is_null()));

    if sqlite {
        // One server per data directory: a second refuses, naming the first; so does a
        // restore under it.
        let second = env
            .with("YUNLIAN_BIND", &format!("127.0.0.1:{}", free_port()))
            .run(&["serve"], None);
        assert!(!second.status.success());
        assert!(
            text(&second).contains(&format!("pid {}", server.pid())),
            "{}",
            text(&second)
        );
    }

    // Backups never overwrite and say where they cannot write.
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let taken = dir.join("taken.bak");
    std::fs::write(&taken, "keep me").expect("file");
    let r = env.run(&["backup", taken.to_str().expect("path")], None);
    assert_eq!(r.status.code(), Some(2), "{}", text(&r));
    assert!(text(&r).contains("already exists"), "{}", text(&r));
    assert_eq!(std::fs::read_to_string(&taken).expect("kept"), "keep me");
    let r = env.run(&["backup", "/nonexistent-yunlian-dir/x.bak"], None);
    assert_eq!(r.status.code(), Some(2), "{}", text(&r));
    assert!(text(&r).contains("cannot write"), "{}", text(&r));
    let good = dir.join("good.bak");
    let r = env.run(&["backup", good.to_str().expect("path")], None);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));

    if sqlite {
        let r = env.run(&["restore", good.to_str().expect("path")], None);
        assert_eq!(r.status.code(), Some(2), "{}", text(&r));
        assert!(
            text(&r).contains(&format!("pid {}", server.pid())),
            "{}",
            text(&r)
        );
    }
    server.stop().await;

    // Not a Yunlian database; a newer schema: refused, the database left as it was.
    let r = env.run(&["restore", taken.to_str().expect("path")], None);
    assert_eq!(r.status.code(), Some(2), "{}", text(&r));
    assert!(text(&r).contains("not a Yunlian database"), "{}", text(&r));
    if sqlite {
        use diesel::{Connection, RunQueryDsl, SqliteConnection};
        let newer = dir.join("newer.bak");
        std::fs::copy(&good, &newer).expect("copy");
        let mut c = SqliteConnection::establish(newer.to_str().expect("path")).expect("open");
        diesel::sql_query(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('99991231000000')",
        )
        .execute(&mut c)
        .expect("a newer migration");
        let r = env.run(&["restore", newer.to_str().expect("path")], None);
        assert_eq!(r.status.code(), Some(2), "{}", text(&r));
        assert!(text(&r).contains("newer Yunlian"), "{}", text(&r));
    }
    // After a recovery made by other means, a new epoch by hand.
    let r = env.run(&["new-epoch"], None);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    assert!(text(&r).contains("new sync epoch"), "{}", text(&r));
    let server = Server::start(&env).await;
    let (t, _) = server.app.login("13811112222", "county2026ops").await;
    assert_eq!(server.app.get("/v1/me", &t).await.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_backup_taken_during_writes_restores_what_was_committed_and_phones_reset() {
    let env = Env::new().await;
    let server = Server::start(&env).await;
    let app = server.app.clone_handle();
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let branch = app
        .create_org(&admin, &root, "branch", "备份村党支部")
        .await;

    // A writer adds members one by one; the backup starts after its first five and the writer
    // goes on until five more are acknowledged after the backup is done, however fast either is.
    let backup_over = std::sync::Arc::new(std::sync::OnceLock::<Instant>::new());
    let (five_in, five_acked) = tokio::sync::oneshot::channel::<()>();
    let writer = {
        let (app, admin, branch) = (app.clone_handle(), admin.clone(), branch.clone());
        let over = backup_over.clone();
        tokio::spawn(async move {
            // (sent, acknowledged, id) of each member written.
            let mut acked: Vec<(Instant, Instant, String)> = Vec::new();
            let mut five_in = Some(five_in);
            let mut after = 0;
            for i in 0..5_000u64 {
                let sent = Instant::now();
                let r = app
                    .post(
                        "/v1/members",
                        &admin,
                        json!({"org_id": branch, "name": format!("党员{i}"),
                               "phone": format!("{}", 13500000000u64 + i), "status": "full"}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
                acked.push((sent, Instant::now(), r.id()));
                if acked.len() == 5 {
                    let _ = five_in.take().expect("sent once").send(());
                }
                if over.get().is_some_and(|done| sent > *done) {
                    after += 1;
                    if after == 5 {
                        break;
                    }
                }
            }
            acked
        })
    };
    five_acked.await.expect("five members written");
    let file = temp_dir().with_extension("bak");
    let backup_started = Instant::now();
    let (env2, f2) = (env.clone(), file.clone());
    let out = tokio::task::spawn_blocking(move || {
        env2.run(&["backup", f2.to_str().expect("path")], None)
    })
    .await
    .expect("backup");
    let backup_done = Instant::now();
    backup_over.set(backup_done).expect("set once");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let acked = writer.await.expect("writer");
    // Acknowledged before the backup began: committed before it. Sent after it was done:
    // committed after it.
    let before: BTreeSet<String> = acked
        .iter()
        .filter(|(_, acked, _)| *acked < backup_started)
        .map(|(_, _, id)| id.clone())
        .collect();
    let after: BTreeSet<String> = acked
        .iter()
        .filter(|(sent, _, _)| *sent > backup_done)
        .map(|(_, _, id)| id.clone())
        .collect();
    assert!(
        !before.is_empty() && !after.is_empty(),
        "the backup ran during the writes"
    );

    // A phone (the admin's) is up to date: its cursors are ahead of the backup.
    let mut phone = Phone::new(admin.clone());
    phone.pull_all(&app, 500).await;
    let on_phone = |p: &Phone| -> BTreeSet<String> {
        p.rows
            .values()
            .flat_map(|rows| rows.keys())
            .filter_map(|k| k.strip_prefix("member/").map(str::to_string))
            .filter(|id| acked.iter().any(|(_, _, a)| a == id))
            .collect()
    };
    assert_eq!(on_phone(&phone).len(), acked.len());
    server.stop().await;

    let r = env.run(&["restore", file.to_str().expect("path")], None);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    assert!(text(&r).contains("new sync epoch"), "{}", text(&r));

    let server = Server::start(&env).await;
    let app = &server.app;
    let (admin, _) = app.login(ADMIN_PHONE, ADMIN_PASSWORD).await;
    let restored = member_ids(app, &admin, &branch).await;
    assert!(
        before.is_subset(&restored),
        "a member committed before the backup is missing"
    );
    assert!(
        restored.is_disjoint(&after),
        "a member committed after the backup came back"
    );
    // The phone's cursors are of the old epoch: every scope resets, and it ends equal to the
    // server instead of silently keeping what was lost.
    phone.token = admin.clone();
    let r = phone.pull_page(app, 500).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let ops: BTreeSet<&str> = r.body["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .filter_map(|s| s["op"].as_str())
        .collect();
    assert!(ops.contains("reset"), "{ops:?}");
    assert!(!ops.contains("changes"), "{ops:?}");
    phone.pull_all(app, 500).await;
    assert_eq!(on_phone(&phone), restored);
    // Writes go on in the new epoch.
    let r = app
        .post(
            "/v1/members",
            &admin,
            json!({"org_id": branch, "name": "新党员", "phone": "13599999999", "status": "full"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    server.stop().await;
}

#[tokio::test]
async fn sigterm_during_a_push_of_fifty_mutations_loses_nothing_and_doubles_nothing() {
    let env = Env::new().await.with("YUNLIAN_SHUTDOWN_GRACE_SECS", "10");
    let server = Server::start(&env).await;
    let app = server.app.clone_handle();
    let admin = app.admin().await;
    let (branch, sec, members) =
        crate::helpers::branch_with_members(&app, &admin, "停机村党支部", 13994000000, 1).await;
    let until = chrono::Utc::now() + chrono::TimeDelta::days(3);
    let r = app
        .post(
            "/v1/posts",
            &sec,
            json!({"org_id": branch, "title": "停机测试", "body": "请留言", "feedback_until": until}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let post = r.id();
    let mut phone = Phone::new(members[0].1.clone());
    for i in 0..50 {
        let id = phone.next_id;
        phone.next_id += 1;
        phone
            .queue
            .push(json!({"id": id, "name": "moments.comment.v1",
            "args": {"post_id": post, "body": format!("第{i}条意见"), "category": "other"}}));
    }
    let body = phone.push_body(0, 50);
    let push = {
        let (app, token, body) = (app.clone_handle(), phone.token.clone(), body.clone());
        tokio::spawn(async move {
            let sent = app
                .client
                .post(format!("{}/v1/sync/push", app.base))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(r) => {
                    let status = r.status();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    Ok((status, body))
                }
                Err(e) => Err(e),
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(40)).await;
    let mut server = server;
    server.sigterm();
    let answered = push.await.expect("push task");
    let status = server.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}: {}", server.log_text());
    let log = server.log_text();
    assert!(
        log.contains("stopping the jobs") && log.contains("\"stopped\""),
        "{log}"
    );
    // Either acknowledged whole (all fifty outcomes) or not answered, and then retried.
    match &answered {
        Ok((s, b)) => {
            eprintln!("the push in flight at SIGTERM: {s}");
            assert_eq!(*s, StatusCode::OK, "{b:?}");
            assert_eq!(b["results"].as_array().map(Vec::len), Some(50), "{b:?}");
        }
        Err(e) => eprintln!("the push in flight at SIGTERM was cut: {e}"),
    }
    drop(server);

    // The phone does not know what landed: it pushes the same batch again.
    let server = Server::start(&env).await;
    let app = &server.app;
    let (token, _) = app
        .login(&format!("{}", 13994000000u64 + 1), "dangyuan2026")
        .await;
    phone.token = token;
    let r = phone.push(app, body).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["last_mutation_id"], 50);
    let results = r.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 50);
    assert!(
        results.iter().all(|m| m["status"] == "applied"),
        "{results:?}"
    );
    let (sec, _) = app
        .login(&format!("{}", 13994000000u64), "dangyuan2026")
        .await;
    let comments = app
        .list_all(&format!("/v1/posts/{post}/comments"), &sec)
        .await;
    assert_eq!(comments.len(), 50, "each mutation applied exactly once");
    let bodies: BTreeSet<&str> = comments.iter().filter_map(|c| c["body"].as_str()).collect();
    assert_eq!(bodies.len(), 50);
    server.stop().await;
}

/// The value of the sample `name{labels}` in a Prometheus text page.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_what_a_scenario_did_and_every_log_line_is_json_with_its_request_id() {
    let env = Env::new().await;
    let server = Server::start(&env).await;
    let app = &server.app;
    let scrape = |token: Option<&'static str>| {
        let client = app.client.clone();
        let url = format!("{}/metrics", app.base);
        async move {
            let mut req = client.get(url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.expect("scrape");
            (r.status(), r.text().await.expect("body"))
        }
    };
    assert_eq!(scrape(None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        scrape(Some("not-the-county-token")).await.0,
        StatusCode::UNAUTHORIZED
    );

    let admin = app.admin().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = app.get("/v1/me", &admin).await;
        assert_eq!(r.status, StatusCode::OK);
        ids.push(r.headers["x-request-id"].to_str().expect("id").to_string());
    }
    assert_eq!(
        app.login_res(ADMIN_PHONE, "wrong-password-1").await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut phone = Phone::new(admin.clone());
    phone.whereabouts(Some("苏州"));
    phone.whereabouts(None);
    let r = phone.push(app, phone.push_body(0, 2)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = phone.push(app, phone.push_body(0, 2)).await;
    assert_eq!(r.status, StatusCode::OK, "a retried push");
    phone.pull_all(app, 100).await;
    // The relay and the other jobs run on their own.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (status, page) = scrape(Some(METRICS_TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let get = |name: &str, labels: &[(&str, &str)]| {
        sample(&page, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} not in\n{page}"))
    };
    let me = [("operation", "getMe"), ("status", "2xx")];
    assert_eq!(get("yunlian_http_requests_total", &me), 3.0);
    assert_eq!(
        get(
            "yunlian_http_requests_total",
            &[("operation", "login"), ("status", "4xx")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "yunlian_http_requests_total",
            &[("operation", "login"), ("status", "2xx")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "yunlian_http_request_duration_seconds_count",
            &[("operation", "getMe")]
        ),
        3.0
    );
    assert!(page.contains(
        "yunlian_http_request_duration_seconds_bucket{operation=\"getMe\",le=\"0.005\"}"
    ));
    assert_eq!(get("yunlian_sync_pushes_total", &[]), 2.0);
    assert_eq!(
        get("yunlian_sync_mutations_total", &[("outcome", "applied")]),
        2.0
    );
    assert_eq!(
        get("yunlian_sync_mutations_total", &[("outcome", "duplicate")]),
        2.0
    );
    assert!(get("yunlian_sync_rows_pulled_total", &[]) >= 2.0);
    assert!(
        get(
            "yunlian_job_runs_total",
            &[("job", "outbox_relay"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert_eq!(get("yunlian_db_pool_connections", &[("state", "max")]), 4.0);
    assert!(get("yunlian_outbox_backlog", &[]) >= 0.0);
    assert!(get("yunlian_outbox_lag_seconds", &[]) >= 0.0);
    assert!(get("yunlian_disk_free_bytes", &[]) > 0.0);
    assert_eq!(get("yunlian_sse_connections", &[]), 0.0);
    if crate::helpers::engine() == "sqlite" {
        // The checkpoint thread reports what it left in the log.
        assert!(get("yunlian_sqlite_wal_frames_pending", &[]) >= 0.0);
    }
    let log_file = server.log.clone();
    server.stop().await;

    // The log: JSON lines, no colour escapes, the request id on each line of a request, the
    // phone number never whole.
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    assert!(!log.is_empty());
    assert!(!log.contains('\u{1b}'), "colour escapes in a log file");
    assert!(!log.contains(ADMIN_PHONE), "a phone number in the log");
    let mut done = BTreeSet::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let rid = v["span"]["request_id"].as_str();
        if v["fields"]["message"] == "request done" {
            let rid = rid.unwrap_or_else(|| panic!("no request id: {line}"));
            done.insert(rid.to_string());
        }
    }
    for id in &ids {
        assert!(done.contains(id), "no log line for request {id}");
    }
}

#[tokio::test]
async fn headless_chromium_renders_the_docs_page_with_the_operations_listed() {
    let Some(browser) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs chromium (.ci/run); it is missing"
        );
        eprintln!("skipped: no chromium here (apt-get install chromium)");
        return;
    };
    let app = crate::helpers::spawn_app().await;
    let r = app
        .client
        .get(format!("{}/openapi.yaml", app.base))
        .send()
        .await
        .expect("yaml");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .text()
        .await
        .expect("text")
        .contains("operationId: listAuditEvents"));
    let profile = temp_dir();
    let url = format!("{}/docs", app.base);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--virtual-time-budget=15000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .output()
    })
    .await
    .expect("chromium ran")
    .expect("chromium started");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("opblock"),
        "Swagger UI did not render: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        &dom[..dom.len().min(2000)]
    );
    for op in ["listAuditEvents", "exportMyData", "syncPush", "clockIn"] {
        assert!(dom.contains(op), "{op} not listed on /docs");
    }
    assert!(dom.contains("云联") || dom.contains("Yunlian"), "the title");
}

//! Running it as a county would (issue 14), in process on both engines: the audit log of a
//! scenario's writes, a member's own data export, clock-in coordinates coarsened after the
//! township's period, one server per embedded data directory, and a full disk.

use crate::helpers::{
    branch_with_members, code_at, spawn_app, spawn_app_on, spawn_app_with, KeyPhone, Phone, TestApp,
};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use yunlian_domain::ports::FixedClock;

/// Every audit entry the admin can page through with `query` (limit `limit` a page).
async fn audit_pages(app: &TestApp, token: &str, query: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/v1/audit-events?limit={limit}{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = app.get(&path, token).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        out.extend(r.body["items"].as_array().expect("items").iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("audit pages never ended");
}

fn change<'a>(entry: &'a Value, field: &str) -> &'a Value {
    entry["changes"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["field"] == field))
        .unwrap_or_else(|| panic!("no change of {field} in {entry}"))
}

#[tokio::test]
async fn a_scenarios_writes_are_in_the_audit_log_with_their_actor_and_changed_fields() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let me = app.get("/v1/me", &admin).await.body;
    let admin_id = me["id"].as_str().expect("id").to_string();
    let root = app.root_id(&admin).await;
    let town = app
        .create_org(&admin, &root, "committee", "审计镇党委")
        .await;
    let branch = app
        .create_org(&admin, &town, "branch", "审计村党支部")
        .await;

    let r = app
        .post(
            "/v1/members",
            &admin,
            json!({"org_id": branch, "name": "王审计", "phone": "13700001111",
                   "status": "full", "password": "shenji2026a"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let member = r.id();
    let r = app
        .patch(
            &format!("/v1/members/{member}"),
            &admin,
            json!({"name": "王审核", "phone": "13700002222"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let update_request = r.headers["x-request-id"]
        .to_str()
        .expect("request id")
        .to_string();
    let r = app
        .post(
            &format!("/v1/members/{member}/password"),
            &admin,
            json!({"password": "chongzhi2026b"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let grant = app.grant(&admin, &member, &branch, "secretary").await;
    let r = app
        .send(
            reqwest::Method::PUT,
            &format!("/v1/orgs/{branch}/settings"),
            Some(&admin),
            Some(json!({"overrides": {"coordinates_precise_days": 30}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let csv = crate::helpers::roster_csv(3, 13700010000);
    assert_eq!(
        app.import(&admin, &branch, &csv, false).await.status,
        StatusCode::CREATED
    );
    let r = app
        .client
        .get(format!("{}/v1/orgs/{branch}/members/export", app.base))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status(), StatusCode::OK);
    // The member, now a secretary, reports from the phone where they are (a sync mutation).
    let (member_token, _) = app.login("13700002222", "chongzhi2026b").await;
    let mut phone = Phone::new(member_token.clone());
    phone.whereabouts(Some("杭州"));
    let r = phone.push(&app, phone.push_body(0, 1)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // The whole log, paged two at a time, equals one big page, newest first, no repeats.
    let all = audit_pages(&app, &admin, "", 100).await;
    let paged = audit_pages(&app, &admin, "", 2).await;
    assert_eq!(paged, all);
    let ids: BTreeSet<&str> = all.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), all.len());
    let text = serde_json::to_string(&all).expect("json");
    for secret in ["13700001111", "13700002222", "shenji2026a", "chongzhi2026b"] {
        assert!(!text.contains(secret), "the log holds {secret}");
    }
    let ops: Vec<&str> = all.iter().filter_map(|e| e["operation"].as_str()).collect();
    for op in [
        "createOrg",
        "createMember",
        "updateMember",
        "resetMemberPassword",
        "grantRole",
        "updateOrgSettings",
        "importMembers",
        "exportMembers",
        "syncPush",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }

    // The edit: by the admin, in the request that made it, name and phone before → after.
    let edits = audit_pages(&app, &admin, "&operation=updateMember", 10).await;
    assert_eq!(edits.len(), 1, "{edits:?}");
    let e = &edits[0];
    assert_eq!(e["actor_id"], admin_id.as_str());
    assert_eq!(e["subject_kind"], "member");
    assert_eq!(e["subject_id"], member.as_str());
    assert_eq!(e["request_id"], update_request.as_str());
    assert_eq!(change(e, "name")["before"], "王审计");
    assert_eq!(change(e, "name")["after"], "王审核");
    assert_eq!(change(e, "phone")["before"], "137****1111");
    assert_eq!(change(e, "phone")["after"], "137****2222");
    assert_eq!(e["changes"].as_array().map(Vec::len), Some(2), "{e}");

    // Everything about the member: created (with the initial password only as ***), edited,
    // password reset; their own whereabouts from the phone.
    let about = audit_pages(&app, &admin, &format!("&subject_id={member}"), 10).await;
    let about_ops: BTreeSet<&str> = about
        .iter()
        .filter_map(|e| e["operation"].as_str())
        .collect();
    assert_eq!(
        about_ops,
        BTreeSet::from([
            "createMember",
            "updateMember",
            "resetMemberPassword",
            "syncPush"
        ])
    );
    let reset = about
        .iter()
        .find(|e| e["operation"] == "resetMemberPassword")
        .expect("reset");
    assert_eq!(change(reset, "password")["after"], "***");
    let created = about
        .iter()
        .find(|e| e["operation"] == "createMember")
        .expect("created");
    assert_eq!(change(created, "phone")["after"], "137****1111");
    assert_eq!(change(created, "password")["after"], "***");
    let pushed = about
        .iter()
        .find(|e| e["operation"] == "syncPush")
        .expect("pushed");
    assert_eq!(pushed["actor_id"], member.as_str());

    // The import: one roster entry with its count, and one entry per member it made.
    let imports = audit_pages(&app, &admin, "&operation=importMembers", 10).await;
    assert_eq!(imports.len(), 4, "{imports:?}");
    let roster = imports
        .iter()
        .find(|e| e["subject_kind"] == "roster")
        .expect("roster entry");
    assert_eq!(change(roster, "members_created")["after"], 3);
    let exports = audit_pages(&app, &admin, "&operation=exportMembers", 10).await;
    assert_eq!(exports.len(), 1);
    assert_eq!(change(&exports[0], "members_exported")["after"], 4);
    let grants = audit_pages(&app, &admin, &format!("&subject_id={grant}"), 10).await;
    assert_eq!(change(&grants[0], "role")["after"], "secretary");
    let settings = audit_pages(&app, &admin, "&operation=updateOrgSettings", 10).await;
    assert_eq!(
        change(&settings[0], "coordinates_precise_days")["after"],
        30
    );
    let by_member = audit_pages(&app, &admin, &format!("&actor_id={member}"), 10).await;
    assert_eq!(by_member.len(), 1, "{by_member:?}");

    // Bad input, and who may read it.
    let far = Utc::now() - TimeDelta::days(100);
    let r = app
        .get(
            &format!("/v1/audit-events?from={}", far.format("%Y-%m-%dT%H:%M:%SZ")),
            &admin,
        )
        .await;
    assert_eq!(
        (r.status, r.body["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("range_too_long"))
    );
    let r = app
        .get(
            &format!(
                "/v1/audit-events?from={}&to={}",
                Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
                far.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            &admin,
        )
        .await;
    assert_eq!(r.body["errors"][0]["code"], "range_reversed");
    // The secretary of the branch is no township admin.
    let r = app
        .get(&format!("/v1/audit-events?org_id={branch}"), &member_token)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A township admin of another township sees nothing of this one.
    let other = app.create_org(&admin, &root, "committee", "邻镇党委").await;
    let r = app
        .post(
            "/v1/members",
            &admin,
            json!({"org_id": other, "name": "邻镇管理员", "phone": "13700003333",
                   "status": "full", "password": "linzhen2026c"}),
        )
        .await;
    let neighbour = r.id();
    app.grant(&admin, &neighbour, &other, "township_admin")
        .await;
    let (nb, _) = app.login("13700003333", "linzhen2026c").await;
    let r = app
        .get(&format!("/v1/audit-events?org_id={town}"), &nb)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // By default their own subtree: the county admin's making of it, nothing of this one.
    let own = audit_pages(&app, &nb, "", 50).await;
    let own_ops: BTreeSet<&str> = own.iter().filter_map(|e| e["operation"].as_str()).collect();
    assert_eq!(
        own_ops,
        BTreeSet::from(["createOrg", "createMember", "grantRole"])
    );
    assert!(
        own.iter().all(
            |e| e["org_path"].as_str().is_some_and(|p| p.contains(&other)) && !p_contains(e, &town)
        ),
        "{own:?}"
    );
}

fn p_contains(e: &Value, org: &str) -> bool {
    e["org_path"].as_str().is_some_and(|p| p.contains(org))
}

/// A branch on `clock` with a party day that `members[0]` clocked into at the hall.
async fn clocked_in(
    app: &TestApp,
    clock: &FixedClock,
) -> (String, Vec<(String, String)>, KeyPhone, KeyPhone) {
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(app, &admin, "坐标村党支部", 13993000000, 2).await;
    let now: DateTime<Utc> = yunlian_domain::ports::Clock::now(clock);
    let meeting = app
        .plan_party_day(&sec, &branch, now + TimeDelta::minutes(5))
        .await;
    clock.advance(TimeDelta::minutes(6));
    let at = yunlian_domain::ports::Clock::now(clock);
    let a = KeyPhone::register(app, &members[0].1, &members[0].0, 61).await;
    let b = KeyPhone::register(app, &members[1].1, &members[1].0, 62).await;
    let code = code_at(app, &sec, &meeting, at).await;
    let r = app
        .post(
            &format!("/v1/meetings/{meeting}/clock-in"),
            &a.token,
            a.evidence(&meeting, &code, at, Some((30.889123, 119.417456, 12.0))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .post(
            &format!("/v1/meetings/{meeting}/clock-in"),
            &b.token,
            b.evidence(&meeting, &code, at, Some((30.881, 119.411, 20.0))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    (branch, members, a, b)
}

#[tokio::test]
async fn a_member_downloads_their_own_data_and_nobody_elses() {
    let clock = Arc::new(FixedClock::at(Utc::now()));
    let app = spawn_app_on(HashMap::new(), clock.clone()).await;
    let (_, members, a, b) = clocked_in(&app, &clock).await;
    let r = app.get("/v1/me/export", &a.token).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.headers["content-disposition"]
        .to_str()
        .expect("header")
        .starts_with("attachment"));
    let d = &r.body;
    assert_eq!(d["profile"]["id"], members[0].0.as_str());
    assert_eq!(d["clock_ins"].as_array().map(Vec::len), Some(1));
    assert_eq!(d["clock_ins"][0]["member_id"], members[0].0.as_str());
    assert_eq!(d["clock_ins"][0]["location"]["lat"], 30.889123);
    assert_eq!(d["devices"].as_array().map(Vec::len), Some(1));
    assert_eq!(d["devices"][0]["id"], a.device_id.as_str());
    assert!(d["attendance"].is_array() && d["points"].is_array() && d["comments"].is_array());
    let text = d.to_string();
    assert!(
        !text.contains(&members[1].0),
        "another member's id in the export"
    );
    assert!(
        !text.contains(&b.device_id),
        "another member's device in the export"
    );
    assert!(!text.contains("password"), "no hash in the export");
    let r = app
        .send(reqwest::Method::GET, "/v1/me/export", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn clock_in_coordinates_are_coarsened_after_the_townships_period() {
    let clock = Arc::new(FixedClock::at(Utc::now() - TimeDelta::days(120)));
    // Sessions outlive the 91 days the test walks.
    let long = HashMap::from([
        ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", (400 * 86_400).to_string()),
        ("YUNLIAN_REFRESH_TOKEN_TTL_DAYS", "400".to_string()),
    ]);
    let app = spawn_app_on(long, clock.clone()).await;
    let (_, _, a, _) = clocked_in(&app, &clock).await;
    let cx = crate::jobs::job_cx(&app.database_url, clock.clone(), None).await;
    let location = |d: &Value| d["clock_ins"][0]["location"].clone();

    clock.advance(TimeDelta::days(89));
    assert_eq!(crate::warnings::run(&cx, "coordinates").await, 0);
    let d = app.get("/v1/me/export", &a.token).await.body;
    assert_eq!(
        location(&d),
        json!({"lat": 30.889123, "lng": 119.417456, "accuracy_m": 12.0})
    );

    clock.advance(TimeDelta::days(2));
    assert_eq!(crate::warnings::run(&cx, "coordinates").await, 2);
    let d = app.get("/v1/me/export", &a.token).await.body;
    assert_eq!(
        location(&d),
        json!({"lat": 30.89, "lng": 119.42, "accuracy_m": 1000.0})
    );
    // Once is enough: a later round finds nothing precise left.
    assert_eq!(crate::warnings::run(&cx, "coordinates").await, 0);
    // The attendance judged from them stands.
    assert_eq!(d["clock_ins"][0]["punctuality"], "on_time");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    if crate::helpers::engine() != "sqlite" {
        eprintln!("skipped: replicas on PostgreSQL share no data directory lock");
        return;
    }
    let dir = crate::helpers::temp_dir();
    let vars = || {
        HashMap::from([
            ("YUNLIAN_DATA_DIR", dir.display().to_string()),
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.join("yunlian.db").display()),
            ),
        ])
    };
    let first = spawn_app_with(vars()).await;
    let mut cfg: HashMap<String, String> = vars()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    cfg.insert("YUNLIAN_BIND".into(), "127.0.0.1:0".into());
    let config = yunlian_api::config::Config::from_map(cfg).expect("config");
    let err = match yunlian_api::startup::Application::build(config).await {
        Ok(_) => panic!("a second server started on the same data directory"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!("pid {}", std::process::id())) && err.contains("PostgreSQL"),
        "{err}"
    );
    // The first serves on.
    assert_eq!(
        first.get("/v1/me", &first.admin().await).await.status,
        StatusCode::OK
    );
}

/// A small filesystem of its own (tmpfs), unmounted when dropped; `None` where this process
/// may not mount (not root), and the test says it skipped.
struct TinyDisk {
    at: std::path::PathBuf,
}

impl TinyDisk {
    fn mount(mb: u32, owner: Option<&str>) -> Option<TinyDisk> {
        let at = std::env::temp_dir().join(format!("yl-tiny-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&at).ok()?;
        let mut opts = format!("size={mb}m,mode=0700");
        if let Some(user) = owner {
            let id = |flag: &str| {
                std::process::Command::new("id")
                    .args([flag, user])
                    .output()
                    .ok()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            };
            opts.push_str(&format!(",uid={},gid={}", id("-u")?, id("-g")?));
        }
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(TinyDisk { at })
    }

    /// Fills what is left with a file of zeros; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.at.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.at)
            .status();
        let _ = std::fs::remove_dir(&self.at);
    }
}

/// A server whose data lives on `disk`: the SQLite file in it, or (PostgreSQL) a database in a
/// tablespace on it.
async fn app_on_disk(disk: &TinyDisk) -> (TestApp, Option<String>) {
    let mut vars = HashMap::from([
        (
            "YUNLIAN_DATA_DIR",
            disk.at.join("data").display().to_string(),
        ),
        ("YUNLIAN_DISK_LOW_MB", "8".to_string()),
    ]);
    let mut tablespace = None;
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) if base.starts_with("postgres") => {
            use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
            let name = format!("yl_test_{}", uuid::Uuid::now_v7().simple());
            let mut admin = AsyncPgConnection::establish(&base).await.expect("postgres");
            admin
                .batch_execute(&format!(
                    "CREATE TABLESPACE {name} LOCATION '{}'",
                    disk.at.display()
                ))
                .await
                .expect("tablespace");
            admin
                .batch_execute(&format!("CREATE DATABASE {name} TABLESPACE {name}"))
                .await
                .expect("database");
            let (head, _) = base.rsplit_once('/').expect("path");
            vars.insert("DATABASE_URL", format!("{head}/{name}"));
            // The data directory (secret, objects) stays off the tiny disk.
            vars.insert(
                "YUNLIAN_DATA_DIR",
                crate::helpers::temp_dir().display().to_string(),
            );
            tablespace = Some(name);
        }
        _ => {
            vars.insert(
                "DATABASE_URL",
                format!("sqlite://{}", disk.at.join("data/yunlian.db").display()),
            );
        }
    }
    (spawn_app_with(vars).await, tablespace)
}

#[tokio::test]
async fn a_write_on_a_full_disk_answers_storage_full_and_writes_resume_when_space_returns() {
    let postgres = crate::helpers::engine() == "postgres";
    let Some(disk) = TinyDisk::mount(24, postgres.then_some("postgres")) else {
        eprintln!("skipped: this process cannot mount a tmpfs (run as root, as .ci/run does)");
        return;
    };
    let (app, tablespace) = app_on_disk(&disk).await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let branch = app
        .create_org(&admin, &root, "branch", "满盘村党支部")
        .await;
    let create = |i: u64| {
        let (app, admin, branch) = (&app, admin.clone(), branch.clone());
        async move {
            app.post(
                "/v1/members",
                &admin,
                json!({"org_id": branch, "name": format!("党员{i}"),
                       "phone": format!("{}", 13600000000u64 + i), "status": "full"}),
            )
            .await
        }
    };
    let mut acknowledged = 0;
    for i in 0..5 {
        assert_eq!(create(i).await.status, StatusCode::CREATED);
        acknowledged += 1;
    }
    let filler = disk.fill();

    // Writes go on until the last free page is used, then each answers the storage code.
    let mut full = None;
    for i in 5..400 {
        let r = create(i).await;
        match r.status {
            StatusCode::CREATED => acknowledged += 1,
            _ => {
                full = Some(r);
                break;
            }
        }
    }
    let r = full.expect("the disk never filled");
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "storage_full"),
        "{:?}",
        r.body
    );
    assert!(r.headers.contains_key("retry-after"));
    let again = create(1000).await;
    assert_eq!(again.code(), "storage_full");
    let login = app
        .login_res(crate::helpers::ADMIN_PHONE, crate::helpers::ADMIN_PASSWORD)
        .await;
    assert!(
        login.status == StatusCode::OK || login.code() == "storage_full",
        "login on a full disk: {:?}",
        login.body
    );
    // Reads still serve.
    let listed = app
        .list_all(&format!("/v1/members?org_id={branch}"), &admin)
        .await;
    assert_eq!(listed.len(), acknowledged);
    if !postgres {
        // Readiness and the township's admins know (the data directory is the tiny disk).
        let r = app.send(reqwest::Method::GET, "/readyz", None, None).await;
        assert_eq!(r.code(), "storage_full", "{:?}", r.body);
        let clock = Arc::new(FixedClock::at(Utc::now()));
        let mut cx = crate::jobs::job_cx(&app.database_url, clock, None).await;
        cx.data_dir = disk.at.join("data");
        cx.disk_low_bytes = 8 << 20;
        // The warning is one more write: it waits for space like any other.
        std::fs::remove_file(&filler).expect("free the disk");
        // Leave less than the threshold free (but some), so the job warns.
        let _hog = hog(&disk, 4 << 20);
        let raised = crate::warnings::run(&cx, "disk_space").await;
        let w = app
            .get("/v1/warnings?rule=disk_low&open=true", &admin)
            .await;
        assert_eq!(
            w.body["items"].as_array().map(Vec::len),
            Some(1),
            "{raised} {:?}",
            w.body
        );
        assert_eq!(w.body["items"][0]["level"], "red");
        let r = app.send(reqwest::Method::GET, "/readyz", None, None).await;
        assert_eq!(r.body["disk"], "low", "{:?}", r.body);
        drop(_hog);
        std::fs::remove_file(disk.at.join("hog")).expect("free the hog");
        assert_eq!(crate::warnings::run(&cx, "disk_space").await, 1, "resolved");
    } else {
        std::fs::remove_file(&filler).expect("free the disk");
    }

    // Space is back: writes resume, and nothing acknowledged was lost.
    let r = create(2000).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let listed = app
        .list_all(&format!("/v1/members?org_id={branch}"), &admin)
        .await;
    assert_eq!(listed.len(), acknowledged + 1);
    assert_eq!(
        app.login_res(crate::helpers::ADMIN_PHONE, crate::helpers::ADMIN_PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
    if let Some(name) = tablespace {
        use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
        let base = std::env::var("TEST_DATABASE_URL").expect("url");
        let mut pg = AsyncPgConnection::establish(&base).await.expect("postgres");
        let _ = pg
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await;
        let _ = pg.batch_execute(&format!("DROP TABLESPACE {name}")).await;
    }
}

/// A file that takes all but `leave` bytes of the disk.
fn hog(disk: &TinyDisk, leave: u64) -> std::fs::File {
    let free = yunlian_infra::disk::free_bytes(&disk.at).expect("free");
    let f = std::fs::File::create(disk.at.join("hog")).expect("hog");
    use std::io::Write;
    let mut w = std::io::BufWriter::new(&f);
    let chunk = vec![1u8; 64 * 1024];
    let mut left = free.saturating_sub(leave);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        w.write_all(&chunk[..n]).expect("write hog");
        left -= n as u64;
    }
    w.flush().expect("flush");
    drop(w);
    f
}

#[tokio::test]
async fn audit_entries_go_after_the_townships_retention_and_not_before() {
    let clock = Arc::new(FixedClock::at(Utc::now() - TimeDelta::days(1200)));
    let long = HashMap::from([
        ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", (1300 * 86_400).to_string()),
        ("YUNLIAN_REFRESH_TOKEN_TTL_DAYS", "1300".to_string()),
    ]);
    let app = spawn_app_on(long, clock.clone()).await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    app.create_org(&admin, &root, "committee", "旧镇党委").await;
    let cx = crate::jobs::job_cx(&app.database_url, clock.clone(), None).await;
    clock.advance(TimeDelta::days(1094));
    assert_eq!(
        crate::warnings::run(&cx, "audit_retention").await,
        0,
        "kept 1095 days"
    );
    app.create_org(&admin, &root, "committee", "新镇党委").await;
    clock.advance(TimeDelta::days(2));
    assert_eq!(
        crate::warnings::run(&cx, "audit_retention").await,
        1,
        "the old one goes"
    );
    let left = app
        .get("/v1/audit-events?operation=createOrg", &admin)
        .await;
    let names: Vec<&str> = left.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| {
            e["changes"]
                .as_array()?
                .iter()
                .find(|c| c["field"] == "name")?["after"]
                .as_str()
        })
        .collect();
    assert_eq!(names, ["新镇党委"]);
}

#[tokio::test]
async fn a_member_who_leaves_is_deactivated_and_erased_after_the_retention_with_attendance_kept() {
    let clock = Arc::new(FixedClock::at(Utc::now() - TimeDelta::days(400)));
    let long = HashMap::from([
        ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", (500 * 86_400).to_string()),
        ("YUNLIAN_REFRESH_TOKEN_TTL_DAYS", "500".to_string()),
    ]);
    let app = spawn_app_on(long, clock.clone()).await;
    let admin = app.admin().await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "离开村党支部", 13995000000, 2).await;
    let (leaver, token) = members[0].clone();
    let phone_no = app.get(&format!("/v1/members/{leaver}"), &admin).await.body["phone"]
        .as_str()
        .expect("phone")
        .to_string();
    let now = || yunlian_domain::ports::Clock::now(clock.as_ref());
    let first = app
        .plan_party_day(&sec, &branch, now() + TimeDelta::minutes(5))
        .await;
    clock.advance(TimeDelta::minutes(6));
    let device = KeyPhone::register(&app, &token, &leaver, 71).await;
    let code = code_at(&app, &sec, &first, now()).await;
    let r = app
        .post(
            &format!("/v1/meetings/{first}/clock-in"),
            &token,
            device.evidence(&first, &code, now(), None),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // They leave during the meeting.
    let url = format!("/v1/members/{leaver}/deactivate");
    assert_eq!(
        app.post(&url, &admin, json!({})).await.status,
        StatusCode::NO_CONTENT
    );
    let r = app.post(&url, &admin, json!({})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "member_already_left")
    );
    let me = app.get("/v1/me", &admin).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = app
        .post(&format!("/v1/members/{me}/deactivate"), &admin, json!({}))
        .await;
    assert_eq!(r.code(), "cannot_deactivate_self");
    assert_eq!(
        app.get("/v1/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_res(&phone_no, "dangyuan2026").await.code(),
        "invalid_credentials"
    );
    // In the audit log: the member's leaving, and the device it revoked.
    let left = audit_pages(&app, &admin, "&operation=deactivateMember", 10).await;
    let kinds: BTreeSet<(&str, &str)> = left
        .iter()
        .filter_map(|e| Some((e["subject_kind"].as_str()?, e["subject_id"].as_str()?)))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            ("member", leaver.as_str()),
            ("device", device.device_id.as_str())
        ])
    );

    // Counted at the meeting they were at; not expected at one that begins later.
    let later = app
        .plan_party_day(&sec, &branch, now() + TimeDelta::minutes(5))
        .await;
    clock.advance(TimeDelta::hours(2));
    for m in [&first, &later] {
        let r = app
            .post(&format!("/v1/meetings/{m}/close"), &sec, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let at = |m: &str| {
        let (app, sec, m) = (&app, sec.clone(), m.to_string());
        async move {
            crate::helpers::final_statuses(
                &app.get(&format!("/v1/meetings/{m}/attendance"), &sec)
                    .await
                    .body,
            )
        }
    };
    assert_eq!(
        at(&first).await.get(&leaver).map(String::as_str),
        Some("present")
    );
    assert!(!at(&later).await.contains_key(&leaver));

    // A year on (the township's 365 days), the number and the device key are erased.
    let cx = crate::jobs::job_cx(&app.database_url, clock.clone(), None).await;
    clock.advance(TimeDelta::days(364));
    assert_eq!(crate::warnings::run(&cx, "departed").await, 0);
    clock.advance(TimeDelta::days(2));
    assert_eq!(crate::warnings::run(&cx, "departed").await, 1);
    assert_eq!(crate::warnings::run(&cx, "departed").await, 0, "once");
    let m = app.get(&format!("/v1/members/{leaver}"), &admin).await.body;
    assert!(
        m["phone"]
            .as_str()
            .is_some_and(|p| p.starts_with("erased:")),
        "{m}"
    );
    assert!(!m.to_string().contains(&phone_no));
    let store = yunlian_infra::Db::connect(&app.database_url, 1)
        .await
        .expect("db");
    let id: uuid::Uuid = leaver.parse().expect("uuid");
    let devices = store
        .read(move |mut c| {
            use yunlian_infra::db::ScopedFutureExt;
            async move { yunlian_infra::db::devices::of_member(&mut c, id).await }.scope_boxed()
        })
        .await
        .expect("devices");
    assert_eq!(devices.len(), 1);
    assert!(devices[0].public_key.is_empty() && devices[0].revoked_at.is_some());
    // The number is free for someone new; the old attendance still counts.
    let r = app
        .post(
            "/v1/members",
            &admin,
            json!({"org_id": branch, "name": "新来的", "phone": phone_no, "status": "full"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        at(&first).await.get(&leaver).map(String::as_str),
        Some("present")
    );
}

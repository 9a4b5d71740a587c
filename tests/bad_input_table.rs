//! A table of bad inputs over every text field and numeric argument: each gets a 4xx problem
//! with its code, the same on both engines (U+0000 was a 500 on PostgreSQL only), and nothing
//! is written.

use crate::helpers::branch_with_members;
use crate::helpers::KeyPhone;
use crate::helpers::{spawn_app_with, Res, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;

/// What a refusal must look like: its status, its problem code, and (for validation) the
/// field and the field's code.
struct Expect {
    status: StatusCode,
    code: &'static str,
    field: Option<(&'static str, &'static str)>,
}

fn refused(status: u16, code: &'static str) -> Expect {
    Expect {
        status: StatusCode::from_u16(status).expect("status"),
        code,
        field: None,
    }
}

fn invalid(field: &'static str, code: &'static str) -> Expect {
    Expect {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "validation_failed",
        field: Some((field, code)),
    }
}

fn check(label: &str, r: &Res, e: &Expect) {
    assert_eq!(
        (r.status, r.code()),
        (e.status, e.code),
        "{label}: {:?}",
        r.body
    );
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{label}"
    );
    if let Some((field, code)) = e.field {
        let errors = r.body["errors"].as_array().cloned().unwrap_or_default();
        assert!(
            errors
                .iter()
                .any(|x| x["field"] == field && x["code"] == code),
            "{label}: expected {field}/{code} in {errors:?}"
        );
    }
}

/// (label, method, path, bearer token, body or null, what must come back)
type Case<'a> = (&'a str, Method, String, Option<&'a str>, Value, Expect);

const NUL: &str = "张\u{0}三";
const BIDI: &str = "管理\u{202E}员";
const ZWSP: &str = "张\u{200B}三";

#[tokio::test]
async fn every_text_field_and_numeric_argument_refuses_bad_input_with_a_code() {
    let app = spawn_app_with(HashMap::from([(
        "YUNLIAN_MAX_IMPORT_BYTES",
        "65536".to_string(),
    )]))
    .await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let (branch, sec, members) =
        branch_with_members(&app, &admin, "坏输入村党支部", 13988000000, 1).await;
    let (member, token) = members[0].clone();
    let starts = chrono::Utc::now() + chrono::TimeDelta::minutes(10);
    let meeting = app.plan_party_day(&sec, &branch, starts).await;
    let leave = app
        .post(
            &format!("/v1/meetings/{meeting}/leave"),
            &token,
            json!({"reason": "外出务工"}),
        )
        .await
        .id();
    let phone = KeyPhone::register(&app, &token, &member, 11).await;
    let long = |n: usize| "长".repeat(n);
    let meeting_body = |k: &str, v: Value| {
        let mut b = json!({"org_id": branch, "meeting_type": "themed_party_day", "title": "会",
                           "starts_at": starts, "ends_at": starts + chrono::TimeDelta::hours(1)});
        b[k] = v;
        b
    };
    let mut ev = phone.evidence(&meeting, "123456", chrono::Utc::now(), None);
    ev["code"] = json!("1".repeat(300));
    let mut ev_sig = phone.evidence(&meeting, "123456", chrono::Utc::now(), None);
    ev_sig["signature"] = json!("A".repeat(5000));

    let cases: Vec<Case> = vec![
        ("org name NUL", Method::POST, "/v1/orgs".into(), Some(&admin), json!({"parent_id": root, "kind": "branch", "name": NUL}), invalid("name", "control_character")),
        ("org name bidi", Method::POST, "/v1/orgs".into(), Some(&admin), json!({"parent_id": root, "kind": "branch", "name": BIDI}), invalid("name", "invisible_character")),
        ("org name long", Method::POST, "/v1/orgs".into(), Some(&admin), json!({"parent_id": root, "kind": "branch", "name": long(101)}), invalid("name", "too_long")),
        ("org rename NUL", Method::PATCH, format!("/v1/orgs/{branch}"), Some(&admin), json!({"name": NUL}), invalid("name", "control_character")),
        ("member name NUL", Method::POST, "/v1/members".into(), Some(&admin), json!({"org_id": branch, "name": NUL, "phone": "13988001001", "status": "full"}), invalid("name", "control_character")),
        ("member name zero-width", Method::POST, "/v1/members".into(), Some(&admin), json!({"org_id": branch, "name": ZWSP, "phone": "13988001001", "status": "full"}), invalid("name", "invisible_character")),
        ("member city NUL", Method::POST, "/v1/members".into(), Some(&admin), json!({"org_id": branch, "name": "张三", "phone": "13988001001", "status": "full", "residence": "migrant", "migrant_city": NUL}), invalid("migrant_city", "control_character")),
        ("member edit NUL", Method::PATCH, format!("/v1/members/{member}"), Some(&admin), json!({"name": NUL}), invalid("name", "control_character")),
        ("roster q NUL", Method::GET, format!("/v1/members?org_id={branch}&q=%00"), Some(&admin), Value::Null, invalid("q", "control_character")),
        ("limit not a number", Method::GET, format!("/v1/members?org_id={branch}&limit=abc"), Some(&admin), Value::Null, Expect { status: StatusCode::BAD_REQUEST, code: "invalid_query", field: Some(("limit", "invalid_value")) }),
        ("limit zero", Method::GET, format!("/v1/members?org_id={branch}&limit=0"), Some(&admin), Value::Null, invalid("limit", "invalid_limit")),
        ("limit too large", Method::GET, format!("/v1/members?org_id={branch}&limit=100000"), Some(&admin), Value::Null, invalid("limit", "limit_too_large")),
        ("status unknown", Method::GET, format!("/v1/members?org_id={branch}&status=true"), Some(&admin), Value::Null, Expect { status: StatusCode::BAD_REQUEST, code: "invalid_query", field: Some(("status", "invalid_value")) }),
        ("unknown query field", Method::GET, format!("/v1/members?org_id={branch}&z=1"), Some(&admin), Value::Null, Expect { status: StatusCode::BAD_REQUEST, code: "invalid_query", field: Some(("z", "unknown_field")) }),
        ("meeting title NUL", Method::POST, "/v1/meetings".into(), Some(&sec), meeting_body("title", json!(NUL)), invalid("title", "control_character")),
        ("meeting agenda NUL", Method::POST, "/v1/meetings".into(), Some(&sec), meeting_body("agenda", json!(NUL)), invalid("agenda", "control_character")),
        ("meeting place bidi", Method::POST, "/v1/meetings".into(), Some(&sec), meeting_body("place", json!(BIDI)), invalid("place", "invisible_character")),
        ("meeting minutes NUL", Method::PATCH, format!("/v1/meetings/{meeting}"), Some(&sec), json!({"minutes": NUL}), invalid("minutes", "control_character")),
        ("leave reason NUL", Method::POST, format!("/v1/meetings/{meeting}/leave"), Some(&sec), json!({"reason": NUL}), invalid("reason", "control_character")),
        ("leave note NUL", Method::POST, format!("/v1/leave-requests/{leave}/decision"), Some(&sec), json!({"approve": true, "note": NUL}), invalid("note", "control_character")),
        ("device label NUL", Method::POST, "/v1/devices".into(), Some(&token), json!({"algorithm": "p256", "public_key": crate::helpers::phone_key(13).1, "unlock": "face", "label": NUL}), invalid("label", "control_character")),
        ("device label huge", Method::POST, "/v1/devices".into(), Some(&token), json!({"algorithm": "p256", "public_key": crate::helpers::phone_key(12).1, "unlock": "face", "label": "x".repeat(300_000)}), invalid("label", "too_long")),
        ("device key huge", Method::POST, "/v1/devices".into(), Some(&token), json!({"algorithm": "p256", "public_key": "A".repeat(300_000), "unlock": "face"}), invalid("public_key", "too_long")),
        ("clock-in code huge", Method::POST, format!("/v1/meetings/{meeting}/clock-in"), Some(&token), ev, invalid("code", "too_long")),
        ("clock-in signature huge", Method::POST, format!("/v1/meetings/{meeting}/clock-in"), Some(&token), ev_sig, invalid("signature", "too_long")),
        ("mutation name NUL", Method::POST, "/v1/sync/push".into(), Some(&token), json!({"client_id": uuid::Uuid::now_v7(), "schema_version": 1, "mutations": [{"id": 1, "name": "member.\u{0}", "args": {}}]}), invalid("mutations[0].name", "invalid_mutation_name")),
        ("boot id huge", Method::POST, "/v1/sync/push".into(), Some(&token), json!({"client_id": uuid::Uuid::now_v7(), "schema_version": 1, "boot_id": "b".repeat(1000), "mutations": []}), invalid("boot_id", "invalid_boot_id")),
        ("pull limit zero", Method::POST, "/v1/sync/pull".into(), Some(&token), json!({"client_id": uuid::Uuid::now_v7(), "schema_version": 1, "limit": 0}), invalid("limit", "invalid_limit")),
        ("pull limit type", Method::POST, "/v1/sync/pull".into(), Some(&token), json!({"client_id": uuid::Uuid::now_v7(), "schema_version": 1, "limit": "many"}), refused(400, "invalid_type")),
        (
            "login password huge",
            Method::POST,
            "/v1/auth/login".into(),
            None,
            json!({"phone": "13800000000", "password": "x".repeat(2000)}),
            invalid("password", "too_long"),
        ),
        ("stats from after to", Method::GET, format!("/v1/attendance/stats?org_id={branch}&from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"), Some(&sec), Value::Null, invalid("to", "out_of_range")),
    ];
    for (label, method, path, auth, body, expect) in cases {
        let body = (!body.is_null()).then_some(body);
        let r = app.send(method, &path, auth, body).await;
        check(label, &r, &expect);
    }

    // Nothing of it was written: the branch has its two members, its name, one meeting.
    let roster = app
        .list_all(&format!("/v1/members?org_id={branch}"), &admin)
        .await;
    assert_eq!(roster.len(), 2);
    assert_eq!(
        app.get(&format!("/v1/orgs/{branch}"), &admin).await.body["name"],
        "坏输入村党支部"
    );
    // `%` and `_` are searched for as themselves, not as wildcards.
    for q in ["%25", "_", "%25%25"] {
        let r = app
            .get(&format!("/v1/members?org_id={branch}&q={q}"), &admin)
            .await;
        assert_eq!(r.body["items"].as_array().map(Vec::len), Some(0), "q={q}");
    }

    // Rosters: a NUL in a cell, a body that is not CSV, one over the size limit.
    let r = app
        .import(
            &admin,
            &branch,
            "姓名,手机号\n张\u{0}三,13988002001\n",
            true,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "roster_invalid")
    );
    assert_eq!(r.body["errors"][0]["code"], "control_character");
    let res = app
        .client
        .post(format!("{}/v1/orgs/{branch}/members/import", app.base))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("sent");
    check(
        "roster as json",
        &TestApp::read(res).await,
        &refused(415, "unsupported_media_type"),
    );
    let big = format!("姓名,手机号\n{}", "张三,13988002001\n".repeat(5000));
    let r = app.import(&admin, &branch, &big, true).await;
    check("roster too large", &r, &refused(413, "payload_too_large"));

    // Line numbers count physical lines: CRLF, and a quoted cell over two lines.
    let crlf = "姓名,手机号,备注\r\n张三,13988003001,\"两行\r\n备注\"\r\n李四,1398800300x,\r\n";
    let r = app.import(&admin, &branch, crlf, true).await;
    assert_eq!(r.body["errors"][0]["line"], 4, "{:?}", r.body);
}

#[tokio::test]
async fn sync_mutations_refuse_reused_ids_and_times_no_phone_can_have() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin().await;
    let (member, token) = branch_with_members(&app, &admin, "时间村党支部", 13989000000, 1)
        .await
        .2[0]
        .clone();
    let client = uuid::Uuid::now_v7();
    let push = |id: i64, city: &str, extra: Value| {
        let mut m = json!({"id": id, "name": "member.update_whereabouts.v1",
                           "args": {"residence": "migrant", "migrant_city": city}});
        if let Value::Object(e) = extra {
            for (k, v) in e {
                m[k] = v;
            }
        }
        json!({"client_id": client, "schema_version": 1, "boot_id": "boot-1", "uptime_ms": 5_000_000, "mutations": [m]})
    };
    let r = app
        .post("/v1/sync/push", &token, push(1, "杭州", json!({})))
        .await;
    assert_eq!(r.body["results"][0]["status"], "applied", "{:?}", r.body);
    assert_eq!(r.body["results"][0]["name"], "member.update_whereabouts.v1");
    // The same id again: the recorded outcome. Other content under it: refused.
    let again = app
        .post("/v1/sync/push", &token, push(1, "杭州", json!({})))
        .await;
    assert_eq!(again.body["results"][0], r.body["results"][0]);
    let reused = app
        .post("/v1/sync/push", &token, push(1, "上海", json!({})))
        .await;
    assert_eq!(
        (reused.status, reused.code()),
        (StatusCode::CONFLICT, "mutation_id_reused")
    );
    // An uptime near i64::MAX, a clock at year 9999: rejected, alone, nothing echoed.
    for (id, extra) in [
        (2, json!({"boot_id": "boot-1", "uptime_ms": i64::MAX})),
        (3, json!({"device_time": "9999-12-31T00:00:00Z"})),
    ] {
        let r = app
            .post("/v1/sync/push", &token, push(id, "南京", extra))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let res = &r.body["results"][0];
        assert_eq!(
            (res["status"].as_str(), res["code"].as_str()),
            (Some("rejected"), Some("implausible_device_time"))
        );
        assert!(!r.body.to_string().contains("9999"), "{:?}", r.body);
    }
    let m = app.get(&format!("/v1/members/{member}"), &admin).await;
    assert_eq!(m.body["migrant_city"], "杭州");
    // The queue is not wedged: the next mutation applies.
    let r = app
        .post("/v1/sync/push", &token, push(4, "苏州", json!({})))
        .await;
    assert_eq!(r.body["results"][0]["status"], "applied");
}

#[cfg(unix)]
#[tokio::test]
async fn the_embedded_database_and_its_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    if crate::helpers::engine() != "sqlite" {
        eprintln!("skipped: the embedded database is the SQLite run's");
        return;
    }
    let dir = crate::helpers::temp_dir().join("data");
    let app = spawn_app_with(HashMap::from([
        ("YUNLIAN_DATA_DIR", dir.display().to_string()),
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("yunlian.db").display()),
        ),
    ]))
    .await;
    let admin = app.admin().await;
    assert_eq!(app.get("/v1/me", &admin).await.status, StatusCode::OK);
    let mode = |p: std::path::PathBuf| {
        std::fs::metadata(&p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    assert_eq!(mode(dir.clone()), 0o700);
    for f in ["yunlian.db", "yunlian.db-wal", "jwt_secret"] {
        assert_eq!(mode(dir.join(f)), 0o600, "{f}");
    }
}

#[tokio::test]
async fn an_exported_roster_runs_no_formula_and_imports_again() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let a = app
        .create_org(&admin, &root, "branch", "导出村党支部")
        .await;
    let r = app
        .post(
            "/v1/members",
            &admin,
            json!({"org_id": a, "name": "=HYPERLINK(\"http://evil\",\"点我\")", "phone": "13991000001",
                   "status": "full", "residence": "migrant", "migrant_city": "@杭州"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let res = app
        .client
        .get(format!("{}/v1/orgs/{a}/members/export", app.base))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    let csv = res.text().await.expect("body");
    let mut rdr =
        csv::ReaderBuilder::new().from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    let cells: Vec<String> = rdr
        .records()
        .flat_map(|r| {
            r.expect("record")
                .iter()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        cells.iter().all(|c| !c.starts_with(['=', '+', '-', '@'])),
        "{cells:?}"
    );
    assert!(cells.contains(&"'=HYPERLINK(\"http://evil\",\"点我\")".to_string()));
    // Imported again (elsewhere, so the phone is the only conflict), it is the same member.
    let b = app
        .create_org(&admin, &root, "branch", "导入村党支部")
        .await;
    let r = app.import(&admin, &b, &csv, true).await;
    assert_eq!(
        r.body["errors"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["errors"][0]["code"], "phone_taken");
}

//! Golden JSON of the sync protocol, schema_version 1: the exchanges in
//! `tests/fixtures/sync_v1.json` are replayed against a fresh server on every build, and the
//! answers must match them (ids and times are compared by role, not by value). A change to the
//! wire shapes shows up here first. `GOLDEN_WRITE=1` rewrites the file from the server.

use crate::helpers::branch_with_members;
use crate::helpers::{spawn_app, TestApp};
use serde_json::{json, Value};
use std::collections::HashMap;
use uuid::Uuid;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sync_v1.json");

/// Replaces ids by their names (`$CLIENT`, `$MEMBER`, `$BRANCH`, else `<uuid>`) and RFC 3339
/// times by `<time>`, inside strings too (`org:<id>:committee`).
fn normalize(v: &Value, names: &HashMap<String, &str>) -> Value {
    match v {
        Value::String(s) => {
            if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
                return json!("<time>");
            }
            let mut out = s.clone();
            for part in s.split(':') {
                if Uuid::parse_str(part).is_ok() {
                    out = out.replace(part, names.get(part).copied().unwrap_or("<uuid>"));
                }
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| normalize(x, names)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), normalize(x, names)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Fills the placeholders of a fixture request.
fn fill(v: &Value, values: &HashMap<&str, String>) -> Value {
    match v {
        Value::String(s) => {
            let mut out = s.clone();
            for (k, val) in values {
                out = out.replace(k, val);
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| fill(x, values)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    (
                        fill(&json!(k), values).as_str().unwrap_or(k).to_string(),
                        fill(x, values),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn exchange(app: &TestApp, token: &str, endpoint: &str, body: Value) -> Value {
    let r = app.post(&format!("/v1/sync/{endpoint}"), token, body).await;
    json!({"status": r.status.as_u16(), "body": r.body})
}

#[tokio::test]
async fn sync_v1_wire_shapes_match_the_golden_fixtures() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (branch, _, members) = branch_with_members(&app, &admin, "金样支部", 13970000000, 1).await;
    let (member, token) = members[0].clone();
    let client = Uuid::now_v7().to_string();
    let values: HashMap<&str, String> = HashMap::from([
        ("$CLIENT", client.clone()),
        ("$MEMBER", member.clone()),
        ("$BRANCH", branch.clone()),
    ]);
    let names: HashMap<String, &str> = HashMap::from([
        (client.clone(), "$CLIENT"),
        (member.clone(), "$MEMBER"),
        (branch.clone(), "$BRANCH"),
    ]);

    let fixture: Value = match std::fs::read_to_string(FIXTURE) {
        Ok(s) if std::env::var_os("GOLDEN_WRITE").is_none() => {
            serde_json::from_str(&s).expect("fixture json")
        }
        _ => json!([
            {"name": "push: applied, unknown name, bad args", "endpoint": "push", "request": {
                "client_id": "$CLIENT", "schema_version": 1, "boot_id": "b-1", "uptime_ms": 7_200_000,
                "mutations": [
                    {"id": 1, "name": "member.update_whereabouts.v1", "args": {"residence": "migrant", "migrant_city": "杭州"},
                     "device_time": "2026-11-20T08:00:00Z", "boot_id": "b-1", "uptime_ms": 3_600_000},
                    {"id": 2, "name": "member.update_whereabouts.v9", "args": {}},
                    {"id": 3, "name": "member.update_whereabouts.v1", "args": {"residence": "abroad"}}]}},
            {"name": "push: a retry answers from the ledger", "endpoint": "push", "request": {
                "client_id": "$CLIENT", "schema_version": 1,
                "mutations": [{"id": 3, "name": "member.update_whereabouts.v1", "args": {"residence": "abroad"}}]}},
            {"name": "push: a gap", "endpoint": "push", "request": {
                "client_id": "$CLIENT", "schema_version": 1,
                "mutations": [{"id": 5, "name": "member.update_whereabouts.v1", "args": {"residence": "at_home"}}]}},
            {"name": "pull: a new phone resets every scope", "endpoint": "pull", "request": {
                "client_id": "$CLIENT", "schema_version": 1, "limit": 100}},
            {"name": "pull: up to date", "endpoint": "pull", "request": {
                "client_id": "$CLIENT", "schema_version": 1, "cursors": "$CURSORS"}}
        ]),
    };
    let mut cursors = json!({});
    let mut replayed = Vec::new();
    for ex in fixture.as_array().expect("exchanges") {
        let mut request = fill(&ex["request"], &values);
        if request["cursors"] == "$CURSORS" {
            request["cursors"] = cursors.clone();
        }
        let endpoint = ex["endpoint"].as_str().expect("endpoint");
        let got = exchange(&app, &token, endpoint, request).await;
        if endpoint == "pull" {
            for s in got["body"]["scopes"].as_array().into_iter().flatten() {
                cursors[s["scope"].as_str().unwrap_or("")] =
                    json!({"v": s["v"], "epoch": s["epoch"]});
            }
        }
        let got = normalize(&got, &names);
        if std::env::var_os("GOLDEN_WRITE").is_none() {
            assert_eq!(got, ex["response"], "golden exchange '{}'", ex["name"]);
        }
        let mut ex = ex.clone();
        ex["response"] = got;
        replayed.push(ex);
    }
    if std::env::var_os("GOLDEN_WRITE").is_some() {
        let text = serde_json::to_string_pretty(&replayed).expect("json");
        std::fs::write(FIXTURE, text + "\n").expect("write fixture");
    }
}

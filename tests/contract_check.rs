//! Every response the suite receives through `TestApp::send` is checked against openapi.yaml:
//! its status must be documented on its operation, and a problem's `code` (and each field
//! error's code) must be listed for that status: in the `x-codes` of the shared response it
//! refers to, or in the operation's own `x-codes` for that status. A code the server returns
//! that the contract does not list fails the test that saw it.
//!
//! `CONTRACT_REPORT=<file>` appends violations to the file instead of failing (to update the
//! contract in one pass).

use serde_yaml::Value;
use std::collections::BTreeSet;
use std::sync::OnceLock;

struct Op {
    method: String,
    segments: Vec<String>,
    op: Value,
}

struct Contract {
    doc: Value,
    ops: Vec<Op>,
    field_codes: BTreeSet<String>,
}

fn contract() -> &'static Contract {
    static C: OnceLock<Contract> = OnceLock::new();
    C.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi.yaml");
        let doc: Value = serde_yaml::from_str(&text).expect("openapi.yaml parses");
        let mut ops = Vec::new();
        for (p, item) in doc["paths"].as_mapping().expect("paths") {
            let p = p.as_str().unwrap_or("");
            for (m, op) in item.as_mapping().expect("path item") {
                let m = m.as_str().unwrap_or("");
                if m == "parameters" {
                    continue;
                }
                ops.push(Op {
                    method: m.to_string(),
                    segments: p.split('/').map(str::to_string).collect(),
                    op: op.clone(),
                });
            }
        }
        let field_codes = codes(&doc["components"]["schemas"]["FieldError"]["x-codes"]);
        Contract {
            doc,
            ops,
            field_codes,
        }
    })
}

fn codes(v: &Value) -> BTreeSet<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn find<'a>(c: &'a Contract, method: &str, path: &str) -> Option<&'a Op> {
    let path = path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.split('/').collect();
    c.ops.iter().find(|o| {
        o.method == method
            && o.segments.len() == segs.len()
            && o.segments
                .iter()
                .zip(&segs)
                .all(|(t, s)| t.starts_with('{') || t == s)
    })
}

/// The codes documented for `status` on an operation.
fn allowed(c: &Contract, op: &Value, status: &str) -> Option<BTreeSet<String>> {
    let resp = op["responses"].get(status)?;
    let mut out = codes(&op["x-codes"][status]);
    let shared = match resp.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or("");
            &c.doc["components"]["responses"][name]
        }
        None => resp,
    };
    out.extend(codes(&shared["x-codes"]));
    Some(out)
}

fn violation(msg: String) {
    match std::env::var("CONTRACT_REPORT") {
        Ok(file) => {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
            {
                let _ = writeln!(f, "{msg}");
            }
        }
        Err(_) => panic!("contract: {msg}"),
    }
}

pub fn check(method: &str, path: &str, res: &crate::helpers::Res) {
    let c = contract();
    let route = path.split('?').next().unwrap_or("");
    if !route.starts_with("/v1/") && !route.starts_with("/healthz") && !route.starts_with("/readyz")
    {
        return;
    }
    let Some(op) = find(c, method, path) else {
        // Not a route: the server's route_not_found, documented on no operation.
        if res.code() != "route_not_found" && res.status.as_u16() != 405 {
            violation(format!(
                "{method} {route}: no such operation, yet {}",
                res.status
            ));
        }
        return;
    };
    let id = op.op["operationId"].as_str().unwrap_or("?");
    let status = res.status.as_u16().to_string();
    let Some(allowed) = allowed(c, &op.op, &status) else {
        violation(format!(
            "{id} {status}: status not documented ({:?})",
            res.body
        ));
        return;
    };
    if res.status.is_client_error() || res.status.is_server_error() {
        let code = res.code();
        if !allowed.contains(code) {
            violation(format!("{id} {status} {code}: code not documented"));
        }
        for e in res.body["errors"].as_array().into_iter().flatten() {
            let fc = e["code"].as_str().unwrap_or("");
            if !c.field_codes.contains(fc) {
                violation(format!(
                    "{id} {status} field code {fc}: not in FieldError x-codes"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::helpers::Res;
    use reqwest::StatusCode;

    fn problem(status: u16, code: &str) -> Res {
        Res {
            status: StatusCode::from_u16(status).expect("status"),
            body: serde_json::json!({"code": code}),
            headers: Default::default(),
        }
    }

    #[test]
    fn a_documented_code_passes() {
        super::check(
            "post",
            "/v1/meetings/x/close",
            &problem(409, "meeting_not_started"),
        );
        super::check("get", "/v1/members/x", &problem(404, "not_found"));
    }

    #[test]
    #[should_panic(expected = "code not documented")]
    fn a_code_the_contract_does_not_list_fails() {
        super::check("post", "/v1/meetings/x/close", &problem(409, "phone_taken"));
    }

    #[test]
    #[should_panic(expected = "status not documented")]
    fn a_status_the_contract_does_not_list_fails() {
        super::check("get", "/v1/members/x", &problem(418, "teapot"));
    }
}

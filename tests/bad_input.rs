//! Bad input gets a clear 4xx problem with a stable code, and nothing is half-written.

use crate::helpers::{roster_csv, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;

#[tokio::test]
async fn malformed_bodies_answer_with_their_own_codes_in_the_callers_language() {
    let app = spawn_app_with(HashMap::from([(
        "YUNLIAN_MAX_BODY_BYTES",
        "2048".to_string(),
    )]))
    .await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let post_raw = |body: String, lang: &'static str| {
        app.client
            .post(format!("{}/v1/orgs", app.base))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .header("accept-language", lang)
            .body(body)
            .send()
    };
    let cases = [
        (
            "{\"parent_id\": ",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            r#"{"parent_id": 5, "kind": "branch", "name": "x"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_type",
        ),
        (
            r#"{"kind": "branch", "name": "x"}"#,
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            r#"{"parent_id": "ROOT", "kind": "branch", "name": "x", "admin": true}"#,
            StatusCode::BAD_REQUEST,
            "unknown_field",
        ),
        (
            r#"{"parent_id": "ROOT", "kind": "village", "name": "x"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_type",
        ),
        (
            r#"{"parent_id": "ROOT", "kind": "branch", "name": "   "}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            r#"{"parent_id": "ROOT", "kind": "group", "name": "一组"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (body, status, code) in cases {
        let res = post_raw(body.replace("ROOT", &root), "zh-CN")
            .await
            .expect("sent");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert!(res.headers().contains_key("x-request-id"));
        let r = crate::helpers::TestApp::read(res).await;
        assert_eq!((r.status, r.code()), (status, code), "{body}: {:?}", r.body);
        assert!(r.body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    }
    let r = crate::helpers::TestApp::read(
        post_raw(
            r#"{"parent_id": "ROOT", "kind": "branch", "name": "x", "admin": true}"#
                .replace("ROOT", &root),
            "en-US,en;q=0.9",
        )
        .await
        .expect("sent"),
    )
    .await;
    assert_eq!(r.body["errors"][0]["field"], "admin");
    assert_eq!(r.body["title"], "The request contains an unknown field");
    let r = crate::helpers::TestApp::read(post_raw("{".into(), "zh-CN").await.expect("sent")).await;
    assert_eq!(r.body["title"], "请求体不是有效的 JSON");

    // Oversized bodies.
    let big = json!({"parent_id": root, "kind": "branch", "name": "x".repeat(4096)}).to_string();
    let r = crate::helpers::TestApp::read(post_raw(big, "zh").await.expect("sent")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    // Nothing was created by any of them.
    assert_eq!(app.list_all("/v1/orgs", &admin).await.len(), 1);

    // Wrong content type, bad ids in paths, unknown routes, bad limits and cursors.
    let res = app
        .client
        .post(format!("{}/v1/orgs", app.base))
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("sent");
    let r = crate::helpers::TestApp::read(res).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    assert_eq!(
        app.get("/v1/orgs/not-a-uuid", &admin).await.code(),
        "not_found"
    );
    assert_eq!(
        app.get("/v1/nothing-here", &admin).await.code(),
        "route_not_found"
    );
    let r = app.get("/v1/members?limit=1000", &admin).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    assert_eq!(
        app.get("/v1/orgs?limit=ten", &admin).await.code(),
        "invalid_query"
    );
    assert_eq!(
        app.get("/v1/orgs?cursor=abc", &admin).await.code(),
        "invalid_cursor"
    );
    assert_eq!(
        app.get("/v1/orgs?kind=village", &admin).await.code(),
        "invalid_query"
    );
}

#[tokio::test]
async fn invalid_and_duplicate_phones_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let a = app.create_org(&admin, &root, "branch", "甲村党支部").await;
    let member =
        |phone: &str| json!({"org_id": a, "name": "张三", "phone": phone, "status": "full"});
    let r = app.post("/v1/members", &admin, member("12345")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    assert_eq!(
        r.body["errors"][0],
        json!({"field": "phone", "code": "invalid_phone", "message": "手机号格式不正确"})
    );
    assert_eq!(
        app.post("/v1/members", &admin, member("139 1234 5678"))
            .await
            .status,
        StatusCode::CREATED
    );
    let r = app
        .post("/v1/members", &admin, member("+86 13912345678"))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "phone_taken"));
    // A migrant member must say where; a group must be a group of the branch.
    let mut m = member("13912345679");
    m["residence"] = json!("migrant");
    let r = app.post("/v1/members", &admin, m.clone()).await;
    assert_eq!(r.body["errors"][0]["field"], "migrant_city");
    m["residence"] = json!("at_home");
    m["group_id"] = json!(root);
    let r = app.post("/v1/members", &admin, m).await;
    assert_eq!(r.body["errors"][0]["code"], "group_not_found");
    assert_eq!(
        app.list_all(&format!("/v1/members?org_id={a}"), &admin)
            .await
            .len(),
        1
    );
    // A phone taken by editing another member.
    let other = app
        .create_member(&admin, &a, "李四", "13812345678", "lisi20261")
        .await;
    let r = app
        .patch(
            &format!("/v1/members/{other}"),
            &admin,
            json!({"phone": "13912345678"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "phone_taken"));
    assert_eq!(
        app.get(&format!("/v1/members/{other}"), &admin).await.body["phone"],
        "13812345678"
    );
}

#[tokio::test]
async fn a_roster_with_bad_rows_reports_each_line_and_writes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let a = app.create_org(&admin, &root, "branch", "乙村党支部").await;
    let existing = app
        .create_member(&admin, &a, "老党员", "13900000007", "laodangyuan1")
        .await;
    let mut csv = roster_csv(49, 13900000001);
    csv.push_str("50,坏行,男,1390000,党员,2099-01-01,外出,,也许,\n");
    csv.push_str("51,党员51,男,13900000010,正式党员,,在家,,,\n");
    let r = app.import(&admin, &a, &csv, false).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "roster_invalid")
    );
    let errors: Vec<(u64, String, String)> = r.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap_or(0),
                e["field"].as_str().unwrap_or("").to_string(),
                e["code"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expect = |l: u64, f: &str, c: &str| (l, f.to_string(), c.to_string());
    assert_eq!(
        errors,
        vec![
            expect(8, "phone", "phone_taken"), // 13900000007 belongs to 老党员
            expect(51, "phone", "invalid_phone"),
            expect(51, "status", "invalid_status"),
            expect(51, "join_date", "out_of_range"),
            expect(51, "migrant_city", "required"),
            expect(51, "elderly_or_infirm", "invalid_flag"),
            expect(52, "phone", "duplicate_phone_in_file"),
        ]
    );
    // Nothing of the 49 good rows was written.
    let members = app
        .list_all(&format!("/v1/members?org_id={a}"), &admin)
        .await;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["id"], existing.as_str());

    // Not UTF-8 (a GBK export), and a file without a phone column.
    let res = app
        .client
        .post(format!("{}/v1/orgs/{a}/members/import", app.base))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(vec![0xD0u8, 0xD5, 0xC3, 0xFB, b',', b'\n'])
        .send()
        .await
        .expect("sent");
    assert_eq!(
        crate::helpers::TestApp::read(res).await.code(),
        "csv_not_utf8"
    );
    let r = app.import(&admin, &a, "姓名,性别\n张三,男\n", false).await;
    assert_eq!(r.code(), "validation_failed");
    assert_eq!(r.body["errors"][0]["code"], "csv_header_missing");
    // Importing into a party group, or a committee's group, is refused.
    let g = app.create_org(&admin, &a, "group", "第一党小组").await;
    assert_eq!(
        app.import(&admin, &g, &roster_csv(1, 13600000000), false)
            .await
            .body["errors"][0]["code"],
        "org_holds_no_members"
    );
    // A roster naming that group places members in it; an unknown group is a row error.
    let csv = "姓名,手机号,党小组\n王五,13600000001,第一党小组\n赵六,13600000002,第九党小组\n";
    let r = app.import(&admin, &a, csv, false).await;
    assert_eq!(
        r.body["errors"],
        json!([{"field": "group", "code": "group_not_found", "line": 3, "message": "本支部下没有该党小组"}])
    );
    let r = app
        .import(
            &admin,
            &a,
            "姓名,手机号,党小组\n王五,13600000001,第一党小组\n",
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let in_group = app
        .list_all(&format!("/v1/members?org_id={a}&group_id={g}"), &admin)
        .await;
    assert_eq!(in_group.len(), 1);
    assert_eq!(in_group[0]["name"], "王五");
}

#[tokio::test]
async fn roles_are_granted_only_within_the_granters_subtree_and_fitting_the_org() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let town1 = app.create_org(&admin, &root, "committee", "一镇党委").await;
    let town2 = app.create_org(&admin, &root, "committee", "二镇党委").await;
    let a = app.create_org(&admin, &town1, "branch", "一镇甲支部").await;
    let b = app.create_org(&admin, &town2, "branch", "二镇乙支部").await;
    let boss = app
        .create_member(&admin, &town1, "一镇管理员", "13500000011", "yizhen2026")
        .await;
    let in_a = app
        .create_member(&admin, &a, "甲支部党员", "13500000012", "jiazhibu2026")
        .await;
    let in_b = app
        .create_member(&admin, &b, "乙支部党员", "13500000013", "yizhibu2026")
        .await;
    let r = app
        .post(
            "/v1/roles",
            &admin,
            json!({"member_id": boss, "org_id": town1, "role": "township_admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let dup = app
        .post(
            "/v1/roles",
            &admin,
            json!({"member_id": boss, "org_id": town1, "role": "township_admin"}),
        )
        .await;
    assert_eq!(
        (dup.status, dup.code()),
        (StatusCode::CONFLICT, "role_already_granted")
    );
    let (t1, _) = app.login("13500000011", "yizhen2026").await;
    // Outside the granter's subtree: the other township's branch does not exist for them.
    let r = app
        .post(
            "/v1/roles",
            &t1,
            json!({"member_id": in_b, "org_id": b, "role": "secretary"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Above their subtree: not theirs to see, let alone grant.
    let r = app
        .post(
            "/v1/roles",
            &t1,
            json!({"member_id": boss, "org_id": root, "role": "township_admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A member of another branch cannot hold a role in A; a township admin role does not fit a
    // branch.
    let r = app
        .post(
            "/v1/roles",
            &t1,
            json!({"member_id": in_b, "org_id": a, "role": "secretary"}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["code"], "member_outside_org");
    let r = app
        .post(
            "/v1/roles",
            &t1,
            json!({"member_id": in_a, "org_id": a, "role": "township_admin"}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["code"], "role_not_allowed_for_org");
    let r = app
        .post(
            "/v1/roles",
            &t1,
            json!({"member_id": in_a, "org_id": a, "role": "secretary"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let grant = r.id();
    let roles = app.list_all(&format!("/v1/roles?org_id={a}"), &t1).await;
    assert_eq!(roles.len(), 1);
    // The new secretary may not revoke their own secretary role (only the township may).
    let (sec, _) = app.login("13500000012", "jiazhibu2026").await;
    let r = app.delete(&format!("/v1/roles/{grant}"), &sec).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "role_out_of_scope")
    );
    assert_eq!(
        app.delete(&format!("/v1/roles/{grant}"), &t1).await.status,
        StatusCode::NO_CONTENT
    );
    // Revoked at once: the former secretary reads no roster.
    assert_eq!(
        app.get(&format!("/v1/members?org_id={a}"), &sec)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&format!("/v1/roles/{grant}"), &t1).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn health_readiness_and_request_ids() {
    let app = spawn_app().await;
    let r = app.send(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let r = app.send(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["database"], crate::helpers::engine());
    let redis = if std::env::var("TEST_REDIS_URL").is_ok() {
        "ok"
    } else {
        "not_configured"
    };
    assert_eq!(r.body["redis"], redis);
    // A request id from the proxy is kept; a hostile one is replaced.
    let res = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "proxy-abc-123")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.headers()["x-request-id"], "proxy-abc-123");
    let res = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "bad id\twith spaces")
        .send()
        .await
        .expect("sent");
    let id = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
}

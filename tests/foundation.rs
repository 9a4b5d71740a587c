//! The foundation's "done when": a township, two branches, a 50-member roster imported into
//! branch A, a secretary who manages A and sees nothing of B, a township admin who sees both.

use crate::helpers::{roster_csv, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_secretary_manages_branch_a_and_sees_nothing_of_branch_b() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let township = app
        .create_org(&admin, &root, "committee", "新杭镇党委")
        .await;
    let a = app
        .create_org(&admin, &township, "branch", "阳湾村党支部")
        .await;
    let b = app
        .create_org(&admin, &township, "branch", "凤桥村党支部")
        .await;

    // The roster: a dry run checks it and writes nothing, then the import writes all 50 rows.
    let csv = roster_csv(50, 13900000000);
    let dry = app.import(&admin, &a, &csv, true).await;
    assert_eq!(dry.status, StatusCode::OK, "{:?}", dry.body);
    assert_eq!(
        (dry.body["rows"].as_u64(), dry.body["created"].as_u64()),
        (Some(50), Some(0))
    );
    assert_eq!(dry.body["ignored_columns"], json!(["序号", "性别"]));
    assert!(app
        .list_all(&format!("/v1/members?org_id={a}"), &admin)
        .await
        .is_empty());
    let done = app.import(&admin, &a, &csv, false).await;
    assert_eq!(done.status, StatusCode::CREATED, "{:?}", done.body);
    assert_eq!(done.body["created"].as_u64(), Some(50));

    let roster = app
        .list_all(&format!("/v1/members?org_id={a}"), &admin)
        .await;
    assert_eq!(roster.len(), 50);
    let migrants = app
        .list_all(&format!("/v1/members?org_id={a}&residence=migrant"), &admin)
        .await;
    assert_eq!(migrants.len(), 10);
    assert!(migrants.iter().all(|m| m["migrant_city"] == "杭州"));
    let probationary = app
        .list_all(
            &format!("/v1/members?org_id={a}&status=probationary"),
            &admin,
        )
        .await;
    assert_eq!(probationary.len(), 8); // rows 0, 7, ..., 49

    // One of them becomes secretary of A: a password to log in, then the role.
    let sec = roster
        .iter()
        .find(|m| m["name"] == "党员03")
        .expect("党员03 imported");
    let sec_id = sec["id"].as_str().expect("id");
    assert_eq!(sec["phone"], "13900000002");
    assert_eq!(sec["can_login"], false);
    let r = app
        .post(
            &format!("/v1/members/{sec_id}/password"),
            &admin,
            json!({"password": "shuji2026a"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app
        .post(
            "/v1/roles",
            &admin,
            json!({"member_id": sec_id, "org_id": a, "role": "secretary"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    // Branch B has a member of its own.
    let b_member = app
        .create_member(&admin, &b, "凤桥党员", "13700000001", "fengqiao2026")
        .await;

    let (secretary, _) = app.login("13900000002", "shuji2026a").await;
    // The secretary lists A (with no org_id: their one branch) and edits a member of A.
    let listed = app.list_all("/v1/members", &secretary).await;
    assert_eq!(listed.len(), 50);
    let target = roster[10]["id"].as_str().expect("id");
    let r = app
        .patch(
            &format!("/v1/members/{target}"),
            &secretary,
            json!({"residence": "migrant", "migrant_city": "上海", "name": "党员11（改）"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (
            r.body["residence"].as_str(),
            r.body["migrant_city"].as_str()
        ),
        (Some("migrant"), Some("上海"))
    );
    let r = app.get(&format!("/v1/members/{target}"), &secretary).await;
    assert_eq!(r.body["name"], "党员11（改）");
    let r = app.get(&format!("/v1/orgs/{a}"), &secretary).await;
    assert_eq!(r.status, StatusCode::OK);

    // Everything of B answers 403 or 404.
    let denied = [
        app.get(&format!("/v1/orgs/{b}"), &secretary).await,
        app.patch(&format!("/v1/orgs/{b}"), &secretary, json!({"name": "x"}))
            .await,
        app.get(&format!("/v1/members?org_id={b}"), &secretary)
            .await,
        app.get(&format!("/v1/members/{b_member}"), &secretary)
            .await,
        app.patch(
            &format!("/v1/members/{b_member}"),
            &secretary,
            json!({"name": "x"}),
        )
        .await,
        app.post(
            &format!("/v1/members/{b_member}/password"),
            &secretary,
            json!({"password": "hijack2026"}),
        )
        .await,
        app.post(
            "/v1/members",
            &secretary,
            json!({"org_id": b, "name": "x", "phone": "13700000002", "status": "full"}),
        )
        .await,
        app.import(&secretary, &b, &roster_csv(1, 13600000000), false)
            .await,
        app.post(
            "/v1/roles",
            &secretary,
            json!({"member_id": b_member, "org_id": b, "role": "committee_member"}),
        )
        .await,
        app.get(&format!("/v1/roles?org_id={b}"), &secretary).await,
        app.post(
            "/v1/orgs",
            &secretary,
            json!({"parent_id": b, "kind": "group", "name": "x"}),
        )
        .await,
        // moving a member of A into B
        app.patch(
            &format!("/v1/members/{target}"),
            &secretary,
            json!({"org_id": b}),
        )
        .await,
    ];
    for (i, r) in denied.iter().enumerate() {
        assert!(
            r.status == StatusCode::FORBIDDEN || r.status == StatusCode::NOT_FOUND,
            "case {i}: {} {:?}",
            r.status,
            r.body
        );
    }
    // ...and nothing of B changed, nor did B appear in the secretary's org list.
    let orgs = app.list_all("/v1/orgs", &secretary).await;
    assert!(orgs.iter().all(|o| o["id"] != b.as_str()));
    assert_eq!(
        app.get(&format!("/v1/members/{b_member}"), &admin)
            .await
            .body["name"],
        "凤桥党员"
    );
    assert_eq!(
        app.list_all(&format!("/v1/members?org_id={b}"), &admin)
            .await
            .len(),
        1
    );
    // A secretary cannot make another secretary, even in A.
    let other = roster[20]["id"].as_str().expect("id");
    let r = app
        .post(
            "/v1/roles",
            &secretary,
            json!({"member_id": other, "org_id": a, "role": "secretary"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "role_out_of_scope")
    );
    // ...but may appoint a committee member of A.
    let r = app
        .post(
            "/v1/roles",
            &secretary,
            json!({"member_id": other, "org_id": a, "role": "committee_member"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    // A township admin sees both branches.
    let ta = app
        .create_member(&admin, &township, "镇管理员", "13500000001", "zhenguan2026")
        .await;
    let r = app
        .post(
            "/v1/roles",
            &admin,
            json!({"member_id": ta, "org_id": township, "role": "township_admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let (township_admin, _) = app.login("13500000001", "zhenguan2026").await;
    assert_eq!(
        app.list_all(&format!("/v1/members?org_id={a}"), &township_admin)
            .await
            .len(),
        50
    );
    assert_eq!(
        app.list_all(&format!("/v1/members?org_id={b}"), &township_admin)
            .await
            .len(),
        1
    );
    assert_eq!(
        app.get(&format!("/v1/members/{b_member}"), &township_admin)
            .await
            .status,
        StatusCode::OK
    );
    // The whole township: 50 + 1 + the township admin.
    assert_eq!(
        app.list_all(&format!("/v1/members?org_id={township}"), &township_admin)
            .await
            .len(),
        52
    );
    let orgs = app.list_all("/v1/orgs", &township_admin).await;
    assert_eq!(orgs.len(), 3);
    // ...but not the county above it.
    assert_eq!(
        app.get(&format!("/v1/orgs/{root}"), &township_admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn lists_page_with_cursors_and_filter_by_name_and_phone() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let a = app.create_org(&admin, &root, "branch", "测试支部").await;
    assert_eq!(
        app.import(&admin, &a, &roster_csv(45, 13900000100), false)
            .await
            .status,
        StatusCode::CREATED
    );
    let first = app
        .get(&format!("/v1/members?org_id={a}&limit=20"), &admin)
        .await;
    assert_eq!(first.body["items"].as_array().map(Vec::len), Some(20));
    let all = app
        .list_all(&format!("/v1/members?org_id={a}"), &admin)
        .await;
    let mut ids: Vec<&str> = all.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids.len(), 45);
    ids.dedup();
    assert_eq!(ids.len(), 45, "no member twice across pages");
    let by_name = app
        .list_all(
            &format!("/v1/members?org_id={a}&q=%E5%85%9A%E5%91%9812"),
            &admin,
        )
        .await; // 党员12
    assert_eq!(by_name.len(), 1);
    let by_phone = app
        .list_all(&format!("/v1/members?org_id={a}&q=13900000104"), &admin)
        .await;
    assert_eq!(by_phone.len(), 1);
    assert_eq!(by_phone[0]["name"], "党员05");
}

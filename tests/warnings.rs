//! Warnings: a township of 40 branches walked through a quarter day by day on an injected
//! clock, with the jobs run as the server runs them; every reminder, warning, admonition and
//! rectification notice comes once, and resolves when its condition clears.

use crate::helpers::{roster_csv, spawn_app_on, TestApp};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use yunlian_api::jobs::{run_once, JobCx};
use yunlian_domain::ports::FixedClock;

/// Runs one round of a job as the test's own replica, waiting while the server's holds the lease.
pub async fn run(cx: &JobCx, name: &'static str) -> usize {
    for _ in 0..500 {
        if let Some(n) = run_once(name, cx, "test").await.expect(name) {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{name}: the lease never came free");
}

/// A branch's roster of `n` imported into `branch`, the first made secretary; their tokens.
pub async fn staff(
    app: &TestApp,
    admin: &str,
    branch: &str,
    first_phone: u64,
    n: usize,
) -> Vec<(String, String)> {
    let r = app
        .import(admin, branch, &roster_csv(n, first_phone), false)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let roster = app
        .list_all(&format!("/v1/members?org_id={branch}"), admin)
        .await;
    let mut out = Vec::new();
    for (i, m) in roster.iter().enumerate() {
        let id = m["id"].as_str().expect("id").to_string();
        let r = app
            .post(
                &format!("/v1/members/{id}/password"),
                admin,
                json!({"password": "dangyuan2026"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        if i == 0 {
            let r = app
                .post(
                    "/v1/roles",
                    admin,
                    json!({"member_id": id, "org_id": branch, "role": "secretary"}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED);
        }
        let (t, _) = app
            .login(m["phone"].as_str().expect("phone"), "dangyuan2026")
            .await;
        out.push((id, t));
    }
    out
}

async fn plan(app: &TestApp, admin: &str, org: &str, kind: &str, starts: DateTime<Utc>) {
    let r = app
        .post(
            "/v1/meetings",
            admin,
            json!({"org_id": org, "meeting_type": kind, "title": "组织生活",
                   "starts_at": starts, "ends_at": starts + TimeDelta::hours(1)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "plan {kind}: {:?}", r.body);
}

const PARTY_DAY: &str = "themed_party_day";
const COMMITTEE: &str = "branch_committee_meeting";
const GENERAL: &str = "branch_general_meeting";
const LECTURE: &str = "party_lecture";

/// (branch, rule, meeting type or what it is about, period, resolution or `open`), as the
/// township's admin lists them.
type Seen = BTreeSet<(usize, String, String, String, String)>;

fn line(
    b: usize,
    rule: &str,
    about: &str,
    period: &str,
    res: &str,
) -> (usize, String, String, String, String) {
    (b, rule.into(), about.into(), period.into(), res.into())
}

#[tokio::test]
async fn a_township_of_forty_branches_gets_each_warning_of_its_quarter_once() {
    // Midnight of 1 October in the village; every step is one village midnight later.
    let t0: DateTime<Utc> = "2026-09-30T16:00:00Z".parse().expect("t0");
    let day = |d: i64| t0 + TimeDelta::days(d);
    let at10 = |d: i64| day(d) + TimeDelta::hours(2);
    let clock = Arc::new(FixedClock::at(t0));
    let vars = HashMap::from([
        ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", (120 * 86400).to_string()),
        ("YUNLIAN_REFRESH_TOKEN_TTL_DAYS", "150".to_string()),
    ]);
    let app = spawn_app_on(vars, clock.clone()).await;
    let cx = crate::jobs::job_cx(&app.database_url, clock.clone(), None).await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let township = app
        .create_org(&admin, &root, "committee", "新杭镇党委")
        .await;
    let mut branches = Vec::new();
    for i in 0..40 {
        branches.push(
            app.create_org(&admin, &township, "branch", &format!("第{i:02}村党支部"))
                .await,
        );
    }
    let index: HashMap<String, usize> = branches
        .iter()
        .enumerate()
        .map(|(i, b)| (b.clone(), i))
        .collect();
    // Branch 0 has a secretary and a member; 32 and 33 a secretary who answers notices.
    let b0 = staff(&app, &admin, &branches[0], 13990000000, 2).await;
    let (sec0, member) = (b0[0].clone(), b0[1].clone());
    let sec32 = staff(&app, &admin, &branches[32], 13990000100, 1).await[0]
        .1
        .clone();
    let sec33 = staff(&app, &admin, &branches[33], 13990000200, 1).await[0]
        .1
        .clone();

    // What every branch plans on the first day: the whole quarter, on time. 30 plans October's
    // party day late, 31 skips October's, 32 and 33 October's and November's, 34 every one,
    // 35 the quarter's party lecture.
    for (i, b) in branches.iter().enumerate() {
        for (d, kind) in [
            (12, COMMITTEE),
            (42, COMMITTEE),
            (72, COMMITTEE),
            (50, GENERAL),
        ] {
            plan(&app, &admin, b, kind, at10(d)).await;
        }
        if i != 35 {
            plan(&app, &admin, b, LECTURE, at10(60)).await;
        }
        let party_days: &[i64] = match i {
            30 => &[40, 70],
            31 => &[40, 70],
            32 | 33 => &[64],
            34 => &[],
            _ => &[10, 40, 70],
        };
        for d in party_days {
            plan(&app, &admin, b, PARTY_DAY, at10(*d)).await;
        }
    }

    let mut case = String::new();
    let mut notice_due: HashMap<usize, DateTime<Utc>> = HashMap::new();
    let warning_of = |b: usize, rule: &str, all: &[Value]| -> String {
        all.iter()
            .find(|w| {
                w["rule"] == rule && index.get(w["org_id"].as_str().unwrap_or("")) == Some(&b)
            })
            .and_then(|w| w["id"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("branch {b} has a {rule} warning"))
    };
    for d in 1..=92 {
        clock.advance(TimeDelta::days(1));
        match d {
            1 => {
                // A life need relayed in branch 0, accepted and assigned: due in 7 days.
                let post = crate::moments::post_topic(&app, &sec0.1, &branches[0], day(20)).await;
                let c = app
                    .post(
                        &format!("/v1/posts/{post}/comments"),
                        &member.1,
                        json!({"body": "村口路灯坏了", "category": "life_need"}),
                    )
                    .await;
                assert_eq!(c.status, StatusCode::CREATED, "{:?}", c.body);
                case = c.body["case_id"].as_str().expect("case").to_string();
                let r = app
                    .post(
                        &format!("/v1/cases/{case}/accept"),
                        &sec0.1,
                        json!({"assignee_id": sec0.0}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            }
            10 => {
                let r = app
                    .post(
                        &format!("/v1/cases/{case}/resolve"),
                        &sec0.1,
                        json!({"reply": "路灯已修好"}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            }
            25 => plan(&app, &admin, &branches[30], PARTY_DAY, at10(27)).await,
            32 => {
                // October's lists of branch 0: both were absent without leave every time.
                let l = app
                    .post(
                        "/v1/points/lists",
                        &sec0.1,
                        json!({"org_id": branches[0], "period": "2026-10"}),
                    )
                    .await;
                assert_eq!(l.status, StatusCode::CREATED, "{:?}", l.body);
                let p = app
                    .post(
                        &format!("/v1/points/lists/{}/publish", l.id()),
                        &sec0.1,
                        json!({}),
                    )
                    .await;
                assert_eq!(p.status, StatusCode::OK, "{:?}", p.body);
            }
            62 | 63 => {
                let all = app
                    .list_all(
                        &format!("/v1/warnings?org_id={township}&rule=meeting_overdue_again"),
                        &admin,
                    )
                    .await;
                let (w32, w33) = (
                    warning_of(32, "meeting_overdue_again", &all),
                    warning_of(33, "meeting_overdue_again", &all),
                );
                if d == 62 {
                    for (w, token) in [(&w32, &sec32), (&w33, &sec33)] {
                        let r = app
                            .post(
                                &format!("/v1/warnings/{w}/rectification/answer"),
                                token,
                                json!({"answer": "支部已研究整改，12月5日补开主题党日"}),
                            )
                            .await;
                        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                        assert_eq!(r.body["rectification"]["state"], "answered");
                    }
                } else {
                    let v = app
                        .post(
                            &format!("/v1/warnings/{w32}/rectification/verify"),
                            &admin,
                            json!({}),
                        )
                        .await;
                    assert_eq!(v.status, StatusCode::OK, "{:?}", v.body);
                    assert_eq!(v.body["rectification"]["state"], "verified");
                    assert_eq!(v.body["resolution"], "verified");
                    let r = app
                        .post(
                            &format!("/v1/warnings/{w33}/rectification/return"),
                            &admin,
                            json!({"reason": "缺少会议记录照片"}),
                        )
                        .await;
                    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                    assert_eq!(r.body["rectification"]["state"], "returned");
                    let due: DateTime<Utc> = r.body["rectification"]["due_at"]
                        .as_str()
                        .expect("due")
                        .parse()
                        .expect("time");
                    assert_eq!(due, day(63) + TimeDelta::days(10));
                    notice_due.insert(33, due);
                }
            }
            _ => {}
        }
        for job in [
            "close_out",
            "case_overdue",
            "points",
            "warnings_events",
            "warnings",
        ] {
            run(&cx, job).await;
        }
        // A scan run twice in a row changes nothing.
        if d % 30 == 0 {
            assert_eq!(run(&cx, "warnings").await, 0, "day {d}: a second scan");
        }
    }

    // The township's view: every committee warning of its branches, with how it ended.
    let all = app
        .list_all(&format!("/v1/warnings?org_id={township}"), &admin)
        .await;
    let seen: Seen = all
        .iter()
        .map(|w| {
            let b = index[w["org_id"].as_str().expect("org")];
            let subject = w["subject"].as_str().expect("subject");
            let about = subject.rsplit(':').next().unwrap_or_default();
            let about = if subject.starts_with("org:") {
                about
            } else {
                subject.split(':').next().unwrap_or_default()
            };
            let res = w["resolution"].as_str().unwrap_or("open");
            line(
                b,
                w["rule"].as_str().expect("rule"),
                about,
                w["period"].as_str().expect("period"),
                res,
            )
        })
        .collect();
    assert_eq!(seen.len(), all.len(), "no warning twice");
    let due_day = all
        .iter()
        .find(|w| w["rule"] == "case_overdue")
        .map(|w| w["period"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    let expected: Seen = [
        line(0, "case_overdue", "case", &due_day, "cleared"),
        // Quarters under 25 points of the checklist (see the table below).
        line(0, "assessment_below", "assessment", "2026-Q4", "open"),
        line(32, "assessment_below", "assessment", "2026-Q4", "open"),
        line(33, "assessment_below", "assessment", "2026-Q4", "open"),
        line(34, "assessment_below", "assessment", "2026-Q4", "open"),
        line(30, "meeting_due_soon", PARTY_DAY, "2026-10", "cleared"),
        line(31, "meeting_due_soon", PARTY_DAY, "2026-10", "superseded"),
        line(31, "meeting_overdue", PARTY_DAY, "2026-10", "cleared"),
        line(32, "meeting_due_soon", PARTY_DAY, "2026-10", "superseded"),
        line(32, "meeting_overdue", PARTY_DAY, "2026-10", "cleared"),
        line(32, "meeting_due_soon", PARTY_DAY, "2026-11", "superseded"),
        line(32, "meeting_overdue", PARTY_DAY, "2026-11", "cleared"),
        line(
            32,
            "meeting_overdue_again",
            PARTY_DAY,
            "2026-11",
            "verified",
        ),
        line(33, "meeting_due_soon", PARTY_DAY, "2026-10", "superseded"),
        line(33, "meeting_overdue", PARTY_DAY, "2026-10", "cleared"),
        line(33, "meeting_due_soon", PARTY_DAY, "2026-11", "superseded"),
        line(33, "meeting_overdue", PARTY_DAY, "2026-11", "cleared"),
        line(33, "meeting_overdue_again", PARTY_DAY, "2026-11", "cleared"),
        // Returned and not answered again by its new date: escalated to the township.
        line(
            33,
            "rectification_overdue",
            "rectification",
            "2026-11",
            "open",
        ),
        line(34, "meeting_due_soon", PARTY_DAY, "2026-10", "superseded"),
        line(34, "meeting_overdue", PARTY_DAY, "2026-10", "open"),
        line(34, "meeting_due_soon", PARTY_DAY, "2026-11", "superseded"),
        line(34, "meeting_overdue", PARTY_DAY, "2026-11", "open"),
        line(34, "meeting_overdue_again", PARTY_DAY, "2026-11", "open"),
        line(
            34,
            "rectification_overdue",
            "rectification",
            "2026-11",
            "open",
        ),
        line(34, "meeting_due_soon", PARTY_DAY, "2026-12", "superseded"),
        line(34, "meeting_overdue", PARTY_DAY, "2026-12", "open"),
        line(34, "meeting_overdue_again", PARTY_DAY, "2026-12", "open"),
        line(35, "meeting_due_soon", LECTURE, "2026-Q4", "superseded"),
        line(35, "meeting_overdue", LECTURE, "2026-Q4", "open"),
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, expected);
    assert!(notice_due[&33] < day(92));

    // Branch 34's notices: issued, never answered, escalated once each date passed; 33's
    // escalation is addressed to the township's committee.
    let by = |b: usize, rule: &str, period: &str| -> &Value {
        all.iter()
            .find(|w| {
                index[w["org_id"].as_str().unwrap_or("")] == b
                    && w["rule"] == rule
                    && w["period"] == period
            })
            .unwrap_or_else(|| panic!("{b} {rule} {period}"))
    };
    // One quarter behind: 太湖's blue card.
    assert_eq!(by(34, "assessment_below", "2026-Q4")["level"], "blue");
    let red = by(34, "meeting_overdue_again", "2026-11");
    assert_eq!(red["level"], "red");
    assert_eq!(red["rectification"]["state"], "issued");
    assert!(red["rectification"]["escalated_at"].is_string());
    let up = by(33, "rectification_overdue", "2026-11");
    assert_eq!(
        up["recipient"],
        json!({"kind": "committee", "id": township})
    );
    assert_eq!(
        by(34, "meeting_overdue_again", "2026-12")["rectification"]["escalated_at"],
        Value::Null
    );

    // Each warning raised once and resolved at most once, by its events.
    let events = app.published_events().await;
    let count = |topic: &str, id: &str| {
        events
            .iter()
            .filter(|e| e.topic == topic && e.subject == format!("warning:{id}"))
            .count()
    };
    for w in &all {
        let id = w["id"].as_str().expect("id");
        assert_eq!(count("warning.raised", id), 1, "{w}");
        assert_eq!(
            count("warning.resolved", id),
            usize::from(!w["resolved_at"].is_null()),
            "{w}"
        );
    }

    // The member of branch 0: five absences (three party days, the general meeting, the
    // lecture), October's yellow list; the secretary got the case's reminder.
    let mine = app.list_all("/v1/warnings", &member.1).await;
    let rules: Vec<(&str, &str)> = mine
        .iter()
        .map(|w| {
            (
                w["rule"].as_str().unwrap_or(""),
                w["level"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        rules
            .iter()
            .filter(|r| **r == ("member_absent", "yellow"))
            .count(),
        5
    );
    assert_eq!(
        rules
            .iter()
            .filter(|r| r.0 == "member_yellow_listed")
            .count(),
        1
    );
    assert_eq!(rules.len(), 6);
    let sec_own = app
        .list_all("/v1/warnings?rule=case_due_soon", &sec0.1)
        .await;
    assert_eq!(sec_own.len(), 1);
    assert_eq!(sec_own[0]["resolution"], "superseded");

    // Bad queries have their codes.
    let r = app.get("/v1/warnings?limit=0", &member.1).await;
    assert_eq!(
        (r.status, r.body["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_limit"))
    );
    let r = app.get("/v1/warnings?level=purple", &member.1).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .get(
            &format!("/v1/push/dead-letters?org_id={township}&limit=1000"),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Read and acknowledged once by the recipient; nobody else may.
    let w = mine[0]["id"].as_str().expect("id");
    let r = app
        .post(&format!("/v1/warnings/{w}/read"), &member.1, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let first = r.body["read_at"].clone();
    clock.advance(TimeDelta::hours(1));
    let again = app
        .post(&format!("/v1/warnings/{w}/read"), &member.1, json!({}))
        .await;
    assert_eq!(again.body["read_at"], first);
    let r = app
        .post(&format!("/v1/warnings/{w}/acknowledge"), &sec0.1, json!({}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "warning_not_yours")
    );
    let r = app
        .post(&format!("/v1/warnings/{w}/acknowledge"), &sec32, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .post(
            &format!("/v1/warnings/{w}/acknowledge"),
            &member.1,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["acknowledged_by"], member.0.as_str());

    // Wrong moves on notices.
    let w34 = red["id"].as_str().expect("id");
    let w32 = by(32, "meeting_overdue_again", "2026-11")["id"]
        .as_str()
        .expect("id");
    let answer = json!({"answer": "已整改"});
    let r = app
        .post(
            &format!("/v1/warnings/{w34}/rectification/answer"),
            &sec32,
            answer.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "another branch's notice");
    let r = app
        .post(
            &format!("/v1/warnings/{w32}/rectification/answer"),
            &sec32,
            answer.clone(),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "rectification_not_awaiting_answer")
    );
    let r = app
        .post(
            &format!("/v1/warnings/{w32}/rectification/verify"),
            &sec32,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "rectification_decided_above")
    );
    let r = app
        .post(
            &format!("/v1/warnings/{w34}/rectification/verify"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "rectification_not_answered")
    );
    let r = app
        .post(
            &format!("/v1/warnings/{w34}/rectification/answer"),
            &admin,
            json!({"answer": "  "}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The admin answers for branch 34 and may then not verify that answer.
    let r = app
        .post(
            &format!("/v1/warnings/{w34}/rectification/answer"),
            &admin,
            answer,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .post(
            &format!("/v1/warnings/{w34}/rectification/verify"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "rectification_own_answer")
    );
    // Answered, 34's escalation clears at the next scan.
    run(&cx, "warnings").await;
    let up34 = app
        .get(
            &format!(
                "/v1/warnings/{}",
                by(34, "rectification_overdue", "2026-11")["id"]
                    .as_str()
                    .expect("id")
            ),
            &admin,
        )
        .await;
    assert_eq!(up34.body["resolution"], "cleared");

    // The township's table of branches: each month's checklist (of 10: organisational life 4,
    // attendance 2, learning 2, cases 1, notices answered 1), the quarter against 25, the
    // grade on 100 and the card. A branch without members faults no attendance or learning;
    // branch 0's and the two secretaries' absences and no learning cost them all four; 0's case
    // closed after its due time; 33's returned notice stands unanswered in December.
    let table = app
        .get(
            &format!("/v1/assessments?org_id={township}&year=2026"),
            &admin,
        )
        .await;
    assert_eq!(table.status, StatusCode::OK, "{:?}", table.body);
    let row = |b: usize| -> Value {
        table.body["items"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|r| r["org_id"] == branches[b].as_str())
                    .cloned()
            })
            .unwrap_or_else(|| panic!("branch {b} in the table"))
    };
    let months = |b: usize| -> Vec<i64> {
        row(b)["months"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["total"].as_i64()).collect())
            .unwrap_or_default()
    };
    for (b, by_month, q4, score, grade, card) in [
        (5, [10, 10, 10], 30, 100, "A", Value::Null),
        (0, [5, 6, 6], 17, 56, "C", json!("blue")),
        (30, [10, 10, 10], 30, 100, "A", Value::Null),
        (31, [8, 10, 10], 28, 93, "A", Value::Null),
        (32, [4, 4, 6], 14, 46, "C", json!("blue")),
        (33, [4, 4, 5], 13, 43, "C", json!("blue")),
        (34, [8, 8, 8], 24, 80, "B", json!("blue")),
        (35, [10, 10, 9], 29, 96, "A", Value::Null),
    ] {
        let r = row(b);
        assert_eq!(months(b), by_month, "branch {b}: {r}");
        assert_eq!(r["quarters"][0]["total"], q4, "branch {b}");
        assert_eq!(
            (r["score"].as_i64(), r["grade"].as_str()),
            (Some(score), Some(grade)),
            "branch {b}"
        );
        assert_eq!(r["card"], card, "branch {b}");
    }
    assert_eq!(
        row(34)["months"][2]["warnings"],
        0,
        "November's notice unanswered in December"
    );
    let one = app
        .get(
            &format!("/v1/orgs/{}/assessment?year=2026", branches[34]),
            &admin,
        )
        .await;
    assert_eq!(one.body, row(34));
    let r = app
        .get(&format!("/v1/orgs/{township}/assessment?year=2026"), &admin)
        .await;
    assert_eq!(
        (r.status, r.body["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("org_not_a_branch"))
    );
    let r = app
        .get(&format!("/v1/assessments?org_id={township}"), &member.1)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The workbook for the township's notice: a title row, Chinese headers, a row per branch.
    let x = app
        .client
        .get(format!(
            "{}/v1/assessments/export?org_id={township}&year=2026",
            app.base
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("export");
    assert_eq!(x.status(), StatusCode::OK);
    let bytes = x.bytes().await.expect("bytes");
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).expect("xlsx");
    use calamine::Reader;
    let sheet = book.worksheet_range("积分考核").expect("sheet");
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows[0][0], "新杭镇党委 2026年 基层党组织积分考核");
    assert_eq!(rows[1][..4], ["党组织", "一季度", "二季度", "三季度"]);
    assert_eq!(rows.len(), 2 + 40);
    let r34 = rows
        .iter()
        .find(|r| r[0] == "第34村党支部")
        .expect("34's row");
    assert_eq!(r34[4..8], ["24", "80", "B（成长型）", "蓝牌"]);

    // The calendar the township sees: 13 requirements a branch (October to December and
    // January monthly, the fourth and first quarters, 2027's annual meeting).
    let c = app
        .get(&format!("/v1/compliance?org_id={township}"), &admin)
        .await;
    assert_eq!(c.status, StatusCode::OK, "{:?}", c.body);
    assert_eq!(
        (
            c.body["total"].as_i64(),
            c.body["held"].as_i64(),
            c.body["overdue"].as_i64()
        ),
        (Some(520), Some(311), Some(9))
    );
    let b34 = c.body["branches"]
        .as_array()
        .and_then(|a| a.iter().find(|b| b["org_id"] == branches[34].as_str()))
        .expect("34");
    assert_eq!(
        (b34["held"].as_i64(), b34["overdue"].as_i64()),
        (Some(5), Some(3))
    );
    // A member sees no township calendar.
    let r = app
        .get(&format!("/v1/compliance?org_id={township}"), &member.1)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The phones get their warnings: the member's in a pull.
    let pull = app
        .post(
            "/v1/sync/pull",
            &member.1,
            json!({"client_id": uuid::Uuid::now_v7(), "schema_version": 1, "limit": 1000}),
        )
        .await;
    assert_eq!(pull.status, StatusCode::OK, "{:?}", pull.body);
    let synced: usize = pull.body["scopes"]
        .as_array()
        .map(|s| {
            s.iter()
                .flat_map(|s| s["changes"].as_array().cloned().unwrap_or_default())
                .filter(|c| c["entity"] == "warning")
                .count()
        })
        .unwrap_or_default();
    assert_eq!(synced, 6);
}

/// The township verifying and returning one answered notice at once, many times with a seeded
/// interleaving: one decision lands, the other is told the notice is no longer answered, and
/// the warning is resolved exactly when the verification won.
#[tokio::test]
async fn a_verification_racing_a_return_of_one_notice_lands_once() {
    use crate::helpers::{race_rounds, seed};
    use rand::{Rng, SeedableRng};
    use std::time::Duration;
    use yunlian_domain::ports::Clock;
    use yunlian_domain::warnings::{RectAction, Rectification, Warning};
    use yunlian_infra::db::ScopedFutureExt;
    let seed = seed("RACE_SEED", "verify vs return");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let clock = Arc::new(FixedClock::at("2026-12-03T01:00:00Z".parse().expect("t")));
    let app = spawn_app_on(HashMap::new(), clock.clone()).await;
    let admin = app.admin().await;
    let root = app.root_id(&admin).await;
    let township = app
        .create_org(&admin, &root, "committee", "审核镇党委")
        .await;
    let branch = app
        .create_org(&admin, &township, "branch", "整改村党支部")
        .await;
    let sec = staff(&app, &admin, &branch, 13991000000, 1).await[0].clone();
    // A second township admin, to return what the first verifies.
    let r = app
        .import(&admin, &township, &roster_csv(1, 13991000100), false)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let roster = app
        .list_all(&format!("/v1/members?org_id={township}"), &admin)
        .await;
    let other = roster
        .iter()
        .find(|m| m["phone"] == "13991000100")
        .expect("the second admin");
    let other_id = other["id"].as_str().expect("id").to_string();
    let r = app
        .post(
            &format!("/v1/members/{other_id}/password"),
            &admin,
            json!({"password": "dangyuan2026"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .post(
            "/v1/roles",
            &admin,
            json!({"member_id": other_id, "org_id": township, "role": "township_admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let (other_token, _) = app.login("13991000100", "dangyuan2026").await;
    let store = yunlian_infra::Db::connect(&app.database_url, 2)
        .await
        .expect("db");
    let (branch_id, sec_id): (uuid::Uuid, uuid::Uuid) =
        (branch.parse().expect("id"), sec.0.parse().expect("id"));
    let rounds = race_rounds(200, 20);
    let mut verified = 0;
    for round in 0..rounds {
        // An answered notice, as the scan and the branch would have left it.
        let now = clock.now();
        let w = store
            .write(move |mut c| {
                async move {
                    let raise = yunlian_domain::warnings::Raise {
                        rule: yunlian_domain::warnings::Rule::MeetingOverdueAgain,
                        level: yunlian_domain::warnings::Level::Red,
                        recipient: yunlian_domain::warnings::Recipient::Committee(branch_id),
                        org_id: branch_id,
                        subject: format!("org:{branch_id}:themed_party_day"),
                        period: format!("round-{round}"),
                        detail: json!({}),
                        rectification_due: None,
                    };
                    let w = Warning::raised(&raise, now);
                    yunlian_infra::db::warnings::insert(&mut c, &w, &raise.dedup_key()).await?;
                    let n = Rectification::issue(w.id, branch_id, &raise.period, now, now);
                    let answer = RectAction::Answer {
                        text: "已补开".into(),
                        attachments: vec![],
                    };
                    let n = n
                        .transition(answer, sec_id, now)
                        .map_err(yunlian_domain::Error::from)?;
                    yunlian_infra::db::warnings::insert_notice(&mut c, &n).await?;
                    Ok(w.id)
                }
                .scope_boxed()
            })
            .await
            .expect("a notice");
        let (d1, d2) = (rng.random_range(0..=1500), rng.random_range(0..=1500));
        let (v, r) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_micros(d1)).await;
                app.post(
                    &format!("/v1/warnings/{w}/rectification/verify"),
                    &admin,
                    json!({}),
                )
                .await
            },
            async {
                tokio::time::sleep(Duration::from_micros(d2)).await;
                app.post(
                    &format!("/v1/warnings/{w}/rectification/return"),
                    &other_token,
                    json!({"reason": "再补材料"}),
                )
                .await
            }
        );
        let ok: Vec<bool> = [&v, &r]
            .iter()
            .map(|x| x.status == StatusCode::OK)
            .collect();
        assert_eq!(
            ok.iter().filter(|o| **o).count(),
            1,
            "seed {seed} round {round}: {v:?} {r:?}"
        );
        for x in [&v, &r].iter().filter(|x| x.status != StatusCode::OK) {
            assert_eq!(
                (x.status, x.code()),
                (StatusCode::CONFLICT, "rectification_not_answered"),
                "seed {seed}"
            );
        }
        let now = app.get(&format!("/v1/warnings/{w}"), &admin).await.body;
        if ok[0] {
            verified += 1;
            assert_eq!(
                (
                    now["resolution"].as_str(),
                    now["rectification"]["state"].as_str()
                ),
                (Some("verified"), Some("verified")),
                "seed {seed}"
            );
        } else {
            assert_eq!(
                (
                    now["resolved_at"].clone(),
                    now["rectification"]["state"].as_str()
                ),
                (Value::Null, Some("returned")),
                "seed {seed}"
            );
        }
    }
    eprintln!("verify vs return: {verified} of {rounds} verified");
}

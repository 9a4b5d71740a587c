//! A seeded, reproducible simulation of many phones against the real server and database
//! through a faulty network: dropped requests, responses lost after commit, duplicates,
//! reordered pushes, app crashes between steps, and role grants and revocations meanwhile.
//!
//! Invariants: every queued mutation is applied exactly once; after the network heals every
//! phone holds exactly the server's view of its scopes and nothing it may no longer see;
//! cursors never go backwards. Rerun a failure with `SIM_SEED=<seed>`; `SIM_STEPS` sets the
//! length.

use crate::helpers::{branch_with_members, Phone};
use crate::helpers::{spawn_app, TestApp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const CITIES: [&str; 6] = ["杭州", "上海", "苏州", "宁波", "合肥", "深圳"];

struct SimPhone {
    phone: Phone,
    member_id: String,
    /// Every mutation ever made, by id: whether it is valid (a rejection is expected otherwise)
    /// and the whereabouts it sets.
    made: Vec<(bool, Option<&'static str>)>,
    /// The highest cursor version seen per scope and epoch, while the phone holds the scope: a
    /// dropped scope (a committee role revoked) starts again from a paged reset when regained.
    seen: BTreeMap<String, (Value, i64)>,
    /// The committee role grant, while the member holds one.
    grant: Option<String>,
    /// Office edits of this member by the admin.
    edits: i64,
}

impl SimPhone {
    fn check_cursors(&mut self) {
        let held = &self.phone.cursors;
        self.seen.retain(|scope, _| held.contains_key(scope));
        for (scope, c) in &self.phone.cursors {
            let v = c["v"].as_i64().unwrap_or(0);
            if let Some((epoch, prev)) = self.seen.get(scope) {
                if *epoch == c["epoch"] {
                    assert!(v >= *prev, "cursor of {scope} went back from {prev} to {v}");
                }
            }
            self.seen.insert(scope.clone(), (c["epoch"].clone(), v));
        }
    }
}

fn seed() -> u64 {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

#[tokio::test]
async fn phones_on_a_faulty_network_converge_with_every_mutation_applied_once() {
    let seed = seed();
    let steps: usize = std::env::var("SIM_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2500);
    eprintln!("sync simulation: seed {seed}, {steps} steps (rerun with SIM_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (branch, sec_token, members) =
        branch_with_members(&app, &admin, "模拟支部", 13960000000, 6).await;
    let mut phones: Vec<SimPhone> = members
        .into_iter()
        .map(|(member_id, token)| SimPhone {
            phone: Phone::new(token),
            member_id,
            made: vec![],
            seen: BTreeMap::new(),
            grant: None,
            edits: 0,
        })
        .collect();
    phones.push(SimPhone {
        phone: Phone::new(sec_token),
        member_id: String::new(),
        made: vec![],
        seen: BTreeMap::new(),
        grant: None,
        edits: 0,
    });
    let mut requests = 0usize;

    for step in 0..steps {
        let i = rng.random_range(0..phones.len());
        let roll: f64 = rng.random();
        if roll < 0.35 {
            // The member does something offline.
            for _ in 0..rng.random_range(1..=3) {
                let p = &mut phones[i];
                let (valid, city) = match rng.random_range(0..10) {
                    0 => (false, Some("")),
                    1 => (true, None),
                    n => (true, Some(CITIES[n % CITIES.len()])),
                };
                p.phone.whereabouts(city);
                p.made.push((valid, city));
            }
        } else if roll < 0.7 {
            push_through_faults(&app, &mut phones[i], &mut rng, &mut requests).await;
        } else if roll < 0.93 {
            pull_through_faults(&app, &mut phones[i], &mut rng, &mut requests).await;
        } else if roll < 0.97 {
            // The township admin grants or revokes a committee role meanwhile.
            let k = rng.random_range(0..phones.len() - 1);
            let p = &mut phones[k];
            match p.grant.take() {
                Some(g) => {
                    let r = app.delete(&format!("/v1/roles/{g}"), &admin).await;
                    assert_eq!(
                        r.status,
                        StatusCode::NO_CONTENT,
                        "step {step}: {:?}",
                        r.body
                    );
                }
                None => {
                    let body = json!({"member_id": p.member_id, "org_id": branch, "role": "committee_member"});
                    let r = app.post("/v1/roles", &admin, body).await;
                    assert_eq!(r.status, StatusCode::CREATED, "step {step}: {:?}", r.body);
                    p.grant = Some(r.id());
                }
            }
            requests += 1;
        } else {
            // The admin edits a member from the office: server-side writes interleave.
            let k = rng.random_range(0..phones.len() - 1);
            let p = &mut phones[k];
            let r = app
                .patch(
                    &format!("/v1/members/{}", p.member_id),
                    &admin,
                    json!({"name": format!("党员{step}")}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK);
            p.edits += 1;
            requests += 1;
        }
    }

    // The network heals: every phone pushes what it holds, then every phone pulls to the end.
    for p in &mut phones {
        while !p.phone.queue.is_empty() {
            let n = p.phone.queue.len().min(100);
            let r = p.phone.push(&app, p.phone.push_body(0, n)).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            p.phone
                .acknowledge(r.body["last_mutation_id"].as_i64().expect("last"));
            requests += 1;
        }
    }
    for p in &mut phones {
        requests += p.phone.pull_all(&app, 50).await;
        p.check_cursors();
    }
    let made: usize = phones.iter().map(|p| p.made.len()).sum();
    eprintln!("sync simulation: {requests} requests, {made} mutations made offline");

    for p in &phones {
        // Exactly once: a replay of every mutation answers from the ledger, one outcome per id,
        // applied when valid and rejected when not.
        let made = p.made.len();
        if made > 0 {
            let all: Vec<Value> = (1..=made as i64)
                .map(|id| {
                    let (_, city) = p.made[(id - 1) as usize];
                    let args = match city {
                        Some(c) => json!({"residence": "migrant", "migrant_city": c}),
                        None => json!({"residence": "at_home"}),
                    };
                    json!({"id": id, "name": "member.update_whereabouts.v1", "args": args})
                })
                .collect();
            let body =
                json!({"client_id": p.phone.client_id, "schema_version": 1, "mutations": all});
            let r = p.phone.push(&app, body).await;
            assert_eq!(
                r.body["last_mutation_id"].as_i64(),
                Some(made as i64),
                "seed {seed}"
            );
            let statuses: Vec<bool> = r.body["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(|x| x["status"] == "applied")
                .collect();
            let expected: Vec<bool> = p.made.iter().map(|(valid, _)| *valid).collect();
            assert_eq!(
                statuses, expected,
                "seed {seed}: outcomes of {}",
                p.member_id
            );
        }
        if p.member_id.is_empty() {
            continue;
        }
        // The phone's cursor of its own scope is the server's version of it. Each write bumps it
        // once per changed row: created, given a password, then once per office edit and at
        // most once per applied mutation (a push's mutations of the member are one change of
        // the row, in one transaction), at least once if any applied.
        let valid = p.made.iter().filter(|(v, _)| *v).count() as i64;
        let own = format!("member:{}", p.member_id);
        let v = p.phone.cursors[&own]["v"].as_i64().expect("own cursor");
        let status = app.get("/v1/sync/status", &p.phone.token).await;
        assert_eq!(
            status.body["scopes"][&own]["v"].as_i64(),
            Some(v),
            "seed {seed}: member scope of {}",
            p.member_id
        );
        assert!(
            v <= 2 + valid + p.edits && v >= 2 + valid.min(1) + p.edits,
            "seed {seed}: member scope of {} at {v}: {valid} applied, {} edits",
            p.member_id,
            p.edits
        );
        // The final whereabouts is the last valid one made.
        let last = p.made.iter().rev().find(|(v, _)| *v).map(|(_, c)| *c);
        let m = app
            .get(&format!("/v1/members/{}", p.member_id), &admin)
            .await;
        if let Some(city) = last {
            assert_eq!(m.body["migrant_city"].as_str(), city, "seed {seed}");
        }
    }

    // Every phone holds exactly what a fresh install of the same member would pull.
    for p in &phones {
        let mut fresh = Phone::new(p.phone.token.clone());
        fresh.pull_all(&app, 1000).await;
        assert_eq!(
            p.phone.rows.keys().collect::<Vec<_>>(),
            fresh.rows.keys().collect::<Vec<_>>(),
            "seed {seed}: scopes"
        );
        assert_eq!(p.phone.rows, fresh.rows, "seed {seed}: rows");
        let committee = format!("org:{branch}:committee");
        let holds_role = p.grant.is_some() || p.member_id.is_empty();
        assert_eq!(
            p.phone.rows.contains_key(&committee),
            holds_role,
            "seed {seed}: roster only with a role"
        );
    }
}

async fn push_through_faults(
    app: &TestApp,
    p: &mut SimPhone,
    rng: &mut StdRng,
    requests: &mut usize,
) {
    if p.phone.queue.is_empty() {
        return;
    }
    let n = rng.random_range(1..=p.phone.queue.len().min(20));
    let fault: f64 = rng.random();
    if fault < 0.15 {
        return; // the request never left the village
    }
    if fault < 0.25 && n >= 2 {
        // Reordered: the second half arrives first and finds a gap.
        let half = n / 2;
        let r = p.phone.push(app, p.phone.push_body(half, n - half)).await;
        *requests += 1;
        assert!(
            r.status == StatusCode::CONFLICT || r.status == StatusCode::OK,
            "{:?}",
            r.body
        );
        if r.status == StatusCode::CONFLICT {
            assert_eq!(r.code(), "mutation_gap");
        }
        let r = p.phone.push(app, p.phone.push_body(0, half)).await;
        *requests += 1;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        p.phone
            .acknowledge(r.body["last_mutation_id"].as_i64().expect("last"));
        return;
    }
    let r = p.phone.push(app, p.phone.push_body(0, n)).await;
    *requests += 1;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    if fault < 0.4 {
        return; // committed, but the answer was lost on the way back
    }
    let r = if fault < 0.5 {
        // Duplicated by a retrying proxy: the second copy answers from the ledger.
        *requests += 1;
        p.phone.push(app, p.phone.push_body(0, n)).await
    } else {
        r
    };
    p.phone
        .acknowledge(r.body["last_mutation_id"].as_i64().expect("last"));
}

async fn pull_through_faults(
    app: &TestApp,
    p: &mut SimPhone,
    rng: &mut StdRng,
    requests: &mut usize,
) {
    let fault: f64 = rng.random();
    if fault < 0.15 {
        return;
    }
    let r = p.phone.pull_page(app, rng.random_range(1..=30)).await;
    *requests += 1;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    if fault < 0.3 {
        return; // lost on the way back, or the app crashed before saving it
    }
    p.phone.apply(&r.body);
    p.check_cursors();
}

//! Phones as the tests drive them: one with a registered device key that signs clock-in
//! evidence, and one that queues mutations and keeps a local copy of its scopes.

use crate::helpers::{Res, TestApp};
use base64::Engine as _;
use p256::ecdsa::SigningKey;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

pub fn phone_key(seed: u8) -> (SigningKey, String) {
    let sk = SigningKey::from_slice(&[seed.max(1); 32]).expect("key");
    let pk = sk.verifying_key().to_encoded_point(false);
    (
        sk,
        base64::engine::general_purpose::STANDARD.encode(pk.as_bytes()),
    )
}

/// A phone with a registered P-256 key, able to sign clock-in evidence.
pub struct KeyPhone {
    pub token: String,
    pub member_id: String,
    pub device_id: String,
    pub key: SigningKey,
}

impl KeyPhone {
    pub async fn register(
        app: &crate::helpers::TestApp,
        token: &str,
        member_id: &str,
        seed: u8,
    ) -> KeyPhone {
        let (key, public) = phone_key(seed);
        let r = app
            .post(
                "/v1/devices",
                token,
                json!({"algorithm": "p256", "public_key": public, "unlock": "face"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        KeyPhone {
            token: token.to_string(),
            member_id: member_id.to_string(),
            device_id: r.id(),
            key,
        }
    }

    /// The evidence body, signed over the canonical encoding.
    pub fn evidence(
        &self,
        meeting: &str,
        code: &str,
        at: chrono::DateTime<chrono::Utc>,
        loc: Option<(f64, f64, f64)>,
    ) -> serde_json::Value {
        use p256::ecdsa::{signature::Signer, Signature};
        let ev = yunlian_domain::attendance::ClockInEvidence {
            meeting_id: meeting.parse().expect("uuid"),
            member_id: self.member_id.parse().expect("uuid"),
            device_id: self.device_id.parse().expect("uuid"),
            code: code.to_string(),
            event_time: at,
            location: loc.map(
                |(lat, lng, accuracy_m)| yunlian_domain::attendance::Location {
                    lat,
                    lng,
                    accuracy_m,
                },
            ),
        };
        let sig: Signature = self.key.sign(&ev.canonical());
        let mut body = json!({
            "device_id": self.device_id, "code": code, "device_time": at,
            "signature": base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes()),
        });
        if let Some((lat, lng, acc)) = loc {
            body["location"] = json!({"lat": lat, "lng": lng, "accuracy_m": acc});
        }
        body
    }
}

/// The code the secretary's phone shows at `at`, computed from the synced secret.
pub async fn code_at(
    app: &crate::helpers::TestApp,
    sec: &str,
    meeting: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> String {
    let r = app.get(&format!("/v1/meetings/{meeting}/code"), sec).await;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(r.body["secret_b64"].as_str().expect("secret"))
        .expect("b64");
    yunlian_domain::attendance::meeting_code(&secret, at)
}

/// A phone: its client id, its queue of mutations, and its local copy of every scope.
pub struct Phone {
    pub client_id: Uuid,
    pub token: String,
    pub next_id: i64,
    /// Mutations made but not yet acknowledged, in order.
    pub queue: Vec<Value>,
    pub cursors: BTreeMap<String, Value>,
    pub rows: BTreeMap<String, BTreeMap<String, Value>>,
}

impl Phone {
    pub fn new(token: String) -> Self {
        Phone {
            client_id: Uuid::now_v7(),
            token,
            next_id: 1,
            queue: vec![],
            cursors: BTreeMap::new(),
            rows: BTreeMap::new(),
        }
    }

    pub fn whereabouts(&mut self, city: Option<&str>) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let args = match city {
            Some(c) => json!({"residence": "migrant", "migrant_city": c}),
            None => json!({"residence": "at_home"}),
        };
        self.queue
            .push(json!({"id": id, "name": "member.update_whereabouts.v1", "args": args}));
        id
    }

    pub fn push_body(&self, from: usize, n: usize) -> Value {
        let batch: Vec<Value> = self.queue.iter().skip(from).take(n).cloned().collect();
        json!({"client_id": self.client_id, "schema_version": 1, "mutations": batch})
    }

    pub async fn push(&self, app: &TestApp, body: Value) -> Res {
        app.post("/v1/sync/push", &self.token, body).await
    }

    /// Forgets acknowledged mutations.
    pub fn acknowledge(&mut self, last: i64) {
        self.queue.retain(|m| m["id"].as_i64().unwrap_or(0) > last);
    }

    pub async fn pull_page(&self, app: &TestApp, limit: u32) -> Res {
        let body = json!({"client_id": self.client_id, "schema_version": 1, "limit": limit, "cursors": self.cursors});
        app.post("/v1/sync/pull", &self.token, body).await
    }

    /// Applies one pull page to the local store; returns whether more pages wait.
    pub fn apply(&mut self, page: &Value) -> bool {
        for s in page["scopes"].as_array().expect("scopes") {
            let scope = s["scope"].as_str().expect("scope").to_string();
            match s["op"].as_str() {
                Some("drop") => {
                    self.rows.remove(&scope);
                    self.cursors.remove(&scope);
                    continue;
                }
                Some("reset") => {
                    self.rows.insert(scope.clone(), BTreeMap::new());
                }
                Some("changes") => {}
                other => panic!("unknown op {other:?}"),
            }
            let rows = self.rows.entry(scope.clone()).or_default();
            for ch in s["changes"].as_array().into_iter().flatten() {
                let key = format!(
                    "{}/{}",
                    ch["entity"].as_str().unwrap_or(""),
                    ch["id"].as_str().unwrap_or("")
                );
                match ch["op"].as_str() {
                    Some("put") => {
                        rows.insert(key, ch["row"].clone());
                    }
                    Some("del") => {
                        rows.remove(&key);
                    }
                    other => panic!("unknown change {other:?}"),
                }
            }
            self.cursors
                .insert(scope, json!({"v": s["v"], "epoch": s["epoch"]}));
        }
        page["has_more"].as_bool().unwrap_or(false)
    }

    /// Pulls until nothing more waits; returns the number of pages.
    pub async fn pull_all(&mut self, app: &TestApp, limit: u32) -> usize {
        for pages in 1..=1000 {
            let r = self.pull_page(app, limit).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            if !self.apply(&r.body) {
                return pages;
            }
        }
        panic!("pull never finished");
    }
}

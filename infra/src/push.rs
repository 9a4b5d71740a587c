//! The push gateway port made real. China has no FCM: a county reaches phones through the
//! vendors' channels or an aggregator, behind a push relay of its own. `Webhook` posts each
//! push to that relay, signed (HMAC-SHA256 of `timestamp.body` under a shared secret, as
//! Stripe and GitHub sign theirs); `Log` only writes a line (a township without a relay: its
//! phones still get warnings live over `streamEvents` and in their pulls).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use yunlian_domain::warnings::push::PushMessage;

#[derive(Clone)]
pub enum Gateway {
    Log,
    Webhook {
        url: String,
        secret: String,
        client: reqwest::Client,
    },
}

/// The signature header's value for a body sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Gateway {
    pub fn webhook(url: &str, secret: &str) -> Result<Gateway, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Gateway::Webhook {
            url: url.to_string(),
            secret: secret.to_string(),
            client,
        })
    }

    /// Sends one push; an error says why (the push is retried, then dead-lettered).
    pub async fn send(&self, m: &PushMessage, timestamp: i64) -> Result<(), String> {
        match self {
            Gateway::Log => {
                // Never the tokens: they address a person's phone.
                tracing::info!(push = %m.id, member = %m.member_id, devices = m.tokens.len(),
                    items = m.items.len(), "push (no relay configured)");
                Ok(())
            }
            Gateway::Webhook {
                url,
                secret,
                client,
            } => {
                let body = serde_json::to_vec(m).map_err(|e| e.to_string())?;
                let r = client
                    .post(url)
                    .header("content-type", "application/json")
                    .header("x-yunlian-timestamp", timestamp.to_string())
                    .header("x-yunlian-signature", signature(secret, timestamp, &body))
                    .header("idempotency-key", m.id.to_string())
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("relay unreachable: {}", e.without_url()))?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("relay answered {}", r.status().as_u16()))
                }
            }
        }
    }
}

//! `streamEvents`: Server-Sent Events of the warnings addressed to the caller (or to a
//! committee they sit on or oversee), from this instance's hub. Each event's id is
//! `epoch:offset`; a reconnect with `Last-Event-ID` gets what it missed, or a `reset` event when
//! that cannot be told (another epoch, a gap), and the phone pulls. The stream ends when the
//! access token it was opened with expires; the phone reconnects with a fresh one and its last
//! id, missing nothing.

use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::warnings::Recipient;
use yunlian_infra::db::ScopedFutureExt;
use yunlian_infra::stream::{Item, Offset, Subscription};

/// A comment line this often keeps proxies from closing a quiet stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// For clients that cannot set the header.
    last_event_id: Option<String>,
}

/// `epoch:offset`, as the stream's ids are written.
fn parse_last(raw: &str) -> Option<(String, Offset)> {
    let (epoch, offset) = raw.trim().rsplit_once(':')?;
    uuid::Uuid::parse_str(epoch).ok()?;
    Some((epoch.to_string(), Offset::parse(offset)?))
}

/// Is this warning event for the caller?
fn for_caller(p: &Principal, payload: &serde_json::Value) -> bool {
    let recipient: Option<Recipient> = serde_json::from_value(payload["recipient"].clone()).ok();
    match recipient {
        Some(Recipient::Member(m)) => m == p.member_id,
        Some(Recipient::Committee(_)) => payload["committee_path"]
            .as_str()
            .is_some_and(|path| p.can(Action::ReadMembers, path)),
        None => false,
    }
}

struct Pump {
    sub: Subscription,
    p: Principal,
    state: web::Data<AppState>,
    queue: VecDeque<Bytes>,
    last: Option<Offset>,
    keepalive: tokio::time::Interval,
    until: tokio::time::Instant,
}

impl Pump {
    fn reset(&mut self, epoch: &str, reason: &str) {
        self.last = None;
        let data = serde_json::json!({ "epoch": epoch, "reason": reason });
        self.queue
            .push_back(Bytes::from(format!("event: reset\ndata: {data}\n\n")));
    }

    fn offer(&mut self, item: &Item) {
        match item {
            Item::Reset { epoch, reason } => self.reset(epoch, reason),
            Item::Event {
                epoch,
                offset,
                topic,
                payload,
            } => {
                // The live feed may repeat what the backlog gave: once per connection.
                if self.last.is_some_and(|l| *offset <= l) {
                    return;
                }
                self.last = Some(*offset);
                if !for_caller(&self.p, payload) {
                    return;
                }
                self.queue.push_back(Bytes::from(format!(
                    "id: {epoch}:{offset}\nevent: {topic}\ndata: {payload}\n\n"
                )));
                if topic == "warning.raised" {
                    self.delivered(payload);
                }
            }
        }
    }

    /// The first delivery of a warning on this instance records its time.
    fn delivered(&self, payload: &serde_json::Value) {
        let Some(id) = payload["warning_id"].as_str().and_then(|s| s.parse().ok()) else {
            return;
        };
        if !self.state.hub.first_delivery(id) {
            return;
        }
        let (db, now) = (self.state.db.clone(), self.state.clock.now());
        tokio::spawn(async move {
            let r = db
                .write(move |mut c| {
                    async move { yunlian_infra::db::warnings::delivered(&mut c, id, now).await }
                        .scope_boxed()
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(warning = %id, error = %e, "could not record a delivery");
            }
        });
    }

    /// The next chunk to send; `None` ends the stream.
    async fn next(mut self) -> Option<(Result<Bytes, actix_web::Error>, Pump)> {
        loop {
            if let Some(b) = self.queue.pop_front() {
                return Some((Ok(b), self));
            }
            tokio::select! {
                item = self.sub.live.recv() => match item {
                    Ok(item) => self.offer(&item),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let epoch = self.state.hub.epoch();
                        self.reset(&epoch, "gap");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.keepalive.tick() => self.queue.push_back(Bytes::from_static(b": keepalive\n\n")),
                _ = tokio::time::sleep_until(self.until) => return None,
            }
        }
    }
}

pub async fn stream_events(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    q: crate::extract::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let raw = req
        .headers()
        .get("last-event-id")
        .map(|h| h.to_str().unwrap_or("\u{0}").to_string())
        .or(q.into_inner().last_event_id);
    let last = match raw {
        None => None,
        Some(r) => {
            Some(parse_last(&r).ok_or_else(|| ApiError::bad_request("invalid_last_event_id"))?)
        }
    };
    let sub = state.hub.subscribe(last.clone()).await;
    let ttl = Duration::from_secs(state.config.access_token_ttl_secs.max(1) as u64);
    let mut pump = Pump {
        queue: VecDeque::from([Bytes::from(format!(
            "retry: 3000\nevent: hello\ndata: {}\n\n",
            serde_json::json!({ "epoch": sub.epoch })
        ))]),
        p: user.0.clone(),
        state: state.clone(),
        last: None,
        keepalive: tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE),
        until: tokio::time::Instant::now() + ttl,
        sub,
    };
    if let Some(why) = pump.sub.reset {
        let epoch = pump.sub.epoch.clone();
        pump.reset(&epoch, why);
    } else if let Some((_, after)) = &last {
        pump.last = Some(*after);
    }
    let missed: Vec<Arc<Item>> = std::mem::take(&mut pump.sub.missed);
    for item in &missed {
        pump.offer(item);
    }
    let body = futures_util::stream::unfold(pump, Pump::next);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}

//! Pushes to phones: the consumer that gathers each recipient's warning events into one push
//! per minute, the sender (a job) that sends due pushes through the gateway outside any
//! transaction and records each outcome, push tokens per device, and dead letters.

use super::authorize;
use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;
use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::events::DomainEvent;
use yunlian_domain::warnings::push::{
    after_failure, compose, PushItem, PushMessage, PushState, PushToken, MAX_ATTEMPTS, PROVIDERS,
    WINDOW_SECS,
};
use yunlian_domain::warnings::Recipient;
use yunlian_domain::Error;
use yunlian_infra::db::{self, push::Push, Conn, ScopedFutureExt};
use yunlian_infra::push::Gateway;
use yunlian_infra::Db;

pub const CONSUMER: &str = "push";
pub const TOPICS: &[&str] = &["warning.raised", "warning.resolved"];

/// The members a recipient's phones belong to.
async fn members_of(c: &mut Conn<'_>, r: Recipient) -> Result<Vec<Uuid>, Error> {
    match r {
        Recipient::Member(m) => Ok(vec![m]),
        Recipient::Committee(org) => db::push::committee_of(c, org).await,
    }
}

async fn gather(c: &mut Conn<'_>, e: DomainEvent, now: DateTime<Utc>) -> Result<usize, Error> {
    let (recipient, item) = match &e {
        DomainEvent::WarningRaised(w) => (
            w.recipient,
            PushItem {
                warning_id: w.warning_id,
                topic: e.topic().into(),
                rule: w.rule,
                level: Some(w.level),
            },
        ),
        DomainEvent::WarningResolved(w) => (
            w.recipient,
            PushItem {
                warning_id: w.warning_id,
                topic: e.topic().into(),
                rule: w.rule,
                level: None,
            },
        ),
        _ => return Ok(0),
    };
    let window = now + TimeDelta::seconds(WINDOW_SECS);
    let members = members_of(c, recipient).await?;
    for m in &members {
        db::push::gather(c, *m, &item, window, now).await?;
    }
    Ok(members.len())
}

/// The consumer's round (see [`super::consume`]).
pub async fn consume(db: &Db, now: DateTime<Utc>) -> Result<usize, Error> {
    super::consume(
        db,
        CONSUMER,
        TOPICS,
        |c, e, _, now| async move { gather(c, e, now).await }.scope_boxed(),
        now,
    )
    .await
}

/// The sender's round: every due push claimed, sent, and its outcome recorded. Returns how
/// many were sent.
pub async fn send_due(db: &Db, gateway: &Gateway, now: DateTime<Utc>) -> Result<usize, Error> {
    let due = db
        .write(move |mut c| {
            async move { db::push::claim_due(&mut c, now, 100).await }.scope_boxed()
        })
        .await?;
    let mut sent = 0;
    for p in due {
        let member = p.member_id;
        let tokens = db
            .read(move |mut c| {
                async move { db::push::tokens_of(&mut c, member).await }.scope_boxed()
            })
            .await?;
        let (state, at, error) = if tokens.is_empty() {
            (PushState::NoDevice, now, None)
        } else {
            let (title, body) = compose(&p.items);
            let m = PushMessage {
                id: p.id,
                member_id: p.member_id,
                tokens,
                title,
                body,
                items: p.items.clone(),
            };
            match gateway.send(&m, now.timestamp()).await {
                Ok(()) => (PushState::Sent, now, None),
                Err(why) => {
                    tracing::warn!(push = %p.id, attempt = p.attempts + 1, error = %why, "push failed");
                    let (s, at) = after_failure(p.attempts + 1, MAX_ATTEMPTS, now);
                    (s, at, Some(why))
                }
            }
        };
        sent += usize::from(state == PushState::Sent);
        let outcome = match state {
            PushState::Sent => "sent",
            PushState::Dead => "dead",
            _ => "retry",
        };
        metrics::counter!("yunlian_push_deliveries_total", "outcome" => outcome).increment(1);
        db.write(move |mut c| {
            let (p, error) = (p.clone(), error.clone());
            async move { db::push::record(&mut c, &p, state, at, error.as_deref(), now).await }
                .scope_boxed()
        })
        .await?;
    }
    Ok(sent)
}

/// The caller's own device: another member's is `device_not_yours` (or not found outside the
/// caller's subtree).
async fn own_device(
    c: &mut Conn<'_>,
    p: &Principal,
    device: Uuid,
) -> Result<yunlian_domain::attendance::Device, Error> {
    let (d, path) = db::devices::get(c, device).await?.ok_or(Error::NotFound)?;
    if d.member_id != p.member_id {
        return Err(if p.sees(&path) {
            Error::Forbidden("device_not_yours")
        } else {
            Error::NotFound
        });
    }
    Ok(d)
}

/// `registerPushToken`: the phone's token at its vendor's channel, replacing an earlier one.
pub async fn register_token(
    c: &mut Conn<'_>,
    p: &Principal,
    device: Uuid,
    t: PushToken,
    now: DateTime<Utc>,
) -> Result<PushToken, Error> {
    if own_device(c, p, device).await?.revoked_at.is_some() {
        return Err(Error::Conflict("device_revoked"));
    }
    let mut errs = Vec::new();
    if !PROVIDERS.contains(&t.provider.as_str()) {
        errs.push(yunlian_domain::FieldError::new(
            "provider",
            "invalid_provider",
        ));
    }
    if t.token.is_empty() || t.token.len() > 512 || !t.token.bytes().all(|b| b.is_ascii_graphic()) {
        errs.push(yunlian_domain::FieldError::new(
            "token",
            "invalid_push_token",
        ));
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    db::push::set_token(c, device, p.member_id, &t, now).await?;
    Ok(t)
}

/// `deletePushToken`.
pub async fn delete_token(c: &mut Conn<'_>, p: &Principal, device: Uuid) -> Result<(), Error> {
    own_device(c, p, device).await?;
    if !db::push::delete_token(c, device).await? {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// `listDeadLetters`: pushes that failed every attempt, inside the org (a township admin's).
pub async fn dead_letters(
    c: &mut Conn<'_>,
    p: &Principal,
    org: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Push>, Error> {
    let o = db::orgs::get(c, org).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageSettings, &o.path)?;
    db::push::dead_within(c, &o.path, after, limit).await
}

/// `replayDeadLetter`: a dead letter goes out again, from its first attempt.
pub async fn replay(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Push, Error> {
    let (_, path) = db::push::get(c, id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageSettings, &path)?;
    if !db::push::replay(c, id, now).await? {
        return Err(Error::Conflict("push_not_dead"));
    }
    db::push::get(c, id)
        .await?
        .map(|(p, _)| p)
        .ok_or(Error::NotFound)
}

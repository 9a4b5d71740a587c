//! The sync API: phones push queued mutations and pull what changed in their scopes.

use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;
use yunlian_domain::auth::Principal;
use yunlian_domain::sync::{
    event_time, plan, visible_scopes, Cursor, Entity, EventTime, ImplausibleTime, Plan, Scope,
    ScopeState, TimeSource, DEFAULT_PULL_LIMIT, MAX_PULL_BYTES, MAX_PULL_LIMIT, MAX_PUSH_MUTATIONS,
    SCHEMA_VERSION,
};
use yunlian_domain::Error;
use yunlian_infra::db::{self, orgs::OrgFilter, sync::Outcome, Conn, ScopedFutureExt};

fn check_schema(v: u32) -> Result<(), ApiError> {
    if v == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(ApiError::field(
            "schema_version",
            "unsupported_schema_version",
        ))
    }
}

/// Scopes a pull may name cursors for.
const MAX_CURSORS: usize = 10_000;

/// A mutation name as phones send them (`member.update_whereabouts.v1`): 1 to 100 lowercase
/// letters, digits, dots and underscores. Anything else could not name a mutation, and is kept
/// out of the ledger.
fn plausible_name(n: &str) -> bool {
    (1..=100).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
}

/// A boot id: 1 to 64 printable ASCII characters.
fn plausible_boot_id(b: &str) -> bool {
    (1..=64).contains(&b.len()) && b.bytes().all(|c| c.is_ascii_graphic())
}

fn client_not_yours() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "client_not_yours")
}

// ---------------------------------------------------------------------------------------------
// Push

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushBody {
    client_id: Uuid,
    schema_version: u32,
    /// The phone's boot id and monotonic uptime when it sent this push.
    boot_id: Option<String>,
    uptime_ms: Option<i64>,
    mutations: Vec<MutationIn>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MutationIn {
    /// Increases by one per client, from 1.
    id: i64,
    /// Versioned: `member.update_whereabouts.v1`.
    name: String,
    args: Value,
    /// When the phone made it: its wall clock, and its boot id and uptime then.
    device_time: Option<DateTime<Utc>>,
    boot_id: Option<String>,
    uptime_ms: Option<i64>,
}

#[derive(Serialize)]
struct MutationOut {
    id: i64,
    name: String,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    event_time: DateTime<Utc>,
    time_source: String,
}

impl From<Outcome> for MutationOut {
    fn from(o: Outcome) -> Self {
        MutationOut {
            id: o.mutation_id,
            name: o.name,
            status: o.status,
            code: o.code,
            result: o.result,
            event_time: o.event_time,
            time_source: o.time_source,
        }
    }
}

/// What the mutation's transaction found.
enum Step {
    Done(Outcome),
    /// Seen before: its recorded outcome (none if it predates the ledger's memory).
    Seen(i64, Option<Outcome>),
    Gap {
        expected: i64,
    },
    /// Seen before with another name or other arguments: a reused id, refused.
    Reused,
    /// The client id belongs to another member (claimed by them at the same moment).
    NotYours,
}

/// A rejection is permanent: the phone's input can never succeed, so it is recorded and the
/// ledger moves on. Anything else (database down, a bug) is transient: nothing is recorded.
fn rejection(e: &Error) -> Option<(String, Option<Value>)> {
    match e {
        Error::Invalid(fields) => Some(("invalid_args".into(), Some(json!({ "errors": fields })))),
        Error::Unprocessable(c) | Error::Forbidden(c) | Error::Conflict(c) => {
            Some((c.to_string(), None))
        }
        Error::NotFound => Some(("not_found".into(), None)),
        Error::Unauthenticated(c) => Some((c.to_string(), None)),
        Error::RateLimited { .. }
        | Error::Busy(_)
        | Error::Unavailable(_)
        | Error::StorageFull(_)
        | Error::Internal(_) => None,
    }
}

pub async fn push(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<PushBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_schema(body.schema_version)?;
    if body.mutations.len() > MAX_PUSH_MUTATIONS {
        return Err(ApiError::field("mutations", "too_many_mutations"));
    }
    if body.boot_id.as_ref().is_some_and(|b| !plausible_boot_id(b)) {
        return Err(ApiError::field("boot_id", "invalid_boot_id"));
    }
    for (i, m) in body.mutations.iter().enumerate() {
        let consecutive = i == 0 || m.id == body.mutations[i - 1].id + 1;
        if m.id < 1 || !consecutive {
            return Err(ApiError::field("mutations", "mutation_ids_not_consecutive"));
        }
        if !plausible_name(&m.name) {
            return Err(ApiError::field(
                &format!("mutations[{i}].name"),
                "invalid_mutation_name",
            ));
        }
        if m.boot_id.as_ref().is_some_and(|b| !plausible_boot_id(b)) {
            return Err(ApiError::field(
                &format!("mutations[{i}].boot_id"),
                "invalid_boot_id",
            ));
        }
    }
    let (client, member) = (body.client_id, user.member_id);
    let ledger = state
        .db
        .read(move |mut c| async move { db::sync::ledger(&mut c, client).await }.scope_boxed())
        .await?;
    if ledger.is_some_and(|l| l.member_id != member) {
        return Err(client_not_yours());
    }

    // One receive instant for the whole push: the device times of its mutations are all
    // anchored to the same moment, however long the earlier ones take to apply.
    let received = state.clock.now();
    let mut results = Vec::with_capacity(body.mutations.len());
    for m in body.mutations {
        let et = event_time(
            received,
            body.boot_id.as_deref(),
            body.uptime_ms,
            m.boot_id.as_deref(),
            m.uptime_ms,
            m.device_time,
        )
        .map_err(|_| ImplausibleTime::CODE);
        let (id, name) = (m.id, m.name.clone());
        match apply_one(&state, &user, client, m, et, received).await? {
            Step::Done(o) => {
                let out = MutationOut::from(o);
                let outcome = if out.status == "rejected" {
                    "rejected"
                } else {
                    "applied"
                };
                metrics::counter!("yunlian_sync_mutations_total", "outcome" => outcome)
                    .increment(1);
                results.push(out)
            }
            Step::Seen(_, Some(o)) => {
                metrics::counter!("yunlian_sync_mutations_total", "outcome" => "duplicate")
                    .increment(1);
                results.push(MutationOut::from(o))
            }
            // Processed long ago, its outcome since pruned: done, never applied again.
            Step::Seen(id, None) => results.push({
                metrics::counter!("yunlian_sync_mutations_total", "outcome" => "duplicate")
                    .increment(1);
                MutationOut {
                    id,
                    name,
                    status: "seen".into(),
                    code: None,
                    result: None,
                    event_time: received,
                    time_source: "server".into(),
                }
            }),
            Step::Gap { expected } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "mutation_gap");
                e.extra = Some(Box::new(
                    json!({ "expected_id": expected, "results": results }),
                ));
                return Err(e);
            }
            Step::Reused => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "mutation_id_reused");
                e.extra = Some(Box::new(json!({ "mutation_id": id, "results": results })));
                return Err(e);
            }
            Step::NotYours => {
                return Err(ApiError::new(StatusCode::CONFLICT, "client_id_conflict"));
            }
        }
    }
    metrics::counter!("yunlian_sync_pushes_total").increment(1);
    let last = state
        .db
        .read(move |mut c| async move { db::sync::ledger(&mut c, client).await }.scope_boxed())
        .await?
        .map_or(0, |l| l.last_mutation_id);
    Ok(HttpResponse::Ok().json(json!({ "last_mutation_id": last, "results": results })))
}

/// Runs one mutation in its own transaction with the phone's ledger row locked; a rejection
/// rolls the handler back and is then recorded in a second transaction. A mutation whose times
/// no phone can have (`et` is that code) is rejected without running.
async fn apply_one(
    state: &AppState,
    user: &AuthUser,
    client: Uuid,
    m: MutationIn,
    et: Result<EventTime, &'static str>,
    received: DateTime<Utc>,
) -> Result<Step, ApiError> {
    let principal = user.0.clone();
    let member = principal.member_id;
    let now = state.clock.now();
    let share = state.config.settings_root();
    let digest = mutation_digest(&m.name, &m.args);
    let attempt = m.clone();
    let d = digest.clone();
    let (refused, et) = match et {
        Ok(et) => (None, et),
        Err(code) => (
            Some(Error::Unprocessable(code)),
            EventTime {
                at: received,
                source: TimeSource::Server,
            },
        ),
    };
    let first = match refused {
        Some(e) => Err(e),
        None => {
            state
                .db
                .write(move |mut c| {
                    async move {
                        if let Some(step) =
                            position(&mut c, client, member, attempt.id, &d, now).await?
                        {
                            return Ok(step);
                        }
                        let cx = crate::mutations::Cx {
                            principal: &principal,
                            event_time: et,
                            now,
                            settings: share,
                        };
                        let result =
                            crate::mutations::run(&mut c, cx, &attempt.name, &attempt.args).await?;
                        let o = Outcome {
                            mutation_id: attempt.id,
                            name: attempt.name.clone(),
                            status: "applied".into(),
                            code: None,
                            result: Some(result),
                            event_time: et.at,
                            time_source: time_source(et),
                            digest: Some(d),
                        };
                        db::sync::settle(&mut c, client, &o, now).await?;
                        Ok(Step::Done(o))
                    }
                    .scope_boxed()
                })
                .await
        }
    };
    let err = match first {
        Ok(step) => return Ok(step),
        Err(e) => e,
    };
    let Some((code, detail)) = rejection(&err) else {
        return Err(err.into());
    };
    tracing::info!(client = %client, mutation = m.id, name = %m.name, code = %code, "mutation rejected");
    let step = state
        .db
        .write(move |mut c| {
            async move {
                if let Some(step) = position(&mut c, client, member, m.id, &digest, now).await? {
                    return Ok(step);
                }
                let o = Outcome {
                    mutation_id: m.id,
                    name: m.name.clone(),
                    status: "rejected".into(),
                    code: Some(code),
                    result: detail,
                    event_time: et.at,
                    time_source: time_source(et),
                    digest: Some(digest),
                };
                db::sync::settle(&mut c, client, &o, now).await?;
                Ok(Step::Done(o))
            }
            .scope_boxed()
        })
        .await?;
    Ok(step)
}

/// Locks the phone's ledger and places mutation `id` against it: another member's phone,
/// already seen (with its recorded outcome, unless the content differs), past a gap, or `None`:
/// the next one, to be settled in this transaction. The owner is checked under the lock, so of
/// two members claiming one new client id at once, the second is refused.
async fn position(
    c: &mut Conn<'_>,
    client: Uuid,
    member: Uuid,
    id: i64,
    digest: &str,
    now: DateTime<Utc>,
) -> Result<Option<Step>, Error> {
    let ledger = db::sync::lock_ledger(c, client, member, now).await?;
    if ledger.member_id != member {
        return Ok(Some(Step::NotYours));
    }
    if id <= ledger.last_mutation_id {
        let o = db::sync::outcome(c, client, id).await?;
        if o.as_ref()
            .and_then(|o| o.digest.as_deref())
            .is_some_and(|d| d != digest)
        {
            return Ok(Some(Step::Reused));
        }
        return Ok(Some(Step::Seen(id, o)));
    }
    if id > ledger.last_mutation_id + 1 {
        return Ok(Some(Step::Gap {
            expected: ledger.last_mutation_id + 1,
        }));
    }
    Ok(None)
}

/// SHA-256 of a mutation's name and its arguments in canonical JSON (object keys sorted at
/// every level), hex: what a replay under the same id must match.
fn mutation_digest(name: &str, args: &Value) -> String {
    use sha2::{Digest, Sha256};
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    canonical(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::with_capacity(256);
    text.push_str(name);
    text.push('\n');
    canonical(args, &mut text);
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn time_source(et: EventTime) -> String {
    serde_json::to_value(et.source)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Pull

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullBody {
    client_id: Uuid,
    schema_version: u32,
    limit: Option<u32>,
    #[serde(default)]
    cursors: BTreeMap<String, Cursor>,
}

#[derive(Serialize)]
struct ChangeOut {
    op: &'static str,
    entity: Entity,
    id: Uuid,
    v: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<Value>,
}

#[derive(Serialize)]
struct ScopeOut {
    scope: String,
    op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<Option<Uuid>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    has_more: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    changes: Vec<ChangeOut>,
}

/// Every scope the caller may see now, from their current grants.
async fn visible(c: &mut Conn<'_>, p: &Principal) -> Result<BTreeSet<Scope>, Error> {
    let filter = OrgFilter {
        roots: p.visible_roots(),
        limit: 100_000,
        ..Default::default()
    };
    let orgs = db::orgs::list(c, &filter).await?;
    Ok(visible_scopes(p, &orgs))
}

pub async fn pull(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<PullBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_schema(body.schema_version)?;
    let limit = body.limit.unwrap_or(DEFAULT_PULL_LIMIT);
    if limit == 0 {
        return Err(ApiError::field("limit", "invalid_limit"));
    }
    if limit > MAX_PULL_LIMIT {
        return Err(ApiError::field("limit", "limit_too_large"));
    }
    if body.cursors.len() > MAX_CURSORS {
        return Err(ApiError::field("cursors", "too_many_cursors"));
    }
    let mut cursors = BTreeMap::new();
    for (k, c) in body.cursors {
        let s = Scope::parse(&k).ok_or_else(|| ApiError::field("cursors", "invalid_scope"))?;
        cursors.insert(s, c);
    }
    let principal = user.0.clone();
    let client = body.client_id;
    let page = state
        .db
        .snapshot(move |mut c| {
            async move { pull_page(&mut c, &principal, client, &cursors, limit as i64).await }
                .scope_boxed()
        })
        .await?;
    match page {
        Some(p) => Ok(HttpResponse::Ok().json(p)),
        None => Err(client_not_yours()),
    }
}

/// One page of a pull, read in one snapshot; `None` when the client id is another member's.
async fn pull_page(
    c: &mut Conn<'_>,
    p: &Principal,
    client: Uuid,
    cursors: &BTreeMap<Scope, Cursor>,
    limit: i64,
) -> Result<Option<Value>, Error> {
    let ledger = db::sync::ledger(c, client).await?;
    if ledger.is_some_and(|l| l.member_id != p.member_id) {
        return Ok(None);
    }
    let visible = visible(c, p).await?;
    let names: Vec<String> = visible.iter().map(Scope::to_string).collect();
    let states = db::sync::states(c, &names).await?;

    let mut out: Vec<ScopeOut> = Vec::new();
    // Scopes the caller may no longer (or never could) see: the phone purges them.
    for s in cursors.keys().filter(|s| !visible.contains(s)) {
        out.push(ScopeOut {
            scope: s.to_string(),
            op: "drop",
            code: Some("not_visible"),
            v: None,
            epoch: None,
            has_more: None,
            changes: vec![],
        });
    }
    let (mut rows_left, mut bytes_left) = (limit, MAX_PULL_BYTES as i64);
    let mut more = false;
    for scope in &visible {
        let name = scope.to_string();
        let st = states.get(&name).copied().unwrap_or(ScopeState::EMPTY);
        let (op, after) = match plan(cursors.get(scope), &st) {
            Plan::Unchanged => continue,
            Plan::Delta(v) => ("changes", v),
            Plan::Reset => ("reset", 0),
        };
        if rows_left <= 0 || bytes_left <= 0 {
            more = true;
            continue;
        }
        let mut changes = db::sync::changes(c, &name, after, op == "reset", rows_left + 1).await?;
        let mut scope_more = changes.len() as i64 > rows_left;
        changes.truncate(rows_left as usize);
        let rendered = render(c, scope, &changes).await?;
        let mut outs = Vec::with_capacity(changes.len());
        let mut last_v = after;
        for (ch, row) in changes.iter().zip(rendered) {
            let size = row.as_ref().map_or(64, |r| r.to_string().len() as i64 + 64);
            if !outs.is_empty() && size > bytes_left {
                scope_more = true;
                break;
            }
            bytes_left -= size;
            rows_left -= 1;
            last_v = ch.version;
            outs.push(ChangeOut {
                op: if ch.deleted { "del" } else { "put" },
                entity: ch.entity,
                id: ch.id,
                v: ch.version,
                row: if ch.deleted { None } else { row },
            });
        }
        more |= scope_more;
        out.push(ScopeOut {
            scope: name,
            op,
            code: None,
            // A finished scope's cursor jumps to its version: later versions of rows it already
            // sent superseded the gaps.
            v: Some(if scope_more { last_v } else { st.version }),
            epoch: Some(st.epoch),
            has_more: Some(scope_more),
            changes: outs,
        });
    }
    let rows: usize = out.iter().map(|s| s.changes.len()).sum();
    metrics::counter!("yunlian_sync_rows_pulled_total").increment(rows as u64);
    Ok(Some(json!({
        "last_mutation_id": ledger.map_or(0, |l| l.last_mutation_id),
        "has_more": more,
        "scopes": out,
    })))
}

/// The current rows of live changes (tombstones render as `None`).
async fn render(
    c: &mut Conn<'_>,
    scope: &Scope,
    changes: &[db::sync::Change],
) -> Result<Vec<Option<Value>>, Error> {
    let mut by_entity: HashMap<Entity, Vec<Uuid>> = HashMap::new();
    for ch in changes.iter().filter(|ch| !ch.deleted) {
        by_entity.entry(ch.entity).or_default().push(ch.id);
    }
    let mut rows: HashMap<(Entity, Uuid), Value> = HashMap::new();
    for (entity, ids) in by_entity {
        for (id, row) in db::synced::rows(c, scope, entity, &ids).await? {
            rows.insert((entity, id), row);
        }
    }
    Ok(changes
        .iter()
        .map(|ch| {
            if ch.deleted {
                None
            } else {
                rows.remove(&(ch.entity, ch.id))
            }
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Status

/// "Is anything new for me?": the version and epoch of every scope the caller sees, for the
/// phone to compare with its cursors before pulling.
pub async fn status(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let principal = user.0.clone();
    let scopes = state
        .db
        .snapshot(move |mut c| {
            async move {
                let visible = visible(&mut c, &principal).await?;
                let names: Vec<String> = visible.iter().map(Scope::to_string).collect();
                let states = db::sync::states(&mut c, &names).await?;
                Ok(names
                    .into_iter()
                    .map(|n| {
                        let st = states.get(&n).copied().unwrap_or(ScopeState::EMPTY);
                        (n, json!({ "v": st.version, "epoch": st.epoch }))
                    })
                    .collect::<BTreeMap<String, Value>>())
            }
            .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "scopes": scopes })))
}

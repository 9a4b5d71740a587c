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
use std::sync::Arc;
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

/// What became of one mutation of a push.
enum Step {
    Done(Outcome),
    /// Seen in an earlier push: its recorded outcome (or `seen`, if that predates the ledger's
    /// memory).
    Seen(MutationOut),
    Gap {
        expected: i64,
    },
    /// Seen before with another name or other arguments: a reused id, refused.
    Reused(i64),
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
    let (client, principal) = (body.client_id, user.0.clone());
    // One receive instant for the whole push: the device times of its mutations are all
    // anchored to the same moment, however long the earlier ones take to apply.
    let received = state.clock.now();
    let batch: Vec<Queued> = body
        .mutations
        .into_iter()
        .map(|m| Queued {
            event_time: event_time(
                received,
                body.boot_id.as_deref(),
                body.uptime_ms,
                m.boot_id.as_deref(),
                m.uptime_ms,
                m.device_time,
            )
            .map_err(|_| ImplausibleTime::CODE),
            digest: mutation_digest(&m.name, &m.args),
            m,
        })
        .collect();
    let share = state.config.settings_root();
    let now = state.clock.now();
    let applied = state
        .db
        .write(move |mut c| {
            async move { apply(&mut c, &principal, client, &batch, received, now, share).await }
                .scope_boxed()
        })
        .await?;
    let Applied { steps, last } = match applied {
        Some(a) => a,
        None => return Err(client_not_yours()),
    };
    let mut results = Vec::with_capacity(steps.len());
    for step in steps {
        match step {
            Step::Done(o) => {
                let outcome = if o.status == "rejected" {
                    "rejected"
                } else {
                    "applied"
                };
                metrics::counter!("yunlian_sync_mutations_total", "outcome" => outcome)
                    .increment(1);
                results.push(MutationOut::from(o))
            }
            Step::Seen(o) => {
                metrics::counter!("yunlian_sync_mutations_total", "outcome" => "duplicate")
                    .increment(1);
                results.push(o)
            }
            Step::Gap { expected } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "mutation_gap");
                e.extra = Some(Box::new(
                    json!({ "expected_id": expected, "results": results }),
                ));
                return Err(e);
            }
            Step::Reused(id) => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "mutation_id_reused");
                e.extra = Some(Box::new(json!({ "mutation_id": id, "results": results })));
                return Err(e);
            }
        }
    }
    metrics::counter!("yunlian_sync_pushes_total").increment(1);
    Ok(HttpResponse::Ok().json(json!({ "last_mutation_id": last, "results": results })))
}

/// A mutation of a push, with the time it was made and the digest a replay must match.
#[derive(Clone)]
struct Queued {
    m: MutationIn,
    /// Its event time, or the code of times no phone can have.
    event_time: Result<EventTime, &'static str>,
    digest: String,
}

/// What a push's transaction did: a step per mutation up to the first that stops the batch (a
/// gap or a reused id), and the ledger's last mutation id after it.
struct Applied {
    steps: Vec<Step>,
    last: i64,
}

/// Applies a push in one transaction, with the phone's ledger row locked from its first
/// statement. A rejected mutation is undone alone and recorded as rejected while the others
/// stand; every outcome and the ledger's advance are written together, and each sync scope the
/// batch touched is bumped once, at the end (see `db::sync::flush`). A transient error rolls
/// the whole push back: nothing of it was acknowledged, and the phone sends it again. `None`
/// when the client id is another member's.
///
/// The batch first runs whole under one savepoint: a push rarely rejects anything, and a
/// savepoint per mutation costs a round trip each (and a subtransaction each on PostgreSQL).
/// The first rejection undoes the batch, which then runs again with a savepoint per mutation,
/// as though the first run had never been.
async fn apply(
    c: &mut Conn<'_>,
    principal: &Principal,
    client: Uuid,
    batch: &[Queued],
    received: DateTime<Utc>,
    now: DateTime<Utc>,
    settings: yunlian_domain::settings::Settings,
) -> Result<Option<Applied>, Error> {
    let Some(ledger) = db::sync::lock_ledger(c, client, principal.member_id, now).await? else {
        return Ok(None);
    };
    let push = Push {
        principal,
        client,
        batch,
        received,
        now,
        settings,
        first_new: ledger.last_mutation_id + 1,
    };
    let mut savepoints = db::Steps::default();
    c.step(&mut savepoints).await?;
    let (applied, settled) = match push.run(c, None).await? {
        Ran::Whole(applied, settled) => (applied, settled),
        Ran::Rejected => {
            c.undo_step(&mut savepoints).await?;
            match push.run(c, Some(&mut savepoints)).await? {
                Ran::Whole(applied, settled) => (applied, settled),
                Ran::Rejected => {
                    return Err(Error::Internal(
                        "a rejection escaped its mutation's savepoint".into(),
                    ))
                }
            }
        }
    };
    db::sync::settle(c, client, &settled, now).await?;
    Ok(Some(applied))
}

/// A push being applied: what every mutation of it shares.
struct Push<'a> {
    principal: &'a Principal,
    client: Uuid,
    batch: &'a [Queued],
    received: DateTime<Utc>,
    now: DateTime<Utc>,
    settings: yunlian_domain::settings::Settings,
    /// The first mutation id the ledger has not seen.
    first_new: i64,
}

/// How one run of a push's batch ended.
enum Ran {
    /// Every mutation has its step (up to the first that stops the batch), with the outcomes to
    /// record.
    Whole(Applied, Vec<Outcome>),
    /// A mutation was rejected where it had no savepoint of its own: the batch must be undone.
    Rejected,
}

impl Push<'_> {
    /// Runs the batch: with `savepoints`, each new mutation in a savepoint of its own (a
    /// rejected one undone alone); without, all in the caller's, stopping at the first
    /// rejection.
    async fn run(
        &self,
        c: &mut Conn<'_>,
        mut savepoints: Option<&mut db::Steps>,
    ) -> Result<Ran, Error> {
        let mut last = self.first_new - 1;
        let mut steps = Vec::with_capacity(self.batch.len());
        let mut settled: Vec<Outcome> = Vec::new();
        for q in self.batch {
            let m = &q.m;
            if m.id < self.first_new {
                match self.seen(c, q).await? {
                    step @ Step::Reused(_) => {
                        steps.push(step);
                        break;
                    }
                    step => {
                        steps.push(step);
                        continue;
                    }
                }
            }
            if m.id > last + 1 {
                steps.push(Step::Gap { expected: last + 1 });
                break;
            }
            let (et, ran) = match q.event_time {
                Ok(et) => {
                    let cx = crate::mutations::Cx {
                        principal: self.principal,
                        event_time: et,
                        now: self.now,
                        settings: self.settings,
                    };
                    let ran = match savepoints.as_deref_mut() {
                        Some(sp) => run_one(c, sp, cx, m).await?,
                        None => match crate::mutations::run(c, cx, &m.name, &m.args).await {
                            Ok(result) => Ok(result),
                            Err(e) if rejection(&e).is_some() => return Ok(Ran::Rejected),
                            Err(e) => return Err(e),
                        },
                    };
                    (et, ran)
                }
                // No phone can have made it then: rejected before it runs, so nothing to undo.
                Err(code) => (
                    EventTime {
                        at: self.received,
                        source: TimeSource::Server,
                    },
                    Err((code.to_string(), None)),
                ),
            };
            let (status, code, result) = match ran {
                Ok(result) => ("applied", None, Some(result)),
                Err((code, detail)) => {
                    tracing::info!(client = %self.client, mutation = m.id, name = %m.name, code = %code, "mutation rejected");
                    ("rejected", Some(code), detail)
                }
            };
            let o = Outcome {
                mutation_id: m.id,
                name: m.name.clone(),
                status: status.into(),
                code,
                result,
                event_time: et.at,
                time_source: time_source(et),
                digest: Some(q.digest.clone()),
            };
            last = m.id;
            settled.push(o.clone());
            steps.push(Step::Done(o));
        }
        Ok(Ran::Whole(Applied { steps, last }, settled))
    }

    /// A mutation seen in an earlier push: its recorded outcome, unless the content differs.
    async fn seen(&self, c: &mut Conn<'_>, q: &Queued) -> Result<Step, Error> {
        let m = &q.m;
        let o = db::sync::outcome(c, self.client, m.id).await?;
        if o.as_ref()
            .and_then(|o| o.digest.as_deref())
            .is_some_and(|d| d != q.digest)
        {
            return Ok(Step::Reused(m.id));
        }
        Ok(Step::Seen(match o {
            Some(o) => MutationOut::from(o),
            // Processed long ago, its outcome since pruned: done, never applied again.
            None => MutationOut {
                id: m.id,
                name: m.name.clone(),
                status: "seen".into(),
                code: None,
                result: None,
                event_time: self.received,
                time_source: "server".into(),
            },
        }))
    }
}

/// Runs one mutation in a savepoint: its result, or, when the phone's input can never succeed,
/// the rejection (the savepoint rolled back). Anything else is the push's error.
async fn run_one(
    c: &mut Conn<'_>,
    savepoints: &mut db::Steps,
    cx: crate::mutations::Cx<'_>,
    m: &MutationIn,
) -> Result<Result<Value, (String, Option<Value>)>, Error> {
    c.step(savepoints).await?;
    match crate::mutations::run(c, cx, &m.name, &m.args).await {
        Ok(result) => Ok(Ok(result)),
        Err(e) => match rejection(&e) {
            Some(r) => {
                c.undo_step(savepoints).await?;
                Ok(Err(r))
            }
            None => Err(e),
        },
    }
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
    row: Option<db::synced::Rendered>,
}

/// A page of a pull, serialised once: its rows are already JSON text.
#[derive(Serialize)]
struct PageOut {
    last_mutation_id: i64,
    has_more: bool,
    scopes: Vec<ScopeOut>,
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

/// The scopes the caller sees: cached beside their principal for the principal cache's TTL
/// (a phone's pull pages and status checks come in bursts), or read from the orgs under their
/// grants in this snapshot. Either way they are the scopes of the grants the request was
/// authorised with: a change of grants or a new org drops the cached ones on this server at
/// once (the access generation), and on another replica within the TTL.
struct Visible {
    scopes: Arc<BTreeSet<Scope>>,
    /// Read in this snapshot, under this access generation: to be cached.
    read_under: Option<u64>,
}

impl Visible {
    fn cached(state: &AppState, p: &Principal) -> Option<Arc<BTreeSet<Scope>>> {
        state.principals.scopes(p, state.clock.now())
    }

    async fn get(
        c: &mut Conn<'_>,
        p: &Principal,
        cached: Option<Arc<BTreeSet<Scope>>>,
    ) -> Result<Visible, Error> {
        Ok(match cached {
            Some(scopes) => Visible {
                scopes,
                read_under: None,
            },
            None => {
                // Read before the orgs: an org committed meanwhile bumps it, so the scopes are
                // never kept as fresh while missing it.
                let generation = db::access_generation();
                Visible {
                    scopes: Arc::new(visible(c, p).await?),
                    read_under: Some(generation),
                }
            }
        })
    }

    fn keep(&self, state: &AppState, p: &Principal) {
        if let Some(generation) = self.read_under {
            state
                .principals
                .put_scopes(p, generation, self.scopes.clone());
        }
    }
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
    let cached = Visible::cached(&state, &principal);
    let (page, visible) = state
        .db
        .snapshot(move |mut c| {
            async move {
                let visible = Visible::get(&mut c, &principal, cached).await?;
                let page = pull_page(
                    &mut c,
                    &principal,
                    client,
                    &cursors,
                    limit as i64,
                    &visible.scopes,
                )
                .await?;
                Ok((page, visible))
            }
            .scope_boxed()
        })
        .await?;
    visible.keep(&state, &user);
    match page {
        Some(p) => {
            let body = serde_json::to_vec(&p).map_err(|e| Error::Internal(e.to_string()))?;
            Ok(HttpResponse::Ok()
                .content_type(actix_web::http::header::ContentType::json())
                .body(body))
        }
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
    visible: &BTreeSet<Scope>,
) -> Result<Option<PageOut>, Error> {
    let names: Vec<String> = visible.iter().map(Scope::to_string).collect();
    let (ledger, states) = db::sync::ledger_and_states(c, client, &names).await?;
    if ledger.is_some_and(|l| l.member_id != p.member_id) {
        return Ok(None);
    }

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
    for scope in visible {
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
            let size = row.as_ref().map_or(64, |r| r.get().len() as i64 + 64);
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
    Ok(Some(PageOut {
        last_mutation_id: ledger.map_or(0, |l| l.last_mutation_id),
        has_more: more,
        scopes: out,
    }))
}

/// The current rows of live changes (tombstones render as `None`).
async fn render(
    c: &mut Conn<'_>,
    scope: &Scope,
    changes: &[db::sync::Change],
) -> Result<Vec<Option<db::synced::Rendered>>, Error> {
    let mut by_entity: HashMap<Entity, Vec<Uuid>> = HashMap::new();
    for ch in changes.iter().filter(|ch| !ch.deleted) {
        by_entity.entry(ch.entity).or_default().push(ch.id);
    }
    let mut rows: HashMap<(Entity, Uuid), db::synced::Rendered> = HashMap::new();
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
    let cached = Visible::cached(&state, &principal);
    let (scopes, visible) = state
        .db
        .snapshot(move |mut c| {
            async move {
                let visible = Visible::get(&mut c, &principal, cached).await?;
                let names: Vec<String> = visible.scopes.iter().map(Scope::to_string).collect();
                let states = db::sync::states(&mut c, &names).await?;
                let scopes = names
                    .into_iter()
                    .map(|n| {
                        let st = states.get(&n).copied().unwrap_or(ScopeState::EMPTY);
                        (n, json!({ "v": st.version, "epoch": st.epoch }))
                    })
                    .collect::<BTreeMap<String, Value>>();
                Ok((scopes, visible))
            }
            .scope_boxed()
        })
        .await?;
    visible.keep(&state, &user);
    Ok(HttpResponse::Ok().json(json!({ "scopes": scopes })))
}

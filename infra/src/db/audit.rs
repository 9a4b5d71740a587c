//! The audit log: who changed what, recorded in the writer's own transaction.
//!
//! A request runs inside an audit [`Context`] (its request id, operationId, the clock's time,
//! and the caller once authenticated). Inside a write transaction, a use case adds what it
//! knows with [`note`] (the subject and its changed fields); when the transaction's work is
//! done, every synced row it changed that no note covers gets an entry of its own, so no
//! write a person makes goes unrecorded. Jobs run outside any context and are not audited.

use super::schema::{audit_events, members, orgs};
use super::{db_error, naive, utc, uuid, Conn, Raw};
use crate::on;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;
use yunlian_domain::audit::Change;
use yunlian_domain::sync::Scope;
use yunlian_domain::Error;

/// What a request's writes are recorded under.
#[derive(Clone, Debug)]
pub struct Context {
    pub request_id: Option<String>,
    pub operation: String,
    pub at: DateTime<Utc>,
    actor: Arc<Mutex<Option<Uuid>>>,
    /// The operator's command line: recorded without an actor.
    command: bool,
}

impl Context {
    /// A request's context; its actor is set once the caller is authenticated.
    pub fn request(request_id: String, operation: &str, at: DateTime<Utc>) -> Context {
        Context {
            request_id: Some(request_id),
            operation: operation.to_string(),
            at,
            actor: Arc::default(),
            command: false,
        }
    }

    /// The operator's command line (no actor).
    pub fn command(operation: &str, at: DateTime<Utc>) -> Context {
        Context {
            request_id: None,
            operation: operation.to_string(),
            at,
            actor: Arc::default(),
            command: true,
        }
    }

    /// A person's act: an authenticated request, or the operator's command. A request no
    /// person made (a LiveKit webhook, a refused login) records nothing.
    fn by_a_person(&self) -> bool {
        self.command || self.actor().is_some()
    }

    fn actor(&self) -> Option<Uuid> {
        *self.actor.lock().unwrap_or_else(|e| e.into_inner())
    }
}

tokio::task_local! {
    static CONTEXT: Context;
}

/// Runs `f` inside `cx`.
pub async fn within<F: std::future::Future>(cx: Context, f: F) -> F::Output {
    CONTEXT.scope(cx, f).await
}

/// The context of the running request, if any.
pub fn current() -> Option<Context> {
    CONTEXT.try_with(Clone::clone).ok()
}

/// The authenticated caller of the running request.
pub fn set_actor(member_id: Uuid) {
    let _ =
        CONTEXT.try_with(|c| *c.actor.lock().unwrap_or_else(|e| e.into_inner()) = Some(member_id));
}

/// One subject's recorded change.
#[derive(Debug, Clone)]
pub struct Note {
    pub subject_kind: String,
    pub subject_id: String,
    pub org_path: String,
    pub changes: Vec<Change>,
}

/// Records that the running request changed `subject_kind`/`subject_id` (in the org at
/// `org_path`) with `changes`. Only inside a write transaction of a person's request;
/// elsewhere (jobs) it records nothing.
pub fn note(
    conn: &mut Conn<'_>,
    subject_kind: &str,
    subject_id: impl ToString,
    org_path: &str,
    changes: Vec<Change>,
) {
    if let Some(tx) = conn.tx.as_deref_mut() {
        tx.audit.push(Note {
            subject_kind: subject_kind.to_string(),
            subject_id: subject_id.to_string(),
            org_path: org_path.to_string(),
            changes,
        });
    }
}

/// Records a read that the log must show (a roster export) in a transaction of its own.
pub async fn record(
    store: &super::Db,
    subject_kind: &'static str,
    subject_id: String,
    org_path: String,
    changes: Vec<Change>,
) -> Result<(), Error> {
    use scoped_futures::ScopedFutureExt;
    store
        .write(move |mut c| {
            let (id, path, changes) = (subject_id.clone(), org_path.clone(), changes.clone());
            async move {
                note(&mut c, subject_kind, id, &path, changes);
                Ok(())
            }
            .scope_boxed()
        })
        .await
}

/// End of a write transaction: the entries to write under the context (none when there is
/// none), one for each note and one for each synced row changed that no note covers (whose
/// org paths this reads).
pub(crate) async fn entries(
    conn: &mut Conn<'_>,
    cx: Option<&Context>,
    mut notes: Vec<Note>,
    synced: &[(String, Uuid, Vec<String>)],
) -> Result<Vec<Entry>, Error> {
    let Some(cx) = cx.filter(|c| c.by_a_person()) else {
        return Ok(Vec::new());
    };
    let uncovered: Vec<&(String, Uuid, Vec<String>)> = synced
        .iter()
        .filter(|(_, id, _)| {
            let sid = id.to_string();
            !notes.iter().any(|n| n.subject_id == sid)
        })
        .collect();
    if !uncovered.is_empty() {
        let paths = paths_of(conn, &uncovered).await?;
        for ((entity, id, _), org_path) in uncovered.into_iter().zip(paths) {
            notes.push(Note {
                subject_kind: entity.clone(),
                subject_id: id.to_string(),
                org_path,
                changes: Vec::new(),
            });
        }
    }
    let actor = cx.actor().map(|a| a.to_string());
    let at = naive(cx.at);
    let mut rows = Vec::with_capacity(notes.len());
    for n in notes {
        let changes = serde_json::to_string(&n.changes)
            .map_err(|e| Error::Internal(format!("audit changes: {e}")))?;
        rows.push(Entry {
            id: Uuid::now_v7().to_string(),
            at,
            actor_id: actor.clone(),
            operation: cx.operation.clone(),
            subject_kind: n.subject_kind,
            subject_id: n.subject_id,
            org_path: n.org_path,
            request_id: cx.request_id.clone(),
            changes,
        });
    }
    Ok(rows)
}

/// Writes a transaction's audit entries. A roster import writes thousands: batches on
/// PostgreSQL; SQLite (whose diesel backend has no batch insert) one prepared statement a row,
/// in the same transaction.
pub(crate) async fn insert(conn: &mut Conn<'_>, rows: &[Entry]) -> Result<(), Error> {
    match &mut conn.raw {
        Raw::Pg(c) => insert_pg(c, rows).await,
        Raw::Sqlite(c) => {
            for row in rows {
                diesel::insert_into(audit_events::table)
                    .values(row)
                    .execute(&mut **c)
                    .await
                    .map_err(db_error)?;
            }
            Ok(())
        }
    }
}

/// Audit entries a PostgreSQL batch insert takes in one statement.
const PG_CHUNK: usize = 1000;

/// Whether [`insert_pg`] writes `rows` in one statement (or none): a statement pipelined
/// behind it then follows it on the wire.
pub(crate) fn in_one_statement(rows: &[Entry]) -> bool {
    rows.len() <= PG_CHUNK
}

/// PostgreSQL, on a shared connection (to be pipelined behind the index's statements). A lone
/// entry (a clock-in's) is a one-row insert, whose prepared statement diesel caches; it never
/// caches a batch's (a round trip more each time).
pub(crate) async fn insert_pg(
    c: &diesel_async::AsyncPgConnection,
    rows: &[Entry],
) -> Result<(), Error> {
    match rows {
        [] => Ok(()),
        [row] => diesel::insert_into(audit_events::table)
            .values(row)
            .execute(&mut &*c)
            .await
            .map(drop)
            .map_err(db_error),
        _ => {
            for chunk in rows.chunks(PG_CHUNK) {
                diesel::insert_into(audit_events::table)
                    .values(chunk)
                    .execute(&mut &*c)
                    .await
                    .map_err(db_error)?;
            }
            Ok(())
        }
    }
}

/// An audit entry, ready to insert.
#[derive(Insertable)]
#[diesel(table_name = audit_events, treat_none_as_default_value = false)]
pub(crate) struct Entry {
    id: String,
    at: chrono::NaiveDateTime,
    actor_id: Option<String>,
    operation: String,
    subject_kind: String,
    subject_id: String,
    org_path: String,
    request_id: Option<String>,
    changes: String,
}

/// The org path each synced change belongs to: its org scope's org, else the member's org
/// (two queries for the whole transaction, whatever it wrote).
async fn paths_of(
    conn: &mut Conn<'_>,
    subjects: &[&(String, Uuid, Vec<String>)],
) -> Result<Vec<String>, Error> {
    enum Via {
        Org(String),
        Member(String),
        Nothing,
    }
    let via: Vec<Via> = subjects
        .iter()
        .map(|(_, _, scopes)| {
            let parsed: Vec<Scope> = scopes.iter().filter_map(|s| Scope::parse(s)).collect();
            let org = parsed.iter().find_map(|s| match s {
                Scope::Org(o) | Scope::Committee(o) => Some(*o),
                Scope::Member(_) => None,
            });
            match (org, <[Scope]>::first(&parsed)) {
                (Some(o), _) => Via::Org(o.to_string()),
                (None, Some(Scope::Member(m))) => Via::Member(m.to_string()),
                _ => Via::Nothing,
            }
        })
        .collect();
    let mut org_ids: Vec<String> = via
        .iter()
        .filter_map(|v| match v {
            Via::Org(o) => Some(o.clone()),
            _ => None,
        })
        .collect();
    org_ids.sort();
    org_ids.dedup();
    let mut member_ids: Vec<String> = via
        .iter()
        .filter_map(|v| match v {
            Via::Member(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    member_ids.sort();
    member_ids.dedup();
    let mut org_paths = known_org_paths(&mut org_ids);
    for chunk in org_ids.chunks(500) {
        let rows: Vec<(String, String)> = on!(conn, |c| orgs::table
            .filter(orgs::id.eq_any(chunk))
            .select((orgs::id, orgs::path))
            .load(c)
            .await)
        .map_err(db_error)?;
        remember_org_paths(&rows);
        org_paths.extend(rows);
    }
    let mut member_paths: HashMap<String, String> = Default::default();
    for chunk in member_ids.chunks(500) {
        let rows: Vec<(String, String)> = on!(conn, |c| members::table
            .inner_join(orgs::table.on(orgs::id.eq(members::org_id)))
            .filter(members::id.eq_any(chunk))
            .select((members::id, orgs::path))
            .load(c)
            .await)
        .map_err(db_error)?;
        member_paths.extend(rows);
    }
    Ok(via
        .into_iter()
        .map(|v| match v {
            Via::Org(o) => org_paths.get(&o).cloned().unwrap_or_default(),
            Via::Member(m) => member_paths.get(&m).cloned().unwrap_or_default(),
            Via::Nothing => String::new(),
        })
        .collect())
}

/// Org paths seen, by org id. An org's path is its ancestors' ids and its own, fixed when the
/// org is created (orgs are renamed, never moved), so an entry never goes stale: most writes'
/// audit entries then need no query for their path.
fn org_path_cache() -> &'static Mutex<HashMap<String, String>> {
    static PATHS: std::sync::OnceLock<Mutex<HashMap<String, String>>> = std::sync::OnceLock::new();
    PATHS.get_or_init(Default::default)
}

/// Orgs kept at most (a county has a few thousand); past that the cache starts again.
const MAX_CACHED_ORG_PATHS: usize = 50_000;

/// The cached paths of `ids`, which keeps only the ids not cached.
fn known_org_paths(ids: &mut Vec<String>) -> HashMap<String, String> {
    let cache = org_path_cache().lock().unwrap_or_else(|e| e.into_inner());
    let mut known = HashMap::new();
    ids.retain(|id| match cache.get(id) {
        Some(path) => {
            known.insert(id.clone(), path.clone());
            false
        }
        None => true,
    });
    known
}

fn remember_org_paths(rows: &[(String, String)]) {
    let mut cache = org_path_cache().lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() + rows.len() > MAX_CACHED_ORG_PATHS {
        cache.clear();
    }
    cache.extend(rows.iter().cloned());
}

/// One recorded entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub operation: String,
    pub subject_kind: String,
    pub subject_id: String,
    pub org_path: String,
    pub request_id: Option<String>,
    pub changes: Vec<Change>,
}

/// What a query keeps.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The org subtree (a path prefix).
    pub under: String,
    pub actor: Option<Uuid>,
    pub subject: Option<String>,
    pub operation: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Keyset: entries older than this id (ids are UUIDv7, so in creation order).
    pub before: Option<Uuid>,
}

type Row = (
    String,
    chrono::NaiveDateTime,
    Option<String>,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
);

/// Entries of the subtree matching `f`, newest first, at most `limit`.
pub async fn list(conn: &mut Conn<'_>, f: &Filter, limit: i64) -> Result<Vec<AuditEvent>, Error> {
    // Paths are ids and slashes: nothing in them is a LIKE wildcard.
    let like = format!("{}%", f.under);
    let rows: Vec<Row> = on!(conn, |c| {
        let mut q = audit_events::table
            .filter(audit_events::org_path.like(&like))
            .into_boxed();
        if let Some(a) = f.actor {
            q = q.filter(audit_events::actor_id.eq(a.to_string()));
        }
        if let Some(s) = &f.subject {
            q = q.filter(audit_events::subject_id.eq(s.clone()));
        }
        if let Some(o) = &f.operation {
            q = q.filter(audit_events::operation.eq(o.clone()));
        }
        if let Some(t) = f.from {
            q = q.filter(audit_events::at.ge(naive(t)));
        }
        if let Some(t) = f.to {
            q = q.filter(audit_events::at.le(naive(t)));
        }
        if let Some(b) = f.before {
            q = q.filter(audit_events::id.lt(b.to_string()));
        }
        q.order(audit_events::id.desc())
            .limit(limit)
            .select((
                audit_events::id,
                audit_events::at,
                audit_events::actor_id,
                audit_events::operation,
                audit_events::subject_kind,
                audit_events::subject_id,
                audit_events::org_path,
                audit_events::request_id,
                audit_events::changes,
            ))
            .load(c)
            .await
    })
    .map_err(db_error)?;
    rows.into_iter()
        .map(
            |(id, at, actor, operation, kind, subject, path, rid, changes)| {
                Ok(AuditEvent {
                    id: uuid(&id)?,
                    at: utc(at),
                    actor_id: actor.as_deref().map(uuid).transpose()?,
                    operation,
                    subject_kind: kind,
                    subject_id: subject,
                    org_path: path,
                    request_id: rid,
                    changes: serde_json::from_str(&changes)
                        .map_err(|e| Error::Internal(format!("audit changes in db: {e}")))?,
                })
            },
        )
        .collect()
}

/// The org paths with entries older than `before` (the retention job's candidates).
pub async fn paths_before(
    conn: &mut Conn<'_>,
    before: DateTime<Utc>,
) -> Result<Vec<String>, Error> {
    let t = naive(before);
    on!(conn, |c| audit_events::table
        .filter(audit_events::at.lt(t))
        .select(audit_events::org_path)
        .distinct()
        .load(c)
        .await)
    .map_err(db_error)
}

/// Entries of the org at `path` older than `before` go (the retention job); returns how many.
pub async fn purge(conn: &mut Conn<'_>, path: &str, before: DateTime<Utc>) -> Result<usize, Error> {
    let t = naive(before);
    on!(conn, |c| diesel::delete(
        audit_events::table
            .filter(audit_events::org_path.eq(path))
            .filter(audit_events::at.lt(t))
    )
    .execute(c)
    .await)
    .map_err(db_error)
}

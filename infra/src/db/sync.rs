//! The sync index: the one mechanism every synced write goes through.
//!
//! `record` bumps the scope's version under the scope row's lock (PostgreSQL `UPDATE` takes it;
//! SQLite has one writer) and upserts the row's entry in the index, all in the caller's
//! transaction. Versions therefore become visible strictly in commit order: a writer holding
//! version N keeps N+1 waiting until it commits, so no change can appear behind a cursor that
//! already passed it. Never a timestamp or a plain sequence: those commit out of order.

use super::rows::within;
use super::schema::{sync_clients, sync_index, sync_mutations, sync_scopes};
use super::{db_error, naive, utc, uuid, CachedDsl, Conn, Raw};
use crate::{load, on};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::HashMap;
use uuid::Uuid;
use yunlian_domain::sync::{Entity, Scope, ScopeState};
use yunlian_domain::Error;

/// A change a write transaction will record in the index when it ends.
#[derive(Debug, Clone)]
pub struct Pending {
    scope: String,
    entity: Entity,
    id: Uuid,
    deleted: bool,
    at: DateTime<Utc>,
}

/// Records that `entity`/`id` changed (or was deleted) in each of `scopes` (one row is often
/// in several: the roster and the member's own scope).
///
/// Inside a write transaction ([`super::Db::write`]) the entry waits until the transaction's
/// work is done; then [`flush`] bumps every scope it touched in scope-name order, each under its
/// row lock until commit. Scopes are the locks every synced write shares, so one global order
/// (and holding them only for the last statements) keeps two transactions from deadlocking
/// however their work interleaves. Outside a transaction it is written at once.
pub async fn record(
    conn: &mut Conn<'_>,
    scopes: &[Scope],
    entity: Entity,
    id: Uuid,
    deleted: bool,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let ps = scopes.iter().map(|scope| Pending {
        scope: scope.to_string(),
        entity,
        id,
        deleted,
        at: now,
    });
    match conn.tx.as_deref_mut() {
        Some(tx) => {
            tx.sync.extend(ps);
            Ok(())
        }
        None => flush(conn, &by_scope(ps.collect())).await,
    }
}

/// The distinct rows among recorded changes, each with the scopes it changed in (for the
/// audit log).
pub(crate) fn subjects(pending: &[Pending]) -> Vec<(String, Uuid, Vec<String>)> {
    let mut out: Vec<(String, Uuid, Vec<String>)> = Vec::new();
    for p in pending {
        match out
            .iter_mut()
            .find(|(e, id, _)| *id == p.id && e == p.entity.as_str())
        {
            Some((_, _, scopes)) => scopes.push(p.scope.clone()),
            None => out.push((p.entity.as_str().to_string(), p.id, vec![p.scope.clone()])),
        }
    }
    out
}

/// Writes recorded changes: per scope in name order, one bump of the scope's version by the
/// number of its changes (taking the scope row's lock until commit), then their index entries
/// with consecutive versions, in the order they were recorded.
/// A transaction's changes grouped by scope, in scope-name order; within a scope in the order
/// they were recorded, each row once (its latest change: the index keeps a row's latest
/// version only, and a push may change one member twice).
pub(crate) fn by_scope(mut pending: Vec<Pending>) -> Vec<Vec<Pending>> {
    // Stable: within a scope, changes keep the order they were recorded in.
    pending.sort_by(|a, b| a.scope.cmp(&b.scope));
    let mut groups: Vec<Vec<Pending>> = Vec::new();
    for p in pending {
        match groups.last_mut() {
            Some(g) if g[0].scope == p.scope => g.push(p),
            _ => groups.push(vec![p]),
        }
    }
    for g in &mut groups {
        let mut seen = std::collections::HashSet::new();
        let mut latest: Vec<Pending> = std::mem::take(g)
            .into_iter()
            .rev()
            .filter(|p| seen.insert((p.entity, p.id)))
            .collect();
        latest.reverse();
        *g = latest;
    }
    groups
}

/// Writes `groups` (see [`by_scope`]) to the index: each scope bumped by its group's size, in
/// scope-name order, its entries given consecutive versions ending at the new one.
pub(crate) async fn flush(conn: &mut Conn<'_>, groups: &[Vec<Pending>]) -> Result<(), Error> {
    if let Some(c) = conn.pg() {
        return bump_all_pg(c, groups).await;
    }
    for group in groups {
        let n = group.len();
        let last = bump(conn, &group[0].scope, n as i64, group[n - 1].at).await?;
        for (i, p) in group.iter().enumerate() {
            let v = last - (n - 1 - i) as i64;
            upsert_entry(conn, p, v).await?;
        }
    }
    Ok(())
}

/// PostgreSQL: every group's bump and entries, one statement a scope, all sent in one pipeline
/// and on a shared connection, so the caller can pipeline more behind them (the audit entries,
/// the `COMMIT`). PostgreSQL runs them in the order sent, and they are sent in scope-name order,
/// so scope locks are taken in that order, a scope's first write included: `join_all` polls
/// them first in order, and diesel-async sends a statement as it leaves its statement cache's
/// lock, which is first-come first-served (tokio's), even when one must be prepared first.
///
/// Up to [`ORDERED_BUMPS`] scopes, every poll polls them in order (`join_all`'s small form), so a
/// statement pipelined behind them is sent after all of them; past that `join_all` polls them as
/// they wake, and the caller waits for them before sending more (see [`bumps_in_order`]).
pub(crate) async fn bump_all_pg(
    c: &diesel_async::AsyncPgConnection,
    groups: &[Vec<Pending>],
) -> Result<(), Error> {
    let written =
        futures_util::future::join_all(groups.iter().map(|g| bump_and_index_pg(c, g))).await;
    // The first error in the order sent is the cause; the ones after it only say that the
    // transaction was aborted.
    written.into_iter().collect()
}

/// The most scopes [`bump_all_pg`] sends strictly in order on every poll: `futures_util`'s
/// `join_all` polls up to 30 futures in order and more through `FuturesOrdered`.
const ORDERED_BUMPS: usize = 30;

/// Whether a statement joined behind [`bump_all_pg`] for `groups` is sent after all of them.
pub(crate) fn bumps_in_order(groups: &[Vec<Pending>]) -> bool {
    groups.len() <= ORDERED_BUMPS
}

/// PostgreSQL: one statement bumps the group's scope by its size (taking the scope's row lock
/// first; a scope's first write creates it, and a racing first writer's row is waited for and
/// bumped) and upserts its entries with consecutive versions ending at the new one.
async fn bump_and_index_pg(
    c: &diesel_async::AsyncPgConnection,
    group: &[Pending],
) -> Result<(), Error> {
    let scope = &group[0].scope;
    use diesel::sql_types::{Array, BigInt, Bool, Text, Timestamp};
    let n = group.len();
    let entities: Vec<&str> = group.iter().map(|p| p.entity.as_str()).collect();
    let ids: Vec<String> = group.iter().map(|p| p.id.to_string()).collect();
    // How far below the new version each entry is: the last recorded gets the new version.
    let back: Vec<i64> = (0..n).map(|i| (n - 1 - i) as i64).collect();
    let deleted: Vec<bool> = group.iter().map(|p| p.deleted).collect();
    let at: Vec<chrono::NaiveDateTime> = group.iter().map(|p| naive(p.at)).collect();
    // A new scope's epoch; unused (and not stored) when the scope exists.
    let epoch = Uuid::now_v7().to_string();
    let written = diesel::sql_query(
        "WITH b AS (INSERT INTO sync_scopes AS s (scope, version, epoch, floor, updated_at) \
                    VALUES ($1, $2, $9, 0, $3) \
                    ON CONFLICT (scope) DO UPDATE \
                    SET version = s.version + excluded.version, updated_at = excluded.updated_at \
                    RETURNING s.version) \
         INSERT INTO sync_index (scope, entity, entity_id, version, deleted, changed_at) \
         SELECT $1, e.entity, e.entity_id, b.version - e.back, e.deleted, e.changed_at \
         FROM b CROSS JOIN unnest($4, $5, $6, $7, $8) \
              AS e(entity, entity_id, back, deleted, changed_at) \
         ON CONFLICT (scope, entity, entity_id) DO UPDATE SET version = excluded.version, \
            deleted = excluded.deleted, changed_at = excluded.changed_at",
    )
    .bind::<Text, _>(scope)
    .bind::<BigInt, _>(n as i64)
    .bind::<Timestamp, _>(at[n - 1])
    .bind::<Array<Text>, _>(&entities)
    .bind::<Array<Text>, _>(&ids)
    .bind::<Array<BigInt>, _>(&back)
    .bind::<Array<Bool>, _>(&deleted)
    .bind::<Array<Timestamp>, _>(&at)
    .bind::<Text, _>(&epoch)
    .cached()
    .execute(&mut &*c)
    .await
    .map_err(db_error)?;
    if written != n {
        return Err(Error::Internal(format!(
            "scope {scope}: {written} index entries written of {n}"
        )));
    }
    Ok(())
}

/// Creates a scope at version 0 (a racing first writer may have created it: then nothing).
async fn create_scope(conn: &mut Conn<'_>, scope: &str, at: DateTime<Utc>) -> Result<(), Error> {
    let (t, epoch) = (naive(at), Uuid::now_v7().to_string());
    on!(conn, |c| diesel::insert_into(sync_scopes::table)
        .values((
            sync_scopes::scope.eq(scope),
            sync_scopes::version.eq(0i64),
            sync_scopes::epoch.eq(&epoch),
            sync_scopes::floor.eq(0i64),
            sync_scopes::updated_at.eq(t),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(())
}

/// Raises `scope`'s version by `n` (creating the scope on its first write) and returns the new
/// version. The `UPDATE` holds the scope row's lock until commit: versions commit in order.
async fn bump(conn: &mut Conn<'_>, scope: &str, n: i64, at: DateTime<Utc>) -> Result<i64, Error> {
    if let Some(v) = bump_existing(conn, scope, n, at).await? {
        return Ok(v);
    }
    // The scope's first write: create it (a racing first writer may win), then bump.
    create_scope(conn, scope, at).await?;
    bump_existing(conn, scope, n, at)
        .await?
        .ok_or_else(|| Error::Internal(format!("scope {scope} not created")))
}

/// Raises an existing scope's version by `n`; `None` when there is no such scope.
async fn bump_existing(
    conn: &mut Conn<'_>,
    scope: &str,
    n: i64,
    at: DateTime<Utc>,
) -> Result<Option<i64>, Error> {
    let t = naive(at);
    on!(conn, |c| diesel::update(sync_scopes::table.find(scope))
        .set((
            sync_scopes::version.eq(sync_scopes::version + n),
            sync_scopes::updated_at.eq(t),
        ))
        .returning(sync_scopes::version)
        .cached()
        .get_result::<i64>(c)
        .await
        .optional())
    .map_err(db_error)
}

async fn upsert_entry(conn: &mut Conn<'_>, p: &Pending, v: i64) -> Result<(), Error> {
    let (t, eid) = (naive(p.at), p.id.to_string());
    on!(conn, |c| diesel::insert_into(sync_index::table)
        .values((
            sync_index::scope.eq(&p.scope),
            sync_index::entity.eq(p.entity.as_str()),
            sync_index::entity_id.eq(&eid),
            sync_index::version.eq(v),
            sync_index::deleted.eq(p.deleted),
            sync_index::changed_at.eq(t),
        ))
        .on_conflict((sync_index::scope, sync_index::entity, sync_index::entity_id))
        .do_update()
        .set((
            sync_index::version.eq(v),
            sync_index::deleted.eq(p.deleted),
            sync_index::changed_at.eq(t),
        ))
        .cached()
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(())
}

/// The stored state of each of `scopes` (absent ones are not in the map).
pub async fn states(
    conn: &mut Conn<'_>,
    scopes: &[String],
) -> Result<HashMap<String, ScopeState>, Error> {
    let rows: Vec<(String, i64, String, i64)> = load!(
        conn,
        sync_scopes::table
            .filter(within(sync_scopes::scope, scopes))
            .select((
                sync_scopes::scope,
                sync_scopes::version,
                sync_scopes::epoch,
                sync_scopes::floor
            ))
    )
    .map_err(db_error)?;
    rows.into_iter().map(scope_state).collect()
}

/// A `sync_scopes` row as read by [`states`] and [`ledger_and_states`].
fn scope_state(
    (s, version, epoch, floor): (String, i64, String, i64),
) -> Result<(String, ScopeState), Error> {
    let epoch = Some(uuid(&epoch)?);
    Ok((
        s,
        ScopeState {
            version,
            epoch,
            floor,
        },
    ))
}

/// One entry of the index: the latest version of a row in a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub entity: Entity,
    pub id: Uuid,
    pub version: i64,
    pub deleted: bool,
}

/// Changes of `scope` after version `after`, in version order; tombstones left out when
/// `live_only` (a reset sends only what exists).
pub async fn changes(
    conn: &mut Conn<'_>,
    scope: &str,
    after: i64,
    live_only: bool,
    limit: i64,
) -> Result<Vec<Change>, Error> {
    let rows: Vec<(String, String, i64, bool)> = load!(conn, {
        let mut q = sync_index::table
            .filter(sync_index::scope.eq(scope.to_string()))
            .filter(sync_index::version.gt(after))
            .select((
                sync_index::entity,
                sync_index::entity_id,
                sync_index::version,
                sync_index::deleted,
            ))
            .order(sync_index::version)
            .limit(limit)
            .into_boxed();
        if live_only {
            q = q.filter(sync_index::deleted.eq(false));
        }
        q
    })
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(entity, id, version, deleted)| {
            Ok(Change {
                entity: Entity::parse(&entity)
                    .ok_or_else(|| Error::Internal(format!("unknown synced entity {entity}")))?,
                id: uuid(&id)?,
                version,
                deleted,
            })
        })
        .collect()
}

/// Drops tombstones changed before `before` and raises each affected scope's floor, so that
/// cursors older than the purge get `reset`. Returns how many tombstones went.
pub async fn purge_tombstones(conn: &mut Conn<'_>, before: DateTime<Utc>) -> Result<usize, Error> {
    let b = naive(before);
    let floors: Vec<(String, Option<i64>)> = on!(conn, |c| sync_index::table
        .filter(sync_index::deleted.eq(true))
        .filter(sync_index::changed_at.lt(b))
        .group_by(sync_index::scope)
        .select((sync_index::scope, diesel::dsl::max(sync_index::version)))
        .load(c)
        .await)
    .map_err(db_error)?;
    let mut purged = 0;
    for (scope, floor) in floors {
        let Some(floor) = floor else { continue };
        purged += on!(conn, |c| async {
            diesel::update(sync_scopes::table.find(&scope))
                .filter(sync_scopes::floor.lt(floor))
                .set(sync_scopes::floor.eq(floor))
                .execute(c)
                .await?;
            diesel::delete(
                sync_index::table
                    .filter(sync_index::scope.eq(&scope))
                    .filter(sync_index::deleted.eq(true))
                    .filter(sync_index::version.le(floor)),
            )
            .execute(c)
            .await
        }
        .await)
        .map_err(db_error)?;
    }
    Ok(purged)
}

/// Forgets mutation outcomes recorded before `before`; the ledger keeps each phone's last id, so
/// a replay of a forgotten mutation is still recognised as seen (and not applied again).
pub async fn prune_outcomes(conn: &mut Conn<'_>, before: DateTime<Utc>) -> Result<usize, Error> {
    let b = naive(before);
    on!(conn, |c| diesel::delete(
        sync_mutations::table.filter(sync_mutations::created_at.lt(b))
    )
    .execute(c)
    .await)
    .map_err(db_error)
}

/// A phone's mutation ledger, locked for the caller's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ledger {
    pub member_id: Uuid,
    pub last_mutation_id: i64,
}

/// Locks (creating it on first use) the ledger row of `client_id` for `member_id`. On
/// PostgreSQL the row lock serialises two pushes of one phone; SQLite has one writer. `None`
/// when the client id is another member's: their ledger is left as it was.
pub async fn lock_ledger(
    conn: &mut Conn<'_>,
    client_id: Uuid,
    member_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Ledger>, Error> {
    let (cid, mid, t) = (client_id.to_string(), member_id.to_string(), naive(now));
    let fresh = (
        sync_clients::client_id.eq(cid.clone()),
        sync_clients::member_id.eq(mid.clone()),
        sync_clients::last_mutation_id.eq(0i64),
        sync_clients::created_at.eq(t),
        sync_clients::updated_at.eq(t),
    );
    // One statement: a new phone's ledger is created, a known one's row locked (PostgreSQL's
    // `ON CONFLICT DO UPDATE` locks the row it updates; SQLite has one writer). The update's
    // condition leaves another member's ledger untouched, and returns nothing.
    let upsert = diesel::insert_into(sync_clients::table)
        .values(fresh)
        .on_conflict(sync_clients::client_id)
        .do_update()
        .set(sync_clients::updated_at.eq(t));
    let mine = sync_clients::member_id.eq(mid);
    let last: Option<i64> = on!(conn, |c| diesel::query_dsl::methods::FilterDsl::filter(
        upsert, mine
    )
    .returning(sync_clients::last_mutation_id)
    .cached()
    .get_result(c)
    .await
    .optional())
    .map_err(db_error)?;
    Ok(last.map(|last_mutation_id| Ledger {
        member_id,
        last_mutation_id,
    }))
}

/// The ledger of `client_id`, unlocked (for pulls), if the phone ever pushed.
pub async fn ledger(conn: &mut Conn<'_>, client_id: Uuid) -> Result<Option<Ledger>, Error> {
    let row: Option<(String, i64)> = on!(conn, |c| sync_clients::table
        .find(client_id.to_string())
        .select((sync_clients::member_id, sync_clients::last_mutation_id))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(ledger_row).transpose()
}

/// A `sync_clients` row as read by [`ledger`] and [`ledger_and_states`].
fn ledger_row((m, last): (String, i64)) -> Result<Ledger, Error> {
    Ok(Ledger {
        member_id: uuid(&m)?,
        last_mutation_id: last,
    })
}

/// A pull's first reads: the client's ledger and the states of `scopes`. On PostgreSQL the two
/// queries are pipelined (sent together on the connection, answered in order: one round trip);
/// past 500 scopes, and on SQLite, they run one after the other.
pub async fn ledger_and_states(
    conn: &mut Conn<'_>,
    client_id: Uuid,
    scopes: &[String],
) -> Result<(Option<Ledger>, HashMap<String, ScopeState>), Error> {
    // Pipelining goes through a shared reference (diesel-async's `&AsyncPgConnection`).
    let c: &diesel_async::AsyncPgConnection = match &mut conn.raw {
        Raw::Pg(c) => c,
        Raw::Sqlite(_) => return Ok((ledger(conn, client_id).await?, states(conn, scopes).await?)),
    };
    let id = client_id.to_string();
    let ledger = sync_clients::table
        .find(&id)
        .select((sync_clients::member_id, sync_clients::last_mutation_id))
        .first::<(String, i64)>(&mut &*c);
    let states = sync_scopes::table
        .filter(within(sync_scopes::scope, scopes))
        .select((
            sync_scopes::scope,
            sync_scopes::version,
            sync_scopes::epoch,
            sync_scopes::floor,
        ))
        .load::<(String, i64, String, i64)>(&mut &*c);
    let (ledger, states) = tokio::join!(biased; ledger, states);
    let ledger = ledger
        .optional()
        .map_err(db_error)?
        .map(ledger_row)
        .transpose()?;
    let states = states
        .map_err(db_error)?
        .into_iter()
        .map(scope_state)
        .collect::<Result<_, _>>()?;
    Ok((ledger, states))
}

/// What became of one mutation, kept so a retried push gets the same answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub mutation_id: i64,
    pub name: String,
    /// `applied` or `rejected`.
    pub status: String,
    pub code: Option<String>,
    pub result: Option<serde_json::Value>,
    pub event_time: DateTime<Utc>,
    pub time_source: String,
    /// SHA-256 of the mutation's name and canonical arguments (absent on outcomes recorded
    /// before digests were kept).
    pub digest: Option<String>,
}

/// Stores a push's outcomes and advances the ledger to the last of them, in the caller's
/// transaction (whose ledger lock, [`lock_ledger`], it holds).
pub async fn settle(
    conn: &mut Conn<'_>,
    client_id: Uuid,
    outcomes: &[Outcome],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let Some(last) = outcomes.last() else {
        return Ok(());
    };
    let (cid, t) = (client_id.to_string(), naive(now));
    let rows: Vec<_> = outcomes
        .iter()
        .map(|o| {
            (
                sync_mutations::client_id.eq(cid.clone()),
                sync_mutations::mutation_id.eq(o.mutation_id),
                sync_mutations::name.eq(o.name.clone()),
                sync_mutations::status.eq(o.status.clone()),
                sync_mutations::code.eq(o.code.clone()),
                sync_mutations::result.eq(o.result.as_ref().map(|r| r.to_string())),
                sync_mutations::event_time.eq(naive(o.event_time)),
                sync_mutations::time_source.eq(o.time_source.clone()),
                sync_mutations::created_at.eq(t),
                sync_mutations::digest.eq(o.digest.clone()),
            )
        })
        .collect();
    match &mut conn.raw {
        // One statement per 100 outcomes (10 parameters a row); SQLite, in-process, takes them
        // one by one.
        Raw::Pg(c) => {
            for chunk in rows.chunks(100) {
                diesel::insert_into(sync_mutations::table)
                    .values(chunk)
                    .execute(c)
                    .await
                    .map_err(db_error)?;
            }
        }
        Raw::Sqlite(c) => {
            for row in rows {
                diesel::insert_into(sync_mutations::table)
                    .values(row)
                    .execute(&mut **c)
                    .await
                    .map_err(db_error)?;
            }
        }
    }
    on!(conn, |c| async {
        diesel::update(sync_clients::table.find(&cid))
            .set((
                sync_clients::last_mutation_id.eq(last.mutation_id),
                sync_clients::updated_at.eq(t),
            ))
            .cached()
            .execute(c)
            .await
    }
    .await)
    .map_err(db_error)?;
    Ok(())
}

type OutcomeRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    chrono::NaiveDateTime,
    String,
    Option<String>,
);

/// The recorded outcome of a mutation already seen.
pub async fn outcome(
    conn: &mut Conn<'_>,
    client_id: Uuid,
    mutation_id: i64,
) -> Result<Option<Outcome>, Error> {
    let row: Option<OutcomeRow> = on!(conn, |c| sync_mutations::table
        .find((client_id.to_string(), mutation_id))
        .select((
            sync_mutations::mutation_id,
            sync_mutations::name,
            sync_mutations::status,
            sync_mutations::code,
            sync_mutations::result,
            sync_mutations::event_time,
            sync_mutations::time_source,
            sync_mutations::digest,
        ))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(
        |(mutation_id, name, status, code, result, event_time, time_source, digest)| {
            Ok(Outcome {
                mutation_id,
                name,
                status,
                code,
                result: result
                    .map(|r| serde_json::from_str(&r))
                    .transpose()
                    .map_err(|e| Error::Internal(e.to_string()))?,
                event_time: utc(event_time),
                time_source,
                digest,
            })
        },
    )
    .transpose()
}

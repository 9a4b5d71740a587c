//! Push tokens and pushes, stored. A member's warning events gather in one push while its
//! window is open; the sender claims due pushes, sends them outside any transaction, and
//! records each outcome.

use super::schema::{members, orgs, push_tokens as pt, pushes as ps, role_grants};
use super::{db_error, enum_parse, enum_text, naive, utc, uuid, Conn, Raw};
use crate::on;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::warnings::push::{PushItem, PushState, PushToken};
use yunlian_domain::Error;

/// Registers (or replaces) a device's push token.
pub async fn set_token(
    conn: &mut Conn<'_>,
    device: Uuid,
    member: Uuid,
    t: &PushToken,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let row = (
        pt::device_id.eq(device.to_string()),
        pt::member_id.eq(member.to_string()),
        pt::provider.eq(&t.provider),
        pt::token.eq(&t.token),
        pt::updated_at.eq(naive(now)),
    );
    on!(conn, |c| diesel::insert_into(pt::table)
        .values(row)
        .on_conflict(pt::device_id)
        .do_update()
        .set((
            pt::provider.eq(&t.provider),
            pt::token.eq(&t.token),
            pt::updated_at.eq(naive(now)),
        ))
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(())
}

/// Removes a device's push token: `false` when it had none.
pub async fn delete_token(conn: &mut Conn<'_>, device: Uuid) -> Result<bool, Error> {
    let n = on!(conn, |c| diesel::delete(
        pt::table.filter(pt::device_id.eq(device.to_string()))
    )
    .execute(c)
    .await)
    .map_err(db_error)?;
    Ok(n == 1)
}

/// Every push token of a member's devices goes (their data is erased).
pub async fn delete_tokens_of(conn: &mut Conn<'_>, member: Uuid) -> Result<usize, Error> {
    on!(conn, |c| diesel::delete(
        pt::table.filter(pt::member_id.eq(member.to_string()))
    )
    .execute(c)
    .await)
    .map_err(db_error)
}

/// The push tokens of a member's devices.
pub async fn tokens_of(conn: &mut Conn<'_>, member: Uuid) -> Result<Vec<PushToken>, Error> {
    let rows: Vec<(String, String)> = on!(conn, |c| pt::table
        .filter(pt::member_id.eq(member.to_string()))
        .select((pt::provider, pt::token))
        .order(pt::device_id)
        .load(c)
        .await)
    .map_err(db_error)?;
    Ok(rows
        .into_iter()
        .map(|(provider, token)| PushToken { provider, token })
        .collect())
}

/// Who holds a committee role at this very org (a committee recipient's phones).
pub async fn committee_of(conn: &mut Conn<'_>, org: Uuid) -> Result<Vec<Uuid>, Error> {
    let rows: Vec<String> = on!(conn, |c| role_grants::table
        .filter(role_grants::org_id.eq(org.to_string()))
        .filter(role_grants::role.eq_any(["township_admin", "secretary", "committee_member"]))
        .select(role_grants::member_id)
        .distinct()
        .order(role_grants::member_id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.iter().map(|r| uuid(r)).collect()
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Push {
    pub id: Uuid,
    pub member_id: Uuid,
    pub org_id: Uuid,
    pub items: Vec<PushItem>,
    pub state: PushState,
    pub attempts: i64,
    pub send_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = ps)]
struct PushRow {
    id: String,
    member_id: String,
    org_id: String,
    items: String,
    state: String,
    attempts: i64,
    #[diesel(deserialize_as = super::rows::Ts)]
    send_at: chrono::NaiveDateTime,
    last_error: Option<String>,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
    sent_at: Option<chrono::NaiveDateTime>,
}

impl PushRow {
    fn into_domain(self) -> Result<Push, Error> {
        Ok(Push {
            id: uuid(&self.id)?,
            member_id: uuid(&self.member_id)?,
            org_id: uuid(&self.org_id)?,
            items: serde_json::from_str(&self.items)
                .map_err(|e| Error::Internal(format!("bad push items in db: {e}")))?,
            state: enum_parse("push state", &self.state)?,
            attempts: self.attempts,
            send_at: utc(self.send_at),
            last_error: self.last_error,
            created_at: utc(self.created_at),
            sent_at: self.sent_at.map(utc),
        })
    }
}

fn items_text(items: &[PushItem]) -> Result<String, Error> {
    serde_json::to_string(items).map_err(|e| Error::Internal(e.to_string()))
}

/// Adds a warning event to the member's open push, or opens one that gathers until
/// `window_ends`. Returns the push's id.
pub async fn gather(
    conn: &mut Conn<'_>,
    member: Uuid,
    item: &PushItem,
    window_ends: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Uuid, Error> {
    let (m, gathering) = (member.to_string(), enum_text(PushState::Gathering));
    if let Raw::Pg(c) = &mut conn.raw {
        let _: Vec<String> = ps::table
            .filter(ps::member_id.eq(&m))
            .filter(ps::state.eq(&gathering))
            .select(ps::id)
            .for_update()
            .load(c)
            .await
            .map_err(db_error)?;
    }
    let row: Option<PushRow> = on!(conn, |c| ps::table
        .filter(ps::member_id.eq(&m))
        .filter(ps::state.eq(&gathering))
        .select(PushRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    if let Some(r) = row {
        let mut p = r.into_domain()?;
        p.items.push(item.clone());
        let items = items_text(&p.items)?;
        on!(conn, |c| diesel::update(
            ps::table.filter(ps::id.eq(p.id.to_string()))
        )
        .set((ps::items.eq(&items), ps::updated_at.eq(naive(now))))
        .execute(c)
        .await)
        .map_err(db_error)?;
        return Ok(p.id);
    }
    let org: String = on!(conn, |c| members::table
        .filter(members::id.eq(member.to_string()))
        .select(members::org_id)
        .first(c)
        .await)
    .map_err(db_error)?;
    let id = Uuid::now_v7();
    let items = items_text(std::slice::from_ref(item))?;
    on!(conn, |c| diesel::insert_into(ps::table)
        .values((
            ps::id.eq(id.to_string()),
            ps::member_id.eq(member.to_string()),
            ps::org_id.eq(&org),
            ps::items.eq(&items),
            ps::state.eq(enum_text(PushState::Gathering)),
            ps::attempts.eq(0),
            ps::send_at.eq(naive(window_ends)),
            ps::created_at.eq(naive(now)),
            ps::updated_at.eq(naive(now)),
        ))
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(id)
}

/// Claims what is due: gathering pushes whose window ended stop gathering (what they hold is
/// what goes out) and, with pending ones whose pause is over, are returned, oldest first.
pub async fn claim_due(
    conn: &mut Conn<'_>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Push>, Error> {
    let due = [
        enum_text(PushState::Gathering),
        enum_text(PushState::Pending),
    ];
    let q = ps::table
        .filter(ps::state.eq_any(&due))
        .filter(ps::send_at.le(naive(now)))
        .select(ps::id)
        .order((ps::send_at, ps::id))
        .limit(limit);
    // Two senders at once claim disjoint pushes (SQLite has one writer anyway).
    let ids: Vec<String> = match &mut conn.raw {
        Raw::Pg(c) => q.for_update().skip_locked().load(c).await,
        Raw::Sqlite(c) => q.load(&mut **c).await,
    }
    .map_err(db_error)?;
    let rows: Vec<PushRow> = on!(conn, |c| ps::table
        .filter(ps::id.eq_any(&ids))
        .select(PushRow::as_select())
        .order((ps::send_at, ps::id))
        .load(c)
        .await)
    .map_err(db_error)?;
    on!(conn, |c| diesel::update(
        ps::table.filter(ps::id.eq_any(&ids))
    )
    .set(ps::state.eq(enum_text(PushState::Pending)))
    .execute(c)
    .await)
    .map_err(db_error)?;
    rows.into_iter()
        .map(|r| {
            let mut p = r.into_domain()?;
            p.state = PushState::Pending;
            Ok(p)
        })
        .collect()
}

/// Records an attempt's outcome, if the push is still the one that was sent (pending, with as
/// many attempts as then): a replay or another sender meanwhile wins.
pub async fn record(
    conn: &mut Conn<'_>,
    p: &Push,
    state: PushState,
    send_at: DateTime<Utc>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let attempts = p.attempts + i64::from(state != PushState::NoDevice);
    let sent = (state == PushState::Sent).then(|| naive(now));
    let n = on!(conn, |c| diesel::update(
        ps::table
            .filter(ps::id.eq(p.id.to_string()))
            .filter(ps::state.eq(enum_text(PushState::Pending)))
            .filter(ps::attempts.eq(p.attempts))
    )
    .set((
        ps::state.eq(enum_text(state)),
        ps::attempts.eq(attempts),
        ps::send_at.eq(naive(send_at)),
        ps::last_error.eq(error),
        ps::sent_at.eq(sent),
        ps::updated_at.eq(naive(now)),
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    Ok(n == 1)
}

/// A push with the path of its member's org.
pub async fn get(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(Push, String)>, Error> {
    let row: Option<(PushRow, String)> = on!(conn, |c| ps::table
        .inner_join(orgs::table.on(orgs::id.eq(ps::org_id)))
        .filter(ps::id.eq(id.to_string()))
        .select((PushRow::as_select(), orgs::path))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(r, p)| Ok((r.into_domain()?, p))).transpose()
}

/// Dead letters inside a subtree, oldest first, keyset-paged.
pub async fn dead_within(
    conn: &mut Conn<'_>,
    within: &str,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Push>, Error> {
    let like = format!("{within}%");
    let rows: Vec<PushRow> = on!(conn, |c| {
        let mut q = ps::table
            .inner_join(orgs::table.on(orgs::id.eq(ps::org_id)))
            .filter(orgs::path.like(like.clone()))
            .filter(ps::state.eq(enum_text(PushState::Dead)))
            .select(PushRow::as_select())
            .order(ps::id)
            .limit(limit)
            .into_boxed();
        if let Some(a) = after {
            q = q.filter(ps::id.gt(a.to_string()));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter().map(PushRow::into_domain).collect()
}

/// Sends a dead letter again, from its first attempt: `false` when it was not dead.
pub async fn replay(conn: &mut Conn<'_>, id: Uuid, now: DateTime<Utc>) -> Result<bool, Error> {
    let n = on!(conn, |c| diesel::update(
        ps::table
            .filter(ps::id.eq(id.to_string()))
            .filter(ps::state.eq(enum_text(PushState::Dead)))
    )
    .set((
        ps::state.eq(enum_text(PushState::Pending)),
        ps::attempts.eq(0),
        ps::send_at.eq(naive(now)),
        ps::updated_at.eq(naive(now)),
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    Ok(n == 1)
}

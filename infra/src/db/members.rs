//! Members, stored.

use super::rows::within;
use super::schema::{members, orgs};
use super::{db_error, naive, sync, utc, uuid, CachedDsl, Conn, Raw};
use crate::{load, on};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::member::{Member, MemberFields, MemberStatus, Phone, Residence};
use yunlian_domain::sync::{Entity, Scope};
use yunlian_domain::Error;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = members, treat_none_as_default_value = false)]
struct MemberRow {
    id: String,
    org_id: String,
    group_id: Option<String>,
    name: String,
    phone: String,
    password_hash: Option<String>,
    status: String,
    join_date: Option<chrono::NaiveDate>,
    residence: String,
    migrant_city: Option<String>,
    elderly_or_infirm: bool,
    central_household: bool,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
    #[diesel(deserialize_as = super::rows::Ts)]
    updated_at: chrono::NaiveDateTime,
}

/// The columns an edit changes: `None` leaves a column as it is, so two edits of different
/// fields of one member never overwrite each other.
#[derive(AsChangeset)]
#[diesel(table_name = members)]
struct MemberDiff {
    org_id: Option<String>,
    group_id: Option<Option<String>>,
    name: Option<String>,
    phone: Option<String>,
    status: Option<String>,
    join_date: Option<Option<chrono::NaiveDate>>,
    residence: Option<String>,
    migrant_city: Option<Option<String>>,
    elderly_or_infirm: Option<bool>,
    central_household: Option<bool>,
    updated_at: chrono::NaiveDateTime,
}

fn changed<T: PartialEq + Clone>(before: &T, after: &T) -> Option<T> {
    (before != after).then(|| after.clone())
}

impl MemberDiff {
    fn between(b: &Member, a: &Member) -> Self {
        let (bf, af) = (&b.fields, &a.fields);
        MemberDiff {
            org_id: changed(&b.org_id, &a.org_id).map(|o| o.to_string()),
            group_id: changed(&b.group_id, &a.group_id).map(|g| g.map(|g| g.to_string())),
            name: changed(&bf.name, &af.name),
            phone: changed(&bf.phone, &af.phone).map(|p| p.as_str().to_string()),
            status: changed(&bf.status, &af.status).map(|s| s.as_str().to_string()),
            join_date: changed(&bf.join_date, &af.join_date),
            residence: changed(&bf.residence, &af.residence).map(|r| r.as_str().to_string()),
            migrant_city: changed(&bf.migrant_city, &af.migrant_city),
            elderly_or_infirm: changed(&bf.elderly_or_infirm, &af.elderly_or_infirm),
            central_household: changed(&bf.central_household, &af.central_household),
            updated_at: naive(a.updated_at),
        }
    }
}

fn to_row(m: &Member, password_hash: Option<String>) -> MemberRow {
    let f = &m.fields;
    MemberRow {
        id: m.id.to_string(),
        org_id: m.org_id.to_string(),
        group_id: m.group_id.map(|g| g.to_string()),
        name: f.name.clone(),
        phone: f.phone.as_str().to_string(),
        password_hash,
        status: f.status.as_str().into(),
        join_date: f.join_date,
        residence: f.residence.as_str().into(),
        migrant_city: f.migrant_city.clone(),
        elderly_or_infirm: f.elderly_or_infirm,
        central_household: f.central_household,
        created_at: naive(m.created_at),
        updated_at: naive(m.updated_at),
    }
}

impl MemberRow {
    fn into_domain(self) -> Result<(Member, Option<String>), Error> {
        let bad = |what: &str, v: &str| Error::Internal(format!("bad member {what} in db: {v}"));
        let member = Member {
            id: uuid(&self.id)?,
            org_id: uuid(&self.org_id)?,
            group_id: self.group_id.as_deref().map(uuid).transpose()?,
            fields: MemberFields {
                name: self.name,
                phone: Phone::stored(&self.phone).map_err(|_| bad("phone", "(masked)"))?,
                status: MemberStatus::parse(&self.status)
                    .ok_or_else(|| bad("status", &self.status))?,
                join_date: self.join_date,
                residence: Residence::parse(&self.residence)
                    .ok_or_else(|| bad("residence", &self.residence))?,
                migrant_city: self.migrant_city,
                elderly_or_infirm: self.elderly_or_infirm,
                central_household: self.central_household,
            },
            can_login: self.password_hash.is_some(),
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        };
        Ok((member, self.password_hash))
    }
}

fn phone_conflict(e: diesel::result::Error) -> Error {
    match db_error(e) {
        Error::Conflict(_) => Error::Conflict("phone_taken"),
        other => other,
    }
}

/// Records a member's row where phones see it: the committee scope of their org (the roster)
/// and their own member scope.
async fn record(conn: &mut Conn<'_>, m: &Member) -> Result<(), Error> {
    let at = m.updated_at;
    sync::record(
        conn,
        &[Scope::Committee(m.org_id), Scope::Member(m.id)],
        Entity::Member,
        m.id,
        false,
        at,
    )
    .await?;
    Ok(())
}

pub async fn insert(
    conn: &mut Conn<'_>,
    m: &Member,
    password_hash: Option<String>,
) -> Result<(), Error> {
    let row = to_row(m, password_hash);
    on!(conn, |c| diesel::insert_into(members::table)
        .values(&row)
        .execute(c)
        .await)
    .map_err(phone_conflict)?;
    record(conn, m).await
}

/// Inserts many members. PostgreSQL takes them in multi-row statements under its bind-parameter
/// limit; diesel-async cannot batch on SQLite, where one statement per row inside the caller's
/// transaction costs microseconds.
pub async fn insert_many(conn: &mut Conn<'_>, ms: &[Member]) -> Result<(), Error> {
    let rows: Vec<MemberRow> = ms.iter().map(|m| to_row(m, None)).collect();
    match &mut conn.raw {
        Raw::Pg(c) => {
            for chunk in rows.chunks(500) {
                diesel::insert_into(members::table)
                    .values(chunk)
                    .execute(c)
                    .await
                    .map_err(phone_conflict)?;
            }
        }
        Raw::Sqlite(c) => {
            for row in &rows {
                diesel::insert_into(members::table)
                    .values(row)
                    .execute(&mut **c)
                    .await
                    .map_err(phone_conflict)?;
            }
        }
    }
    for m in ms {
        record(conn, m).await?;
    }
    Ok(())
}

/// A member row read with its org's path, decoded.
fn with_path(row: Option<(MemberRow, String)>) -> Result<Option<(Member, String)>, Error> {
    row.map(|(r, p)| Ok((r.into_domain()?.0, p))).transpose()
}

/// A member with the path of their org, for authorisation.
/// A member by id, with their org's path: the read [`get`], [`of_live_session`] and [`lock`]
/// share (written once per engine, as `as_select` needs).
macro_rules! with_path_by_id {
    ($id:expr) => {
        members::table
            .inner_join(orgs::table)
            .filter(members::id.eq($id))
            .select((MemberRow::as_select(), orgs::path))
    };
}

pub async fn get(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(Member, String)>, Error> {
    let row: Option<(MemberRow, String)> = on!(conn, |c| with_path_by_id!(id.to_string())
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    with_path(row)
}

/// The member of a live session (not revoked, not expired) with their branch's path, in one
/// query: what every authenticated request needs first.
pub async fn of_live_session(
    conn: &mut Conn<'_>,
    id: Uuid,
    session: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<(Member, String)>, Error> {
    let live = super::sessions::live(session.to_string(), id.to_string(), naive(now));
    let row: Option<(MemberRow, String)> = on!(conn, |c| with_path_by_id!(id.to_string())
        .filter(diesel::dsl::exists(live))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    with_path(row)
}

/// Members by id (for sync pages).
pub async fn by_ids(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<Member>, Error> {
    let rows: Vec<MemberRow> = load!(
        conn,
        members::table
            .filter(within(members::id, ids))
            .select(MemberRow::as_select())
    )
    .map_err(db_error)?;
    rows.into_iter()
        .map(|r| r.into_domain().map(|(m, _)| m))
        .collect()
}

/// A member and their password hash, by login phone.
pub async fn by_phone(
    conn: &mut Conn<'_>,
    phone: &Phone,
) -> Result<Option<(Member, Option<String>)>, Error> {
    let row: Option<MemberRow> = on!(conn, |c| members::table
        .filter(members::phone.eq(phone.as_str()))
        .select(MemberRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(MemberRow::into_domain).transpose()
}

pub async fn password_hash(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<String>, Error> {
    let h: Option<Option<String>> = on!(conn, |c| members::table
        .find(id.to_string())
        .select(members::password_hash)
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    h.ok_or(Error::NotFound)
}

/// Which of `phones` already belong to a member.
pub async fn taken_phones(conn: &mut Conn<'_>, phones: &[String]) -> Result<Vec<String>, Error> {
    let mut taken = Vec::new();
    for chunk in phones.chunks(500) {
        let mut found: Vec<String> = on!(conn, |c| members::table
            .filter(members::phone.eq_any(chunk))
            .select(members::phone)
            .load(c)
            .await)
        .map_err(db_error)?;
        taken.append(&mut found);
    }
    Ok(taken)
}

/// Locks a member's row for the rest of the caller's transaction (PostgreSQL `FOR UPDATE`;
/// SQLite's write transaction already excludes other writers) and reads it with its org's path:
/// what an edit that decides from the stored values must start with.
///
/// On PostgreSQL the lock and the read are pipelined (one round trip): the server runs them in
/// order, so the read, whose snapshot is taken when it starts, sees the row as locked.
pub async fn lock(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(Member, String)>, Error> {
    let c: &diesel_async::AsyncPgConnection = match &mut conn.raw {
        Raw::Pg(c) => c,
        Raw::Sqlite(_) => return get(conn, id).await,
    };
    let sid = id.to_string();
    let lock = members::table
        .find(&sid)
        .select(members::id)
        .for_update()
        .first::<String>(&mut &*c);
    let read = with_path_by_id!(&sid).first::<(MemberRow, String)>(&mut &*c);
    let (locked, row) = tokio::join!(biased; lock, read);
    if locked.optional().map_err(db_error)?.is_none() {
        return Ok(None);
    }
    let row = row.optional().map_err(db_error)?;
    with_path(row)
}

/// Saves an edit of `before` (read under [`lock`]) into `after`, writing only the columns that
/// differ; a move leaves a tombstone in the old committee's scope.
pub async fn update(conn: &mut Conn<'_>, before: &Member, after: &Member) -> Result<(), Error> {
    let diff = MemberDiff::between(before, after);
    let n = on!(conn, |c| diesel::update(
        members::table.find(after.id.to_string())
    )
    .set(&diff)
    .cached()
    .execute(c)
    .await)
    .map_err(phone_conflict)?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    if before.org_id != after.org_id || before.group_id != after.group_id {
        // Their member grants follow their org and group.
        conn.access_changed();
    }
    if before.org_id != after.org_id {
        let gone = Scope::Committee(before.org_id);
        sync::record(
            conn,
            &[gone],
            Entity::Member,
            after.id,
            true,
            after.updated_at,
        )
        .await?;
    }
    record(conn, after).await
}

pub async fn set_password(
    conn: &mut Conn<'_>,
    id: Uuid,
    hash: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    let n = on!(conn, |c| diesel::update(
        members::table.find(id.to_string())
    )
    .set((
        members::password_hash.eq(hash),
        members::updated_at.eq(naive(now))
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    // `can_login` is part of the synced row.
    let (m, _) = get(conn, id).await?.ok_or(Error::NotFound)?;
    record(conn, &m).await
}

/// Filters for the roster; `within` bounds it to one subtree the caller may read.
#[derive(Debug, Default, Clone)]
pub struct MemberFilter {
    pub within: String,
    pub status: Option<MemberStatus>,
    pub residence: Option<Residence>,
    pub group_id: Option<Uuid>,
    /// A name fragment, or an exact phone number.
    pub q: Option<String>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

pub async fn list(conn: &mut Conn<'_>, f: &MemberFilter) -> Result<Vec<Member>, Error> {
    let within = format!("{}%", f.within);
    let rows: Vec<MemberRow> = on!(conn, |c| {
        let mut q = members::table
            .inner_join(orgs::table)
            .filter(orgs::path.like(within))
            .select(MemberRow::as_select())
            .order(members::id)
            .limit(f.limit)
            .into_boxed();
        if let Some(s) = f.status {
            q = q.filter(members::status.eq(s.as_str()));
        }
        if let Some(r) = f.residence {
            q = q.filter(members::residence.eq(r.as_str()));
        }
        if let Some(g) = f.group_id {
            q = q.filter(members::group_id.eq(g.to_string()));
        }
        if let Some(text) = &f.q {
            // `%` and `_` are searched for as themselves.
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            q = q.filter(
                members::name
                    .like(format!("%{escaped}%"))
                    .escape('\\')
                    .or(members::phone.eq(text.clone())),
            );
        }
        if let Some(a) = f.after {
            q = q.filter(members::id.gt(a.to_string()));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter()
        .map(|r| r.into_domain().map(|(m, _)| m))
        .collect()
}

/// A member leaves: deactivated (no password, so no login), `left_at` set; `false` when they
/// had left already. The row stays: their attendance stays counted.
pub async fn mark_left(conn: &mut Conn<'_>, m: &Member, now: DateTime<Utc>) -> Result<bool, Error> {
    let t = naive(now);
    let n = on!(conn, |c| diesel::update(
        members::table.find(m.id.to_string())
    )
    .filter(members::left_at.is_null())
    .set((
        members::left_at.eq(Some(t)),
        members::password_hash.eq(None::<String>),
        members::updated_at.eq(t),
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    if n == 1 {
        conn.access_changed();
        let mut after = m.clone();
        after.can_login = false;
        after.updated_at = now;
        record(conn, &after).await?;
    }
    Ok(n == 1)
}

/// Members who left and are not erased yet: (id, their org's path, when they left).
pub async fn departed(conn: &mut Conn<'_>) -> Result<Vec<(Uuid, String, DateTime<Utc>)>, Error> {
    let rows: Vec<(String, String, Option<chrono::NaiveDateTime>)> = on!(conn, |c| members::table
        .inner_join(orgs::table)
        .filter(members::left_at.is_not_null())
        .filter(members::erased_at.is_null())
        .select((members::id, orgs::path, members::left_at))
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .filter_map(|(id, path, left)| left.map(|l| (id, path, l)))
        .map(|(id, path, left)| Ok((uuid(&id)?, path, utc(left))))
        .collect()
}

/// The retention of a member who left has ended: their phone number is replaced (the number
/// may be given to someone new) and their devices' public keys and push tokens erased; their
/// name and attendance stay, as the branch's record.
pub async fn erase(conn: &mut Conn<'_>, id: Uuid, now: DateTime<Utc>) -> Result<bool, Error> {
    use super::schema::devices;
    let t = naive(now);
    let n = on!(conn, |c| diesel::update(
        members::table.find(id.to_string())
    )
    .filter(members::erased_at.is_null())
    .set((
        members::phone.eq(Phone::erased(id).as_str().to_string()),
        members::erased_at.eq(Some(t)),
        members::updated_at.eq(t),
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    if n == 0 {
        return Ok(false);
    }
    on!(conn, |c| diesel::update(
        devices::table.filter(devices::member_id.eq(id.to_string()))
    )
    .set(devices::public_key.eq(""))
    .execute(c)
    .await)
    .map_err(db_error)?;
    super::push::delete_tokens_of(conn, id).await?;
    if let Some((m, _)) = get(conn, id).await? {
        record(conn, &m).await?;
    }
    Ok(true)
}

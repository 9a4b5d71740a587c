//! Members' registered devices, stored. A device row is synced to its member's own scope.

use super::rows::within;
use super::schema::{devices, members, orgs};
use super::{db_error, enum_parse, enum_text, naive, sync, utc, uuid, Conn};
use crate::{load, on};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::attendance::{Device, KeyAlgorithm, Unlock};
use yunlian_domain::sync::{Entity, Scope};
use yunlian_domain::Error;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = devices, treat_none_as_default_value = false)]
pub(crate) struct DeviceRow {
    id: String,
    member_id: String,
    algorithm: String,
    public_key: String,
    unlock: String,
    label: Option<String>,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
    revoked_at: Option<chrono::NaiveDateTime>,
    revoked_by: Option<String>,
}

impl DeviceRow {
    pub(crate) fn into_domain(self) -> Result<Device, Error> {
        Ok(Device {
            id: uuid(&self.id)?,
            member_id: uuid(&self.member_id)?,
            algorithm: enum_parse::<KeyAlgorithm>("algorithm", &self.algorithm)?,
            public_key: self.public_key,
            unlock: enum_parse::<Unlock>("unlock", &self.unlock)?,
            label: self.label,
            created_at: utc(self.created_at),
            revoked_at: self.revoked_at.map(utc),
        })
    }
}

pub async fn insert(conn: &mut Conn<'_>, d: &Device) -> Result<(), Error> {
    let row = DeviceRow {
        id: d.id.to_string(),
        member_id: d.member_id.to_string(),
        algorithm: enum_text(d.algorithm),
        public_key: d.public_key.clone(),
        unlock: enum_text(d.unlock),
        label: d.label.clone(),
        created_at: naive(d.created_at),
        revoked_at: None,
        revoked_by: None,
    };
    on!(conn, |c| diesel::insert_into(devices::table)
        .values(&row)
        .execute(c)
        .await)
    .map_err(db_error)?;
    sync::record(
        conn,
        &[Scope::Member(d.member_id)],
        Entity::Device,
        d.id,
        false,
        d.created_at,
    )
    .await?;
    Ok(())
}

/// A device with the org path of its member, for authorising an admin's revocation.
pub async fn get(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(Device, String)>, Error> {
    let row: Option<(DeviceRow, String)> = on!(conn, |c| devices::table
        .inner_join(members::table.inner_join(orgs::table))
        .filter(devices::id.eq(id.to_string()))
        .select((DeviceRow::as_select(), orgs::path))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(d, p)| Ok((d.into_domain()?, p))).transpose()
}

/// A device's signing key, its algorithm and public key (base64), by id: what checking a
/// signature needs, read by primary key alone. A revoked device's key is returned too: whether
/// a revoked device may sign is the judging's to say, under the lock.
pub async fn key(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(KeyAlgorithm, String)>, Error> {
    let row: Option<(String, String)> = on!(conn, |c| devices::table
        .filter(devices::id.eq(id.to_string()))
        .select((devices::algorithm, devices::public_key))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(algorithm, key)| Ok((enum_parse::<KeyAlgorithm>("algorithm", &algorithm)?, key)))
        .transpose()
}

pub async fn by_ids(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<Device>, Error> {
    let rows: Vec<DeviceRow> = load!(
        conn,
        devices::table
            .filter(within(devices::id, ids))
            .select(DeviceRow::as_select())
    )
    .map_err(db_error)?;
    rows.into_iter().map(DeviceRow::into_domain).collect()
}

/// A member's devices, newest last.
pub async fn of_member(conn: &mut Conn<'_>, member: Uuid) -> Result<Vec<Device>, Error> {
    let rows: Vec<DeviceRow> = on!(conn, |c| devices::table
        .filter(devices::member_id.eq(member.to_string()))
        .select(DeviceRow::as_select())
        .order(devices::id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(DeviceRow::into_domain).collect()
}

/// Revokes a device (kept, as the evidence of past clock-ins); revoking twice changes nothing.
pub async fn revoke(
    conn: &mut Conn<'_>,
    d: &Device,
    by: Uuid,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let n = on!(conn, |c| diesel::update(
        devices::table.find(d.id.to_string())
    )
    .filter(devices::revoked_at.is_null())
    .set((
        devices::revoked_at.eq(naive(now)),
        devices::revoked_by.eq(by.to_string())
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    if n == 1 {
        // A revoked phone is pushed to no more.
        super::push::delete_token(conn, d.id).await?;
        sync::record(
            conn,
            &[Scope::Member(d.member_id)],
            Entity::Device,
            d.id,
            false,
            now,
        )
        .await?;
    }
    Ok(())
}

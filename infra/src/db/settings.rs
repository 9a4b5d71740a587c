//! Org settings, stored: each org's overrides, one row per version.

use super::schema::org_settings;
use super::{db_error, naive, utc, uuid, Conn};
use crate::on;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::settings::Overrides;
use yunlian_domain::Error;

/// One version of an org's overrides.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Version {
    pub org_id: Uuid,
    pub version: i64,
    pub overrides: Overrides,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

type Row = (String, i64, String, Option<String>, chrono::NaiveDateTime);

fn version((org, v, o, by, at): Row) -> Result<Version, Error> {
    Ok(Version {
        org_id: uuid(&org)?,
        version: v,
        overrides: serde_json::from_str(&o)
            .map_err(|e| Error::Internal(format!("bad settings in db: {e}")))?,
        created_by: by.as_deref().map(uuid).transpose()?,
        created_at: utc(at),
    })
}

/// The version in force of each of `orgs` that has one.
pub async fn current(conn: &mut Conn<'_>, orgs: &[Uuid]) -> Result<Vec<Version>, Error> {
    let ids: Vec<String> = orgs.iter().map(Uuid::to_string).collect();
    let rows: Vec<Row> = on!(conn, |c| org_settings::table
        .filter(org_settings::org_id.eq_any(&ids))
        .select((
            org_settings::org_id,
            org_settings::version,
            org_settings::overrides,
            org_settings::created_by,
            org_settings::created_at,
        ))
        .order((org_settings::org_id, org_settings::version.desc()))
        .load(c)
        .await)
    .map_err(db_error)?;
    let mut out: Vec<Version> = Vec::new();
    for r in rows {
        if out.last().is_some_and(|v| v.org_id.to_string() == r.0) {
            continue; // an older version of the same org
        }
        out.push(version(r)?);
    }
    Ok(out)
}

/// Stores `overrides` as version `v` of the org's settings. Two writers of the same version
/// collide on the key: the second is `settings_changed`.
pub async fn insert(conn: &mut Conn<'_>, v: &Version) -> Result<(), Error> {
    let text = serde_json::to_string(&v.overrides).map_err(|e| Error::Internal(e.to_string()))?;
    on!(conn, |c| diesel::insert_into(org_settings::table)
        .values((
            org_settings::org_id.eq(v.org_id.to_string()),
            org_settings::version.eq(v.version),
            org_settings::overrides.eq(&text),
            org_settings::created_by.eq(v.created_by.map(|b| b.to_string())),
            org_settings::created_at.eq(naive(v.created_at)),
        ))
        .execute(c)
        .await)
    .map_err(|e| match db_error(e) {
        Error::Conflict(_) => Error::Conflict("settings_changed"),
        other => other,
    })?;
    Ok(())
}

//! Org settings: what an org overrides, and what is in force there (the nearest ancestor that
//! sets a value wins; the configuration gives the root's defaults). Use cases load the settings
//! of the org they act in once.

use super::authorize;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::org::path_ids;
use yunlian_domain::settings::{resolve, Overrides, Settings};
use yunlian_domain::Error;
use yunlian_infra::db::{self, settings::Version, Conn};

/// The settings in force at the org at `path`.
pub async fn effective(c: &mut Conn<'_>, path: &str, root: Settings) -> Result<Settings, Error> {
    let ids = path_ids(path);
    let versions = db::settings::current(c, &ids).await?;
    let chain: Vec<Overrides> = ids
        .iter()
        .filter_map(|id| versions.iter().find(|v| v.org_id == *id))
        .map(|v| v.overrides)
        .collect();
    Ok(resolve(root, &chain))
}

/// An org's settings as `getOrgSettings` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct OrgSettings {
    pub org_id: Uuid,
    /// The version of this org's own overrides (0: it has set nothing).
    pub version: i64,
    pub overrides: Overrides,
    /// What is in force here, after every ancestor's overrides.
    pub effective: Settings,
}

async fn load(
    c: &mut Conn<'_>,
    org: Uuid,
    path: &str,
    root: Settings,
) -> Result<OrgSettings, Error> {
    let own = db::settings::current(c, &[org]).await?.pop();
    Ok(OrgSettings {
        org_id: org,
        version: own.as_ref().map_or(0, |v| v.version),
        overrides: own.map(|v| v.overrides).unwrap_or_default(),
        effective: effective(c, path, root).await?,
    })
}

/// `getOrgSettings`: for anyone who sees the org.
pub async fn get(
    c: &mut Conn<'_>,
    p: &Principal,
    org_id: Uuid,
    root: Settings,
) -> Result<OrgSettings, Error> {
    let org = db::orgs::get(c, org_id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ReadOrg, &org.path)?;
    load(c, org.id, &org.path, root).await
}

/// `updateOrgSettings`: a township admin of the subtree replaces the org's overrides with a new
/// version. With `expected_version`, a change made meanwhile is `settings_version_mismatch`
/// rather than overwritten; two changes at once collide on the version (`settings_changed`).
pub async fn update(
    c: &mut Conn<'_>,
    p: &Principal,
    org_id: Uuid,
    overrides: Overrides,
    expected_version: Option<i64>,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<OrgSettings, Error> {
    let org = db::orgs::get(c, org_id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageSettings, &org.path)?;
    overrides.validate().map_err(Error::Invalid)?;
    let current = db::settings::current(c, &[org.id])
        .await?
        .pop()
        .map_or(0, |v| v.version);
    if expected_version.is_some_and(|v| v != current) {
        return Err(Error::Conflict("settings_version_mismatch"));
    }
    let v = Version {
        org_id: org.id,
        version: current + 1,
        overrides,
        created_by: Some(p.member_id),
        created_at: now,
    };
    let before = db::settings::current(c, &[org.id]).await?.pop();
    db::settings::insert(c, &v).await?;
    let changes =
        yunlian_domain::audit::diff_of(before.as_ref().map(|b| &b.overrides), Some(&v.overrides));
    db::audit::note(c, "settings", org.id, &org.path, changes);
    let after = load(c, org.id, &org.path, root).await?;
    // A grade B threshold inherited from above may meet a new A here (or the other way round).
    if after.effective.grade_b_min >= after.effective.grade_a_min {
        return Err(Error::invalid("grade_b_min", "grades_out_of_order"));
    }
    tracing::info!(org = %org.id, version = v.version, by = %p.member_id, "settings changed");
    Ok(after)
}

//! Personal data (PIPL): a member's own copy of what is kept about them (`exportMyData`), and
//! the jobs that keep it no longer than its purpose needs: clock-in coordinates coarsened after
//! the township's `coordinates_precise_days`, audit entries dropped after
//! `audit_retention_days`, a departed member's phone number and device keys erased after
//! `departed_retention_days`.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use yunlian_domain::auth::Principal;
use yunlian_domain::settings::Settings;
use yunlian_domain::Error;
use yunlian_infra::db::{self, ScopedFutureExt};
use yunlian_infra::Db;

/// Everything kept about one member that is theirs: their profile, attendance (clock-ins with
/// their evidence, each meeting's final status), points, comments and devices. Nothing of
/// anyone else: every list is read by the caller's own member id.
#[derive(Debug, Serialize)]
pub struct MyData {
    pub exported_at: DateTime<Utc>,
    pub profile: yunlian_domain::member::Member,
    pub org_path: String,
    pub clock_ins: Vec<yunlian_domain::attendance::ClockIn>,
    pub attendance: Vec<db::attendance::MyAttendance>,
    pub points: Vec<yunlian_domain::points::Entry>,
    pub comments: Vec<yunlian_domain::moments::Comment>,
    pub devices: Vec<yunlian_domain::attendance::Device>,
}

/// `exportMyData`: the caller's own records, read in one snapshot.
pub async fn export(store: &Db, p: &Principal, now: DateTime<Utc>) -> Result<MyData, Error> {
    let me = p.member_id;
    store
        .snapshot(move |mut c| {
            async move {
                let (profile, org_path) =
                    db::members::get(&mut c, me).await?.ok_or(Error::NotFound)?;
                let points = db::points::list(
                    &mut c,
                    &db::points::EntryFilter {
                        member: Some(me),
                        limit: i64::MAX / 2,
                        ..Default::default()
                    },
                )
                .await?;
                Ok(MyData {
                    exported_at: now,
                    profile,
                    org_path,
                    clock_ins: db::clock_ins::of_member(&mut c, me).await?,
                    attendance: db::attendance::of_member(&mut c, me, None, None, i64::MAX / 2)
                        .await?,
                    points,
                    comments: db::moments::comments_of_author(&mut c, me).await?,
                    devices: db::devices::of_member(&mut c, me).await?,
                })
            }
            .scope_boxed()
        })
        .await
}

/// The coarsening job: at each org with precise clock-ins older than a day, those stored
/// before its `coordinates_precise_days` are rounded; returns how many.
pub async fn coarsen_coordinates(
    store: &Db,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let orgs = store
        .read(move |mut c| {
            async move { db::clock_ins::orgs_with_precise(&mut c, now - TimeDelta::days(1)).await }
                .scope_boxed()
        })
        .await?;
    let mut done = 0;
    for (org, path) in orgs {
        loop {
            let p = path.clone();
            let n = store
                .write(move |mut c| {
                    async move {
                        let s = super::settings::effective(&mut c, &p, root).await?;
                        let before = now - TimeDelta::days(s.coordinates_precise_days);
                        db::clock_ins::coarsen(&mut c, org, before, 1000).await
                    }
                    .scope_boxed()
                })
                .await?;
            done += n;
            if n < 1000 {
                break;
            }
        }
    }
    Ok(done)
}

/// The audit retention job: each org's entries older than its `audit_retention_days` go.
pub async fn purge_audit(store: &Db, root: Settings, now: DateTime<Utc>) -> Result<usize, Error> {
    // No township keeps less than the minimum the setting allows.
    let paths = store
        .read(move |mut c| {
            async move { db::audit::paths_before(&mut c, now - TimeDelta::days(30)).await }
                .scope_boxed()
        })
        .await?;
    let mut done = 0;
    for path in paths {
        done += store
            .write(move |mut c| {
                let path = path.clone();
                async move {
                    // An entry whose org is gone (path empty) falls under the root's setting.
                    let s = if path.is_empty() {
                        root
                    } else {
                        super::settings::effective(&mut c, &path, root).await?
                    };
                    db::audit::purge(&mut c, &path, now - TimeDelta::days(s.audit_retention_days))
                        .await
                }
                .scope_boxed()
            })
            .await?;
    }
    Ok(done)
}

/// The departed members' job: each member who left longer ago than their township's
/// `departed_retention_days` has their phone number and device keys erased; returns how many.
pub async fn erase_departed(
    store: &Db,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    let departed = store
        .read(|mut c| async move { db::members::departed(&mut c).await }.scope_boxed())
        .await?;
    let mut done = 0;
    for (id, path, left) in departed {
        done += store
            .write(move |mut c| {
                let path = path.clone();
                async move {
                    let s = super::settings::effective(&mut c, &path, root).await?;
                    if left > now - TimeDelta::days(s.departed_retention_days) {
                        return Ok(0);
                    }
                    Ok(usize::from(db::members::erase(&mut c, id, now).await?))
                }
                .scope_boxed()
            })
            .await?;
    }
    Ok(done)
}

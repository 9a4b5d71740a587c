//! How each synced entity's rows are loaded for a pull: one entry per `Entity`, the only place
//! that knows every repository. `sync.rs` keeps the mechanism (versions, the index, the ledger)
//! and imports none of them.

use super::rows::within;
use super::schema::orgs as orgs_table;
use super::{
    attendance, cases, clock_ins, db_error, devices, lists, meetings, members, moments, orgs,
    points, warnings, Conn,
};
use crate::load;
use diesel::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;
use yunlian_domain::sync::{Entity, Scope};
use yunlian_domain::Error;

/// A row rendered once, straight to its JSON text: a pull measures and sends it as it is.
pub type Rendered = Box<serde_json::value::RawValue>;

fn json<T: serde::Serialize>(v: &T) -> Result<Rendered, Error> {
    serde_json::value::to_raw_value(v).map_err(|e| Error::Internal(e.to_string()))
}

/// The rows of `entity` with these ids, as a phone sees them in `scope`.
pub async fn rows(
    conn: &mut Conn<'_>,
    scope: &Scope,
    entity: Entity,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Rendered>, Error> {
    let keys: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let mut out = HashMap::new();
    match entity {
        Entity::Org => {
            let found: Vec<orgs::OrgRow> = load!(
                conn,
                orgs_table::table
                    .filter(within(orgs_table::id, &keys))
                    .select(orgs::OrgRow::as_select())
            )
            .map_err(db_error)?;
            for r in found {
                let o = r.into_domain()?;
                out.insert(o.id, json(&o)?);
            }
        }
        Entity::Member => {
            for m in members::by_ids(conn, &keys).await? {
                out.insert(m.id, json(&m)?);
            }
        }
        Entity::Device => {
            for d in devices::by_ids(conn, &keys).await? {
                out.insert(d.id, json(&d)?);
            }
        }
        Entity::Meeting => {
            for m in meetings::by_ids(conn, &keys).await? {
                out.insert(m.id, json(&m)?);
            }
        }
        Entity::ClockIn => {
            for ci in clock_ins::by_ids(conn, &keys).await? {
                out.insert(ci.id, json(&ci)?);
            }
        }
        Entity::Leave => {
            for l in attendance::leaves_by_ids(conn, &keys).await? {
                out.insert(l.id, json(&l)?);
            }
        }
        Entity::Attendance => {
            let Scope::Member(member) = scope else {
                return Err(Error::Internal(format!("attendance synced to {scope}")));
            };
            let limit = keys.len() as i64;
            for a in attendance::of_member(conn, *member, Some(&keys), None, limit).await? {
                out.insert(a.meeting_id, json(&a)?);
            }
        }
        Entity::Post => {
            for p in moments::posts_by_ids(conn, &keys).await? {
                out.insert(p.id, json(&p)?);
            }
        }
        // The branch's board: a hidden comment keeps its place without its text.
        Entity::Comment => {
            for c in moments::comments_by_ids(conn, &keys).await? {
                out.insert(c.id, json(&c.as_seen_by_others())?);
            }
        }
        // The author's own copy: a hidden comment with its text and why.
        Entity::MyComment => {
            for c in moments::comments_by_ids(conn, &keys).await? {
                out.insert(c.id, json(&c)?);
            }
        }
        Entity::Case => {
            for c in cases::by_ids(conn, &keys).await? {
                out.insert(c.id, json(&c)?);
            }
        }
        Entity::Household => {
            for h in moments::households_by_ids(conn, &keys).await? {
                out.insert(h.id, json(&h)?);
            }
        }
        Entity::PointsEntry => {
            for e in points::by_ids(conn, &keys).await? {
                out.insert(e.id, json(&e)?);
            }
        }
        Entity::Warning => {
            for w in warnings::by_ids(conn, &keys).await? {
                out.insert(w.id, json(&w)?);
            }
        }
        Entity::PointsList => {
            for l in lists::by_ids(conn, &keys).await? {
                out.insert(l.id, json(&l)?);
            }
        }
        Entity::MeetingSecret => {
            for (id, secret) in meetings::secrets(conn, &keys).await? {
                let row = serde_json::json!({
                    "meeting_id": id,
                    "secret_b64": secret,
                    "algorithm": "SHA1",
                    "digits": 6,
                    "step_secs": yunlian_domain::attendance::CODE_STEP_SECS,
                });
                out.insert(id, json(&row)?);
            }
        }
    }
    Ok(out)
}

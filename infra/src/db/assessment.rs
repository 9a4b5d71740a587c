//! What the branch assessment reads: per branch and month, the attendance of held meetings,
//! learners, cases due and notices due (and each branch's members), for every branch inside a subtree over a range of time
//! (five queries however many branches: a township's year is thousands of rows, not millions).

use super::schema::{cases, learning_progress as lp, meeting_attendance as ma, meetings, members};
use super::schema::{orgs, rectifications as rt};
use super::{db_error, naive, utc, uuid, Conn};
use crate::on;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::HashMap;
use uuid::Uuid;
use yunlian_domain::points::month_of;
use yunlian_domain::warnings::assessment::MonthFacts;
use yunlian_domain::Error;

/// Facts by (branch, month `YYYY-MM`), for the branches inside `within`, over `[from, to)`.
/// `branch_of` maps a party group to its branch (a group's meetings count for the branch).
pub async fn month_facts(
    conn: &mut Conn<'_>,
    within: &str,
    branch_of: &HashMap<Uuid, Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<HashMap<(Uuid, String), MonthFacts>, Error> {
    let like = format!("{within}%");
    let (f, t) = (naive(from), naive(to));
    let mut out: HashMap<(Uuid, String), MonthFacts> = HashMap::new();
    let branch = |org: &str| -> Result<Uuid, Error> {
        let id = uuid(org)?;
        Ok(*branch_of.get(&id).unwrap_or(&id))
    };

    let att: Vec<(String, chrono::NaiveDateTime, String)> = on!(conn, |c| ma::table
        .inner_join(meetings::table.on(meetings::id.eq(ma::meeting_id)))
        .inner_join(orgs::table.on(orgs::id.eq(meetings::org_id)))
        .filter(orgs::path.like(&like))
        .filter(meetings::status.eq("held"))
        .filter(meetings::starts_at.ge(f))
        .filter(meetings::starts_at.lt(t))
        .select((meetings::org_id, meetings::starts_at, ma::status))
        .load(c)
        .await)
    .map_err(db_error)?;
    for (org, at, status) in att {
        let e = out.entry((branch(&org)?, month_of(utc(at)))).or_default();
        e.expected += 1;
        e.attended += i64::from(matches!(status.as_str(), "present" | "late" | "video"));
    }

    let learned: Vec<(String, String, Option<chrono::NaiveDateTime>)> = on!(conn, |c| lp::table
        .inner_join(members::table.on(members::id.eq(lp::member_id)))
        .inner_join(orgs::table.on(orgs::id.eq(members::org_id)))
        .filter(orgs::path.like(&like))
        .filter(lp::completed_at.ge(f))
        .filter(lp::completed_at.lt(t))
        .select((members::org_id, lp::member_id, lp::completed_at))
        .load(c)
        .await)
    .map_err(db_error)?;
    let mut learners: HashMap<(Uuid, String), std::collections::HashSet<String>> = HashMap::new();
    for (org, member, at) in learned {
        if let Some(at) = at {
            learners
                .entry((branch(&org)?, month_of(utc(at))))
                .or_default()
                .insert(member);
        }
    }
    for (k, who) in learners {
        out.entry(k).or_default().learners = who.len() as i64;
    }

    type Due = (String, chrono::NaiveDateTime, Option<chrono::NaiveDateTime>);
    let due: Vec<(
        String,
        Option<chrono::NaiveDateTime>,
        Option<chrono::NaiveDateTime>,
    )> = on!(conn, |c| cases::table
        .inner_join(orgs::table.on(orgs::id.eq(cases::org_id)))
        .filter(orgs::path.like(&like))
        .filter(cases::due_at.ge(f))
        .filter(cases::due_at.lt(t))
        .filter(cases::state.ne("merged"))
        .select((cases::org_id, cases::due_at, cases::closed_at))
        .load(c)
        .await)
    .map_err(db_error)?;
    let due: Vec<Due> = due
        .into_iter()
        .filter_map(|(o, d, closed)| d.map(|d| (o, d, closed)))
        .collect();
    for (org, at, closed) in due {
        let e = out.entry((branch(&org)?, month_of(utc(at)))).or_default();
        e.cases_due += 1;
        e.cases_on_time += i64::from(closed.is_some_and(|c| c <= at));
    }

    let notices: Vec<(
        String,
        chrono::NaiveDateTime,
        Option<chrono::NaiveDateTime>,
        String,
    )> = on!(conn, |c| rt::table
        .inner_join(orgs::table.on(orgs::id.eq(rt::org_id)))
        .filter(orgs::path.like(&like))
        .filter(rt::due_at.ge(f))
        .filter(rt::due_at.lt(t))
        .select((rt::org_id, rt::due_at, rt::answered_at, rt::state))
        .load(c)
        .await)
    .map_err(db_error)?;
    for (org, at, answered, state) in notices {
        let e = out.entry((branch(&org)?, month_of(utc(at)))).or_default();
        e.notices_due += 1;
        // A returned answer is no answer until the branch answers again.
        let standing = matches!(state.as_str(), "answered" | "verified");
        e.notices_answered += i64::from(standing && answered.is_some_and(|a| a <= at));
    }

    Ok(out)
}

/// How many members each branch inside `within` has.
pub async fn members_per_branch(
    conn: &mut Conn<'_>,
    within: &str,
) -> Result<HashMap<Uuid, i64>, Error> {
    let like = format!("{within}%");
    let rows: Vec<(String, i64)> = on!(conn, |c| members::table
        .inner_join(orgs::table.on(orgs::id.eq(members::org_id)))
        .filter(orgs::path.like(&like))
        .group_by(members::org_id)
        .select((members::org_id, diesel::dsl::count_star()))
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(|(o, n)| Ok((uuid(&o)?, n))).collect()
}

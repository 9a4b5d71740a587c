//! Learning, stored: items, each member's progress (locked while a report advances it),
//! quiz submissions (one per member and quiz) and learning visits.

use super::schema::lesson_progress as lsp;
use super::schema::{learning_items as li, learning_progress as lp, learning_visits as lv};
use super::schema::{members, orgs, quiz_submissions as qs};
use super::{db_error, enum_parse, enum_text, naive, utc, uuid, Conn};
use crate::on;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::learning::{Item, ItemKind, Progress};
use yunlian_domain::Error;

type ItemRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    String,
    String,
    chrono::NaiveDateTime,
    String,
);

fn item(
    (id, org, kind, title, body, len, pct, qs, by, at, lessons): ItemRow,
) -> Result<Item, Error> {
    Ok(Item {
        id: uuid(&id)?,
        org_id: uuid(&org)?,
        kind: enum_parse::<ItemKind>("item kind", &kind)?,
        title,
        body,
        length_secs: len,
        required_percent: pct,
        questions: serde_json::from_str(&qs)
            .map_err(|e| Error::Internal(format!("bad questions in db: {e}")))?,
        lessons: serde_json::from_str(&lessons)
            .map_err(|e| Error::Internal(format!("bad lessons in db: {e}")))?,
        created_by: uuid(&by)?,
        created_at: utc(at),
    })
}

const ITEM: (
    li::id,
    li::org_id,
    li::kind,
    li::title,
    li::body,
    li::length_secs,
    li::required_percent,
    li::questions,
    li::created_by,
    li::created_at,
    li::lessons,
) = (
    li::id,
    li::org_id,
    li::kind,
    li::title,
    li::body,
    li::length_secs,
    li::required_percent,
    li::questions,
    li::created_by,
    li::created_at,
    li::lessons,
);

pub async fn insert_item(conn: &mut Conn<'_>, i: &Item) -> Result<(), Error> {
    let qs = serde_json::to_string(&i.questions).map_err(|e| Error::Internal(e.to_string()))?;
    let lessons = serde_json::to_string(&i.lessons).map_err(|e| Error::Internal(e.to_string()))?;
    on!(conn, |c| diesel::insert_into(li::table)
        .values((
            li::id.eq(i.id.to_string()),
            li::org_id.eq(i.org_id.to_string()),
            li::kind.eq(enum_text(i.kind)),
            li::title.eq(&i.title),
            li::body.eq(&i.body),
            li::length_secs.eq(i.length_secs),
            li::required_percent.eq(i.required_percent),
            li::questions.eq(&qs),
            li::lessons.eq(&lessons),
            li::created_by.eq(i.created_by.to_string()),
            li::created_at.eq(naive(i.created_at)),
        ))
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(())
}

/// An item with the path of the org it is published to.
pub async fn get_item(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(Item, String)>, Error> {
    let row: Option<(ItemRow, String)> = on!(conn, |c| li::table
        .inner_join(orgs::table.on(orgs::id.eq(li::org_id)))
        .filter(li::id.eq(id.to_string()))
        .select((ITEM, orgs::path))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(r, p)| Ok((item(r)?, p))).transpose()
}

/// The items published to any of `orgs` (a member's branch and every org above it), newest
/// first.
pub async fn items_for(
    conn: &mut Conn<'_>,
    orgs_ids: &[Uuid],
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Item>, Error> {
    let ids: Vec<String> = orgs_ids.iter().map(Uuid::to_string).collect();
    let rows: Vec<ItemRow> = on!(conn, |c| {
        let mut q = li::table
            .filter(li::org_id.eq_any(ids.clone()))
            .select(ITEM)
            .order(li::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(b) = before {
            q = q.filter(li::id.lt(b.to_string()));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter().map(item).collect()
}

/// (last report, last position, credited seconds, completed) as stored.
type ProgressRow = (
    Option<chrono::NaiveDateTime>,
    i64,
    i64,
    Option<chrono::NaiveDateTime>,
);

fn progress((last_at, last_position, credited_secs, completed_at): ProgressRow) -> Progress {
    Progress {
        last_at: last_at.map(utc),
        last_position,
        credited_secs,
        completed_at: completed_at.map(utc),
    }
}

/// A member's progress on an item, its row created empty if need be and locked (PostgreSQL)
/// until the transaction ends: two reports at once advance it one after the other.
pub async fn lock_progress(
    conn: &mut Conn<'_>,
    member: Uuid,
    item: Uuid,
) -> Result<Progress, Error> {
    let (m, i) = (member.to_string(), item.to_string());
    on!(conn, |c| diesel::insert_into(lp::table)
        .values((
            lp::member_id.eq(&m),
            lp::item_id.eq(&i),
            lp::last_position.eq(0),
            lp::credited_secs.eq(0),
            lp::visit.eq(false)
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)
    .map_err(db_error)?;
    let q = lp::table
        .filter(lp::member_id.eq(&m))
        .filter(lp::item_id.eq(&i))
        .select((
            lp::last_at,
            lp::last_position,
            lp::credited_secs,
            lp::completed_at,
        ));
    let row: ProgressRow = match &mut conn.raw {
        super::Raw::Pg(c) => q.for_update().first(c).await,
        super::Raw::Sqlite(c) => q.first(&mut **c).await,
    }
    .map_err(db_error)?;
    Ok(progress(row))
}

pub async fn save_progress(
    conn: &mut Conn<'_>,
    member: Uuid,
    item: Uuid,
    p: &Progress,
    visit: bool,
) -> Result<(), Error> {
    on!(conn, |c| diesel::update(
        lp::table
            .filter(lp::member_id.eq(member.to_string()))
            .filter(lp::item_id.eq(item.to_string()))
    )
    .set((
        lp::last_at.eq(p.last_at.map(naive)),
        lp::last_position.eq(p.last_position),
        lp::credited_secs.eq(p.credited_secs),
        lp::completed_at.eq(p.completed_at.map(naive)),
        lp::visit.eq(visit),
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    Ok(())
}

/// A member's progress on lesson `lesson` of a course, created at nothing if new and locked
/// (PostgreSQL) until the transaction ends. Taken after the course's own row (see
/// `lock_progress`), so reports on one course queue on the course row first.
pub async fn lock_lesson(
    conn: &mut Conn<'_>,
    member: Uuid,
    item: Uuid,
    lesson: i64,
) -> Result<Progress, Error> {
    let (m, i) = (member.to_string(), item.to_string());
    on!(conn, |c| diesel::insert_into(lsp::table)
        .values((
            lsp::member_id.eq(&m),
            lsp::item_id.eq(&i),
            lsp::lesson.eq(lesson),
            lsp::last_position.eq(0),
            lsp::credited_secs.eq(0),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)
    .map_err(db_error)?;
    let q = lsp::table
        .filter(lsp::member_id.eq(&m))
        .filter(lsp::item_id.eq(&i))
        .filter(lsp::lesson.eq(lesson))
        .select((
            lsp::last_at,
            lsp::last_position,
            lsp::credited_secs,
            lsp::completed_at,
        ));
    let row: ProgressRow = match &mut conn.raw {
        super::Raw::Pg(c) => q.for_update().first(c).await,
        super::Raw::Sqlite(c) => q.first(&mut **c).await,
    }
    .map_err(db_error)?;
    Ok(progress(row))
}

pub async fn save_lesson(
    conn: &mut Conn<'_>,
    member: Uuid,
    item: Uuid,
    lesson: i64,
    p: &Progress,
) -> Result<(), Error> {
    on!(conn, |c| diesel::update(
        lsp::table
            .filter(lsp::member_id.eq(member.to_string()))
            .filter(lsp::item_id.eq(item.to_string()))
            .filter(lsp::lesson.eq(lesson))
    )
    .set((
        lsp::last_at.eq(p.last_at.map(naive)),
        lsp::last_position.eq(p.last_position),
        lsp::credited_secs.eq(p.credited_secs),
        lsp::completed_at.eq(p.completed_at.map(naive)),
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    Ok(())
}

/// (credited seconds, completed?) of each lesson of a course the member has started.
pub async fn lessons_of(
    conn: &mut Conn<'_>,
    member: Uuid,
    item: Uuid,
) -> Result<Vec<(i64, bool)>, Error> {
    let rows: Vec<(i64, Option<chrono::NaiveDateTime>)> = on!(conn, |c| lsp::table
        .filter(lsp::member_id.eq(member.to_string()))
        .filter(lsp::item_id.eq(item.to_string()))
        .select((lsp::credited_secs, lsp::completed_at))
        .load(c)
        .await)
    .map_err(db_error)?;
    Ok(rows.into_iter().map(|(s, d)| (s, d.is_some())).collect())
}

/// Records a quiz submission; `false` when the member submitted this quiz before.
pub async fn insert_submission(
    conn: &mut Conn<'_>,
    member: Uuid,
    item: Uuid,
    answers: &[usize],
    correct: i64,
    total: i64,
    at: DateTime<Utc>,
) -> Result<bool, Error> {
    let answers = serde_json::to_string(answers).map_err(|e| Error::Internal(e.to_string()))?;
    let n = on!(conn, |c| diesel::insert_into(qs::table)
        .values((
            qs::member_id.eq(member.to_string()),
            qs::item_id.eq(item.to_string()),
            qs::answers.eq(&answers),
            qs::correct.eq(correct),
            qs::total.eq(total),
            qs::submitted_at.eq(naive(at)),
        ))
        .on_conflict_do_nothing()
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(n == 1)
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_visit(
    conn: &mut Conn<'_>,
    id: Uuid,
    item: Uuid,
    member: Uuid,
    visitor: Uuid,
    duration: i64,
    confirmation: &str,
    note: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    on!(conn, |c| diesel::insert_into(lv::table)
        .values((
            lv::id.eq(id.to_string()),
            lv::item_id.eq(item.to_string()),
            lv::member_id.eq(member.to_string()),
            lv::visitor_id.eq(visitor.to_string()),
            lv::duration_secs.eq(duration),
            lv::confirmation.eq(confirmation),
            lv::note.eq(note),
            lv::visited_at.eq(naive(at)),
        ))
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(())
}

/// Per branch: (branch, members, who viewed the item, who completed it), for the branches
/// inside `within`.
/// Who of the members of the orgs inside `within` has opened an item, with what the server
/// credited them and when they completed it: (member, their org, name, credited seconds,
/// completed at, by a visit), by member id.
#[allow(clippy::type_complexity)]
pub async fn learners(
    conn: &mut Conn<'_>,
    item: Uuid,
    within: &str,
) -> Result<Vec<(Uuid, Uuid, String, i64, Option<DateTime<Utc>>, bool)>, Error> {
    let like = format!("{within}%");
    let rows: Vec<(
        String,
        String,
        String,
        i64,
        Option<chrono::NaiveDateTime>,
        bool,
    )> = on!(conn, |c| lp::table
        .inner_join(members::table.on(members::id.eq(lp::member_id)))
        .inner_join(orgs::table.on(orgs::id.eq(members::org_id)))
        .filter(lp::item_id.eq(item.to_string()))
        .filter(orgs::path.like(&like))
        .select((
            members::id,
            members::org_id,
            members::name,
            lp::credited_secs,
            lp::completed_at,
            lp::visit
        ))
        .order(members::id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(m, o, name, secs, done, visit)| {
            Ok((uuid(&m)?, uuid(&o)?, name, secs, done.map(utc), visit))
        })
        .collect()
}

pub async fn item_stats(
    conn: &mut Conn<'_>,
    item: Uuid,
    within: &str,
) -> Result<Vec<(Uuid, i64, i64, i64)>, Error> {
    let like = format!("{within}%");
    let people: Vec<(String, String)> = on!(conn, |c| members::table
        .inner_join(orgs::table.on(orgs::id.eq(members::org_id)))
        .filter(orgs::path.like(&like))
        .select((members::id, members::org_id))
        .load(c)
        .await)
    .map_err(db_error)?;
    let seen: Vec<(String, Option<chrono::NaiveDateTime>)> = on!(conn, |c| lp::table
        .filter(lp::item_id.eq(item.to_string()))
        .select((lp::member_id, lp::completed_at))
        .load(c)
        .await)
    .map_err(db_error)?;
    let seen: std::collections::HashMap<String, bool> =
        seen.into_iter().map(|(m, c)| (m, c.is_some())).collect();
    let mut per: std::collections::BTreeMap<String, (i64, i64, i64)> = Default::default();
    for (m, org) in people {
        let e = per.entry(org).or_default();
        e.0 += 1;
        if let Some(done) = seen.get(&m) {
            e.1 += 1;
            e.2 += i64::from(*done);
        }
    }
    per.into_iter()
        .map(|(org, (n, v, c))| Ok((uuid(&org)?, n, v, c)))
        .collect()
}

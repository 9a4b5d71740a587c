//! The branch board, stored: topics, comments, likes, reports, households and image records.
//! Counters move by column-only `UPDATE ... SET n = n + 1` after an insert that took, so two
//! likes at once both count and a repeated like counts once.

use super::rows::within;
use super::schema::{comment_likes, comment_reports, comments, households, images, orgs};
use super::schema::{post_likes, posts};
use super::{db_error, enum_parse, enum_text, naive, sync, utc, uuid, Conn};
use crate::{load, on};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;
use yunlian_domain::moments::{
    Category, Comment, Commenters, Hidden, Household, Post, Report, ReportState,
};
use yunlian_domain::sync::{Entity, Scope};
use yunlian_domain::Error;

fn ids_json(ids: &[Uuid]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

fn ids_parse(s: &str) -> Result<Vec<Uuid>, Error> {
    serde_json::from_str(s).map_err(|e| Error::Internal(format!("bad id list in db: {e}")))
}

fn opt_uuid(s: Option<String>) -> Result<Option<Uuid>, Error> {
    s.as_deref().map(uuid).transpose()
}

/// `%word%` with the word's own `%`, `_` and `\` taken literally (see `.escape('\\')`).
pub fn contains(word: &str) -> String {
    let mut p = String::with_capacity(word.len() + 2);
    p.push('%');
    for ch in word.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = posts, treat_none_as_default_value = false, treat_none_as_null = true)]
struct PostRow {
    id: String,
    org_id: String,
    title: String,
    body: String,
    image_ids: String,
    #[diesel(deserialize_as = super::rows::Ts)]
    feedback_until: chrono::NaiveDateTime,
    commenters: String,
    group_ids: String,
    pinned: bool,
    closed_at: Option<chrono::NaiveDateTime>,
    created_by: String,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
    #[diesel(deserialize_as = super::rows::Ts)]
    updated_at: chrono::NaiveDateTime,
    comment_count: i64,
    like_count: i64,
}

impl PostRow {
    fn from_domain(p: &Post) -> Self {
        PostRow {
            id: p.id.to_string(),
            org_id: p.org_id.to_string(),
            title: p.title.clone(),
            body: p.body.clone(),
            image_ids: ids_json(&p.image_ids),
            feedback_until: naive(p.feedback_until),
            commenters: enum_text(p.commenters),
            group_ids: ids_json(&p.group_ids),
            pinned: p.pinned,
            closed_at: p.closed_at.map(naive),
            created_by: p.created_by.to_string(),
            created_at: naive(p.created_at),
            updated_at: naive(p.updated_at),
            comment_count: p.comment_count,
            like_count: p.like_count,
        }
    }

    fn into_domain(self) -> Result<Post, Error> {
        Ok(Post {
            id: uuid(&self.id)?,
            org_id: uuid(&self.org_id)?,
            title: self.title,
            body: self.body,
            image_ids: ids_parse(&self.image_ids)?,
            feedback_until: utc(self.feedback_until),
            commenters: enum_parse::<Commenters>("commenters", &self.commenters)?,
            group_ids: ids_parse(&self.group_ids)?,
            pinned: self.pinned,
            closed_at: self.closed_at.map(utc),
            created_by: uuid(&self.created_by)?,
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
            comment_count: self.comment_count,
            like_count: self.like_count,
        })
    }
}

async fn record_post(
    conn: &mut Conn<'_>,
    id: Uuid,
    org: Uuid,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    sync::record(conn, &[Scope::Org(org)], Entity::Post, id, false, at).await
}

pub async fn insert_post(conn: &mut Conn<'_>, p: &Post) -> Result<(), Error> {
    let row = PostRow::from_domain(p);
    on!(conn, |c| diesel::insert_into(posts::table)
        .values(&row)
        .execute(c)
        .await)
    .map_err(db_error)?;
    record_post(conn, p.id, p.org_id, p.updated_at).await
}

/// Writes the topic's own fields (title, body, images, deadline, audience, pin, close); its
/// counters are left to the counting statements.
pub async fn update_post(conn: &mut Conn<'_>, p: &Post) -> Result<(), Error> {
    let row = PostRow::from_domain(p);
    let n = on!(conn, |c| diesel::update(posts::table.find(&row.id))
        .set((
            posts::title.eq(&row.title),
            posts::body.eq(&row.body),
            posts::image_ids.eq(&row.image_ids),
            posts::feedback_until.eq(row.feedback_until),
            posts::commenters.eq(&row.commenters),
            posts::group_ids.eq(&row.group_ids),
            posts::pinned.eq(row.pinned),
            posts::closed_at.eq(row.closed_at),
            posts::updated_at.eq(row.updated_at),
        ))
        .execute(c)
        .await)
    .map_err(db_error)?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    record_post(conn, p.id, p.org_id, p.updated_at).await
}

/// A topic with its branch's path.
pub async fn get_post(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(Post, String)>, Error> {
    let row: Option<(PostRow, String)> = on!(conn, |c| posts::table
        .inner_join(orgs::table.on(orgs::id.eq(posts::org_id)))
        .filter(posts::id.eq(id.to_string()))
        .select((PostRow::as_select(), orgs::path))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(p, path)| Ok((p.into_domain()?, path)))
        .transpose()
}

/// Locks a topic's row until the transaction ends (PostgreSQL; SQLite's writer is alone) and
/// reads it: a comment then never lands on a topic closed meanwhile.
pub async fn lock_post(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(Post, String)>, Error> {
    locked_post(conn, id, false).await
}

/// Reads a topic under a shared row lock (PostgreSQL): writers that only read the topic (a like
/// on one of its comments) run side by side, and none lands after a close that committed first
/// or before one that waits for them.
pub async fn share_post(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(Post, String)>, Error> {
    locked_post(conn, id, true).await
}

async fn locked_post(
    conn: &mut Conn<'_>,
    id: Uuid,
    shared: bool,
) -> Result<Option<(Post, String)>, Error> {
    if let Some(c) = conn.pg() {
        let q = posts::table.find(id.to_string()).select(posts::id);
        let found: Option<String> = if shared {
            q.for_share().first(&mut &*c).await
        } else {
            q.for_update().first(&mut &*c).await
        }
        .optional()
        .map_err(db_error)?;
        if found.is_none() {
            return Ok(None);
        }
    }
    get_post(conn, id).await
}

pub async fn posts_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<Post>, Error> {
    let rows: Vec<PostRow> = load!(
        conn,
        posts::table
            .filter(within(posts::id, ids))
            .select(PostRow::as_select())
    )
    .map_err(db_error)?;
    rows.into_iter().map(PostRow::into_domain).collect()
}

#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub within: String,
    pub pinned: Option<bool>,
    pub open_at: Option<DateTime<Utc>>,
    pub q: Option<String>,
    /// Newest first: the page after this id.
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// Topics of the branches inside `within`, newest first.
pub async fn list_posts(conn: &mut Conn<'_>, f: &PostFilter) -> Result<Vec<Post>, Error> {
    let within = format!("{}%", f.within);
    let q = f.q.as_deref().map(contains);
    let rows: Vec<PostRow> = on!(conn, |c| {
        let mut query = posts::table
            .inner_join(orgs::table.on(orgs::id.eq(posts::org_id)))
            .filter(orgs::path.like(within.clone()))
            .select(PostRow::as_select())
            .order(posts::id.desc())
            .limit(f.limit)
            .into_boxed();
        if let Some(p) = f.pinned {
            query = query.filter(posts::pinned.eq(p));
        }
        if let Some(t) = f.open_at {
            query = query
                .filter(posts::closed_at.is_null())
                .filter(posts::feedback_until.ge(naive(t)));
        }
        if let Some(q) = &q {
            query = query.filter(
                posts::title
                    .like(q.clone())
                    .escape('\\')
                    .or(posts::body.like(q.clone()).escape('\\')),
            );
        }
        if let Some(b) = f.before {
            query = query.filter(posts::id.lt(b.to_string()));
        }
        query.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter().map(PostRow::into_domain).collect()
}

/// Adds `by` to a counter of a topic (comments, likes) and re-syncs it.
async fn count_post(
    conn: &mut Conn<'_>,
    id: Uuid,
    org: Uuid,
    comments: i64,
    likes: i64,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    on!(conn, |c| diesel::update(posts::table.find(id.to_string()))
        .set((
            posts::comment_count.eq(posts::comment_count + comments),
            posts::like_count.eq(posts::like_count + likes),
        ))
        .execute(c)
        .await)
    .map_err(db_error)?;
    record_post(conn, id, org, at).await
}

/// Likes (`true`) or unlikes a topic for `member`; returns whether anything changed.
pub async fn like_post(
    conn: &mut Conn<'_>,
    post: &Post,
    member: Uuid,
    like: bool,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let (p, m) = (post.id.to_string(), member.to_string());
    let n = if like {
        on!(conn, |c| diesel::insert_into(post_likes::table)
            .values((
                post_likes::post_id.eq(&p),
                post_likes::member_id.eq(&m),
                post_likes::created_at.eq(naive(now)),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .await)
    } else {
        on!(conn, |c| diesel::delete(post_likes::table.find((&p, &m)))
            .execute(c)
            .await)
    }
    .map_err(db_error)?;
    if n == 0 {
        return Ok(false);
    }
    let d = if like { 1 } else { -1 };
    count_post(conn, post.id, post.org_id, 0, d, now).await?;
    Ok(true)
}

/// The topics among `ids` that `member` likes.
pub async fn liked_posts(
    conn: &mut Conn<'_>,
    member: Uuid,
    ids: &[String],
) -> Result<Vec<Uuid>, Error> {
    let rows: Vec<String> = on!(conn, |c| post_likes::table
        .filter(post_likes::member_id.eq(member.to_string()))
        .filter(post_likes::post_id.eq_any(ids))
        .select(post_likes::post_id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.iter().map(|r| uuid(r)).collect()
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = comments, treat_none_as_default_value = false, treat_none_as_null = true)]
struct CommentRow {
    id: String,
    post_id: String,
    org_id: String,
    author_id: String,
    body: String,
    category: String,
    household_id: Option<String>,
    case_id: Option<String>,
    like_count: i64,
    hidden_reason: Option<String>,
    hidden_by: Option<String>,
    hidden_at: Option<chrono::NaiveDateTime>,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
}

impl CommentRow {
    fn from_domain(c: &Comment) -> Self {
        CommentRow {
            id: c.id.to_string(),
            post_id: c.post_id.to_string(),
            org_id: c.org_id.to_string(),
            author_id: c.author_id.to_string(),
            body: c.body.clone(),
            category: enum_text(c.category),
            household_id: c.household_id.map(|h| h.to_string()),
            case_id: c.case_id.map(|h| h.to_string()),
            like_count: c.like_count,
            hidden_reason: c.hidden.as_ref().map(|h| h.reason.clone()),
            hidden_by: c.hidden.as_ref().map(|h| h.by.to_string()),
            hidden_at: c.hidden.as_ref().map(|h| naive(h.at)),
            created_at: naive(c.created_at),
        }
    }

    fn into_domain(self) -> Result<Comment, Error> {
        let hidden = match (self.hidden_reason, self.hidden_by, self.hidden_at) {
            (Some(reason), Some(by), Some(at)) => Some(Hidden {
                reason,
                by: uuid(&by)?,
                at: utc(at),
            }),
            _ => None,
        };
        Ok(Comment {
            id: uuid(&self.id)?,
            post_id: uuid(&self.post_id)?,
            org_id: uuid(&self.org_id)?,
            author_id: uuid(&self.author_id)?,
            body: self.body,
            category: enum_parse::<Category>("category", &self.category)?,
            household_id: opt_uuid(self.household_id)?,
            case_id: opt_uuid(self.case_id)?,
            like_count: self.like_count,
            hidden,
            created_at: utc(self.created_at),
        })
    }
}

async fn record_comment(conn: &mut Conn<'_>, c: &Comment, at: DateTime<Utc>) -> Result<(), Error> {
    sync::record(
        conn,
        &[Scope::Org(c.org_id)],
        Entity::Comment,
        c.id,
        false,
        at,
    )
    .await?;
    let mine = [Scope::Member(c.author_id)];
    sync::record(conn, &mine, Entity::MyComment, c.id, false, at).await
}

/// Stores a comment and counts it on its topic.
pub async fn insert_comment(conn: &mut Conn<'_>, cm: &Comment, post: &Post) -> Result<(), Error> {
    let row = CommentRow::from_domain(cm);
    on!(conn, |c| diesel::insert_into(comments::table)
        .values(&row)
        .execute(c)
        .await)
    .map_err(db_error)?;
    record_comment(conn, cm, cm.created_at).await?;
    count_post(conn, post.id, post.org_id, 1, 0, cm.created_at).await
}

/// A comment with its branch's path.
pub async fn get_comment(
    conn: &mut Conn<'_>,
    id: Uuid,
) -> Result<Option<(Comment, String)>, Error> {
    let row: Option<(CommentRow, String)> = on!(conn, |c| comments::table
        .inner_join(orgs::table.on(orgs::id.eq(comments::org_id)))
        .filter(comments::id.eq(id.to_string()))
        .select((CommentRow::as_select(), orgs::path))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(r, path)| Ok((r.into_domain()?, path)))
        .transpose()
}

/// Locks a comment's row (PostgreSQL) and reads it.
pub async fn lock_comment(
    conn: &mut Conn<'_>,
    id: Uuid,
) -> Result<Option<(Comment, String)>, Error> {
    if let Some(c) = conn.pg() {
        let found: Option<String> = comments::table
            .find(id.to_string())
            .select(comments::id)
            .for_update()
            .first(&mut &*c)
            .await
            .optional()
            .map_err(db_error)?;
        if found.is_none() {
            return Ok(None);
        }
    }
    get_comment(conn, id).await
}

/// Writes a comment's hiding (the only change a comment ever takes).
pub async fn hide_comment(
    conn: &mut Conn<'_>,
    cm: &Comment,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let row = CommentRow::from_domain(cm);
    on!(conn, |c| diesel::update(comments::table.find(&row.id))
        .set((
            comments::hidden_reason.eq(&row.hidden_reason),
            comments::hidden_by.eq(&row.hidden_by),
            comments::hidden_at.eq(row.hidden_at),
        ))
        .execute(c)
        .await)
    .map_err(db_error)?;
    record_comment(conn, cm, now).await
}

/// Sets the case a comment opened (written once, in the comment's own transaction).
pub async fn set_comment_case(conn: &mut Conn<'_>, comment: Uuid, case: Uuid) -> Result<(), Error> {
    on!(conn, |c| diesel::update(
        comments::table.find(comment.to_string())
    )
    .set(comments::case_id.eq(case.to_string()))
    .execute(c)
    .await)
    .map_err(db_error)?;
    Ok(())
}

pub async fn comments_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> Result<Vec<Comment>, Error> {
    let rows: Vec<CommentRow> = load!(
        conn,
        comments::table
            .filter(within(comments::id, ids))
            .select(CommentRow::as_select())
    )
    .map_err(db_error)?;
    rows.into_iter().map(CommentRow::into_domain).collect()
}

#[derive(Debug, Clone, Default)]
pub struct CommentFilter {
    pub post_id: Uuid,
    pub category: Option<Category>,
    pub q: Option<String>,
    /// Oldest first: the page after this id.
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// A topic's comments in the order they were written, one keyset page at a time.
pub async fn list_comments(conn: &mut Conn<'_>, f: &CommentFilter) -> Result<Vec<Comment>, Error> {
    let q = f.q.as_deref().map(contains);
    let rows: Vec<CommentRow> = on!(conn, |c| {
        let mut query = comments::table
            .filter(comments::post_id.eq(f.post_id.to_string()))
            .select(CommentRow::as_select())
            .order(comments::id)
            .limit(f.limit)
            .into_boxed();
        if let Some(cat) = f.category {
            query = query.filter(comments::category.eq(enum_text(cat)));
        }
        if let Some(q) = &q {
            query = query
                .filter(comments::body.like(q.clone()).escape('\\'))
                .filter(comments::hidden_at.is_null());
        }
        if let Some(a) = f.after {
            query = query.filter(comments::id.gt(a.to_string()));
        }
        query.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter().map(CommentRow::into_domain).collect()
}

/// Likes or unlikes a comment; returns whether anything changed.
pub async fn like_comment(
    conn: &mut Conn<'_>,
    cm: &Comment,
    member: Uuid,
    like: bool,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let (id, m) = (cm.id.to_string(), member.to_string());
    let n = if like {
        on!(conn, |c| diesel::insert_into(comment_likes::table)
            .values((
                comment_likes::comment_id.eq(&id),
                comment_likes::member_id.eq(&m),
                comment_likes::created_at.eq(naive(now)),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .await)
    } else {
        on!(conn, |c| diesel::delete(
            comment_likes::table.find((&id, &m))
        )
        .execute(c)
        .await)
    }
    .map_err(db_error)?;
    if n == 0 {
        return Ok(false);
    }
    let d: i64 = if like { 1 } else { -1 };
    on!(conn, |c| diesel::update(comments::table.find(&id))
        .set(comments::like_count.eq(comments::like_count + d))
        .execute(c)
        .await)
    .map_err(db_error)?;
    record_comment(conn, cm, now).await?;
    Ok(true)
}

/// The comments among `ids` that `member` likes.
pub async fn liked_comments(
    conn: &mut Conn<'_>,
    member: Uuid,
    ids: &[String],
) -> Result<Vec<Uuid>, Error> {
    let rows: Vec<String> = on!(conn, |c| comment_likes::table
        .filter(comment_likes::member_id.eq(member.to_string()))
        .filter(comment_likes::comment_id.eq_any(ids))
        .select(comment_likes::comment_id)
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.iter().map(|r| uuid(r)).collect()
}

/// The branch, category and time of each comment on the branches inside `within` in
/// `[from, to)`.
pub async fn comment_facts(
    conn: &mut Conn<'_>,
    within: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(Uuid, Category, DateTime<Utc>)>, Error> {
    let within = format!("{within}%");
    let rows: Vec<(String, String, chrono::NaiveDateTime)> = on!(conn, |c| comments::table
        .inner_join(orgs::table.on(orgs::id.eq(comments::org_id)))
        .filter(orgs::path.like(within))
        .filter(comments::created_at.ge(naive(from)))
        .filter(comments::created_at.lt(naive(to)))
        .select((comments::org_id, comments::category, comments::created_at))
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(org, cat, at)| {
            Ok((
                uuid(&org)?,
                enum_parse::<Category>("category", &cat)?,
                utc(at),
            ))
        })
        .collect()
}

/// The branch and creation time of each topic inside `within` in `[from, to)`.
pub async fn post_facts(
    conn: &mut Conn<'_>,
    within: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, Error> {
    let within = format!("{within}%");
    let rows: Vec<(String, chrono::NaiveDateTime)> = on!(conn, |c| posts::table
        .inner_join(orgs::table.on(orgs::id.eq(posts::org_id)))
        .filter(orgs::path.like(within))
        .filter(posts::created_at.ge(naive(from)))
        .filter(posts::created_at.lt(naive(to)))
        .select((posts::org_id, posts::created_at))
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter()
        .map(|(org, at)| Ok((uuid(&org)?, utc(at))))
        .collect()
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = comment_reports, treat_none_as_default_value = false, treat_none_as_null = true)]
struct ReportRow {
    id: String,
    comment_id: String,
    org_id: String,
    reporter_id: String,
    reason: String,
    state: String,
    decided_by: Option<String>,
    decided_at: Option<chrono::NaiveDateTime>,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
}

impl ReportRow {
    fn from_domain(r: &Report) -> Self {
        ReportRow {
            id: r.id.to_string(),
            comment_id: r.comment_id.to_string(),
            org_id: r.org_id.to_string(),
            reporter_id: r.reporter_id.to_string(),
            reason: r.reason.clone(),
            state: enum_text(r.state),
            decided_by: r.decided_by.map(|d| d.to_string()),
            decided_at: r.decided_at.map(naive),
            created_at: naive(r.created_at),
        }
    }

    fn into_domain(self) -> Result<Report, Error> {
        Ok(Report {
            id: uuid(&self.id)?,
            comment_id: uuid(&self.comment_id)?,
            org_id: uuid(&self.org_id)?,
            reporter_id: uuid(&self.reporter_id)?,
            reason: self.reason,
            state: enum_parse::<ReportState>("report state", &self.state)?,
            decided_by: opt_uuid(self.decided_by)?,
            decided_at: self.decided_at.map(utc),
            created_at: utc(self.created_at),
        })
    }
}

/// Files a report; a member's second report of one comment is a conflict
/// (`already_reported`).
pub async fn insert_report(conn: &mut Conn<'_>, r: &Report) -> Result<(), Error> {
    let row = ReportRow::from_domain(r);
    on!(conn, |c| diesel::insert_into(comment_reports::table)
        .values(&row)
        .execute(c)
        .await)
    .map(|_| ())
    .map_err(|e| match db_error(e) {
        Error::Conflict(_) => Error::Conflict("already_reported"),
        other => other,
    })
}

/// A report with its branch's path, locked (PostgreSQL) for its decision.
pub async fn lock_report(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<(Report, String)>, Error> {
    if let Some(c) = conn.pg() {
        let found: Option<String> = comment_reports::table
            .find(id.to_string())
            .select(comment_reports::id)
            .for_update()
            .first(&mut &*c)
            .await
            .optional()
            .map_err(db_error)?;
        if found.is_none() {
            return Ok(None);
        }
    }
    let row: Option<(ReportRow, String)> = on!(conn, |c| comment_reports::table
        .inner_join(orgs::table.on(orgs::id.eq(comment_reports::org_id)))
        .filter(comment_reports::id.eq(id.to_string()))
        .select((ReportRow::as_select(), orgs::path))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(r, p)| Ok((r.into_domain()?, p))).transpose()
}

/// Writes a report's decision.
pub async fn decide_report(conn: &mut Conn<'_>, r: &Report) -> Result<(), Error> {
    let row = ReportRow::from_domain(r);
    on!(conn, |c| diesel::update(
        comment_reports::table.find(&row.id)
    )
    .set((
        comment_reports::state.eq(&row.state),
        comment_reports::decided_by.eq(&row.decided_by),
        comment_reports::decided_at.eq(row.decided_at),
    ))
    .execute(c)
    .await)
    .map_err(db_error)?;
    Ok(())
}

/// Marks every open report of a comment upheld (it was hidden); returns how many.
pub async fn uphold_reports(
    conn: &mut Conn<'_>,
    comment: Uuid,
    by: Uuid,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    on!(conn, |c| diesel::update(
        comment_reports::table
            .filter(comment_reports::comment_id.eq(comment.to_string()))
            .filter(comment_reports::state.eq(enum_text(ReportState::Open)))
    )
    .set((
        comment_reports::state.eq(enum_text(ReportState::Upheld)),
        comment_reports::decided_by.eq(by.to_string()),
        comment_reports::decided_at.eq(naive(now)),
    ))
    .execute(c)
    .await)
    .map_err(db_error)
}

/// The reports of the branches inside `within`, optionally in one state, oldest first.
pub async fn list_reports(
    conn: &mut Conn<'_>,
    within: &str,
    state: Option<ReportState>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Report>, Error> {
    let within = format!("{within}%");
    let rows: Vec<ReportRow> = on!(conn, |c| {
        let mut q = comment_reports::table
            .inner_join(orgs::table.on(orgs::id.eq(comment_reports::org_id)))
            .filter(orgs::path.like(within))
            .select(ReportRow::as_select())
            .order(comment_reports::id)
            .limit(limit)
            .into_boxed();
        if let Some(s) = state {
            q = q.filter(comment_reports::state.eq(enum_text(s)));
        }
        if let Some(a) = after {
            q = q.filter(comment_reports::id.gt(a.to_string()));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter().map(ReportRow::into_domain).collect()
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = households, treat_none_as_default_value = false, treat_none_as_null = true)]
struct HouseholdRow {
    id: String,
    org_id: String,
    name: String,
    address: Option<String>,
    central_member_id: Option<String>,
    created_by: String,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
}

impl HouseholdRow {
    fn into_domain(self) -> Result<Household, Error> {
        Ok(Household {
            id: uuid(&self.id)?,
            org_id: uuid(&self.org_id)?,
            name: self.name,
            address: self.address,
            central_member_id: opt_uuid(self.central_member_id)?,
            created_by: uuid(&self.created_by)?,
            created_at: utc(self.created_at),
        })
    }
}

pub async fn insert_household(conn: &mut Conn<'_>, h: &Household) -> Result<(), Error> {
    let row = HouseholdRow {
        id: h.id.to_string(),
        org_id: h.org_id.to_string(),
        name: h.name.clone(),
        address: h.address.clone(),
        central_member_id: h.central_member_id.map(|m| m.to_string()),
        created_by: h.created_by.to_string(),
        created_at: naive(h.created_at),
    };
    on!(conn, |c| diesel::insert_into(households::table)
        .values(&row)
        .execute(c)
        .await)
    .map_err(db_error)?;
    let s = [Scope::Org(h.org_id)];
    sync::record(conn, &s, Entity::Household, h.id, false, h.created_at).await
}

pub async fn get_household(conn: &mut Conn<'_>, id: Uuid) -> Result<Option<Household>, Error> {
    let row: Option<HouseholdRow> = on!(conn, |c| households::table
        .find(id.to_string())
        .select(HouseholdRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(HouseholdRow::into_domain).transpose()
}

/// How many households a central household member relays for.
pub async fn households_of_central(conn: &mut Conn<'_>, member: Uuid) -> Result<usize, Error> {
    let n: i64 = on!(conn, |c| households::table
        .filter(households::central_member_id.eq(member.to_string()))
        .count()
        .get_result(c)
        .await)
    .map_err(db_error)?;
    Ok(n as usize)
}

pub async fn households_by_ids(
    conn: &mut Conn<'_>,
    ids: &[String],
) -> Result<Vec<Household>, Error> {
    let rows: Vec<HouseholdRow> = load!(
        conn,
        households::table
            .filter(within(households::id, ids))
            .select(HouseholdRow::as_select())
    )
    .map_err(db_error)?;
    rows.into_iter().map(HouseholdRow::into_domain).collect()
}

/// A branch's households, by id.
pub async fn list_households(
    conn: &mut Conn<'_>,
    org: Uuid,
    central: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Household>, Error> {
    let rows: Vec<HouseholdRow> = on!(conn, |c| {
        let mut q = households::table
            .filter(households::org_id.eq(org.to_string()))
            .select(HouseholdRow::as_select())
            .order(households::id)
            .limit(limit)
            .into_boxed();
        if let Some(m) = central {
            q = q.filter(households::central_member_id.eq(m.to_string()));
        }
        if let Some(a) = after {
            q = q.filter(households::id.gt(a.to_string()));
        }
        q.load(c).await
    })
    .map_err(db_error)?;
    rows.into_iter().map(HouseholdRow::into_domain).collect()
}

/// An uploaded image's record: its object lives in the object store under its id.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImageRecord {
    pub id: Uuid,
    pub org_id: Uuid,
    pub uploaded_by: Uuid,
    pub content_type: String,
    pub width: i64,
    pub height: i64,
    pub bytes: i64,
    pub post_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = images, treat_none_as_default_value = false, treat_none_as_null = true)]
struct ImageRow {
    id: String,
    org_id: String,
    uploaded_by: String,
    content_type: String,
    width: i64,
    height: i64,
    bytes: i64,
    post_id: Option<String>,
    #[diesel(deserialize_as = super::rows::Ts)]
    created_at: chrono::NaiveDateTime,
}

impl ImageRow {
    fn into_domain(self) -> Result<ImageRecord, Error> {
        Ok(ImageRecord {
            id: uuid(&self.id)?,
            org_id: uuid(&self.org_id)?,
            uploaded_by: uuid(&self.uploaded_by)?,
            content_type: self.content_type,
            width: self.width,
            height: self.height,
            bytes: self.bytes,
            post_id: opt_uuid(self.post_id)?,
            created_at: utc(self.created_at),
        })
    }
}

pub async fn insert_image(conn: &mut Conn<'_>, i: &ImageRecord) -> Result<(), Error> {
    let row = ImageRow {
        id: i.id.to_string(),
        org_id: i.org_id.to_string(),
        uploaded_by: i.uploaded_by.to_string(),
        content_type: i.content_type.clone(),
        width: i.width,
        height: i.height,
        bytes: i.bytes,
        post_id: i.post_id.map(|p| p.to_string()),
        created_at: naive(i.created_at),
    };
    on!(conn, |c| diesel::insert_into(images::table)
        .values(&row)
        .execute(c)
        .await)
    .map_err(db_error)?;
    Ok(())
}

/// An image with the path of the org it was uploaded to.
pub async fn get_image(
    conn: &mut Conn<'_>,
    id: Uuid,
) -> Result<Option<(ImageRecord, String)>, Error> {
    let row: Option<(ImageRow, String)> = on!(conn, |c| images::table
        .inner_join(orgs::table.on(orgs::id.eq(images::org_id)))
        .filter(images::id.eq(id.to_string()))
        .select((ImageRow::as_select(), orgs::path))
        .first(c)
        .await
        .optional())
    .map_err(db_error)?;
    row.map(|(r, p)| Ok((r.into_domain()?, p))).transpose()
}

/// Attaches images to a topic: each must be of the topic's branch and not on another topic.
/// Returns how many were attached (fewer than asked means some were not eligible).
pub async fn attach_images(
    conn: &mut Conn<'_>,
    post: Uuid,
    org: Uuid,
    ids: &[Uuid],
) -> Result<usize, Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let keys: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let p = post.to_string();
    on!(conn, |c| diesel::update(
        images::table
            .filter(images::id.eq_any(&keys))
            .filter(images::org_id.eq(org.to_string()))
            .filter(images::post_id.is_null().or(images::post_id.eq(&p)))
    )
    .set(images::post_id.eq(&p))
    .execute(c)
    .await)
    .map_err(db_error)
}

/// Every comment a member wrote (their data export), oldest first, hidden ones included.
pub async fn comments_of_author(conn: &mut Conn<'_>, author: Uuid) -> Result<Vec<Comment>, Error> {
    let rows: Vec<CommentRow> = on!(conn, |c| comments::table
        .filter(comments::author_id.eq(author.to_string()))
        .order(comments::id.asc())
        .select(CommentRow::as_select())
        .load(c)
        .await)
    .map_err(db_error)?;
    rows.into_iter().map(CommentRow::into_domain).collect()
}

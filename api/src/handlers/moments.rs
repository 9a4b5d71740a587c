//! The branch board: thin handlers over `ops::moments`.

use super::{authorize, created, decode_cursor, limit, load_org, page};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::ops;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use uuid::Uuid;
use yunlian_domain::auth::Action;
use yunlian_domain::moments::{
    search_word, Category, Comment, Commenters, Draft, Post, ReportState,
};
use yunlian_infra::db::{self, moments::CommentFilter, moments::PostFilter, ScopedFutureExt};

/// A topic as a member sees it: with whether they like it.
#[derive(Serialize)]
struct PostView {
    #[serde(flatten)]
    post: Post,
    liked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePost {
    org_id: Uuid,
    title: String,
    body: String,
    #[serde(default)]
    image_ids: Vec<Uuid>,
    feedback_until: DateTime<Utc>,
    commenters: Option<Commenters>,
    #[serde(default)]
    group_ids: Vec<Uuid>,
}

pub async fn create_post(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<CreatePost>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let draft = Draft {
        title: b.title,
        body: b.body,
        image_ids: b.image_ids,
        feedback_until: Some(yunlian_domain::truncate_micros(b.feedback_until)),
        commenters: b.commenters,
        group_ids: b.group_ids,
    };
    let (p, now, org) = (user.0.clone(), state.clock.now(), b.org_id);
    let post = state
        .db
        .write(move |mut c| {
            async move { ops::moments::create_post(&mut c, &p, org, &draft, now).await }
                .scope_boxed()
        })
        .await?;
    tracing::info!(post = %post.id, org = %post.org_id, "topic posted");
    Ok(created(&PostView { post, liked: false }))
}

/// A search word from the query, checked.
fn word(q: Option<String>) -> Result<Option<String>, ApiError> {
    q.map(|q| search_word(&q).map_err(|e| ApiError::from(yunlian_domain::Error::from(e))))
        .transpose()
}

/// The org a list is about: the one named, or the caller's only subtree.
async fn within(
    state: &AppState,
    user: &AuthUser,
    org_id: Option<Uuid>,
    action: Action,
) -> Result<String, ApiError> {
    super::list_root(state, user, org_id, user.visible_roots(), action).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListPostsQuery {
    org_id: Option<Uuid>,
    pinned: Option<bool>,
    /// Only topics still taking comments.
    open: Option<bool>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_posts(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListPostsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let f = PostFilter {
        within: within(&state, &user, q.org_id, Action::ReadOrg).await?,
        pinned: q.pinned,
        open_at: q.open.filter(|o| *o).map(|_| state.clock.now()),
        q: word(q.q)?,
        before: decode_cursor(q.cursor.as_deref())?,
        limit: limit + 1,
    };
    let me = user.member_id;
    let rows = state
        .db
        .read(move |mut c| {
            async move {
                let posts = db::moments::list_posts(&mut c, &f).await?;
                let ids: Vec<String> = posts.iter().map(|p| p.id.to_string()).collect();
                let liked = db::moments::liked_posts(&mut c, me, &ids).await?;
                Ok(posts
                    .into_iter()
                    .map(|post| PostView {
                        liked: liked.contains(&post.id),
                        post,
                    })
                    .collect::<Vec<_>>())
            }
            .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |v| v.post.id)))
}

pub async fn get_post(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id) = (user.0.clone(), id.into_inner());
    let view = state
        .db
        .read(move |mut c| {
            async move {
                let (post, _) = ops::moments::visible_post(&mut c, &p, id).await?;
                let liked =
                    db::moments::liked_posts(&mut c, p.member_id, &[id.to_string()]).await?;
                Ok(PostView {
                    liked: !liked.is_empty(),
                    post,
                })
            }
            .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePost {
    title: Option<String>,
    body: Option<String>,
    image_ids: Option<Vec<Uuid>>,
    feedback_until: Option<DateTime<Utc>>,
    commenters: Option<Commenters>,
    group_ids: Option<Vec<Uuid>>,
    pinned: Option<bool>,
}

pub async fn update_post(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<UpdatePost>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let patch = ops::moments::PostPatch {
        title: b.title,
        body: b.body,
        image_ids: b.image_ids,
        feedback_until: b.feedback_until.map(yunlian_domain::truncate_micros),
        commenters: b.commenters,
        group_ids: b.group_ids,
        pinned: b.pinned,
    };
    let (p, id, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    let post = state
        .db
        .write(move |mut c| {
            async move { ops::moments::update_post(&mut c, &p, id, &patch, now).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(post))
}

pub async fn close_post(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    let post = state
        .db
        .write(move |mut c| {
            async move { ops::moments::close_post(&mut c, &p, id, now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(post))
}

async fn like_post(
    state: web::Data<AppState>,
    user: AuthUser,
    id: Uuid,
    like: bool,
) -> Result<HttpResponse, ApiError> {
    let (p, now) = (user.0.clone(), state.clock.now());
    let post = state
        .db
        .write(move |mut c| {
            async move { ops::moments::like_post(&mut c, &p, id, like, now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(PostView { post, liked: like }))
}

pub async fn like(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    like_post(state, user, id.into_inner(), true).await
}

pub async fn unlike(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    like_post(state, user, id.into_inner(), false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateComment {
    body: String,
    category: Category,
    household_id: Option<Uuid>,
}

pub async fn create_comment(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<CreateComment>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let n = ops::moments::NewComment {
        post_id: id.into_inner(),
        body: b.body,
        category: b.category,
        household_id: b.household_id,
    };
    let (p, now) = (user.0.clone(), state.clock.now());
    let (cm, case) = state
        .db
        .write(move |mut c| {
            async move { ops::moments::comment(&mut c, &p, &n, now).await }.scope_boxed()
        })
        .await?;
    tracing::info!(comment = %cm.id, post = %cm.post_id, case = ?case.as_ref().map(|c| c.id), "comment written");
    Ok(created(&cm))
}

/// A comment as the caller sees it, with whether they like it.
#[derive(Serialize)]
struct CommentView {
    #[serde(flatten)]
    comment: Comment,
    liked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListCommentsQuery {
    category: Option<Category>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_comments(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    q: crate::extract::Query<ListCommentsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let f = CommentFilter {
        post_id: id.into_inner(),
        category: q.category,
        q: word(q.q)?,
        after: decode_cursor(q.cursor.as_deref())?,
        limit: limit + 1,
    };
    let p = user.0.clone();
    let rows = state
        .db
        .read(move |mut c| {
            async move {
                let (_, path) = ops::moments::visible_post(&mut c, &p, f.post_id).await?;
                let rows = db::moments::list_comments(&mut c, &f).await?;
                let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
                let liked = db::moments::liked_comments(&mut c, p.member_id, &ids).await?;
                Ok(rows
                    .into_iter()
                    .map(|cm| CommentView {
                        liked: liked.contains(&cm.id),
                        comment: ops::moments::as_seen_by(&p, &path, cm),
                    })
                    .collect::<Vec<_>>())
            }
            .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |v| v.comment.id)))
}

async fn like_comment(
    state: web::Data<AppState>,
    user: AuthUser,
    id: Uuid,
    like: bool,
) -> Result<HttpResponse, ApiError> {
    let (p, now) = (user.0.clone(), state.clock.now());
    let comment = state
        .db
        .write(move |mut c| {
            async move { ops::moments::like_comment(&mut c, &p, id, like, now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(CommentView {
        comment,
        liked: like,
    }))
}

pub async fn like_a_comment(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    like_comment(state, user, id.into_inner(), true).await
}

pub async fn unlike_a_comment(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    like_comment(state, user, id.into_inner(), false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    reason: String,
}

pub async fn report_comment(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<Reason>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, now, reason) = (
        user.0.clone(),
        id.into_inner(),
        state.clock.now(),
        body.into_inner().reason,
    );
    let r = state
        .db
        .write(move |mut c| {
            async move { ops::moments::report(&mut c, &p, id, &reason, now).await }.scope_boxed()
        })
        .await?;
    Ok(created(&r))
}

pub async fn hide_comment(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<Reason>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, now, reason) = (
        user.0.clone(),
        id.into_inner(),
        state.clock.now(),
        body.into_inner().reason,
    );
    let cm = state
        .db
        .write(move |mut c| {
            async move { ops::moments::hide(&mut c, &p, id, &reason, now).await }.scope_boxed()
        })
        .await?;
    tracing::info!(comment = %cm.id, by = %user.member_id, "comment hidden");
    Ok(HttpResponse::Ok().json(cm))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListReportsQuery {
    org_id: Option<Uuid>,
    state: Option<ReportState>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_reports(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListReportsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let path = within(&state, &user, q.org_id, Action::Moderate).await?;
    let after = decode_cursor(q.cursor.as_deref())?;
    let rows = state
        .db
        .read(move |mut c| {
            async move { db::moments::list_reports(&mut c, &path, q.state, after, limit + 1).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |r| r.id)))
}

pub async fn dismiss_report(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (p, id, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    let r = state
        .db
        .write(move |mut c| {
            async move { ops::moments::dismiss(&mut c, &p, id, now).await }.scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateHousehold {
    org_id: Uuid,
    name: String,
    address: Option<String>,
    central_member_id: Option<Uuid>,
}

pub async fn create_household(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<CreateHousehold>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let (p, now) = (user.0.clone(), state.clock.now());
    let h = state
        .db
        .write(move |mut c| {
            async move {
                let address = b.address.as_deref();
                ops::moments::create_household(
                    &mut c,
                    &p,
                    b.org_id,
                    &b.name,
                    address,
                    b.central_member_id,
                    now,
                )
                .await
            }
            .scope_boxed()
        })
        .await?;
    Ok(created(&h))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListHouseholdsQuery {
    org_id: Uuid,
    central_member_id: Option<Uuid>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_households(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListHouseholdsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let org = load_org(&state, q.org_id).await?;
    authorize(&user, Action::ReadOrg, &org.path)?;
    let after = decode_cursor(q.cursor.as_deref())?;
    let rows = state
        .db
        .read(move |mut c| {
            async move {
                db::moments::list_households(&mut c, org.id, q.central_member_id, after, limit + 1)
                    .await
            }
            .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |h| h.id)))
}

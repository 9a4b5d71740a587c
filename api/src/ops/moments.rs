//! The branch board: topics by the committee, comments by members (online or queued on a
//! phone), likes, reports and their moderation, households. Each use case authorises, loads
//! what it decides on (under the row's lock where it writes), asks the domain, and writes.

use super::authorize;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::moments::{
    self, comment_body, household_text, may_relay_another, open_case, report_reason, Category,
    Comment, Commenter, Commenters, Draft, Household, Post, Report, ReportState,
};
use yunlian_domain::org::OrgKind;
use yunlian_domain::{Error, FieldError};
use yunlian_infra::db::{self, orgs::OrgFilter, Conn};

/// The party groups directly under a branch.
async fn groups_of(c: &mut Conn<'_>, path: &str, branch: Uuid) -> Result<Vec<Uuid>, Error> {
    let f = OrgFilter {
        roots: vec![path.to_string()],
        parent_id: Some(branch),
        kind: Some(OrgKind::Group),
        after: None,
        limit: 1000,
    };
    Ok(db::orgs::list(c, &f)
        .await?
        .into_iter()
        .map(|o| o.id)
        .collect())
}

/// Attaches the topic's images: each must be an upload of this branch not on another topic.
async fn attach(c: &mut Conn<'_>, post: &Post) -> Result<(), Error> {
    let n = db::moments::attach_images(c, post.id, post.org_id, &post.image_ids).await?;
    if n != post.image_ids.len() {
        return Err(Error::invalid("image_ids", "image_not_found"));
    }
    Ok(())
}

/// `createPost`: a topic on a branch's board.
pub async fn create_post(
    c: &mut Conn<'_>,
    p: &Principal,
    org_id: Uuid,
    draft: &Draft,
    now: DateTime<Utc>,
) -> Result<Post, Error> {
    let org = db::orgs::get(c, org_id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageBoard, &org.path)?;
    if !matches!(org.kind, OrgKind::Branch | OrgKind::GeneralBranch) {
        return Err(Error::invalid("org_id", "org_not_a_branch"));
    }
    let groups = groups_of(c, &org.path, org.id).await?;
    let d = draft.check(now, &groups).map_err(Error::Invalid)?;
    let post = Post {
        id: Uuid::now_v7(),
        org_id: org.id,
        title: d.title,
        body: d.body,
        image_ids: d.image_ids,
        feedback_until: d
            .feedback_until
            .ok_or_else(|| Error::invalid("feedback_until", "required"))?,
        commenters: d.commenters.unwrap_or(Commenters::Branch),
        group_ids: d.group_ids,
        pinned: false,
        closed_at: None,
        created_by: p.member_id,
        created_at: now,
        updated_at: now,
        comment_count: 0,
        like_count: 0,
    };
    db::moments::insert_post(c, &post).await?;
    attach(c, &post).await?;
    Ok(post)
}

/// What `updatePost` may change: absent fields stay.
#[derive(Debug, Clone, Default)]
pub struct PostPatch {
    pub title: Option<String>,
    pub body: Option<String>,
    pub image_ids: Option<Vec<Uuid>>,
    pub feedback_until: Option<DateTime<Utc>>,
    pub commenters: Option<Commenters>,
    pub group_ids: Option<Vec<Uuid>>,
    pub pinned: Option<bool>,
}

/// `updatePost`: the committee edits an open topic, or pins and unpins any.
pub async fn update_post(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    patch: &PostPatch,
    now: DateTime<Utc>,
) -> Result<Post, Error> {
    let (before, path) = db::moments::lock_post(c, id)
        .await?
        .ok_or(Error::NotFound)?;
    authorize(p, Action::ManageBoard, &path)?;
    let edits_text = patch.title.is_some()
        || patch.body.is_some()
        || patch.image_ids.is_some()
        || patch.feedback_until.is_some()
        || patch.commenters.is_some()
        || patch.group_ids.is_some();
    if edits_text && before.closed_at.is_some() {
        return Err(moments::MomentsError::PostClosed.into());
    }
    let mut after = before.clone();
    if edits_text {
        let draft = Draft {
            title: patch.title.clone().unwrap_or_else(|| before.title.clone()),
            body: patch.body.clone().unwrap_or_else(|| before.body.clone()),
            image_ids: patch
                .image_ids
                .clone()
                .unwrap_or_else(|| before.image_ids.clone()),
            // An unchanged deadline may already be past; only a new one is checked.
            feedback_until: patch.feedback_until,
            commenters: Some(patch.commenters.unwrap_or(before.commenters)),
            group_ids: match (patch.commenters, &patch.group_ids) {
                (_, Some(g)) => g.clone(),
                (Some(Commenters::Branch), None) => Vec::new(),
                _ => before.group_ids.clone(),
            },
        };
        let groups = groups_of(c, &path, before.org_id).await?;
        let d = draft.check(now, &groups).map_err(Error::Invalid)?;
        after.title = d.title;
        after.body = d.body;
        after.image_ids = d.image_ids;
        after.feedback_until = d.feedback_until.unwrap_or(before.feedback_until);
        after.commenters = d.commenters.unwrap_or(before.commenters);
        after.group_ids = d.group_ids;
    }
    if let Some(pin) = patch.pinned {
        after.pinned = pin;
    }
    if after == before {
        return Ok(before);
    }
    after.updated_at = now;
    db::moments::update_post(c, &after).await?;
    attach(c, &after).await?;
    Ok(after)
}

/// `closePost`: no more comments or likes; closing twice changes nothing.
pub async fn close_post(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Post, Error> {
    let (before, path) = db::moments::lock_post(c, id)
        .await?
        .ok_or(Error::NotFound)?;
    authorize(p, Action::ManageBoard, &path)?;
    let after = before.close(now);
    if after != before {
        db::moments::update_post(c, &after).await?;
    }
    Ok(after)
}

/// A topic the caller may see (not found otherwise).
pub async fn visible_post(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
) -> Result<(Post, String), Error> {
    let (post, path) = db::moments::get_post(c, id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ReadOrg, &path)?;
    Ok((post, path))
}

/// What a member writes in a comment.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    pub post_id: Uuid,
    pub body: String,
    pub category: Category,
    pub household_id: Option<Uuid>,
}

/// `createComment` and the mutation `moments.comment.v1`: a comment, and the case it opens
/// when it is a suggestion or a life need. The topic's row is locked, so a comment never lands
/// after a close that committed first.
pub async fn comment(
    c: &mut Conn<'_>,
    p: &Principal,
    n: &NewComment,
    now: DateTime<Utc>,
) -> Result<(Comment, Option<moments::Case>), Error> {
    let body = comment_body(&n.body)?;
    let (post, path) = db::moments::lock_post(c, n.post_id)
        .await?
        .ok_or(Error::NotFound)?;
    authorize(p, Action::ReadOrg, &path)?;
    // A phone's clock may lag: a comment is never older than its topic.
    let now = now.max(post.created_at);
    let (me, _) = db::members::get(c, p.member_id)
        .await?
        .ok_or(Error::NotFound)?;
    let who = Commenter {
        branch_id: me.org_id,
        group_id: me.group_id,
        on_committee: p.on_committee_of(post.org_id),
    };
    post.may_comment(&who, now)?;
    if let Some(h) = n.household_id {
        let found = db::moments::get_household(c, h).await?;
        if found.is_none_or(|h| h.org_id != post.org_id) {
            return Err(Error::invalid("household_id", "household_not_found"));
        }
    }
    let mut cm = Comment {
        id: Uuid::now_v7(),
        post_id: post.id,
        org_id: post.org_id,
        author_id: p.member_id,
        body,
        category: n.category,
        household_id: n.household_id,
        case_id: None,
        like_count: 0,
        hidden: None,
        created_at: now,
    };
    let case = n.category.opens_case().then(|| {
        open_case(
            Uuid::now_v7(),
            post.org_id,
            post.id,
            cm.id,
            p.member_id,
            cm.household_id,
            cm.category,
            &cm.body,
            now,
        )
    });
    cm.case_id = case.as_ref().map(|(k, _)| k.id);
    db::moments::insert_comment(c, &cm, &post).await?;
    if let Some((k, step)) = &case {
        db::cases::insert(c, k, step).await?;
    }
    Ok((cm, case.map(|(k, _)| k)))
}

/// A comment the caller may see, with its branch's path.
async fn visible_comment(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
) -> Result<(Comment, String), Error> {
    let (cm, path) = db::moments::get_comment(c, id)
        .await?
        .ok_or(Error::NotFound)?;
    authorize(p, Action::ReadOrg, &path)?;
    Ok((cm, path))
}

/// A comment as the caller sees it: whole for its author and the committee, without the text
/// of a hidden one for everyone else.
pub fn as_seen_by(p: &Principal, path: &str, cm: Comment) -> Comment {
    if cm.author_id == p.member_id || p.can(Action::ManageBoard, path) {
        cm
    } else {
        cm.as_seen_by_others()
    }
}

/// `likePost` / `unlikePost`: one like per member; repeating either changes nothing.
pub async fn like_post(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    like: bool,
    now: DateTime<Utc>,
) -> Result<Post, Error> {
    // The like's counter update writes the topic's row anyway: lock it first (a shared lock
    // then upgraded would deadlock two likers), so a like never lands after a close.
    let (post, path) = db::moments::lock_post(c, id)
        .await?
        .ok_or(Error::NotFound)?;
    authorize(p, Action::ReadOrg, &path)?;
    if like {
        post.may_like()?;
    }
    db::moments::like_post(c, &post, p.member_id, like, now).await?;
    let (post, _) = db::moments::get_post(c, id).await?.ok_or(Error::NotFound)?;
    Ok(post)
}

/// `likeComment` / `unlikeComment`. A like reads its topic under a shared lock, so it never
/// lands on a topic closed meanwhile.
pub async fn like_comment(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    like: bool,
    now: DateTime<Utc>,
) -> Result<Comment, Error> {
    let (cm, path) = visible_comment(c, p, id).await?;
    if like {
        cm.may_like_or_report()?;
        let (post, _) = db::moments::share_post(c, cm.post_id)
            .await?
            .ok_or(Error::NotFound)?;
        post.may_like()?;
    }
    db::moments::like_comment(c, &cm, p.member_id, like, now).await?;
    let (cm, _) = db::moments::get_comment(c, id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(as_seen_by(p, &path, cm))
}

/// `reportComment`: a member reports an abusive comment, once.
pub async fn report(
    c: &mut Conn<'_>,
    p: &Principal,
    comment: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Report, Error> {
    let reason = report_reason(reason)?;
    let (cm, _) = visible_comment(c, p, comment).await?;
    cm.may_like_or_report()?;
    let r = Report {
        id: Uuid::now_v7(),
        comment_id: cm.id,
        org_id: cm.org_id,
        reporter_id: p.member_id,
        reason,
        state: ReportState::Open,
        decided_by: None,
        decided_at: None,
        created_at: now,
    };
    db::moments::insert_report(c, &r).await?;
    Ok(r)
}

/// `hideComment`: the secretary hides a comment with a reason (never deletes it); its open
/// reports are upheld.
pub async fn hide(
    c: &mut Conn<'_>,
    p: &Principal,
    comment: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Comment, Error> {
    let (cm, path) = db::moments::lock_comment(c, comment)
        .await?
        .ok_or(Error::NotFound)?;
    authorize(p, Action::Moderate, &path)?;
    let hidden = cm.hide(reason, p.member_id, now)?;
    db::moments::hide_comment(c, &hidden, now).await?;
    db::moments::uphold_reports(c, cm.id, p.member_id, now).await?;
    Ok(hidden)
}

/// `dismissReport`: the secretary finds nothing wrong.
pub async fn dismiss(
    c: &mut Conn<'_>,
    p: &Principal,
    report: Uuid,
    now: DateTime<Utc>,
) -> Result<Report, Error> {
    let (r, path) = db::moments::lock_report(c, report)
        .await?
        .ok_or(Error::NotFound)?;
    authorize(p, Action::Moderate, &path)?;
    let r = r.dismiss(p.member_id, now)?;
    db::moments::decide_report(c, &r).await?;
    Ok(r)
}

/// `createHousehold`: the committee records a household, optionally with the central household
/// member (党员中心户) who relays for it, ten at most ("1+10"). The member's row is locked, so
/// two households at once cannot both take the tenth place.
pub async fn create_household(
    c: &mut Conn<'_>,
    p: &Principal,
    org_id: Uuid,
    name: &str,
    address: Option<&str>,
    central: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Household, Error> {
    let org = db::orgs::get(c, org_id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageBoard, &org.path)?;
    let (name, address) = household_text(name, address).map_err(Error::Invalid)?;
    if let Some(m) = central {
        let not_central = || {
            Error::Invalid(vec![FieldError::new(
                "central_member_id",
                "not_central_household",
            )])
        };
        let (member, _) = db::members::lock(c, m).await?.ok_or_else(not_central)?;
        if member.org_id != org.id || !member.fields.central_household {
            return Err(not_central());
        }
        may_relay_another(db::moments::households_of_central(c, m).await?)?;
    }
    let h = Household {
        id: Uuid::now_v7(),
        org_id: org.id,
        name,
        address,
        central_member_id: central,
        created_by: p.member_id,
        created_at: now,
    };
    db::moments::insert_household(c, &h).await?;
    Ok(h)
}

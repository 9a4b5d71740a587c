//! Learning: the committee publishes items to its subtree; members report progress (online or
//! from a phone's queue) and the server decides completion; quizzes are graded here; a visitor
//! records a learning visit for an elderly or infirm member (送学上门). Completions and perfect
//! quizzes are events the points consumer scores.

use super::authorize;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::events::{DomainEvent, LearningCompleted, QuizAllCorrect};
use yunlian_domain::learning::{
    advance, check_item, required_percent, Item, ItemKind, Lesson, Progress, Question, Report,
};
use yunlian_domain::org::{is_within, path_ids, OrgKind};
use yunlian_domain::Error;
use yunlian_infra::db::{self, Conn};

/// `createLearningItem`: published to an org and everything below it.
#[allow(clippy::too_many_arguments)]
pub async fn create_item(
    c: &mut Conn<'_>,
    p: &Principal,
    org: Uuid,
    kind: ItemKind,
    title: &str,
    body: Option<&str>,
    length_secs: i64,
    questions: Vec<Question>,
    lessons: Vec<Lesson>,
    now: DateTime<Utc>,
) -> Result<Item, Error> {
    let o = db::orgs::get(c, org).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageBoard, &o.path)?;
    let (title, body) =
        check_item(kind, title, body, length_secs, &questions, &lessons).map_err(Error::Invalid)?;
    let lessons: Vec<Lesson> = lessons
        .into_iter()
        .map(|l| Lesson {
            title: l.title.trim().to_string(),
            ..l
        })
        .collect();
    let item = Item {
        id: Uuid::now_v7(),
        org_id: o.id,
        kind,
        title,
        body,
        length_secs: match kind {
            ItemKind::Quiz => 0,
            ItemKind::Course => lessons.iter().map(|l| l.length_secs).sum(),
            _ => length_secs,
        },
        required_percent: required_percent(kind),
        questions,
        lessons,
        created_by: p.member_id,
        created_at: now,
    };
    db::learning::insert_item(c, &item).await?;
    Ok(item)
}

/// An item `member` may learn: published to their branch or an org above it (or seen by the
/// caller's own roles, for the committee).
async fn item_for(
    c: &mut Conn<'_>,
    p: &Principal,
    member_path: &str,
    id: Uuid,
) -> Result<Item, Error> {
    let (item, path) = db::learning::get_item(c, id)
        .await?
        .ok_or(Error::NotFound)?;
    if is_within(member_path, &path) || p.sees(&path) {
        Ok(item)
    } else {
        Err(Error::NotFound)
    }
}

/// An item as a phone sees it: a quiz's questions without their answers.
#[derive(Debug, Clone, Serialize)]
pub struct ItemView {
    #[serde(flatten)]
    pub item: Item,
    pub questions: Vec<serde_json::Value>,
}

impl From<Item> for ItemView {
    fn from(item: Item) -> Self {
        ItemView {
            questions: item.questions_for_phone(),
            item,
        }
    }
}

pub async fn get_item(c: &mut Conn<'_>, p: &Principal, id: Uuid) -> Result<ItemView, Error> {
    let (_, path) = db::members::get(c, p.member_id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(item_for(c, p, &path, id).await?.into())
}

/// `listLearningItems`: what the caller may learn (their branch's and every org's above it).
pub async fn list_items(
    c: &mut Conn<'_>,
    p: &Principal,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ItemView>, Error> {
    let (_, path) = db::members::get(c, p.member_id)
        .await?
        .ok_or(Error::NotFound)?;
    let items = db::learning::items_for(c, &path_ids(&path), before, limit).await?;
    Ok(items.into_iter().map(ItemView::from).collect())
}

/// What a progress report answers: the server's view, never the phone's.
#[derive(Debug, Clone, Serialize)]
pub struct ProgressView {
    pub item_id: Uuid,
    pub credited_secs: i64,
    pub required_secs: i64,
    pub completed_at: Option<DateTime<Utc>>,
    /// For a course: the lesson reported on, and when it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lesson: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lesson_completed_at: Option<DateTime<Utc>>,
}

/// `reportLearningProgress` and the mutation `learning.progress.v1`: the report advances the
/// member's progress under its row's lock; a completion is decided here, once, with its event.
pub async fn report(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    lesson: Option<usize>,
    position_secs: i64,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<ProgressView, Error> {
    let (_, path) = db::members::get(c, p.member_id)
        .await?
        .ok_or(Error::NotFound)?;
    let item = item_for(c, p, &path, id).await?;
    match (item.kind, lesson) {
        (ItemKind::Quiz, _) => return Err(Error::Unprocessable("quiz_is_submitted")),
        (ItemKind::Course, None) => return Err(Error::invalid("lesson", "required")),
        (ItemKind::Course, Some(i)) => {
            return report_lesson(c, p, &item, i, position_secs, at, now).await
        }
        (_, Some(_)) => return Err(Error::invalid("lesson", "not_a_course")),
        (_, None) => {}
    }
    if !(0..=item.length_secs).contains(&position_secs) {
        return Err(Error::invalid("position_secs", "out_of_range"));
    }
    let before = db::learning::lock_progress(c, p.member_id, id).await?;
    let after = advance(
        &item,
        before,
        Report {
            position_secs,
            at: at.min(now),
        },
    );
    if after != before {
        db::learning::save_progress(c, p.member_id, id, &after, false).await?;
    }
    if before.completed_at.is_none() {
        if let Some(done) = after.completed_at {
            let e = DomainEvent::LearningCompleted(LearningCompleted {
                item_id: id,
                member_id: p.member_id,
                at: done,
                visit: false,
            });
            db::outbox::append(c, &e, now).await?;
        }
    }
    Ok(ProgressView {
        item_id: id,
        credited_secs: after.credited_secs,
        required_secs: item.required_secs(),
        completed_at: after.completed_at,
        lesson: None,
        lesson_completed_at: None,
    })
}

/// A report on lesson `i` of a course: the lesson is timed as an item of its kind under its
/// own row's lock (taken after the course's, one order for every report on the course); the
/// course is credited the sum of its lessons and completes, once, with its event, when every
/// lesson has.
async fn report_lesson(
    c: &mut Conn<'_>,
    p: &Principal,
    course: &Item,
    i: usize,
    position_secs: i64,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<ProgressView, Error> {
    let lesson = course
        .lesson(i)
        .ok_or_else(|| Error::invalid("lesson", "out_of_range"))?;
    if !(0..=lesson.length_secs).contains(&position_secs) {
        return Err(Error::invalid("position_secs", "out_of_range"));
    }
    let at = at.min(now);
    let course_before = db::learning::lock_progress(c, p.member_id, course.id).await?;
    let before = db::learning::lock_lesson(c, p.member_id, course.id, i as i64).await?;
    let after = advance(&lesson, before, Report { position_secs, at });
    if after != before {
        db::learning::save_lesson(c, p.member_id, course.id, i as i64, &after).await?;
    }
    let lessons = db::learning::lessons_of(c, p.member_id, course.id).await?;
    let all_done = lessons.len() == course.lessons.len() && lessons.iter().all(|(_, d)| *d);
    let mut course_after = Progress {
        last_at: Some(at).max(course_before.last_at),
        credited_secs: lessons.iter().map(|(s, _)| s).sum(),
        ..course_before
    };
    if course_before.completed_at.is_none() && all_done {
        course_after.completed_at = Some(at);
        let e = DomainEvent::LearningCompleted(LearningCompleted {
            item_id: course.id,
            member_id: p.member_id,
            at,
            visit: false,
        });
        db::outbox::append(c, &e, now).await?;
    }
    if course_after != course_before {
        db::learning::save_progress(c, p.member_id, course.id, &course_after, false).await?;
    }
    Ok(ProgressView {
        item_id: course.id,
        credited_secs: course_after.credited_secs,
        required_secs: course.required_secs(),
        completed_at: course_after.completed_at,
        lesson: Some(i),
        lesson_completed_at: after.completed_at,
    })
}

/// What a quiz submission answers.
#[derive(Debug, Clone, Serialize)]
pub struct Graded {
    pub item_id: Uuid,
    pub correct: usize,
    pub total: usize,
    /// The right answers, now that the quiz is submitted.
    pub answers: Vec<usize>,
}

/// `submitQuiz`: graded here, once per member.
pub async fn submit_quiz(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    answers: &[usize],
    now: DateTime<Utc>,
) -> Result<Graded, Error> {
    let (_, path) = db::members::get(c, p.member_id)
        .await?
        .ok_or(Error::NotFound)?;
    let item = item_for(c, p, &path, id).await?;
    if item.kind != ItemKind::Quiz {
        return Err(Error::Unprocessable("not_a_quiz"));
    }
    let correct = item.grade(answers)?;
    let total = item.questions.len();
    if !db::learning::insert_submission(
        c,
        p.member_id,
        id,
        answers,
        correct as i64,
        total as i64,
        now,
    )
    .await?
    {
        return Err(Error::Conflict("quiz_already_submitted"));
    }
    if correct == total {
        let e = DomainEvent::QuizAllCorrect(QuizAllCorrect {
            item_id: id,
            member_id: p.member_id,
            at: now,
        });
        db::outbox::append(c, &e, now).await?;
    }
    Ok(Graded {
        item_id: id,
        correct,
        total,
        answers: item.questions.iter().map(|q| q.answer).collect(),
    })
}

/// `recordLearningVisit` (送学上门): a committee member records a visit to an elderly or infirm
/// member of their branch; long enough, it completes the item as learning would, marked as a
/// visit.
#[allow(clippy::too_many_arguments)]
pub async fn record_visit(
    c: &mut Conn<'_>,
    p: &Principal,
    member: Uuid,
    id: Uuid,
    duration_secs: i64,
    confirmation: &str,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ProgressView, Error> {
    let (m, path) = db::members::get(c, member).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageBoard, &path)?;
    if !m.fields.elderly_or_infirm {
        return Err(Error::invalid("member_id", "not_elderly_or_infirm"));
    }
    if !matches!(confirmation, "member_confirmed" | "note") {
        return Err(Error::invalid("confirmation", "invalid_value"));
    }
    let note =
        yunlian_domain::text::clean_opt("note", note, yunlian_domain::text::Kind::Block, 500)?;
    if confirmation == "note" && note.is_none() {
        return Err(Error::invalid("note", "required"));
    }
    if !(60..=4 * 3600).contains(&duration_secs) {
        return Err(Error::invalid("duration_secs", "out_of_range"));
    }
    let item = item_for(c, p, &path, id).await?;
    db::learning::insert_visit(
        c,
        Uuid::now_v7(),
        id,
        m.id,
        p.member_id,
        duration_secs,
        confirmation,
        note.as_deref(),
        now,
    )
    .await?;
    let mut progress: Progress = db::learning::lock_progress(c, m.id, id).await?;
    let newly = progress.completed_at.is_none() && duration_secs >= item.required_secs();
    if newly {
        progress.completed_at = Some(now);
        progress.credited_secs = progress.credited_secs.max(duration_secs);
        db::learning::save_progress(c, m.id, id, &progress, true).await?;
        let e = DomainEvent::LearningCompleted(LearningCompleted {
            item_id: id,
            member_id: m.id,
            at: now,
            visit: true,
        });
        db::outbox::append(c, &e, now).await?;
    }
    Ok(ProgressView {
        item_id: id,
        credited_secs: progress.credited_secs,
        required_secs: item.required_secs(),
        completed_at: progress.completed_at,
        lesson: None,
        lesson_completed_at: None,
    })
}

/// One branch's line of an item's figures.
#[derive(Debug, Clone, Serialize)]
pub struct BranchLearning {
    pub org_id: Uuid,
    pub members: i64,
    pub viewed: i64,
    pub completed: i64,
    /// completed × 1000 / members
    pub completion_permille: i64,
    /// Who opened it, what they were credited and when they completed it (asked of a branch
    /// or below; not for a whole township).
    pub learners: Option<Vec<Learner>>,
}

/// A member who opened an item.
#[derive(Debug, Clone, Serialize)]
pub struct Learner {
    pub member_id: Uuid,
    pub name: String,
    pub credited_secs: i64,
    pub completed_at: Option<DateTime<Utc>>,
    /// Completed through a learning visit (送学上门).
    pub visit: bool,
}

/// `getLearningItemStats`: how many viewed and completed it per branch inside the org, and,
/// asked of a branch or below, who.
pub async fn stats(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    org: Uuid,
) -> Result<Vec<BranchLearning>, Error> {
    let o = db::orgs::get(c, org).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ReadMembers, &o.path)?;
    db::learning::get_item(c, id)
        .await?
        .ok_or(Error::NotFound)?;
    let learners: Option<Vec<_>> = match o.kind {
        OrgKind::Committee => None,
        _ => Some(db::learning::learners(c, id, &o.path).await?),
    };
    Ok(db::learning::item_stats(c, id, &o.path)
        .await?
        .into_iter()
        .map(|(org_id, members, viewed, completed)| BranchLearning {
            org_id,
            members,
            viewed,
            completed,
            completion_permille: if members > 0 {
                completed * 1000 / members
            } else {
                0
            },
            learners: learners.as_ref().map(|all| {
                all.iter()
                    .filter(|l| l.1 == org_id)
                    .map(|(member_id, _, name, secs, done, visit)| Learner {
                        member_id: *member_id,
                        name: name.clone(),
                        credited_secs: *secs,
                        completed_at: *done,
                        visit: *visit,
                    })
                    .collect()
            }),
        })
        .collect())
}

//! Learning on the phone (网上党校, 学习智库): items published to an org subtree, completion
//! decided by the server from the time it saw (progress reports stitched into sessions; a gap
//! over ten minutes starts a new one; progress faster than real time is not credited), quizzes
//! graded on the server, and learning visits to elderly or infirm members (送学上门).

use crate::error::FieldError;
use crate::text::{self, Kind};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Article,
    Video,
    Audio,
    /// A course of lessons (videos, audio, articles), each timed as an item of its kind; the
    /// course completes when every lesson has.
    Course,
    Quiz,
}

/// A quiz question; its answer never leaves the server before the quiz is submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub prompt: String,
    pub options: Vec<String>,
    /// The index of the right option.
    pub answer: usize,
}

/// One lesson of a course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lesson {
    pub title: String,
    /// `article`, `video` or `audio`.
    pub kind: ItemKind,
    /// Its length, or an article's reading floor.
    pub length_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub id: Uuid,
    pub org_id: Uuid,
    pub kind: ItemKind,
    pub title: String,
    pub body: Option<String>,
    /// A video's, audio's or course's length; an article's reading floor.
    pub length_secs: i64,
    /// The share of the length that completes it, in per cent (80 for media, 100 for a
    /// reading floor).
    pub required_percent: i64,
    #[serde(skip)]
    pub questions: Vec<Question>,
    /// A course's lessons, in order (empty for any other kind).
    pub lessons: Vec<Lesson>,
    pub created_by: Uuid,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: DateTime<Utc>,
}

/// A gap longer than this between two reports starts a new session.
pub const SESSION_GAP: TimeDelta = TimeDelta::minutes(10);

impl Item {
    /// Seconds of real attention that complete it.
    pub fn required_secs(&self) -> i64 {
        if self.kind == ItemKind::Course && !self.lessons.is_empty() {
            return (0..self.lessons.len())
                .filter_map(|i| self.lesson(i))
                .map(|l| l.required_secs())
                .sum();
        }
        (self.length_secs * self.required_percent + 99) / 100
    }

    /// Lesson `i` of a course, timed as an item of its kind (80% of a video or audio, an
    /// article's whole floor); `None` past the last lesson or for anything but a course.
    pub fn lesson(&self, i: usize) -> Option<Item> {
        let l = self.lessons.get(i)?;
        Some(Item {
            kind: l.kind,
            title: l.title.clone(),
            body: None,
            length_secs: l.length_secs,
            required_percent: required_percent(l.kind),
            questions: Vec::new(),
            lessons: Vec::new(),
            ..self.clone()
        })
    }

    /// The item as a phone may see it: a quiz's questions without their answers.
    pub fn questions_for_phone(&self) -> Vec<serde_json::Value> {
        self.questions
            .iter()
            .map(|q| serde_json::json!({"prompt": q.prompt, "options": q.options}))
            .collect()
    }

    /// How many answers are right; `Err` when the answers do not fit the questions.
    pub fn grade(&self, answers: &[usize]) -> Result<usize, FieldError> {
        if answers.len() != self.questions.len() {
            return Err(FieldError::new("answers", "answers_do_not_fit"));
        }
        if answers
            .iter()
            .zip(&self.questions)
            .any(|(a, q)| *a >= q.options.len())
        {
            return Err(FieldError::new("answers", "answers_do_not_fit"));
        }
        Ok(answers
            .iter()
            .zip(&self.questions)
            .filter(|(a, q)| **a == q.answer)
            .count())
    }
}

/// The share of an item's length that completes it: 80% of a video or audio, all of an
/// article's reading floor (and of a course, whose lessons carry their own).
pub fn required_percent(kind: ItemKind) -> i64 {
    match kind {
        ItemKind::Video | ItemKind::Audio => 80,
        _ => 100,
    }
}

/// A new item, checked: title, body, length, for a quiz its questions and for a course its
/// lessons (a course's length is the sum of theirs).
pub fn check_item(
    kind: ItemKind,
    title: &str,
    body: Option<&str>,
    length_secs: i64,
    questions: &[Question],
    lessons: &[Lesson],
) -> Result<(String, Option<String>), Vec<FieldError>> {
    let mut errs = Vec::new();
    let title = text::clean("title", title, Kind::Line, 100)
        .map_err(|e| errs.push(e))
        .ok();
    let body = text::clean_opt("body", body, Kind::Block, 20_000)
        .map_err(|e| errs.push(e))
        .ok()
        .flatten();
    if !matches!(kind, ItemKind::Quiz | ItemKind::Course) && !(10..=6 * 3600).contains(&length_secs)
    {
        errs.push(FieldError::new("length_secs", "out_of_range"));
    }
    if kind == ItemKind::Course {
        if lessons.is_empty() || lessons.len() > 50 {
            errs.push(FieldError::new("lessons", "out_of_range"));
        }
        for (i, l) in lessons.iter().enumerate() {
            let fits = matches!(
                l.kind,
                ItemKind::Article | ItemKind::Video | ItemKind::Audio
            ) && (10..=6 * 3600).contains(&l.length_secs)
                && text::clean("title", &l.title, Kind::Line, 100).is_ok();
            if !fits {
                errs.push(FieldError::new(format!("lessons[{i}]"), "invalid_lesson"));
            }
        }
    } else if !lessons.is_empty() {
        errs.push(FieldError::new("lessons", "only_for_a_course"));
    }
    if kind == ItemKind::Quiz {
        if questions.is_empty() || questions.len() > 50 {
            errs.push(FieldError::new("questions", "out_of_range"));
        }
        for (i, q) in questions.iter().enumerate() {
            if q.options.len() < 2 || q.options.len() > 8 || q.answer >= q.options.len() {
                errs.push(FieldError::new(
                    format!("questions[{i}]"),
                    "invalid_question",
                ));
            }
        }
    }
    match (title, errs.is_empty()) {
        (Some(t), true) => Ok((t, body)),
        _ => Err(errs),
    }
}

/// What the server has seen of one member on one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub last_at: Option<DateTime<Utc>>,
    pub last_position: i64,
    pub credited_secs: i64,
    pub completed_at: Option<DateTime<Utc>>,
}

/// One progress report: where the member is in the item (a media position, or for an article
/// the seconds on the page) at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub position_secs: i64,
    pub at: DateTime<Utc>,
}

/// The progress after a report. Time counts only within a session (no more than
/// [`SESSION_GAP`] since the last report) and never more than the wall clock allowed: a jump
/// ahead in the video, or a position reported faster than real time, is not credited. A
/// report older than the last one is ignored. Completion is decided here, once.
pub fn advance(item: &Item, p: Progress, r: Report) -> Progress {
    let position = r.position_secs.clamp(0, item.length_secs.max(0));
    let mut next = p;
    match p.last_at {
        Some(last) if r.at <= last => return p,
        Some(last) if r.at - last <= SESSION_GAP => {
            let wall = (r.at - last).num_seconds();
            let moved = match item.kind {
                // On a page, the time on it is the attention.
                ItemKind::Article => wall,
                _ => (position - p.last_position).max(0),
            };
            next.credited_secs += moved.min(wall);
        }
        _ => {}
    }
    next.last_at = Some(r.at);
    next.last_position = position;
    if next.completed_at.is_none() && next.credited_secs >= item.required_secs() {
        next.completed_at = Some(r.at);
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(len: i64) -> Item {
        Item {
            id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            kind: ItemKind::Video,
            title: "党课".into(),
            body: None,
            length_secs: len,
            required_percent: 80,
            questions: vec![],
            lessons: vec![],
            created_by: Uuid::now_v7(),
            created_at: DateTime::default(),
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_000_000 + s, 0).unwrap_or_default()
    }

    #[test]
    fn a_course_times_each_lesson_as_its_kind_and_is_checked_whole() {
        let lesson = |kind, len| Lesson {
            title: "第一讲".into(),
            kind,
            length_secs: len,
        };
        let course = Item {
            kind: ItemKind::Course,
            length_secs: 610,
            required_percent: 100,
            lessons: vec![lesson(ItemKind::Video, 600), lesson(ItemKind::Article, 10)],
            ..video(0)
        };
        let first = course.lesson(0).expect("lesson");
        assert_eq!((first.kind, first.required_secs()), (ItemKind::Video, 480));
        assert_eq!(course.lesson(1).map(|l| l.required_secs()), Some(10));
        assert!(course.lesson(2).is_none());
        assert_eq!(
            course.required_secs(),
            490,
            "80% of the video and the whole article"
        );
        let ok = check_item(ItemKind::Course, "党课", None, 0, &[], &course.lessons);
        assert!(ok.is_ok(), "{ok:?}");
        let codes = |r: Result<(String, Option<String>), Vec<FieldError>>| {
            r.err()
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.field, e.code.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            codes(check_item(ItemKind::Course, "党课", None, 0, &[], &[])),
            vec![("lessons".to_string(), "out_of_range".to_string())]
        );
        let bad = [lesson(ItemKind::Quiz, 60), lesson(ItemKind::Video, 5)];
        assert_eq!(
            codes(check_item(ItemKind::Course, "党课", None, 0, &[], &bad)),
            vec![
                ("lessons[0]".to_string(), "invalid_lesson".to_string()),
                ("lessons[1]".to_string(), "invalid_lesson".to_string())
            ]
        );
        assert_eq!(
            codes(check_item(
                ItemKind::Video,
                "党课",
                None,
                60,
                &[],
                &course.lessons
            )),
            vec![("lessons".to_string(), "only_for_a_course".to_string())]
        );
    }

    #[test]
    fn watching_in_real_time_completes_and_skipping_ahead_does_not() {
        let v = video(600); // 480 s of watching complete it
        let mut p = Progress::default();
        for s in (0..=480).step_by(60) {
            p = advance(
                &v,
                p,
                Report {
                    position_secs: s,
                    at: at(s),
                },
            );
        }
        assert_eq!(p.credited_secs, 480);
        assert_eq!(p.completed_at, Some(at(480)));

        // Jumping to the end after a minute credits only the minute.
        let mut q = advance(
            &v,
            Progress::default(),
            Report {
                position_secs: 0,
                at: at(0),
            },
        );
        q = advance(
            &v,
            q,
            Report {
                position_secs: 600,
                at: at(60),
            },
        );
        assert_eq!((q.credited_secs, q.completed_at), (60, None));
        // A gap of more than ten minutes starts a new session: the gap is not credited.
        q = advance(
            &v,
            q,
            Report {
                position_secs: 600,
                at: at(60 + 11 * 60),
            },
        );
        assert_eq!(q.credited_secs, 60);
        // A report older than the last is ignored.
        assert_eq!(
            advance(
                &v,
                q,
                Report {
                    position_secs: 0,
                    at: at(5)
                }
            ),
            q
        );
    }

    #[test]
    fn a_quiz_is_graded_here_and_its_answers_stay_here() {
        let mut quiz = video(0);
        quiz.kind = ItemKind::Quiz;
        quiz.questions = vec![
            Question {
                prompt: "党的根本宗旨？".into(),
                options: vec!["全心全意为人民服务".into(), "x".into()],
                answer: 0,
            },
            Question {
                prompt: "三会一课中的党课多久一次？".into(),
                options: vec!["每月".into(), "每季度".into()],
                answer: 1,
            },
        ];
        assert_eq!(quiz.grade(&[0, 1]), Ok(2));
        assert_eq!(quiz.grade(&[0, 0]), Ok(1));
        assert!(quiz.grade(&[0]).is_err());
        assert!(quiz.grade(&[0, 5]).is_err());
        let shown = serde_json::to_string(&quiz.questions_for_phone()).unwrap_or_default();
        assert!(!shown.contains("answer"));
    }
}

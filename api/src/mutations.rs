//! Every mutation a phone may queue, in one table: its versioned name and the use case it runs.
//! A test checks the names against openapi.yaml (`Mutation.x-mutations`). Each entry parses its
//! arguments (an error names the argument), authorises against the caller's current roles and
//! runs in the push's transaction; an error is a recorded rejection.

use crate::extract::args;
use crate::ops;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use yunlian_domain::auth::Principal;
use yunlian_domain::member::Residence;
use yunlian_domain::settings::Settings;
use yunlian_domain::sync::EventTime;
use yunlian_domain::Error;
use yunlian_infra::db::Conn;

/// What every mutation runs with.
#[derive(Debug, Clone, Copy)]
pub struct Cx<'a> {
    pub principal: &'a Principal,
    /// When the phone made it (derived from its uptime, its clock, or the receive time).
    pub event_time: EventTime,
    pub now: DateTime<Utc>,
    /// The configuration's settings, under the org's own.
    pub settings: Settings,
}

macro_rules! mutations {
    ($( $name:literal => $run:ident ;)*) => {
        /// The name of every mutation, as phones send them.
        pub const NAMES: &[&str] = &[ $( $name ),* ];

        /// Runs the mutation `name`; an unknown name is rejected with `unknown_mutation`.
        pub async fn run(c: &mut Conn<'_>, cx: Cx<'_>, name: &str, a: &Value) -> Result<Value, Error> {
            match name {
                $( $name => $run(c, cx, a).await, )*
                _ => Err(Error::Unprocessable("unknown_mutation")),
            }
        }
    };
}

mutations! {
    "member.update_whereabouts.v1" => update_whereabouts;
    "attendance.clock_in.v1"       => clock_in;
    "moments.comment.v1"           => comment;
    "learning.progress.v1"         => learning_progress;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhereaboutsArgs {
    residence: Residence,
    migrant_city: Option<String>,
}

/// A member reports where they are now (at home, or working in which city): the roster the
/// committee sees follows. Only for oneself.
async fn update_whereabouts(c: &mut Conn<'_>, cx: Cx<'_>, a: &Value) -> Result<Value, Error> {
    let a: WhereaboutsArgs = args(a)?;
    let m = ops::members::set_whereabouts(
        c,
        cx.principal,
        a.residence,
        a.migrant_city.as_deref(),
        cx.now,
    )
    .await?;
    Ok(json!({
        "member_id": m.id,
        "residence": m.fields.residence,
        "migrant_city": m.fields.migrant_city,
    }))
}

/// A clock-in made offline, judged at the time it was made.
async fn clock_in(c: &mut Conn<'_>, cx: Cx<'_>, a: &Value) -> Result<Value, Error> {
    let a: ops::attendance::ClockInArgs = args(a)?;
    let j = ops::attendance::Judging {
        judged: ops::attendance::queued_time(cx.event_time, a.evidence.device_time),
        now: cx.now,
        via: "sync",
        settings: cx.settings,
    };
    let ci = ops::attendance::clock_in(c, cx.principal, a.meeting_id, &a.evidence, j, None).await?;
    serde_json::to_value(ci).map_err(|e| Error::Internal(e.to_string()))
}

/// A comment written offline (in a village hall without signal), taken once when it arrives.
/// The topic's deadline is judged at the time the phone made it, as a clock-in is.
async fn comment(c: &mut Conn<'_>, cx: Cx<'_>, a: &Value) -> Result<Value, Error> {
    let a: ops::moments::NewComment = args(a)?;
    let written = cx.event_time.at.min(cx.now);
    let (cm, case) = ops::moments::comment(c, cx.principal, &a, written).await?;
    Ok(json!({"comment_id": cm.id, "case_id": case.map(|k| k.id)}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgressArgs {
    item_id: uuid::Uuid,
    #[serde(default)]
    lesson: Option<usize>,
    position_secs: i64,
}

/// Learning progress reported from a phone's queue, timed when the phone made it: the server
/// stitches the reports into sessions and decides completion.
async fn learning_progress(c: &mut Conn<'_>, cx: Cx<'_>, a: &Value) -> Result<Value, Error> {
    let a: ProgressArgs = args(a)?;
    let r = ops::learning::report(
        c,
        cx.principal,
        a.item_id,
        a.lesson,
        a.position_secs,
        cx.event_time.at,
        cx.now,
    )
    .await?;
    serde_json::to_value(r).map_err(|e| Error::Internal(e.to_string()))
}

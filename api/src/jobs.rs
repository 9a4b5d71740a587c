//! Every background job, in one table: its name, how often it runs, whether one replica at a
//! time runs it (under a lease in the database), and the use case of one round. `startup`
//! calls [`spawn_all`]; a test checks the table.

use chrono::TimeDelta;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use yunlian_domain::ports::Clock;
use yunlian_domain::Error;
use yunlian_infra::bus::Bus;
use yunlian_infra::db::{self, ScopedFutureExt};
use yunlian_infra::Db;

/// What jobs run with.
#[derive(Clone)]
pub struct JobCx {
    pub db: Db,
    pub bus: Bus,
    pub clock: Arc<dyn Clock>,
    /// A planned meeting closes by itself this long after its end.
    pub close_grace: TimeDelta,
    /// The configuration's settings, under each org's own.
    pub settings: yunlian_domain::settings::Settings,
    pub tombstone_days: i64,
    pub relay_every: Duration,
    /// How often the rankings job runs.
    pub rankings_every: Duration,
    /// Where pushes to phones go.
    pub push: yunlian_infra::push::Gateway,
    /// Redis and its key prefix, when configured.
    pub redis: Option<(yunlian_infra::redis::Redis, String)>,
    /// Where the data lives, and the free space under which admins are warned.
    pub data_dir: std::path::PathBuf,
    pub disk_low_bytes: u64,
}

/// How a job is spread over replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// One replica at a time, under the lease named after the job.
    Once,
    /// On every replica (the work itself is shared safely, e.g. `FOR UPDATE SKIP LOCKED`).
    Everywhere,
}

macro_rules! jobs {
    ($( $name:literal every $every:expr, $runs:ident => $run:path ;)*) => {
        /// (name, how it is spread) of every job.
        pub const JOBS: &[(&str, Runs)] = &[ $( ($name, Runs::$runs) ),* ];

        fn every(name: &str, cx: &JobCx) -> Duration {
            let f: fn(&JobCx) -> Duration = match name {
                $( $name => $every, )*
                _ => |_| Duration::from_secs(60),
            };
            f(cx)
        }

        /// One round of job `name`; returns how much it did.
        pub async fn round(name: &str, cx: &JobCx) -> Result<usize, Error> {
            match name {
                $( $name => $run(cx).await, )*
                _ => Err(Error::Internal(format!("no job {name}"))),
            }
        }
    };
}

jobs! {
    "close_out"       every |_| Duration::from_secs(60),   Once       => close_out;
    "sync_tombstones" every |_| Duration::from_secs(3600), Once       => purge_tombstones;
    "outbox_relay"    every |cx| cx.relay_every,           Everywhere => relay;
    "case_overdue"    every |_| Duration::from_secs(60),   Once       => case_overdue;
    "points"          every |cx| cx.relay_every,           Once       => points;
    "points_expiry"   every |_| Duration::from_secs(3600), Once       => points_expiry;
    "rankings"        every |cx| cx.rankings_every,        Once       => rankings;
    "warnings"        every |_| Duration::from_secs(60),   Once       => warnings_scan;
    "warnings_events" every |cx| cx.relay_every,           Once       => warnings_events;
    "push_gather"     every |cx| cx.relay_every,           Once       => push_gather;
    "push_send"       every |_| Duration::from_secs(5),    Once       => push_send;
    "coordinates"     every |_| Duration::from_secs(3600), Once       => coarsen_coordinates;
    "audit_retention" every |_| Duration::from_secs(3600), Once       => audit_retention;
    "departed"        every |_| Duration::from_secs(3600), Once       => erase_departed;
    "disk_space"      every |_| Duration::from_secs(60),   Everywhere => disk_space;
}

/// Clock-in coordinates past their township's precise period are coarsened.
async fn coarsen_coordinates(cx: &JobCx) -> Result<usize, Error> {
    crate::ops::privacy::coarsen_coordinates(&cx.db, cx.settings, cx.clock.now()).await
}

/// Members who left past their township's retention: phone numbers and device keys erased.
async fn erase_departed(cx: &JobCx) -> Result<usize, Error> {
    crate::ops::privacy::erase_departed(&cx.db, cx.settings, cx.clock.now()).await
}

/// Audit entries past their township's retention go.
async fn audit_retention(cx: &JobCx) -> Result<usize, Error> {
    crate::ops::privacy::purge_audit(&cx.db, cx.settings, cx.clock.now()).await
}

/// The data directory's free space: under the threshold, the township's administrators are
/// warned (once per episode).
async fn disk_space(cx: &JobCx) -> Result<usize, Error> {
    crate::ops::warnings::check_disk(&cx.db, &cx.data_dir, cx.disk_low_bytes, cx.clock.now()).await
}

/// Warning events gathered into one push per recipient a minute.
async fn push_gather(cx: &JobCx) -> Result<usize, Error> {
    crate::ops::push::consume(&cx.db, cx.clock.now()).await
}

/// Due pushes sent through the gateway (retried, then dead-lettered).
async fn push_send(cx: &JobCx) -> Result<usize, Error> {
    crate::ops::push::send_due(&cx.db, &cx.push, cx.clock.now()).await
}

/// The warnings scan: every branch's calendar, cases, learning and notices evaluated now;
/// returns how many warnings it raised or resolved.
async fn warnings_scan(cx: &JobCx) -> Result<usize, Error> {
    let s = crate::ops::warnings::scan(&cx.db, cx.settings, cx.clock.now()).await?;
    Ok(s.raised + s.resolved)
}

/// The warnings consumer: absences and yellow lists become member warnings.
async fn warnings_events(cx: &JobCx) -> Result<usize, Error> {
    crate::ops::warnings::consume(&cx.db, cx.clock.now()).await
}

/// The Redis rankings of the current periods rebuilt from the ledger where they are stale.
async fn rankings(cx: &JobCx) -> Result<usize, Error> {
    match &cx.redis {
        Some((r, prefix)) => {
            crate::ops::points::rebuild_rankings(&cx.db, r, prefix, cx.clock.now()).await
        }
        None => Ok(0),
    }
}

/// The points consumer: scores every domain event of its topics not yet scored, in order.
async fn points(cx: &JobCx) -> Result<usize, Error> {
    crate::ops::points::consume(&cx.db, cx.clock.now()).await
}

/// Pending adjustments left undecided past their township's limit void themselves.
async fn points_expiry(cx: &JobCx) -> Result<usize, Error> {
    let now = cx.clock.now();
    cx.db
        .write(move |mut c| {
            async move { crate::ops::points::expire(&mut c, now).await }.scope_boxed()
        })
        .await
}

/// Assigned cases past their due time are marked overdue once, each with its event.
async fn case_overdue(cx: &JobCx) -> Result<usize, Error> {
    crate::ops::cases::mark_overdue(&cx.db, cx.clock.now(), cx.settings).await
}

/// Planned meetings that ended more than the grace period ago are closed.
async fn close_out(cx: &JobCx) -> Result<usize, Error> {
    let now = cx.clock.now();
    crate::ops::attendance::close_due(&cx.db, cx.close_grace, cx.settings, now).await
}

/// Tombstones and mutation outcomes older than the horizon go; the scopes' floors rise so
/// older cursors get `reset`.
async fn purge_tombstones(cx: &JobCx) -> Result<usize, Error> {
    let before = cx.clock.now() - TimeDelta::days(cx.tombstone_days);
    cx.db
        .write(move |mut c| {
            async move {
                let n = db::sync::purge_tombstones(&mut c, before).await?;
                Ok(n + db::sync::prune_outcomes(&mut c, before).await?)
            }
            .scope_boxed()
        })
        .await
}

/// Committed outbox events go to the bus, a batch at a time until none is left.
async fn relay(cx: &JobCx) -> Result<usize, Error> {
    let mut total = 0;
    loop {
        let n = yunlian_infra::bus::relay(&cx.db, &cx.bus, cx.clock.now()).await?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// Runs one round of job `name` as `holder`: under the job's lease when it runs once across
/// replicas (`None`: another replica holds it), directly otherwise.
pub async fn run_once(
    name: &'static str,
    cx: &JobCx,
    holder: &str,
) -> Result<Option<usize>, Error> {
    let runs = JOBS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .ok_or_else(|| Error::Internal(format!("no job {name}")))?;
    if runs == Runs::Everywhere {
        return round(name, cx).await.map(Some);
    }
    // The lease outlives any round; a replica that dies mid-round frees it when it expires.
    let ttl = TimeDelta::from_std(every(name, cx) * 10).unwrap_or(TimeDelta::minutes(10));
    let (h, now) = (holder.to_string(), cx.clock.now());
    let taken = cx
        .db
        .write(move |mut c| {
            async move { db::leases::try_take(&mut c, name, &h, now, ttl).await }.scope_boxed()
        })
        .await?;
    if !taken {
        return Ok(None);
    }
    metrics::gauge!("yunlian_job_lease_held", "job" => name).set(1.0);
    let done = round(name, cx).await;
    metrics::gauge!("yunlian_job_lease_held", "job" => name).set(0.0);
    let h = holder.to_string();
    let released = cx
        .db
        .write(move |mut c| {
            async move { db::leases::release(&mut c, name, &h).await }.scope_boxed()
        })
        .await;
    if let Err(e) = released {
        tracing::warn!(job = name, error = %e, "could not give back the lease");
    }
    done.map(Some)
}

/// The job runners of this replica, until [`Runners::stop`].
pub struct Runners {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Runners {
    /// Asks every runner to stop after its current round (a round is never cut: its lease is
    /// given back when it ends) and waits up to `within` for them.
    pub async fn stop(self, within: Duration) {
        let _ = self.stop.send(true);
        let all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!(
                "job rounds still running at shutdown; their leases expire by themselves"
            );
        }
    }
}

/// Starts every job on this replica: each ticks at its interval and runs a round (under its
/// lease where it runs once). A failed round is logged once until the job recovers.
pub fn spawn_all(cx: JobCx) -> Runners {
    let holder = Uuid::now_v7().to_string();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for &(name, _) in JOBS {
        let (cx, holder, mut stopping) = (cx.clone(), holder.clone(), stopping.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every(name, &cx));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopping.changed() => break,
                }
                let outcome = match run_once(name, &cx, &holder).await {
                    Ok(done) => {
                        if failing {
                            tracing::info!(job = name, "job recovered");
                            failing = false;
                        }
                        if let Some(n) = done.filter(|n| *n > 0) {
                            tracing::info!(job = name, done = n, "job round");
                        }
                        if done.is_some() {
                            "ok"
                        } else {
                            "skipped"
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(job = name, error = %e, "job round failed");
                            failing = true;
                        }
                        "failed"
                    }
                };
                metrics::counter!("yunlian_job_runs_total", "job" => name, "outcome" => outcome)
                    .increment(1);
                if *stopping.borrow() {
                    break;
                }
            }
        }));
    }
    Runners { stop, tasks }
}

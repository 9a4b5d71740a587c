//! Memory under a burst of logins, alone in its own test binary so the process's resident set
//! is the server's (and this small load generator's): 1,000 correct logins with 64 in flight
//! must keep the peak and the retained RSS within the server's budget. Before password hashing
//! had its own bounded pool, the same burst took the server from 38 MB to 7 GB.
//!
//! `cargo test --test memory -- --nocapture` prints the figures.

#[path = "contract_check.rs"]
mod contract_check;
#[path = "helpers/mod.rs"]
#[allow(dead_code, unused_imports)]
mod helpers;
#[path = "rosters.rs"]
#[allow(dead_code)]
mod rosters;

use futures_util::StreamExt;
use helpers::{spawn_app, ADMIN_PASSWORD, ADMIN_PHONE};
use reqwest::StatusCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The server's budget above its idle resident set, for 64 logins in flight: the hashing pool
/// (a core's worth of 19 MiB argon2 buffers) and the requests themselves, with room to spare.
const BUDGET_MIB: u64 = 160;

/// (VmRSS, VmHWM) of this process in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test]
async fn a_thousand_logins_at_64_in_flight_stay_within_the_memory_budget() {
    let app = spawn_app().await;
    // Warm up: the pool's threads and their buffers exist, the connections are open.
    for _ in 0..4 {
        app.login(ADMIN_PHONE, ADMIN_PASSWORD).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (idle, _) = rss_kib();
    let peak = Arc::new(AtomicU64::new(idle));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib().0, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let statuses: Vec<StatusCode> = futures_util::stream::iter(0..1000)
        .map(|_| async { app.login_res(ADMIN_PHONE, ADMIN_PASSWORD).await.status })
        .buffer_unordered(64)
        .collect()
        .await;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.await.expect("sampler");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (retained, _) = rss_kib();
    let peak = peak.load(Ordering::Relaxed);
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    eprintln!(
        "1000 logins, 64 in flight, {}: {:.1} s ({:.0}/s), {ok} ok; RSS idle {} MiB, peak {} MiB, 2 s later {} MiB",
        helpers::engine(),
        took.as_secs_f64(),
        1000.0 / took.as_secs_f64(),
        idle / 1024,
        peak / 1024,
        retained / 1024
    );
    assert_eq!(ok, 1000, "every login succeeds: {statuses:?}");
    assert!(
        peak - idle < BUDGET_MIB * 1024,
        "peak {} MiB over an idle {} MiB",
        peak / 1024,
        idle / 1024
    );
    assert!(
        retained.saturating_sub(idle) < BUDGET_MIB * 1024,
        "{} MiB retained over an idle {} MiB",
        retained / 1024,
        idle / 1024
    );
}

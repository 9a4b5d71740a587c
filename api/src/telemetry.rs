//! Logs and metrics. Logs: human-readable by default, JSON lines when
//! `YUNLIAN_LOG_FORMAT=json`, colour only on a terminal; every line of a request carries its
//! request id (the request span). Metrics: one Prometheus recorder per process, rendered at
//! `/metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// For tests: logs only when `TEST_LOG` is set.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init(false);
    }
}

/// Latency buckets, in seconds: a pull is milliseconds, an import seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's metrics recorder, installed on first use (`None` if another recorder was
/// installed first, which only an embedding program would do).
pub fn metrics() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            upkeep(handle.clone());
            Some(handle)
        })
        .as_ref()
}

/// Drains the histograms every five seconds, as the exporter's own `install` would: a
/// histogram keeps every value recorded until the next drain, so on a server nobody scrapes (a
/// township's) the request-duration histogram grew by about 8 bytes a request for as long as
/// the process lived (part of the creep the soak measured; see the README's Memory).
fn upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("yunlian-metrics".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started");
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "yunlian_http_requests_total",
        "Requests by operationId and status class"
    );
    describe_histogram!(
        "yunlian_http_request_duration_seconds",
        Unit::Seconds,
        "Request latency by operationId"
    );
    describe_gauge!(
        "yunlian_db_pool_connections",
        "Database connections by state (in_use, idle, max)"
    );
    describe_gauge!(
        "yunlian_db_pool_waiting",
        "Requests waiting for a database connection"
    );
    describe_gauge!(
        "yunlian_outbox_backlog",
        "Committed events not yet relayed to the bus"
    );
    describe_gauge!(
        "yunlian_outbox_lag_seconds",
        Unit::Seconds,
        "Age of the oldest unrelayed event"
    );
    describe_counter!(
        "yunlian_job_runs_total",
        "Job rounds by job and outcome (ok, failed, skipped: another replica held the lease)"
    );
    describe_gauge!(
        "yunlian_job_lease_held",
        "1 while this replica holds the job's lease for a round"
    );
    describe_counter!("yunlian_sync_pushes_total", "Sync pushes received");
    describe_counter!(
        "yunlian_sync_mutations_total",
        "Pushed mutations by outcome (applied, rejected, duplicate)"
    );
    describe_counter!(
        "yunlian_sync_rows_pulled_total",
        "Rows sent to phones by pulls"
    );
    describe_gauge!(
        "yunlian_sse_connections",
        "Phones connected to this replica's event stream"
    );
    describe_counter!(
        "yunlian_push_deliveries_total",
        "Push deliveries by outcome (sent, retry, dead)"
    );
    describe_gauge!(
        "yunlian_disk_free_bytes",
        "Free space on the data directory's filesystem"
    );
    describe_counter!(
        "yunlian_storage_full_total",
        "Writes refused because the disk was full"
    );
}

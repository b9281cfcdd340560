//! Prometheus metrics: names in one place, one recorder per process.
//!
//! The API serves `/metrics`; a worker serves its own on `WORKER_METRICS_ADDR`
//! when set (the events — failures, retries, reaped leases — happen there).

use std::{net::SocketAddr, sync::OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Jobs by state (API, read from Postgres at each scrape). Label `state`.
pub const JOBS: &str = "prostream_jobs";
/// Deliveries waiting in Redis (API, at each scrape).
pub const QUEUE_DEPTH: &str = "prostream_queue_depth";
/// Uploads answered by the API. Label `result`: `accepted` or the refusal code.
pub const UPLOADS: &str = "prostream_uploads_total";
/// Claim-to-end wall time of a job attempt (worker). Label `outcome`.
pub const JOB_DURATION: &str = "prostream_job_duration_seconds";
/// Seconds of source encoded per second of wall time (worker): above 1 is faster than real time.
pub const ENCODE_SPEED: &str = "prostream_encode_speed_ratio";
/// Job attempts that ended, by `outcome` (ready, failed, retrying, handed_back, lost).
pub const ATTEMPTS: &str = "prostream_job_attempts_total";
/// Failed jobs (no attempt left, or bad input), by error `code`.
pub const FAILURES: &str = "prostream_job_failures_total";
/// Attempts queued again after a transient failure, by error `code`.
pub const RETRIES: &str = "prostream_job_retries_total";
/// Jobs whose lease expired, by `result` (requeued, failed).
pub const REAPED: &str = "prostream_leases_reaped_total";
/// Queued jobs pushed to Redis again by the reconciler.
pub const RECONCILED: &str = "prostream_jobs_reconciled_total";
/// Leftovers of dead attempts and abandoned uploads removed.
pub const SWEPT: &str = "prostream_files_swept_total";
/// Webhook delivery attempts (API), by `result`: `delivered`, `retried` (failed, tried again
/// later) or `failed` (failed for good: the retry window is over).
pub const WEBHOOK_DELIVERIES: &str = "prostream_webhook_attempts_total";
/// Background loops running (1 each while it runs), by `task`: the API's `url-downloader`,
/// `webhook-deliverer`, `upload-sweep`; the worker's `health-file`, `housekeeping`.
pub const BACKGROUND_TASKS: &str = "prostream_background_tasks";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

fn builder() -> PrometheusBuilder {
    let seconds = [
        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
    ];
    let speed = [0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(JOB_DURATION.into()), &seconds)
        .expect("buckets are not empty")
        .set_buckets_for_metric(Matcher::Full(ENCODE_SPEED.into()), &speed)
        .expect("buckets are not empty")
}

/// The process' recorder, installed on first use; `render()` gives the text format.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = builder().build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist already (a test binary); ours still renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Installs the recorder with its own HTTP listener (for the worker).
pub fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    use anyhow::Context;
    builder()
        .with_http_listener(addr)
        .install()
        .with_context(|| format!("cannot serve metrics on {addr} (WORKER_METRICS_ADDR)"))
}

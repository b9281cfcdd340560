//! The apalis worker loop around [`pipeline::process`], the health file and shutdown.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use apalis::prelude::{
    AbortError, BackendExt, BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt,
};
use prostream::queue::TranscodeTask;

use crate::pipeline::{self, JobContext};

/// An idle worker asks Redis for work this often (apalis' default is its heartbeat, 5 s here).
/// apalis-redis announces no push to idle workers (every push lands in the
/// scheduled set, which publishes nothing), so pickup latency is about half
/// this interval: `scripts/bench` measured p50 135 ms at 250 ms. One fetch
/// script per 50 ms per idle worker is nothing for Redis.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often the health file is refreshed.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// A name no other process has used: apalis-redis refuses a worker name that
/// is still registered, so a restart under the same name would fail.
pub fn unique_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    let nonce = uuid::Uuid::now_v7().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &nonce[20..])
}

/// Consumes the queue until `shutdown` fires. Running jobs are handed back
/// (queued again, attempt not charged) rather than drained.
pub async fn run(ctx: JobContext, concurrency: usize, queue_name: &str) -> anyhow::Result<()> {
    let ctx = Arc::new(ctx);
    let shutdown = ctx.shutdown.clone();
    let storage = ctx.queue.clone();
    let base_name = ctx.worker_id.clone();
    let restarts = Arc::new(AtomicUsize::new(0));
    let asked_to_stop = Arc::new(AtomicBool::new(false));
    tracing::info!(worker = %base_name, queue = queue_name, concurrency, "worker started");

    let monitor = Monitor::new()
        .register(move |_| {
            // A fresh name on every (re)start; see `unique_name`.
            let n = restarts.fetch_add(1, Ordering::Relaxed);
            WorkerBuilder::new(format!("{base_name}-{n}"))
                .backend(storage.clone().poll_with_interval(POLL_INTERVAL))
                .concurrency(concurrency)
                .data(ctx.clone())
                .build(handle)
        })
        .should_restart(|worker, error| {
            tracing::error!(worker = worker.name(), %error, "queue consumer stopped; restarting");
            true
        });
    let stop_flag = asked_to_stop.clone();
    monitor
        .run_with_signal(async move {
            shutdown.cancelled().await;
            stop_flag.store(true, Ordering::Relaxed);
            Ok(())
        })
        .await?;
    // apalis returns Ok even when its workers died on their own (docs/design.md, "Pitfalls"):
    // exit non-zero then, so the supervisor restarts us.
    anyhow::ensure!(
        asked_to_stop.load(Ordering::Relaxed),
        "the worker loop ended without a shutdown request"
    );
    tracing::info!("worker stopped");
    Ok(())
}

/// The apalis handler. Outcomes are recorded in Postgres; an `Err` here is
/// only for failures to record them, and is never retried by apalis (its
/// Redis backend would retry 25 times): the Postgres lease brings the job back.
async fn handle(task: TranscodeTask, ctx: Data<Arc<JobContext>>) -> Result<(), BoxDynError> {
    match pipeline::process(&ctx, task.job_id).await {
        Ok(_) => Ok(()),
        Err(err) => {
            tracing::error!(job_id = %task.job_id, error = ?err, "job could not be processed");
            Err(AbortError::new(err.into_boxed_dyn_error()).into())
        }
    }
}

/// Touches `path` every few seconds while Postgres and Redis answer.
pub async fn keep_health_file(ctx: JobContext, path: std::path::PathBuf) {
    let mut tick = tokio::time::interval(HEALTH_INTERVAL);
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => {
                let _ = tokio::fs::remove_file(&path).await;
                return;
            }
            _ = tick.tick() => {}
        }
        let pg = sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&ctx.pool)
            .await;
        let mut redis = ctx.queue.clone();
        let rd = redis::cmd("PING")
            .query_async::<String>(redis.get_connection())
            .await;
        match (pg, rd) {
            (Ok(_), Ok(_)) => {
                if let Err(e) = tokio::fs::write(&path, b"ok\n").await {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write the health file");
                }
            }
            (pg, rd) => {
                tracing::warn!(postgres = ?pg.err(), redis = ?rd.err(), "dependencies unreachable")
            }
        }
    }
}

/// Exit status of `prostream-worker healthcheck`: the health file is fresh.
pub fn check_health_file(path: &std::path::Path, max_age: Duration) -> anyhow::Result<()> {
    use anyhow::Context;
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| {
            format!(
                "no health file at {}: is the worker running?",
                path.display()
            )
        })?;
    let age = modified.elapsed().unwrap_or_default();
    anyhow::ensure!(
        age <= max_age,
        "the health file is {}s old: the worker cannot reach Postgres or Redis, or is stuck",
        age.as_secs()
    );
    Ok(())
}

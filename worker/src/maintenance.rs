//! The housekeeping every worker runs on a timer, so that no job is lost or
//! stuck and nothing is left on disk or in Redis:
//!
//! - **reaper**: jobs whose lease ran out (their worker was killed or cut
//!   off) go back to the queue, or fail once their attempts are used up;
//! - **reconciler**: queued jobs that are due and were not pushed recently
//!   are pushed to Redis again (a flushed or restarted Redis, a failed push,
//!   a retry whose backoff has passed);
//! - **sweeper**: work directories of dead attempts, half-received uploads
//!   and swapped-out outputs are deleted; finished tasks are dropped from Redis.
//!
//! Every replica runs it; `FOR UPDATE SKIP LOCKED` keeps them from handling
//! the same job twice, and a double push is harmless (the claim decides).

use std::{
    collections::HashSet,
    path::Path,
    time::{Duration, SystemTime},
};

use prostream::{
    db::{self, JobState},
    queue,
    storage::{self, MediaRoot},
    telemetry,
};
use uuid::Uuid;

use crate::pipeline::JobContext;

/// Jobs handled per query, so one tick stays short under a large backlog.
const BATCH: i64 = 100;
/// Leftovers younger than this may belong to work that is just starting.
const SWEEP_MIN_AGE: Duration = Duration::from_secs(60);
/// An upload that received no bytes for this long was abandoned by the API that took it.
const INCOMING_MAX_IDLE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub interval: Duration,
    /// A queued job not claimed within this long after its last push is pushed again.
    pub reconcile_after: Duration,
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    pub requeued: usize,
    pub failed: usize,
    pub pushed: usize,
    pub swept: usize,
}

/// Runs [`tick`] every `settings.interval` until the worker shuts down.
pub async fn run(ctx: JobContext, settings: Settings) {
    let mut timer = tokio::time::interval(settings.interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            _ = timer.tick() => {}
        }
        match tick(&ctx, settings).await {
            Ok(t) if t != Tick::default() => tracing::info!(?t, "maintenance"),
            Ok(_) => {}
            // Postgres or Redis away: try again next tick.
            Err(err) => tracing::warn!(error = format!("{err:#}"), "maintenance failed"),
        }
    }
}

pub async fn tick(ctx: &JobContext, settings: Settings) -> anyhow::Result<Tick> {
    let mut report = Tick::default();
    let mut conn = ctx.pool.acquire().await?;
    for reaped in db::jobs::reap_expired(&mut conn, BATCH).await? {
        if reaped.state == JobState::Failed {
            report.failed += 1;
            tracing::warn!(job_id = %reaped.job_id, "lease expired on the last attempt; job failed");
        } else {
            report.requeued += 1;
            tracing::warn!(job_id = %reaped.job_id, "lease expired; job queued again");
        }
    }
    for job_id in db::jobs::take_due_for_push(&mut conn, settings.reconcile_after, BATCH).await? {
        // Marked pushed already: if this push fails, the next round after
        // `reconcile_after` tries again.
        queue::push(&ctx.queue, job_id).await?;
        report.pushed += 1;
    }
    let running: HashSet<(Uuid, i32)> = db::jobs::running_attempts(&mut conn)
        .await?
        .into_iter()
        .collect();
    drop(conn);
    report.swept += sweep_work(&ctx.media, &running).await?;
    report.swept += sweep_incoming(&ctx.media).await?;
    metrics::counter!(telemetry::REAPED, "result" => "requeued").increment(report.requeued as u64);
    metrics::counter!(telemetry::REAPED, "result" => "failed").increment(report.failed as u64);
    metrics::counter!(telemetry::RECONCILED).increment(report.pushed as u64);
    metrics::counter!(telemetry::SWEPT).increment(report.swept as u64);
    let mut redis = ctx.queue.clone();
    queue::prune_finished(
        redis.get_connection(),
        ctx.queue.get_config().queue.as_ref(),
        500,
    )
    .await?;
    Ok(report)
}

/// Removes `work/` entries that belong to no running attempt.
async fn sweep_work(media: &MediaRoot, running: &HashSet<(Uuid, i32)>) -> anyhow::Result<usize> {
    let mut swept = 0;
    let mut entries = tokio::fs::read_dir(media.root().join("work")).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let live = parse_attempt_dir(&name).is_some_and(|attempt| running.contains(&attempt));
        if !live && older_than(&entry.path(), SWEEP_MIN_AGE).await {
            storage::remove_dir_if_exists(&entry.path()).await?;
            tracing::info!(dir = %name, "removed the leftovers of a dead attempt");
            swept += 1;
        }
    }
    Ok(swept)
}

/// Removes uploads that stopped arriving long ago (the API that took them died).
async fn sweep_incoming(media: &MediaRoot) -> anyhow::Result<usize> {
    let mut swept = 0;
    let mut entries = tokio::fs::read_dir(media.uploads_dir()).await?;
    while let Some(entry) = entries.next_entry().await? {
        let incoming = entry
            .file_name()
            .to_string_lossy()
            .starts_with(".incoming-");
        if incoming && older_than(&entry.path(), INCOMING_MAX_IDLE).await {
            storage::remove_file_if_exists(&entry.path()).await?;
            swept += 1;
        }
    }
    Ok(swept)
}

/// `{job_id}-{attempt}`, the name of a work directory.
fn parse_attempt_dir(name: &str) -> Option<(Uuid, i32)> {
    let (job, attempt) = name.rsplit_once('-')?;
    Some((job.parse().ok()?, attempt.parse().ok()?))
}

async fn older_than(path: &Path, age: Duration) -> bool {
    tokio::fs::metadata(path)
        .await
        .and_then(|m| m.modified())
        .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_directory_names_parse_to_job_and_attempt() {
        let id = Uuid::now_v7();
        assert_eq!(parse_attempt_dir(&format!("{id}-3")), Some((id, 3)));
        assert_eq!(parse_attempt_dir(&format!("replaced-{id}-{id}")), None);
        assert_eq!(parse_attempt_dir("junk"), None);
    }
}

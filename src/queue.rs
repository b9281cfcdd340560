//! The Redis delivery channel (apalis-redis), shared by the API (push) and
//! the worker (consume).
//!
//! Redis only carries job ids; Postgres decides who runs what. Every push gets
//! a fresh task id so a re-push of the same job is never swallowed by
//! apalis-redis' `HSETNX` on the task id: the Postgres claim deduplicates.

use std::time::Duration;

use apalis::prelude::{TaskSink, TaskSinkError};
use apalis_redis::{Client, ConnectionManager, RedisStorage};
use redis::aio::ConnectionManagerConfig;
use serde::{Deserialize, Serialize};

use crate::ids::JobId;

/// The payload of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscodeTask {
    pub job_id: JobId,
}

pub type TranscodeQueue = RedisStorage<TranscodeTask>;

/// A connection manager that reconnects on its own and tolerates slow
/// replies: apalis-redis stops a worker for good on the first Redis error,
/// and the client's default 500 ms response timeout makes that likely.
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    use anyhow::Context;
    let client =
        Client::open(url).with_context(|| format!("REDIS_URL {url:?} is not a valid Redis URL"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)))
        .set_number_of_retries(6)
        .set_max_delay(Duration::from_secs(2));
    client
        .get_connection_manager_with_config(config)
        .await
        .with_context(|| format!("cannot connect to Redis at {url}; is it running?"))
}

/// The apalis-redis settings for minute-long jobs (docs/design.md, "Pitfalls"):
/// one job per fetch (no prefetching while other replicas idle) and a short
/// orphan window. Postgres leases remain the real guarantee.
pub fn storage_config(queue_name: &str) -> apalis_redis::Config {
    apalis_redis::Config::default()
        .queue(queue_name)
        .batch_size(1)
        .heartbeat_interval(Duration::from_secs(5))
        .missed_heartbeats(4)
}

pub fn storage(conn: ConnectionManager, queue_name: &str) -> TranscodeQueue {
    RedisStorage::new(conn).with_config(storage_config(queue_name))
}

/// Pushes one delivery of `job_id`. The job row must already be committed
/// (invariant 1 in docs/design.md).
pub async fn push(
    queue: &TranscodeQueue,
    job_id: JobId,
) -> Result<(), TaskSinkError<apalis_redis::Error>> {
    let mut queue = queue.clone();
    queue.push(TranscodeTask { job_id }).await
}

/// Forgets up to `max` finished tasks: apalis-redis keeps every task's payload
/// and metadata after it is done, so without this Redis grows with every job.
/// Postgres holds the record; Redis needs none of it.
pub async fn prune_finished(
    conn: &mut ConnectionManager,
    queue_name: &str,
    max: usize,
) -> redis::RedisResult<usize> {
    let config = storage_config(queue_name);
    let mut pruned = 0;
    for set in [config.done_jobs_set(), config.dead_jobs_set()] {
        let ids: Vec<String> = redis::cmd("SPOP")
            .arg(&set)
            .arg(max)
            .query_async(conn)
            .await?;
        if ids.is_empty() {
            continue;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("HDEL")
            .arg(config.job_data_hash())
            .arg(&ids)
            .ignore();
        for id in &ids {
            pipe.cmd("DEL")
                .arg(format!("{}:{id}", config.job_meta_hash()))
                .ignore();
        }
        pipe.query_async::<()>(conn).await?;
        pruned += ids.len();
    }
    Ok(pruned)
}

/// Deliveries waiting in Redis (due or scheduled).
pub async fn depth(conn: &mut ConnectionManager, queue_name: &str) -> redis::RedisResult<u64> {
    let config = storage_config(queue_name);
    let (active, scheduled): (u64, u64) = redis::pipe()
        .cmd("LLEN")
        .arg(config.active_jobs_list())
        .cmd("ZCARD")
        .arg(config.scheduled_jobs_set())
        .query_async(conn)
        .await?;
    Ok(active + scheduled)
}

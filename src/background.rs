//! The long-running loops of a process (the API's URL downloader, webhook deliverer and upload
//! sweep; the worker's health file and housekeeping), started by name in one place and stopped
//! together in one place.
//!
//! Each loop runs in a span with its name (`task`), counts in the gauge
//! `prostream_background_tasks{task}` while it runs, and logs when it starts and stops, so a
//! loop that died or never started shows in the logs and in the metrics.

use std::{future::Future, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::telemetry;

/// The loops of one process.
pub struct Background {
    stop: CancellationToken,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Background {
    fn default() -> Self {
        Self::new()
    }
}

impl Background {
    pub fn new() -> Self {
        Self {
            stop: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// Starts the loop `name`: `run` gets the token that tells it to stop, and returns when it
    /// has.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let running = run(self.stop.child_token());
        let task = async move {
            tracing::info!("started");
            metrics::gauge!(telemetry::BACKGROUND_TASKS, "task" => name).increment(1.0);
            running.await;
            metrics::gauge!(telemetry::BACKGROUND_TASKS, "task" => name).decrement(1.0);
            tracing::info!("stopped");
        }
        .instrument(tracing::info_span!("background", task = name));
        self.tasks.push((name, tokio::spawn(task)));
    }

    /// The names of the loops started, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.tasks.iter().map(|(name, _)| *name).collect()
    }

    /// Tells every loop to stop and waits for each, `grace` at most in all; a loop still running
    /// then is aborted and named in the log.
    pub async fn stop(self, grace: Duration) {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        for (name, mut handle) in self.tasks {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::error!(task = name, error = %err, "background task failed")
                }
                Err(_) => {
                    tracing::warn!(
                        task = name,
                        ?grace,
                        "background task did not stop in time; aborted"
                    );
                    handle.abort();
                }
            }
        }
    }
}

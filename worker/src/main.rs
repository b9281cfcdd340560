//! `prostream-worker`: the transcoding worker.

use std::time::Duration;

use clap::{Parser, Subcommand};
use prostream_worker::{app::Worker, config::WorkerConfig, runner};

#[derive(Parser)]
#[command(
    name = "prostream-worker",
    version,
    about = "ProStream worker: transcodes uploads to HLS"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: WorkerConfig,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker (the default).
    Run,
    /// Exit 0 when the running worker refreshed its health file in the last 30 s.
    Healthcheck,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = cli.config;
    if let Some(Command::Healthcheck) = cli.command {
        return runner::check_health_file(&config.health_file, Duration::from_secs(30));
    }
    config.log.init();
    if let Some(addr) = config.metrics_addr {
        // Its own listener thread: it ends with the process.
        prostream::telemetry::serve(addr)?;
    }
    Worker::connect(config)
        .await?
        .run_until(wait_for_signal())
        .await
}

async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

//! `prostream-worker`: the transcoding worker.

use std::time::Duration;

use clap::{Parser, Subcommand};
use prostream_worker::{config::WorkerConfig, maintenance, runner};
use tokio_util::sync::CancellationToken;

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
        prostream::telemetry::serve(addr)?;
    }
    let shutdown = CancellationToken::new();
    let ctx = runner::context(&config, shutdown.clone()).await?;
    let health = tokio::spawn(runner::keep_health_file(
        ctx.clone(),
        config.health_file.clone(),
    ));
    let housekeeping = tokio::spawn(maintenance::run(ctx.clone(), config.maintenance()));
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: handing running jobs back");
        shutdown.cancel();
    });
    let result = runner::run(
        ctx,
        usize::from(config.concurrency),
        &config.common.queue_name,
    )
    .await;
    signals.abort();
    let _ = tokio::join!(health, housekeeping);
    result
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

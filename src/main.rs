//! `prostream`: the API server, its operator commands, and a client for it.

mod cli;

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use prostream::{
    app::{ApiConfig, App},
    config::{CommonConfig, LogConfig},
    db,
};

#[derive(Parser)]
#[command(
    name = "prostream",
    version,
    about = "ProStream API: upload videos, get HLS back"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve(Box<ServeArgs>),
    /// Apply the database migrations and exit.
    Migrate {
        #[command(flatten)]
        common: CommonConfig,
    },
    /// Create, list or revoke API keys (talks to Postgres directly).
    Keys(cli::keys::KeysArgs),
    /// Upload a file (resumable: run the same command again after an interruption).
    Upload(cli::upload::UploadArgs),
    /// List, inspect, cancel, retry or delete videos.
    Videos(cli::videos::VideosArgs),
    /// Print the OpenAPI document (as served at /openapi.json) and exit.
    Openapi,
    /// Write a new random playback signing key (`kid:secret`) to FILE, unless FILE already holds
    /// one (Compose runs this at every start: the key is made once and kept in a volume).
    InitSigningKey {
        /// Where the key goes (created with mode 600); PLAYBACK_SIGNING_KEYS_FILE reads it.
        file: std::path::PathBuf,
    },
    /// Exit 0 when the API at BIND_ADDR answers /healthz (for container health checks).
    Healthcheck {
        /// The API's address; 0.0.0.0 is checked through 127.0.0.1.
        #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
        bind_addr: SocketAddr,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    api: ApiConfig,
    #[command(flatten)]
    log: LogConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Upload(args) => exit_on_client_error(cli::upload::run(args).await),
        Command::Videos(args) => exit_on_client_error(cli::videos::run(args).await),
        Command::Serve(args) => serve(*args).await,
        Command::Keys(args) => cli::keys::run(args).await,
        Command::Migrate { common } => {
            LogConfig {
                log_format: "text".into(),
            }
            .init();
            let pool = db::connect(&common.database_url, 2).await?;
            db::MIGRATOR
                .run(&pool)
                .await
                .context("applying migrations failed")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Openapi => {
            println!("{}", prostream::http::openapi().to_pretty_json()?);
            Ok(())
        }
        Command::InitSigningKey { file } => init_signing_key(&file),
        Command::Healthcheck { bind_addr } => healthcheck(bind_addr).await,
    }
}

/// A client command's failure is printed as the server's problem `code` and
/// `detail`, as they are, and the process exits 1.
fn exit_on_client_error(result: Result<(), cli::CliError>) -> anyhow::Result<()> {
    if let Err(err) = result {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    args.log.init();
    let app = App::connect(args.api).await?;
    app.bind().await?.run_until(shutdown_signal()).await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// Writes `compose:<32 random bytes, base64url>` to `file` (mode 600) unless it holds a key.
fn init_signing_key(file: &std::path::Path) -> anyhow::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    if std::fs::metadata(file).is_ok_and(|m| m.len() > 0) {
        println!("{} already holds a playback signing key", file.display());
        return Ok(());
    }
    let key = prostream::playback::SigningKey::generate("compose");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("cannot write {}", file.display()))?;
    writeln!(out, "{}", key.to_spec())?;
    out.sync_all()?;
    println!("made a playback signing key in {}", file.display());
    Ok(())
}

async fn healthcheck(bind_addr: SocketAddr) -> anyhow::Result<()> {
    let mut addr = bind_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let url = format!("http://{addr}/healthz");
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        // Plain http to itself: no trust store to load (an empty one, not the system's).
        .tls_certs_only([])
        .build()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("{url} did not answer"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    Ok(())
}

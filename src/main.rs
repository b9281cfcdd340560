//! `prostream`: the API server, its operator commands, and a client for it.

mod cli;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use prostream::{
    config::{CommonConfig, LogConfig, MediaLimits, OwnerPolicy, PlaybackConfig, StorageBackend},
    db,
    http::{AppState, api_router, auth::AuthMode},
    queue, storage,
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
    common: CommonConfig,
    #[command(flatten)]
    limits: MediaLimits,
    #[command(flatten)]
    log: LogConfig,
    #[command(flatten)]
    ingest: prostream::http::url_ingest::IngestConfig,
    #[command(flatten)]
    policy: OwnerPolicy,
    #[command(flatten)]
    playback: PlaybackConfig,
    #[command(flatten)]
    webhooks: prostream::webhooks::WebhookConfig,
    #[command(flatten)]
    connections: prostream::http::serve::ServeConfig,
    /// Address the API listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    bind_addr: SocketAddr,
    /// Address the API serves its Prometheus metrics on (`GET /metrics`), apart from BIND_ADDR so
    /// that they are not public; like the worker's WORKER_METRICS_ADDR.
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9090")]
    metrics_addr: SocketAddr,
    /// Origins allowed by CORS: `*` or a comma-separated list.
    #[arg(long, env = "CORS_ORIGIN", default_value = "*")]
    cors_origin: String,
    /// Attempts a transcode gets (transient failures are retried) before it is `failed`.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(i32).range(1..=100))]
    max_attempts: i32,
    /// `required`: every /v1 request needs an API key. `open`: requests without a key act as an
    /// admin (a local demo only; never expose it).
    #[arg(long, env = "AUTH_MODE", value_enum, default_value = "required")]
    auth_mode: AuthMode,
    /// Seconds in-flight requests (uploads included) get to finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    shutdown_grace_secs: u64,
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
    // Without a key private videos could not be played at all (or, with a key made up here,
    // only until a restart and only on this replica), and with a published one anyone could
    // play them: refuse to start instead.
    let loaded = args
        .playback
        .load()
        .context("cannot sign private videos' playback URLs")?;
    if !loaded.published.is_empty() {
        tracing::warn!(
            keys = ?loaded.published,
            "INSECURE: ALLOW_PUBLISHED_SIGNING_KEY is set and PLAYBACK_SIGNING_KEYS holds a key \
             published in ProStream's repository: ANYONE CAN SIGN PLAYBACK URLS AND WATCH YOUR \
             PRIVATE VIDEOS. A local demo only; set your own key anywhere reachable."
        );
    }
    let playback = loaded.signer;
    tracing::info!(
        signing_key = playback.signing_key_id(),
        ttl_secs = playback.ttl().as_secs(),
        "private videos' playback URLs are signed"
    );
    let common = &args.common;
    let pool = db::connect(&common.database_url, common.database_max_connections).await?;
    let redis = queue::connect(&common.redis_url).await?;
    let (media, store) = storage::open(&common.storage, &common.media_root).await?;
    let state = AppState {
        pool,
        queue: queue::storage(redis.clone(), &common.queue_name),
        redis,
        media,
        store,
        limits: Arc::new(args.limits.clone()),
        ffprobe: Arc::new(common.ffprobe_path.clone()),
        probe_timeout: common.probe_timeout(),
        max_attempts: args.max_attempts,
        downloads: Arc::new(prostream::http::url_ingest::Downloads::new(
            &args.ingest,
            args.limits.max_upload_bytes,
        )?),
        auth: args.auth_mode,
        policy: Arc::new(args.policy.clone()),
        playback,
        webhooks: Arc::new(prostream::webhooks::Webhooks::new(&args.webhooks)?),
        public_videos: Default::default(),
        segment_cache: Default::default(),
    };
    if args.auth_mode == AuthMode::Open {
        tracing::warn!(
            "AUTH_MODE=open: requests without an API key act as an ADMIN and see every video. \
             Use this for a local demo only, never on a reachable address."
        );
    }
    let stop_downloads = tokio_util::sync::CancellationToken::new();
    prostream::http::url_ingest::spawn_downloader(state.clone(), stop_downloads.clone());
    prostream::webhooks::spawn_deliverer(
        state.pool.clone(),
        state.webhooks.clone(),
        stop_downloads.clone(),
    );
    if state.store.backend() == StorageBackend::S3 {
        // This disk is the API's own: no worker sweeps its abandoned uploads.
        storage::sweep::spawn(
            state.media.clone(),
            state.pool.clone(),
            stop_downloads.clone(),
        );
    }
    let metrics = prostream::http::metrics_router(state.clone());
    let app = api_router(state, &args.cors_origin);
    // Bound first: once the API says it listens, both listeners answer.
    let metrics_listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {} (METRICS_ADDR)", args.metrics_addr))?;
    tracing::info!(addr = %metrics_listener.local_addr()?, "metrics served at /metrics");
    let listener = tokio::net::TcpListener::bind(args.bind_addr)
        .await
        .with_context(|| format!("cannot listen on {} (BIND_ADDR)", args.bind_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "ProStream API listening");
    // Scrapes are short: this listener simply ends with the process.
    tokio::spawn(async move {
        if let Err(err) = axum::serve(metrics_listener, metrics).await {
            tracing::error!(error = %err, "the metrics listener failed");
        }
    });

    let grace = Duration::from_secs(args.shutdown_grace_secs);
    let server = prostream::http::serve::serve(listener, app, &args.connections, shutdown_signal());
    // After the signal the server stops accepting and drains; the grace
    // period bounds how long a slow upload can hold the process.
    tokio::select! {
        () = server => {}
        () = async { shutdown_signal().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "in-flight requests did not finish within the grace period");
        }
    }
    // Running downloads and webhook attempts stop with the process; their leases lapse and
    // another instance (or this one, restarted) takes them over.
    stop_downloads.cancel();
    tracing::info!("ProStream API stopped");
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

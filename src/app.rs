//! The API's composition root: `prostream serve` and the integration tests build and run the
//! API through exactly these functions, so what runs in a test is what runs in production.
//!
//! [`App::build`] turns the settings into the handlers' state (connecting to Redis, opening the
//! store, loading the signing keys); [`App::bind`] takes the two listening sockets (the API and
//! its metrics); [`Bound::run_until`] serves both and starts every background loop, all in one
//! place ([`Background`]), until the shutdown future resolves; then it drains requests for the
//! grace period and stops each loop.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Args;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    background::Background,
    config::{CommonConfig, MediaLimits, OwnerPolicy, PlaybackConfig, StorageBackend},
    db,
    fetch::{ExtraRoots, OutboundTlsConfig},
    http::{self, AppState, Shared, auth::AuthMode, serve::ServeConfig},
    ingest::{self, Ingest, IngestConfig},
    playback::Signer,
    queue, storage,
    webhooks::{self, WebhookConfig, Webhooks},
};

/// Everything `prostream serve` is configured with (flags or environment variables).
/// (No `Debug`: it holds the playback signing keys.)
#[derive(Clone, Args)]
pub struct ApiConfig {
    #[command(flatten)]
    pub common: CommonConfig,
    #[command(flatten)]
    pub limits: MediaLimits,
    #[command(flatten)]
    pub ingest: IngestConfig,
    #[command(flatten)]
    pub policy: OwnerPolicy,
    #[command(flatten)]
    pub playback: PlaybackConfig,
    #[command(flatten)]
    pub webhooks: WebhookConfig,
    #[command(flatten)]
    pub outbound_tls: OutboundTlsConfig,
    #[command(flatten)]
    pub connections: ServeConfig,
    /// Address the API listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: SocketAddr,
    /// Address the API serves its Prometheus metrics on (`GET /metrics`), apart from BIND_ADDR so
    /// that they are not public; like the worker's WORKER_METRICS_ADDR.
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9090")]
    pub metrics_addr: SocketAddr,
    /// Origins allowed by CORS: `*` or a comma-separated list.
    #[arg(long, env = "CORS_ORIGIN", default_value = "*")]
    pub cors_origin: String,
    /// Attempts a transcode gets (transient failures are retried) before it is `failed`.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(i32).range(1..=100))]
    pub max_attempts: i32,
    /// `required`: every /v1 request needs an API key. `open`: requests without a key act as an
    /// admin (a local demo only; never expose it).
    #[arg(long, env = "AUTH_MODE", value_enum, default_value = "required")]
    pub auth_mode: AuthMode,
    /// Seconds in-flight requests (uploads included) get to finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
}

/// Background loops get this long to stop once the server has drained.
const BACKGROUND_STOP_GRACE: Duration = Duration::from_secs(10);

/// The API, built and not yet listening.
pub struct App {
    state: AppState,
    config: ApiConfig,
}

impl App {
    /// Connects to Postgres with the configured pool, then builds as [`App::build`]. Settings
    /// that cannot work (no signing key, a published one, an unreadable OUTBOUND_CA_BUNDLE) are
    /// refused before any connection.
    pub async fn connect(config: ApiConfig) -> anyhow::Result<Self> {
        let signer = load_signer(&config.playback)?;
        let roots = config.outbound_tls.load()?;
        let common = &config.common;
        let pool = db::connect(&common.database_url, common.database_max_connections).await?;
        Self::assemble(config, pool, signer, roots).await
    }

    /// Everything the handlers and the background loops share, from the settings and `pool`
    /// (a test passes its own database's).
    pub async fn build(config: ApiConfig, pool: PgPool) -> anyhow::Result<Self> {
        let signer = load_signer(&config.playback)?;
        let roots = config.outbound_tls.load()?;
        Self::assemble(config, pool, signer, roots).await
    }

    async fn assemble(
        config: ApiConfig,
        pool: PgPool,
        signer: Signer,
        roots: ExtraRoots,
    ) -> anyhow::Result<Self> {
        if config.auth_mode == AuthMode::Open {
            tracing::warn!(
                "AUTH_MODE=open: requests without an API key act as an ADMIN and see every \
                 video. Use this for a local demo only, never on a reachable address."
            );
        }
        let common = &config.common;
        let redis = queue::connect(&common.redis_url).await?;
        let queue = queue::storage(redis.clone(), &common.queue_name);
        let (media, store) = storage::open(&common.storage, &common.media_root).await?;
        let limits = Arc::new(config.limits.clone());
        let policy = Arc::new(config.policy.clone());
        let ingest = Ingest {
            pool: pool.clone(),
            queue: queue.clone(),
            media: media.clone(),
            store: store.clone(),
            limits: limits.clone(),
            ffprobe: Arc::new(common.ffprobe_path.clone()),
            probe_timeout: common.probe_timeout(),
            max_attempts: config.max_attempts,
            policy: policy.clone(),
            downloads: Arc::new(ingest::Downloads::new(
                &config.ingest,
                config.limits.max_upload_bytes,
                &roots,
            )?),
        };
        let state = AppState::new(Shared {
            pool,
            queue,
            redis,
            media,
            store,
            limits,
            ingest,
            auth: config.auth_mode,
            policy,
            playback: signer,
            webhooks: Arc::new(Webhooks::new(&config.webhooks, &roots)?),
            public_videos: Default::default(),
            segment_cache: Default::default(),
        });
        tracing::info!(
            signing_key = state.playback.signing_key_id(),
            ttl_secs = state.playback.ttl().as_secs(),
            "private videos' playback URLs are signed"
        );
        Ok(Self { state, config })
    }

    /// What the handlers share.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// For tests that run the API against a part of their own making (a store that is down,
    /// other signing keys): the loops and the server still start only in [`Bound::run_until`].
    pub fn state_mut(&mut self) -> &mut Shared {
        self.state.make_mut()
    }

    /// Takes the metrics and API addresses (metrics first: once the API says it listens, both
    /// answer). Port 0 picks a free port; [`Bound::api_addr`] says which.
    pub async fn bind(self) -> anyhow::Result<Bound> {
        let metrics = TcpListener::bind(self.config.metrics_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (METRICS_ADDR)",
                    self.config.metrics_addr
                )
            })?;
        let api = TcpListener::bind(self.config.bind_addr)
            .await
            .with_context(|| format!("cannot listen on {} (BIND_ADDR)", self.config.bind_addr))?;
        tracing::info!(addr = %metrics.local_addr()?, "metrics served at /metrics");
        tracing::info!(addr = %api.local_addr()?, "ProStream API listening");
        Ok(Bound {
            app: self,
            api,
            metrics,
        })
    }
}

/// The API with its sockets taken, about to serve.
pub struct Bound {
    app: App,
    api: TcpListener,
    metrics: TcpListener,
}

impl Bound {
    pub fn api_addr(&self) -> SocketAddr {
        self.api
            .local_addr()
            .expect("a bound socket has an address")
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// Serves until `shutdown` resolves, with every background loop running; then stops
    /// accepting, lets in-flight requests finish for SHUTDOWN_GRACE_SECS at most, and stops the
    /// loops. Downloads and webhook attempts cut short keep their leases, which lapse: another
    /// instance (or this one, restarted) takes them over.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let Bound { app, api, metrics } = self;
        let App { state, config } = app;
        let background = start_background(&state);
        let stopping = CancellationToken::new();
        let signal = stopping.clone();
        tokio::spawn(async move {
            shutdown.await;
            signal.cancel();
        });

        let metrics_app = http::metrics_router(state.clone());
        let metrics_stop = stopping.clone();
        // Scrapes are short: this listener ends at the signal without draining.
        let metrics_task = tokio::spawn(async move {
            let served = axum::serve(metrics, metrics_app)
                .with_graceful_shutdown(metrics_stop.cancelled_owned())
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "the metrics listener failed");
            }
        });
        let app = http::api_router(state, &config.cors_origin);
        let server = http::serve::serve(
            api,
            app,
            &config.connections,
            stopping.clone().cancelled_owned(),
        );
        let grace = Duration::from_secs(config.shutdown_grace_secs);
        // After the signal the server stops accepting and drains; the grace period bounds how
        // long a slow upload can hold the process.
        tokio::select! {
            () = server => {}
            () = async { stopping.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "in-flight requests did not finish within the grace period");
            }
        }
        metrics_task.abort();
        background.stop(BACKGROUND_STOP_GRACE).await;
        tracing::info!("ProStream API stopped");
    }
}

/// The playback signer. Without a key private videos could not be played at all (or, with a
/// key made up here, only until a restart and only on this replica), and with a published one
/// anyone could play them: refuse to start instead, unless the published key is explicitly
/// allowed for a demo.
fn load_signer(config: &PlaybackConfig) -> anyhow::Result<Signer> {
    let loaded = config
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
    Ok(loaded.signer)
}

/// Every loop the API runs beside its handlers; the only place they start.
fn start_background(state: &AppState) -> Background {
    let mut background = Background::new();
    let ingest = state.ingest.clone();
    background.spawn("url-downloader", |stop| {
        ingest::run_downloader(ingest, stop)
    });
    let (pool, hooks) = (state.pool.clone(), state.webhooks.clone());
    background.spawn("webhook-deliverer", |stop| {
        webhooks::run_deliverer(pool, hooks, stop)
    });
    if state.store.backend() == StorageBackend::S3 {
        // This disk is the API's own: no worker sweeps its abandoned uploads.
        let (media, pool) = (state.media.clone(), state.pool.clone());
        background.spawn("upload-sweep", |stop| {
            storage::sweep::run(media, pool, stop)
        });
    }
    background
}

//! Serving the router: hyper with a timer, so a client that dribbles its
//! request head (slowloris) or sits on an idle keep-alive connection is cut
//! off, and a graceful shutdown that stops accepting at once and lets
//! requests in flight finish. `prostream serve` and the test harness both
//! serve through [`serve`].

use std::{future::Future, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::{TcpListener, TcpStream};

/// How long a connection may take to send what it owes.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Seconds a client has to send a whole request head (request line and headers). The same
    /// timer runs while a keep-alive connection waits for its next request, so an idle
    /// connection is closed after this long too.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_secs: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 30,
        }
    }
}

impl ServeConfig {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting (new connections
/// are refused) and returns once every open connection has finished its request in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ServeConfig,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        serve_connection(stream, app.clone(), config, &graceful);
    }
    // Closing the listener now refuses new connections while the open ones drain.
    drop(listener);
    graceful.shutdown().await;
}

fn serve_connection(
    stream: TcpStream,
    app: Router,
    config: &ServeConfig,
    graceful: &GracefulShutdown,
) {
    // Small responses (playlists, problems) should not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(app);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout());
    // HTTP/2 (prior knowledge): an idle or silent peer is pinged and dropped.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.header_read_timeout())
        .keep_alive_timeout(Duration::from_secs(20));
    let watcher = graceful.watcher();
    tokio::spawn(async move {
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        if let Err(err) = watcher.watch(conn).await {
            // Timeouts, resets and malformed requests end up here: the client's problem.
            tracing::debug!(error = %err, "connection ended with an error");
        }
    });
}

/// As axum (and hyper 0.14) do: a connection error concerns one client; anything else (e.g.
/// too many open files) is logged and retried after a pause instead of spinning.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

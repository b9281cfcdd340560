//! The HTTP API (axum): one module per feature, merged in [`api_router`].

pub mod error;
mod extract;
mod health;
mod hls;
mod ingest;
mod lifecycle;
mod upload;
pub mod url_ingest;
pub mod videos;
mod web;

pub use docs::openapi;
mod docs;

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::MatchedPath,
    http::{HeaderValue, Method, Request, header},
};
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    trace::TraceLayer,
};

use crate::{config::MediaLimits, queue::TranscodeQueue, storage::MediaRoot};

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub queue: TranscodeQueue,
    pub redis: ConnectionManager,
    pub media: MediaRoot,
    pub limits: Arc<MediaLimits>,
    pub ffprobe: Arc<PathBuf>,
    pub probe_timeout: Duration,
    /// Attempts a new job gets before it is `failed` for good.
    pub max_attempts: i32,
    /// URL ingest: the download policy, its HTTP client and the downloader's wake-up.
    pub downloads: Arc<url_ingest::Downloads>,
}

/// The whole API. `cors_origin` is `*` or a comma-separated list of origins.
pub fn api_router(state: AppState, cors_origin: &str) -> Router {
    // The recorder must exist before the first request counts anything.
    crate::telemetry::handle();
    let (router, openapi) = docs::routes().split_for_parts();
    router
        .merge(docs::ui(openapi))
        .merge(web::router())
        .with_state(state)
        .layer(cors(cors_origin))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let path = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or(request.uri().path(), MatchedPath::as_str);
                tracing::info_span!("http", method = %request.method(), path)
            }),
        )
}

fn cors(origin: &str) -> CorsLayer {
    let allow_origin = if origin.trim() == "*" {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origin
                .split(',')
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::DELETE])
        .allow_headers([header::RANGE, header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::LOCATION,
        ])
}

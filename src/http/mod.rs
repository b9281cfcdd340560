//! The HTTP API (axum): one module per feature, merged in [`api_router`].

pub mod auth;
mod captions;
pub mod error;
mod extract;
mod formats;
mod health;
mod hls;
mod lifecycle;
pub mod limits;
mod owners;
pub mod public_videos;
mod responses;
pub mod segment_cache;
pub mod serve;
mod state;
pub mod tus;
mod upload;
mod url_ingest;
mod videos;
mod web;
mod webhooks;
mod wire;

pub use state::AppState;

pub use docs::openapi;
mod docs;

use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, MatchedPath},
    http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    trace::TraceLayer,
};

/// The metrics listener (METRICS_ADDR): `GET /metrics` in the Prometheus text format.
pub fn metrics_router(state: AppState) -> Router {
    health::metrics_router(state)
}

/// The whole API. `cors_origin` is `*` or a comma-separated list of origins.
pub fn api_router(state: AppState, cors_origin: &str) -> Router {
    // The recorder must exist before the first request counts anything.
    crate::telemetry::handle();
    let (router, openapi) = docs::routes().split_for_parts();
    let app = router
        .merge(docs::ui(openapi))
        .merge(web::router())
        .route("/metrics", axum::routing::get(health::metrics_elsewhere))
        .fallback(no_route)
        .with_state(state);
    let traced = |app: Router| {
        app.layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let path = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or(request.uri().path(), MatchedPath::as_str);
                tracing::info_span!("http", method = %request.method(), path)
            }),
        )
    };
    // tower-http's CORS layer answers every OPTIONS request itself, as a preflight. Only real
    // preflights (with Access-Control-Request-Method) go to it; a plain OPTIONS reaches the
    // routes (tus clients ask `OPTIONS /v1/uploads` for the server's configuration).
    Router::new()
        .fallback_service(PreflightToCors {
            with_cors: traced(app.clone().layer(cors(cors_origin))),
            plain: traced(app),
        })
        // Every `Json` extractor reads at most this; upload routes lift it for their own bounds.
        .layer(DefaultBodyLimit::max(limits::MAX_JSON_BYTES))
        .layer(axum::middleware::from_fn(limits::bound_uri))
}

/// A path no route matches: under `/v1` a problem document like every other API error (API
/// clients read its `code`); elsewhere an empty 404, as before.
async fn no_route(uri: Uri) -> Response {
    let path = uri.path();
    if path != "/v1" && !path.starts_with("/v1/") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let hint = if path.len() > 4 && path.ends_with('/') {
        " (API paths do not end with `/`)"
    } else {
        ""
    };
    error::ApiError::new(
        StatusCode::NOT_FOUND,
        error::ErrorCode::NotFound,
        format!("no API route has this path{hint}; /openapi.json lists them"),
    )
    .into_response()
}

/// Sends every request but a plain OPTIONS (no Access-Control-Request-Method) through CORS.
#[derive(Clone)]
struct PreflightToCors {
    with_cors: Router,
    plain: Router,
}

impl tower::Service<Request<Body>> for PreflightToCors {
    type Response = <Router as tower::Service<Request<Body>>>::Response;
    type Error = std::convert::Infallible;
    type Future = <Router as tower::Service<Request<Body>>>::Future;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // A Router is always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let plain_options = request.method() == Method::OPTIONS
            && !request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if plain_options {
            self.plain.call(request)
        } else {
            self.with_cors.call(request)
        }
    }
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
    use tus::headers as tus;
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::RANGE,
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            // tus clients in the browser (tus-js-client)
            tus::TUS_RESUMABLE,
            tus::UPLOAD_LENGTH,
            tus::UPLOAD_OFFSET,
            tus::UPLOAD_METADATA,
            tus::UPLOAD_CHECKSUM,
            tus::UPLOAD_DEFER_LENGTH,
            HeaderName::from_static("upload-concat"),
            HeaderName::from_static("x-http-method-override"),
            HeaderName::from_static("x-requested-with"),
        ])
        .expose_headers([
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::LOCATION,
            header::CONTENT_LOCATION,
            tus::TUS_RESUMABLE,
            tus::TUS_VERSION,
            tus::TUS_EXTENSION,
            tus::TUS_MAX_SIZE,
            tus::TUS_CHECKSUM_ALGORITHM,
            tus::UPLOAD_OFFSET,
            tus::UPLOAD_LENGTH,
            tus::UPLOAD_METADATA,
            tus::UPLOAD_EXPIRES,
            tus::VIDEO_ID,
        ])
}

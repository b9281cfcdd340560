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

pub use state::{AppState, Shared};

pub use docs::openapi;
mod docs;

use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, MatchedPath},
    http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use futures_util::future::{Either, Ready, ready};
use tower::Layer;
use tower_http::{
    cors::{AllowOrigin, Cors, CorsLayer},
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
    let traced = |app: Router| app.layer(TraceLayer::new_for_http().make_span_with(request_span));
    // Every `Json` extractor reads at most this; upload routes lift it for their own bounds.
    let app = app.layer(DefaultBodyLimit::max(limits::MAX_JSON_BYTES));
    // One service in front of the routes rather than layers on each of them: `Router::layer`
    // wraps every route in another boxed service, cloned for every request, and with the URI
    // bound, CORS and the body limit layered that way, small segments were served at about 0.6×
    // nginx's rate (benchmark 5b).
    Router::new().fallback_service(Front {
        with_cors: cors(cors_origin).layer(traced(app.clone())),
        plain: traced(app),
    })
}

/// The span a request's log lines carry: its method and route (never the raw path, which holds
/// ids and playback tokens). Media files (segments, playlists, captions) are most of the requests
/// and get a `debug` span: an `info` span per request, formatted by the log writer, cost about
/// a tenth of the rate at which small segments are served; their failures still log their code.
fn request_span(request: &Request<Body>) -> tracing::Span {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(request.uri().path(), MatchedPath::as_str);
    let method = request.method().as_str();
    if hls::is_media_route(path) {
        tracing::debug_span!("http", method, path)
    } else {
        tracing::info_span!("http", method, path)
    }
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

/// What every request meets before its route: a URI past [`limits::MAX_URI_BYTES`] is answered
/// 414 before routing or query parsing; then every request but a plain OPTIONS goes through
/// CORS. tower-http's CORS layer answers every OPTIONS request itself, as a preflight: only real
/// preflights (with Access-Control-Request-Method) go to it, and a plain OPTIONS reaches the
/// routes (tus clients ask `OPTIONS /v1/uploads` for the server's configuration).
#[derive(Clone)]
struct Front {
    with_cors: Cors<Router>,
    plain: Router,
}

impl tower::Service<Request<Body>> for Front {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Either<
        Ready<Result<Response, Self::Error>>,
        Either<
            <Cors<Router> as tower::Service<Request<Body>>>::Future,
            <Router as tower::Service<Request<Body>>>::Future,
        >,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // A Router, and CORS around it, is always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if let Some(refused) = limits::uri_too_long(request.uri()) {
            return Either::Left(ready(Ok(refused.into_response())));
        }
        let plain_options = request.method() == Method::OPTIONS
            && !request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        Either::Right(if plain_options {
            Either::Right(self.plain.call(request))
        } else {
            Either::Left(self.with_cors.call(request))
        })
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

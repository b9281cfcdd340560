//! The web console at `/`: an API key field, upload, follow, play, and the recent videos with
//! their actions. Its files are compiled into the binary, so the page needs nothing but this
//! server (hls.js is vendored in `web/vendor/`, with its licence and version).

use axum::{
    Router,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const HLS_JS: &str = include_str!("../../web/vendor/hls.js/hls.min.js");
const HLS_JS_LICENSE: &str = include_str!("../../web/vendor/hls.js/LICENSE");

/// The page changes with the binary: browsers revalidate it on every visit.
const NO_CACHE: &str = "no-cache";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| file("text/html; charset=utf-8", INDEX)))
        .route(
            "/app.js",
            get(|| file("text/javascript; charset=utf-8", APP_JS)),
        )
        .route("/app.css", get(|| file("text/css; charset=utf-8", APP_CSS)))
        .route(
            "/vendor/hls.min.js",
            get(|| file("text/javascript; charset=utf-8", HLS_JS)),
        )
        .route(
            "/vendor/hls.js.LICENSE",
            get(|| file("text/plain; charset=utf-8", HLS_JS_LICENSE)),
        )
}

async fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, NO_CACHE),
        ],
        body,
    )
        .into_response()
}

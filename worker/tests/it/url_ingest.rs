//! URL ingest end to end: a real HTTP server on loopback serves clips,
//! redirects, stalls and junk; the API downloads, probes and queues; a worker
//! transcodes. And the SSRF guard: internal addresses are refused, before the
//! first request and on every redirect hop, unless allowlisted.

use crate::common;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use common::{TestApp, eventually, redis_url, test_ingest_config};
use prostream::config::MediaLimits;
use serde_json::{Value, json};
use sqlx::PgPool;

/// A file server for the tests: `/clip`, `/junk`, `/stall`, `/chunked`,
/// `/redirect/{n}` (n hops, then the clip) and `/to/{url}` (one hop anywhere).
async fn origin(clip_path: PathBuf) -> SocketAddr {
    async fn clip(State(path): State<PathBuf>) -> Response {
        (
            [(header::CONTENT_TYPE, "video/mp4")],
            tokio::fs::read(path).await.unwrap(),
        )
            .into_response()
    }
    async fn chunked(State(path): State<PathBuf>) -> Response {
        // No Content-Length: the cap must hold while streaming.
        let file = tokio::fs::File::open(path).await.unwrap();
        Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response()
    }
    async fn stall() -> Response {
        let stream = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
        (
            [(header::CONTENT_LENGTH, "1000")],
            Body::from_stream(stream),
        )
            .into_response()
    }
    async fn redirect(Path(n): Path<u32>) -> Redirect {
        if n == 0 {
            Redirect::temporary("/clip")
        } else {
            Redirect::temporary(&format!("/redirect/{}", n - 1))
        }
    }
    async fn to(Path(url): Path<String>) -> Redirect {
        Redirect::temporary(&url)
    }
    let app = Router::new()
        .route("/clip", get(clip))
        .route("/chunked", get(chunked))
        .route("/junk", get(|| async { vec![7u8; 30_000] }))
        .route("/stall", get(stall))
        .route("/gone", get(|| async { StatusCode::NOT_FOUND }))
        .route("/redirect/{n}", get(redirect))
        .route("/to/{*url}", get(to))
        .with_state(clip_path);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The files of the downloads in progress (`uploads/.incoming-*`).
fn downloading(app: &TestApp) -> Vec<String> {
    let mut names = app.entries("uploads");
    names.retain(|name| name.starts_with(".incoming-"));
    names
}

async fn ingest(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app.post_json("/v1/videos", &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn accepted(app: &TestApp, url: &str) -> String {
    let (status, video) = ingest(app, json!({ "url": url })).await;
    assert_eq!(status, 202, "{video}");
    video["id"].as_str().unwrap().to_owned()
}

async fn failed_with(app: &TestApp, url: &str, code: &str) {
    let id = accepted(app, url).await;
    let video = app
        .wait_for_status(&id, &["failed", "queued", "ready"], Duration::from_secs(30))
        .await;
    assert_eq!(video["status"], "failed", "{url}: {video}");
    assert_eq!(video["error"]["code"], code, "{url}: {video}");
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_url_is_downloaded_probed_and_transcoded(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let clip = app.clip("remote.mp4", 2, 320, 240, true).await;
    let addr = origin(clip.clone()).await;

    let url = format!("http://{addr}/redirect/2");
    let (status, video) = ingest(&app, json!({ "url": url, "title": "From afar" })).await;
    assert_eq!(status, 202, "{video}");
    assert_eq!(video["status"], "downloading");
    assert_eq!(video["title"], "From afar");
    assert_eq!(video["source"]["url"], url.as_str());
    assert!(video["source"]["duration_s"].is_null());
    let id = video["id"].as_str().unwrap().to_owned();

    app.start_worker(1).await;
    let video = app.wait_until_ready(&id, Duration::from_secs(60)).await;
    assert!((video["source"]["duration_s"].as_f64().unwrap() - 2.0).abs() < 0.2);
    // The original is the served file, byte for byte.
    let original = app.the_one_original();
    assert!(
        original == std::fs::read(&clip).unwrap(),
        "the original differs"
    );

    assert!(
        video["playback"]["downloads"]["video"].is_string(),
        "{video}"
    );

    // Without a title, the URL's file name is the title.
    let (_, untitled) = ingest(&app, json!({ "url": format!("http://{addr}/chunked") })).await;
    assert_eq!(untitled["title"], "chunked");

    // `downloads: false` in the JSON: no downloads are made.
    let (status, video) = ingest(
        &app,
        json!({ "url": format!("http://{addr}/clip"), "downloads": false }),
    )
    .await;
    assert_eq!(status, 202, "{video}");
    let video = app
        .wait_until_ready(video["id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    assert!(video["playback"]["downloads"].is_null(), "{video}");
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn internal_addresses_are_refused_before_and_after_dns_and_on_redirects(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("remote.mp4", 1, 160, 120, false).await;
    let addr = origin(clip).await;
    let port = addr.port();

    // Literal internal addresses and bad URLs: refused at once.
    let (forbidden, invalid) = ((422, "url_forbidden"), (400, "invalid_url"));
    for (url, (status, code)) in [
        ("http://169.254.169.254/latest/meta-data/", forbidden),
        ("http://[::1]:9/clip", forbidden),
        ("http://10.0.0.1/clip", forbidden),
        ("http://[::ffff:127.0.0.2]/clip", forbidden),
        // https gets the same checks.
        ("https://169.254.169.254/latest/meta-data/", forbidden),
        ("https://[::1]:8443/clip", forbidden),
        ("file:///etc/passwd", invalid),
        ("gopher://example.com/", invalid),
        ("not a url", invalid),
    ] {
        let (got, body) = ingest(&app, json!({ "url": url })).await;
        assert_eq!(
            (got, body["code"].as_str().unwrap()),
            (status, code),
            "{url}: {body}"
        );
    }
    let (got, body) = ingest(&app, json!({ "link": "x" })).await;
    assert_eq!((got, body["code"].as_str().unwrap()), (400, "invalid_json"));

    // A name that resolves to loopback (only 127.0.0.1 is allowlisted, not `localhost`); over
    // https too: the resolver refuses it before any connection, let alone a handshake.
    for scheme in ["http", "https"] {
        failed_with(
            &app,
            &format!("{scheme}://localhost:{port}/clip"),
            "url_forbidden",
        )
        .await;
    }
    // An allowed host redirecting inward, to a literal address and to a name.
    failed_with(
        &app,
        &format!("http://{addr}/to/http://127.0.0.2:{port}/clip"),
        "url_forbidden",
    )
    .await;
    failed_with(
        &app,
        &format!("http://{addr}/to/http://localhost:{port}/clip"),
        "url_forbidden",
    )
    .await;
    // Redirect limits, HTTP errors, junk.
    failed_with(
        &app,
        &format!("http://{addr}/redirect/5"),
        "too_many_redirects",
    )
    .await;
    failed_with(&app, &format!("http://{addr}/gone"), "download_failed").await;
    failed_with(&app, &format!("http://{addr}/junk"), "unsupported_media").await;
    // Nothing of the failures stays on disk.
    app.assert_no_uploads_left();
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn size_and_time_limits_hold_and_a_failed_download_can_be_retried(pool: PgPool) {
    let limits = MediaLimits {
        max_upload_bytes: 20_000,
        ..MediaLimits::default()
    };
    let ingest_config = prostream::ingest::IngestConfig {
        url_ingest_timeout_secs: 2,
        ..test_ingest_config()
    };
    let app = TestApp::spawn_full(pool, limits, &redis_url(), ingest_config).await;
    let clip = app.clip("big.mp4", 3, 640, 360, true).await;
    assert!(std::fs::metadata(&clip).unwrap().len() > 20_000);
    let addr = origin(clip).await;

    failed_with(&app, &format!("http://{addr}/clip"), "upload_too_large").await;
    failed_with(&app, &format!("http://{addr}/chunked"), "upload_too_large").await;
    failed_with(&app, &format!("http://{addr}/stall"), "download_timeout").await;
    app.assert_no_uploads_left();

    // A retried download goes back to `downloading` (and fails the same way here).
    let id = accepted(&app, &format!("http://{addr}/clip")).await;
    app.wait_for_status(&id, &["failed"], Duration::from_secs(30))
        .await;
    let (retried, video) = app.post(&format!("/v1/videos/{id}/retry")).await;
    assert_eq!(retried, 202);
    assert_eq!(video["status"], "downloading");
    let video = app
        .wait_for_status(&id, &["failed"], Duration::from_secs(30))
        .await;
    assert_eq!(video["error"]["code"], "upload_too_large");

    // Cancel and delete while a download stalls: nothing stays.
    let stalled = accepted(&app, &format!("http://{addr}/stall")).await;
    let first = eventually(
        Duration::from_secs(10),
        "the stall's download starts",
        async || downloading(&app).into_iter().next(),
    )
    .await;
    let (cancel, _) = app.post(&format!("/v1/videos/{stalled}/cancel")).await;
    assert_eq!(cancel, 200);
    let deleted = accepted(&app, &format!("http://{addr}/stall")).await;
    eventually(
        Duration::from_secs(10),
        "the second stall's download starts",
        async || downloading(&app).iter().any(|name| *name != first),
    )
    .await;
    let delete = app.delete(&format!("/v1/videos/{deleted}")).await;
    assert_eq!(delete.status(), 204);
    // Both downloads end (at the stalls' time limit at the latest); the file goes last.
    eventually(
        Duration::from_secs(30),
        "the stalled downloads leave nothing",
        async || {
            let left = app.entries("uploads");
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    )
    .await;
    let video = app.get_json(&format!("/v1/videos/{stalled}")).await;
    assert_eq!(video["status"], "canceled");
    app.shutdown().await;
}

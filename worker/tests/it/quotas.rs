//! Storage quotas under concurrency: the check and the reservation are one locked step, so
//! parallel uploads of one owner cannot all take its last bytes; a body of unknown length is cut
//! off where the quota ends, not at MAX_UPLOAD_BYTES.

use crate::common;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use common::{TestApp, make_clip, scratch};
use futures_util::future::join_all;
use prostream::{config::OwnerPolicy, db};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;

const MB: u64 = 1_000_000;

async fn app_with_quota(pool: PgPool, max_bytes: u64) -> TestApp {
    let policy = OwnerPolicy {
        quota_max_bytes: max_bytes,
        ..OwnerPolicy::default()
    };
    TestApp::spawn_with_policy(pool, policy).await
}

/// Creates a tus upload of `length` bytes (no body); returns the status and the Location.
async fn create_upload(app: &TestApp, length: u64) -> (StatusCode, Option<String>) {
    let response = app
        .http
        .request(Method::POST, app.url("/v1/uploads"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .send()
        .await
        .unwrap();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status(), location)
}

/// Uploads still arriving or being probed (`uploads/.incoming-*`).
fn incoming(app: &TestApp) -> Vec<String> {
    app.entries("uploads")
        .into_iter()
        .filter(|name| name.starts_with(".incoming"))
        .collect()
}

fn count(statuses: &[u16], wanted: u16) -> usize {
    statuses.iter().filter(|&&s| s == wanted).count()
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn twenty_parallel_tus_creations_of_9_mb_at_a_10_mb_quota_create_exactly_one(pool: PgPool) {
    let app = app_with_quota(pool, 10 * MB).await;
    let created = join_all((0..20).map(|_| create_upload(&app, 9 * MB))).await;
    let statuses: Vec<u16> = created.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!(count(&statuses, 201), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 413), 19, "{statuses:?}");
    assert_eq!(app.count("uploads").await, 1);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn parallel_raw_uploads_that_fit_the_quota_only_one_at_a_time_record_exactly_one(
    pool: PgPool,
) {
    let fixtures = scratch();
    let clip = make_clip(&fixtures, "a.mp4", 2, 320, 240, false).await;
    let size = std::fs::metadata(&clip).unwrap().len();
    // As 6 MB uploads against a 10 MB quota: each fits alone, no two fit together.
    let app = app_with_quota(pool, size * 10 / 6).await;
    let uploads = join_all((0..6).map(|_| app.upload(&clip, "video/mp4"))).await;
    let statuses: Vec<u16> = uploads.iter().map(|(s, _)| *s).collect();
    assert_eq!(count(&statuses, 202), 1, "{uploads:?}");
    assert_eq!(count(&statuses, 413), 5, "{uploads:?}");
    for (_, body) in uploads.iter().filter(|(s, _)| *s == 413) {
        assert_eq!(body["code"], "storage_quota_exceeded", "{body}");
    }
    assert_eq!(app.count("videos").await, 1);
    // The refused uploads' files are gone.
    assert_eq!(incoming(&app), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&fixtures);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_chunked_upload_larger_than_the_quota_left_is_cut_off_at_the_quota_before_probing(
    pool: PgPool,
) {
    let app = app_with_quota(pool, 10 * MB).await;
    // 256 MB of zeros without Content-Length, far under MAX_UPLOAD_BYTES (4 GiB) and far over
    // the quota. Counted as the client produces it.
    let total: u64 = 256 * MB;
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let stream = futures_util::stream::unfold(0u64, move |produced| {
        let counter = counter.clone();
        async move {
            if produced >= total {
                return None;
            }
            let chunk = vec![0u8; 64 * 1024];
            counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(chunk), produced + 64 * 1024))
        }
    });
    let chunked = reqwest::Body::wrap_stream(stream);
    let response = app.post_body("/v1/videos", "video/mp4", chunked).await;
    let produced = sent.load(Ordering::SeqCst);
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    // Zeros would be `unsupported_media` had they been probed.
    assert_eq!(body["code"], "storage_quota_exceeded", "{body}");
    // The answer came long before the body's end (socket buffers hold a few MB more).
    assert!(
        produced < total / 4,
        "the client had produced {produced} of {total} bytes when the answer came"
    );
    assert_eq!(incoming(&app), Vec::<String>::new());
    assert_eq!(app.count("videos").await, 0);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_tus_upload_is_checked_again_at_completion_when_the_quota_was_lowered_meanwhile(
    pool: PgPool,
) {
    let fixtures = scratch();
    let clip = make_clip(&fixtures, "a.mp4", 1, 320, 240, false).await;
    let bytes = std::fs::read(&clip).unwrap();
    let app = app_with_quota(pool, 10 * MB).await;
    let (status, location) = create_upload(&app, bytes.len() as u64).await;
    assert_eq!(status, StatusCode::CREATED);
    // An operator lowers this owner's quota below what the upload reserved.
    let mut conn = app.pool.acquire().await.unwrap();
    let lowered = db::owners::Overrides {
        max_bytes: Some(bytes.len() as i64 / 2),
        max_uploads_per_day: None,
    };
    assert!(
        db::owners::set_overrides(&mut conn, "test-owner", lowered)
            .await
            .unwrap()
    );
    drop(conn);
    let response = app
        .http
        .request(Method::PATCH, app.url(&location.unwrap()))
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "storage_quota_exceeded", "{body}");
    assert_eq!(app.count("videos").await, 0);
    let _ = std::fs::remove_dir_all(&fixtures);
    app.shutdown().await;
}

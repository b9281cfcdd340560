//! Resumable uploads (tus 1.0.0) at `/v1/uploads`, against the real API,
//! Postgres, Redis, ffprobe and (where the video must end `ready`) the worker.

use crate::common;

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use common::{TestApp, eventually};
use prostream_worker::maintenance::{self, Settings};
use reqwest::{Method, Response};
use serde_json::Value;
use sha1::{Digest, Sha1};
use sqlx::PgPool;
use uuid::Uuid;

const OFFSET_STREAM: &str = "application/offset+octet-stream";

/// A request to the API with `Tus-Resumable: 1.0.0`.
fn tus(app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.http
        .request(method, app.url(path))
        .header("tus-resumable", "1.0.0")
}

fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} {}", BASE64.encode(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

fn number(response: &Response, name: &str) -> u64 {
    header(response, name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", response.headers()))
        .parse()
        .unwrap()
}

/// Creates an upload of `length` bytes; returns its path (`/v1/uploads/{id}`).
async fn create(app: &TestApp, length: usize, meta: &str) -> String {
    let response = tus(app, Method::POST, "/v1/uploads")
        .header("upload-length", length.to_string())
        .header("upload-metadata", meta)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(header(&response, "tus-resumable"), Some("1.0.0"));
    let expires = httpdate::parse_http_date(header(&response, "upload-expires").unwrap()).unwrap();
    let left = expires.duration_since(SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(23 * 3600) && left <= Duration::from_secs(24 * 3600),
        "{left:?}"
    );
    let location = header(&response, "location").unwrap().to_owned();
    assert!(location.starts_with("/v1/uploads/"), "{location}");
    location
}

async fn patch(app: &TestApp, path: &str, offset: usize, bytes: &[u8]) -> Response {
    tus(app, Method::PATCH, path)
        .header("content-type", OFFSET_STREAM)
        .header("upload-offset", offset.to_string())
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

async fn head(app: &TestApp, path: &str) -> Response {
    tus(app, Method::HEAD, path).send().await.unwrap()
}

async fn problem(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

fn upload_id(path: &str) -> Uuid {
    path.trim_start_matches("/v1/uploads/").parse().unwrap()
}

fn tus_file(app: &TestApp, path: &str) -> PathBuf {
    app.media_dir
        .join("uploads/.tus")
        .join(upload_id(path).to_string())
}

/// The video id a completing response names, checked against `Content-Location`.
fn video_of(response: &Response) -> String {
    let id = header(response, "prostream-video-id")
        .unwrap_or_else(|| panic!("no video id in {:?}", response.headers()))
        .to_owned();
    assert_eq!(
        header(response, "content-location"),
        Some(format!("/v1/videos/{id}").as_str())
    );
    id
}

/// The original stored for a video.
fn original(app: &TestApp, video_id: &str) -> Vec<u8> {
    std::fs::read(app.media_dir.join("uploads").join(video_id)).unwrap()
}

async fn locked(app: &TestApp, path: &str) -> bool {
    sqlx::query_scalar("SELECT coalesce(locked_until > now(), false) FROM uploads WHERE id = $1")
        .bind(upload_id(path))
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// A streamed request body fed from a channel: the test decides when bytes go out, when the body
/// stalls and whether it ends or breaks off.
fn fed_body() -> (
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    reqwest::Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, reqwest::Body::wrap_stream(stream))
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_file_sent_in_chunks_becomes_a_ready_video_with_the_same_bytes(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let clip = std::fs::read(app.clip("clip.mp4", 3, 320, 240, true).await).unwrap();
    let meta = metadata(&[("filename", "holiday.mp4"), ("title", "Le café ☕")]);
    let path = create(&app, clip.len(), &meta).await;

    let state = head(&app, &path).await;
    assert_eq!(state.status(), 200);
    assert_eq!(number(&state, "upload-offset"), 0);
    assert_eq!(number(&state, "upload-length"), clip.len() as u64);
    assert_eq!(header(&state, "upload-metadata"), Some(meta.as_str()));
    assert_eq!(header(&state, "cache-control"), Some("no-store"));
    assert!(header(&state, "upload-expires").is_some());
    assert!(header(&state, "prostream-video-id").is_none());

    let cuts = [0, clip.len() / 3, clip.len() * 2 / 3, clip.len()];
    let mut video_id = None;
    for pair in cuts.windows(2) {
        let response = patch(&app, &path, pair[0], &clip[pair[0]..pair[1]]).await;
        assert_eq!(response.status(), 204);
        assert_eq!(header(&response, "tus-resumable"), Some("1.0.0"));
        assert_eq!(number(&response, "upload-offset"), pair[1] as u64);
        if pair[1] < clip.len() {
            assert!(header(&response, "upload-expires").is_some());
            assert!(header(&response, "prostream-video-id").is_none());
            assert_eq!(
                number(&head(&app, &path).await, "upload-offset"),
                pair[1] as u64
            );
        } else {
            video_id = Some(video_of(&response));
        }
    }
    let video_id = video_id.unwrap();

    // A client that lost the last response learns the video from HEAD, or from an empty PATCH.
    let state = head(&app, &path).await;
    assert_eq!(state.status(), 200);
    assert_eq!(number(&state, "upload-offset"), clip.len() as u64);
    assert_eq!(video_of(&state), video_id);
    assert!(header(&state, "upload-expires").is_none());
    let again = patch(&app, &path, clip.len(), &[]).await;
    assert_eq!(again.status(), 204);
    assert_eq!(video_of(&again), video_id);
    assert_eq!(app.count("videos").await, 1);

    app.start_worker(1).await;
    let video = app
        .wait_until_ready(&video_id, Duration::from_secs(120))
        .await;
    assert_eq!(video["title"], "Le café ☕");
    assert_eq!(video["source"]["size_bytes"], clip.len());
    assert!(original(&app, &video_id) == clip, "the original differs");
    assert!(app.entries("uploads/.tus").is_empty());
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn options_advertises_the_protocol_and_requests_without_tus_resumable_get_412(pool: PgPool) {
    let app = TestApp::spawn_with_upload_cap(pool, 1000).await;
    let options = app
        .http
        .request(Method::OPTIONS, app.url("/v1/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 204);
    assert_eq!(header(&options, "tus-resumable"), Some("1.0.0"));
    assert_eq!(header(&options, "tus-version"), Some("1.0.0"));
    assert_eq!(
        header(&options, "tus-extension"),
        Some("creation,creation-with-upload,termination,expiration,checksum")
    );
    assert_eq!(header(&options, "tus-checksum-algorithm"), Some("sha1"));
    assert_eq!(header(&options, "tus-max-size"), Some("1000"));

    let path = create(&app, 10, "").await;
    // Browsers (tus-js-client) preflight the tus methods and headers and read the tus answers.
    let preflight = app
        .http
        .request(Method::OPTIONS, app.url(&path))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "tus-resumable,upload-offset,upload-checksum,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    let allowed = |name| header(&preflight, name).unwrap().to_ascii_lowercase();
    for method in ["patch", "head", "delete", "post"] {
        assert!(allowed("access-control-allow-methods").contains(method));
    }
    for name in [
        "tus-resumable",
        "upload-offset",
        "upload-length",
        "upload-metadata",
        "upload-checksum",
    ] {
        assert!(
            allowed("access-control-allow-headers").contains(name),
            "{name}"
        );
    }
    let cross_origin = tus(&app, Method::HEAD, &path)
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&cross_origin, "access-control-allow-origin"),
        Some("*")
    );
    let exposed = header(&cross_origin, "access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "upload-offset",
        "upload-length",
        "upload-expires",
        "location",
        "tus-resumable",
        "prostream-video-id",
    ] {
        assert!(exposed.contains(name), "{name} is not exposed: {exposed}");
    }

    for version in [None, Some("0.2.2")] {
        for (method, target) in [
            (Method::POST, "/v1/uploads"),
            (Method::HEAD, path.as_str()),
            (Method::PATCH, path.as_str()),
            (Method::DELETE, path.as_str()),
        ] {
            let mut request = app
                .http
                .request(method.clone(), app.url(target))
                .header("upload-length", "10")
                .header("upload-offset", "0")
                .header("content-type", OFFSET_STREAM);
            if let Some(version) = version {
                request = request.header("tus-resumable", version);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 412, "{method} {target} {version:?}");
            assert_eq!(header(&response, "tus-version"), Some("1.0.0"));
            assert_eq!(header(&response, "tus-resumable"), Some("1.0.0"));
            if method != Method::HEAD {
                assert_eq!(problem(response).await.1, "tus_version_unsupported");
            }
        }
    }
    // Nothing was done by the refused requests.
    assert_eq!(app.count("uploads").await, 1);
    assert_eq!(number(&head(&app, &path).await, "upload-offset"), 0);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn malformed_and_oversized_requests_are_refused_with_their_codes(pool: PgPool) {
    let app = TestApp::spawn_with_upload_cap(pool, 1000).await;
    let creation = |length: Option<&str>, meta: Option<&str>| {
        let mut request = tus(&app, Method::POST, "/v1/uploads");
        if let Some(length) = length {
            request = request.header("upload-length", length);
        }
        if let Some(meta) = meta {
            request = request.header("upload-metadata", meta);
        }
        request.send()
    };
    let long_title = metadata(&[("title", &"x".repeat(201))]);
    for (length, meta, want) in [
        (None, None, (400, "upload_length_required")),
        (Some("-1"), None, (400, "upload_length_required")),
        (Some("ten"), None, (400, "upload_length_required")),
        (Some("1001"), None, (413, "upload_too_large")),
        (Some("0"), None, (422, "empty_upload")),
        (
            Some("10"),
            Some("filename !!!"),
            (400, "invalid_upload_metadata"),
        ),
        (
            Some("10"),
            Some("title dGl0bGU=,title dGl0bGU="),
            (400, "invalid_upload_metadata"),
        ),
        (
            Some("10"),
            Some(long_title.as_str()),
            (400, "invalid_title"),
        ),
    ] {
        let response = creation(length, meta).await.unwrap();
        assert_eq!(header(&response, "tus-resumable"), Some("1.0.0"));
        let got = problem(response).await;
        assert_eq!((got.0, got.1.as_str()), want, "{length:?} {meta:?}");
    }
    assert_eq!(app.count("uploads").await, 0);

    let path = create(&app, 10, "").await;
    let wrong_type = tus(&app, Method::PATCH, &path)
        .header("upload-offset", "0")
        .header("content-type", "application/octet-stream")
        .body("12345")
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(wrong_type).await,
        (415, "unsupported_content_type".into())
    );
    let no_offset = tus(&app, Method::PATCH, &path)
        .header("content-type", OFFSET_STREAM)
        .body("12345")
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(no_offset).await,
        (400, "invalid_upload_offset".into())
    );
    let past_the_end = patch(&app, &path, 0, b"12345678901").await;
    assert_eq!(
        problem(past_the_end).await,
        (413, "upload_length_exceeded".into())
    );

    assert_eq!(patch(&app, &path, 0, b"12345").await.status(), 204);
    for stale in [0, 3, 6] {
        let response = patch(&app, &path, stale, b"67").await;
        assert_eq!(
            problem(response).await,
            (409, "upload_offset_mismatch".into()),
            "{stale}"
        );
    }
    assert_eq!(number(&head(&app, &path).await, "upload-offset"), 5);
    assert_eq!(std::fs::read(tus_file(&app, &path)).unwrap(), b"12345");

    for unknown in [
        "/v1/uploads/not-a-uuid",
        &format!("/v1/uploads/{}", Uuid::now_v7()),
    ] {
        assert_eq!(head(&app, unknown).await.status(), 404);
        assert_eq!(
            problem(patch(&app, unknown, 0, b"1").await).await,
            (404, "not_found".into())
        );
    }
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn checksums_are_verified_and_a_mismatching_chunk_is_discarded(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let path = create(&app, 22, "").await;
    let send = |offset: usize, bytes: &'static [u8], checksum: String| {
        tus(&app, Method::PATCH, &path)
            .header("content-type", OFFSET_STREAM)
            .header("upload-offset", offset.to_string())
            .header("upload-checksum", checksum)
            .body(bytes)
            .send()
    };
    let sha1 = |bytes: &[u8]| format!("sha1 {}", BASE64.encode(Sha1::digest(bytes)));

    let good = send(0, b"hello world", sha1(b"hello world")).await.unwrap();
    assert_eq!(good.status(), 204);
    assert_eq!(number(&good, "upload-offset"), 11);

    let bad = send(11, b"HELLO WORLD", sha1(b"hello world"))
        .await
        .unwrap();
    assert_eq!(problem(bad).await, (460, "checksum_mismatch".into()));
    assert_eq!(number(&head(&app, &path).await, "upload-offset"), 11);
    assert_eq!(
        std::fs::read(tus_file(&app, &path)).unwrap(),
        b"hello world"
    );

    let md5 = send(11, b"HELLO WORLD", "md5 XrY7u+Ae7tCTyyK7j1rNww==".into())
        .await
        .unwrap();
    assert_eq!(
        problem(md5).await,
        (400, "unsupported_checksum_algorithm".into())
    );
    let garbled = send(11, b"HELLO WORLD", "sha1 not-base64!".into())
        .await
        .unwrap();
    assert_eq!(
        problem(garbled).await,
        (400, "invalid_upload_checksum".into())
    );
    assert_eq!(number(&head(&app, &path).await, "upload-offset"), 11);

    let retried = send(11, b"HELLO WORL", sha1(b"HELLO WORL")).await.unwrap();
    assert_eq!(number(&retried, "upload-offset"), 21);
    assert_eq!(
        std::fs::read(tus_file(&app, &path)).unwrap(),
        b"hello worldHELLO WORL"
    );
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn termination_deletes_the_record_and_the_bytes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let path = create(&app, 100, "").await;
    assert_eq!(patch(&app, &path, 0, &[1; 40]).await.status(), 204);
    assert!(tus_file(&app, &path).exists());

    let deleted = tus(&app, Method::DELETE, &path).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(header(&deleted, "tus-resumable"), Some("1.0.0"));
    assert!(!tus_file(&app, &path).exists());
    assert_eq!(app.count("uploads").await, 0);
    assert_eq!(head(&app, &path).await.status(), 404);
    assert_eq!(problem(patch(&app, &path, 40, &[1; 10]).await).await.0, 404);
    let again = tus(&app, Method::DELETE, &path).send().await.unwrap();
    assert_eq!(problem(again).await, (404, "not_found".into()));
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_second_patch_while_one_streams_is_refused_with_423_and_a_dead_lease_runs_out(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let path = create(&app, 3000, "").await;
    let (feed, body) = fed_body();
    let first = tokio::spawn(
        tus(&app, Method::PATCH, &path)
            .header("content-type", OFFSET_STREAM)
            .header("upload-offset", "0")
            .body(body)
            .send(),
    );
    feed.send(Ok(vec![1; 1000])).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the first PATCH taking the lease",
        || locked(&app, &path),
    )
    .await;

    // The first PATCH stalls mid-body: nobody else may write, nor delete.
    let second = patch(&app, &path, 0, &[2; 1000]).await;
    assert_eq!(problem(second).await, (423, "upload_locked".into()));
    let delete = tus(&app, Method::DELETE, &path).send().await.unwrap();
    assert_eq!(problem(delete).await, (423, "upload_locked".into()));

    feed.send(Ok(vec![1; 1000])).await.unwrap();
    drop(feed);
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 204);
    assert_eq!(number(&first, "upload-offset"), 2000);
    assert!(
        !locked(&app, &path).await,
        "the lease is released at the end"
    );
    assert_eq!(std::fs::read(tus_file(&app, &path)).unwrap(), vec![1; 2000]);

    // A lease left by an API that died (its token, expired) does not block anyone.
    sqlx::query(
        "UPDATE uploads SET lock_token = $2, locked_until = now() - interval '1 second' WHERE id = $1",
    )
    .bind(upload_id(&path))
    .bind(Uuid::now_v7())
    .execute(&app.pool)
    .await
    .unwrap();
    let resumed = patch(&app, &path, 2000, &[3; 500]).await;
    assert_eq!(resumed.status(), 204);
    assert_eq!(number(&resumed, "upload-offset"), 2500);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_body_that_breaks_off_keeps_what_arrived_and_the_upload_resumes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    // Noise keeps x264 from compressing much: a clip well over the 4 MiB commit batch.
    let clip = std::fs::read(app.clip("big.mp4", 6, 640, 480, true).await).unwrap();
    const SENT: usize = 5 << 20;
    assert!(
        clip.len() > SENT + (1 << 20),
        "clip of {} bytes is too small",
        clip.len()
    );
    let path = create(&app, clip.len(), "").await;

    let (feed, body) = fed_body();
    let request = tokio::spawn(
        tus(&app, Method::PATCH, &path)
            .header("content-type", OFFSET_STREAM)
            .header("upload-offset", "0")
            .body(body)
            .send(),
    );
    for piece in clip[..SENT].chunks(64 << 10) {
        feed.send(Ok(piece.to_vec())).await.unwrap();
    }
    // While the body still streams, the offset is committed in batches (fsync, then Postgres).
    eventually(
        Duration::from_secs(20),
        "a batch commit while streaming",
        async || number(&head(&app, &path).await, "upload-offset") >= 4 << 20,
    )
    .await;
    // Now the connection breaks off.
    feed.send(Err(std::io::Error::other("cable pulled")))
        .await
        .unwrap();
    assert!(
        request.await.unwrap().is_err(),
        "the client saw its request fail"
    );
    eventually(
        Duration::from_secs(20),
        "the broken PATCH releasing the upload",
        async || !locked(&app, &path).await,
    )
    .await;
    let kept = number(&head(&app, &path).await, "upload-offset") as usize;
    assert_eq!(kept, SENT, "every byte that arrived is kept");

    let rest = patch(&app, &path, kept, &clip[kept..]).await;
    assert_eq!(rest.status(), 204);
    let video_id = video_of(&rest);
    assert!(original(&app, &video_id) == clip, "the original differs");
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn the_offset_survives_an_api_restart(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let clip = std::fs::read(app.clip("clip.mp4", 2, 320, 240, true).await).unwrap();
    let half = clip.len() / 2;
    let path = create(&app, clip.len(), &metadata(&[("filename", "restart.mp4")])).await;
    assert_eq!(patch(&app, &path, 0, &clip[..half]).await.status(), 204);

    let before = app.base.clone();
    app.restart_api().await;
    assert_ne!(app.base, before, "a new API process (port)");
    let state = head(&app, &path).await;
    assert_eq!(state.status(), 200);
    assert_eq!(number(&state, "upload-offset"), half as u64);

    let rest = patch(&app, &path, half, &clip[half..]).await;
    assert_eq!(rest.status(), 204);
    let video_id = video_of(&rest);
    let video = app.get_json(&format!("/v1/videos/{video_id}")).await;
    assert_eq!(video["status"], "queued");
    assert_eq!(video["title"], "restart.mp4");
    assert!(original(&app, &video_id) == clip, "the original differs");
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn completions_cut_short_by_a_crash_are_finished_by_the_next_request(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = std::fs::read(app.clip("clip.mp4", 2, 320, 240, false).await).unwrap();
    let set =
        |sql: &'static str, path: &str| sqlx::query(sql).bind(upload_id(path)).execute(&app.pool);

    // 1. Killed after the last byte was counted, before the video was recorded.
    let counted = create(&app, clip.len(), "").await;
    std::fs::write(tus_file(&app, &counted), &clip).unwrap();
    set(
        "UPDATE uploads SET upload_offset = upload_length WHERE id = $1",
        &counted,
    )
    .await
    .unwrap();
    let state = head(&app, &counted).await;
    assert_eq!(state.status(), 200);
    let video_id = video_of(&state);
    assert!(original(&app, &video_id) == clip);
    assert!(!tus_file(&app, &counted).exists());

    // 2. Killed after the file moved to its video's place, before the transaction committed.
    let moved = create(&app, clip.len(), "").await;
    std::fs::remove_file(tus_file(&app, &moved)).unwrap();
    let reserved = Uuid::now_v7();
    std::fs::write(
        app.media_dir.join("uploads").join(reserved.to_string()),
        &clip,
    )
    .unwrap();
    sqlx::query(
        "UPDATE uploads SET upload_offset = upload_length, reserved_video_id = $2 WHERE id = $1",
    )
    .bind(upload_id(&moved))
    .bind(reserved)
    .execute(&app.pool)
    .await
    .unwrap();
    let finished = patch(&app, &moved, clip.len(), &[]).await;
    assert_eq!(finished.status(), 204);
    assert_eq!(video_of(&finished), reserved.to_string());

    // 3. Killed between writing bytes and counting them: the uncounted tail is cut off.
    let half = clip.len() / 2;
    let torn = create(&app, clip.len(), "").await;
    assert_eq!(patch(&app, &torn, 0, &clip[..half]).await.status(), 204);
    let mut on_disk = clip[..half].to_vec();
    on_disk.extend_from_slice(&[0xAB; 777]);
    std::fs::write(tus_file(&app, &torn), on_disk).unwrap();
    let rest = patch(&app, &torn, half, &clip[half..]).await;
    assert_eq!(rest.status(), 204);
    assert!(original(&app, &video_of(&rest)) == clip);

    assert_eq!(app.count("videos").await, 3);
    assert_eq!(app.count("jobs").await, 3);
    let linked: i64 = sqlx::query_scalar("SELECT count(*) FROM uploads WHERE video_id IS NOT NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(linked, 3, "each upload names its video");
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_junk_file_uploaded_via_tus_is_refused_and_leaves_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let junk: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = create(&app, junk.len(), "").await;
    assert_eq!(patch(&app, &path, 0, &junk[..100_000]).await.status(), 204);
    let last = patch(&app, &path, 100_000, &junk[100_000..]).await;
    assert_eq!(problem(last).await, (415, "unsupported_media".into()));
    assert_eq!(head(&app, &path).await.status(), 404);

    // The same, sent whole with the creation request.
    let whole = tus(&app, Method::POST, "/v1/uploads")
        .header("upload-length", junk.len().to_string())
        .header("content-type", OFFSET_STREAM)
        .body(junk.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(problem(whole).await, (415, "unsupported_media".into()));

    for table in ["uploads", "videos", "jobs"] {
        assert_eq!(app.count(table).await, 0, "{table}");
    }
    assert_eq!(app.entries("uploads"), [".tus"]);
    assert!(app.entries("uploads/.tus").is_empty());
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn creation_with_upload_stores_the_first_chunk_or_the_whole_file(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = std::fs::read(app.clip("clip.mp4", 2, 320, 240, true).await).unwrap();
    let creation = |body: Vec<u8>| {
        tus(&app, Method::POST, "/v1/uploads")
            .header("upload-length", clip.len().to_string())
            .header("upload-metadata", metadata(&[("title", "at once")]))
            .header("content-type", OFFSET_STREAM)
            .body(body)
            .send()
    };

    let part = creation(clip[..1000].to_vec()).await.unwrap();
    assert_eq!(part.status(), 201);
    assert_eq!(number(&part, "upload-offset"), 1000);
    let path = header(&part, "location").unwrap().to_owned();
    let rest = patch(&app, &path, 1000, &clip[1000..]).await;
    assert!(original(&app, &video_of(&rest)) == clip);

    let whole = creation(clip.clone()).await.unwrap();
    assert_eq!(whole.status(), 201);
    assert_eq!(number(&whole, "upload-offset"), clip.len() as u64);
    let video_id = video_of(&whole);
    let video = app.get_json(&format!("/v1/videos/{video_id}")).await;
    assert_eq!(video["title"], "at once");
    assert!(original(&app, &video_id) == clip);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn upload_metadata_downloads_false_makes_no_downloads_and_other_values_are_refused(
    pool: PgPool,
) {
    let mut app = TestApp::spawn(pool).await;
    app.start_worker(1).await;
    let clip = std::fs::read(app.clip("clip.mp4", 2, 320, 240, true).await).unwrap();
    let creation = |meta: String| {
        tus(&app, Method::POST, "/v1/uploads")
            .header("upload-length", clip.len().to_string())
            .header("upload-metadata", meta)
            .header("content-type", OFFSET_STREAM)
            .body(clip.clone())
            .send()
    };
    let refused = creation(metadata(&[("downloads", "maybe")])).await.unwrap();
    assert_eq!(refused.status(), 400);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_upload_metadata", "{problem}");

    let whole = creation(metadata(&[("downloads", "false")])).await.unwrap();
    assert_eq!(whole.status(), 201);
    let video = app
        .wait_until_ready(&video_of(&whole), Duration::from_secs(120))
        .await;
    assert!(video["playback"]["downloads"].is_null(), "{video}");
    assert!(video["playback"]["hls"].is_string(), "{video}");
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn the_sweeper_deletes_expired_uploads_and_orphaned_files(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let settings = Settings {
        interval: Duration::from_secs(1),
        reconcile_after: Duration::from_secs(30),
        sweep_min_age: prostream_worker::maintenance::SWEEP_MIN_AGE,
        object_sweep_interval: Duration::from_secs(600),
    };
    let expired = create(&app, 100, "").await;
    assert_eq!(patch(&app, &expired, 0, &[1; 40]).await.status(), 204);
    let alive = create(&app, 100, "").await;
    assert_eq!(patch(&app, &alive, 0, &[1; 40]).await.status(), 204);
    // A completed upload's record is a receipt; when it expires the video stays.
    let clip = std::fs::read(app.clip("clip.mp4", 1, 160, 120, false).await).unwrap();
    let done = create(&app, clip.len(), "").await;
    let video_id = video_of(&patch(&app, &done, 0, &clip).await);
    for path in [&expired, &done] {
        sqlx::query("UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = $1")
            .bind(upload_id(path))
            .execute(&app.pool)
            .await
            .unwrap();
    }
    assert_eq!(head(&app, &expired).await.status(), 410);
    let late = patch(&app, &expired, 40, &[1; 10]).await;
    assert_eq!(problem(late).await, (410, "upload_expired".into()));

    // Bytes without a record: an old one (orphaned) and a young one (a creation in progress).
    let tus_dir = app.media_dir.join("uploads/.tus");
    let orphan = tus_dir.join(Uuid::now_v7().to_string());
    let young = tus_dir.join(Uuid::now_v7().to_string());
    std::fs::write(&orphan, b"left behind").unwrap();
    std::fs::write(&young, b"just created").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();

    let ctx = app.job_context().await;
    let tick = maintenance::tick(&ctx, settings).await.unwrap();
    assert_eq!(tick.swept, 2, "{tick:?}");
    assert!(!tus_file(&app, &expired).exists());
    assert!(!orphan.exists());
    assert!(young.exists());
    assert!(tus_file(&app, &alive).exists());
    assert_eq!(app.count("uploads").await, 1);
    assert_eq!(head(&app, &expired).await.status(), 404);
    assert_eq!(head(&app, &done).await.status(), 404);
    assert_eq!(number(&head(&app, &alive).await, "upload-offset"), 40);
    assert!(
        original(&app, &video_id) == clip,
        "the video keeps its original"
    );
    assert_eq!(app.count("videos").await, 1);
    app.shutdown().await;
}

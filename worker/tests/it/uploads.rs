//! What `POST /v1/videos` refuses, and that a refusal leaves nothing behind.

use crate::common;

use std::time::Duration;

use common::{TestApp, eventually, make_clip, scratch};
use prostream::config::MediaLimits;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn assert_nothing_left(app: &TestApp) {
    app.assert_no_uploads_left();
    assert_eq!(app.count("videos").await, 0);
    assert_eq!(app.count("jobs").await, 0);
    assert_eq!(app.queued_tasks().await, 0, "nothing was pushed to Redis");
}

fn assert_problem(status: u16, body: &serde_json::Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert_eq!(body["status"], want_status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn empty_random_text_and_truncated_uploads_are_refused_with_their_codes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let fixtures = scratch();
    let clip = make_clip(&fixtures, "whole.mp4", 4, 640, 360, true).await;
    let whole = std::fs::read(&clip).unwrap();
    // ffmpeg writes the index (moov) at the end: cutting the file loses it.
    let truncated = whole[..whole.len() / 2].to_vec();
    // With the index up front the header survives, but the data ends early.
    let faststart = fixtures.join("faststart.mp4");
    let remux = tokio::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-i",
            clip.to_str().unwrap(),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
        ])
        .arg(&faststart)
        .status()
        .await
        .unwrap();
    assert!(remux.success());
    let faststart = std::fs::read(&faststart).unwrap();
    let faststart_cut = faststart[..faststart.len() / 2].to_vec();
    let random: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();

    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        ("empty", Vec::new(), "video/mp4", 422, "empty_upload"),
        (
            "random bytes",
            random,
            "application/octet-stream",
            415,
            "unsupported_media",
        ),
        (
            "text",
            b"just some text, not a video\n".repeat(100),
            "video/mp4",
            415,
            "unsupported_media",
        ),
        (
            "truncated mp4",
            truncated,
            "video/mp4",
            422,
            "truncated_media",
        ),
        (
            "truncated faststart mp4",
            faststart_cut,
            "video/mp4",
            422,
            "truncated_media",
        ),
        (
            "json without a url",
            b"{}".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
    ];
    for (what, body, content_type, status, code) in cases {
        let (got, problem) = app.upload_bytes(body, content_type).await;
        assert_problem(got, &problem, status, code);
        eprintln!("{what}: {problem}");
    }
    assert_nothing_left(&app).await;
    app.shutdown().await;
    std::fs::remove_dir_all(fixtures).unwrap();
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn problem_responses_use_the_problem_json_media_type(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let response = app.post_body("/v1/videos", "video/mp4", Vec::new()).await;
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn uploads_larger_than_the_cap_get_413_and_leave_nothing(pool: PgPool) {
    let cap = 64 * 1024;
    let app = TestApp::spawn_with_upload_cap(pool, cap).await;
    let body = vec![7u8; cap as usize + 1];

    // Announced by Content-Length.
    let (status, problem) = app.upload_bytes(body.clone(), "video/mp4").await;
    assert_problem(status, &problem, 413, "upload_too_large");

    // Streamed without a length: the cap is enforced while writing.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(8192).map(|c| Ok(c.to_vec())).collect();
    let chunked = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = app
        .post_body("/v1/videos", "application/octet-stream", chunked)
        .await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["code"],
        "upload_too_large"
    );

    // Inside a multipart form.
    let form = reqwest::multipart::Form::new().text("title", "big").part(
        "file",
        reqwest::multipart::Part::bytes(body).file_name("big.mp4"),
    );
    let response = app.post_multipart("/v1/videos", form).await;
    assert_eq!(response.status(), 413);

    assert_nothing_left(&app).await;
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_body_that_breaks_off_mid_stream_is_not_queued(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/videos HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: video/mp4\r\nContent-Length: 1000000\r\n\r\n",
        app.key
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&[0u8; 50_000]).await.unwrap();
    socket.shutdown().await.unwrap(); // the client goes away after 5 % of the body
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(!reply.starts_with("HTTP/1.1 202"), "{reply}");
    // The server notices asynchronously: wait for it to clean up.
    eventually(
        Duration::from_secs(10),
        "the broken upload's file is removed",
        async || app.entries("uploads").is_empty(),
    )
    .await;
    assert_nothing_left(&app).await;
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_multipart_upload_is_accepted_with_its_title(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("form.mp4", 2, 320, 240, true).await;
    let form = reqwest::multipart::Form::new()
        .text("title", "Holiday")
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&clip).unwrap()).file_name("form.mp4"),
        );
    let response = app.post_multipart("/v1/videos", form).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let video: serde_json::Value = response.json().await.unwrap();
    assert_eq!(video["title"], "Holiday");
    assert_eq!(
        location,
        format!("/v1/videos/{}", video["id"].as_str().unwrap())
    );
    assert_eq!(video["source"]["width"], 320);
    assert_eq!(app.entries("uploads"), [video["id"].as_str().unwrap()]);

    let form = reqwest::multipart::Form::new().text("title", "no file");
    let response = app.post_multipart("/v1/videos", form).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["code"],
        "missing_file"
    );
    app.shutdown().await;
}

/// A multipart form with `file` and the given text fields.
fn form_with(
    clip: &std::path::Path,
    fields: &[(&'static str, &'static str)],
) -> reqwest::multipart::Form {
    let file = reqwest::multipart::Part::bytes(std::fs::read(clip).unwrap()).file_name("form.mp4");
    fields
        .iter()
        .fold(reqwest::multipart::Form::new(), |form, (name, value)| {
            form.text(*name, *value)
        })
        .part("file", file)
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_multipart_upload_takes_its_visibility_field_and_checks_every_field_given(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("form.mp4", 2, 320, 240, true).await;
    // The server's default is private: the field makes it public.
    let response = app
        .post_multipart("/v1/videos", form_with(&clip, &[("visibility", "public")]))
        .await;
    assert_eq!(response.status(), 202);
    let video: serde_json::Value = response.json().await.unwrap();
    assert_eq!(video["visibility"], "public", "{video}");

    // The query wins over the field.
    let response = app
        .post_multipart(
            "/v1/videos?visibility=private",
            form_with(&clip, &[("visibility", "public")]),
        )
        .await;
    assert_eq!(response.status(), 202);
    let video: serde_json::Value = response.json().await.unwrap();
    assert_eq!(video["visibility"], "private", "{video}");

    // A field that loses to the query is checked all the same, and a refusal keeps nothing.
    for (path, fields, code) in [
        (
            "/v1/videos",
            [("visibility", "Public")],
            "invalid_visibility",
        ),
        (
            "/v1/videos?visibility=public",
            [("visibility", "everyone")],
            "invalid_visibility",
        ),
        (
            "/v1/videos?title=Fine",
            [("title", "bad\u{1b}title")],
            "invalid_title",
        ),
    ] {
        let response = app.post_multipart(path, form_with(&clip, &fields)).await;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_problem(status, &body, 400, code);
    }
    assert_eq!(app.count("videos").await, 2);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn sources_beyond_the_configured_limits_are_refused(pool: PgPool) {
    let app = TestApp::spawn_with(
        pool,
        MediaLimits {
            max_duration_secs: 2.5,
            max_width: 400,
            max_frame_rate: 25.0,
            ..MediaLimits::default()
        },
    )
    .await;
    let long = app.clip("long.mp4", 3, 320, 240, false).await;
    let wide = app.clip("wide.mp4", 1, 640, 240, false).await;
    for (clip, code) in [(long, "duration_exceeded"), (wide, "dimensions_exceeded")] {
        let (status, problem) = app.upload(&clip, "video/mp4").await;
        assert_problem(status, &problem, 422, code);
    }
    // 30 fps against a 25 fps cap.
    let fast = app.clip("fast.mp4", 1, 320, 240, false).await;
    let (status, problem) = app.upload(&fast, "video/mp4").await;
    assert_problem(status, &problem, 422, "frame_rate_exceeded");
    assert_nothing_left(&app).await;
    app.shutdown().await;
}

//! Input from an adversary, against the real API, Postgres, Redis and ffprobe: titles that forge
//! lines or reverse text, URLs that spell loopback in IPv6, and playback tokens minted to last.

use crate::common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use common::{TestApp, header_str};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;

/// Answers 200 to every request on 127.0.0.1 and counts them.
async fn loopback_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            "secret internal answer"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn assert_problem(answer: &(u16, Value), status: u16, code: &str, what: &str) {
    assert_eq!(answer.0, status, "{what}: {}", answer.1);
    assert_eq!(answer.1["code"], code, "{what}: {}", answer.1);
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn ipv6_spellings_of_loopback_are_refused_for_url_ingest_and_webhooks(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (server, hits) = loopback_server().await;
    let port = server.port();
    for host in [
        "[::127.0.0.1]",        // IPv4-compatible
        "[::ffff:127.0.0.1]",   // IPv4-mapped
        "[::ffff:0:127.0.0.1]", // SIIT-translated
        "[64:ff9b::127.0.0.1]", // NAT64
        "[2002:7f00:1::1]",     // 6to4
    ] {
        let url = format!("http://{host}:{port}/clip.mp4");
        let ingest = app.post_json("/v1/videos", &json!({ "url": url })).await;
        assert_problem(&status_and_json(ingest).await, 422, "url_forbidden", &url);
        let hook = app
            .post_json(
                "/v1/webhooks",
                &json!({ "url": url, "events": ["video.ready"] }),
            )
            .await;
        assert_problem(&status_and_json(hook).await, 422, "url_forbidden", &url);
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the loopback server was reached"
    );
    assert_eq!(app.count("videos").await, 0);
    assert_eq!(app.count("webhooks").await, 0);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_name_that_resolves_inward_is_refused_without_saying_where_it_points(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (server, hits) = loopback_server().await;
    // `localhost` is not on the allowlist (127.0.0.1:* is): refused at registration, after DNS.
    let url = format!("http://localhost:{}/hook", server.port());
    let hook = app
        .post_json(
            "/v1/webhooks",
            &json!({ "url": url, "events": ["video.ready"] }),
        )
        .await;
    let answer = status_and_json(hook).await;
    assert_problem(&answer, 422, "url_forbidden", &url);
    let detail = answer.1["detail"].as_str().unwrap();
    assert!(
        detail.contains("localhost resolves to an internal address"),
        "{detail}"
    );
    assert!(
        !detail.contains("127.0.0.1") && !detail.contains("::1"),
        "{detail}"
    );

    // URL ingest learns it in the downloader: the video fails with the same discretion.
    let ingest = app.post_json("/v1/videos", &json!({ "url": url })).await;
    let (status, video) = status_and_json(ingest).await;
    assert_eq!(status, 202, "{video}");
    let video = app
        .wait_for_status(
            video["id"].as_str().unwrap(),
            &["failed", "queued"],
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(video["error"]["code"], "url_forbidden", "{video}");
    let message = video["error"].to_string();
    assert!(
        !message.contains("127.0.0.1") && !message.contains("::1"),
        "{message}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    app.shutdown().await;
}

/// Titles that forge log lines, clear terminals or read backwards.
const BAD_TITLES: [&str; 5] = [
    "two\nlines",
    "clear \u{1b}[2J",
    "c1 \u{85} next line",
    "invoice\u{202E}fdp.exe",
    "isolated \u{2066}text\u{2069}",
];

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_title_with_control_or_bidi_characters_is_refused_wherever_it_enters(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("t.mp4", 1, 160, 120, false).await;
    let bytes = std::fs::read(&clip).unwrap();
    let existing = app.upload_ok(&clip).await;

    for title in BAD_TITLES {
        // A raw upload with `?title=`.
        let raw = app
            .http
            .post(app.url("/v1/videos"))
            .query(&[("title", title)])
            .header("content-type", "video/mp4")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_problem(&status_and_json(raw).await, 400, "invalid_title", "?title=");
        // A multipart upload's `title` field.
        let form = reqwest::multipart::Form::new().text("title", title).part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name("t.mp4"),
        );
        let multipart = app.post_multipart("/v1/videos", form).await;
        assert_problem(
            &status_and_json(multipart).await,
            400,
            "invalid_title",
            "multipart",
        );
        // URL ingest's JSON.
        let ingest = app
            .post_json(
                "/v1/videos",
                &json!({ "url": "http://example.com/a.mp4", "title": title }),
            )
            .await;
        assert_problem(
            &status_and_json(ingest).await,
            400,
            "invalid_title",
            "URL ingest",
        );
        // tus metadata, at creation.
        let tus = app
            .http
            .post(app.url("/v1/uploads"))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", bytes.len().to_string())
            .header("upload-metadata", format!("title {}", BASE64.encode(title)))
            .send()
            .await
            .unwrap();
        assert_problem(&status_and_json(tus).await, 400, "invalid_title", "tus");
        // PATCH of a video.
        let patch = app
            .patch_json(
                &format!("/v1/videos/{existing}"),
                &json!({ "title": title }),
            )
            .await;
        assert_problem(&status_and_json(patch).await, 400, "invalid_title", "PATCH");
    }
    assert_eq!(app.count("videos").await, 1);
    assert_eq!(app.count("uploads").await, 0);
    // Uploaded raw, without a title or a file name: the PATCHes changed nothing.
    assert_eq!(
        app.get_json(&format!("/v1/videos/{existing}")).await["title"],
        "Untitled"
    );
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_file_name_used_as_the_title_loses_its_control_and_bidi_characters(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("n.mp4", 1, 160, 120, false).await;
    let bytes = std::fs::read(&clip).unwrap();
    // A tus upload carries its file name as arbitrary bytes in base64.
    let name = "\u{202E}4pm\n.mp4\u{1b}";
    let created = app
        .http
        .post(app.url("/v1/uploads"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", bytes.len().to_string())
        .header(
            "upload-metadata",
            format!("filename {}", BASE64.encode(name)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = header_str(&created, "location").to_owned();
    let done = app
        .http
        .patch(app.url(&location))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 204);
    let video_id = header_str(&done, "prostream-video-id").to_owned();
    let video = app.get_json(&format!("/v1/videos/{video_id}")).await;
    assert_eq!(video["title"], "4pm.mp4", "{video}");
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_playback_token_signed_to_expire_far_in_the_future_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let video = prostream::ids::VideoId::generate();
    let now = OffsetDateTime::now_utc();
    let fair = app.signer().sign(video, now).token;
    let year_2100 = app.signer().sign_until(video, 4_102_444_800).token;
    let ttl_and_a_day =
        u64::try_from(now.unix_timestamp()).unwrap() + app.signer().ttl().as_secs() + 24 * 3600;
    let too_long = app.signer().sign_until(video, ttl_and_a_day).token;
    let get = |token: String| {
        app.http
            .get(app.url(&format!(
                "/v1/videos/{video}/signed/{token}/1-a/master.m3u8"
            )))
            .send()
    };
    // The token is checked first: a fair one passes and meets a video that has no files.
    let fair = status_and_json(get(fair).await.unwrap()).await;
    assert_problem(&fair, 404, "not_found", "a fair token");
    for (token, what) in [(year_2100, "2100"), (too_long, "TTL + 1 day")] {
        let refused = status_and_json(get(token).await.unwrap()).await;
        assert_problem(&refused, 403, "playback_token_invalid", what);
    }
    app.shutdown().await;
}

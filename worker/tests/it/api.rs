//! Reading videos, listing them, serving HLS files, and health.

use crate::common;

use common::{TestApp, header_str, metrics_text};
use sqlx::PgPool;

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn videos_are_listed_newest_first_with_a_stable_cursor(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("c.mp4", 1, 160, 120, false).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (status, video) = app.upload(&clip, "video/mp4").await;
        assert_eq!(status, 202);
        ids.push(video["id"].as_str().unwrap().to_owned());
    }
    ids.reverse(); // newest first

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/videos?limit=2&cursor={c}"),
            None => "/v1/videos?limit=2".to_owned(),
        };
        let page = app.get_json(&path).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let queued = app.get_json("/v1/videos?status=queued").await;
    assert_eq!(queued["items"].as_array().unwrap().len(), 5);
    let ready = app.get_json("/v1/videos?status=ready").await;
    assert!(ready["items"].as_array().unwrap().is_empty());
    assert!(ready["next_cursor"].is_null());

    for (query, code) in [
        ("status=done", "invalid_status"),
        ("limit=0", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("cursor=nope", "invalid_cursor"),
    ] {
        let response = app.get(&format!("/v1/videos?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{query}");
    }
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn unknown_and_malformed_ids_are_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for path in [
        "/v1/videos/01900000-0000-7000-8000-000000000000",
        "/v1/videos/not-a-uuid",
        "/v1/videos/not-a-uuid/hls/1-abcd1234/master.m3u8",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "not_found", "{path}");
    }
    // Without a playback token an unknown video answers like a private one: whether a private
    // video exists is not for anyone to find out.
    let response = app
        .get("/v1/videos/01900000-0000-7000-8000-000000000000/hls/1-abcd1234/master.m3u8")
        .await;
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "playback_token_required");
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn hls_paths_other_than_plain_file_names_of_the_video_are_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    // An attempt's output with files, and a file just outside its directory.
    let id = "01900000-0000-7000-8000-000000000001";
    // A public video: its files are served without a token (tests/playback.rs covers private ones).
    sqlx::query(
        "INSERT INTO videos (id, title, source_path, size_bytes, format_name, duration_s, visibility)
         VALUES ($1::uuid, 'fixture', 'uploads/fixture', 1, 'mov,mp4', 1, 'public')",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let dir = app.media_dir.join("videos").join(id).join("1-abcd1234");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("master.m3u8"), "#EXTM3U\n").unwrap();
    std::fs::write(dir.join("720p_00000.m4s"), vec![1u8; 1000]).unwrap();
    // Above the size read whole into memory: streamed instead.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("1080p_00000.m4s"), &big).unwrap();
    std::fs::write(dir.join(".secret.m3u8"), "no").unwrap();
    std::fs::write(
        app.media_dir.join("videos").join(id).join("outside.m3u8"),
        "no",
    )
    .unwrap();

    let base = format!("/v1/videos/{id}/hls/1-abcd1234");
    let ok = app.get(&format!("{base}/master.m3u8")).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["cache-control"], "public, max-age=1");

    let get_range = |file: &str, range: &'static str| {
        app.http
            .get(app.url(&format!("{base}/{file}")))
            .header("range", range)
            .send()
    };
    let range = get_range("720p_00000.m4s", "bytes=100-199").await.unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(range.headers()["content-range"], "bytes 100-199/1000");
    assert_eq!(range.headers()["content-type"], "video/iso.segment");
    assert!(header_str(&range, "cache-control").contains("immutable"));
    assert_eq!(range.bytes().await.unwrap().len(), 100);

    // An empty file (a segment ffmpeg has just created) has no byte to give: 416, not a 206
    // that promises one.
    std::fs::write(dir.join("240p_00000.m4s"), b"").unwrap();
    let empty = get_range("240p_00000.m4s", "bytes=0-99").await.unwrap();
    assert_eq!(empty.status(), 416);
    assert_eq!(empty.headers()["content-range"], "bytes */0");

    // Plain GETs (small: read whole; big: streamed) and a HEAD give the same headers and bytes.
    for (file, expected) in [
        ("720p_00000.m4s", vec![1u8; 1000]),
        ("1080p_00000.m4s", big),
    ] {
        let url = app.url(&format!("{base}/{file}"));
        let whole = app.http.get(&url).send().await.unwrap();
        assert_eq!(whole.status(), 200, "{file}");
        assert_eq!(whole.headers()["content-type"], "video/iso.segment");
        assert_eq!(
            whole.headers()["content-length"],
            expected.len().to_string().as_str()
        );
        assert!(header_str(&whole, "cache-control").contains("immutable"));
        assert!(
            whole.bytes().await.unwrap() == expected,
            "{file}: bytes differ"
        );
        let head = app.http.head(&url).send().await.unwrap();
        assert_eq!(head.status(), 200, "{file}");
        assert_eq!(
            head.headers()["content-length"],
            expected.len().to_string().as_str()
        );
    }

    for (file, status) in [
        ("..%2Foutside.m3u8", 400),
        ("%2E%2E%2Foutside.m3u8", 400),
        (".secret.m3u8", 400),
        // Clients resolve a bare `..` themselves; it then names no route.
        ("..", 404),
        ("master.m3u8%00", 400),
        ("passwd", 404),
        ("missing.m3u8", 404),
    ] {
        let response = app.get(&format!("{base}/{file}")).await;
        assert_eq!(response.status(), status, "{file}");
    }
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn health_and_readiness_answer(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let health = app.get_json("/healthz").await;
    assert_eq!(health["status"], "ok");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // Closing the pool makes Postgres unreachable for this API instance.
    app.pool.close().await;
    let not_ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(not_ready.status(), 503);
    let body: serde_json::Value = not_ready.json().await.unwrap();
    assert_eq!(body["code"], "not_ready");
    assert!(body["detail"].as_str().unwrap().contains("Postgres"));
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn metrics_on_the_metrics_listener_report_jobs_by_state_queue_depth_and_uploads(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("m.mp4", 1, 160, 120, false).await;
    app.upload_ok(&clip).await;
    app.upload_ok(&clip).await;
    let (status, _) = app.upload_bytes(b"not a video".to_vec(), "video/mp4").await;
    assert_eq!(status, 415);

    let metrics = app.serve_metrics().await;
    let scraped = app.http.get(format!("{metrics}/metrics")).send().await;
    let text = metrics_text(scraped.unwrap()).await;
    for line in [
        "prostream_jobs{state=\"queued\"} 2",
        "prostream_jobs{state=\"ready\"} 0",
        "prostream_queue_depth 2",
        "# TYPE prostream_jobs gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        text.contains("prostream_uploads_total{result=\"accepted\"}"),
        "{text}"
    );
    assert!(
        text.contains("prostream_uploads_total{result=\"unsupported_media\"}"),
        "{text}"
    );
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn metrics_are_not_served_on_the_api_port(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.new_key("metrics-admin", true).await;
    for key in [None, Some(&app.key), Some(&admin)] {
        let mut request = reqwest::Client::new().get(app.url("/metrics"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
        assert!(body["detail"].as_str().unwrap().contains("METRICS_ADDR"));
    }
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn the_openapi_document_and_its_offline_docs_page_are_served(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let served = app.get_json("/openapi.json").await;
    let built = serde_json::to_value(prostream::http::openapi()).unwrap();
    assert_eq!(served, built);
    assert_eq!(served["openapi"], "3.1.0");

    let page = app.get_text(&app.url("/docs/")).await;
    assert!(page.contains("swagger-ui"), "{page}");
    // Every asset comes from this server: the page works without the internet.
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        assert!(page.contains(asset), "{asset} not referenced");
        let response = app.get(&format!("/docs/{asset}")).await;
        assert_eq!(response.status(), 200, "{asset}");
    }
    assert!(
        !page.contains("https://"),
        "the page loads something remote"
    );
    let init = app.get_text(&app.url("/docs/swagger-initializer.js")).await;
    assert!(init.contains("/openapi.json"), "{init}");
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn unknown_v1_paths_answer_a_not_found_problem_and_other_paths_stay_as_they_were(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let id = "01900000-0000-7000-8000-000000000000";
    for (path, trailing_slash) in [
        ("/v1/videos/", true),
        ("/v1/nope", false),
        ("/v1", false),
        ("/v1/", false),
        (&*format!("/v1/videos/{id}/nope"), false),
        (&*format!("/v1/videos/{id}/"), true),
    ] {
        // With a key and without: an unknown path is not an authentication question.
        for client in [&app.http, &reqwest::Client::new()] {
            let response = client.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 404, "{path}");
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json",
                "{path}"
            );
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["code"], "not_found", "{path}");
            assert_eq!(body["status"], 404, "{path}");
            let detail = body["detail"].as_str().unwrap();
            assert_eq!(
                detail.contains("do not end with `/`"),
                trailing_slash,
                "{path}: {detail}"
            );
        }
    }
    // A known path with another method is still 405, and the routes around /v1 are unchanged.
    let response = app.http.put(app.url("/v1/videos")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    for path in ["/nope", "/v1nope"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            response.bytes().await.unwrap().is_empty(),
            "{path} answers a body"
        );
    }
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn progress_is_answered_to_one_decimal(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("p.mp4", 1, 160, 120, false).await;
    let id = app.upload_ok(&clip).await;
    // What a worker writes mid-encode.
    sqlx::query(
        "UPDATE jobs SET state = 'processing', stage = 'transcoding', progress = 6.506665,
                         started_at = now()
         WHERE video_id = $1::uuid",
    )
    .bind(&id)
    .execute(&app.pool)
    .await
    .unwrap();
    let response = app
        .http
        .get(app.url(&format!("/v1/videos/{id}")))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(text.contains(r#""progress":6.5,"#), "{text}");
    let page = app.get_json("/v1/videos").await;
    assert_eq!(page["items"][0]["progress"].to_string(), "6.5");
    app.shutdown().await;
}

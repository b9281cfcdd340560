//! `STORAGE_BACKEND=s3` end to end, against a real S3-compatible server (s3s-fs, started by
//! scripts/test.sh): the API and the worker each have their own empty MEDIA_ROOT, so everything
//! they exchange goes through the bucket. Each test works under a key prefix of its own.

use crate::common;

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use common::{TestApp, eventually, make_clip, s3_server, scratch};
use object_store::{ObjectStoreExt, PutPayload};
use prostream::{
    config::StorageConfig,
    storage::{self, MediaRoot, S3Store, sweep::Clock},
};
use prostream_worker::{
    maintenance::{self, Settings},
    pipeline::Outcome,
};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

const ENCODE_LIMIT: Duration = Duration::from_secs(240);

/// A client that sends no API key (a player's) and shows redirects instead of following them.
fn player() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Uploads `clip`, runs its job with a worker context of the test (on the workers' own disk).
async fn ready_video(app: &TestApp, clip: &Path, keep_originals: bool) -> Value {
    let id = app.upload_ok(clip).await;
    let mut ctx = app.job_context().await;
    ctx.keep_originals = keep_originals;
    let outcome = app.process(&ctx, &id).await;
    assert_eq!(outcome, Outcome::Ready);
    let video = app.get_json(&format!("/v1/videos/{id}")).await;
    assert_eq!(video["status"], "ready", "{video}");
    video
}

/// GETs `url` (a segment, init segment or poster through the API), expects a redirect to a
/// presigned URL of the bucket, and returns the object's bytes from there.
async fn follow_presigned(url: &str) -> Vec<u8> {
    let redirect = player().get(url).send().await.unwrap();
    assert_eq!(redirect.status(), 307, "{url}");
    assert_eq!(redirect.headers()["cache-control"], "no-store");
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let server = s3_server();
    assert!(
        location.starts_with(&format!("{}/{}/", server.endpoint, server.bucket)),
        "{location}"
    );
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let expires: u64 = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("X-Amz-Expires="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&expires), "{expires}");
    let object = player().get(&location).send().await.unwrap();
    assert_eq!(object.status(), 200, "{location}");
    object.bytes().await.unwrap().to_vec()
}

/// Decodes an init segment followed by a media segment with ffmpeg.
async fn assert_decodes(dir: &Path, name: &str, init: &[u8], segment: &[u8]) {
    let sample = dir.join(name);
    std::fs::write(&sample, [init, segment].concat()).unwrap();
    let decoded = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args(["stream=codec_type,nb_read_frames", "-of", "csv=p=0"])
        .arg(&sample)
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&decoded.stdout);
    assert!(
        decoded.status.success() && decoded.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let frames: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("video,"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(frames > 0, "no video frame decoded from {name}: {report}");
}

/// Nothing of a job stays on the worker's disk, and nothing of an upload on the API's.
async fn assert_no_local_leftovers(app: &TestApp) {
    let none = Vec::<String>::new();
    // The worker removes its scratch right after recording the result: wait for it.
    eventually(
        Duration::from_secs(10),
        "the worker removes its scratch",
        async || {
            let left = app.worker_entries("work");
            if left == none {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    )
    .await;
    assert_eq!(app.worker_entries("videos"), none);
    assert_eq!(app.worker_entries("uploads"), none);
    assert_eq!(app.entries("uploads"), none, "API uploads");
    assert_eq!(app.entries("videos"), none);
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn an_upload_on_s3_plays_through_the_api_with_segments_redirected_to_presigned_urls(
    pool: PgPool,
) {
    let mut app = TestApp::spawn_s3(pool).await;
    let fixtures = scratch();
    let clip = make_clip(&fixtures, "clip.mp4", 4, 640, 360, true).await;
    app.start_worker(1).await;
    let id = app.upload_ok(&clip).await;
    let video = app.wait_until_ready(&id, ENCODE_LIMIT).await;
    let base = TestApp::hls_base(&video);
    assert!(base.contains("/signed/"), "a private video: {base}");
    let attempt = base.rsplit('/').next().unwrap();

    // The playlists come from the API, read from the bucket.
    let master = player()
        .get(app.url(&format!("{base}/master.m3u8")))
        .send()
        .await
        .unwrap();
    assert_eq!(master.status(), 200);
    assert_eq!(
        master.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    let master = master.text().await.unwrap();
    let master = m3u8_rs::parse_master_playlist_res(master.as_bytes()).unwrap();
    assert_eq!(master.variants.len(), 2);
    for variant in &master.variants {
        let text = app
            .get_text(&app.url(&format!("{base}/{}", variant.uri)))
            .await;
        let playlist = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert!(playlist.end_list, "{text}");
        // Segments and init segments: a redirect to the bucket, whose bytes decode.
        let init_name = playlist.segments[0].map.as_ref().unwrap().uri.clone();
        let init = follow_presigned(&app.url(&format!("{base}/{init_name}"))).await;
        let last = playlist.segments.last().unwrap();
        let segment = follow_presigned(&app.url(&format!("{base}/{}", last.uri))).await;
        assert_decodes(&fixtures, &format!("{}.mp4", variant.uri), &init, &segment).await;
    }
    // HEAD is signed for HEAD: the bucket accepts it.
    let head = player()
        .head(app.url(&format!("{base}/poster.jpg")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 307);
    let location = head.headers()["location"].to_str().unwrap();
    assert_eq!(player().head(location).send().await.unwrap().status(), 200);

    // A player given only the master URL plays every stream (ffmpeg follows the redirects).
    let master = app.url(&format!("{base}/master.m3u8"));
    common::media::ffmpeg_decodes(&master, &["-map", "0"]).await;

    // Authorisation comes first, exactly as on the volume: no presigned URL without it.
    let unsigned = format!("/v1/videos/{id}/hls/{attempt}/240p_init.mp4");
    let refused = player().get(app.url(&unsigned)).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("location").is_none());
    let token = base.split('/').nth(5).unwrap();
    let forged = base.replace(token, &format!("{token}x"));
    let refused = player()
        .get(app.url(&format!("{forged}/240p_init.mp4")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("location").is_none());

    // Everything is in the bucket, nothing on either disk.
    let keys = s3_server().keys(&app.storage.s3_prefix).await;
    assert!(keys.contains(&format!("uploads/{id}")), "{keys:?}");
    for file in ["master.m3u8", "240p.m3u8", "360p.m3u8", "poster.jpg"] {
        let key = format!("videos/{id}/{attempt}/{file}");
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
    assert!(
        keys.iter().all(|k| !k.starts_with(".prostream-check")),
        "{keys:?}"
    );
    app.shutdown_workers().await;
    assert_no_local_leftovers(&app).await;
    app.shutdown().await;
    std::fs::remove_dir_all(fixtures).unwrap();
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_video_on_s3_is_playable_while_it_encodes_and_no_playlist_lists_a_missing_segment(
    pool: PgPool,
) {
    let mut app = TestApp::spawn_s3(pool).await;
    let clip = app.clip("long.mp4", 40, 640, 360, true).await;
    app.start_worker(1).await;
    let id = app.upload_ok(&clip).await;
    let video = app.wait_until_playable(&id, ENCODE_LIMIT).await;
    assert_eq!(video["status"], "processing", "{video}");
    let base = TestApp::hls_base(&video);

    // Read the playlists over and over while the encode goes on: every line they list is in
    // the bucket already.
    let mut rounds = 0;
    let mut growing_seen = false;
    eventually(ENCODE_LIMIT, "the playlists end", async || {
        let text = app.get_text(&app.url(&format!("{base}/master.m3u8"))).await;
        let master = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(master.variants.len(), 2, "{text}");
        let mut finished = true;
        for variant in &master.variants {
            let text = app
                .get_text(&app.url(&format!("{base}/{}", variant.uri)))
                .await;
            let playlist = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
            assert!(!playlist.segments.is_empty(), "{text}");
            finished &= playlist.end_list;
            growing_seen |= !playlist.end_list;
            let init = playlist.segments[0].map.as_ref().unwrap().uri.clone();
            let last = &playlist.segments.last().unwrap().uri;
            for file in [&init, last] {
                let response = player()
                    .get(app.url(&format!("{base}/{file}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 307, "{file}");
                let location = response.headers()["location"].to_str().unwrap();
                let object = player().get(location).send().await.unwrap();
                assert_eq!(object.status(), 200, "{file} listed before it was stored");
            }
        }
        rounds += 1;
        finished
    })
    .await;
    assert!(growing_seen, "the playlists were never seen growing");
    eprintln!("{rounds} rounds of playlist checks");
    app.wait_until_ready(&id, ENCODE_LIMIT).await;
    app.shutdown_workers().await;
    assert_no_local_leftovers(&app).await;
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn deleting_a_video_on_s3_removes_its_original_and_every_object_under_its_prefix(
    pool: PgPool,
) {
    let app = TestApp::spawn_s3(pool).await;
    let clip = app.clip("clip.mp4", 2, 320, 240, true).await;
    let kept = ready_video(&app, &clip, true).await;
    let dropped = ready_video(&app, &clip, false).await;
    let (kept, dropped) = (
        kept["id"].as_str().unwrap(),
        dropped["id"].as_str().unwrap(),
    );
    let prefix = &app.storage.s3_prefix;
    let server = s3_server();
    let keys = server.keys(prefix).await;
    assert!(keys.contains(&format!("uploads/{kept}")), "{keys:?}");
    assert!(
        !keys.contains(&format!("uploads/{dropped}")),
        "KEEP_ORIGINALS=false deletes the original: {keys:?}"
    );
    // Another attempt's leftovers under the same video go too.
    server
        .client()
        .put(
            &object_store::path::Path::from(format!("{prefix}/videos/{kept}/9-stray/x.m4s")),
            PutPayload::from_static(b"x"),
        )
        .await
        .unwrap();

    for id in [kept, dropped] {
        let response = app.delete(&format!("/v1/videos/{id}")).await;
        assert_eq!(response.status(), 204);
    }
    let left = server.keys(prefix).await;
    assert_eq!(left, Vec::<String>::new(), "left in the bucket");
    assert_no_local_leftovers(&app).await;
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_resumable_upload_on_s3_ends_in_the_bucket_and_leaves_nothing_on_the_api_disk(
    pool: PgPool,
) {
    let app = TestApp::spawn_s3(pool).await;
    let clip = std::fs::read(app.clip("clip.mp4", 1, 160, 120, false).await).unwrap();
    let tus = |method, path: &str| {
        app.http
            .request(method, app.url(path))
            .header("tus-resumable", "1.0.0")
    };
    let created = tus(reqwest::Method::POST, "/v1/uploads")
        .header("upload-length", clip.len().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let half = clip.len() / 2;
    for (offset, part) in [(0, &clip[..half]), (half, &clip[half..])] {
        let response = tus(reqwest::Method::PATCH, &location)
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(part.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        if offset == 0 {
            // Incomplete: the bytes so far wait on the API's own disk.
            assert_eq!(app.entries("uploads/.tus").len(), 1);
        } else {
            let video = response.headers()["prostream-video-id"].to_str().unwrap();
            let stored = s3_server()
                .client()
                .get(&object_store::path::Path::from(format!(
                    "{}/uploads/{video}",
                    app.storage.s3_prefix
                )))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert!(stored == clip, "the bucket holds the upload's bytes");
        }
    }
    assert_eq!(app.entries("uploads/.tus"), Vec::<String>::new());
    assert_eq!(app.entries("uploads"), [".tus"]);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn the_sweeper_removes_the_objects_of_dead_attempts_and_keeps_live_ones(pool: PgPool) {
    let app = TestApp::spawn_s3(pool).await;
    let clip = app.clip("c.mp4", 1, 320, 240, false).await;
    let id = app.upload_ok(&clip).await;
    // A running attempt `2-live` (its lease is good for an hour).
    sqlx::query(
        "UPDATE jobs SET state = 'processing', attempts = 2, worker_id = 'elsewhere',
                         lease_expires_at = now() + interval '1 hour', started_at = now(),
                         attempt_key = '2-live'
         WHERE video_id = $1::uuid",
    )
    .bind(&id)
    .execute(&app.pool)
    .await
    .unwrap();
    let gone = Uuid::now_v7();
    let prefix = &app.storage.s3_prefix;
    let client = s3_server().client();
    for key in [
        format!("videos/{id}/1-dead/x.m4s"),
        format!("videos/{id}/2-live/x.m4s"),
        format!("videos/{gone}/1-orphan/a.m4s"),
        format!("videos/{gone}/1-orphan/b.m3u8"),
    ] {
        let path = object_store::path::Path::from(format!("{prefix}/{key}"));
        client
            .put(&path, PutPayload::from_static(b"x"))
            .await
            .unwrap();
    }
    // Scratch on the worker's disk: a dead attempt's, and the running one's.
    let work = app.worker_media_dir.join("work");
    for dir in [
        work.join(gone.to_string()).join("1-orphan"),
        work.join(&id).join("2-live"),
    ] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("source"), b"x").unwrap();
    }

    let mut ctx = app.job_context().await;
    let settings = Settings {
        interval: Duration::from_secs(1),
        reconcile_after: Duration::from_secs(30),
        sweep_min_age: maintenance::SWEEP_MIN_AGE,
        object_sweep_interval: Duration::from_secs(600),
    };
    // Written moments ago: they may belong to work that is just starting.
    let tick = maintenance::tick(&ctx, settings).await.unwrap();
    assert_eq!(tick.swept, 0, "{tick:?}");
    assert_eq!(s3_server().keys(prefix).await.len(), 5);

    // An hour on: the store judges its objects (timed by the S3 server) by a clock set ahead,
    // and the scratch on the worker's disk is an hour old.
    let an_hour = Duration::from_secs(3600);
    let store = S3Store::new(&app.storage, ctx.media.clone()).unwrap();
    ctx.store = Arc::new(store.with_clock(Clock::ahead(an_hour)));
    let dead = work.join(gone.to_string());
    for dir in [dead.join("1-orphan"), dead] {
        set_back(&dir, an_hour);
    }
    let tick = maintenance::tick(&ctx, settings).await.unwrap();
    assert_eq!(
        tick.swept, 3,
        "two dead attempts' objects, one scratch dir: {tick:?}"
    );
    assert_eq!(
        s3_server().keys(prefix).await,
        [format!("uploads/{id}"), format!("videos/{id}/2-live/x.m4s")]
    );
    assert_eq!(app.worker_entries("work"), std::slice::from_ref(&id));
    assert_eq!(app.worker_entries(&format!("work/{id}")), ["2-live"]);
    app.shutdown().await;
}

/// Sets a file's (or directory's) modification time `by` back.
fn set_back(path: &Path, by: Duration) {
    std::fs::File::open(path)
        .unwrap()
        .set_modified(SystemTime::now() - by)
        .unwrap();
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn readiness_reports_a_store_that_does_not_answer(pool: PgPool) {
    let mut app = TestApp::spawn_s3(pool).await;
    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    // The same settings, pointed at a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = StorageConfig {
        s3_endpoint: dead.clone(),
        ..app.storage.clone()
    };
    let media = MediaRoot::open(&app.media_dir).await.unwrap();
    let store = S3Store::new(&config, media).unwrap();
    app.restart_api_with_store(std::sync::Arc::new(store)).await;
    let response = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_ready");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("media store") && detail.contains(&dead) && detail.contains("S3_ENDPOINT"),
        "{detail}"
    );
    app.shutdown().await;
}

/// What `storage::open` (the first thing both binaries do) says about `config`.
async fn start_error(config: &StorageConfig) -> String {
    let dir = std::env::temp_dir().join(format!("prostream-s3-start-{}", Uuid::now_v7()));
    let result = storage::open(config, &dir).await;
    std::fs::remove_dir_all(&dir).unwrap();
    let err = result.expect_err("the start should have been refused");
    err.to_string()
}

#[tokio::test]
async fn bad_s3_settings_stop_the_start_with_what_to_fix() {
    let server = s3_server();
    let good = server.config(&format!("test-{}", Uuid::now_v7().simple()));

    let missing = StorageConfig {
        s3_bucket: format!("no-such-bucket-{}", Uuid::now_v7().simple()),
        ..good.clone()
    };
    let said = start_error(&missing).await;

    assert!(
        said.contains(&format!("bucket {:?} does not exist", missing.s3_bucket))
            && said.contains("S3_BUCKET"),
        "{said}"
    );

    let wrong_secret = StorageConfig {
        s3_secret_access_key: "not-the-secret".into(),
        ..good.clone()
    };
    let said = start_error(&wrong_secret).await;
    assert!(
        said.contains("refused our credentials") && said.contains("S3_SECRET_ACCESS_KEY"),
        "{said}"
    );
    assert!(
        !said.contains("not-the-secret"),
        "no secret in messages: {said}"
    );

    let unknown_key = StorageConfig {
        s3_access_key_id: "nobody".into(),
        ..good.clone()
    };
    let said = start_error(&unknown_key).await;
    assert!(said.contains("S3_ACCESS_KEY_ID"), "{said}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = StorageConfig {
        s3_endpoint: format!("http://{}", closed.local_addr().unwrap()),
        ..good.clone()
    };
    drop(closed);
    let started = Instant::now();
    let said = start_error(&nowhere).await;
    assert!(
        said.contains("cannot reach") && said.contains("S3_ENDPOINT"),
        "{said}"
    );
    assert!(started.elapsed() < Duration::from_secs(60), "gave up late");

    let no_bucket = StorageConfig {
        s3_bucket: String::new(),
        ..good.clone()
    };
    assert!(start_error(&no_bucket).await.contains("needs S3_BUCKET"));
    let half_a_key = StorageConfig {
        s3_secret_access_key: String::new(),
        ..good.clone()
    };
    assert!(
        start_error(&half_a_key)
            .await
            .contains("S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together")
    );

    // And the good settings start.
    let dir = std::env::temp_dir().join(format!("prostream-s3-start-{}", Uuid::now_v7()));
    storage::open(&good, &dir).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    server.remove_prefix(&good.s3_prefix).await;
}

#[tokio::test]
async fn a_large_original_goes_up_in_parts_and_comes_back_whole() {
    let server = s3_server();
    let config = server.config(&format!("test-{}", Uuid::now_v7().simple()));
    let dir = std::env::temp_dir().join(format!("prostream-s3-parts-{}", Uuid::now_v7()));
    let (media, store) = storage::open(&config, &dir).await.unwrap();
    // Above one 8 MiB part: a multipart upload of three parts, the last one short.
    let bytes: Vec<u8> = (0..(19 << 20) + 12_345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = media.incoming_path();
    std::fs::write(&file, &bytes).unwrap();
    store.put_original(&file, "uploads/big").await.unwrap();
    assert!(!file.exists(), "the local file goes once it is stored");
    assert!(store.has_original("uploads/big").await.unwrap());
    let back = dir.join("back");
    let read = store.fetch_original("uploads/big", &back).await.unwrap();
    assert!(
        std::fs::read(read).unwrap() == bytes,
        "the bytes came back changed"
    );
    store.remove_original("uploads/big").await.unwrap();
    assert!(!store.has_original("uploads/big").await.unwrap());
    assert_eq!(server.keys(&config.s3_prefix).await, Vec::<String>::new());
    std::fs::remove_dir_all(dir).unwrap();
}

/// The text of a WebVTT segment of `base`, fetched through the API's redirect to the bucket.
async fn vtt_through_the_bucket(app: &TestApp, base: &str, playlist: &str) -> String {
    let text = app.get_text(&app.url(&format!("{base}/{playlist}"))).await;
    let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes())
        .unwrap_or_else(|e| panic!("{playlist}: {e}: {text}"));
    let mut all = String::new();
    for segment in &parsed.segments {
        let bytes = follow_presigned(&app.url(&format!("{base}/{}", segment.uri))).await;
        all.push_str(&String::from_utf8(bytes).unwrap());
    }
    all
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn subtitles_and_captions_on_s3_are_published_to_the_bucket_and_named_by_the_master(
    pool: PgPool,
) {
    let mut app = TestApp::spawn_s3(pool).await;
    let fixtures = scratch();
    let srt = fixtures.join("en.srt");
    std::fs::write(&srt, "1\n00:00:00,500 --> 00:00:01,500\nFrom the source\n").unwrap();
    let clip = common::media::ffmpeg(
        &fixtures,
        "subs.mkv",
        &common::media::cat(&[
            &common::media::lavfi("testsrc2=size=320x180:rate=30:duration=3"),
            &["-i", srt.to_str().unwrap(), "-map", "0", "-map", "1"],
            &["-c:v", "libx264", "-preset", "ultrafast", "-c:s", "srt"],
            &["-metadata:s:s:0", "language=eng"],
        ]),
    )
    .await;
    let id = app.upload_ok(&clip).await;
    // Added while queued: the worker names it in the master it publishes to the bucket.
    let before = app
        .post_body(
            &format!("/v1/videos/{id}/captions?language=de"),
            "text/vtt",
            "WEBVTT\n\n00:01.000 --> 00:02.000\nVor dem Encode\n",
        )
        .await;
    assert_eq!(before.status(), 201);
    app.start_worker(1).await;
    let video = app.wait_until_ready(&id, ENCODE_LIMIT).await;
    let base = TestApp::hls_base(&video);
    let attempt = base.rsplit('/').next().unwrap().to_owned();
    let master = app.get_text(&app.url(&format!("{base}/master.m3u8"))).await;
    let parsed = m3u8_rs::parse_master_playlist_res(master.as_bytes()).unwrap();
    let subs: Vec<String> = parsed
        .alternatives
        .iter()
        .filter(|m| m.media_type == m3u8_rs::AlternativeMediaType::Subtitles)
        .map(|m| m.uri.clone().unwrap())
        .collect();
    assert_eq!(subs.len(), 2, "{master}");
    assert_eq!(subs[0], "subs_0.m3u8", "{master}");
    assert!(
        vtt_through_the_bucket(&app, &base, &subs[0])
            .await
            .contains("From the source")
    );
    assert!(
        vtt_through_the_bucket(&app, &base, &subs[1])
            .await
            .contains("Vor dem Encode")
    );

    // Added once ready: the API writes its files and the master to the bucket itself.
    let after = app
        .post_body(
            &format!("/v1/videos/{id}/captions?language=fr"),
            "application/x-subrip",
            "1\n00:00:02,000 --> 00:00:02,900\nAprès\n",
        )
        .await;
    assert_eq!(after.status(), 201);
    let caption: Value = after.json().await.unwrap();
    let stem = format!("cc_{}", caption["id"].as_str().unwrap().replace('-', ""));
    let master = app.get_text(&app.url(&format!("{base}/master.m3u8"))).await;
    assert!(master.contains(&format!("{stem}.m3u8")), "{master}");
    assert!(
        vtt_through_the_bucket(&app, &base, &format!("{stem}.m3u8"))
            .await
            .contains("Après")
    );

    // Deleted: out of the master, and every object of it out of the bucket.
    let path = format!(
        "/v1/videos/{id}/captions/{}",
        caption["id"].as_str().unwrap()
    );
    assert_eq!(app.delete(&path).await.status(), 204);
    let master = app.get_text(&app.url(&format!("{base}/master.m3u8"))).await;
    assert!(!master.contains(&stem), "{master}");
    let keys = s3_server().keys(&app.storage.s3_prefix).await;
    let prefix = format!("videos/{id}/{attempt}/");
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("{prefix}subs_0"))),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.contains(&stem)), "{keys:?}");
    app.shutdown_workers().await;
    app.shutdown().await;
    std::fs::remove_dir_all(fixtures).unwrap();
}

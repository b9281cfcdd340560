//! End to end: upload over HTTP → Redis → worker → ffmpeg → HLS → poll → play.

use crate::common;

use std::time::Duration;

use common::{TestApp, eventually, make_clip, media::ffmpeg_decodes, probe_duration, scratch};
use prostream::{ids::JobId, queue};
use prostream_worker::pipeline::{self, Outcome};
use sqlx::PgPool;
use uuid::Uuid;

const ENCODE_LIMIT: Duration = Duration::from_secs(240);

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_720p_clip_with_audio_ends_ready_and_plays_over_http(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    app.start_worker(1).await;
    let clip = app.clip("clip.mp4", 12, 1280, 720, true).await;
    let source_duration = probe_duration(clip.to_str().unwrap()).await;

    let (status, video) = app.upload(&clip, "video/mp4").await;
    assert_eq!(status, 202, "{video}");
    // The answer is read after the push: an idle worker may have claimed it already.
    assert!(
        video["status"] == "queued" || video["status"] == "processing",
        "{video}"
    );
    let id = video["id"].as_str().unwrap().to_owned();

    let video = app.wait_until_ready(&id, ENCODE_LIMIT).await;
    assert_eq!(video["attempts"], 1);
    assert_eq!(video["progress"], 100.0);
    let names: Vec<&str> = video["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["720p", "480p", "360p", "240p"]);
    let track = &video["audio_tracks"][0];
    assert_eq!(
        (&track["name"], &track["language"], &track["default"]),
        (&"audio_0".into(), &"und".into(), &true.into()),
        "{video}"
    );

    // The master names every rung with its attributes, highest first.
    let base = TestApp::hls_base(&video);
    assert!(video["playable"].as_bool().unwrap());
    let master_url = app.url(video["playback"]["hls"].as_str().unwrap());
    let response = app.http.get(&master_url).send().await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let master_text = response.text().await.unwrap();
    let master = m3u8_rs::parse_master_playlist_res(master_text.as_bytes()).unwrap();
    let heights: Vec<u64> = master
        .variants
        .iter()
        .map(|v| v.resolution.unwrap().height)
        .collect();
    assert_eq!(heights, [720, 480, 360, 240], "{master_text}");
    assert!(master.independent_segments);
    // The audio is its own rendition, encoded once, which every rung plays with.
    let [audio] = master.alternatives.as_slice() else {
        panic!("one audio rendition: {master_text}")
    };
    assert_eq!(audio.uri.as_deref(), Some("audio_0.m3u8"), "{master_text}");
    assert!(audio.default && audio.autoselect, "{master_text}");
    let audio_playlist = app
        .get_text(&app.url(&format!("{base}/audio_0.m3u8")))
        .await;
    let audio_playlist = m3u8_rs::parse_media_playlist_res(audio_playlist.as_bytes()).unwrap();
    assert!(audio_playlist.end_list);
    let audio_total: f64 = audio_playlist
        .segments
        .iter()
        .map(|s| f64::from(s.duration))
        .sum();
    assert!(
        (audio_total - source_duration).abs() <= 0.5,
        "audio lasts {audio_total} s"
    );
    for variant in &master.variants {
        assert!(variant.average_bandwidth.unwrap() <= variant.bandwidth);
        assert!(
            variant.codecs.as_deref().unwrap().starts_with("avc1.64"),
            "{master_text}"
        );
        assert!(variant.codecs.as_deref().unwrap().ends_with("mp4a.40.2"));
        assert_eq!(variant.audio.as_deref(), Some("audio"), "{master_text}");
        assert_eq!(variant.frame_rate, Some(30.0));

        // Every variant playlist is complete and covers the whole source.
        let url = app.url(&format!("{base}/{}", variant.uri));
        let text = app.get_text(&url).await;
        let playlist = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert!(playlist.end_list, "{text}");
        assert_eq!(playlist.target_duration, 2, "{text}");
        assert!(
            playlist
                .segments
                .iter()
                .all(|s| f64::from(s.duration).round() <= 2.0),
            "no segment longer than the target: {text}"
        );
        let total: f64 = playlist
            .segments
            .iter()
            .map(|s| f64::from(s.duration))
            .sum();
        assert!(
            (total - source_duration).abs() <= 0.5,
            "{}: segments sum to {total}, source is {source_duration}",
            variant.uri
        );
    }

    // Keyframes at 0 and 1 s (the short first segment), then every 2 s, at the same instants in
    // every rung, so players can switch at any segment.
    let top = keyframe_times(&app.url(&format!("{base}/720p.m3u8"))).await;
    let bottom = keyframe_times(&app.url(&format!("{base}/240p.m3u8"))).await;
    assert_eq!(top, bottom);
    assert_eq!(top.len(), 7, "{top:?}");
    for (i, t) in top.iter().enumerate() {
        let expected = if i == 0 { 0.0 } else { 2.0 * i as f64 - 1.0 };
        assert!(
            (t - expected).abs() < 0.05,
            "keyframe {i} at {t}, expected {expected}: {top:?}"
        );
    }

    // A real client decodes the master over HTTP from the running API.
    ffmpeg_decodes(&master_url, &["-map", "0:v:0", "-map", "0:a:0"]).await;
    let over_http = probe_duration(&master_url).await;
    assert!(
        (over_http - source_duration).abs() <= 0.5,
        "{over_http} vs {source_duration}"
    );

    let poster = app.get(video["playback"]["poster"].as_str().unwrap()).await;
    assert_eq!(poster.status(), 200);
    assert_eq!(poster.headers()["content-type"], "image/jpeg");

    // Published whole; nothing left in the work area.
    assert_eq!(app.entries("videos"), std::slice::from_ref(&id));
    assert_eq!(
        app.attempt_dirs(&id).len(),
        1,
        "{:?}",
        app.attempt_dirs(&id)
    );
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_clip_without_audio_ends_ready_with_video_only_variants(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("silent.mp4", 4, 640, 360, false).await;
    let (status, video) = app.upload(&clip, "video/mp4").await;
    assert_eq!(status, 202, "{video}");
    assert!(video["source"]["audio_codec"].is_null());
    let id: Uuid = video["id"].as_str().unwrap().parse().unwrap();

    // Run the job deterministically through the same function the worker loop calls.
    let job_id: JobId = sqlx::query_scalar("SELECT id FROM jobs WHERE video_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let ctx = app.job_context().await;
    assert_eq!(
        pipeline::process(&ctx, job_id).await.unwrap(),
        Outcome::Ready
    );

    let video = app.get_json(&format!("/v1/videos/{id}")).await;
    assert_eq!(video["status"], "ready");
    for rendition in video["renditions"].as_array().unwrap() {
        let codecs = rendition["codecs"].as_str().unwrap();
        assert!(
            codecs.starts_with("avc1.") && !codecs.contains("mp4a"),
            "{codecs}"
        );
    }
    let master = app.url(video["playback"]["hls"].as_str().unwrap());
    let streams = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
            &master,
        ])
        .output()
        .await
        .unwrap();
    let types = String::from_utf8_lossy(&streams.stdout);
    assert!(
        types.contains("video") && !types.contains("audio"),
        "{types}"
    );
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn two_workers_process_six_jobs_exactly_once_each(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let clip = app.clip("small.mp4", 3, 320, 240, true).await;
    app.start_worker(1).await;
    app.start_worker(1).await;

    let mut ids = Vec::new();
    for _ in 0..6 {
        let (status, video) = app.upload(&clip, "video/mp4").await;
        assert_eq!(status, 202, "{video}");
        ids.push(video["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let video = app.wait_until_ready(id, ENCODE_LIMIT).await;
        assert_eq!(video["attempts"], 1, "{video}");
    }
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM jobs")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(attempts, [1; 6]);
    let mut published = app.entries("videos");
    ids.sort();
    published.sort();
    assert_eq!(published, ids, "one output directory per job");
    for id in &ids {
        assert_eq!(app.attempt_dirs(id).len(), 1, "{id}");
    }
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn the_same_job_pushed_twice_is_processed_once(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let clip = app.clip("dup.mp4", 2, 320, 240, true).await;
    // No worker yet: the upload's push waits in Redis, and a second delivery joins it.
    let id = app.upload_ok(&clip).await;
    let job_id = app.job_id(&id).await;
    queue::push(&app.queue, job_id).await.unwrap();
    assert_eq!(app.queued_tasks().await, 2, "both deliveries are in Redis");

    app.start_worker(1).await;
    app.wait_until_ready(&id, ENCODE_LIMIT).await;
    // Wait until the worker has taken the second delivery too, then check it changed nothing.
    let mut redis = app.redis.clone();
    eventually(
        Duration::from_secs(30),
        "the second delivery is consumed",
        async || {
            let done: usize = redis::cmd("SCARD")
                .arg(format!("{}:done", app.queue_name))
                .query_async(&mut redis)
                .await
                .unwrap();
            if done == 2 {
                Ok(())
            } else {
                Err(format!("{done} done"))
            }
        },
    )
    .await;
    let video = app.get_json(&format!("/v1/videos/{id}")).await;
    assert_eq!(video["attempts"], 1, "{video}");
    assert_eq!(video["status"], "ready");
    // And a third, direct delivery is dropped by the claim as well.
    let ctx = app.job_context().await;
    assert_eq!(
        pipeline::process(&ctx, job_id).await.unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(app.entries("videos"), [id]);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn an_encode_past_its_time_limit_is_killed_and_fails_after_its_attempts(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("slow.mp4", 6, 1280, 720, true).await;
    let (_, video) = app.upload(&clip, "video/mp4").await;
    let id: Uuid = video["id"].as_str().unwrap().parse().unwrap();
    let job_id: JobId = sqlx::query_scalar("SELECT id FROM jobs WHERE video_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mut ctx = app.job_context().await;
    ctx.encode_timeout_factor = 0.0;
    ctx.encode_timeout_min = Duration::from_millis(300);

    // A timeout is the machine's trouble, not the file's: retried, then failed.
    for attempt in 1..=3 {
        let outcome = pipeline::process(&ctx, job_id).await.unwrap();
        let expected = if attempt < 3 {
            Outcome::Retrying {
                code: "transcode_timeout".into(),
            }
        } else {
            Outcome::Failed {
                code: "transcode_timeout".into(),
            }
        };
        assert_eq!(outcome, expected, "attempt {attempt}");
        assert!(
            app.entries("videos").is_empty(),
            "attempt {attempt} left files behind"
        );
    }
    let video = app.get_json(&format!("/v1/videos/{id}")).await;
    assert_eq!(video["status"], "failed", "{video}");
    assert_eq!(video["attempts"], 3);
    assert_eq!(video["error"]["code"], "transcode_timeout");
    assert!(
        video["error"]["message"]
            .as_str()
            .unwrap()
            .contains("killed"),
        "{video}"
    );
    assert!(video["playback"].is_null());
    assert!(app.entries("videos").is_empty());
    // A failed job is not picked up again.
    assert_eq!(
        pipeline::process(&ctx, job_id).await.unwrap(),
        Outcome::Duplicate
    );
    assert!(
        !app.ffmpeg_running().await,
        "an ffmpeg child survived its job"
    );
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_worker_shutting_down_hands_its_running_job_back(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("long.mp4", 20, 1280, 720, true).await;
    let (status, video) = app.upload(&clip, "video/mp4").await;
    assert_eq!(status, 202, "{video}");
    let id = video["id"].as_str().unwrap().to_owned();
    let job_id: JobId = sqlx::query_scalar("SELECT id FROM jobs WHERE video_id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let ctx = app.job_context().await;
    let shutdown = ctx.shutdown.clone();
    let running = tokio::spawn(async move { pipeline::process(&ctx, job_id).await });
    app.wait_for_status(&id, &["processing"], Duration::from_secs(30))
        .await;
    shutdown.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the job stops within seconds of shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(outcome, Outcome::HandedBack);
    let video = app.get_json(&format!("/v1/videos/{id}")).await;
    assert_eq!(video["status"], "queued", "{video}");
    assert_eq!(
        video["attempts"], 0,
        "a shutdown does not charge an attempt"
    );
    assert!(app.entries("videos").is_empty());
    app.shutdown().await;
}

/// Presentation times of the keyframes of a rendition, read over HTTP, from 0.
async fn keyframe_times(playlist_url: &str) -> Vec<f64> {
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
        ])
        .args([
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
            playlist_url,
        ])
        .output()
        .await
        .unwrap();
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    let first = times.first().copied().unwrap_or(0.0);
    times.iter().map(|t| t - first).collect()
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_long_video_is_playable_while_it_encodes(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let fixtures = scratch();
    let clip = make_clip(&fixtures, "sixty.mp4", 60, 640, 360, true).await;
    app.start_worker(1).await;
    let uploaded = std::time::Instant::now();
    let id = app.upload_ok(&clip).await;

    // As soon as the API says playable, while the job still runs.
    let video = app.wait_until_playable(&id, ENCODE_LIMIT).await;
    let playable_after = uploaded.elapsed();
    assert_eq!(
        video["status"], "processing",
        "playable before the end: {video}"
    );
    eprintln!(
        "playable {playable_after:?} after the upload, at {}% encoded",
        video["progress"]
    );
    let base = TestApp::hls_base(&video);
    let master_text = app.get(&format!("{base}/master.m3u8")).await;
    let master_text = master_text.text().await.unwrap();
    let master = m3u8_rs::parse_master_playlist_res(master_text.as_bytes()).unwrap();
    assert_eq!(master.variants.len(), 2, "{master_text}");

    // Each rendition already lists decodable segments, and is not finished yet.
    let mut early = Vec::new();
    for variant in &master.variants {
        let url = app.url(&format!("{base}/{}", variant.uri));
        let text = app.get_text(&url).await;
        let playlist = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert!(!playlist.end_list, "still growing: {text}");
        assert_eq!(
            playlist.playlist_type,
            Some(m3u8_rs::MediaPlaylistType::Event)
        );
        // The final target duration from the first request on (an EVENT playlist only grows),
        // though the first segment is shorter, so the video is playable sooner.
        assert_eq!(playlist.target_duration, 2, "{text}");
        let first = &playlist.segments[0];
        assert!(
            (f64::from(first.duration) - 1.0).abs() < 0.1,
            "a 1 s first segment: {text}"
        );
        let init = first
            .map
            .as_ref()
            .map(|m| m.uri.clone())
            .unwrap_or_default();
        let mut bytes = app
            .get(&format!("{base}/{init}"))
            .await
            .bytes()
            .await
            .unwrap()
            .to_vec();
        let segment = app
            .get(&format!("{base}/{}", first.uri))
            .await
            .bytes()
            .await
            .unwrap();
        bytes.extend_from_slice(&segment);
        let sample = fixtures.join(format!("early-{}.mp4", variant.uri));
        std::fs::write(&sample, &bytes).unwrap();
        ffmpeg_decodes(sample.to_str().unwrap(), &[]).await;
        early.push((variant.uri.clone(), first.uri.clone(), segment));
    }

    // At the end: the same URLs, complete playlists, and the early segments unchanged.
    let video = app.wait_until_ready(&id, ENCODE_LIMIT).await;
    // The same attempt; a private video's token may have been renewed meanwhile (its expiry is
    // rounded up in steps), and the early URL keeps working below.
    let attempt_of = |base: &str| base.rsplit('/').next().unwrap().to_owned();
    assert_eq!(
        attempt_of(&TestApp::hls_base(&video)),
        attempt_of(&base),
        "the video is still played from the attempt a player started on"
    );
    for (playlist_uri, first_uri, segment) in early {
        let text = app
            .get(&format!("{base}/{playlist_uri}"))
            .await
            .text()
            .await
            .unwrap();
        let playlist = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert!(playlist.end_list, "{text}");
        let total: f64 = playlist
            .segments
            .iter()
            .map(|s| f64::from(s.duration))
            .sum();
        assert!((total - 60.0).abs() <= 0.5, "{playlist_uri}: {total} s");
        let now = app
            .get(&format!("{base}/{first_uri}"))
            .await
            .bytes()
            .await
            .unwrap();
        assert_eq!(now, segment, "a segment fetched early never changes");
    }
    let master = app.url(&format!("{base}/master.m3u8"));
    ffmpeg_decodes(&master, &["-map", "0:v:0"]).await;
    app.shutdown().await;
    std::fs::remove_dir_all(fixtures).unwrap();
}

//! Downloads: a progressive MP4 and an M4A remuxed from the encoded segments, served as
//! attachments with ranges, under the same public/signed rules as the playlists.

use crate::common;

use std::time::Duration;

use common::{TestApp, media::ffprobe, probe_duration};
use serde_json::Value;
use sqlx::PgPool;

const READY: Duration = Duration::from_secs(180);

/// One stream's duration as ffprobe reads it from the container.
fn stream_duration(probe: &Value, kind: &str) -> f64 {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
        .and_then(|s| s["duration"].as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("no {kind} duration in {probe}"))
}

fn codecs(probe: &Value) -> Vec<(String, String)> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap().to_owned(),
                s["codec_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_ready_video_offers_an_mp4_and_an_m4a_as_long_as_the_source(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    app.start_worker(1).await;
    let clip = app.clip("clip.mp4", 6, 640, 360, true).await;
    let source = ffprobe(clip.to_str().unwrap(), &["-show_streams"]).await;
    let id = app.upload_ok(&clip).await;
    let video = app.wait_until_ready(&id, READY).await;
    let downloads = &video["playback"]["downloads"];
    let mp4 = downloads["video"].as_str().expect("a video download");
    assert!(
        mp4.contains("/signed/"),
        "a private video's download is signed: {mp4}"
    );

    // Anyone holding the signed URL gets it, as an attachment, without a key.
    let response = reqwest::get(app.url(mp4)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "video/mp4");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"video.mp4\""
    );
    let bytes = response.bytes().await.unwrap();
    let at = |b: &[u8]| bytes.windows(4).position(|w| w == b).unwrap();
    assert!(
        at(b"moov") < at(b"mdat"),
        "faststart: the index comes first"
    );

    let probe = ffprobe(&app.url(mp4), &["-show_streams"]).await;
    assert_eq!(
        codecs(&probe),
        [
            ("video".into(), "h264".into()),
            ("audio".into(), "aac".into())
        ]
    );
    assert_eq!(probe["streams"][0]["height"], 360, "the highest rung");
    let frame = 1.0 / 30.0;
    let (want, got) = (
        stream_duration(&source, "video"),
        stream_duration(&probe, "video"),
    );
    assert!(
        (got - want).abs() <= frame + 1e-3,
        "video {got} s vs source {want} s"
    );

    // Ranges, as a player seeking in the file asks for them.
    let range = reqwest::Client::new()
        .get(app.url(mp4))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(range.bytes().await.unwrap(), bytes.slice(100..200));

    let m4a = downloads["audio"].as_str().expect("an audio download");
    let response = reqwest::get(app.url(m4a)).await.unwrap();
    assert_eq!(response.headers()["content-type"], "audio/mp4");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"audio.m4a\""
    );
    let probe = ffprobe(&app.url(m4a), &["-show_streams"]).await;
    assert_eq!(codecs(&probe), [("audio".into(), "aac".into())]);
    let (want, got) = (
        probe_duration(clip.to_str().unwrap()).await,
        stream_duration(&probe, "audio"),
    );
    // One AAC frame (1024 samples at 48 kHz) of slack.
    assert!(
        (got - want).abs() <= 0.05,
        "audio {got} s vs source {want} s"
    );

    // The plain (unsigned) path of a private video's download is refused.
    let plain = mp4.replacen("/signed/", "/hls/", 1);
    let (head, tail) = plain.split_once("/hls/").unwrap();
    let attempt_and_file = tail.split_once('/').unwrap().1;
    let unsigned = reqwest::get(app.url(&format!("{head}/hls/{attempt_and_file}")))
        .await
        .unwrap();
    assert!(
        unsigned.status() == 403 || unsigned.status() == 404,
        "{}",
        unsigned.status()
    );
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_silent_video_has_no_audio_download(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    app.start_worker(1).await;
    let clip = app.clip("silent.mp4", 2, 320, 180, false).await;
    let id = app.upload_ok(&clip).await;
    let video = app.wait_until_ready(&id, READY).await;
    let downloads = &video["playback"]["downloads"];
    assert!(downloads["audio"].is_null(), "{video}");
    let probe = ffprobe(
        &app.url(downloads["video"].as_str().unwrap()),
        &["-show_streams"],
    )
    .await;
    assert_eq!(codecs(&probe), [("video".into(), "h264".into())]);
    app.shutdown().await;
}

/// A ready video's `download.mp4` path under its plain HLS base, downloads made or not.
fn download_path(video: &Value) -> String {
    format!(
        "{}/{}",
        TestApp::hls_base(video),
        prostream::storage::VIDEO_DOWNLOAD
    )
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn downloads_false_on_the_query_makes_none_and_another_value_is_refused(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    app.start_worker(1).await;
    let clip = app.clip("clip.mp4", 2, 320, 180, true).await;
    let response = app
        .post_body(
            "/v1/videos?downloads=false&visibility=public",
            "video/mp4",
            std::fs::read(&clip).unwrap(),
        )
        .await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let video = app.wait_until_ready(&id, READY).await;
    assert!(video["playback"]["downloads"].is_null(), "{video}");
    assert!(video["playback"]["hls"].is_string(), "{video}");
    assert_eq!(app.get(&download_path(&video)).await.status(), 404);

    // Anything but a boolean is refused before the body is read.
    let refused = app
        .post_body("/v1/videos?downloads=maybe", "video/mp4", Vec::new())
        .await;
    assert_eq!(refused.status(), 400);

    // The default makes them.
    let id = app.upload_ok(&clip).await;
    let video = app.wait_until_ready(&id, READY).await;
    assert!(
        video["playback"]["downloads"]["video"].is_string(),
        "{video}"
    );
    app.shutdown().await;
}

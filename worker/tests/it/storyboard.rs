//! Seek thumbnails: sprite sheets and the WebVTT track that maps time to tiles.

use crate::common;

use std::time::Duration;

use common::{TestApp, media::ffprobe};
use sqlx::PgPool;

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_ready_video_has_a_storyboard_whose_cues_name_every_tile(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    app.start_worker(1).await;
    let clip = app.clip("clip.mp4", 12, 640, 360, true).await;
    let id = app.upload_ok(&clip).await;
    let video = app.wait_until_ready(&id, Duration::from_secs(180)).await;
    let track_url = app.url(
        video["playback"]["storyboard"]
            .as_str()
            .expect("a storyboard"),
    );
    assert!(
        track_url.contains("/signed/"),
        "signed like the playlists: {track_url}"
    );
    let response = reqwest::get(&track_url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/vtt");
    let text = response.text().await.unwrap();
    assert!(text.starts_with("WEBVTT\n"), "{text}");

    // One tile every 2 s over 12 s, on the 240p rung's aspect: 160×90, row by row.
    let cues: Vec<(&str, &str)> = text
        .split("\n\n")
        .skip(1)
        .map(|cue| cue.trim().split_once('\n').unwrap())
        .collect();
    assert_eq!(cues.len(), 6, "{text}");
    for (i, (times, target)) in cues.iter().enumerate() {
        let start = format!("00:00:{:02}.000 --> ", 2 * i);
        assert!(times.starts_with(&start), "cue {i}: {times}");
        assert_eq!(
            *target,
            format!("storyboard_1.jpg#xywh={},0,160,90", 160 * i),
            "cue {i}"
        );
    }
    let (last_times, _) = cues[5];
    let end: f64 = last_times.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        (end - 12.0).abs() < 0.1,
        "the last cue lasts to the end: {last_times}"
    );

    // The sheet resolves next to the track, a 10 × 10 grid of tiles.
    let sheet_url = format!("{}/storyboard_1.jpg", track_url.rsplit_once('/').unwrap().0);
    let sheet = reqwest::get(&sheet_url).await.unwrap();
    assert_eq!(sheet.headers()["content-type"], "image/jpeg");
    let image = ffprobe(&sheet_url, &["-show_streams"]).await["streams"][0].clone();
    assert_eq!(
        (image["width"].as_u64(), image["height"].as_u64()),
        (Some(1600), Some(900)),
        "{image}"
    );
    // Nothing of the tiles' passage through scratch is left, nor any second sheet.
    let missing = reqwest::get(format!(
        "{}/storyboard_2.jpg",
        track_url.rsplit_once('/').unwrap().0
    ))
    .await
    .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(app.entries("work").is_empty(), "{:?}", app.entries("work"));
    app.shutdown().await;
}

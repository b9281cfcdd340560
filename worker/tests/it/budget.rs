//! The work budget: a crafted file cannot buy hours of encoding with a few kilobytes, and a
//! source whose frames × pixels exceed MAX_DECODE_PIXELS is refused at upload.

use crate::common;

use std::path::{Path, PathBuf};

use common::{TestApp, make_clip, scratch};
use prostream::config::MediaLimits;
use serde_json::Value;
use sqlx::PgPool;

/// Five 320x240 frames at 60 fps whose last one is stamped at 14,000 s: a few kilobytes that
/// declare almost four hours of video.
async fn crafted(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi"])
        .args(["-i", "color=c=blue:size=320x240:rate=60"])
        .args(["-frames:v", "5", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-vf", "setpts='if(eq(N,4),14000/TB,PTS)'"])
        .args(["-fps_mode", "passthrough"])
        .arg(&path)
        .status()
        .await
        .expect("ffmpeg is installed");
    assert!(status.success(), "ffmpeg could not make {name}");
    path
}

/// ffprobe's view of the video stream and the container.
async fn ffprobe(file: &Path) -> Value {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-of", "json"])
        .args([
            "-show_entries",
            "stream=r_frame_rate,avg_frame_rate:format=duration",
        ])
        .arg(file)
        .output()
        .await
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rate(text: &Value) -> f64 {
    let (n, d) = text.as_str().unwrap().split_once('/').unwrap();
    n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap()
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_few_frames_declaring_14000_seconds_are_refused_as_implausible_timing(pool: PgPool) {
    let fixtures = scratch();
    let app = TestApp::spawn(pool).await;
    for (name, content_type) in [
        ("crafted.mkv", "video/x-matroska"),
        ("crafted.mp4", "video/mp4"),
    ] {
        let file = crafted(&fixtures, name).await;
        // The symptom: kilobytes, a base rate of 60 and a duration of ~14,000 s. (The MP4's
        // average rate is tiny; Matroska's, taken from the first frames, says 60 as well.)
        assert!(std::fs::metadata(&file).unwrap().len() < 8 * 1024);
        let probed = ffprobe(&file).await;
        let stream = &probed["streams"][0];
        assert_eq!(rate(&stream["r_frame_rate"]), 60.0, "{probed}");
        let duration: f64 = probed["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((duration - 14_000.0).abs() < 1.0, "{probed}");
        if name.ends_with(".mp4") {
            assert!(rate(&stream["avg_frame_rate"]) < 0.01, "{probed}");
        }

        let (status, body) = app.upload(&file, content_type).await;
        assert_eq!(status, 422, "{name}: {body}");
        assert_eq!(body["code"], "implausible_timing", "{name}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("5 frames"),
            "{body}"
        );
    }
    assert_eq!(app.count("videos").await, 0);
    let _ = std::fs::remove_dir_all(&fixtures);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_source_whose_frames_times_pixels_exceed_the_budget_is_refused_at_upload(pool: PgPool) {
    let fixtures = scratch();
    // 2 s of 320x240 at 30 fps: 60 frames of 76,800 pixels.
    let clip = make_clip(&fixtures, "a.mp4", 2, 320, 240, false).await;
    let limits = MediaLimits {
        max_decode_pixels: 59 * 320 * 240,
        ..MediaLimits::default()
    };
    let app = TestApp::spawn_with(pool.clone(), limits).await;
    let (status, body) = app.upload(&clip, "video/mp4").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "work_budget_exceeded", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("MAX_DECODE_PIXELS"),
        "{body}"
    );
    app.shutdown().await;

    // At exactly the budget it is accepted.
    let exact = MediaLimits {
        max_decode_pixels: 60 * 320 * 240,
        ..MediaLimits::default()
    };
    let app = TestApp::spawn_with(pool, exact).await;
    let (status, body) = app.upload(&clip, "video/mp4").await;
    assert_eq!(status, 202, "{body}");
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(&fixtures);
}

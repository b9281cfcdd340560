//! Cancel, retry and delete, against jobs that are queued, running and done.

use crate::common;

use std::time::{Duration, Instant};

use common::{TestApp, eventually};
use prostream_worker::pipeline::{self, Outcome};
use sqlx::PgPool;

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_canceled_queued_job_never_runs_and_can_be_retried(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("c.mp4", 2, 320, 240, true).await;
    let id = app.upload_ok(&clip).await;
    let job = app.job_id(&id).await;

    let (status, video) = app.post(&format!("/v1/videos/{id}/cancel")).await;
    assert_eq!(
        (status, video["status"].as_str()),
        (200, Some("canceled")),
        "{video}"
    );
    let (status, _) = app.post(&format!("/v1/videos/{id}/cancel")).await;
    assert_eq!(status, 200, "canceling twice is harmless");

    // The delivery already in Redis finds nothing to do.
    let ctx = app.job_context().await;
    assert_eq!(
        pipeline::process(&ctx, job).await.unwrap(),
        Outcome::Duplicate
    );
    assert!(app.entries("videos").is_empty());

    let (status, video) = app.post(&format!("/v1/videos/{id}/retry")).await;
    assert_eq!(
        (status, video["status"].as_str()),
        (202, Some("queued")),
        "{video}"
    );
    assert_eq!(video["attempts"], 0);
    assert_eq!(pipeline::process(&ctx, job).await.unwrap(), Outcome::Ready);

    let (status, problem) = app.post(&format!("/v1/videos/{id}/retry")).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("not_retryable"))
    );
    let (status, problem) = app.post(&format!("/v1/videos/{id}/cancel")).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("not_cancelable"))
    );
    let missing = "01900000-0000-7000-8000-000000000000";
    assert_eq!(
        app.post(&format!("/v1/videos/{missing}/retry")).await.0,
        404
    );
    assert_eq!(
        app.post(&format!("/v1/videos/{missing}/cancel")).await.0,
        404
    );
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn canceling_a_running_job_stops_ffmpeg_within_two_seconds(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("long.mp4", 20, 1280, 720, true).await;
    let id = app.upload_ok(&clip).await;
    let job = app.job_id(&id).await;
    let ctx = app.job_context().await;
    let running = tokio::spawn(async move { pipeline::process(&ctx, job).await });
    eventually(Duration::from_secs(30), "ffmpeg starts", async || {
        app.ffmpeg_running().await
    })
    .await;

    let (status, video) = app.post(&format!("/v1/videos/{id}/cancel")).await;
    assert_eq!((status, video["status"].as_str()), (200, Some("canceled")));
    let asked = Instant::now();
    eventually(
        Duration::from_secs(2),
        "ffmpeg exits after the cancel",
        async || !app.ffmpeg_running().await,
    )
    .await;
    eprintln!("ffmpeg gone {:?} after the cancel", asked.elapsed());
    assert_eq!(running.await.unwrap().unwrap(), Outcome::Lost);
    assert!(app.entries("videos").is_empty(), "partial output removed");
    let video = app.get_json(&format!("/v1/videos/{id}")).await;
    assert_eq!(video["status"], "canceled");
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn deleting_removes_rows_and_every_file_whatever_the_state(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let short = app.clip("s.mp4", 2, 320, 240, true).await;
    let long = app.clip("l.mp4", 20, 1280, 720, true).await;
    let ctx = app.job_context().await;

    // A ready video.
    let ready = app.upload_ok(&short).await;
    assert_eq!(app.process(&ctx, &ready).await, Outcome::Ready);
    // A running one.
    let running_id = app.upload_ok(&long).await;
    let job = app.job_id(&running_id).await;
    let worker_ctx = ctx.clone();
    let running = tokio::spawn(async move { pipeline::process(&worker_ctx, job).await });
    eventually(Duration::from_secs(30), "ffmpeg starts", async || {
        app.ffmpeg_running().await
    })
    .await;
    // A queued one.
    let queued = app.upload_ok(&short).await;

    for id in [&ready, &running_id, &queued] {
        let response = app.delete(&format!("/v1/videos/{id}")).await;
        assert_eq!(response.status(), 204, "{id}");
        let again = app.get(&format!("/v1/videos/{id}")).await;
        assert_eq!(again.status(), 404);
    }
    assert_eq!(running.await.unwrap().unwrap(), Outcome::Lost);
    assert!(!app.ffmpeg_running().await);
    assert_eq!(app.count("videos").await, 0);
    assert_eq!(app.count("jobs").await, 0);
    assert_eq!(app.count("renditions").await, 0);
    for dir in ["uploads", "videos"] {
        assert!(app.entries(dir).is_empty(), "{dir}: {:?}", app.entries(dir));
    }
    let response = app.delete(&format!("/v1/videos/{ready}")).await;
    assert_eq!(response.status(), 404);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn concurrent_cancel_retry_and_delete_leave_a_consistent_state(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("c.mp4", 1, 320, 240, false).await;
    for round in 0..5 {
        let id = app.upload_ok(&clip).await;
        let calls = (0..12).map(|i| {
            let (http, base, id) = (app.http.clone(), app.base.clone(), id.clone());
            async move {
                let url = |p: &str| format!("{base}/v1/videos/{id}{p}");
                let request = match (i + round) % 3 {
                    0 => http.post(url("/cancel")),
                    1 => http.post(url("/retry")),
                    _ if i == 11 => http.delete(url("")),
                    _ => http.post(url("/cancel")),
                };
                request.send().await.unwrap().status().as_u16()
            }
        });
        let statuses = futures_util::future::join_all(calls).await;
        assert!(
            statuses
                .iter()
                .all(|s| [200, 202, 204, 404, 409].contains(s)),
            "{statuses:?}"
        );
        let video = app.get(&format!("/v1/videos/{id}")).await;
        if video.status() == 404 {
            assert!(!app.entries("uploads").contains(&id));
        } else {
            let video: serde_json::Value = video.json().await.unwrap();
            assert!(
                ["queued", "canceled"].contains(&video["status"].as_str().unwrap()),
                "{video}"
            );
            assert!(app.entries("uploads").contains(&id));
        }
    }
    app.shutdown().await;
}

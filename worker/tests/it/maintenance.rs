//! The reaper, the reconciler, the sweeper and the disk check, one tick at a time.

use crate::common;

use std::time::Duration;

use common::TestApp;
use prostream::ids::JobId;
use prostream_worker::{
    maintenance::{self, Settings},
    pipeline::{self, Outcome},
};
use sqlx::PgPool;
use uuid::Uuid;

const SETTINGS: Settings = Settings {
    interval: Duration::from_secs(1),
    reconcile_after: Duration::from_secs(30),
    sweep_min_age: maintenance::SWEEP_MIN_AGE,
    object_sweep_interval: Duration::from_secs(600),
};

/// Pretends a worker claimed `job` and then died: the lease ran out a while ago.
async fn claimed_by_a_dead_worker(app: &TestApp, job: JobId, attempts: i32) {
    sqlx::query(
        "UPDATE jobs SET state = 'processing', attempts = $2, worker_id = 'dead',
                         lease_expires_at = now() - interval '5 seconds', started_at = now()
         WHERE id = $1",
    )
    .bind(job)
    .bind(attempts)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn expired_leases_are_queued_again_or_failed_on_the_last_attempt(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("c.mp4", 1, 320, 240, false).await;
    let again = app.upload_ok(&clip).await;
    let last = app.upload_ok(&clip).await;
    claimed_by_a_dead_worker(&app, app.job_id(&again).await, 1).await;
    claimed_by_a_dead_worker(&app, app.job_id(&last).await, 3).await;
    app.forget_queue().await;

    let ctx = app.job_context().await;
    let tick = maintenance::tick(&ctx, SETTINGS).await.unwrap();
    assert_eq!(
        (tick.requeued, tick.failed, tick.pushed),
        (1, 1, 1),
        "{tick:?}"
    );
    assert_eq!(app.queued_tasks().await, 1, "the requeued job was pushed");
    let video = app.get_json(&format!("/v1/videos/{again}")).await;
    assert_eq!(
        (video["status"].as_str(), video["attempts"].as_i64()),
        (Some("queued"), Some(1))
    );
    let video = app.get_json(&format!("/v1/videos/{last}")).await;
    assert_eq!(video["status"], "failed");
    assert_eq!(video["error"]["code"], "worker_lost");

    // A live lease is left alone.
    assert_eq!(app.process(&ctx, &again).await, Outcome::Ready);
    let tick = maintenance::tick(&ctx, SETTINGS).await.unwrap();
    assert_eq!((tick.requeued, tick.failed, tick.pushed), (0, 0, 0));
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn queued_jobs_lost_by_redis_are_pushed_again(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("c.mp4", 1, 320, 240, false).await;
    let id = app.upload_ok(&clip).await;
    app.forget_queue().await; // what FLUSHALL or a Redis restart does
    let ctx = app.job_context().await;

    // Pushed moments ago: not yet considered lost.
    assert_eq!(maintenance::tick(&ctx, SETTINGS).await.unwrap().pushed, 0);
    // Pushed longer ago than `reconcile_after` (the time is Postgres', so it is set back there).
    sqlx::query(
        "UPDATE jobs SET pushed_at = pushed_at - make_interval(secs => $2) WHERE video_id = $1::uuid",
    )
    .bind(&id)
    .bind((SETTINGS.reconcile_after + Duration::from_secs(1)).as_secs_f64())
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(maintenance::tick(&ctx, SETTINGS).await.unwrap().pushed, 1);
    assert_eq!(app.queued_tasks().await, 1);
    // Just pushed again: the next tick leaves it alone.
    assert_eq!(maintenance::tick(&ctx, SETTINGS).await.unwrap().pushed, 0);
    assert_eq!(app.process(&ctx, &id).await, Outcome::Ready);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_retry_waits_for_its_backoff_before_it_is_pushed_or_claimed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("c.mp4", 6, 640, 360, true).await;
    let id = app.upload_ok(&clip).await;
    let job = app.job_id(&id).await;
    let mut ctx = app.job_context().await;
    ctx.retry_backoff = Duration::from_secs(3600);
    ctx.encode_timeout_factor = 0.0;
    ctx.encode_timeout_min = Duration::from_millis(200);
    let outcome = pipeline::process(&ctx, job).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Retrying {
            code: "transcode_timeout".into()
        }
    );
    app.forget_queue().await;
    let quick = Settings {
        reconcile_after: Duration::ZERO,
        ..SETTINGS
    };
    assert_eq!(
        maintenance::tick(&ctx, quick).await.unwrap().pushed,
        0,
        "not due for an hour"
    );
    assert_eq!(
        pipeline::process(&ctx, job).await.unwrap(),
        Outcome::Duplicate,
        "not claimable yet"
    );
    sqlx::query("UPDATE jobs SET run_after = now() WHERE id = $1")
        .bind(job)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(maintenance::tick(&ctx, quick).await.unwrap().pushed, 1);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn leftovers_of_dead_attempts_are_swept_and_live_work_is_kept(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("c.mp4", 1, 320, 240, false).await;
    let id = app.upload_ok(&clip).await;
    let job = app.job_id(&id).await;
    claimed_by_a_dead_worker(&app, job, 2).await;
    sqlx::query(
        "UPDATE jobs SET lease_expires_at = now() + interval '1 hour', attempt_key = '2-live' WHERE id = $1",
    )
    .bind(job)
    .execute(&app.pool)
    .await
    .unwrap();
    let videos = app.media_dir.join("videos");
    let gone_video = Uuid::now_v7().to_string();
    let dirs = [
        videos.join(&id).join("1-dead"),
        videos.join(&id).join("2-live"),
        videos.join(&gone_video).join("1-orphan"),
    ];
    for dir in &dirs {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("x.m4s"), b"x").unwrap();
    }
    std::fs::create_dir_all(videos.join(&id).join("3-fresh")).unwrap();
    for dir in dirs
        .iter()
        .chain([&videos.join(&id), &videos.join(&gone_video)])
    {
        age(dir);
    }
    let stale_upload = app.media_dir.join("uploads").join(".incoming-old");
    std::fs::write(&stale_upload, b"x").unwrap();
    age(&stale_upload);

    let ctx = app.job_context().await;
    let tick = maintenance::tick(&ctx, SETTINGS).await.unwrap();
    assert_eq!(tick.swept, 3, "{tick:?}");
    assert_eq!(
        (tick.requeued, tick.failed),
        (0, 0),
        "a live lease is never reaped"
    );
    let mut left = app.attempt_dirs(&id);
    left.sort();
    assert_eq!(
        left,
        ["2-live", "3-fresh"],
        "the running attempt and new work stay"
    );
    assert_eq!(
        app.entries("videos"),
        std::slice::from_ref(&id),
        "an emptied video directory goes"
    );
    assert_eq!(app.entries("uploads"), [id]);
    app.shutdown().await;
}

/// Back-dates a file's modification time by two hours.
fn age(path: &std::path::Path) {
    let status = std::process::Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_worker_short_of_disk_leaves_the_job_for_others(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("c.mp4", 1, 320, 240, false).await;
    let id = app.upload_ok(&clip).await;
    let mut ctx = app.job_context().await;
    ctx.min_free_disk = u64::MAX;
    assert_eq!(app.process(&ctx, &id).await, Outcome::Deferred);
    let video = app.get_json(&format!("/v1/videos/{id}")).await;
    assert_eq!(
        (video["status"].as_str(), video["attempts"].as_i64()),
        (Some("queued"), Some(0))
    );
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn originals_are_deleted_after_success_only_when_configured(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("c.mp4", 1, 320, 240, false).await;
    let kept = app.upload_ok(&clip).await;
    let dropped = app.upload_ok(&clip).await;
    let mut ctx = app.job_context().await;
    assert_eq!(app.process(&ctx, &kept).await, Outcome::Ready);
    ctx.keep_originals = false;
    assert_eq!(app.process(&ctx, &dropped).await, Outcome::Ready);
    assert_eq!(app.entries("uploads"), [kept]);
    app.shutdown().await;
}

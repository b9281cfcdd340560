//! Fair scheduling between owners: a delivery wakes a worker up, and the
//! worker claims the due job of the owner with the fewest jobs running, then
//! the least recent claim, then that owner's oldest job.
//!
//! First the rule itself, on rows inserted straight into Postgres and taken
//! with `db::jobs::claim_next`; then end to end, with the real worker loop.

use crate::common;

use std::time::Duration;

use common::{TestApp, client_with_key, eventually};
use prostream::{
    db::jobs::{self, ClaimedJob},
    ids::{JobId, OwnerId, VideoId},
};
use sqlx::PgPool;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);

async fn owner(pool: &PgPool, name: &str) -> OwnerId {
    let mut conn = pool.acquire().await.unwrap();
    prostream::db::keys::ensure_owner(&mut conn, name)
        .await
        .unwrap()
}

/// A queued job of `owner` (none: a video without an owner), queued now.
async fn queued(pool: &PgPool, owner: Option<OwnerId>) -> JobId {
    let (video, job) = (VideoId::generate(), JobId::generate());
    sqlx::query(
        "INSERT INTO videos (id, title, source_path, size_bytes, format_name, duration_s, owner_id)
         VALUES ($1, 'clip', 'uploads/clip', 1, 'mov,mp4,m4a,3gp,3g2,mj2', 1, $2)",
    )
    .bind(video)
    .bind(owner)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO jobs (id, video_id, queued_at, pushed_at)
         VALUES ($1, $2, clock_timestamp(), clock_timestamp())",
    )
    .bind(job)
    .bind(video)
    .execute(pool)
    .await
    .unwrap();
    job
}

async fn set_state(pool: &PgPool, job: JobId, state: &str) {
    sqlx::query("UPDATE jobs SET state = $2::job_state WHERE id = $1")
        .bind(job)
        .bind(state)
        .execute(pool)
        .await
        .unwrap();
}

/// Records that `owner`'s last claim was `secs_ago` seconds ago.
async fn last_claimed(pool: &PgPool, owner: Option<OwnerId>, secs_ago: f64) {
    sqlx::query(
        "INSERT INTO owner_claims (owner_id, last_claimed_at)
         VALUES ($1, now() - make_interval(secs => $2))
         ON CONFLICT (owner_id) DO UPDATE SET last_claimed_at = excluded.last_claimed_at",
    )
    .bind(owner)
    .bind(secs_ago)
    .execute(pool)
    .await
    .unwrap();
}

async fn claim(pool: &PgPool) -> Option<ClaimedJob> {
    let mut conn = pool.acquire().await.unwrap();
    jobs::claim_next(&mut conn, "test-worker", LEASE)
        .await
        .unwrap()
}

async fn claim_id(pool: &PgPool) -> Option<JobId> {
    claim(pool).await.map(|job| job.job_id)
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn claims_alternate_between_owners_by_running_jobs_then_least_recent_claim(pool: PgPool) {
    let (a, b) = (owner(&pool, "a").await, owner(&pool, "b").await);
    let a1 = queued(&pool, Some(a)).await;
    let a2 = queued(&pool, Some(a)).await;
    let a3 = queued(&pool, Some(a)).await;
    let b1 = queued(&pool, Some(b)).await;
    let b2 = queued(&pool, Some(b)).await;

    // Nobody runs anything nor was ever served: the oldest job goes first.
    let first = claim(&pool).await.unwrap();
    assert_eq!((first.job_id, first.owner_id), (a1, Some(a)));
    // A runs one, B none: B, although A's jobs are older.
    assert_eq!(claim_id(&pool).await, Some(b1));
    // One each: A, served least recently.
    assert_eq!(claim_id(&pool).await, Some(a2));
    // A runs two, B one.
    assert_eq!(claim_id(&pool).await, Some(b2));
    assert_eq!(claim_id(&pool).await, Some(a3));
    assert_eq!(claim_id(&pool).await, None, "nothing left to claim");
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn an_owner_already_running_a_job_loses_to_one_running_none(pool: PgPool) {
    let (a, b) = (owner(&pool, "a").await, owner(&pool, "b").await);
    let running = queued(&pool, Some(a)).await;
    set_state(&pool, running, "processing").await;
    let a_waiting = queued(&pool, Some(a)).await;
    let b_waiting = queued(&pool, Some(b)).await;
    // Even though A was served longer ago and A's job is older.
    last_claimed(&pool, Some(a), 3600.0).await;
    last_claimed(&pool, Some(b), 1.0).await;

    assert_eq!(claim_id(&pool).await, Some(b_waiting));
    assert_eq!(claim_id(&pool).await, Some(a_waiting));
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn ties_on_running_jobs_go_to_the_owner_served_least_recently(pool: PgPool) {
    let (a, b, c) = (
        owner(&pool, "a").await,
        owner(&pool, "b").await,
        owner(&pool, "c").await,
    );
    let a_job = queued(&pool, Some(a)).await;
    let b_job = queued(&pool, Some(b)).await;
    let c_job = queued(&pool, Some(c)).await;
    last_claimed(&pool, Some(a), 10.0).await;
    last_claimed(&pool, Some(b), 30.0).await;
    last_claimed(&pool, Some(c), 20.0).await;
    // Each running one job, so the counts tie at every step.
    for owner in [a, b, c] {
        let job = queued(&pool, Some(owner)).await;
        set_state(&pool, job, "processing").await;
    }

    assert_eq!(claim_id(&pool).await, Some(b_job));
    // Now B runs two; A and C one each, and C was served longer ago.
    assert_eq!(claim_id(&pool).await, Some(c_job));
    assert_eq!(claim_id(&pool).await, Some(a_job));
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn videos_without_an_owner_share_one_bucket(pool: PgPool) {
    let a = owner(&pool, "a").await;
    let n1 = queued(&pool, None).await;
    let n2 = queued(&pool, None).await;
    let a1 = queued(&pool, Some(a)).await;
    let a2 = queued(&pool, Some(a)).await;

    let first = claim(&pool).await.unwrap();
    assert_eq!((first.job_id, first.owner_id), (n1, None));
    // The ownerless bucket runs one now, like an owner would.
    assert_eq!(claim_id(&pool).await, Some(a1));
    assert_eq!(claim_id(&pool).await, Some(n2));
    assert_eq!(claim_id(&pool).await, Some(a2));
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM owner_claims WHERE owner_id IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, 1, "one row for the ownerless bucket");
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn jobs_not_yet_due_and_canceled_jobs_are_never_claimed(pool: PgPool) {
    let (a, b, c) = (
        owner(&pool, "a").await,
        owner(&pool, "b").await,
        owner(&pool, "c").await,
    );
    // Each of these would be the fairest pick if it could be taken.
    let backing_off = queued(&pool, Some(a)).await;
    sqlx::query("UPDATE jobs SET run_after = now() + interval '1 hour' WHERE id = $1")
        .bind(backing_off)
        .execute(&pool)
        .await
        .unwrap();
    let canceled = queued(&pool, Some(b)).await;
    set_state(&pool, canceled, "canceled").await;
    for state in ["failed", "ready", "downloading"] {
        let job = queued(&pool, Some(b)).await;
        set_state(&pool, job, state).await;
    }
    last_claimed(&pool, Some(c), 0.0).await;
    let c_job = queued(&pool, Some(c)).await;

    assert_eq!(claim_id(&pool).await, Some(c_job));
    assert_eq!(claim_id(&pool).await, None);

    // Once its backoff has passed, the retry is taken; the canceled job never is.
    sqlx::query("UPDATE jobs SET run_after = now() WHERE id = $1")
        .bind(backing_off)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(claim_id(&pool).await, Some(backing_off));
    assert_eq!(claim_id(&pool).await, None);
    let state: String = sqlx::query_scalar("SELECT state::text FROM jobs WHERE id = $1")
        .bind(canceled)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "canceled");
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn concurrent_claims_take_each_job_exactly_once(pool: PgPool) {
    let (a, b) = (owner(&pool, "a").await, owner(&pool, "b").await);
    let mut queued_jobs = Vec::new();
    for i in 0..6 {
        queued_jobs.push(queued(&pool, Some(if i % 3 == 0 { b } else { a })).await);
    }
    let claims = (0..10).map(|_| {
        let pool = pool.clone();
        async move { claim_id(&pool).await }
    });
    let mut claimed: Vec<JobId> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flatten()
        .collect();
    claimed.sort();
    queued_jobs.sort();
    assert_eq!(claimed, queued_jobs, "every job once, no job twice");
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(attempts, [1; 6]);
}

/// Uploads `clip` with `client` (one owner's key) and returns the video id.
async fn upload_as(app: &TestApp, client: &reqwest::Client, clip: &[u8]) -> Uuid {
    let response = app
        .post_body_as(client, "/v1/videos", "video/mp4", clip.to_vec())
        .await;
    assert_eq!(response.status(), 202);
    let video: serde_json::Value = response.json().await.unwrap();
    video["id"].as_str().unwrap().parse().unwrap()
}

/// A check for [`eventually`]: whether `sql` (a count) returns at least `wanted`.
async fn at_least(pool: &PgPool, sql: &str, wanted: i64) -> Result<(), String> {
    let n: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
    if n >= wanted {
        Ok(())
    } else {
        Err(format!("{sql}: {n}, wanted {wanted}"))
    }
}

/// A finished job: its owner's name, its video, and when it was queued and started (epoch seconds).
struct Started {
    owner: String,
    video: Uuid,
    queued_at: f64,
    started_at: f64,
}

/// Every job by start time, once all `jobs` have ended, each ready in one attempt.
async fn start_order(pool: &PgPool, jobs: i64) -> Vec<Started> {
    let ended = "SELECT count(*) FROM jobs WHERE state IN ('ready', 'failed', 'canceled')";
    eventually(Duration::from_secs(120), "every job ends", async || {
        at_least(pool, ended, jobs).await
    })
    .await;
    let rows: Vec<(String, Uuid, String, i32, f64, f64)> = sqlx::query_as(
        "SELECT o.name, v.id, j.state::text, j.attempts,
                extract(epoch FROM j.queued_at)::float8, extract(epoch FROM j.started_at)::float8
         FROM jobs j JOIN videos v ON v.id = j.video_id JOIN owners o ON o.id = v.owner_id
         ORDER BY j.started_at",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(rows.len() as i64, jobs);
    rows.into_iter()
        .map(|(owner, video, state, attempts, queued_at, started_at)| {
            assert_eq!(
                (state.as_str(), attempts),
                ("ready", 1),
                "{owner}'s {video}"
            );
            Started {
                owner,
                video,
                queued_at,
                started_at,
            }
        })
        .collect()
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn one_owners_backlog_delays_another_owners_upload_by_at_most_one_job(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let clip = app.clip("c.mp4", 1, 320, 240, false).await;
    let clip = std::fs::read(clip).unwrap();
    let owner_a = client_with_key(&app.new_key("owner-a", false).await);
    let owner_b = client_with_key(&app.new_key("owner-b", false).await);

    for _ in 0..6 {
        upload_as(&app, &owner_a, &clip).await;
    }
    app.start_worker(1).await;
    // A's backlog is being worked through when B's single upload arrives.
    let started = "SELECT count(*) FROM jobs WHERE started_at IS NOT NULL";
    eventually(Duration::from_secs(30), "a job of A's starts", async || {
        at_least(&app.pool, started, 1).await
    })
    .await;
    let b_video = upload_as(&app, &owner_b, &clip).await;

    let order = start_order(&app.pool, 7).await;
    let names: Vec<&str> = order.iter().map(|s| s.owner.as_str()).collect();
    eprintln!("start order: {names:?}");
    let b_queued = order.iter().find(|s| s.video == b_video).unwrap().queued_at;
    let after_b: Vec<&str> = order
        .iter()
        .filter(|s| s.started_at >= b_queued)
        .map(|s| s.owner.as_str())
        .collect();
    let b_position = after_b.iter().position(|o| *o == "owner-b").unwrap();
    assert!(
        b_position <= 1,
        "B's job must start no later than the second job started after its upload: {after_b:?}"
    );
    assert!(
        after_b.len() >= 4,
        "most of A's backlog was still queued when B uploaded: {names:?}"
    );
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn two_owners_with_backlogs_are_served_in_turn(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let clip = app.clip("c.mp4", 1, 320, 240, false).await;
    let clip = std::fs::read(clip).unwrap();
    let owner_a = client_with_key(&app.new_key("owner-a", false).await);
    let owner_b = client_with_key(&app.new_key("owner-b", false).await);

    // All of A's uploads come before all of B's: FIFO would run A, A, A, B, B, B.
    for _ in 0..3 {
        upload_as(&app, &owner_a, &clip).await;
    }
    for _ in 0..3 {
        upload_as(&app, &owner_b, &clip).await;
    }
    app.start_worker(1).await;

    let order = start_order(&app.pool, 6).await;
    let names: Vec<&str> = order.iter().map(|s| s.owner.as_str()).collect();
    assert_eq!(
        names,
        [
            "owner-a", "owner-b", "owner-a", "owner-b", "owner-a", "owner-b"
        ]
    );
    app.shutdown().await;
}

//! The job state machine under concurrency, against real Postgres and a real media volume.
//!
//! First two regressions of an adversarial review (cancel → retry → claim while the old
//! attempt still runs; two takes of one download), then a randomised test: several tasks
//! interleave claims, heartbeats, publishing, playable/ready/failed/requeue, lease expiry and
//! reaping, cancel, retry, delete and worker crashes on many jobs, calling the same `db::jobs`
//! functions and storage operations the worker pipeline and the API call. Every fenced write is
//! logged with its writer's identity (the claim's fence), and afterwards the invariants are
//! checked: no superseded attempt ever wrote successfully, every `ready` video has its
//! attempt's output (a sample is decoded by ffmpeg), nothing of other attempts is left on disk.
//!
//! `PROSTREAM_FUZZ_SEED` replays a run's operation sequences (printed at the start and in every
//! failure; the scheduling of the tasks still varies). `PROSTREAM_STATE_INTERLEAVINGS` sets how
//! many operations run in all (default 800, a few seconds; scripts/bench.py runs 10,000).

use crate::common;

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use prostream::{
    db::{
        self, JobStage, JobState, Visibility,
        jobs::{self, ClaimedJob},
        videos::{NewVideo, RenditionRow, Source},
    },
    ids::{JobId, VideoId},
    storage::{MediaRoot, Storage},
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use sqlx::{PgPool, Row};

const LEASE: Duration = Duration::from_secs(30);
const TASKS: u64 = 4;
const DEFAULT_INTERLEAVINGS: usize = 800;

// ---------------------------------------------------------------- shared helpers

/// A fresh media volume in a temporary directory.
async fn media_root() -> (MediaRoot, Storage) {
    let media = MediaRoot::open(common::scratch()).await.unwrap();
    let store: Storage = Arc::new(media.clone());
    (media, store)
}

/// An uploaded video (its original on the volume) with a queued job; returns (job, video).
async fn queued_video(pool: &PgPool, media: &MediaRoot) -> (JobId, VideoId) {
    let (video, job) = (VideoId::generate(), JobId::generate());
    let source_path = MediaRoot::source_relative(video);
    tokio::fs::write(media.resolve(&source_path).unwrap(), b"original")
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let new = NewVideo {
        id: video,
        title: "clip".into(),
        owner_id: None,
        visibility: Visibility::Public,
        downloads: true,
        source: Source {
            source_path,
            size_bytes: 8,
            format_name: "mov,mp4,m4a,3gp,3g2,mj2".into(),
            duration_s: 2.0,
            width: Some(64),
            height: Some(36),
            frame_rate: Some(10.0),
            video_codec: Some("h264".into()),
            audio_codec: None,
        },
    };
    db::videos::insert(&mut tx, &new).await.unwrap();
    jobs::insert(&mut tx, job, video, 3).await.unwrap();
    tx.commit().await.unwrap();
    (job, video)
}

/// What the job row says now.
async fn row(pool: &PgPool, job: JobId) -> (JobState, i64, String, String) {
    let r = sqlx::query(
        "SELECT state::text AS state, fence, attempt_key, coalesce(stage::text, '') AS stage
         FROM jobs WHERE id = $1",
    )
    .bind(job)
    .fetch_one(pool)
    .await
    .unwrap();
    let state = match r.get::<String, _>("state").as_str() {
        "downloading" => JobState::Downloading,
        "queued" => JobState::Queued,
        "processing" => JobState::Processing,
        "ready" => JobState::Ready,
        "failed" => JobState::Failed,
        _ => JobState::Canceled,
    };
    (
        state,
        r.get::<Option<i64>, _>("fence").unwrap_or(0),
        r.get::<Option<String>, _>("attempt_key")
            .unwrap_or_default(),
        r.get("stage"),
    )
}

/// What the pipeline does at the start of an attempt: remove the output of earlier attempts,
/// create the output and scratch directories, and leave a file naming the attempt in both.
async fn start_attempt(
    media: &MediaRoot,
    store: &Storage,
    job: &ClaimedJob,
) -> std::io::Result<()> {
    store
        .remove_earlier_attempts(job.video_id, &job.attempt_key)
        .await
        .map_err(std::io::Error::other)?;
    let out = store.output_dir(job.video_id, &job.attempt_key);
    tokio::fs::create_dir_all(&out).await?;
    let scratch = media.scratch_dir(job.video_id, &job.attempt_key);
    tokio::fs::create_dir_all(&scratch).await?;
    tokio::fs::write(scratch.join("source"), job.fence.to_string()).await?;
    tokio::fs::write(out.join("attempt.txt"), job.fence.to_string()).await
}

/// What `run_claimed` does when an attempt ends: its scratch always goes, its output unless
/// it became the video's ready output.
async fn end_attempt(media: &MediaRoot, store: &Storage, job: &ClaimedJob, ready: bool) {
    media
        .remove_scratch(job.video_id, &job.attempt_key)
        .await
        .unwrap();
    if !ready {
        store
            .remove_attempt(job.video_id, &job.attempt_key)
            .await
            .unwrap();
    }
}

fn rendition(video_id: VideoId) -> RenditionRow {
    RenditionRow {
        video_id,
        name: "r".into(),
        playlist: "r.m3u8".into(),
        kind: prostream::db::RenditionKind::Video,
        width: Some(64),
        height: Some(36),
        bandwidth: 100_000,
        average_bandwidth: 80_000,
        codecs: "avc1.64000a".into(),
        frame_rate: Some(10.0),
        language: None,
        label: None,
        is_default: false,
        channels: None,
        describes_video: false,
        forced: false,
        captions: false,
    }
}

/// `record_ready` of the pipeline: lock the row with a fenced report, replace the renditions
/// and mark the job ready, in one transaction. Returns whether the attempt was still the job's.
async fn record_ready(pool: &PgPool, job: &ClaimedJob) -> bool {
    let mut tx = pool.begin().await.unwrap();
    let ours = jobs::report(
        &mut tx,
        job.job_id,
        job.fence,
        JobStage::Publishing,
        100.0,
        LEASE,
    )
    .await
    .unwrap();
    if !ours {
        return false;
    }
    db::videos::delete_renditions(&mut tx, job.video_id)
        .await
        .unwrap();
    db::videos::insert_rendition(&mut tx, &rendition(job.video_id))
        .await
        .unwrap();
    let ready = jobs::mark_ready(&mut tx, job.job_id, job.fence, false)
        .await
        .unwrap();
    assert!(
        ready,
        "the row was locked by the fenced report, so mark_ready must match"
    );
    tx.commit().await.unwrap();
    true
}

// ---------------------------------------------------------------- regressions

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn an_attempt_canceled_and_retried_cannot_write_over_the_next_attempt(pool: PgPool) {
    let (media, store) = media_root().await;
    let (job, video) = queued_video(&pool, &media).await;
    let mut conn = pool.acquire().await.unwrap();
    let old = jobs::claim(&mut conn, job, "worker-a", LEASE)
        .await
        .unwrap()
        .unwrap();
    start_attempt(&media, &store, &old).await.unwrap();
    assert!(jobs::cancel(&mut conn, video).await.unwrap());
    assert!(jobs::retry(&mut conn, video).await.unwrap().is_some());
    let new = jobs::claim(&mut conn, job, "worker-b", LEASE)
        .await
        .unwrap()
        .unwrap();
    // The budget starts over, so the attempt numbers are equal: they must not be the fence.
    assert_eq!((old.attempt, new.attempt), (1, 1));
    assert!(new.fence > old.fence);
    assert_ne!(new.attempt_key, old.attempt_key);
    start_attempt(&media, &store, &new).await.unwrap();
    assert!(
        jobs::report(
            &mut conn,
            job,
            new.fence,
            JobStage::Transcoding,
            42.0,
            LEASE
        )
        .await
        .unwrap()
    );
    let before = row(&pool, job).await;

    // The old attempt, still running, does everything an attempt can do.
    let stage = JobStage::Transcoding;
    assert!(
        !jobs::report(&mut conn, job, old.fence, stage, 99.0, LEASE)
            .await
            .unwrap()
    );
    assert!(
        !jobs::mark_playable(&mut conn, job, old.fence)
            .await
            .unwrap()
    );
    assert!(
        !record_ready(&pool, &old).await,
        "the old attempt's ready landed"
    );
    assert!(
        !jobs::mark_failed(&mut conn, job, old.fence, "transcode_failed", "x")
            .await
            .unwrap()
    );
    assert!(
        !jobs::requeue(&mut conn, job, old.fence, true, Duration::ZERO)
            .await
            .unwrap()
    );
    // It starts late (after the new attempt began) and then ends Lost.
    start_attempt(&media, &store, &old).await.unwrap();
    end_attempt(&media, &store, &old, false).await;

    assert_eq!(
        row(&pool, job).await,
        before,
        "the new attempt's row changed"
    );
    let progress: f32 = sqlx::query_scalar("SELECT progress FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(progress, 42.0);
    let out = store.output_dir(video, &new.attempt_key);
    assert_eq!(
        tokio::fs::read_to_string(out.join("attempt.txt"))
            .await
            .unwrap(),
        new.fence.to_string(),
        "the old attempt removed or overwrote the new attempt's output"
    );
    assert!(!store.output_dir(video, &old.attempt_key).exists());
    assert!(
        media
            .scratch_dir(video, &new.attempt_key)
            .join("source")
            .exists()
    );
}

/// A video from a URL with its job in `downloading`; returns (job, video).
async fn downloading_video(pool: &PgPool) -> (JobId, VideoId) {
    let (video, job) = (VideoId::generate(), JobId::generate());
    let mut tx = pool.begin().await.unwrap();
    db::videos::insert_from_url(
        &mut tx,
        video,
        "clip",
        "http://127.0.0.1:9/clip.mp4",
        None,
        Visibility::Public,
        true,
    )
    .await
    .unwrap();
    jobs::insert_downloading(&mut tx, job, video, 3)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (job, video)
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn the_losing_take_of_a_download_deletes_nothing_of_the_winners(pool: PgPool) {
    let (media, store) = media_root().await;
    let (job, video) = downloading_video(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    // One API process takes the download, it is canceled and retried, and the same
    // process (same holder) takes it again while the first copy still runs.
    let first = jobs::take_download(&mut conn, "api-1", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(jobs::cancel(&mut conn, video).await.unwrap());
    let (_, state) = jobs::retry(&mut conn, video).await.unwrap().unwrap();
    assert_eq!(state, JobState::Downloading);
    let second = jobs::take_download(&mut conn, "api-1", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(second.fence > first.fence);
    assert_ne!(first.source_path(), second.source_path());

    // Both copies arrive; the second take records its original first.
    for take in [&first, &second] {
        let file = media.root().join(format!("incoming-{}", take.fence));
        tokio::fs::write(&file, take.fence.to_string())
            .await
            .unwrap();
        store
            .put_original(&file, &take.source_path())
            .await
            .unwrap();
    }
    assert!(
        !jobs::renew_download(&mut conn, job, first.fence, LEASE)
            .await
            .unwrap()
    );
    let mut tx = pool.begin().await.unwrap();
    let source = Source {
        source_path: second.source_path(),
        size_bytes: 8,
        format_name: "mov,mp4,m4a,3gp,3g2,mj2".into(),
        duration_s: 2.0,
        width: None,
        height: None,
        frame_rate: None,
        video_codec: None,
        audio_codec: Some("aac".into()),
    };
    db::videos::set_source(&mut tx, video, &source)
        .await
        .unwrap();
    assert!(
        jobs::finish_download(&mut tx, job, second.fence)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    // The first take finds it lost the download and removes what it placed, nothing else.
    assert!(
        !jobs::finish_download(&mut conn, job, first.fence)
            .await
            .unwrap()
    );
    assert!(
        !jobs::fail_download(&mut conn, job, first.fence, "download_failed", "x")
            .await
            .unwrap()
    );
    store.remove_original(&first.source_path()).await.unwrap();

    let recorded: String = sqlx::query_scalar("SELECT source_path FROM videos WHERE id = $1")
        .bind(video)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded, second.source_path());
    assert!(
        store.has_original(&recorded).await.unwrap(),
        "the winner's original is gone"
    );
    assert!(!store.has_original(&first.source_path()).await.unwrap());
    assert_eq!(row(&pool, job).await.0, JobState::Queued);
}

// ---------------------------------------------------------------- the randomised test

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Report,
    Playable,
    Ready,
    Failed,
    Requeue,
}

/// A fenced write, with the logical times before it was sent and after it returned.
#[derive(Debug)]
struct Write {
    job: JobId,
    fence: i64,
    kind: Kind,
    start: u64,
    ok: bool,
}

/// What the run did, in logical time (a counter every task advances).
#[derive(Debug, Default)]
struct Log {
    /// (job, fence) → when the claim returned.
    claims: HashMap<(JobId, i64), u64>,
    writes: Vec<Write>,
    /// Successful operations that end whatever attempt held the job when they started:
    /// (job, start, done): cancel, reap, delete, retry, and an attempt's ready/failed/requeue.
    enders: Vec<(JobId, u64, u64)>,
    crashed: usize,
}

/// An attempt some worker runs.
#[derive(Debug)]
struct Attempt {
    job: ClaimedJob,
    started: bool,
    parts: u32,
}

struct World {
    pool: PgPool,
    media: MediaRoot,
    store: Storage,
    /// (job, video) of every job created.
    jobs: Vec<(JobId, VideoId)>,
    deleted: Mutex<HashSet<VideoId>>,
    running: Mutex<Vec<Attempt>>,
    log: Mutex<Log>,
    clock: AtomicU64,
    /// A small real HLS rendition (`r.m3u8` with its init and segments) every ready attempt
    /// publishes, so that ready videos can be decoded.
    hls: PathBuf,
    seed: u64,
}

impl World {
    fn now(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    fn write(&self, job: &ClaimedJob, kind: Kind, start: u64, ok: bool) {
        let done = self.now();
        let mut log = self.log.lock().unwrap();
        log.writes.push(Write {
            job: job.job_id,
            fence: job.fence,
            kind,
            start,
            ok,
        });
        if ok && kind != Kind::Report && kind != Kind::Playable {
            log.enders.push((job.job_id, start, done));
        }
    }

    fn ended(&self, job: JobId, start: u64) {
        let done = self.now();
        self.log.lock().unwrap().enders.push((job, start, done));
    }

    fn pick_job(&self, rng: &mut StdRng) -> (JobId, VideoId) {
        *self.jobs.choose(rng).unwrap()
    }

    fn take_attempt(&self, rng: &mut StdRng) -> Option<Attempt> {
        let mut running = self.running.lock().unwrap();
        if running.is_empty() {
            return None;
        }
        let i = rng.random_range(0..running.len());
        Some(running.swap_remove(i))
    }

    fn give_back(&self, attempt: Attempt) {
        self.running.lock().unwrap().push(attempt);
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Encodes the small real rendition every ready attempt publishes.
async fn sample_hls() -> PathBuf {
    let dir = common::scratch();
    let status = tokio::process::Command::new("ffmpeg")
        .current_dir(&dir)
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x36:rate=10",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "10",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "r_init.mp4",
            "-hls_segment_filename",
            "r_%03d.m4s",
            "-hls_playlist_type",
            "vod",
            "r.m3u8",
        ])
        .status()
        .await
        .unwrap();
    assert!(
        status.success(),
        "ffmpeg could not make the sample rendition"
    );
    std::fs::write(
        dir.join("master.m3u8"),
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=100000,RESOLUTION=64x36\nr.m3u8\n",
    )
    .unwrap();
    dir
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn random_interleavings_of_the_job_state_machine_keep_every_invariant(pool: PgPool) {
    let seed = env_number("PROSTREAM_FUZZ_SEED").unwrap_or_else(rand::random);
    let steps = env_number("PROSTREAM_STATE_INTERLEAVINGS")
        .map_or(DEFAULT_INTERLEAVINGS, |n| n as usize)
        .max(TASKS as usize);
    eprintln!("PROSTREAM_FUZZ_SEED={seed} PROSTREAM_STATE_INTERLEAVINGS={steps}");
    let (media, store) = media_root().await;
    // A ready job is final: with few jobs most operations would soon find nothing to do.
    let count = (steps / 10).clamp(16, 1500);
    let mut created = Vec::new();
    for _ in 0..count {
        created.push(queued_video(&pool, &media).await);
    }
    let world = Arc::new(World {
        pool: pool.clone(),
        media,
        store,
        jobs: created,
        deleted: Mutex::default(),
        running: Mutex::default(),
        log: Mutex::default(),
        clock: AtomicU64::new(0),
        hls: sample_hls().await,
        seed,
    });
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let world = world.clone();
        let rng = StdRng::seed_from_u64(seed ^ (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let n = steps / TASKS as usize;
        tasks.push(tokio::spawn(async move { actor(&world, rng, n).await }));
    }
    for task in tasks {
        task.await.expect("an actor panicked (see the seed above)");
    }
    settle(&world).await;
    check(&world).await;
    eprintln!(
        "{steps} interleavings on {count} jobs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(world.media.root());
    let _ = std::fs::remove_dir_all(&world.hls);
}

async fn actor(world: &World, mut rng: StdRng, steps: usize) {
    for _ in 0..steps {
        match rng.random_range(0..1000) {
            0..200 => claim(world, &mut rng).await,
            200..700 => step(world, &mut rng).await,
            700..780 => expire(world, &mut rng).await,
            780..850 => cancel(world, &mut rng).await,
            850..970 => retry(world, &mut rng).await,
            970..975 => delete(world, &mut rng).await,
            _ => crash(world, &mut rng),
        }
    }
}

async fn claim(world: &World, rng: &mut StdRng) {
    let mut conn = world.pool.acquire().await.unwrap();
    let worker = format!("worker-{}", rng.random_range(0..8));
    let claimed = if rng.random_bool(0.5) {
        jobs::claim_next(&mut conn, &worker, LEASE).await.unwrap()
    } else {
        let (job, _) = world.pick_job(rng);
        jobs::claim(&mut conn, job, &worker, LEASE).await.unwrap()
    };
    let done = world.now();
    if let Some(job) = claimed {
        let previous = world
            .log
            .lock()
            .unwrap()
            .claims
            .insert((job.job_id, job.fence), done);
        assert!(
            previous.is_none(),
            "fence {} was drawn twice (seed {})",
            job.fence,
            world.seed
        );
        world.give_back(Attempt {
            job,
            started: false,
            parts: 0,
        });
    }
}

/// One step of a running attempt, as its worker would take it.
async fn step(world: &World, rng: &mut StdRng) {
    let Some(mut attempt) = world.take_attempt(rng) else {
        return;
    };
    let keep = if !attempt.started {
        attempt.started = true;
        match start_attempt(&world.media, &world.store, &attempt.job).await {
            Ok(()) => true,
            // Its directory went (the video was deleted): the attempt fails.
            Err(_) => fail(world, rng, &attempt.job).await,
        }
    } else {
        match rng.random_range(0..100) {
            0..35 => heartbeat(world, &attempt.job).await,
            35..55 => publish_part(world, rng, &mut attempt).await,
            55..70 => playable(world, &attempt.job).await,
            70..85 => finish(world, rng, &attempt.job).await,
            _ => fail(world, rng, &attempt.job).await,
        }
    };
    if keep {
        world.give_back(attempt);
    }
}

/// Ends an attempt that found it no longer owns its job (`Outcome::Lost`).
async fn lost(world: &World, job: &ClaimedJob) -> bool {
    end_attempt(&world.media, &world.store, job, false).await;
    false
}

async fn heartbeat(world: &World, job: &ClaimedJob) -> bool {
    let mut conn = world.pool.acquire().await.unwrap();
    let start = world.now();
    let stage = JobStage::Transcoding;
    let ok = jobs::report(&mut conn, job.job_id, job.fence, stage, 50.0, LEASE)
        .await
        .unwrap();
    world.write(job, Kind::Report, start, ok);
    ok || lost(world, job).await
}

/// ffmpeg writing one more segment into the attempt's directory.
async fn publish_part(world: &World, rng: &mut StdRng, attempt: &mut Attempt) -> bool {
    attempt.parts += 1;
    let job = &attempt.job;
    let out = world.store.output_dir(job.video_id, &job.attempt_key);
    let name = format!("part-{}.txt", attempt.parts);
    match tokio::fs::write(out.join(name), job.fence.to_string()).await {
        Ok(()) => true,
        Err(_) => fail(world, rng, job).await,
    }
}

async fn playable(world: &World, job: &ClaimedJob) -> bool {
    let out = world.store.output_dir(job.video_id, &job.attempt_key);
    if tokio::fs::copy(world.hls.join("master.m3u8"), out.join("master.m3u8"))
        .await
        .is_err()
    {
        return true; // the announcer tries again at its next tick
    }
    let mut conn = world.pool.acquire().await.unwrap();
    let start = world.now();
    let ok = jobs::mark_playable(&mut conn, job.job_id, job.fence)
        .await
        .unwrap();
    world.write(job, Kind::Playable, start, ok);
    true
}

/// The end of a successful encode: the final files, then `record_ready`.
async fn finish(world: &World, rng: &mut StdRng, job: &ClaimedJob) -> bool {
    let out = world.store.output_dir(job.video_id, &job.attempt_key);
    if copy_dir(&world.hls, &out).await.is_err() {
        return fail(world, rng, job).await;
    }
    let start = world.now();
    let ready = record_ready(&world.pool, job).await;
    world.write(job, Kind::Ready, start, ready);
    if ready {
        // KEEP_ORIGINALS=false: the original goes once the video is ready.
        world.store.remove_original(&job.source_path).await.unwrap();
    }
    end_attempt(&world.media, &world.store, job, ready).await;
    false
}

async fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut entries = tokio::fs::read_dir(from).await?;
    while let Some(entry) = entries.next_entry().await? {
        tokio::fs::copy(entry.path(), to.join(entry.file_name())).await?;
    }
    Ok(())
}

/// `record_failure`: a bad input or the last attempt fails the job; a transient failure queues
/// it again (charged); a shutdown hands it back (not charged).
async fn fail(world: &World, rng: &mut StdRng, job: &ClaimedJob) -> bool {
    let mut conn = world.pool.acquire().await.unwrap();
    let start = world.now();
    let (kind, ok) = match rng.random_range(0..3) {
        0 => {
            let ok = jobs::mark_failed(&mut conn, job.job_id, job.fence, "transcode_failed", "x");
            (Kind::Failed, ok.await.unwrap())
        }
        1 if job.attempt >= job.max_attempts => {
            let ok =
                jobs::mark_failed(&mut conn, job.job_id, job.fence, "storage_unavailable", "x");
            (Kind::Failed, ok.await.unwrap())
        }
        charge => {
            let ok = jobs::requeue(
                &mut conn,
                job.job_id,
                job.fence,
                charge == 1,
                Duration::ZERO,
            );
            (Kind::Requeue, ok.await.unwrap())
        }
    };
    world.write(job, kind, start, ok);
    end_attempt(&world.media, &world.store, job, false).await;
    false
}

/// The lease of a running job runs out (its worker stalls), and the reaper runs.
async fn expire(world: &World, rng: &mut StdRng) {
    let (job, _) = world.pick_job(rng);
    // Simulates time passing: the lease is set in the past instead of waiting for it.
    sqlx::query(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 second'
         WHERE id = $1 AND state = 'processing'",
    )
    .bind(job)
    .execute(&world.pool)
    .await
    .unwrap();
    reap(world).await;
}

async fn reap(world: &World) {
    let mut conn = world.pool.acquire().await.unwrap();
    let start = world.now();
    for reaped in jobs::reap_expired(&mut conn, 1000).await.unwrap() {
        world.ended(reaped.job_id, start);
    }
}

async fn cancel(world: &World, rng: &mut StdRng) {
    let (job, video) = world.pick_job(rng);
    let mut conn = world.pool.acquire().await.unwrap();
    let start = world.now();
    if jobs::cancel(&mut conn, video).await.unwrap() {
        world.ended(job, start);
    }
}

async fn retry(world: &World, rng: &mut StdRng) {
    let (job, video) = world.pick_job(rng);
    let mut conn = world.pool.acquire().await.unwrap();
    let start = world.now();
    if let Some((_, state)) = jobs::retry(&mut conn, video).await.unwrap() {
        assert_eq!(state, JobState::Queued, "seed {}", world.seed);
        world.ended(job, start);
    }
}

/// `DELETE /v1/videos/{id}`: the rows, then the original and every attempt's output.
async fn delete(world: &World, rng: &mut StdRng) {
    let (job, video) = world.pick_job(rng);
    let mut conn = world.pool.acquire().await.unwrap();
    let start = world.now();
    let Some(source) = db::videos::delete(&mut conn, video, None).await.unwrap() else {
        return;
    };
    world.ended(job, start);
    world.deleted.lock().unwrap().insert(video);
    let source = source.unwrap_or_else(|| MediaRoot::source_relative(video));
    world.store.remove_original(&source).await.unwrap();
    world.store.remove_video(video).await.unwrap();
}

/// A worker dies mid-attempt: nothing is cleaned up, the lease will run out.
fn crash(world: &World, rng: &mut StdRng) {
    if world.take_attempt(rng).is_some() {
        world.log.lock().unwrap().crashed += 1;
    }
}

/// After the run: every worker still running dies, every lease runs out and is reaped, and the
/// maintenance sweep (no age limit: nothing is running) removes what dead attempts left.
async fn settle(world: &World) {
    let left = std::mem::take(&mut *world.running.lock().unwrap());
    world.log.lock().unwrap().crashed += left.len();
    sqlx::query(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE state = 'processing'",
    )
    .execute(&world.pool)
    .await
    .unwrap();
    reap(world).await;
    let mut conn = world.pool.acquire().await.unwrap();
    let live: HashSet<_> = jobs::live_outputs(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let running: HashSet<_> = jobs::running_attempts(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert!(running.is_empty());
    world
        .store
        .sweep_outputs(&live, Duration::ZERO)
        .await
        .unwrap();
    world
        .media
        .sweep_scratch(&running, Duration::ZERO)
        .await
        .unwrap();
}

async fn check(world: &World) {
    let seed = world.seed;
    no_superseded_write_succeeded(world);
    // The guard lives in this block alone: nothing below may hold it across an await.
    {
        let log = world.log.lock().unwrap();
        let refused = log.writes.iter().filter(|w| !w.ok).count();
        let readies = log
            .writes
            .iter()
            .filter(|w| w.ok && w.kind == Kind::Ready)
            .count();
        eprintln!(
            "{} claims, {} fenced writes ({refused} refused), {readies} ready, {} crashed",
            log.claims.len(),
            log.writes.len(),
            log.crashed
        );
        assert!(
            readies > 0 && refused > 0,
            "the run exercised too little (seed {seed})"
        );
    }
    let deleted = world.deleted.lock().unwrap().clone();
    let mut ready_dirs = HashSet::new();
    let mut originals = HashSet::new();
    let mut decoded = 0;
    for &(job, video) in &world.jobs {
        if deleted.contains(&video) {
            assert!(
                !world.media.video_dir(video).exists(),
                "deleted video {video} has output (seed {seed})"
            );
            continue;
        }
        let (state, fence, key, _) = row(&world.pool, job).await;
        if state == JobState::Ready {
            check_ready(world, video, fence, &key, decoded < 3).await;
            decoded += 1;
            ready_dirs.insert(video.to_string());
        } else {
            assert!(
                !world.media.video_dir(video).exists(),
                "{state} video {video} has output left (seed {seed})"
            );
            originals.insert(video.to_string());
        }
    }
    assert_eq!(
        names(&world.media.videos_dir()),
        ready_dirs,
        "orphaned output (seed {seed})"
    );
    assert!(
        names(&world.media.work_dir()).is_empty(),
        "scratch left behind (seed {seed})"
    );
    assert_eq!(
        names(&world.media.uploads_dir()),
        originals,
        "originals (seed {seed})"
    );
}

/// The visible entries of a directory (none if it does not exist).
fn names(dir: &Path) -> HashSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// A ready video: its recorded attempt's directory is the only one, holds only that attempt's
/// files and the whole rendition, its renditions are recorded, and (`decode`) ffmpeg plays it.
async fn check_ready(world: &World, video: VideoId, fence: i64, key: &str, decode: bool) {
    let seed = world.seed;
    let attempts = names(&world.media.video_dir(video));
    assert_eq!(
        attempts,
        HashSet::from([key.to_owned()]),
        "video {video} (seed {seed})"
    );
    let dir = world.media.attempt_dir(video, key);
    for name in names(&dir) {
        if name.ends_with(".txt") {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap();
            assert_eq!(
                text,
                fence.to_string(),
                "{name} of another attempt in {key} (seed {seed})"
            );
        }
    }
    for name in names(&world.hls) {
        assert!(
            dir.join(&name).exists(),
            "{name} missing from ready {key} (seed {seed})"
        );
    }
    let mut conn = world.pool.acquire().await.unwrap();
    let renditions = db::videos::renditions(&mut conn, &[video]).await.unwrap();
    assert_eq!(renditions.len(), 1, "renditions of {video} (seed {seed})");
    if decode {
        let master = dir.join("master.m3u8");
        let probed = common::media::ffprobe(
            master.to_str().unwrap(),
            &[
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=nb_read_frames",
            ],
        )
        .await;
        let frames = probed["streams"][0]["nb_read_frames"]
            .as_str()
            .unwrap_or("0");
        assert_eq!(
            frames, "20",
            "decoding ready {key} of {video} (seed {seed})"
        );
    }
}

/// No attempt wrote successfully once it was superseded: by a later claim of its job, or by
/// an operation that began after its claim returned and ended whatever attempt held the job
/// (cancel, reap, delete, retry, or a ready/failed/requeue of its own).
fn no_superseded_write_succeeded(world: &World) {
    let log = world.log.lock().unwrap();
    for w in log.writes.iter().filter(|w| w.ok) {
        let claimed = log.claims[&(w.job, w.fence)];
        let later_claim = log
            .claims
            .iter()
            .filter(|((job, fence), _)| *job == w.job && *fence > w.fence)
            .map(|(_, done)| *done);
        let ender = log
            .enders
            .iter()
            .filter(|(job, start, _)| *job == w.job && *start > claimed)
            .map(|(_, _, done)| *done);
        if let Some(superseded) = later_claim.chain(ender).min() {
            assert!(
                w.start < superseded,
                "{:?} by fence {} of job {} succeeded after the attempt was superseded \
                 (logical time {} >= {superseded}; seed {})",
                w.kind,
                w.fence,
                w.job,
                w.start,
                world.seed
            );
        }
    }
}

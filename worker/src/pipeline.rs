//! One job, start to end: claim → probe → encode → publish → record.
//!
//! [`process`] is a plain async function so tests can run a job
//! deterministically; the apalis worker loop calls the same function.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use prostream::{
    db::{
        self, JobStage,
        jobs::ClaimedJob,
        videos::{DroppedStream, ReadyExtras, RenditionRow},
    },
    ids::JobId,
    media::{self, ProbeError, ProbeInfo},
    queue::{self, TranscodeQueue},
    storage::{self, MediaRoot, Storage, StorageError},
    telemetry,
};
use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};
use tracing::Instrument;

use crate::{
    captions, downloads,
    ffmpeg::{self, EncodeJob, FfmpegError, PosterSource},
    fmp4, ladder,
    normalize::{self, VideoPlan},
    output::{self, Output},
    playlist::{self, PlaylistError},
    publish::Publisher,
    storyboard,
    subtitles::{self, SubtitleTrack},
    tracks,
};

/// What an attempt produced, to record.
struct Produced {
    renditions: Vec<RenditionRow>,
    has_poster: bool,
    /// Streams of the source the output does not carry.
    dropped: Vec<DroppedStream>,
    extras: ReadyExtras,
}

/// How often a running job reports progress and renews its lease.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Everything a job needs; one per worker process.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub pool: PgPool,
    pub queue: TranscodeQueue,
    /// This host's disk: free-space checks and scratch directories.
    pub media: MediaRoot,
    /// Where originals come from and the output goes: the same volume, or a bucket.
    pub store: Storage,
    pub worker_id: String,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub preset: String,
    pub crf: u8,
    pub probe_timeout: Duration,
    pub encode_timeout_factor: f64,
    pub encode_timeout_min: Duration,
    pub lease: Duration,
    /// First retry delay; doubles with each attempt.
    pub retry_backoff: Duration,
    /// No new job is claimed while MEDIA_ROOT has less free space than this (with S3 it holds
    /// the original and the encode until they are uploaded).
    pub min_free_disk: u64,
    pub keep_originals: bool,
    /// Fires when the worker shuts down: running jobs are handed back.
    pub shutdown: CancellationToken,
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ready,
    Failed {
        code: String,
    },
    /// A transient failure with attempts left: queued again.
    Retrying {
        code: String,
    },
    /// No job was `queued` and due (the delivered one was claimed through
    /// another delivery, finished, canceled or not due yet): a surplus or
    /// duplicate delivery, dropped.
    Duplicate,
    /// Too little free disk to take the job; left queued for another worker.
    Deferred,
    /// The worker is shutting down; the job is queued again, attempt not charged.
    HandedBack,
    /// Another attempt owns the job now (our lease ran out); nothing recorded.
    Lost,
}

impl Outcome {
    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Failed { .. } => "failed",
            Self::Retrying { .. } => "retrying",
            Self::Duplicate => "duplicate",
            Self::Deferred => "deferred",
            Self::HandedBack => "handed_back",
            Self::Lost => "lost",
        }
    }
}

/// Why an attempt stopped before publishing.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Ffmpeg(#[from] FfmpegError),
    #[error(transparent)]
    Playlist(#[from] PlaylistError),
    #[error("{}", chain(.0))]
    Storage(#[from] StorageError),
    #[error("{0:#}")]
    Infra(#[from] anyhow::Error),
    #[error("shutting down")]
    Shutdown,
    #[error("the job's lease was lost")]
    Lost,
}

impl AttemptError {
    fn code(&self) -> &'static str {
        match self {
            Self::Probe(e) => e.code(),
            Self::Ffmpeg(e) => e.code(),
            Self::Playlist(_) => "invalid_output",
            Self::Storage(_) => "storage_unavailable",
            Self::Infra(_) => "internal_error",
            Self::Shutdown => "shutdown",
            Self::Lost => "lease_lost",
        }
    }

    fn is_bad_input(&self) -> bool {
        match self {
            Self::Probe(e) => e.is_bad_input(),
            Self::Ffmpeg(e) => e.is_bad_input(),
            _ => false,
        }
    }
}

/// Runs one delivery. A delivery is a wake-up, not an assignment: the worker
/// claims the fairest due job in Postgres ([`db::jobs::claim_next`]), which
/// may not be `delivered`. So the next free slot goes to the owner with the
/// fewest jobs running, whatever order Redis delivers in.
///
/// Why every queued job still runs (token accounting): every path that makes a
/// job `queued` and due pushes it (upload, retry, hand-back, the end of a
/// download) or leaves it to the reconciler (a backoff's end, a reaped lease,
/// a failed push). A delivery that claims another job leaves its own job
/// queued, and the pushes balance: that other job's delivery is still in Redis
/// and will claim something in its turn. A delivery is dropped only when
/// nothing is claimable then, which leaves no due job behind; and when Redis
/// has lost deliveries anyway (a flush, a restart, a disk-space deferral), the
/// reconciler pushes every due job whose last push is older than
/// `RECONCILE_AFTER_SECS`, again and again until it is claimed. Surplus
/// deliveries (a canceled job's, a re-push of a job that waited its turn) find
/// nothing or wake a worker that would otherwise idle: harmless.
pub async fn process(ctx: &JobContext, delivered: JobId) -> anyhow::Result<Outcome> {
    let free = fs4::available_space(ctx.media.root())
        .with_context(|| format!("reading free space of {}", ctx.media.root().display()))?;
    if free < ctx.min_free_disk {
        // Unclaimed, the job stays queued; the reconciler offers it again later.
        tracing::warn!(%delivered, free, minimum = ctx.min_free_disk, "too little free disk; job left for others");
        return Ok(Outcome::Deferred);
    }
    let mut conn = ctx.pool.acquire().await?;
    let mut claimed = db::jobs::claim_next(&mut conn, &ctx.worker_id, ctx.lease).await?;
    if claimed.is_none() {
        // `claim_next` skips locked rows. The delivered job may be locked for
        // an instant by a write that does not take it away (the reconciler
        // marking it pushed, a hand-back recording its push): wait for that
        // and take it, instead of leaving it to the reconciler's next round.
        claimed = db::jobs::claim(&mut conn, delivered, &ctx.worker_id, ctx.lease).await?;
    }
    drop(conn);
    let Some(job) = claimed else {
        tracing::info!(%delivered, "no due queued job; delivery dropped");
        return Ok(Outcome::Duplicate);
    };
    let span = tracing::info_span!(
        "job",
        job_id = %job.job_id,
        video_id = %job.video_id,
        attempt = job.attempt,
        fence = job.fence,
        worker = %ctx.worker_id
    );
    tracing::debug!(
        parent: &span,
        %delivered,
        owner = ?job.owner_id,
        "fairest job claimed: the owner with the fewest running, least recently served"
    );
    run_claimed(ctx, &job).instrument(span).await
}

async fn run_claimed(ctx: &JobContext, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    tracing::info!("job claimed");
    let started = std::time::Instant::now();
    let result = attempt(ctx, job).await;
    let outcome = match result {
        Ok(produced) => record_ready(ctx, job, produced).await,
        Err(err) => record_failure(ctx, job, err).await,
    };
    // Scratch (the fetched original, an encode not uploaded yet) never outlives the attempt.
    let scratch = ctx
        .media
        .remove_scratch(job.video_id, &job.attempt_key)
        .await;
    let outcome = outcome?;
    scratch.context("removing the attempt's scratch directory")?;
    if outcome != Outcome::Ready {
        // Nothing of an attempt that did not succeed stays behind.
        ctx.store
            .remove_attempt(job.video_id, &job.attempt_key)
            .await
            .context("removing the output of a failed attempt")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    metrics::histogram!(telemetry::JOB_DURATION, "outcome" => outcome.label()).record(elapsed);
    metrics::counter!(telemetry::ATTEMPTS, "outcome" => outcome.label()).increment(1);
    tracing::info!(?outcome, elapsed, "job finished");
    Ok(outcome)
}

/// Fetch, probe, encode, measure and publish; the caller records the result.
async fn attempt(ctx: &JobContext, job: &ClaimedJob) -> Result<Produced, AttemptError> {
    // Only attempts claimed before this one: a newer attempt (this one was canceled, retried and
    // claimed again while it was starting) keeps its output.
    ctx.store
        .remove_earlier_attempts(job.video_id, &job.attempt_key)
        .await?;
    let work = ctx.store.output_dir(job.video_id, &job.attempt_key);
    let work = work.as_path();
    tokio::fs::create_dir_all(work)
        .await
        .with_context(|| format!("creating {}", work.display()))?;
    let scratch = ctx.media.scratch_dir(job.video_id, &job.attempt_key);
    tokio::fs::create_dir_all(&scratch)
        .await
        .with_context(|| format!("creating {}", scratch.display()))?;

    // Where it lies on the volume, or downloaded from the bucket into the scratch directory.
    let source = ctx
        .store
        .fetch_original(&job.source_path, &scratch.join("source"))
        .await?;
    let info = media::reinspect(&ctx.ffprobe, &source, ctx.probe_timeout).await?;
    let ladder = ladder::plan(&ladder::Source {
        video: info.video.as_ref().map(|v| (v.width, v.height)),
        video_bit_rate: info.video.as_ref().and_then(|v| v.bit_rate),
        audio: info.audio.is_some(),
    });
    let video_plan = info.video.as_ref().map(normalize::plan_video);
    let (audio, mut dropped) = tracks::plan_audio(&info);
    let (subtitle_tracks, bitmaps) = subtitles::plan_subtitles(&info);
    dropped.extend(bitmaps);
    let output = Output {
        ladder,
        audio,
        subtitles: subtitle_tracks,
        // The master announces what we encode (120 fps comes out at 60), not what came in.
        frame_rate: video_plan.as_ref().map(|p| p.frame_rate.as_f64()),
    };

    let cancel = ctx.shutdown.child_token();
    let progress = Arc::new(AtomicU32::new(0f32.to_bits()));
    // Aborted with this future: if apalis drops a running job (its consumer
    // died, e.g. after a Redis FLUSHALL), ffmpeg dies by kill_on_drop and the
    // lease must stop being renewed, or the reaper would never free the job.
    let heartbeat = AbortOnDropHandle::new(tokio::spawn(heartbeat(
        ctx.clone(),
        job.clone(),
        progress.clone(),
        cancel.clone(),
    )));
    let publisher = Arc::new(Mutex::new(Publisher::new(
        ctx.store.clone(),
        job.video_id,
        &job.attempt_key,
        work,
    )));
    let subs = Arc::new(SubtitleProgress::default());
    let announcer = AbortOnDropHandle::new(tokio::spawn(announce_playable(
        ctx.clone(),
        job.clone(),
        publisher.clone(),
        Layout {
            work: work.to_owned(),
            scratch: scratch.clone(),
            duration_s: info.duration_s,
        },
        output.clone(),
        subs.clone(),
    )));
    let encode = EncodeJob {
        input: &source,
        out_dir: work,
        ladder: &output.ladder,
        duration_s: info.duration_s,
        video: video_plan.as_ref(),
        audio: &output.audio,
        preset: &ctx.preset,
        crf: ctx.crf,
    };
    let limit = ffmpeg::encode_timeout(
        encode_work(&info, video_plan.as_ref()),
        if info.audio.is_some() {
            info.duration_s
        } else {
            0.0
        },
        ctx.encode_timeout_factor,
        ctx.encode_timeout_min,
    );
    let encode_started = std::time::Instant::now();
    let encoding = ffmpeg::encode(&ctx.ffmpeg, &encode, limit, &cancel, |p| {
        progress.store(p.to_bits(), Ordering::Relaxed);
    });
    // Beside the encode: the text subtitles alone, demuxed and converted to WebVTT (no decode of
    // the picture). Quick next to the encode, so usually done before the video is playable, and
    // then the early master names them.
    let extracting = async {
        if output.subtitles.is_empty() {
            return Ok(());
        }
        ffmpeg::extract_subtitles(
            &ctx.ffmpeg,
            &source,
            &scratch,
            &output.subtitles,
            limit,
            &cancel,
        )
        .await?;
        subs.extracted.store(true, Ordering::Release);
        Ok::<(), FfmpegError>(())
    };
    let (encoded, extracted) = tokio::join!(encoding, extracting);
    // Both are over: stop the heartbeat (ffmpeg has exited, so the token is free to fire).
    cancel.cancel();
    drop(announcer);
    if heartbeat.await.unwrap_or(false) {
        return Err(AttemptError::Lost);
    }
    match encoded {
        Err(FfmpegError::Process(prostream::process::ProcessError::Canceled { .. })) => {
            return Err(AttemptError::Shutdown);
        }
        other => other?,
    }
    let mut output = output;
    match extracted {
        Ok(()) => {}
        Err(FfmpegError::Process(prostream::process::ProcessError::Canceled { .. })) => {
            return Err(AttemptError::Shutdown);
        }
        // Subtitles ffmpeg cannot read cost the subtitles, not the video: they are dropped and
        // said so. The machine failing (a timeout, a signal) is retried like any other failure.
        Err(err) if err.is_bad_input() => {
            tracing::warn!(error = %err, "the subtitle tracks could not be extracted; dropped");
            dropped.extend(
                info.subtitles
                    .iter()
                    .filter(|s| output.subtitles.iter().any(|t| t.input == s.index))
                    .map(|s| subtitles::dropped_stream(s, "unreadable_subtitles")),
            );
            output.subtitles.clear();
        }
        Err(err) => return Err(err.into()),
    }
    let speed = info.duration_s / encode_started.elapsed().as_secs_f64().max(0.001);
    metrics::histogram!(telemetry::ENCODE_SPEED).record(speed);

    report(ctx, job, JobStage::Publishing, 100.0).await?;
    // The poster, the downloads (unless the upload said `downloads=false`) and the storyboard:
    // three small ffmpeg runs, each mostly one thread, between the end of the encode and `ready`.
    // Side by side they cost the time of the longest (benchmark 1: one after another they took
    // the pipeline's overhead from 1.07× to 1.15× of bare ffmpeg).
    let make_downloads = async {
        if job.downloads {
            downloads::make(&ctx.ffmpeg, work, &output, limit)
                .await
                .map_err(AttemptError::from)
        } else {
            Ok(downloads::Downloads::default())
        }
    };
    let make_storyboard = async {
        storyboard::make(&ctx.ffmpeg, work, &scratch, &output, info.duration_s, limit)
            .await
            .map_err(AttemptError::from)
    };
    let (has_poster, downloads, storyboard) = tokio::try_join!(
        make_poster(ctx, &source, work, &info, video_plan.as_ref()),
        make_downloads,
        make_storyboard,
    )?;
    // The announcer is gone (aborted above): the publisher is ours alone now.
    let mut publisher = publisher.lock().await;
    // Every segment, then the final playlists (with ENDLIST), then the poster, the subtitles
    // (unless the announcer published them with the early master)...
    let names = output.names();
    publisher.sync(&names).await?;
    publisher.check_final(&names).await?;
    if has_poster {
        publisher.publish_file(ffmpeg::POSTER).await?;
    }
    for (made, name) in [
        (downloads.video, storage::VIDEO_DOWNLOAD),
        (downloads.audio, storage::AUDIO_DOWNLOAD),
    ] {
        if made && !publisher.publish_file(name).await? {
            return Err(anyhow::anyhow!("{name} vanished before it was published").into());
        }
    }
    // The sheets, then the track that names them.
    for name in &storyboard {
        if !publisher.publish_file(name).await? {
            return Err(anyhow::anyhow!("{name} vanished before it was published").into());
        }
    }
    if !output.subtitles.is_empty() && !subs.published.load(Ordering::Acquire) {
        let layout = Layout {
            work: work.to_owned(),
            scratch: scratch.clone(),
            duration_s: info.duration_s,
        };
        publish_subtitles(&mut publisher, &layout, &output).await?;
    }
    // ...and last the master with the measured bandwidths, naming the captions.
    let (renditions, master) =
        output::final_master(job.video_id, work, &output, &output.subtitles).await?;
    let mpegts = media_start(work, &output).await?;
    if !captions::publish_master(&ctx.pool, &mut publisher, job, work, &master, mpegts).await? {
        return Err(AttemptError::Lost);
    }
    Ok(Produced {
        renditions,
        has_poster,
        dropped,
        extras: ReadyExtras {
            download_video: downloads.video,
            download_audio: downloads.audio,
            storyboard: !storyboard.is_empty(),
        },
    })
}

/// The poster: a frame of the video, or the cover of an audio file. A
/// picture ffmpeg cannot decode (a cover with broken data) costs the poster,
/// not the video; the machine failing (no ffmpeg, a timeout) is an error
/// like any other.
/// Pixels the encode decodes or produces: the output frames at the planned rate, or every frame
/// of the source if it holds more, times the source's pixels.
fn encode_work(info: &media::ProbeInfo, plan: Option<&normalize::VideoPlan>) -> u64 {
    let (Some(video), Some(plan)) = (&info.video, plan) else {
        return 0;
    };
    let output = (info.duration_s * plan.frame_rate.as_f64()).ceil().max(0.0) as u64;
    output
        .max(video.frame_count.unwrap_or(0))
        .saturating_mul(u64::from(video.width) * u64::from(video.height))
}

async fn make_poster(
    ctx: &JobContext,
    source: &std::path::Path,
    work: &std::path::Path,
    info: &ProbeInfo,
    video: Option<&VideoPlan>,
) -> Result<bool, AttemptError> {
    let from = match (video, &info.cover) {
        (Some(plan), _) => PosterSource::Video(plan),
        (None, Some(cover)) => PosterSource::Cover(cover.index),
        (None, None) => return Ok(false),
    };
    let made = ffmpeg::poster(
        &ctx.ffmpeg,
        source,
        work,
        info.duration_s,
        from,
        ctx.probe_timeout,
    )
    .await;
    match made {
        Ok(made) => Ok(made),
        Err(err) if err.is_bad_input() => {
            tracing::warn!(error = %err, "no poster: ffmpeg could not take one");
            Ok(false)
        }
        Err(err) => Err(err.into()),
    }
}

/// Reports progress every second and renews the lease while ffmpeg runs.
/// Cancels the attempt if the job is no longer ours. Returns whether it was lost.
async fn heartbeat(
    ctx: JobContext,
    job: ClaimedJob,
    progress: Arc<AtomicU32>,
    cancel: CancellationToken,
) -> bool {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return false,
            _ = tick.tick() => {}
        }
        let percent = f32::from_bits(progress.load(Ordering::Relaxed));
        match report(&ctx, &job, JobStage::Transcoding, percent).await {
            Ok(()) => {}
            Err(AttemptError::Lost) => {
                tracing::warn!("job no longer ours; stopping ffmpeg");
                cancel.cancel();
                return true;
            }
            // Postgres hiccup: keep encoding, the lease has slack for a few missed beats.
            Err(err) => tracing::warn!(error = %err, "progress report failed"),
        }
    }
}

async fn report(
    ctx: &JobContext,
    job: &ClaimedJob,
    stage: JobStage,
    percent: f32,
) -> Result<(), AttemptError> {
    let mut conn = ctx.pool.acquire().await.context("reporting progress")?;
    let ours = db::jobs::report(&mut conn, job.job_id, job.fence, stage, percent, ctx.lease)
        .await
        .context("reporting progress")?;
    if ours {
        Ok(())
    } else {
        Err(AttemptError::Lost)
    }
}

/// Where the subtitles stand, shared by the attempt and its announcer.
#[derive(Debug, Default)]
struct SubtitleProgress {
    /// ffmpeg has extracted every track to WebVTT (in the scratch directory).
    extracted: AtomicBool,
    /// Their segments and playlists are written and published (by the announcer, with the
    /// early master): the end of the attempt need not do it again.
    published: AtomicBool,
}

/// An attempt's directories, and how long the source is.
#[derive(Debug, Clone)]
struct Layout {
    /// The output (published as it is written).
    work: PathBuf,
    /// Never published: the fetched original, the extracted WebVTT.
    scratch: PathBuf,
    duration_s: f64,
}

/// Cuts the extracted subtitles into segments aligned with the first variant's first segment
/// (its first presentation time is the `X-TIMESTAMP-MAP`'s MPEGTS, `fmp4.rs`), and publishes
/// every segment, then each playlist. The variant's first segment must be written.
async fn publish_subtitles(
    publisher: &mut Publisher,
    layout: &Layout,
    output: &Output,
) -> Result<(), AttemptError> {
    let mpegts = media_start(&layout.work, output).await?;
    let files = subtitles::write_renditions(
        &layout.work,
        &layout.scratch,
        &output.subtitles,
        layout.duration_s,
        mpegts,
    )
    .await?;
    for file in files {
        if !publisher.publish_file(&file).await? {
            return Err(anyhow::anyhow!("{file} vanished before it was published").into());
        }
    }
    Ok(())
}

/// Where cue time 0 of every WebVTT segment (subtitles, captions) is on the media timeline: the
/// first presentation time of the first rendition's first segment, which must be written.
async fn media_start(work: &Path, output: &Output) -> Result<u64, AttemptError> {
    let reference = output
        .names()
        .into_iter()
        .next()
        .context("subtitles need a video or audio rendition to align with")?;
    first_pts(work, &reference).await
}

/// The first presentation time, in 90 kHz units, of rendition `name`'s first segment.
async fn first_pts(work: &Path, name: &str) -> Result<u64, AttemptError> {
    let (playlist_path, init) = ffmpeg::rendition_files(work, name);
    let media_playlist = playlist::read_media_playlist(&playlist_path).await?;
    let first = media_playlist
        .segments
        .first()
        .with_context(|| format!("{name} has no segment to align the subtitles with"))?;
    let read = |path: PathBuf| async move {
        tokio::fs::read(&path)
            .await
            .with_context(|| format!("reading {}", path.display()))
    };
    let init_bytes = read(init.clone()).await?;
    let segment = read(work.join(&first.uri)).await?;
    Ok(fmp4::first_pts_90k(&init_bytes, &segment).with_context(|| {
        format!(
            "{} and {} hold no fragment timestamps",
            init.display(),
            first.uri
        )
    })?)
}

/// Publishes the output as ffmpeg writes it, and an estimated master playlist
/// as soon as every rendition has its first segment published (naming the subtitles if they
/// are extracted by then, after publishing them); then records that the video is playable, and
/// goes on publishing until it is aborted at the end of the encode. Polls the attempt's
/// directory: ffmpeg renames each playlist into place, so a playlist that parses is complete as
/// far as it goes.
async fn announce_playable(
    ctx: JobContext,
    job: ClaimedJob,
    publisher: Arc<Mutex<Publisher>>,
    layout: Layout,
    output: Output,
    subs: Arc<SubtitleProgress>,
) {
    let names = output.names();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // Announced, or given up on (an early master that cannot be computed is not retried: the
    // final master comes at the end either way).
    let mut master_done = false;
    let mut warned = false;
    loop {
        tick.tick().await;
        let mut publisher = publisher.lock().await;
        let all_playable = match publisher.sync(&names).await {
            Ok(all) => all,
            Err(err) => {
                // The store may be back by the next tick; the end of the encode publishes
                // everything again, and fails the attempt if it still cannot.
                if !warned {
                    tracing::warn!(error = %chain(&err), "could not publish the output as it grows");
                    warned = true;
                }
                continue;
            }
        };
        if master_done || !all_playable {
            continue;
        }
        // Named by the early master only if they are ready now: playability does not wait.
        let mut named: &[SubtitleTrack] = &[];
        if !output.subtitles.is_empty() && subs.extracted.load(Ordering::Acquire) {
            match publish_subtitles(&mut publisher, &layout, &output).await {
                Ok(()) => {
                    subs.published.store(true, Ordering::Release);
                    named = &output.subtitles;
                }
                // The end of the attempt writes and publishes them again, and fails if it cannot.
                Err(err) => tracing::warn!(error = %err, "could not publish the subtitles early"),
            }
        }
        let master = match output::early_master(&layout.work, &output, named).await {
            Ok(None) => continue,
            Ok(Some(master)) => master,
            Err(err) => {
                tracing::warn!(error = %err, "could not write the early master playlist");
                master_done = true;
                continue;
            }
        };
        let published = async {
            let mpegts = media_start(&layout.work, &output).await?;
            captions::publish_master(
                &ctx.pool,
                &mut publisher,
                &job,
                &layout.work,
                &master,
                mpegts,
            )
            .await
            .map_err(AttemptError::from)
        };
        match published.await {
            Ok(true) => {}
            // No longer ours: the heartbeat stops the attempt.
            Ok(false) => {
                master_done = true;
                continue;
            }
            // The store or the database may answer at the next tick.
            Err(err) => {
                if !warned {
                    tracing::warn!(error = %err, "could not publish the early master playlist");
                    warned = true;
                }
                continue;
            }
        }
        master_done = true;
        drop(publisher);
        let marked = async {
            let mut conn = ctx.pool.acquire().await?;
            db::jobs::mark_playable(&mut conn, job.job_id, job.fence).await
        };
        match marked.await {
            Ok(_) => tracing::info!("playable while encoding"),
            Err(err) => tracing::warn!(error = %err, "could not record that the video is playable"),
        }
    }
}

/// Publishes the output and marks the job ready, renditions in the same transaction.
/// Marks the job ready with its renditions, in one transaction. The output
/// is already in place: it has been served since it became playable.
async fn record_ready(
    ctx: &JobContext,
    job: &ClaimedJob,
    produced: Produced,
) -> anyhow::Result<Outcome> {
    let mut tx = ctx.pool.begin().await?;
    // Lock our job row first: if the attempt is no longer ours, record nothing.
    if !db::jobs::report(
        &mut tx,
        job.job_id,
        job.fence,
        JobStage::Publishing,
        100.0,
        ctx.lease,
    )
    .await?
    {
        return Ok(Outcome::Lost);
    }
    db::videos::delete_renditions(&mut tx, job.video_id).await?;
    for r in &produced.renditions {
        db::videos::insert_rendition(&mut tx, r).await?;
    }
    db::videos::set_dropped_streams(&mut tx, job.video_id, &produced.dropped).await?;
    db::videos::set_ready_extras(&mut tx, job.video_id, produced.extras).await?;
    db::jobs::mark_ready(&mut tx, job.job_id, job.fence, produced.has_poster).await?;
    tx.commit().await?;
    if !ctx.keep_originals {
        ctx.store.remove_original(&job.source_path).await?;
    }
    Ok(Outcome::Ready)
}

async fn record_failure(
    ctx: &JobContext,
    job: &ClaimedJob,
    err: AttemptError,
) -> anyhow::Result<Outcome> {
    let mut conn = ctx.pool.acquire().await?;
    let code = err.code().to_owned();
    // Each write is fenced: `false` means the job was canceled, deleted or
    // reaped meanwhile, and what happened to this attempt no longer matters.
    let outcome = match err {
        AttemptError::Lost => return Ok(Outcome::Lost),
        AttemptError::Shutdown => {
            if !db::jobs::requeue(&mut conn, job.job_id, job.fence, false, Duration::ZERO).await? {
                return Ok(Outcome::Lost);
            }
            push_now(ctx, &mut conn, job.job_id).await;
            Outcome::HandedBack
        }
        err if err.is_bad_input() || job.attempt >= job.max_attempts => {
            if !db::jobs::mark_failed(&mut conn, job.job_id, job.fence, &code, &err.to_string())
                .await?
            {
                return Ok(Outcome::Lost);
            }
            tracing::warn!(code, error = %err, "job failed");
            metrics::counter!(telemetry::FAILURES, "code" => code.clone()).increment(1);
            Outcome::Failed { code }
        }
        err => {
            let delay = backoff(ctx.retry_backoff, job.attempt);
            // The reconciler pushes it once the delay has passed.
            if !db::jobs::requeue(&mut conn, job.job_id, job.fence, true, delay).await? {
                return Ok(Outcome::Lost);
            }
            tracing::warn!(code, error = %err, ?delay, "transient failure; job queued again");
            metrics::counter!(telemetry::RETRIES, "code" => code.clone()).increment(1);
            Outcome::Retrying { code }
        }
    };
    Ok(outcome)
}

/// `base`, doubled for every attempt after the first, at most 10 minutes.
pub fn backoff(base: Duration, attempt: i32) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    (base * 2u32.pow(doublings)).min(Duration::from_secs(600))
}

/// Pushes a job that was just queued again. If the push fails the row still
/// says `queued` with no recent push, and the reconciler pushes it.
async fn push_now(ctx: &JobContext, conn: &mut sqlx::PgConnection, job_id: JobId) {
    match queue::push(&ctx.queue, job_id).await {
        Ok(()) => {
            if let Err(err) = db::jobs::mark_pushed(conn, job_id).await {
                tracing::warn!(%job_id, error = %err, "pushed, but could not record the push");
            }
        }
        Err(err) => tracing::warn!(%job_id, error = %err, "could not push the job back to Redis"),
    }
}

/// An error with its causes, on one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_ten_minutes() {
        let base = Duration::from_secs(10);
        assert_eq!(backoff(base, 1), Duration::from_secs(10));
        assert_eq!(backoff(base, 2), Duration::from_secs(20));
        assert_eq!(backoff(base, 3), Duration::from_secs(40));
        assert_eq!(backoff(base, 30), Duration::from_secs(600));
    }
}

//! Publishing a master playlist with the captions an owner added (`prostream::captions`).
//!
//! Every master the worker publishes, early or final, goes through [`publish_master`]: holding the
//! video's captions lock, it records which attempt's master is up (so the API knows where to add
//! a caption from now on), writes and publishes the files of captions this attempt has not
//! written yet, and publishes the master naming all of them. A caption added meanwhile waits for
//! the lock and is then added by the API to this very master; one added before is here already.

use std::path::Path;

use anyhow::Context;
use prostream::{captions, db, db::jobs::ClaimedJob};
use sqlx::PgPool;

use crate::{playlist, publish::Publisher};

/// Publishes `master` (the attempt's own, without captions) naming the video's captions, whose
/// cue time 0 is media time `mpegts`. False if the attempt is no longer the job's: nothing was
/// published.
pub async fn publish_master(
    pool: &PgPool,
    publisher: &mut Publisher,
    job: &ClaimedJob,
    work: &Path,
    master: &[u8],
    mpegts: u64,
) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    db::captions::lock_video(&mut tx, job.video_id).await?;
    let mpegts_column = i64::try_from(mpegts).context("a media start past 2^63 ticks")?;
    if !db::captions::set_published_master(
        &mut tx,
        job.job_id,
        job.fence,
        &job.attempt_key,
        mpegts_column,
    )
    .await?
    {
        return Ok(false);
    }
    let all = db::captions::list(&mut tx, job.video_id).await?;
    // The early master's captions are published already when the final one comes.
    let playlist_of = |id| format!("{}.m3u8", captions::stem(id));
    for caption in &all {
        if publisher.has_published(&playlist_of(caption.id)) {
            continue;
        }
        let text = db::captions::webvtt(&mut tx, caption.id).await?;
        for (name, contents) in captions::files(caption.id, &text, job.duration_s, mpegts) {
            write_and_publish(publisher, work, &name, &contents).await?;
        }
    }
    let merged = captions::merge_master(master, &all)?;
    write_and_publish(publisher, work, playlist::MASTER, &merged).await?;
    tx.commit().await?;
    Ok(true)
}

async fn write_and_publish(
    publisher: &mut Publisher,
    work: &Path,
    name: &str,
    contents: &[u8],
) -> anyhow::Result<()> {
    playlist::write_atomically(work, name, contents)
        .await
        .with_context(|| format!("writing {name}"))?;
    if !publisher.publish_file(name).await? {
        anyhow::bail!("{name} vanished before it was published");
    }
    Ok(())
}

//! Writing one request's chunk of a tus upload: appended to the upload's
//! file, fsynced, and only then counted in Postgres, in batches while it
//! streams and at its end, whether the body ended, broke off or went idle:
//! what arrived is kept and the client resumes from there. With a checksum
//! the chunk counts only as a whole, once verified.

use std::{io::SeekFrom, path::Path, time::Duration};

use axum::{body::Body, http::StatusCode};
use futures_util::StreamExt;
use sqlx::PgPool;
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};

use super::{headers::ChunkDigest, lease::Lease};
use crate::{
    db,
    http::error::{ApiError, ErrorCode},
};

/// Bytes written between two offset updates in Postgres (each after an fsync).
const COMMIT_EVERY: u64 = 4 << 20;

/// One request's chunk.
pub struct Chunk {
    /// A body that sends nothing for this long (UPLOAD_IDLE_TIMEOUT_SECS) is treated as broken off.
    pub idle: Duration,
    /// The upload's offset when the request started.
    pub start: u64,
    /// The whole upload's size: no byte goes past it.
    pub length: u64,
    pub digest: Option<ChunkDigest>,
}

/// How the body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Whole,
    BrokeOff,
    Idle,
}

#[derive(Debug)]
pub struct Received {
    /// The upload's offset now, as recorded in Postgres.
    pub offset: u64,
    pub ending: Ending,
}

pub async fn receive(
    pool: &PgPool,
    lease: &Lease,
    path: &Path,
    chunk: Chunk,
    body: Body,
) -> Result<Received, ApiError> {
    let Chunk {
        idle,
        start,
        length,
        mut digest,
    } = chunk;
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .await
        .map_err(ApiError::internal)?;
    let on_disk = file.metadata().await.map_err(ApiError::internal)?.len();
    if on_disk < start {
        return Err(ApiError::internal(anyhow::anyhow!(
            "{} has {on_disk} bytes but its recorded offset is {start}",
            path.display()
        )));
    }
    if on_disk > start {
        // Written but never counted (a crash between the write and the offset update): cut off.
        file.set_len(start).await.map_err(ApiError::internal)?;
    }
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(ApiError::internal)?;
    let mut out = BufWriter::with_capacity(256 << 10, file);
    let mut committed = start;
    let mut written = start;
    let mut stream = body.into_data_stream();
    let ending = loop {
        let bytes = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => break Ending::Idle,
            Ok(None) => break Ending::Whole,
            Ok(Some(Err(_))) => break Ending::BrokeOff,
            Ok(Some(Ok(bytes))) => bytes,
        };
        if lease.is_lost() {
            return Err(lease_lost());
        }
        if written + bytes.len() as u64 > length {
            drop(out);
            cut(path, committed).await?;
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::UploadLengthExceeded,
                format!(
                    "the chunk goes past the upload's length of {length} bytes; nothing of it was kept"
                ),
            ));
        }
        if let Some(digest) = digest.as_mut() {
            digest.update(&bytes);
        }
        out.write_all(&bytes).await.map_err(ApiError::internal)?;
        written += bytes.len() as u64;
        if digest.is_none() && written - committed >= COMMIT_EVERY {
            sync(&mut out).await?;
            commit(pool, lease, written).await?;
            committed = written;
        }
    };
    sync(&mut out).await?;
    drop(out);
    // With a checksum: whether the whole chunk arrived and matches it.
    let verified = digest.map(|digest| ending == Ending::Whole && digest.matches());
    if verified == Some(false) {
        // Unverified or wrong: the chunk is discarded and the offset stays.
        cut(path, start).await?;
        if ending == Ending::Whole {
            return Err(ApiError::new(
                StatusCode::from_u16(460).expect("460 is a valid status"),
                ErrorCode::ChecksumMismatch,
                format!(
                    "the chunk does not match its Upload-Checksum and was discarded; \
                     send it again from offset {start}"
                ),
            ));
        }
        return Ok(Received {
            offset: start,
            ending,
        });
    }
    if written > committed {
        commit(pool, lease, written).await?;
    }
    Ok(Received {
        offset: written,
        ending,
    })
}

async fn sync(out: &mut BufWriter<tokio::fs::File>) -> Result<(), ApiError> {
    out.flush().await.map_err(ApiError::internal)?;
    out.get_ref().sync_data().await.map_err(ApiError::internal)
}

/// Records the new offset, fenced by the lease.
async fn commit(pool: &PgPool, lease: &Lease, offset: u64) -> Result<(), ApiError> {
    let mut conn = pool.acquire().await?;
    if !db::uploads::advance(
        &mut conn,
        lease.upload_id,
        lease.token,
        offset as i64,
        super::lease::LEASE,
    )
    .await?
    {
        return Err(lease_lost());
    }
    Ok(())
}

/// Truncates the upload's file back to `len` bytes.
async fn cut(path: &Path, len: u64) -> Result<(), ApiError> {
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .await
        .map_err(ApiError::internal)?;
    file.set_len(len).await.map_err(ApiError::internal)?;
    file.sync_data().await.map_err(ApiError::internal)
}

fn lease_lost() -> ApiError {
    ApiError::new(
        StatusCode::LOCKED,
        ErrorCode::UploadLocked,
        "another request took this upload over; ask for its offset with HEAD and resume",
    )
}

//! The lease a request holds on an upload while it writes, completes or
//! deletes it: a token and an expiry on the row, taken with one conditional
//! UPDATE, so two requests, on one API replica or on two, never interleave.
//! A background task renews it while the request runs; a crashed replica's
//! lease simply runs out.

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    db::{self, uploads::UploadRow},
    ids::UploadId,
};

/// How long a lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often a held lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(10);

pub struct Lease {
    pool: PgPool,
    pub upload_id: UploadId,
    pub token: Uuid,
    /// Cancelled once the lease cannot be trusted any more (taken over, or not renewed in time).
    lost: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

impl Lease {
    /// Takes the lease of an upload unless another request holds a live one.
    /// `None`: no such upload, or it is locked.
    pub async fn acquire(
        pool: &PgPool,
        upload_id: UploadId,
    ) -> sqlx::Result<Option<(Self, UploadRow)>> {
        let token = Uuid::now_v7();
        let mut conn = pool.acquire().await?;
        let Some(row) = db::uploads::acquire(&mut conn, upload_id, token, LEASE).await? else {
            return Ok(None);
        };
        Ok(Some((Self::held(pool.clone(), upload_id, token), row)))
    }

    /// A lease taken by the statement that created the upload.
    pub fn held(pool: PgPool, upload_id: UploadId, token: Uuid) -> Self {
        let lost = CancellationToken::new();
        let renewer = tokio::spawn(renew(pool.clone(), upload_id, token, lost.clone()));
        Self {
            pool,
            upload_id,
            token,
            lost,
            renewer,
            released: false,
        }
    }

    /// Whether another request may have the upload by now: stop writing.
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    pub async fn release(mut self) {
        self.released = true;
        self.renewer.abort();
        if let Err(err) = release(&self.pool, self.upload_id, self.token).await {
            // It runs out by itself within LEASE.
            tracing::warn!(upload_id = %self.upload_id, error = %err, "could not release an upload's lease");
        }
    }

    /// The upload was deleted with the lease: nothing to release.
    pub fn forget(mut self) {
        self.released = true;
        self.renewer.abort();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
        if !self.released {
            // A request that ended on an error path: hand the upload back without waiting.
            let (pool, id, token) = (self.pool.clone(), self.upload_id, self.token);
            tokio::spawn(async move {
                let _ = release(&pool, id, token).await;
            });
        }
    }
}

async fn release(pool: &PgPool, id: UploadId, token: Uuid) -> sqlx::Result<()> {
    let mut conn = pool.acquire().await?;
    db::uploads::release(&mut conn, id, token).await
}

/// Renews every [`RENEW_EVERY`]; gives up (and marks the lease lost) when the row is no longer
/// ours, or when Postgres has not confirmed a renewal for most of a lease.
async fn renew(pool: PgPool, id: UploadId, token: Uuid, lost: CancellationToken) {
    let mut confirmed = Instant::now();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let renewed = async {
            let mut conn = pool.acquire().await?;
            db::uploads::renew(&mut conn, id, token, LEASE).await
        };
        match tokio::time::timeout(RENEW_EVERY, renewed).await {
            Ok(Ok(true)) => confirmed = Instant::now(),
            Ok(Ok(false)) => {
                tracing::warn!(upload_id = %id, "the upload's lease was taken over");
                lost.cancel();
                return;
            }
            Ok(Err(err)) => {
                tracing::warn!(upload_id = %id, error = %err, "could not renew an upload's lease")
            }
            Err(_) => tracing::warn!(upload_id = %id, "renewing an upload's lease timed out"),
        }
        if confirmed.elapsed() + RENEW_EVERY >= LEASE {
            lost.cancel();
            return;
        }
    }
}

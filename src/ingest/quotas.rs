//! Per-owner quotas: bytes stored and uploads started per UTC day.
//!
//! An owner's own limits (`owners.max_bytes`, `owners.max_uploads_per_day`, set with
//! `prostream keys quota`) override the API's defaults (`QUOTA_MAX_BYTES`,
//! `QUOTA_UPLOADS_PER_DAY`); 0 means no limit. "Stored" counts the originals of the owner's
//! videos, the captions added to them and the announced lengths of its unfinished resumable
//! uploads. A keyless caller (`AUTH_MODE=open`) has no owner and no quota.

use sqlx::PgConnection;
use time::{Duration, OffsetDateTime, Time};

use super::{Ingest, IngestError};
use crate::{config::OwnerPolicy, db, ids::OwnerId};

/// The limits that apply to one owner (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: Option<u64>,
    pub uploads_per_day: Option<u32>,
}

impl Limits {
    pub fn of(policy: &OwnerPolicy, own: db::owners::Overrides) -> Self {
        let nonzero_u64 = |n: u64| (n > 0).then_some(n);
        let nonzero_u32 = |n: u32| (n > 0).then_some(n);
        Self {
            max_bytes: own
                .max_bytes
                .map_or(nonzero_u64(policy.quota_max_bytes), |n| {
                    nonzero_u64(n.max(0) as u64)
                }),
            uploads_per_day: own
                .max_uploads_per_day
                .map_or(nonzero_u32(policy.quota_uploads_per_day), |n| {
                    nonzero_u32(n.max(0) as u32)
                }),
        }
    }
}

impl Ingest {
    /// The limits that apply to `owner_id`: its own overrides, else the API's defaults.
    async fn limits_of(&self, conn: &mut PgConnection, owner_id: OwnerId) -> sqlx::Result<Limits> {
        Ok(Limits::of(
            &self.policy,
            db::owners::overrides(conn, owner_id).await?,
        ))
    }

    /// Admits one more upload of `owner`: refuses it when `announced` bytes would not fit in
    /// the storage quota, then counts it against today's uploads. `None` (a keyless caller in
    /// `AUTH_MODE=open`) has no quota.
    pub async fn admit_upload(
        &self,
        owner: Option<OwnerId>,
        announced: Option<u64>,
    ) -> Result<(), IngestError> {
        let Some(owner_id) = owner else {
            return Ok(());
        };
        let mut conn = self.pool.acquire().await?;
        let limits = self.limits_of(&mut conn, owner_id).await?;
        if let Some(bytes) = announced {
            check_storage(&mut conn, owner_id, limits, bytes).await?;
        }
        if let Some(per_day) = limits.uploads_per_day
            && !db::owners::count_upload(
                &mut conn,
                owner_id,
                i32::try_from(per_day).unwrap_or(i32::MAX),
            )
            .await?
        {
            return Err(IngestError::UploadQuotaExceeded {
                per_day,
                retry_after_secs: seconds_to_next_utc_day(OffsetDateTime::now_utc()),
            });
        }
        Ok(())
    }

    /// Bytes `owner` may still store (`None`: no storage quota applies). Read without a lock:
    /// it caps how much of a body without `Content-Length` is streamed to disk; the locked
    /// check of [`reserve_storage`] when the upload is recorded has the last word.
    pub async fn room_left(&self, owner: Option<OwnerId>) -> Result<Option<u64>, IngestError> {
        let Some(owner_id) = owner else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        let limits = self.limits_of(&mut conn, owner_id).await?;
        let Some(max) = limits.max_bytes else {
            return Ok(None);
        };
        let stored = db::owners::stored_bytes(&mut conn, owner_id).await?.max(0) as u64;
        Ok(Some(max.saturating_sub(stored)))
    }

    /// Checks, before the file is probed, that `bytes` more still fit (another upload of the
    /// owner may have taken the room while this one streamed): refusing here saves the probe.
    pub async fn check_room(&self, owner: Option<OwnerId>, bytes: u64) -> Result<(), IngestError> {
        let Some(owner_id) = owner else {
            return Ok(());
        };
        let mut conn = self.pool.acquire().await?;
        let limits = self.limits_of(&mut conn, owner_id).await?;
        check_storage(&mut conn, owner_id, limits, bytes).await
    }
}

/// Checks, inside the transaction that records a video of `owner_id` with `bytes` more, that
/// the owner stays within its storage quota. The owner's row is locked until the transaction
/// ends, so two uploads of one owner cannot both take the last bytes.
pub async fn reserve_storage(
    tx: &mut PgConnection,
    policy: &OwnerPolicy,
    owner_id: OwnerId,
    bytes: u64,
) -> Result<(), IngestError> {
    let limits = Limits::of(policy, db::owners::lock(tx, owner_id).await?);
    check_storage(tx, owner_id, limits, bytes).await
}

/// `StorageQuotaExceeded` unless `bytes` more fit in the owner's storage quota.
async fn check_storage(
    conn: &mut PgConnection,
    owner_id: OwnerId,
    limits: Limits,
    bytes: u64,
) -> Result<(), IngestError> {
    let Some(max) = limits.max_bytes else {
        return Ok(());
    };
    let stored = db::owners::stored_bytes(conn, owner_id).await?.max(0) as u64;
    if stored.saturating_add(bytes) > max {
        return Err(IngestError::StorageQuotaExceeded { stored, max, bytes });
    }
    Ok(())
}

/// Seconds until the next UTC midnight, when today's upload count no longer applies (at least 1).
fn seconds_to_next_utc_day(now: OffsetDateTime) -> u64 {
    let tomorrow = (now.date() + Duration::days(1))
        .with_time(Time::MIDNIGHT)
        .assume_utc();
    ((tomorrow - now).whole_seconds().max(1)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::owners::Overrides;

    #[test]
    fn an_owners_own_limit_wins_over_the_default_and_zero_means_unlimited() {
        let policy = OwnerPolicy {
            quota_max_bytes: 1000,
            quota_uploads_per_day: 5,
            ..OwnerPolicy::default()
        };
        let defaults = Limits::of(&policy, Overrides::default());
        assert_eq!(defaults.max_bytes, Some(1000));
        assert_eq!(defaults.uploads_per_day, Some(5));
        let own = Limits::of(
            &policy,
            Overrides {
                max_bytes: Some(0),
                max_uploads_per_day: Some(50),
            },
        );
        assert_eq!(own.max_bytes, None);
        assert_eq!(own.uploads_per_day, Some(50));
        let unlimited = Limits::of(&OwnerPolicy::default(), Overrides::default());
        assert_eq!(unlimited.max_bytes, None);
        assert_eq!(unlimited.uploads_per_day, None);
    }

    #[test]
    fn the_day_count_resets_at_the_next_utc_midnight() {
        let day = time::Date::from_calendar_date(2026, time::Month::November, 30).unwrap();
        let now = day.with_hms(23, 59, 30).unwrap().assume_utc();
        assert_eq!(seconds_to_next_utc_day(now), 30);
        let midnight = (day + Duration::days(1)).midnight().assume_utc();
        assert_eq!(seconds_to_next_utc_day(midnight), 86_400);
    }
}

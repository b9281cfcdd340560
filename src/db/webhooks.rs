//! Queries on webhooks: endpoints, the event outbox, deliveries and their attempts.
//!
//! [`enqueue_event`] runs inside the transaction of the state change it announces (the
//! `db::jobs` functions call it), so an event exists exactly when the change was committed. It
//! writes one delivery per subscribed endpoint; the API's deliverer sends them.

use std::time::Duration;

use serde_json::json;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::JobState;
use crate::ids::{JobId, OwnerId, VideoId, WebhookId};

/// What an owner can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Every rendition's first segments are published: the video can be watched while it encodes.
    Playable,
    Ready,
    Failed,
    Canceled,
    /// A caption track was added to the video or deleted from it.
    CaptionsChanged,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        Self::Playable,
        Self::Ready,
        Self::Failed,
        Self::Canceled,
        Self::CaptionsChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Playable => "video.playable",
            Self::Ready => "video.ready",
            Self::Failed => "video.failed",
            Self::Canceled => "video.canceled",
            Self::CaptionsChanged => "video.captions_changed",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// Where a video stands when its event is written (the row after the change).
struct VideoNow {
    video_id: Uuid,
    owner_id: Option<Uuid>,
    title: String,
    state: JobState,
    playable: bool,
    error_code: Option<String>,
    error_message: Option<String>,
}

/// Writes the event `kind` for `video_id` and a delivery to each of the owner's endpoints
/// subscribed to it. Nothing when the video has no owner or nobody listens. Call it in the
/// transaction that made the change.
pub async fn enqueue_event(
    conn: &mut PgConnection,
    video_id: VideoId,
    kind: EventType,
) -> sqlx::Result<()> {
    let now = sqlx::query_as!(
        VideoNow,
        r#"SELECT v.id AS video_id, v.owner_id, v.title, j.state AS "state: JobState",
                  (j.state = 'ready' OR (j.state = 'processing' AND j.playable_at IS NOT NULL))
                      AS "playable!",
                  j.error_code, j.error_message
           FROM videos v JOIN jobs j ON j.video_id = v.id
           WHERE v.id = $1"#,
        video_id.get()
    )
    .fetch_optional(&mut *conn)
    .await?;
    match now {
        Some(now) => fan_out(conn, now, kind).await,
        None => Ok(()),
    }
}

/// [`enqueue_event`] for the video of `job_id`.
pub async fn enqueue_event_for_job(
    conn: &mut PgConnection,
    job_id: JobId,
    kind: EventType,
) -> sqlx::Result<()> {
    let video_id = sqlx::query_scalar!("SELECT video_id FROM jobs WHERE id = $1", job_id.get())
        .fetch_optional(&mut *conn)
        .await?;
    match video_id {
        Some(video_id) => enqueue_event(conn, VideoId::from(video_id), kind).await,
        None => Ok(()),
    }
}

/// The NOTIFY channel that wakes deliverers (sent at commit, so never before the rows exist).
pub const CHANNEL: &str = "prostream_webhooks";

async fn fan_out(conn: &mut PgConnection, now: VideoNow, kind: EventType) -> sqlx::Result<()> {
    let Some(owner_id) = now.owner_id else {
        return Ok(());
    };
    let endpoints = sqlx::query_scalar!(
        "SELECT id FROM webhooks WHERE owner_id = $1 AND $2 = ANY(events) ORDER BY id",
        owner_id,
        kind.as_str()
    )
    .fetch_all(&mut *conn)
    .await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let timestamp = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let error = now
        .error_code
        .map(|code| json!({"code": code, "message": now.error_message}));
    let payload = json!({
        "type": kind.as_str(),
        "timestamp": timestamp,
        "data": {
            "video_id": now.video_id,
            "title": now.title,
            "status": now.state,
            "playable": now.playable,
            "error": error,
        },
    });
    let event_id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO webhook_events (id, owner_id, video_id, type, payload)
         VALUES ($1, $2, $3, $4, $5)",
        event_id,
        owner_id,
        now.video_id,
        kind.as_str(),
        payload
    )
    .execute(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = endpoints.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query!(
        "INSERT INTO webhook_deliveries (id, event_id, webhook_id)
         SELECT id, $1, webhook_id FROM unnest($2::uuid[], $3::uuid[]) AS t (id, webhook_id)",
        event_id,
        &ids,
        &endpoints
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!("SELECT pg_notify($1, '')", CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// An endpoint as listed (no secret).
#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub id: WebhookId,
    pub owner_id: OwnerId,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: OffsetDateTime,
}

pub async fn insert(
    conn: &mut PgConnection,
    id: WebhookId,
    owner_id: OwnerId,
    url: &str,
    events: &[String],
    secret: &str,
) -> sqlx::Result<WebhookRow> {
    sqlx::query_as!(
        WebhookRow,
        "INSERT INTO webhooks (id, owner_id, url, events, secret) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, owner_id, url, events, created_at",
        id.get(),
        owner_id.get(),
        url,
        events,
        secret
    )
    .fetch_one(conn)
    .await
}

/// The endpoints of `scope` (every owner's when `None`), newest first.
pub async fn list(
    conn: &mut PgConnection,
    scope: Option<OwnerId>,
) -> sqlx::Result<Vec<WebhookRow>> {
    sqlx::query_as!(
        WebhookRow,
        "SELECT id, owner_id, url, events, created_at FROM webhooks
         WHERE $1::uuid IS NULL OR owner_id = $1
         ORDER BY id DESC LIMIT 1000",
        scope.map(OwnerId::get)
    )
    .fetch_all(conn)
    .await
}

/// Whether `id` exists within `scope`.
pub async fn exists(
    conn: &mut PgConnection,
    id: WebhookId,
    scope: Option<OwnerId>,
) -> sqlx::Result<bool> {
    let found = sqlx::query_scalar!(
        "SELECT id FROM webhooks WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)",
        id.get(),
        scope.map(OwnerId::get)
    )
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// Deletes the endpoint and its deliveries; false when it does not exist within `scope`.
pub async fn delete(
    conn: &mut PgConnection,
    id: WebhookId,
    scope: Option<OwnerId>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM webhooks WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)",
        id.get(),
        scope.map(OwnerId::get)
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A delivery this deliverer now holds, with what it needs to send the attempt.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: Uuid,
    pub event_id: Uuid,
    /// The attempt being made (1 for the first); fences the result.
    pub attempt: i32,
    pub url: String,
    pub secret: String,
    pub payload: serde_json::Value,
    pub event_created_at: OffsetDateTime,
}

/// Takes up to `limit` due deliveries nobody holds, leasing each for `lease`, never more than
/// `per_endpoint` in flight to one endpoint (so a slow endpoint holds at most that many of the
/// deliverer's slots). `SKIP LOCKED` lets every API instance run this at once.
pub async fn take_due(
    conn: &mut PgConnection,
    lease: Duration,
    per_endpoint: i64,
    limit: i64,
) -> sqlx::Result<Vec<DueDelivery>> {
    sqlx::query_as!(
        DueDelivery,
        r#"WITH busy AS (
               SELECT webhook_id, count(*) AS n FROM webhook_deliveries
               WHERE state = 'pending' AND lease_expires_at > now()
               GROUP BY webhook_id),
           due AS (
               SELECT d.id, d.next_attempt_at,
                      row_number() OVER (PARTITION BY d.webhook_id ORDER BY d.next_attempt_at)
                          + coalesce(b.n, 0) AS slot
               FROM webhook_deliveries d LEFT JOIN busy b ON b.webhook_id = d.webhook_id
               WHERE d.state = 'pending' AND d.next_attempt_at <= now()
                 AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= now())),
           picked AS (
               SELECT d.id FROM webhook_deliveries d JOIN due ON due.id = d.id
               WHERE due.slot <= $2
               ORDER BY due.next_attempt_at
               LIMIT $3
               FOR UPDATE OF d SKIP LOCKED)
           UPDATE webhook_deliveries d
           SET attempts = d.attempts + 1, lease_expires_at = now() + make_interval(secs => $1)
           FROM picked, webhooks w, webhook_events e
           WHERE d.id = picked.id AND w.id = d.webhook_id AND e.id = d.event_id
           RETURNING d.id, d.event_id, d.attempts AS attempt, w.url, w.secret, e.payload,
                     e.created_at AS event_created_at"#,
        lease.as_secs_f64(),
        per_endpoint,
        limit
    )
    .fetch_all(conn)
    .await
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub started_at: OffsetDateTime,
    pub duration: Duration,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// What becomes of the delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Delivered,
    RetryIn(Duration),
    Failed,
}

/// Records the attempt and moves the delivery on, fenced by the attempt number: false when the
/// delivery is no longer this attempt's (its endpoint was deleted, or the lease ran out and
/// another instance took it).
pub async fn finish_attempt(
    conn: &mut PgConnection,
    delivery_id: Uuid,
    attempt: i32,
    result: &AttemptResult,
    next: Next,
) -> sqlx::Result<bool> {
    let (state, delay) = match next {
        Next::Delivered => ("delivered", Duration::ZERO),
        Next::RetryIn(delay) => ("pending", delay),
        Next::Failed => ("failed", Duration::ZERO),
    };
    let status = result.status.map(i32::from);
    let duration_ms = i32::try_from(result.duration.as_millis()).unwrap_or(i32::MAX);
    let done = sqlx::query!(
        "WITH moved AS (
             UPDATE webhook_deliveries
             SET state = $3, lease_expires_at = NULL, last_status = $4, last_error = $5,
                 next_attempt_at = now() + make_interval(secs => $6),
                 delivered_at = CASE WHEN $3 = 'delivered' THEN now() END
             WHERE id = $1 AND attempts = $2 AND state = 'pending'
             RETURNING id)
         INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status, error)
         SELECT id, $2, $7, $8, $4, $5 FROM moved",
        delivery_id,
        attempt,
        state,
        status,
        result.error.as_deref(),
        delay.as_secs_f64(),
        result.started_at,
        duration_ms
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A delivery as listed.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub video_id: VideoId,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

/// The most recent deliveries to `webhook_id`, newest first.
pub async fn deliveries(
    conn: &mut PgConnection,
    webhook_id: WebhookId,
    limit: i64,
) -> sqlx::Result<Vec<DeliveryRow>> {
    sqlx::query_as!(
        DeliveryRow,
        r#"SELECT d.id, d.event_id, e.type AS event_type, e.video_id, d.state, d.attempts,
                  CASE WHEN d.state = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
                  d.last_status, d.last_error, d.delivered_at, d.created_at
           FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
           WHERE d.webhook_id = $1
           ORDER BY d.id DESC
           LIMIT $2"#,
        webhook_id.get(),
        limit
    )
    .fetch_all(conn)
    .await
}

/// An attempt as listed.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub started_at: OffsetDateTime,
    pub duration_ms: i32,
    pub status: Option<i32>,
    pub error: Option<String>,
}

/// The attempts of these deliveries, in order.
pub async fn attempts(
    conn: &mut PgConnection,
    delivery_ids: &[Uuid],
) -> sqlx::Result<Vec<AttemptRow>> {
    sqlx::query_as!(
        AttemptRow,
        "SELECT delivery_id, attempt, started_at, duration_ms, status, error
         FROM webhook_attempts WHERE delivery_id = ANY($1)
         ORDER BY delivery_id, attempt",
        delivery_ids
    )
    .fetch_all(conn)
    .await
}

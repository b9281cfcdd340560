//! URL ingest: `POST /v1/videos` with `{"url": …}`. The video is recorded at
//! once in state `downloading` and answered with 202; a downloader in the API
//! fetches it (under [`crate::fetch`]'s rules), probes it like an upload, and
//! then queues it for transcoding like any other video.
//!
//! The downloads live in Postgres, not in this process: a download is taken
//! with a lease that it renews, so when an API instance dies mid-download
//! another instance (or this one restarted) takes it over once the lease
//! runs out.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header},
};
use clap::Args;
use serde::Deserialize;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    AppState,
    auth::Caller,
    error::{ApiError, ErrorCode},
    videos::{VideoOut, load_video},
};
use crate::{
    db::{self, Visibility},
    fetch::{self, AllowList, FetchError, Policy},
    media, queue,
    storage::TempFile,
};

/// A download's lease; renewed every third of it while the transfer runs.
const LEASE: Duration = Duration::from_secs(30);
/// How often the downloader looks for downloads nobody holds (expired leases).
const RESCAN: Duration = Duration::from_secs(5);
const MAX_URL_CHARS: usize = 2048;

/// URL ingest settings.
#[derive(Debug, Clone, Args)]
pub struct IngestConfig {
    /// `host:port` pairs (comma-separated; `[v6]:port` for IPv6, `host:*` for every port) that
    /// URL ingest may fetch even though they are or resolve to internal addresses (loopback,
    /// private, link-local…). A bare host is refused at start.
    #[arg(
        long,
        env = "URL_INGEST_ALLOW_HOSTS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub url_ingest_allow_hosts: Vec<String>,
    /// A URL download is abandoned after this many seconds.
    #[arg(long, env = "URL_INGEST_TIMEOUT_SECS", default_value_t = 3600)]
    pub url_ingest_timeout_secs: u64,
    /// Redirects a URL download follows at most.
    #[arg(long, env = "URL_INGEST_MAX_REDIRECTS", default_value_t = 5)]
    pub url_ingest_max_redirects: usize,
    /// URL downloads this API instance runs at once.
    #[arg(long, env = "URL_INGEST_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub url_ingest_concurrency: u16,
}

/// The downloader's shared parts.
pub struct Downloads {
    policy: Arc<Policy>,
    client: reqwest::Client,
    wake: Notify,
    concurrency: usize,
}

impl Downloads {
    pub fn new(config: &IngestConfig, max_bytes: u64) -> anyhow::Result<Self> {
        let policy = Arc::new(Policy {
            allow: AllowList::parse(&config.url_ingest_allow_hosts, "URL_INGEST_ALLOW_HOSTS")
                .map_err(anyhow::Error::msg)?,
            max_bytes,
            timeout: Duration::from_secs(config.url_ingest_timeout_secs),
            max_redirects: config.url_ingest_max_redirects,
            allow_var: "URL_INGEST_ALLOW_HOSTS",
        });
        Ok(Self {
            client: fetch::client(policy.clone())?,
            policy,
            wake: Notify::new(),
            concurrency: usize::from(config.url_ingest_concurrency),
        })
    }
}

/// `{"url": "http://…", "title": "…"}`
#[derive(Debug, Deserialize, ToSchema)]
pub struct UrlIngest {
    /// An http URL of a video or audio file (https is not supported yet).
    #[schema(example = "http://example.com/clip.mp4")]
    pub url: String,
    /// 1-200 characters, no control or bidi-override characters; default: the URL's file name.
    pub title: Option<String>,
    /// `public` or `private`; default: `?visibility=`, else the server's `DEFAULT_VISIBILITY`.
    pub visibility: Option<Visibility>,
}

/// What the upload request asked for besides the URL.
pub struct Asked {
    /// The `?title=` parameter (the JSON's `title` wins).
    pub title: Option<String>,
    /// From `?visibility=`, else the default; the JSON's `visibility` wins.
    pub visibility: Visibility,
    pub caller: Caller,
}

/// Records the video and its download; the downloader does the rest.
pub async fn create_from_url(
    state: AppState,
    asked: Asked,
    request: Request,
) -> Result<(StatusCode, HeaderMap, Json<VideoOut>), ApiError> {
    // POST /v1/videos lifts axum's body limit for uploads: bound the JSON here, before reading it.
    let bytes = super::limits::json_bytes(request.into_body()).await?;
    let Json(body) = Json::<UrlIngest>::from_bytes(&bytes)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidJson, e.body_text()))?;
    if body.url.chars().count() > MAX_URL_CHARS {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidUrl,
            format!("the URL is longer than {MAX_URL_CHARS} characters"),
        ));
    }
    let url = reqwest::Url::parse(body.url.trim()).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidUrl, format!("not a valid URL: {e}"))
    })?;
    state.downloads.policy.check_url(&url).map_err(refusal)?;
    let fallback = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    let title = super::ingest::choose_title(body.title.or(asked.title), fallback.as_deref())?;
    let visibility = body.visibility.unwrap_or(asked.visibility);
    let caller = asked.caller;

    let video_id = Uuid::now_v7();
    let job_id = Uuid::now_v7();
    let mut tx = state.pool.begin().await?;
    db::videos::insert_from_url(
        &mut tx,
        video_id,
        &title,
        url.as_str(),
        caller.owner_id,
        visibility,
    )
    .await?;
    db::jobs::insert_downloading(&mut tx, job_id, video_id, state.max_attempts).await?;
    tx.commit().await?;
    // Read the answer before waking the downloader, so a download that fails at once cannot
    // turn this 202 into a report of `failed`.
    let video = load_video(&state, video_id, caller.scope()).await?;
    state.downloads.wake.notify_one();
    tracing::info!(%video_id, %url, "URL ingest accepted");

    let mut headers = HeaderMap::new();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/videos/{video_id}")).map_err(ApiError::internal)?,
    );
    Ok((StatusCode::ACCEPTED, headers, Json(video)))
}

/// A URL refused before any download: 400 for a malformed one, 422 for a forbidden one.
fn refusal(err: FetchError) -> ApiError {
    match err {
        FetchError::Forbidden(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::UrlForbidden, m)
        }
        other => ApiError::bad_request(ErrorCode::InvalidUrl, other.to_string()),
    }
}

/// Wakes the downloader (a retried download is waiting).
pub fn wake(state: &AppState) {
    state.downloads.wake.notify_one();
}

/// Runs downloads until `shutdown`: takes each one nobody holds, at most
/// `URL_INGEST_CONCURRENCY` at once.
pub fn spawn_downloader(state: AppState, shutdown: CancellationToken) {
    let holder = format!("api-{}", Uuid::now_v7().simple());
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(state.downloads.concurrency));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let taken = match state.pool.acquire().await {
                Ok(mut conn) => db::jobs::take_download(&mut conn, &holder, LEASE).await,
                Err(err) => Err(err),
            };
            match taken {
                Ok(Some(download)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        run_one(&state, download).await;
                        drop(permit);
                    });
                    continue; // there may be more
                }
                Ok(None) => drop(permit),
                Err(err) => {
                    drop(permit);
                    tracing::warn!(error = %err, "cannot look for downloads");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = state.downloads.wake.notified() => {}
                () = tokio::time::sleep(RESCAN) => {}
            }
        }
    });
}

/// One download, start to end, with its lease renewed while it runs. Every write is fenced by
/// the take's fence (`download.fence`), not by this process: after cancel → retry this process
/// may take the same download again while this take still runs.
async fn run_one(state: &AppState, download: db::jobs::Download) {
    let job_id = download.job_id;
    let fence = download.fence;
    let video_id = download.video_id;
    tracing::info!(%video_id, url = %download.url, "downloading");
    let file = TempFile::new(state.media.incoming_path());
    let outcome = tokio::select! {
        outcome = fetch_and_probe(state, &download, &file) => outcome,
        lost = keep_lease(state, job_id, fence) => {
            tracing::info!(%video_id, ?lost, "download stopped: canceled or deleted");
            return;
        }
    };
    let result = match outcome {
        Ok(info) => record(state, &download, file, info).await,
        Err((code, message)) => {
            tracing::info!(%video_id, code, %message, "download failed");
            fail(state, job_id, fence, code, &message).await
        }
    };
    if let Err(err) = result {
        // The lease runs out and the download is taken again.
        tracing::warn!(%video_id, error = %err, "could not record the download's outcome");
    }
}

async fn fail(
    state: &AppState,
    job_id: Uuid,
    fence: i64,
    code: &str,
    message: &str,
) -> anyhow::Result<()> {
    let mut conn = state.pool.acquire().await?;
    db::jobs::fail_download(&mut conn, job_id, fence, code, message).await?;
    Ok(())
}

/// Renews the lease; returns only when the download is no longer ours.
async fn keep_lease(state: &AppState, job_id: Uuid, fence: i64) -> &'static str {
    loop {
        tokio::time::sleep(LEASE / 3).await;
        let Ok(mut conn) = state.pool.acquire().await else {
            continue; // Postgres is away; the transfer goes on, the lease may lapse
        };
        match db::jobs::renew_download(&mut conn, job_id, fence, LEASE).await {
            Ok(true) | Err(_) => {}
            Ok(false) => return "lease lost",
        }
    }
}

type Failure = (&'static str, String);

async fn fetch_and_probe(
    state: &AppState,
    download: &db::jobs::Download,
    file: &TempFile,
) -> Result<media::ProbeInfo, Failure> {
    let url = reqwest::Url::parse(&download.url).map_err(|e| ("invalid_url", e.to_string()))?;
    let downloads = &state.downloads;
    fetch::download(&downloads.client, &downloads.policy, &url, file.path())
        .await
        .map_err(|e| (e.code(), e.to_string()))?;
    media::probe(
        &state.ffprobe,
        file.path(),
        &state.limits,
        state.probe_timeout,
    )
    .await
    .map_err(|e| (e.code(), e.to_string()))
}

/// Moves the download into place, records its source and queues the job, all
/// or nothing; then pushes it. The original goes to this take's own path, so a
/// take that finds the download no longer its own removes only its own file.
async fn record(
    state: &AppState,
    download: &db::jobs::Download,
    file: TempFile,
    info: media::ProbeInfo,
) -> anyhow::Result<()> {
    let video_id = download.video_id;
    let size = tokio::fs::metadata(file.path()).await?.len();
    let mut source = super::ingest::source_of(video_id, size, info);
    source.source_path = download.source_path();
    let dest = source.source_path.clone();
    // Before the transaction: with S3 this is an upload that can take minutes, and the
    // transaction below holds the owner's row.
    file.persist(state.store.as_ref(), &dest).await?;
    let mut tx = state.pool.begin().await?;
    // Only now is the size known: the owner's storage quota is checked with its row locked.
    if let Some(owner_id) = db::videos::owner_of(&mut tx, video_id).await?
        && let Err(refusal) =
            super::quotas::reserve_storage(&mut tx, &state.policy, owner_id, size).await
    {
        drop(tx);
        if let Err(e) = state.store.remove_original(&dest).await {
            tracing::warn!(%video_id, error = %e, "could not remove the original of a refused download");
        }
        if refusal.status() != StatusCode::PAYLOAD_TOO_LARGE {
            anyhow::bail!("could not check the storage quota: {}", refusal.detail());
        }
        tracing::info!(%video_id, size, "download refused: {}", refusal.detail());
        return fail(
            state,
            download.job_id,
            download.fence,
            refusal.code(),
            refusal.detail(),
        )
        .await;
    }
    let queued = async {
        db::videos::set_source(&mut tx, video_id, &source).await?;
        let ours = db::jobs::finish_download(&mut tx, download.job_id, download.fence).await?;
        if ours {
            tx.commit().await?;
        }
        Ok::<_, sqlx::Error>(ours)
    }
    .await;
    if !matches!(queued, Ok(true)) {
        // Canceled or deleted meanwhile, or not recorded: nothing of it may stay.
        if let Err(e) = state.store.remove_original(&dest).await {
            tracing::warn!(%video_id, error = %e, "could not remove the original of a download not recorded");
        }
        return queued.map(drop).map_err(Into::into);
    }
    if let Err(err) = queue::push(&state.queue, download.job_id).await {
        tracing::warn!(job_id = %download.job_id, error = %err, "queued but not pushed; the reconciler will");
    }
    tracing::info!(%video_id, size, "download queued for transcoding");
    Ok(())
}

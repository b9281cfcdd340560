//! URL ingest: a video recorded at once in state `downloading` from `{"url": …}`, then fetched
//! by a downloader in the API (under [`crate::fetch`]'s rules), probed like an upload, and
//! queued for transcoding like any other video.
//!
//! The downloads live in Postgres, not in this process: a download is taken
//! with a lease that it renews, so when an API instance dies mid-download
//! another instance (or this one restarted) takes it over once the lease
//! runs out.

use std::{sync::Arc, time::Duration};

use clap::Args;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Ingest, IngestError, quotas, record::source_of};
use crate::{
    db::{self, Visibility},
    fetch::{self, AllowList, ExtraRoots, FetchError, Policy},
    ids::{JobId, OwnerId, VideoId},
    media, queue,
    storage::TempFile,
};

/// A download's lease; renewed every third of it while the transfer runs.
const LEASE: Duration = Duration::from_secs(30);
/// How often the downloader looks for downloads nobody holds (expired leases).
const RESCAN: Duration = Duration::from_secs(5);

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
    /// `roots`: OUTBOUND_CA_BUNDLE's CAs, trusted besides the system's for https URLs.
    pub fn new(config: &IngestConfig, max_bytes: u64, roots: &ExtraRoots) -> anyhow::Result<Self> {
        let policy = Arc::new(Policy {
            allow: AllowList::parse(&config.url_ingest_allow_hosts, "URL_INGEST_ALLOW_HOSTS")
                .map_err(anyhow::Error::msg)?,
            max_bytes,
            timeout: Duration::from_secs(config.url_ingest_timeout_secs),
            max_redirects: config.url_ingest_max_redirects,
            allow_var: "URL_INGEST_ALLOW_HOSTS",
        });
        Ok(Self {
            client: fetch::client(policy.clone(), roots)?,
            policy,
            wake: Notify::new(),
            concurrency: usize::from(config.url_ingest_concurrency),
        })
    }
}

/// A URL ingest as asked for: the URL as sent, the title and visibility chosen.
pub struct NewDownload {
    pub url: String,
    /// The title asked for; default: the URL's file name.
    pub title: Option<String>,
    pub visibility: Visibility,
    pub owner: Option<OwnerId>,
    /// Whether the worker makes the downloads.
    pub downloads: bool,
}

impl Ingest {
    /// Checks the URL and records the video (state `downloading`) and its download; returns the
    /// video's id. The caller reads what it answers with, then [`Ingest::wake_downloader`]: a
    /// download that fails at once must not turn the answer into a report of `failed`.
    pub async fn accept_url(&self, asked: NewDownload) -> Result<VideoId, IngestError> {
        let url = fetch::parse_http_url(&asked.url).map_err(refusal)?;
        self.downloads.policy.check_url(&url).map_err(refusal)?;
        let fallback = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|name| !name.is_empty());
        let title = super::choose_title(asked.title, fallback)?;

        let video_id = VideoId::generate();
        let job_id = JobId::generate();
        let mut tx = self.pool.begin().await?;
        db::videos::insert_from_url(
            &mut tx,
            video_id,
            &title,
            url.as_str(),
            asked.owner,
            asked.visibility,
            asked.downloads,
        )
        .await?;
        db::jobs::insert_downloading(&mut tx, job_id, video_id, self.max_attempts).await?;
        tx.commit().await?;
        tracing::info!(%video_id, %url, "URL ingest accepted");
        Ok(video_id)
    }

    /// Wakes the downloader: a new or retried download is waiting.
    pub fn wake_downloader(&self) {
        self.downloads.wake.notify_one();
    }
}

/// A URL refused before any download: malformed, or forbidden.
fn refusal(err: FetchError) -> IngestError {
    match err {
        FetchError::Forbidden(m) => IngestError::UrlForbidden(m),
        other => IngestError::InvalidUrl(other.to_string()),
    }
}

/// The downloader: runs downloads until `shutdown`, taking each one nobody holds, at most
/// `URL_INGEST_CONCURRENCY` at once.
pub async fn run_downloader(ingest: Ingest, shutdown: CancellationToken) {
    let holder = format!("api-{}", Uuid::now_v7().simple());
    let slots = Arc::new(Semaphore::new(ingest.downloads.concurrency));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let taken = match ingest.pool.acquire().await {
            Ok(mut conn) => db::jobs::take_download(&mut conn, &holder, LEASE).await,
            Err(err) => Err(err),
        };
        match taken {
            Ok(Some(download)) => {
                let ingest = ingest.clone();
                tokio::spawn(async move {
                    run_one(&ingest, download).await;
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
            () = ingest.downloads.wake.notified() => {}
            () = tokio::time::sleep(RESCAN) => {}
        }
    }
}

/// One download, start to end, with its lease renewed while it runs. Every write is fenced by
/// the take's fence (`download.fence`), not by this process: after cancel → retry this process
/// may take the same download again while this take still runs.
async fn run_one(ingest: &Ingest, download: db::jobs::Download) {
    let job_id = download.job_id;
    let fence = download.fence;
    let video_id = download.video_id;
    tracing::info!(%video_id, url = %download.url, "downloading");
    let file = TempFile::new(ingest.media.incoming_path());
    let outcome = tokio::select! {
        outcome = fetch_and_probe(ingest, &download, &file) => outcome,
        lost = keep_lease(ingest, job_id, fence) => {
            tracing::info!(%video_id, ?lost, "download stopped: canceled or deleted");
            return;
        }
    };
    let result = match outcome {
        Ok(info) => record(ingest, &download, file, info).await,
        Err((code, message)) => {
            tracing::info!(%video_id, code, %message, "download failed");
            fail(ingest, job_id, fence, code, &message).await
        }
    };
    if let Err(err) = result {
        // The lease runs out and the download is taken again.
        tracing::warn!(%video_id, error = %err, "could not record the download's outcome");
    }
}

async fn fail(
    ingest: &Ingest,
    job_id: JobId,
    fence: i64,
    code: &str,
    message: &str,
) -> anyhow::Result<()> {
    let mut conn = ingest.pool.acquire().await?;
    db::jobs::fail_download(&mut conn, job_id, fence, code, message).await?;
    Ok(())
}

/// Renews the lease; returns only when the download is no longer ours.
async fn keep_lease(ingest: &Ingest, job_id: JobId, fence: i64) -> &'static str {
    loop {
        tokio::time::sleep(LEASE / 3).await;
        let Ok(mut conn) = ingest.pool.acquire().await else {
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
    ingest: &Ingest,
    download: &db::jobs::Download,
    file: &TempFile,
) -> Result<media::ProbeInfo, Failure> {
    let url = reqwest::Url::parse(&download.url).map_err(|e| ("invalid_url", e.to_string()))?;
    let downloads = &ingest.downloads;
    fetch::download(&downloads.client, &downloads.policy, &url, file.path())
        .await
        .map_err(|e| (e.code(), e.to_string()))?;
    media::probe(
        &ingest.ffprobe,
        file.path(),
        &ingest.limits,
        ingest.probe_timeout,
    )
    .await
    .map_err(|e| (e.code(), e.to_string()))
}

/// Moves the download into place, records its source and queues the job, all
/// or nothing; then pushes it. The original goes to this take's own path, so a
/// take that finds the download no longer its own removes only its own file.
async fn record(
    ingest: &Ingest,
    download: &db::jobs::Download,
    file: TempFile,
    info: media::ProbeInfo,
) -> anyhow::Result<()> {
    let video_id = download.video_id;
    let size = tokio::fs::metadata(file.path()).await?.len();
    let mut source = source_of(video_id, size, info);
    source.source_path = download.source_path();
    let dest = source.source_path.clone();
    // Before the transaction: with S3 this is an upload that can take minutes, and the
    // transaction below holds the owner's row.
    file.persist(ingest.store.as_ref(), &dest).await?;
    let mut tx = ingest.pool.begin().await?;
    // Only now is the size known: the owner's storage quota is checked with its row locked.
    if let Some(owner_id) = db::videos::owner_of(&mut tx, video_id).await?
        && let Err(refusal) = quotas::reserve_storage(&mut tx, &ingest.policy, owner_id, size).await
    {
        drop(tx);
        if let Err(e) = ingest.store.remove_original(&dest).await {
            tracing::warn!(%video_id, error = %e, "could not remove the original of a refused download");
        }
        if !refusal.is_refusal() {
            return Err(anyhow::Error::new(refusal).context("could not check the storage quota"));
        }
        tracing::info!(%video_id, size, "download refused: {refusal}");
        let message = refusal.to_string();
        return fail(
            ingest,
            download.job_id,
            download.fence,
            refusal.code(),
            &message,
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
        if let Err(e) = ingest.store.remove_original(&dest).await {
            tracing::warn!(%video_id, error = %e, "could not remove the original of a download not recorded");
        }
        return queued.map(drop).map_err(Into::into);
    }
    if let Err(err) = queue::push(&ingest.queue, download.job_id).await {
        tracing::warn!(job_id = %download.job_id, error = %err, "queued but not pushed; the reconciler will");
    }
    tracing::info!(%video_id, size, "download queued for transcoding");
    Ok(())
}

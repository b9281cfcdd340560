//! S3-compatible object storage (`STORAGE_BACKEND=s3`) through the `object_store` crate.
//!
//! Keys are the local layout's paths under `S3_PREFIX`: `uploads/{video_id}` (or
//! `uploads/{video_id}-{fence}` for a downloaded original) and
//! `videos/{video_id}/{attempt_key}/{file}`. The local volume (MEDIA_ROOT) is scratch only:
//! uploads are probed there and then uploaded; a worker downloads the original into
//! `work/{video_id}/{key}/`, encodes there and publishes file by file.
//!
//! Players fetch segments straight from the bucket: the API authorises the request as it always
//! does, then answers with a redirect to a presigned GET ([`Signer::signed_url`]) that expires
//! after `S3_PRESIGN_TTL_SECS` (or sooner, with the playback token).

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutOptions,
    PutPayload, RetryConfig,
    aws::{AmazonS3, AmazonS3Builder},
    buffered::BufWriter,
    path::Path as Key,
    signer::Signer,
};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::{MediaRoot, MediaStore, Served, StorageError, Want, sweep::Clock};
use crate::{
    config::{StorageBackend, StorageConfig},
    ids::VideoId,
};

/// Parts of a multipart upload (originals): 10,000 parts × 8 MiB covers far more than
/// MAX_UPLOAD_BYTES' default, and two in flight keep an upload's memory near 24 MiB.
const PART_SIZE: usize = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 2;

pub struct S3Store {
    /// Scratch space on this host.
    local: MediaRoot,
    client: Arc<AmazonS3>,
    /// Signs presigned URLs for the endpoint players reach (S3_PUBLIC_ENDPOINT); signing needs
    /// no request, so a second client costs nothing.
    signer: AmazonS3,
    bucket: String,
    /// For messages: where the bucket is.
    endpoint: String,
    /// `S3_PREFIX` with a trailing `/`, or empty.
    prefix: String,
    presign_ttl: Duration,
    /// What the output sweep judges an object's age by.
    clock: Clock,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No credentials in logs.
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// The client for the configured bucket; nothing is sent yet (see [`S3Store::check_at_start`]).
    pub fn new(config: &StorageConfig, local: MediaRoot) -> Result<Self, StorageError> {
        let bucket = config.bucket().ok_or_else(|| {
            StorageError::Config(
                "STORAGE_BACKEND=s3 needs S3_BUCKET: the bucket that holds originals and HLS output"
                    .into(),
            )
        })?;
        let endpoint = config.endpoint();
        let client = build(config, bucket, endpoint)?;
        let signer = build(config, bucket, config.public_endpoint().or(endpoint))?;
        let prefix = match config.s3_prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Ok(Self {
            local,
            client: Arc::new(client),
            signer,
            bucket: bucket.to_owned(),
            endpoint: endpoint.map_or_else(
                || {
                    format!(
                        "AWS S3 ({})",
                        config.region().unwrap_or("region from AWS_REGION")
                    )
                },
                str::to_owned,
            ),
            prefix,
            presign_ttl: Duration::from_secs(config.s3_presign_ttl_secs),
            clock: Clock::SYSTEM,
        })
    }

    /// The same store with the output sweep judging ages by `clock` (tests: time moved on).
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// The key of `relative` (a path in the local layout).
    fn key(&self, relative: &str) -> Key {
        Key::from(format!("{}{relative}", self.prefix))
    }

    fn video_key(&self, video_id: VideoId) -> Key {
        self.key(&format!("videos/{video_id}"))
    }

    fn attempt_key(&self, video_id: VideoId, key: &str) -> Key {
        self.key(&format!("videos/{video_id}/{key}"))
    }

    /// Proves the settings work before the process takes any request: lists the bucket, then
    /// writes and deletes a small object. Errors say what to fix.
    pub async fn check_at_start(&self) -> Result<(), StorageError> {
        self.check().await?;
        let probe = self.key(&format!(".prostream-check/{}", Uuid::now_v7()));
        let written = self
            .client
            .put(&probe, PutPayload::from_static(b"ok"))
            .await
            .map_err(|e| self.refusal("writing a test object", e));
        written?;
        self.client
            .delete(&probe)
            .await
            .map_err(|e| self.refusal("deleting a test object", e))?;
        tracing::info!(bucket = %self.bucket, endpoint = %self.endpoint, prefix = %self.prefix, "S3 storage reachable");
        Ok(())
    }

    /// An error of the bucket as a whole, with what to do about it and what the server said.
    fn refusal(&self, doing: &str, err: object_store::Error) -> StorageError {
        let (bucket, endpoint) = (&self.bucket, &self.endpoint);
        let answer = innermost(&err);
        let advice = if answer.contains("NoSuchBucket") {
            format!(
                "bucket {bucket:?} does not exist at {endpoint}: create it, or set S3_BUCKET to an existing bucket"
            )
        } else if matches!(
            err,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || ["401 Unauthorized", "403 Forbidden"]
            .iter()
            .any(|status| answer.contains(status))
        {
            format!(
                "{endpoint} refused our credentials for bucket {bucket:?}: check S3_ACCESS_KEY_ID and \
                 S3_SECRET_ACCESS_KEY (or the AWS_* credentials) and S3_REGION, and that the key may \
                 list, read, write and delete objects in the bucket"
            )
        } else if is_unreachable(&err) {
            format!(
                "cannot reach {endpoint}: check S3_ENDPOINT (scheme, host and port) and that the server runs"
            )
        } else {
            format!("bucket {bucket:?} at {endpoint} failed")
        };
        StorageError::object(
            format!("S3 storage: {doing}: {advice} (the answer: {answer})"),
            err,
        )
    }

    /// Deletes every object under `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &Key) -> Result<usize, object_store::Error> {
        let listed = self.client.list(Some(prefix)).map_ok(|meta| meta.location);
        self.client
            .delete_stream(listed.boxed())
            .try_fold(0, |n, _| async move { Ok(n + 1) })
            .await
    }

    /// The attempts (`videos/{video_id}/{key}/`) present under a video.
    async fn attempts_of(&self, video_id: VideoId) -> Result<Vec<String>, object_store::Error> {
        let listed = self
            .client
            .list_with_delimiter(Some(&self.video_key(video_id)))
            .await?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }
}

fn build(
    config: &StorageConfig,
    bucket: &str,
    endpoint: Option<&str>,
) -> Result<AmazonS3, StorageError> {
    // The standard AWS_* variables first (credentials, region, web identity, instance roles);
    // ours win where both are set.
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(!config.s3_path_style)
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")))
                .with_connect_timeout(Duration::from_secs(5))
                // Originals are gigabytes: no bound on a whole request, only on silence.
                .with_timeout_disabled()
                .with_read_timeout(Duration::from_secs(60)),
        )
        // The defaults retry for 3 minutes: a start-up check against a wrong endpoint would
        // hang that long. A job that fails on storage is retried by the job's own backoff.
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
        });
    if let Some(region) = config.region() {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    match config.credentials() {
        Ok(Some((id, secret))) => {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        Ok(None) => {}
        Err(msg) => return Err(StorageError::Config(msg)),
    }
    builder.build().map_err(|e| {
        StorageError::object(
            "S3 storage: the settings are not usable (S3_BUCKET, S3_ENDPOINT, S3_REGION)",
            e,
        )
    })
}

/// The innermost cause: the server's status and error document, or the connection's failure.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err;
    while let Some(cause) = last.source() {
        last = cause;
    }
    last.to_string().trim().to_owned()
}

fn is_unreachable(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(http) = e.downcast_ref::<object_store::client::HttpError>() {
            return matches!(
                http.kind(),
                object_store::client::HttpErrorKind::Connect
                    | object_store::client::HttpErrorKind::Timeout
            );
        }
        source = e.source();
    }
    false
}

/// What players should be told about an object, by its name.
fn attributes_of(name: &str) -> Attributes {
    let (content_type, cache) = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("m3u8") => ("application/vnd.apple.mpegurl", "max-age=1"),
        Some("m4s") => ("video/iso.segment", "max-age=31536000, immutable"),
        Some("vtt") => ("text/vtt", "max-age=31536000, immutable"),
        Some("mp4") => ("video/mp4", "max-age=31536000, immutable"),
        Some("m4a") => ("audio/mp4", "max-age=31536000, immutable"),
        Some("jpg") => ("image/jpeg", "max-age=31536000, immutable"),
        _ => ("application/octet-stream", "no-cache"),
    };
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, content_type.into());
    attributes.insert(Attribute::CacheControl, cache.into());
    // A presigned redirect hands the bucket's headers to the client: the object carries them.
    if let Some(disposition) = super::content_disposition(name) {
        attributes.insert(Attribute::ContentDisposition, disposition.into());
    }
    attributes
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[async_trait::async_trait]
impl MediaStore for S3Store {
    fn backend(&self) -> StorageBackend {
        StorageBackend::S3
    }

    async fn put_original(&self, file: &Path, relative: &str) -> Result<(), StorageError> {
        let key = self.key(relative);
        let what = || format!("uploading {} to {key}", file.display());
        let mut source = tokio::fs::File::open(file)
            .await
            .map_err(|e| StorageError::io(what(), e))?;
        // One PUT below PART_SIZE, a multipart upload above.
        let mut writer = BufWriter::with_capacity(self.client.clone(), key.clone(), PART_SIZE)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        let copied = async {
            tokio::io::copy(&mut source, &mut writer).await?;
            writer.shutdown().await
        }
        .await;
        if let Err(e) = copied {
            // Leaves no unfinished multipart upload (they cost storage until aborted).
            if let Err(abort) = writer.abort().await {
                tracing::warn!(%key, error = %abort, "could not abort a failed multipart upload");
            }
            return Err(StorageError::io(what(), e));
        }
        super::remove_file_if_exists(file)
            .await
            .map_err(|e| StorageError::io(format!("removing {} once uploaded", file.display()), e))
    }

    async fn has_original(&self, relative: &str) -> Result<bool, StorageError> {
        let key = self.key(relative);
        match self.client.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(StorageError::object(format!("looking for {key}"), e)),
        }
    }

    async fn fetch_original(&self, relative: &str, into: &Path) -> Result<PathBuf, StorageError> {
        let key = self.key(relative);
        let what = || format!("downloading {key} to {}", into.display());
        let got = self
            .client
            .get(&key)
            .await
            .map_err(|e| StorageError::object(what(), e))?;
        let mut file = tokio::fs::File::create(into)
            .await
            .map_err(|e| StorageError::io(what(), e))?;
        let mut stream = got.into_stream();
        // A stream error is an error: a truncated original must not be encoded.
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| StorageError::object(what(), e))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| StorageError::io(what(), e))?;
        }
        file.sync_all()
            .await
            .map_err(|e| StorageError::io(what(), e))?;
        Ok(into.to_owned())
    }

    async fn remove_original(&self, relative: &str) -> Result<(), StorageError> {
        let key = self.key(relative);
        match self.client.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::object(format!("deleting {key}"), e)),
        }
    }

    fn output_dir(&self, video_id: VideoId, key: &str) -> PathBuf {
        self.local.scratch_dir(video_id, key).join("hls")
    }

    fn copies_output(&self) -> bool {
        true
    }

    async fn publish(
        &self,
        video_id: VideoId,
        key: &str,
        name: &str,
        contents: Bytes,
    ) -> Result<(), StorageError> {
        let location = self.key(&format!("videos/{video_id}/{key}/{name}"));
        let options = PutOptions {
            attributes: attributes_of(name),
            ..PutOptions::default()
        };
        self.client
            .put_opts(&location, PutPayload::from_bytes(contents), options)
            .await
            .map(drop)
            .map_err(|e| StorageError::object(format!("uploading {location}"), e))
    }

    async fn replace_output(
        &self,
        video_id: VideoId,
        key: &str,
        name: &str,
        contents: Bytes,
    ) -> Result<(), StorageError> {
        // A PUT replaces an object whole: readers get the old or the new one.
        self.publish(video_id, key, name, contents).await
    }

    async fn remove_outputs(
        &self,
        video_id: VideoId,
        key: &str,
        names: &[String],
    ) -> Result<(), StorageError> {
        let locations: Vec<Key> = names
            .iter()
            .map(|name| self.key(&format!("videos/{video_id}/{key}/{name}")))
            .collect();
        let what = format!("deleting files under videos/{video_id}/{key}/");
        // Batched deletes (up to 1,000 keys a request); a key already gone is not an error.
        self.client
            .delete_stream(futures_util::stream::iter(locations.into_iter().map(Ok)).boxed())
            .try_for_each(|_| async { Ok(()) })
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                e => Err(e),
            })
            .map_err(|e| StorageError::object(what, e))
    }

    async fn remove_attempt(&self, video_id: VideoId, key: &str) -> Result<(), StorageError> {
        let prefix = self.attempt_key(video_id, key);
        self.delete_prefix(&prefix)
            .await
            .map(drop)
            .map_err(|e| StorageError::object(format!("deleting {prefix}/"), e))
    }

    async fn remove_earlier_attempts(
        &self,
        video_id: VideoId,
        keep: &str,
    ) -> Result<(), StorageError> {
        let what = || format!("deleting earlier attempts of video {video_id}");
        for key in self
            .attempts_of(video_id)
            .await
            .map_err(|e| StorageError::object(what(), e))?
        {
            if super::is_earlier_attempt(&key, keep) {
                self.remove_attempt(video_id, &key).await?;
            }
        }
        Ok(())
    }

    async fn remove_video(&self, video_id: VideoId) -> Result<(), StorageError> {
        let prefix = self.video_key(video_id);
        self.delete_prefix(&prefix)
            .await
            .map(drop)
            .map_err(|e| StorageError::object(format!("deleting {prefix}/"), e))
    }

    async fn sweep_outputs(
        &self,
        live: &HashSet<(VideoId, String)>,
        min_age: Duration,
    ) -> Result<usize, StorageError> {
        let what = "sweeping the objects of dead attempts";
        let err = |e| StorageError::object(what, e);
        let cutoff = unix_secs(self.clock.now()).saturating_sub(min_age.as_secs() as i64);
        let videos = self
            .client
            .list_with_delimiter(Some(&self.key("videos")))
            .await
            .map_err(err)?;
        let mut swept = 0;
        for video in &videos.common_prefixes {
            let Some(video_id) = video.filename().and_then(|n| n.parse::<VideoId>().ok()) else {
                continue;
            };
            for key in self.attempts_of(video_id).await.map_err(err)? {
                if live.contains(&(video_id, key.clone())) {
                    continue;
                }
                let prefix = self.attempt_key(video_id, &key);
                // An attempt that still writes (a worker that just claimed, or one whose claim
                // this sweep has not seen yet) is left alone: judged by its newest object.
                let newest = self
                    .client
                    .list(Some(&prefix))
                    .try_fold(i64::MIN, |newest, meta| async move {
                        Ok(newest.max(meta.last_modified.timestamp()))
                    })
                    .await
                    .map_err(err)?;
                if newest <= cutoff {
                    let n = self.delete_prefix(&prefix).await.map_err(err)?;
                    tracing::info!(%prefix, objects = n, "removed the objects of a dead attempt");
                    swept += 1;
                }
            }
        }
        Ok(swept)
    }

    async fn serve(
        &self,
        video_id: VideoId,
        key: &str,
        name: &str,
        want: Want,
    ) -> Result<Served, StorageError> {
        let location = self.key(&format!("videos/{video_id}/{key}/{name}"));
        match want {
            Want::Contents => {
                let got = match self.client.get(&location).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(Served::Missing),
                    Err(e) => return Err(StorageError::object(format!("reading {location}"), e)),
                };
                let bytes = got
                    .bytes()
                    .await
                    .map_err(|e| StorageError::object(format!("reading {location}"), e))?;
                Ok(Served::Contents(bytes))
            }
            Want::Redirect { head, ttl } => {
                // The signature covers the method: a HEAD needs a URL signed for HEAD.
                let method = if head {
                    http::Method::HEAD
                } else {
                    http::Method::GET
                };
                let ttl = ttl.min(self.presign_ttl).max(Duration::from_secs(1));
                let url = self
                    .signer
                    .signed_url(method, &location, ttl)
                    .await
                    .map_err(|e| {
                        StorageError::object(format!("signing a URL for {location}"), e)
                    })?;
                Ok(Served::Redirect(url.to_string()))
            }
        }
    }

    async fn check(&self) -> Result<(), StorageError> {
        // A listing needs the bucket, the credentials and the list permission (which deleting a
        // video's prefix needs too), and returns at most one short page here.
        self.client
            .list_with_delimiter(Some(&self.key(".prostream-check")))
            .await
            .map(drop)
            .map_err(|e| self.refusal("listing the bucket", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store of a bucket that need not exist: signing sends no request.
    async fn offline_store(public_endpoint: &str) -> (S3Store, PathBuf) {
        let dir = std::env::temp_dir().join(format!("prostream-s3-unit-{}", Uuid::now_v7()));
        let config = StorageConfig {
            storage_backend: StorageBackend::S3,
            s3_bucket: "media".into(),
            s3_endpoint: "http://minio:9000".into(),
            s3_region: "eu-west-1".into(),
            s3_access_key_id: "AKIDEXAMPLE".into(),
            s3_secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            s3_public_endpoint: public_endpoint.into(),
            s3_prefix: "/prod/".into(),
            s3_presign_ttl_secs: 300,
            ..StorageConfig::local()
        };
        let local = MediaRoot::open(&dir).await.unwrap();
        (S3Store::new(&config, local).unwrap(), dir)
    }

    fn query<'a>(url: &'a str, name: &str) -> Option<&'a str> {
        url.split(['?', '&'])
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
    }

    #[tokio::test]
    async fn presigned_urls_name_the_public_endpoint_and_never_outlive_the_bound() {
        let (store, dir) = offline_store("https://media.example.com").await;
        let video = VideoId::generate();
        let redirect = |ttl, head| Want::Redirect { head, ttl };
        let Served::Redirect(url) = store
            .serve(
                video,
                "1-ab",
                "720p_00001.m4s",
                redirect(Duration::MAX, false),
            )
            .await
            .unwrap()
        else {
            panic!("not a redirect")
        };
        assert!(
            url.starts_with(&format!(
                "https://media.example.com/media/prod/videos/{video}/1-ab/720p_00001.m4s?"
            )),
            "{url}"
        );
        assert_eq!(query(&url, "X-Amz-Expires"), Some("300"));
        assert!(
            query(&url, "X-Amz-Credential")
                .unwrap()
                .contains("eu-west-1")
        );
        // A playback token that expires sooner bounds it too; a HEAD gets its own signature.
        let Served::Redirect(short) = store
            .serve(
                video,
                "1-ab",
                "720p_00001.m4s",
                redirect(Duration::from_secs(42), true),
            )
            .await
            .unwrap()
        else {
            panic!("not a redirect")
        };
        assert_eq!(query(&short, "X-Amz-Expires"), Some("42"));
        assert_ne!(
            query(&short, "X-Amz-Signature"),
            query(&url, "X-Amz-Signature")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn without_a_public_endpoint_urls_name_the_store_s_own() {
        let (store, dir) = offline_store("").await;
        let Served::Redirect(url) = store
            .serve(
                VideoId::from(Uuid::nil()),
                "1-ab",
                "poster.jpg",
                Want::Redirect {
                    head: false,
                    ttl: Duration::from_secs(60),
                },
            )
            .await
            .unwrap()
        else {
            panic!("not a redirect")
        };
        assert!(
            url.starts_with("http://minio:9000/media/prod/videos/"),
            "{url}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn objects_carry_their_content_type_and_cache_policy() {
        let segment = attributes_of("720p_00001.m4s");
        assert_eq!(
            segment.get(&Attribute::ContentType).map(|v| v.as_ref()),
            Some("video/iso.segment")
        );
        let subtitles = attributes_of("subs_0_00000.vtt");
        assert_eq!(
            subtitles.get(&Attribute::ContentType).map(|v| v.as_ref()),
            Some("text/vtt")
        );
        let playlist = attributes_of("master.m3u8");
        assert_eq!(
            playlist.get(&Attribute::CacheControl).map(|v| v.as_ref()),
            Some("max-age=1")
        );
    }
}

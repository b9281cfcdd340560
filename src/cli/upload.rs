//! `prostream upload FILE [--title T] [--public] [--wait]`: send a file with a
//! progress bar, then (with `--wait`) follow its job to the end.
//!
//! Uploads go through tus in pieces. The upload's URL is remembered per file
//! (path, size, modification time, `--public`) in a small state file, so running the
//! same command again after Ctrl-C or a broken connection continues from the
//! server's offset instead of starting over.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, UNIX_EPOCH},
};

use clap::Args;
use futures_util::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Body, Method};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{CliError, Client, ServerArgs, check, tus, videos};
use prostream::ids::VideoId;

const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The video or audio file.
    pub file: PathBuf,
    /// Title (default: the file name).
    #[arg(long)]
    pub title: Option<String>,
    /// Make the video public: its playback URL works for anyone and does not expire (default:
    /// the server's DEFAULT_VISIBILITY, private unless configured otherwise).
    #[arg(long)]
    pub public: bool,
    /// Follow the job until the video is ready (or failed), then print its playback URL; the URL
    /// is printed as soon as the video is playable too, while it still encodes.
    #[arg(long)]
    pub wait: bool,
    /// Bytes per request of a resumable upload: what a broken connection can cost at most.
    #[arg(long, env = "PROSTREAM_UPLOAD_CHUNK_BYTES", default_value_t = 32 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(64 * 1024..))]
    pub chunk_bytes: u64,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub async fn run(args: UploadArgs) -> Result<(), CliError> {
    let client = Client::new(&args.server)?;
    let meta = tokio::fs::metadata(&args.file).await.map_err(|e| {
        CliError::new(
            "file_unreadable",
            format!("cannot read {}: {e}", args.file.display()),
        )
    })?;
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let title = args.title.clone().unwrap_or_else(|| name.clone());
    let bar = bytes_bar(meta.len(), args.server.json);

    let video_id = if tus::supported(&client).await? {
        let key = state_key(&args.server.server, &args.file, &meta, args.public)?;
        let interrupted = || {
            CliError::new(
                "interrupted",
                "the upload was interrupted; run the same command again to resume it",
            )
        };
        tokio::select! {
            result = upload_resumable(&client, &args, meta.len(), &name, &title, &key, &bar) => result?,
            _ = tokio::signal::ctrl_c() => { bar.abandon(); return Err(interrupted()); }
        }
    } else {
        upload_whole(&client, &args.file, &title, args.public, &bar).await?
    };
    bar.finish_and_clear();

    let video: Value = client
        .json(client.request(Method::GET, &format!("/v1/videos/{video_id}")))
        .await?;
    if !args.wait {
        return videos::print_video(&client, &video, args.server.json);
    }
    let done = follow(&client, video_id, args.server.json).await?;
    videos::print_video(&client, &done, args.server.json)?;
    match done["status"].as_str() {
        Some("ready") => Ok(()),
        _ => Err(CliError::new(
            done["error"]["code"].as_str().unwrap_or("not_ready"),
            done["error"]["message"]
                .as_str()
                .unwrap_or("the video did not become ready"),
        )),
    }
}

async fn upload_resumable(
    client: &Client,
    args: &UploadArgs,
    length: u64,
    name: &str,
    title: &str,
    key: &str,
    bar: &ProgressBar,
) -> Result<VideoId, CliError> {
    let mut state = State::load();
    let known = match state.urls.get(key) {
        Some(url) => tus::status(client, url).await?.map(|s| (url.clone(), s)),
        None => None,
    };
    let (url, mut status) = match known {
        Some((url, status)) => {
            let note = format!("resuming at byte {} of {length}", status.offset);
            if bar.is_hidden() {
                eprintln!("{note}");
            } else {
                bar.println(note);
            }
            (url, status)
        }
        None => {
            let mut metadata = vec![("filename", name), ("title", title)];
            if args.public {
                metadata.push(("visibility", "public"));
            }
            let url = tus::create(client, length, &metadata).await?;
            state.urls.insert(key.to_owned(), url.clone());
            state.save()?;
            let status = tus::Status {
                offset: 0,
                video_id: None,
            };
            (url, status)
        }
    };
    bar.set_position(status.offset);
    while status.video_id.is_none() {
        if status.offset >= length {
            // Everything arrived but the answer naming the video was lost: ask again.
            tokio::time::sleep(POLL).await;
            status = tus::status(client, &url).await?.ok_or_else(|| {
                CliError::new("upload_lost", "the server no longer knows this upload")
            })?;
            continue;
        }
        let piece = args.chunk_bytes.min(length - status.offset);
        let body = file_body(&args.file, status.offset, piece, bar).await?;
        status = tus::patch(client, &url, status.offset, piece, body).await?;
        bar.set_position(status.offset);
    }
    state.urls.remove(key);
    state.save()?;
    Ok(status.video_id.expect("the loop ends with a video id"))
}

/// A server without tus: one `POST /v1/videos` with the raw body.
async fn upload_whole(
    client: &Client,
    file: &Path,
    title: &str,
    public: bool,
    bar: &ProgressBar,
) -> Result<VideoId, CliError> {
    let length = tokio::fs::metadata(file).await?.len();
    let body = file_body(file, 0, length, bar).await?;
    let mut request = client
        .request(Method::POST, "/v1/videos")
        .query(&[("title", title)]);
    if public {
        request = request.query(&[("visibility", "public")]);
    }
    let response = request
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, length)
        .body(body)
        .send()
        .await?;
    let video: Value = check(response).await?.json().await?;
    video["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| CliError::new("protocol_error", "the server answered without a video id"))
}

/// `len` bytes of `file` from `offset`, advancing `bar` as they are sent.
async fn file_body(
    file: &Path,
    offset: u64,
    len: u64,
    bar: &ProgressBar,
) -> Result<Body, CliError> {
    let mut handle = tokio::fs::File::open(file).await?;
    handle.seek(std::io::SeekFrom::Start(offset)).await?;
    let bar = bar.clone();
    let stream = ReaderStream::with_capacity(handle.take(len), 256 * 1024)
        .inspect_ok(move |chunk| bar.inc(chunk.len() as u64));
    Ok(Body::wrap_stream(stream))
}

/// Polls the video with a second bar (stage and percent) until it stops changing state. The
/// playback URL is printed once, as soon as the video is playable while it still encodes: on
/// stdout with the text output, on stderr with `--json` (whose stdout is one document).
async fn follow(client: &Client, id: VideoId, quiet: bool) -> Result<Value, CliError> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(100)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos:>3}% {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let mut announced = false;
    loop {
        let video: Value = client
            .json(client.request(Method::GET, &format!("/v1/videos/{id}")))
            .await?;
        let status = video["status"].as_str().unwrap_or("unknown").to_owned();
        if !announced
            && status == "processing"
            && let Some(url) = playable_url(client, &video)
        {
            announced = true;
            if quiet {
                eprintln!("{url}");
            } else {
                bar.suspend(|| println!("{url}"));
            }
        }
        bar.set_prefix(status.clone());
        // `progress` is a percentage already.
        bar.set_position(video["progress"].as_f64().unwrap_or(0.0).clamp(0.0, 100.0) as u64);
        let mut msg = video["stage"].as_str().unwrap_or("").to_owned();
        if video["playable"].as_bool() == Some(true) && status == "processing" {
            msg.push_str(" (playable now)");
        }
        bar.set_message(msg);
        if matches!(status.as_str(), "ready" | "failed" | "canceled") {
            bar.finish_and_clear();
            return Ok(video);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The line that announces a playable video's playback URL, while it still encodes.
fn playable_url(client: &Client, video: &Value) -> Option<String> {
    if video["playable"].as_bool() != Some(true) {
        return None;
    }
    let hls = video["playback"]["hls"].as_str()?;
    Some(format!(
        "playable:   {} (still encoding; waiting for ready)",
        client.url(hls)
    ))
}

fn bytes_bar(len: u64, quiet: bool) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_prefix("uploading");
    bar
}

/// One upload per server, file version and visibility: a changed file (or `--public` added)
/// starts afresh, since the server keeps what the upload was created with.
fn state_key(
    server: &str,
    file: &Path,
    meta: &std::fs::Metadata,
    public: bool,
) -> Result<String, CliError> {
    let path = std::fs::canonicalize(file)?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!(
        "{server} {} {} {modified}{}",
        path.display(),
        meta.len(),
        if public { " public" } else { "" }
    ))
}

/// Upload URLs of unfinished uploads, in `$XDG_STATE_HOME/prostream/uploads.json`
/// (default `~/.local/state/prostream/uploads.json`).
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct State {
    urls: BTreeMap<String, String>,
}

impl State {
    fn path() -> Option<PathBuf> {
        let dir = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
        Some(dir.join("prostream").join("uploads.json"))
    }

    /// A missing or unreadable state file only means nothing can be resumed.
    fn load() -> Self {
        Self::path()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn save(&self) -> Result<(), CliError> {
        let Some(path) = Self::path() else {
            return Ok(()); // no home: uploads just cannot be resumed
        };
        std::fs::create_dir_all(path.parent().expect("the path has a parent"))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("serialisable"))?;
        std::fs::rename(tmp, path)?;
        Ok(())
    }
}

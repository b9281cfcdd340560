//! What an upload contains, asked of ffprobe, and whether we accept it.
//!
//! Untrusted files are only ever opened with [`ACCEPTED_DEMUXERS`] and the
//! `file` protocol: a playlist or concat script that points ffmpeg at other
//! files or URLs (the classic HLS-demuxer SSRF) is refused before it is read.

use std::{fmt, path::Path, time::Duration};

use tokio::process::Command;

use crate::{
    config::MediaLimits,
    process::{self, ProcessError},
};

pub mod budget;
pub mod captions;
mod language;
pub mod webvtt;
pub use language::{
    LANGUAGE_TAG_PATTERN, MAX_LANGUAGE_TAG_CHARS, UNDETERMINED, bcp47,
    display_name as language_name, parse_bcp47,
};
mod ffprobe;

pub use ffprobe::parse as parse_ffprobe_json;

/// Containers and elementary streams we accept, as ffmpeg demuxer names.
pub const ACCEPTED_DEMUXERS: &str =
    "mov,matroska,avi,flv,mpegts,mpeg,ogg,wav,mp3,aac,flac,asf,mxf,h264,hevc,m4v";

/// The smallest picture side we accept: below it browsers' and phones'
/// decoders are unreliable, and nobody means to publish it.
pub const MIN_SIDE: u32 = 16;

/// The HLS segment length the worker encodes, and so every media playlist's
/// `EXT-X-TARGETDURATION`. The first segment is shorter (playable sooner), and while it is the
/// only one ffmpeg writes a smaller target duration; the API serves this one from the start,
/// since RFC 8216 lets an `EVENT` playlist only grow, never change a tag.
pub const HLS_TARGET_DURATION_SECS: u32 = 2;

/// The first segment's length: the video is playable after one second of encoding.
pub const HLS_FIRST_SEGMENT_SECS: u32 = 1;

/// ffmpeg/ffprobe input options that confine a child to one local file of an accepted format.
pub fn input_guard_args() -> [&'static str; 4] {
    [
        "-format_whitelist",
        ACCEPTED_DEMUXERS,
        "-protocol_whitelist",
        "file",
    ]
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeInfo {
    /// ffprobe's demuxer name, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub format_name: String,
    pub duration_s: f64,
    /// Timestamp of the first packet (MPEG-TS starts at 1.4 s, say).
    pub start_s: f64,
    /// The video stream to transcode: the default one, else the first (never a cover image).
    pub video: Option<VideoInfo>,
    /// The default audio track: the one marked default, else the first. `None` for a silent file.
    pub audio: Option<AudioInfo>,
    /// Every decodable audio track, in file order (`audio` is one of them).
    pub audio_tracks: Vec<AudioInfo>,
    /// Every subtitle track, in file order, text or bitmap.
    pub subtitles: Vec<SubtitleInfo>,
    /// An attached picture (album art), the poster of an audio-only file.
    pub cover: Option<CoverInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Index of the stream in the file (`-map 0:{index}`).
    pub index: usize,
    pub codec: String,
    /// Displayed width: non-square pixels and rotation metadata already applied.
    pub width: u32,
    /// Displayed height: rotation metadata already applied.
    pub height: u32,
    /// Clockwise quarter turns the frames need, in degrees (ffmpeg applies them when decoding).
    pub rotation: u32,
    /// Average frames per second, 0 when unknown.
    pub frame_rate: f64,
    pub avg_frame_rate: Option<Rational>,
    /// ffprobe's "real base frame rate": the rate that represents every timestamp.
    pub r_frame_rate: Option<Rational>,
    /// Bits per second of the video stream, when the container says.
    pub bit_rate: Option<u64>,
    /// Frames the stream really holds: the container's count, else its packets counted.
    pub frame_count: Option<u64>,
    /// Frames per second the stream really averages: `frame_count` over the duration. Unlike
    /// `avg_frame_rate` (which ffprobe may take from the first seconds alone) it cannot be
    /// faked by timestamps that jump far ahead.
    pub real_frame_rate: Option<f64>,
    pub pix_fmt: Option<String>,
    pub color: Color,
}

/// Colour description of a video stream, as ffprobe names it; `None` when untagged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Color {
    /// `tv` (limited) or `pc` (full).
    pub range: Option<String>,
    /// Matrix: `bt709`, `bt470bg`, `smpte170m`, `bt2020nc`…
    pub space: Option<String>,
    /// Transfer: `bt709`, `smpte2084` (PQ), `arib-std-b67` (HLG)…
    pub transfer: Option<String>,
    pub primaries: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// Index of the stream in the file (`-map 0:{index}`).
    pub index: usize,
    pub codec: String,
    pub channels: u32,
    pub sample_rate: Option<u32>,
    pub labels: TrackLabels,
}

/// How a source names and marks one of its tracks (the container's tags and dispositions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackLabels {
    /// The `language` tag as written (ISO 639-2 in Matroska and MP4: `eng`, `fra`), if any.
    pub language: Option<String>,
    /// The `title` tag ("Director's commentary").
    pub title: Option<String>,
    pub default: bool,
    pub forced: bool,
    /// Audio description for the visually impaired (`visual_impaired` or `descriptions`).
    pub describes_video: bool,
    /// Captions for the hard of hearing (`hearing_impaired` or `captions`).
    pub captions: bool,
}

/// A subtitle track of the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtitleInfo {
    pub index: usize,
    /// ffmpeg's codec name: `subrip`, `ass`, `mov_text`, `webvtt`, `hdmv_pgs_subtitle`…
    pub codec: String,
    pub labels: TrackLabels,
}

impl SubtitleInfo {
    /// Text we can turn into WebVTT; bitmap subtitles (PGS, DVB, VobSub) would need OCR.
    pub fn is_text(&self) -> bool {
        TEXT_SUBTITLE_CODECS.contains(&self.codec.as_str())
    }
}

/// Subtitle codecs ffmpeg converts to WebVTT as text.
pub const TEXT_SUBTITLE_CODECS: [&str; 6] = ["subrip", "srt", "ass", "ssa", "mov_text", "webvtt"];

/// An attached picture: cover art of a music file, never a video to transcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverInfo {
    pub index: usize,
    pub codec: String,
}

/// A positive rational number: frame rates, aspect ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rational {
    pub num: u32,
    pub den: u32,
}

impl Rational {
    pub const fn new(num: u32, den: u32) -> Self {
        Self { num, den }
    }

    /// `30000/1001`; `None` for `0/0`, zero or garbage.
    pub fn parse(text: &str) -> Option<Self> {
        Self::parse_sep(text, '/')
    }

    pub fn parse_sep(text: &str, sep: char) -> Option<Self> {
        let (num, den) = text.trim().split_once(sep)?;
        let (num, den): (u32, u32) = (num.parse().ok()?, den.parse().ok()?);
        (num > 0 && den > 0).then_some(Self { num, den })
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the upload is empty")]
    Empty,
    #[error("this is not a media file ffmpeg accepts: {0}")]
    Unsupported(String),
    #[error("the file is truncated: {0}")]
    Truncated(String),
    #[error("the file is corrupt: {0}")]
    Corrupt(String),
    #[error("the file has no decodable video or audio stream")]
    NoStreams,
    #[error("this is a still image ({0}), not a video or audio file")]
    StillImage(String),
    #[error("{0}")]
    DimensionsTooSmall(String),
    #[error("{0}")]
    DimensionsExceeded(String),
    #[error("{0}")]
    DurationExceeded(String),
    #[error("{0}")]
    FrameRateExceeded(String),
    #[error("{0}")]
    ImplausibleTiming(String),
    #[error("{0}")]
    WorkBudgetExceeded(String),
    #[error("ffprobe needed more than {0:?} to read the file")]
    TimedOut(Duration),
    #[error("ffprobe could not run: {0}")]
    Unavailable(#[source] ProcessError),
}

impl ProbeError {
    /// The stable error code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_upload",
            Self::Unsupported(_) => "unsupported_media",
            Self::Truncated(_) => "truncated_media",
            Self::Corrupt(_) => "corrupt_media",
            Self::NoStreams => "no_media_streams",
            Self::StillImage(_) => "still_image",
            Self::DimensionsTooSmall(_) => "dimensions_too_small",
            Self::DimensionsExceeded(_) => "dimensions_exceeded",
            Self::DurationExceeded(_) => "duration_exceeded",
            Self::FrameRateExceeded(_) => "frame_rate_exceeded",
            Self::ImplausibleTiming(_) => "implausible_timing",
            Self::WorkBudgetExceeded(_) => "work_budget_exceeded",
            Self::TimedOut(_) => "probe_timeout",
            Self::Unavailable(_) => "probe_unavailable",
        }
    }

    /// Whether the file is at fault (refuse, never retry) rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Unavailable(_))
    }
}

/// Probes an upload and checks it against `limits`.
pub async fn probe(
    ffprobe: &Path,
    path: &Path,
    limits: &MediaLimits,
    timeout: Duration,
) -> Result<ProbeInfo, ProbeError> {
    let info = inspect(ffprobe, path, timeout).await?;
    check_limits(&info, limits)?;
    Ok(info)
}

/// Reads what `path` contains and checks that its data is all there.
pub async fn inspect(
    ffprobe: &Path,
    path: &Path,
    timeout: Duration,
) -> Result<ProbeInfo, ProbeError> {
    inspect_with(ffprobe, path, timeout, TailCheck::Run).await
}

/// Reads an accepted original, which [`probe`] checked whole when it arrived and nothing has
/// changed since: the tail check is not repeated. It is one ffprobe run of the two, about
/// 0.1 s of every job's time to first playable (benchmark 3).
pub async fn reinspect(
    ffprobe: &Path,
    path: &Path,
    timeout: Duration,
) -> Result<ProbeInfo, ProbeError> {
    inspect_with(ffprobe, path, timeout, TailCheck::Skip).await
}

#[derive(PartialEq)]
enum TailCheck {
    Run,
    Skip,
}

async fn inspect_with(
    ffprobe: &Path,
    path: &Path,
    timeout: Duration,
    tail: TailCheck,
) -> Result<ProbeInfo, ProbeError> {
    let len = tokio::fs::metadata(path)
        .await
        .map_err(|e| {
            ProbeError::Unavailable(ProcessError::Io {
                program: "ffprobe".into(),
                source: e,
            })
        })?
        .len();
    if len == 0 {
        return Err(ProbeError::Empty);
    }
    let mut info = read_streams(ffprobe, path, timeout).await?;
    if info.duration_s > 0.0 {
        if tail == TailCheck::Run {
            check_tail_readable(ffprobe, path, &info, timeout).await?;
        }
    } else {
        info.duration_s = measure_duration(ffprobe, path, &info, timeout).await?;
    }
    count_frames(ffprobe, path, &mut info, timeout).await?;
    Ok(info)
}

/// Fills in how many frames the video stream really holds where the container does not say
/// (Matroska, MPEG-TS): its packets are counted, which reads the file without decoding it. The
/// declared duration and rates alone would let a few kilobytes whose last timestamp lies hours
/// ahead pass for hours of video.
async fn count_frames(
    ffprobe: &Path,
    path: &Path,
    info: &mut ProbeInfo,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let duration_s = info.duration_s;
    let Some(video) = info.video.as_mut() else {
        return Ok(());
    };
    if video.frame_count.is_none() {
        let mut cmd = Command::new(ffprobe);
        cmd.args(["-v", "error", "-hide_banner"])
            .args(input_guard_args())
            .args([
                "-select_streams",
                &video.index.to_string(),
                "-count_packets",
            ])
            .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
            .arg(path);
        let done = run_probe(cmd, timeout).await?;
        video.frame_count = String::from_utf8_lossy(&done.stdout)
            .trim()
            .trim_end_matches(',')
            .parse()
            .ok();
    }
    video.real_frame_rate = video
        .frame_count
        .and_then(|n| budget::real_rate(n, duration_s));
    Ok(())
}

async fn read_streams(
    ffprobe: &Path,
    path: &Path,
    timeout: Duration,
) -> Result<ProbeInfo, ProbeError> {
    let mut cmd = Command::new(ffprobe);
    cmd.args(["-v", "error", "-hide_banner"])
        .args(input_guard_args())
        .args(["-print_format", "json", "-show_format", "-show_streams"])
        .arg(path);
    let done = run_probe(cmd, timeout).await?;
    if !done.status.success() {
        return Err(classify_failure(&done.stderr_tail));
    }
    ffprobe::parse_lenient(&done.stdout)
}

/// How long a file that does not say is: where its last packet ends. Reads
/// the packets (no decoding) of the one stream we would transcode.
async fn measure_duration(
    ffprobe: &Path,
    path: &Path,
    info: &ProbeInfo,
    timeout: Duration,
) -> Result<f64, ProbeError> {
    let index = info
        .video
        .as_ref()
        .map(|v| v.index)
        .or(info.audio.as_ref().map(|a| a.index))
        .unwrap_or(0);
    let mut cmd = Command::new(ffprobe);
    cmd.args(["-v", "error", "-hide_banner"])
        .args(input_guard_args())
        .args(["-select_streams", &index.to_string()])
        .args(["-show_entries", "packet=pts_time,duration_time"])
        .args(["-of", "csv=p=0"])
        .arg(path);
    let done = run_probe(cmd, timeout).await?;
    last_packet_end(&String::from_utf8_lossy(&done.stdout))
        .map(|end| end - info.start_s)
        .filter(|d| d.is_finite() && *d > 0.0)
        .ok_or_else(|| {
            ProbeError::Corrupt(
                "the file does not say how long it is and holds no readable packets".into(),
            )
        })
}

/// A container whose header survived but whose data was cut off (a
/// `faststart` MP4, or a Matroska file interrupted mid-upload) probes fine:
/// reading the packets of the last seconds tells whether the data really
/// reaches the duration the header announces. An MP4 whose index (moov)
/// points past the end of the file fails the same way.
async fn check_tail_readable(
    ffprobe: &Path,
    path: &Path,
    info: &ProbeInfo,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let duration_s = info.duration_s;
    let start = (info.start_s + duration_s - 3.0).max(0.0);
    let mut cmd = Command::new(ffprobe);
    cmd.args(["-v", "error", "-hide_banner"])
        .args(input_guard_args())
        .args(["-read_intervals", &format!("{start:.3}%")])
        .args(["-show_entries", "packet=pts_time,duration_time"])
        .args(["-of", "csv=p=0"])
        .arg(path);
    let done = run_probe(cmd, timeout).await?;
    let stderr = done.stderr_tail.to_ascii_lowercase();
    let data_end =
        last_packet_end(&String::from_utf8_lossy(&done.stdout)).map(|e| e - info.start_s);
    let complete = done.status.success()
        && !stderr.contains("ended prematurely")
        && !stderr.contains("partial file")
        && data_end.is_some_and(|end| end + tail_tolerance(duration_s) >= duration_s);
    if !complete {
        let reached = data_end.map_or("no readable data".to_owned(), |p| {
            format!("data ends at {p:.1} s")
        });
        return Err(ProbeError::Truncated(format!(
            "the container announces {duration_s:.1} s but {reached}"
        )));
    }
    Ok(())
}

/// Where the last packet ends, from `pts_time,duration_time` lines.
fn last_packet_end(csv: &str) -> Option<f64> {
    csv.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(',');
            let pts = fields.next()?.parse::<f64>().ok()?;
            let duration = fields
                .next()
                .and_then(|d| d.parse::<f64>().ok())
                .unwrap_or(0.0);
            Some(pts + duration)
        })
        .reduce(f64::max)
}

/// How far before the announced end the data may stop (an audio stream
/// that ends a little early): a quarter of the duration, at most 2 s. A
/// fixed 2 s would pass a 2 s clip with half its data missing.
fn tail_tolerance(duration_s: f64) -> f64 {
    (duration_s * 0.25).min(2.0)
}

async fn run_probe(cmd: Command, timeout: Duration) -> Result<process::Finished, ProbeError> {
    process::run(cmd, timeout).await.map_err(|e| match e {
        ProcessError::TimedOut { limit, .. } => ProbeError::TimedOut(limit),
        other => ProbeError::Unavailable(other),
    })
}

/// Turns ffprobe's complaint into a precise refusal.
fn classify_failure(stderr: &str) -> ProbeError {
    let last = stderr.lines().last().unwrap_or("").to_owned();
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("not on whitelist") {
        let format = stderr
            .split_once('[')
            .and_then(|(_, rest)| rest.split_once(" @"))
            .map_or("unknown", |(name, _)| name);
        // image2 reads picture files by name, `*_pipe` by content (png_pipe, jpeg_pipe…).
        if format == "image2" || format.ends_with("_pipe") {
            return ProbeError::StillImage(format.trim_end_matches("_pipe").to_owned());
        }
        return ProbeError::Unsupported(format!("{format} files are not accepted"));
    }
    if lower.contains("moov atom not found") {
        return ProbeError::Truncated("the MP4/MOV index (moov atom) is missing".into());
    }
    // A demuxer recognised the file (ffprobe prefixes its messages with
    // `[name @ 0x…]`) but could not read it: it is media, just broken.
    if stderr.lines().any(|l| l.starts_with('[')) {
        return ProbeError::Corrupt(last);
    }
    ProbeError::Unsupported("no known container or stream format was recognised".into())
}

pub fn check_limits(info: &ProbeInfo, limits: &MediaLimits) -> Result<(), ProbeError> {
    if info.duration_s > limits.max_duration_secs {
        return Err(ProbeError::DurationExceeded(format!(
            "the video lasts {:.0} s; at most {:.0} s is accepted",
            info.duration_s, limits.max_duration_secs
        )));
    }
    if let Some(v) = &info.video {
        if v.width < MIN_SIDE || v.height < MIN_SIDE {
            return Err(ProbeError::DimensionsTooSmall(format!(
                "the video is {}x{}; each side must be at least {MIN_SIDE} pixels",
                v.width, v.height
            )));
        }
        if v.width > limits.max_width
            || v.height > limits.max_height
            || u64::from(v.width) * u64::from(v.height) > limits.max_pixels
        {
            return Err(ProbeError::DimensionsExceeded(format!(
                "the video is {}x{}; at most {}x{} and {} pixels are accepted",
                v.width, v.height, limits.max_width, limits.max_height, limits.max_pixels
            )));
        }
        if v.frame_rate > limits.max_frame_rate {
            return Err(ProbeError::FrameRateExceeded(format!(
                "the video runs at {:.2} fps; at most {} fps is accepted",
                v.frame_rate, limits.max_frame_rate
            )));
        }
    }
    budget::check(info, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffprobe_complaints_map_to_precise_codes() {
        let image = "[image2 @ 0x55] Format not on whitelist 'mov'\nimg.jpg: Invalid argument";
        assert_eq!(classify_failure(image).code(), "still_image");
        let png = "[png_pipe @ 0x55] Format not on whitelist 'mov'\nx: Invalid argument";
        assert_eq!(classify_failure(png).code(), "still_image");
        assert!(classify_failure(png).to_string().contains("png"));
        let gif = "[gif @ 0x55] Format not on whitelist 'mov'\nx: Invalid argument";
        assert_eq!(classify_failure(gif).code(), "unsupported_media");
        assert!(classify_failure(gif).to_string().contains("gif"));
        let moov = "[mov,mp4,m4a @ 0x5] moov atom not found\nx: Invalid data found";
        assert_eq!(classify_failure(moov).code(), "truncated_media");
        let text = "t.txt: Invalid data found when processing input";
        assert_eq!(classify_failure(text).code(), "unsupported_media");
        let broken = "[matroska,webm @ 0x5] EBML header parsing failed\nx: Invalid data found";
        assert_eq!(classify_failure(broken).code(), "corrupt_media");
    }

    #[test]
    fn limits_name_the_cap_that_was_exceeded() {
        let video = |width, height| ProbeInfo {
            format_name: "mov".into(),
            duration_s: 10.0,
            start_s: 0.0,
            video: Some(VideoInfo {
                index: 0,
                codec: "h264".into(),
                width,
                height,
                rotation: 0,
                frame_rate: 120.0,
                avg_frame_rate: Some(Rational::new(120, 1)),
                r_frame_rate: Some(Rational::new(120, 1)),
                bit_rate: None,
                frame_count: Some(1200),
                real_frame_rate: Some(120.0),
                pix_fmt: Some("yuv420p".into()),
                color: Color::default(),
            }),
            audio: None,
            audio_tracks: Vec::new(),
            subtitles: Vec::new(),
            cover: None,
        };
        let info = video(3840, 2160);
        let tight = MediaLimits {
            max_width: 1920,
            ..MediaLimits::default()
        };
        assert_eq!(
            check_limits(&info, &tight).unwrap_err().code(),
            "dimensions_exceeded"
        );
        let short = MediaLimits {
            max_duration_secs: 5.0,
            ..MediaLimits::default()
        };
        assert_eq!(
            check_limits(&info, &short).unwrap_err().code(),
            "duration_exceeded"
        );
        let slow = MediaLimits {
            max_frame_rate: 60.0,
            ..MediaLimits::default()
        };
        assert_eq!(
            check_limits(&info, &slow).unwrap_err().code(),
            "frame_rate_exceeded"
        );
        assert!(check_limits(&info, &MediaLimits::default()).is_ok());
        let tiny = MediaLimits::default();
        assert!(check_limits(&video(16, 16), &tiny).is_ok());
        assert_eq!(
            check_limits(&video(16, 15), &tiny).unwrap_err().code(),
            "dimensions_too_small"
        );
    }

    #[test]
    fn the_data_must_reach_the_announced_end() {
        assert_eq!(
            last_packet_end("0.000000,0.033333\n1.966667,0.033333\nN/A,N/A\n"),
            Some(2.0)
        );
        assert_eq!(last_packet_end("0.000000,N/A\n"), Some(0.0));
        assert_eq!(last_packet_end(""), None);
        // One frame of 1/30 s "announces" 0.034 s: its packet end is enough.
        assert!(0.033_333 + tail_tolerance(0.034) >= 0.034);
        // Half of a 2 s clip is not "a little early".
        assert!(1.0 + tail_tolerance(2.0) < 2.0);
        assert_eq!(tail_tolerance(3600.0), 2.0);
    }
}

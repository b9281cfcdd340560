//! What an upload contains, asked of ffprobe, and whether we accept it.
//!
//! Untrusted files are only ever opened with [`ACCEPTED_DEMUXERS`] and the
//! `file` protocol: a playlist or concat script that points ffmpeg at other
//! files or URLs (the classic HLS-demuxer SSRF) is refused before it is read.

use std::{path::Path, time::Duration};

use serde::Deserialize;
use tokio::process::Command;

use crate::{
    config::MediaLimits,
    process::{self, ProcessError},
};

/// Containers and elementary streams we accept, as ffmpeg demuxer names.
pub const ACCEPTED_DEMUXERS: &str =
    "mov,matroska,avi,flv,mpegts,mpeg,ogg,wav,mp3,aac,flac,asf,mxf,h264,hevc,m4v";

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
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub codec: String,
    /// Displayed width: rotation metadata already applied.
    pub width: u32,
    /// Displayed height: rotation metadata already applied.
    pub height: u32,
    pub frame_rate: f64,
    /// Bits per second of the video stream, when the container says.
    pub bit_rate: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub codec: String,
    pub channels: u32,
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
    #[error("{0}")]
    DimensionsExceeded(String),
    #[error("{0}")]
    DurationExceeded(String),
    #[error("{0}")]
    FrameRateExceeded(String),
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
            Self::DimensionsExceeded(_) => "dimensions_exceeded",
            Self::DurationExceeded(_) => "duration_exceeded",
            Self::FrameRateExceeded(_) => "frame_rate_exceeded",
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
    let info = read_streams(ffprobe, path, timeout).await?;
    check_tail_readable(ffprobe, path, info.duration_s, timeout).await?;
    Ok(info)
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
    let parsed: FfprobeOutput = serde_json::from_slice(&done.stdout)
        .map_err(|e| ProbeError::Corrupt(format!("ffprobe output unreadable: {e}")))?;
    parsed.into_info()
}

/// A container whose header survived but whose data was cut off (a
/// `faststart` MP4, or a Matroska file interrupted mid-upload) probes fine:
/// reading the packets of the last seconds tells whether the data really
/// reaches the duration the header announces.
async fn check_tail_readable(
    ffprobe: &Path,
    path: &Path,
    duration_s: f64,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let start = (duration_s - 3.0).max(0.0);
    let mut cmd = Command::new(ffprobe);
    cmd.args(["-v", "error", "-hide_banner"])
        .args(input_guard_args())
        .args(["-read_intervals", &format!("{start:.3}%")])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(path);
    let done = run_probe(cmd, timeout).await?;
    let stderr = done.stderr_tail.to_ascii_lowercase();
    let last_pts = String::from_utf8_lossy(&done.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
        .reduce(f64::max);
    let complete = done.status.success()
        && !stderr.contains("ended prematurely")
        && !stderr.contains("partial file")
        && last_pts.is_some_and(|pts| pts + TAIL_TOLERANCE_S >= duration_s);
    if !complete {
        let reached = last_pts.map_or("no readable data".to_owned(), |p| {
            format!("data ends at {p:.1} s")
        });
        return Err(ProbeError::Truncated(format!(
            "the container announces {duration_s:.1} s but {reached}"
        )));
    }
    Ok(())
}

/// How far before the announced end the last packet may start (a long last
/// frame, or an audio stream that ends a little early).
const TAIL_TOLERANCE_S: f64 = 2.0;

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
    Ok(())
}

#[derive(Debug, Deserialize)]
struct FfprobeOutput {
    #[serde(default)]
    streams: Vec<FfprobeStream>,
    format: Option<FfprobeFormat>,
}

#[derive(Debug, Deserialize)]
struct FfprobeFormat {
    format_name: String,
    duration: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FfprobeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    bit_rate: Option<String>,
    channels: Option<u32>,
    duration: Option<String>,
    #[serde(default)]
    disposition: Disposition,
    #[serde(default)]
    side_data_list: Vec<SideData>,
    #[serde(default)]
    tags: Tags,
}

#[derive(Debug, Default, Deserialize)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Debug, Deserialize)]
struct SideData {
    rotation: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct Tags {
    rotate: Option<String>,
}

impl FfprobeStream {
    fn decodable_codec(&self) -> Option<String> {
        self.codec_name
            .clone()
            .filter(|c| !c.is_empty() && c != "unknown" && c != "none")
    }

    fn rotation(&self) -> i64 {
        let degrees = self
            .side_data_list
            .iter()
            .find_map(|s| s.rotation)
            .or_else(|| self.tags.rotate.as_deref().and_then(|r| r.parse().ok()))
            .unwrap_or(0.0);
        (degrees.round() as i64).rem_euclid(360)
    }

    fn frame_rate(&self) -> f64 {
        [&self.avg_frame_rate, &self.r_frame_rate]
            .into_iter()
            .flatten()
            .filter_map(|r| parse_ratio(r))
            .find(|fps| fps.is_finite() && *fps > 0.0)
            .unwrap_or(0.0)
    }

    fn to_video(&self) -> Option<VideoInfo> {
        if self.codec_type.as_deref() != Some("video") || self.disposition.attached_pic == 1 {
            return None;
        }
        let codec = self.decodable_codec()?;
        let (w, h) = (
            self.width.filter(|&w| w > 0)?,
            self.height.filter(|&h| h > 0)?,
        );
        let (width, height) = if self.rotation() % 180 == 90 {
            (h, w)
        } else {
            (w, h)
        };
        Some(VideoInfo {
            codec,
            width,
            height,
            frame_rate: self.frame_rate(),
            bit_rate: self.bit_rate.as_deref().and_then(|b| b.parse().ok()),
        })
    }

    fn to_audio(&self) -> Option<AudioInfo> {
        if self.codec_type.as_deref() != Some("audio") {
            return None;
        }
        Some(AudioInfo {
            codec: self.decodable_codec()?,
            channels: self.channels.unwrap_or(2),
        })
    }
}

impl FfprobeOutput {
    fn into_info(self) -> Result<ProbeInfo, ProbeError> {
        let format = self
            .format
            .ok_or_else(|| ProbeError::Corrupt("ffprobe found no container".into()))?;
        let video = self.streams.iter().find_map(FfprobeStream::to_video);
        let audio = self.streams.iter().find_map(FfprobeStream::to_audio);
        if video.is_none() && audio.is_none() {
            return Err(ProbeError::NoStreams);
        }
        let duration_s = format
            .duration
            .as_deref()
            .and_then(|d| d.parse::<f64>().ok())
            .or_else(|| {
                self.streams
                    .iter()
                    .filter_map(|s| s.duration.as_deref()?.parse::<f64>().ok())
                    .reduce(f64::max)
            })
            .filter(|d| d.is_finite() && *d > 0.0)
            .ok_or_else(|| ProbeError::Corrupt("the file does not say how long it is".into()))?;
        Ok(ProbeInfo {
            format_name: format.format_name,
            duration_s,
            video,
            audio,
        })
    }
}

fn parse_ratio(r: &str) -> Option<f64> {
    let (num, den) = r.split_once('/')?;
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    (den != 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ProbeInfo, ProbeError> {
        serde_json::from_str::<FfprobeOutput>(json)
            .unwrap()
            .into_info()
    }

    #[test]
    fn portrait_rotation_swaps_the_displayed_dimensions() {
        let info = parse(
            r#"{"streams":[{"codec_type":"video","codec_name":"h264","width":1920,"height":1080,
                "avg_frame_rate":"30000/1001","side_data_list":[{"rotation":-90}]}],
                "format":{"format_name":"mov,mp4","duration":"5.0"}}"#,
        )
        .unwrap();
        let v = info.video.unwrap();
        assert_eq!((v.width, v.height), (1080, 1920));
        assert!((v.frame_rate - 29.97).abs() < 0.01);
    }

    #[test]
    fn cover_art_alone_is_not_a_video_stream() {
        let info = parse(
            r#"{"streams":[{"codec_type":"audio","codec_name":"mp3","channels":2},
                {"codec_type":"video","codec_name":"mjpeg","width":500,"height":500,
                 "disposition":{"attached_pic":1}}],
                "format":{"format_name":"mp3","duration":"60.0"}}"#,
        )
        .unwrap();
        assert!(info.video.is_none());
        assert_eq!(info.audio.unwrap().codec, "mp3");
    }

    #[test]
    fn a_file_with_only_data_streams_is_refused() {
        let err = parse(
            r#"{"streams":[{"codec_type":"data","codec_name":"bin_data"}],
                "format":{"format_name":"mpegts","duration":"3.0"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "no_media_streams");
    }

    #[test]
    fn ffprobe_complaints_map_to_precise_codes() {
        let whitelist = "[image2 @ 0x55] Format not on whitelist 'mov'\nimg.jpg: Invalid argument";
        assert_eq!(classify_failure(whitelist).code(), "unsupported_media");
        assert!(classify_failure(whitelist).to_string().contains("image2"));
        let moov = "[mov,mp4,m4a @ 0x5] moov atom not found\nx: Invalid data found";
        assert_eq!(classify_failure(moov).code(), "truncated_media");
        let text = "t.txt: Invalid data found when processing input";
        assert_eq!(classify_failure(text).code(), "unsupported_media");
        let broken = "[matroska,webm @ 0x5] EBML header parsing failed\nx: Invalid data found";
        assert_eq!(classify_failure(broken).code(), "corrupt_media");
    }

    #[test]
    fn limits_name_the_cap_that_was_exceeded() {
        let info = ProbeInfo {
            format_name: "mov".into(),
            duration_s: 10.0,
            video: Some(VideoInfo {
                codec: "h264".into(),
                width: 3840,
                height: 2160,
                frame_rate: 120.0,
                bit_rate: None,
            }),
            audio: None,
        };
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
    }
}

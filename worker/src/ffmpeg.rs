//! Where the worker runs ffmpeg and ffprobe.
//!
//! One ffmpeg process per job encodes: the source is decoded once, `split` feeds a
//! scaler and an x264 encoder per rung, every audio track is encoded once to
//! AAC, and the HLS muxer writes fMP4 segments for every rendition (each rung's
//! video, each audio track) side by side. Beside it run small ffmpeg processes
//! that never decode the source's picture: the subtitle extraction (subtitle
//! streams only, subtitles.rs), and after the encode the downloads' remux
//! (downloads.rs) and the storyboard from the lowest rung (storyboard.rs), all
//! through [`run`]. The poster is a separate, tiny
//! ffmpeg run (seek, one frame): as a branch of the same graph it held every
//! rung's frames back until the poster frame arrived, which delayed the first
//! segment by seconds (benchmark 3: 5.6 s for 1080p) and buffered frames. The single decode
//! costs about 0.7× the CPU of one process per rung (benchmark 2a in BENCHMARKS.md).

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    time::Duration,
};

use prostream::{
    media::input_guard_args,
    process::{self, ProcessError},
};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::{
    ladder::{AUDIO_KBPS, Ladder},
    normalize::{AUDIO_CHANNELS, AUDIO_SAMPLE_RATE, VideoPlan},
    subtitles::SubtitleTrack,
    tracks::AudioTrack,
};

/// Segment length: one closed GOP of `KEYFRAME_SECS`, so every segment starts on a keyframe.
///
/// The first segment is [`FIRST_SEGMENT_SECS`] long, so the video is playable after one second
/// of encoding (benchmark 3). ffmpeg's HLS muxer applies `hls_init_time` to every segment of an
/// `EVENT` playlist (it switches to `hls_time` only once segments leave a sliding window, which
/// an `EVENT` playlist never does), so any keyframe past the first second closes a segment:
/// segments are as long as the keyframe interval, 2 s (measured: keyframes every 2 s give
/// 1, 2, 2, … s; 4 s segments would need keyframes only every 4 s).
pub const SEGMENT_SECS: u32 = prostream::media::HLS_TARGET_DURATION_SECS;
pub const KEYFRAME_SECS: u32 = SEGMENT_SECS;
pub const FIRST_SEGMENT_SECS: u32 = prostream::media::HLS_FIRST_SEGMENT_SECS;
pub const POSTER: &str = "poster.jpg";

/// What one encode needs besides the ladder.
#[derive(Debug, Clone)]
pub struct EncodeJob<'a> {
    pub input: &'a Path,
    pub out_dir: &'a Path,
    pub ladder: &'a Ladder,
    pub duration_s: f64,
    /// How the video becomes browser-ready; `None` for an audio-only source.
    pub video: Option<&'a VideoPlan>,
    /// The audio renditions; empty for a silent source.
    pub audio: &'a [AudioTrack],
    pub preset: &'a str,
    /// x264 constant rate factor, capped per rung by its VBV maxrate.
    pub crf: u8,
}

#[derive(Debug, thiserror::Error)]
pub enum FfmpegError {
    #[error("ffmpeg failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
    #[error(transparent)]
    Process(#[from] ProcessError),
}

impl FfmpegError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Failed { stderr, .. } if is_disk_full(stderr) => "disk_full",
            Self::Failed { status, .. } if status.contains("signal") => "transcoder_killed",
            Self::Failed { .. } => "transcode_failed",
            Self::Process(ProcessError::TimedOut { .. }) => "transcode_timeout",
            Self::Process(ProcessError::Canceled { .. }) => "canceled",
            Self::Process(_) => "transcoder_unavailable",
        }
    }

    /// ffmpeg exiting with an error on its own means the input is at fault;
    /// a full disk, a signal, a timeout or a missing binary is the machine's.
    pub fn is_bad_input(&self) -> bool {
        self.code() == "transcode_failed"
    }
}

fn is_disk_full(stderr: &str) -> bool {
    stderr.contains("No space left on device")
}

/// The ffmpeg arguments for `job`, without the binary.
pub fn encode_args(job: &EncodeJob<'_>) -> Vec<OsString> {
    let ladder = job.ladder;
    let out = |name: &str| job.out_dir.join(name).into_os_string();
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]);
    push(&input_guard_args());
    push(&["-i"]);
    args.push(job.input.into());

    // The ladder only has rungs for a source with video, and then a plan.
    let video = job.video.filter(|_| !ladder.rungs.is_empty());
    let rungs = if video.is_some() {
        ladder.rungs.as_slice()
    } else {
        &[]
    };
    if let Some(plan) = video {
        // By index too: `[0:v]` may be a cover image stored before the video.
        // The prefilter (constant frame rate, tone mapping) runs once, before the split.
        let mut graph = format!(
            "[0:{}]{},split={}",
            plan.input,
            plan.prefilter(),
            rungs.len()
        );
        for i in 0..rungs.len() {
            graph.push_str(&format!("[s{i}]"));
        }
        for (i, r) in rungs.iter().enumerate() {
            graph.push_str(&format!(
                ";[s{i}]{}[v{i}]",
                plan.rung_filter(r.width, r.height)
            ));
        }
        args.extend(["-filter_complex".into(), graph.into()]);
    }

    // Each rung's video and each audio track is a rendition of its own: the master playlist
    // (ours, playlist.rs) joins every rung with the audio group.
    let mut stream_map = Vec::new();
    for (i, r) in rungs.iter().enumerate() {
        args.extend(["-map".into(), format!("[v{i}]").into()]);
        args.extend(
            [
                format!("-maxrate:v:{i}"),
                format!("{}k", r.video_kbps),
                format!("-bufsize:v:{i}"),
                format!("{}k", r.bufsize_kbps()),
            ]
            .map(OsString::from),
        );
        stream_map.push(format!("v:{i},name:{}", r.name));
    }
    // By index: `0:a:0` would be the first track, whatever the file marks as default.
    let audio = if ladder.audio { job.audio } else { &[] };
    for (j, track) in audio.iter().enumerate() {
        args.extend(["-map".into(), format!("0:{}", track.input).into()]);
        stream_map.push(format!("a:{j},name:{}", track.name));
    }
    if let Some(plan) = video {
        let gop = plan.gop(KEYFRAME_SECS).to_string();
        // Keyframes at 0, FIRST_SEGMENT_SECS, then every KEYFRAME_SECS: 0, 1, 3, 5, … s.
        let keyframes = format!(
            "expr:gte(t,if(eq(n_forced,0),0,{FIRST_SEGMENT_SECS}+{KEYFRAME_SECS}*(n_forced-1)))"
        );
        let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
        push(&[
            "-c:v",
            "libx264",
            "-preset",
            job.preset,
            "-profile:v",
            "high",
        ]);
        // Capped CRF: constant quality, at most the rung's bitrate. Hard content
        // hits the cap and costs what ABR costs; easy content (slides, screen
        // recordings) costs a fraction (benchmark 7b).
        push(&["-crf", &job.crf.to_string()]);
        push(&[
            "-pix_fmt",
            "yuv420p",
            "-sc_threshold",
            "0",
            "-flags",
            "+cgop",
        ]);
        push(&[
            "-g",
            &gop,
            "-keyint_min",
            &gop,
            "-force_key_frames",
            &keyframes,
        ]);
        // The rung filters convert to limited-range BT.709; say so in the stream (VUI).
        push(&[
            "-colorspace",
            "bt709",
            "-color_primaries",
            "bt709",
            "-color_trc",
            "bt709",
            "-color_range",
            "tv",
        ]);
    }
    if !audio.is_empty() {
        args.extend(
            [
                "-c:a".into(),
                "aac".into(),
                "-b:a".into(),
                format!("{AUDIO_KBPS}k"),
                "-ac".into(),
                AUDIO_CHANNELS.to_string(),
                "-ar".into(),
                AUDIO_SAMPLE_RATE.to_string(),
            ]
            .map(OsString::from),
        );
    }
    let segment_secs = SEGMENT_SECS.to_string();
    let first_segment_secs = FIRST_SEGMENT_SECS.to_string();
    args.extend(
        [
            "-f",
            "hls",
            "-hls_time",
            &segment_secs,
            // A short first segment: the video becomes playable after one
            // second of encoding instead of a whole segment.
            "-hls_init_time",
            &first_segment_secs,
            // EVENT playlists grow segment by segment, so the video plays
            // while it encodes; temp_file makes every segment and playlist
            // appear by rename, never half-written.
            "-hls_playlist_type",
            "event",
            "-hls_flags",
            "independent_segments+temp_file",
            "-hls_segment_type",
            "fmp4",
        ]
        .map(OsString::from),
    );
    // ffmpeg expands %v in the init file name only when there are several
    // variants; a single one would get a literal `%v_init.mp4`.
    let names = rendition_names(ladder, audio);
    let init_name = match names.as_slice() {
        [only] => format!("{only}_init.mp4"),
        _ => "%v_init.mp4".to_owned(),
    };
    args.extend(["-hls_fmp4_init_filename".into(), init_name.into()]);
    args.extend(["-hls_segment_filename".into(), out("%v_%05d.m4s")]);
    args.extend(["-var_stream_map".into(), stream_map.join(" ").into()]);
    args.push(out("%v.m3u8"));

    args.extend(["-progress", "pipe:1", "-nostats"].map(OsString::from));
    args
}

/// Every rendition ffmpeg writes, by name: the rungs, highest first, then the audio tracks.
pub fn rendition_names(ladder: &Ladder, audio: &[AudioTrack]) -> Vec<String> {
    let mut names = ladder.names();
    if ladder.audio {
        names.extend(audio.iter().map(|t| t.name.clone()));
    }
    names
}

/// A few seconds in, where a title card has usually ended, but inside short clips.
fn poster_time(duration_s: f64) -> f64 {
    (duration_s / 3.0).min(5.0)
}

/// What the poster is taken from.
#[derive(Debug, Clone, Copy)]
pub enum PosterSource<'a> {
    /// A frame of the video, with the same colour conversion as the renditions.
    Video(&'a VideoPlan),
    /// The attached picture (album art) with this stream index.
    Cover(usize),
}

/// The ffmpeg arguments that write `out` from `source`, seeking to `seek_s` in a video.
fn poster_args(
    input: &Path,
    out: &Path,
    source: PosterSource<'_>,
    seek_s: Option<f64>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        .map(OsString::from)
        .to_vec();
    args.extend(input_guard_args().map(OsString::from));
    if let Some(seek) = seek_s {
        args.extend(["-ss".into(), format!("{seek:.3}").into()]);
    }
    args.extend(["-i".into(), input.into()]);
    let (index, mut filters) = match source {
        PosterSource::Video(plan) => (plan.input, plan.colour_filters()),
        PosterSource::Cover(index) => (index, Vec::new()),
    };
    filters.push("scale=-2:'min(720,ih)'".into());
    args.extend(
        [
            "-map".into(),
            format!("0:{index}"),
            "-frames:v".into(),
            "1".into(),
            "-vf".into(),
            filters.join(","),
            "-q:v".into(),
            "3".into(),
            "-update".into(),
            "1".into(),
        ]
        .map(OsString::from),
    );
    args.push(out.into());
    args
}

/// Writes `out_dir/poster.jpg`, at most 720 high: a frame a few seconds into
/// a video (seeking first makes this cost a fraction of a second whatever
/// the length), or a music file's cover. Returns whether a poster was written.
///
/// A seek past the only frames (a one-frame or very short clip) makes ffmpeg
/// exit 0 having written nothing; then the first frame is taken instead.
pub async fn poster(
    ffmpeg: &Path,
    input: &Path,
    out_dir: &Path,
    duration_s: f64,
    source: PosterSource<'_>,
    limit: Duration,
) -> Result<bool, FfmpegError> {
    let out = out_dir.join(POSTER);
    let seeks = match source {
        PosterSource::Video(_) => vec![Some(poster_time(duration_s)), None],
        PosterSource::Cover(_) => vec![None],
    };
    for seek in seeks {
        let _ = tokio::fs::remove_file(&out).await;
        let mut cmd = Command::new(ffmpeg);
        cmd.args(poster_args(input, &out, source, seek));
        let done = process::run(cmd, limit).await?;
        if !done.status.success() {
            return Err(FfmpegError::Failed {
                status: done.status.to_string(),
                stderr: done.stderr_tail,
            });
        }
        if tokio::fs::metadata(&out).await.is_ok_and(|m| m.len() > 0) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Pixels a second of 1080p at 30 fps: the unit of work [`encode_timeout`] counts in.
const PIXELS_PER_1080P30_SECOND: f64 = 1920.0 * 1080.0 * 30.0;

/// The wall-clock limit for encoding a source: `factor` times the seconds of 1080p30 its real
/// work (`work_pixels`, frames decoded or encoded × their pixels) amounts to, so a 1080p30 source
/// gets `factor` × its duration; an audio-only source counts its duration. Never less than
/// `minimum`. The declared duration alone is no measure: a few frames stamped hours apart
/// declare hours.
pub fn encode_timeout(work_pixels: u64, audio_s: f64, factor: f64, minimum: Duration) -> Duration {
    let secs = (work_pixels as f64 / PIXELS_PER_1080P30_SECOND).max(audio_s) * factor;
    Duration::try_from_secs_f64(secs)
        .unwrap_or(Duration::MAX)
        .max(minimum)
}

/// Runs the encode, calling `on_progress` with 0–100 as ffmpeg reports it.
///
/// `-progress pipe:1` also ties ffmpeg's life to ours: if the worker is
/// SIGKILLed (no `kill_on_drop` then), ffmpeg's next progress write hits a
/// closed pipe and it exits instead of encoding for nobody.
pub async fn encode(
    ffmpeg: &Path,
    job: &EncodeJob<'_>,
    limit: Duration,
    cancel: &CancellationToken,
    mut on_progress: impl FnMut(f32) + Send,
) -> Result<(), FfmpegError> {
    let args = encode_args(job);
    tracing::debug!(command = %shell_words(ffmpeg, &args), "running ffmpeg");
    let mut cmd = Command::new(ffmpeg);
    cmd.args(&args);
    let duration = job.duration_s;
    let done = process::run_lines(cmd, limit, cancel, |line| {
        if let Some(percent) = progress_percent(line, duration) {
            on_progress(percent);
        }
    })
    .await?;
    succeeded(done)
}

/// Runs a short ffmpeg command (a remux, thumbnails) to its end within `limit`.
pub async fn run(cmd: Command, limit: Duration) -> Result<(), FfmpegError> {
    succeeded(process::run(cmd, limit).await?)
}

/// `Ok` if ffmpeg exited 0, else why not, with what it wrote to stderr.
fn succeeded(done: process::Finished) -> Result<(), FfmpegError> {
    if done.status.success() {
        Ok(())
    } else {
        Err(FfmpegError::Failed {
            status: done.status.to_string(),
            stderr: done.stderr_tail,
        })
    }
}

/// The ffmpeg arguments that extract each of `tracks` to WebVTT at `out(track)`: one output per
/// track, the subtitle streams alone mapped, so nothing but them is decoded (the picture is
/// decoded once, by the encode). Timestamps start where the encode's do (ffmpeg shifts both by
/// the input's start time).
pub fn subtitle_args(
    input: &Path,
    tracks: &[SubtitleTrack],
    out: impl Fn(&SubtitleTrack) -> PathBuf,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        .map(OsString::from)
        .to_vec();
    args.extend(input_guard_args().map(OsString::from));
    args.extend(["-i".into(), input.into()]);
    for track in tracks {
        args.extend(
            [
                "-map".into(),
                format!("0:{}", track.input),
                "-c:s".into(),
                "webvtt".into(),
                "-f".into(),
                "webvtt".into(),
            ]
            .map(OsString::from),
        );
        args.push(out(track).into());
    }
    args
}

/// Extracts `tracks` of `input` to WebVTT files in `dir` ([`crate::subtitles::extracted_path`]).
/// Stops when `cancel` fires or after `limit`.
pub async fn extract_subtitles(
    ffmpeg: &Path,
    input: &Path,
    dir: &Path,
    tracks: &[SubtitleTrack],
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<(), FfmpegError> {
    let args = subtitle_args(input, tracks, |t| crate::subtitles::extracted_path(dir, t));
    tracing::debug!(command = %shell_words(ffmpeg, &args), "extracting subtitles");
    let mut cmd = Command::new(ffmpeg);
    cmd.args(&args);
    succeeded(process::run_lines(cmd, limit, cancel, |_| {}).await?)
}

/// The command as a shell line, to rerun an encode by hand (debug log).
fn shell_words(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `out_time_us=…` lines of `-progress` output, as a percentage of the source.
fn progress_percent(line: &str, duration_s: f64) -> Option<f32> {
    let micros: f64 = line.strip_prefix("out_time_us=")?.trim().parse().ok()?;
    (duration_s > 0.0 && micros >= 0.0)
        .then(|| ((micros / 1e6 / duration_s) * 100.0).clamp(0.0, 100.0) as f32)
}

/// The RFC 6381 `CODECS` value of an encoded rendition, read from its init
/// segment. For H.264 the three hex bytes are literally the profile,
/// constraint and level bytes of the `avcC` box (ffprobe cannot report the
/// level from an init segment alone: it has no frames to parse). Our audio is
/// always AAC-LC.
pub async fn codecs_of(init_segment: &Path) -> std::io::Result<String> {
    let bytes = tokio::fs::read(init_segment).await?;
    Ok(codecs_from_init(&bytes))
}

fn codecs_from_init(init: &[u8]) -> String {
    let mut codecs = Vec::new();
    if let Some(at) = find(init, b"avcC") {
        // avcC payload: configurationVersion, AVCProfileIndication, profile_compatibility, AVCLevelIndication.
        if let Some(&[_, profile, constraints, level]) = init.get(at + 4..at + 8) {
            codecs.push(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"));
        }
    }
    if find(init, b"mp4a").is_some() {
        codecs.push("mp4a.40.2".to_owned());
    }
    codecs.join(",")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Where ffmpeg writes a rendition's files inside the attempt directory.
pub fn rendition_files(out_dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        out_dir.join(format!("{name}.m3u8")),
        out_dir.join(format!("{name}_init.mp4")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ladder::{Source, plan},
        normalize::DynamicRange,
    };
    use prostream::media::Rational;

    fn sdr(input: usize, fps: u32) -> VideoPlan {
        VideoPlan {
            input,
            frame_rate: Rational::new(fps, 1),
            range: DynamicRange::Sdr,
            wide_gamut: false,
            matrix: "bt709",
            full_range: false,
        }
    }

    fn track(input: usize, n: usize) -> AudioTrack {
        AudioTrack {
            input,
            name: format!("audio_{n}"),
            language: "und".into(),
            label: format!("Track {}", n + 1),
            default: n == 0,
            describes_video: false,
        }
    }

    fn args_with(ladder: &Ladder, video: Option<&VideoPlan>, audio: &[AudioTrack]) -> String {
        let job = EncodeJob {
            input: Path::new("/m/uploads/x"),
            out_dir: Path::new("/m/work/j-1"),
            ladder,
            duration_s: 12.0,
            video,
            audio,
            preset: "veryfast",
            crf: 23,
        };
        join(&encode_args(&job))
    }

    fn join(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Video is stream 0 and audio stream 1, as in most files.
    fn args_for(ladder: &Ladder) -> String {
        let video = sdr(0, 30);
        let audio: Vec<AudioTrack> = ladder.audio.then(|| track(1, 0)).into_iter().collect();
        let video = (!ladder.rungs.is_empty()).then_some(&video);
        args_with(ladder, video, &audio)
    }

    #[test]
    fn one_process_decodes_once_and_encodes_every_rung() {
        let ladder = plan(&Source {
            video: Some((1280, 720)),
            video_bit_rate: None,
            audio: true,
        });
        let args = args_for(&ladder);
        assert!(
            args.contains("[0:0]fps=30/1,split=4[s0][s1][s2][s3];"),
            "{args}"
        );
        assert!(args.contains("[s1]scale=854:480:in_color_matrix=bt709:in_range=tv:out_color_matrix=bt709:out_range=tv,format=yuv420p,setsar=1[v1]"), "{args}");
        assert!(args.contains("-map 0:1"), "{args}");
        assert!(
            args.contains("-c:a aac -b:a 128k -ac 2 -ar 48000"),
            "{args}"
        );
        assert!(
            args.contains(
                "-colorspace bt709 -color_primaries bt709 -color_trc bt709 -color_range tv"
            )
        );
        assert!(args.contains("-var_stream_map v:0,name:720p v:1,name:480p v:2,name:360p v:3,name:240p a:0,name:audio_0"), "{args}");
        assert_eq!(
            args.matches("-map 0:1").count(),
            1,
            "audio is encoded once: {args}"
        );
        assert!(
            args.contains(
                "-g 60 -keyint_min 60 -force_key_frames expr:gte(t,if(eq(n_forced,0),0,1+2*(n_forced-1)))"
            ),
            "{args}"
        );
        assert!(args.contains("-hls_time 2 -hls_init_time 1"), "{args}");
        assert!(args.contains("-maxrate:v:0 2800k -bufsize:v:0 4200k"));
        assert!(args.contains("-crf 23"));
        assert!(!args.contains("-b:v"));
        assert!(args.contains("-format_whitelist"));
        assert!(args.contains("-protocol_whitelist file"));
        assert!(
            args.ends_with("/m/work/j-1/%v.m3u8 -progress pipe:1 -nostats"),
            "{args}"
        );
        assert!(!args.contains("poster"), "the poster is a separate run");
    }

    #[test]
    fn a_silent_video_maps_no_audio() {
        let ladder = plan(&Source {
            video: Some((640, 360)),
            video_bit_rate: None,
            audio: false,
        });
        let args = args_for(&ladder);
        assert!(!args.contains("0:1"));
        assert!(!args.contains("-c:a"));
        assert!(args.contains("-var_stream_map v:0,name:360p v:1,name:240p"));
    }

    #[test]
    fn an_audio_only_source_has_no_filter_graph_and_no_poster() {
        let ladder = plan(&Source {
            video: None,
            video_bit_rate: None,
            audio: true,
        });
        let args = args_with(&ladder, None, &[track(0, 0)]);
        assert!(!args.contains("-filter_complex"));
        assert!(!args.contains("-c:v"));
        assert!(args.contains("-map 0:0 -c:a aac"), "{args}");
        assert!(args.contains("-var_stream_map a:0,name:audio_0"));
        assert!(
            args.contains("-hls_fmp4_init_filename audio_0_init.mp4"),
            "{args}"
        );
    }

    #[test]
    fn streams_are_chosen_by_index_and_the_frame_rate_sets_the_gop() {
        let ladder = plan(&Source {
            video: Some((640, 360)),
            video_bit_rate: None,
            audio: true,
        });
        // A cover at 0, the video at 1, a commentary track at 2, the default audio at 3.
        let args = args_with(&ladder, Some(&sdr(1, 60)), &[track(2, 0), track(3, 1)]);
        assert!(args.contains("[0:1]fps=60/1,split=2"), "{args}");
        assert!(
            args.contains("-map [v0] -maxrate:v:0 800k -bufsize:v:0 1200k -map [v1] -maxrate:v:1 400k -bufsize:v:1 600k -map 0:2 -map 0:3 "),
            "{args}"
        );
        assert!(
            args.contains(
                "-var_stream_map v:0,name:360p v:1,name:240p a:0,name:audio_0 a:1,name:audio_1"
            ),
            "{args}"
        );
        assert!(args.contains("-g 120 -keyint_min 120"), "{args}");
        assert!(!args.contains("0:a:0") && !args.contains("[0:v]"), "{args}");
    }

    #[test]
    fn subtitles_are_extracted_alone_one_output_per_track() {
        let sub = |input, n: usize| SubtitleTrack {
            input,
            name: format!("subs_{n}"),
            language: "en".into(),
            label: "English".into(),
            default: false,
            forced: false,
            captions: false,
        };
        let args = join(&subtitle_args(
            Path::new("/m/in"),
            &[sub(2, 0), sub(5, 1)],
            |t| crate::subtitles::extracted_path(Path::new("/m/s"), t),
        ));
        assert!(args.contains("-protocol_whitelist file -i /m/in"), "{args}");
        assert!(
            args.ends_with(
                "-map 0:2 -c:s webvtt -f webvtt /m/s/subs_0.vtt -map 0:5 -c:s webvtt -f webvtt /m/s/subs_1.vtt"
            ),
            "{args}"
        );
        assert!(
            !args.contains("-filter_complex") && !args.contains("-c:v"),
            "{args}"
        );
    }

    #[test]
    fn posters_seek_into_videos_and_take_covers_whole() {
        let input = Path::new("/m/in");
        let out = Path::new("/m/poster.jpg");
        let plan = sdr(1, 30);
        let video = join(&poster_args(
            input,
            out,
            PosterSource::Video(&plan),
            Some(2.0),
        ));
        assert!(
            video.contains("-ss 2.000 -i /m/in -map 0:1 -frames:v 1 -vf scale=-2:'min(720,ih)'"),
            "{video}"
        );
        let cover = join(&poster_args(input, out, PosterSource::Cover(2), None));
        assert!(!cover.contains("-ss"), "{cover}");
        assert!(cover.contains("-map 0:2 -frames:v 1"), "{cover}");
        let hdr = VideoPlan {
            range: DynamicRange::Pq,
            ..plan
        };
        let toned = join(&poster_args(input, out, PosterSource::Video(&hdr), None));
        assert!(toned.contains("tonemap=tonemap=mobius"), "{toned}");
    }

    #[test]
    fn progress_lines_become_percentages() {
        assert_eq!(progress_percent("out_time_us=6000000", 12.0), Some(50.0));
        assert_eq!(progress_percent("out_time_us=99000000", 12.0), Some(100.0));
        assert_eq!(progress_percent("out_time_us=N/A", 12.0), None);
        assert_eq!(progress_percent("progress=continue", 12.0), None);
    }

    #[test]
    fn codecs_come_from_the_init_segment_boxes() {
        let mut init = b"....ftypiso6....moov....avc1".to_vec();
        init.extend_from_slice(b"\x00\x00\x00\x2aavcC");
        init.extend_from_slice(&[1, 0x64, 0x00, 0x1f, 0xff]);
        init.extend_from_slice(b"....mp4a....esds");
        assert_eq!(codecs_from_init(&init), "avc1.64001f,mp4a.40.2");
        assert_eq!(codecs_from_init(b"....mp4a...."), "mp4a.40.2");
    }

    #[test]
    fn failures_are_told_apart_by_cause() {
        let failed = |stderr: &str, status: &str| FfmpegError::Failed {
            status: status.into(),
            stderr: stderr.into(),
        };
        assert!(failed("Invalid data found", "exit status: 1").is_bad_input());
        assert_eq!(
            failed("No space left on device", "exit status: 1").code(),
            "disk_full"
        );
        assert!(!failed("", "signal: 9 (SIGKILL)").is_bad_input());
    }

    #[test]
    fn the_timeout_scales_with_the_real_work_but_has_a_floor() {
        let min = Duration::from_secs(300);
        let hour_1080p30: u64 = 3600 * 30 * 1920 * 1080;
        assert_eq!(encode_timeout(hour_1080p30 / 360, 0.0, 10.0, min), min);
        assert_eq!(
            encode_timeout(hour_1080p30, 0.0, 10.0, min),
            Duration::from_secs(36000)
        );
        // An hour of audio alone.
        assert_eq!(
            encode_timeout(0, 3600.0, 10.0, min),
            Duration::from_secs(36000)
        );
        // Five 320x240 frames declared as 14,000 s, encoded at 1 fps: minutes, not 39 hours.
        assert_eq!(encode_timeout(14_001 * 320 * 240, 0.0, 10.0, min), min);
    }
}

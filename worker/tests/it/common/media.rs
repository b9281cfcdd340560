//! Helpers of the media matrix (`media_matrix.rs`): generating sources
//! with ffmpeg, publishing them through the API and worker, and examining
//! the published HLS over HTTP with ffprobe and ffmpeg.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;
use tokio::process::Command;

use super::TestApp;

/// Generous: on two shared cores a group's encodes queue behind each other.
pub const READY_LIMIT: Duration = Duration::from_secs(180);

/// 2 s of moving test pattern.
pub fn pattern(size: &str, rate: &str) -> String {
    format!("testsrc2=size={size}:rate={rate}:duration=2")
}

pub fn tone(freq: u32) -> String {
    format!("sine=frequency={freq}:duration=2")
}

pub const X264: [&str; 4] = ["-c:v", "libx264", "-preset", "ultrafast"];
pub const X265: [&str; 6] = [
    "-c:v",
    "libx265",
    "-preset",
    "ultrafast",
    "-x265-params",
    "log-level=error",
];

/// Runs `command` (ffmpeg, ffprobe) to its end and returns its standard output; panics saying
/// `what` and what the command wrote to standard error if it fails.
pub async fn run_ok(command: &mut Command, what: &str) -> Vec<u8> {
    let out = command.output().await.expect("the tool is installed");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: {errors}");
    out.stdout
}

/// Runs ffmpeg with `args` (the output path last) and returns the output.
pub async fn ffmpeg<S: AsRef<std::ffi::OsStr>>(dir: &Path, name: &str, args: &[S]) -> PathBuf {
    let out = dir.join(name);
    let mut command = Command::new("ffmpeg");
    command.args(["-v", "error", "-y", "-nostdin"]).args(args);
    run_ok(command.arg(&out), &format!("generating {name}")).await;
    out
}

/// ffmpeg decodes `target` (a file or URL), the streams `maps` picks (`-map …`; all by default),
/// to nothing; panics with ffmpeg's errors if it cannot.
pub async fn ffmpeg_decodes(target: &str, maps: &[&str]) {
    let mut command = Command::new("ffmpeg");
    command.args(["-v", "error", "-i", target]).args(maps);
    run_ok(command.args(["-f", "null", "-"]), target).await;
}

/// Concatenates argument lists.
pub fn cat<'a>(parts: &[&[&'a str]]) -> Vec<&'a str> {
    parts.concat()
}

/// ffmpeg's `-i` for a lavfi source.
pub fn lavfi(graph: &str) -> [&str; 4] {
    ["-f", "lavfi", "-i", graph]
}

/// Sets the display rotation of an MP4's video track, as a phone does, by
/// rewriting the `tkhd` matrix (ffmpeg 5.1 has no option that writes one;
/// `scripts/mp4-rotate.py` is the same thing for the shell).
pub fn set_rotation(path: &Path, clockwise: u32) {
    let (a, b, c, d): (i32, i32, i32, i32) = match clockwise {
        90 => (0, 1, -1, 0),
        180 => (-1, 0, 0, -1),
        270 => (0, -1, 1, 0),
        _ => (1, 0, 0, 1),
    };
    let mut data = std::fs::read(path).unwrap();
    let mut patched = 0;
    let mut from = 0;
    while let Some(pos) = data[from..].windows(4).position(|w| w == b"tkhd") {
        let at = from + pos;
        from = at + 4;
        let version = data[at + 4];
        let matrix =
            at + 8 + if version == 0 { 8 } else { 16 } + 8 + if version == 0 { 4 } else { 8 } + 16;
        let width = u32::from_be_bytes(data[matrix + 36..matrix + 40].try_into().unwrap());
        if width == 0 {
            continue; // the audio track
        }
        let values = [a << 16, b << 16, 0, c << 16, d << 16, 0, 0, 0, 1 << 30];
        for (i, v) in values.iter().enumerate() {
            data[matrix + 4 * i..matrix + 4 * i + 4].copy_from_slice(&v.to_be_bytes());
        }
        patched += 1;
    }
    assert_eq!(patched, 1, "one video track in {}", path.display());
    std::fs::write(path, data).unwrap();
}

/// ffprobe's JSON for a URL or file.
pub async fn ffprobe(target: &str, extra: &[&str]) -> Value {
    let mut command = Command::new("ffprobe");
    command.args(["-v", "error", "-print_format", "json"]);
    let out = run_ok(
        command.args(extra).arg(target),
        &format!("ffprobe {target}"),
    )
    .await;
    serde_json::from_slice(&out).unwrap()
}

/// The streams of a rendition, read over HTTP the way a player reads them.
pub async fn streams(url: &str) -> Vec<Value> {
    ffprobe(url, &["-show_streams"]).await["streams"]
        .as_array()
        .unwrap()
        .clone()
}

pub fn stream<'a>(streams: &'a [Value], kind: &str) -> Option<&'a Value> {
    streams.iter().find(|s| s["codec_type"] == kind)
}

/// Decodes the first video frame of `target` through `filter` into raw bytes.
pub async fn frame_bytes(target: &str, filter: &str) -> Vec<u8> {
    let mut command = Command::new("ffmpeg");
    command.args([
        "-v",
        "error",
        "-i",
        target,
        "-map",
        "0:v:0",
        "-frames:v",
        "1",
    ]);
    command.args(["-vf", filter, "-f", "rawvideo", "-"]);
    run_ok(&mut command, &format!("decoding {target}")).await
}

/// The mean luma of the first frame, as coded (limited range: 16–235; JPEG: 0–255).
///
/// Averaged here: swscale's `area` scaling to 1x1 is off by 10 codes and more.
pub async fn mean_luma(target: &str) -> u8 {
    mean(&frame_bytes(target, "extractplanes=y,format=gray").await)
}

pub fn mean(bytes: &[u8]) -> u8 {
    let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
    (sum / bytes.len().max(1) as u64) as u8
}

/// The mean (red, green, blue) of each quadrant of the first frame, row by row.
pub async fn quadrant_colours(target: &str) -> [[u8; 3]; 4] {
    const SIDE: usize = 64;
    let rgb = frame_bytes(target, &format!("scale={SIDE}:{SIDE},format=rgb24")).await;
    assert_eq!(rgb.len(), SIDE * SIDE * 3);
    let mut out = [[0u8; 3]; 4];
    for (q, colour) in out.iter_mut().enumerate() {
        let (top, left) = (q / 2 * SIDE / 2, q % 2 * SIDE / 2);
        for (c, value) in colour.iter_mut().enumerate() {
            let samples: Vec<u8> = (top..top + SIDE / 2)
                .flat_map(|y| (left..left + SIDE / 2).map(move |x| (y * SIDE + x) * 3 + c))
                .map(|i| rgb[i])
                .collect();
            *value = mean(&samples);
        }
    }
    out
}

/// Peak absolute sample of each channel of the first audio stream, as 16-bit stereo.
pub async fn channel_peaks(target: &str) -> (i32, i32) {
    let mut command = Command::new("ffmpeg");
    command.args(["-v", "error", "-i", target, "-map", "0:a:0"]);
    let out = run_ok(command.args(["-f", "s16le", "-"]), target).await;
    let samples: Vec<i32> = out
        .chunks_exact(2)
        .map(|b| i32::from(i16::from_le_bytes([b[0], b[1]])).abs())
        .collect();
    let left = samples.iter().step_by(2).copied().max().unwrap_or(0);
    let right = samples
        .iter()
        .skip(1)
        .step_by(2)
        .copied()
        .max()
        .unwrap_or(0);
    (left, right)
}

/// Presentation times of the video packets of a rendition, in order.
pub async fn video_packet_times(url: &str) -> Vec<f64> {
    let json = ffprobe(
        url,
        &["-select_streams", "v:0", "-show_entries", "packet=pts_time"],
    )
    .await;
    let mut times: Vec<f64> = json["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["pts_time"].as_str()?.parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// A finished video and its published output.
pub struct Published {
    pub video: Value,
    pub base: String,
    pub master: m3u8_rs::MasterPlaylist,
    pub master_text: String,
}

impl Published {
    pub fn rendition_url(&self, app: &TestApp, name: &str) -> String {
        app.url(&format!("{}/{name}.m3u8", self.base))
    }

    pub fn names(&self) -> Vec<String> {
        self.video["renditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn top(&self) -> String {
        self.names().remove(0)
    }

    /// The audio tracks' rendition names, in source order.
    pub fn audio_names(&self) -> Vec<String> {
        self.video["audio_tracks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The default audio track's playlist URL.
    pub fn default_audio_url(&self, app: &TestApp) -> String {
        let tracks = self.video["audio_tracks"].as_array().unwrap();
        let default: Vec<&Value> = tracks.iter().filter(|t| t["default"] == true).collect();
        assert_eq!(default.len(), 1, "one default track: {}", self.video);
        self.rendition_url(app, default[0]["name"].as_str().unwrap())
    }

    pub fn poster_url(&self, app: &TestApp) -> Option<String> {
        self.video["playback"]["poster"]
            .as_str()
            .map(|p| app.url(p))
    }
}

/// Uploads every clip, then waits for each to be ready and reads its master playlist.
pub async fn publish_all(app: &TestApp, clips: &[(&str, PathBuf)]) -> Vec<Published> {
    let mut ids = Vec::new();
    for (what, clip) in clips {
        let (status, video) = app.upload(clip, "application/octet-stream").await;
        assert_eq!(status, 202, "{what}: {video}");
        ids.push(video["id"].as_str().unwrap().to_owned());
    }
    let mut published = Vec::new();
    for ((what, _), id) in clips.iter().zip(ids) {
        let video = app
            .wait_for_status(&id, &["ready", "failed"], READY_LIMIT)
            .await;
        assert_eq!(video["status"], "ready", "{what}: {video}");
        let base = TestApp::hls_base(&video);
        let master_text = app
            .get_text(&app.url(video["playback"]["hls"].as_str().unwrap()))
            .await;
        let master = m3u8_rs::parse_master_playlist_res(master_text.as_bytes())
            .unwrap_or_else(|e| panic!("{what}: {e}: {master_text}"));
        published.push(Published {
            video,
            base,
            master,
            master_text,
        });
    }
    published
}

/// Every browser plays it: H.264 High, 8-bit 4:2:0, even sides, tagged BT.709.
pub fn assert_browser_video(what: &str, v: &Value) {
    assert_eq!(v["codec_name"], "h264", "{what}: {v}");
    assert_eq!(v["profile"], "High", "{what}: {v}");
    assert_eq!(v["pix_fmt"], "yuv420p", "{what}: {v}");
    let (w, h) = (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap());
    assert_eq!((w % 2, h % 2), (0, 0), "{what}: {w}x{h}");
    for key in ["color_space", "color_transfer", "color_primaries"] {
        assert_eq!(v[key], "bt709", "{what}: {key} in {v}");
    }
    assert_eq!(v["color_range"], "tv", "{what}: {v}");
}

/// AAC-LC, stereo, 48 kHz.
pub fn assert_browser_audio(what: &str, a: &Value) {
    assert_eq!(a["codec_name"], "aac", "{what}: {a}");
    assert_eq!(a["profile"], "LC", "{what}: {a}");
    assert_eq!(a["channels"], 2, "{what}: {a}");
    assert_eq!(a["sample_rate"], "48000", "{what}: {a}");
}

/// Every rung of `p` is browser-ready video alone, and (if `audio`) every audio track
/// browser-ready audio alone, in one group every variant plays with.
pub async fn assert_every_rendition(app: &TestApp, what: &str, p: &Published, audio: bool) {
    for name in p.names() {
        let s = streams(&p.rendition_url(app, &name)).await;
        assert_eq!(s.len(), 1, "{what} {name}: the video alone: {s:?}");
        assert_browser_video(&format!("{what} {name}"), stream(&s, "video").unwrap());
    }
    let tracks = p.audio_names();
    assert_eq!(tracks.is_empty(), !audio, "{what}: {}", p.video);
    for name in &tracks {
        let s = streams(&p.rendition_url(app, name)).await;
        assert_eq!(s.len(), 1, "{what} {name}: the audio alone: {s:?}");
        assert_browser_audio(&format!("{what} {name}"), &s[0]);
    }
    assert_eq!(
        p.master.alternatives.len(),
        tracks.len(),
        "{}",
        p.master_text
    );
    for variant in &p.master.variants {
        let codecs = variant.codecs.as_deref().unwrap();
        assert!(codecs.starts_with("avc1.64"), "{what}: {}", p.master_text);
        assert_eq!(codecs.ends_with(",mp4a.40.2"), audio, "{what}: {codecs}");
        assert_eq!(variant.audio.is_some(), audio, "{what}: {}", p.master_text);
    }
}

/// Which quadrant of the first frame holds the red box: (top, left). The
/// other three must be grey.
pub async fn red_quadrant(target: &str) -> (bool, bool) {
    let quadrants = quadrant_colours(target).await;
    let red = |[r, g, b]: [u8; 3]| r > 180 && g < 80 && b < 80;
    let reds: Vec<usize> = (0..4).filter(|&q| red(quadrants[q])).collect();
    let [q] = reds.as_slice() else {
        panic!("{target}: not one red quadrant: {quadrants:?}")
    };
    (*q < 2, q % 2 == 0)
}

pub fn gaps(times: &[f64]) -> Vec<f64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Overwrites `len` bytes at `offset` bytes after the first `box_type` box header found after `moov`.
pub fn damage_box(data: &mut [u8], box_type: &[u8; 4], offset: usize, len: usize, byte: u8) {
    let moov = data
        .windows(4)
        .position(|w| w == b"moov")
        .expect("a moov box");
    let at = moov
        + data[moov..]
            .windows(4)
            .position(|w| w == box_type)
            .expect("the box");
    let end = (at + offset + len).min(data.len());
    data[at + offset..end].fill(byte);
}

/// A tiny valid PGS (HDMV presentation graphics, `.sup`) stream: a 16×8 white box shown at 0.5 s
/// and cleared at 2 s. ffmpeg has no PGS encoder, so the segments are written here: each is
/// `PG`, PTS and DTS (90 kHz), type and size, then PCS (composition), WDS (window), PDS
/// (palette), ODS (run-length coded object) and END; the clearing display set is a PCS
/// without objects.
pub fn pgs_sup() -> Vec<u8> {
    fn segment(pts: u32, kind: u8, data: &[u8]) -> Vec<u8> {
        let mut out = b"PG".to_vec();
        out.extend_from_slice(&pts.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
        out.extend_from_slice(data);
        out
    }
    let be = |v: u16| v.to_be_bytes();
    // Each line: 16 pixels of palette entry 1 (00 10LLLLLL CC), then end of line (00 00).
    let rle: Vec<u8> = [0x00, 0x80 | 16, 0x01, 0x00, 0x00].repeat(8);
    let composition = |number: u16, state: u8, objects: u8| {
        let mut pcs = [be(320), be(180)].concat();
        pcs.push(0x10); // frame rate
        pcs.extend_from_slice(&be(number));
        pcs.extend_from_slice(&[state, 0, 0, objects]);
        if objects == 1 {
            pcs.extend_from_slice(&[0, 0, 0, 0]); // object 0, window 0, not cropped
            pcs.extend_from_slice(&[be(10), be(10)].concat());
        }
        pcs
    };
    let mut window = vec![1, 0];
    window.extend_from_slice(&[be(10), be(10), be(16), be(8)].concat());
    let palette = [0, 0, 1, 235, 128, 128, 255];
    let mut object = vec![0, 0, 0, 0xc0];
    object.extend_from_slice(&u32::try_from(rle.len() + 4).unwrap().to_be_bytes()[1..]);
    object.extend_from_slice(&[be(16), be(8)].concat());
    object.extend_from_slice(&rle);
    [
        segment(45_000, 0x16, &composition(0, 0x80, 1)),
        segment(45_000, 0x17, &window),
        segment(45_000, 0x14, &palette),
        segment(45_000, 0x15, &object),
        segment(45_000, 0x80, &[]),
        segment(180_000, 0x16, &composition(1, 0x00, 0)),
        segment(180_000, 0x17, &window),
        segment(180_000, 0x80, &[]),
    ]
    .concat()
}

/// One cue of a published WebVTT segment, its times in seconds of media time: the cue's own
/// time plus the segment's `X-TIMESTAMP-MAP` (MPEGTS / 90 kHz − LOCAL).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedCue {
    pub segment: usize,
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// `hh:mm:ss.ttt` or `mm:ss.ttt` in seconds.
fn vtt_seconds(text: &str) -> f64 {
    text.trim()
        .split(':')
        .fold(0.0, |acc, part| acc * 60.0 + part.parse::<f64>().unwrap())
}

/// Reads a subtitle media playlist and every WebVTT segment it lists over HTTP; returns the
/// segments' durations, every segment's MPEGTS, and every cue in every segment.
pub async fn published_cues(app: &TestApp, url: &str) -> (Vec<f32>, Vec<u64>, Vec<PublishedCue>) {
    let text = app.get_text(url).await;
    let playlist = m3u8_rs::parse_media_playlist_res(text.as_bytes())
        .unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
    assert!(playlist.end_list, "{url}: {text}");
    assert_eq!(playlist.target_duration, 2, "{url}: {text}");
    let base = url.rsplit_once('/').unwrap().0;
    let mut durations = Vec::new();
    let mut maps = Vec::new();
    let mut cues = Vec::new();
    for (n, segment) in playlist.segments.iter().enumerate() {
        durations.push(segment.duration);
        let vtt = app.get_text(&format!("{base}/{}", segment.uri)).await;
        let mut lines = vtt.lines();
        assert_eq!(lines.next(), Some("WEBVTT"), "{}: {vtt}", segment.uri);
        let map = lines.next().unwrap_or_default();
        let fields = map
            .strip_prefix("X-TIMESTAMP-MAP=")
            .unwrap_or_else(|| panic!("{}: no X-TIMESTAMP-MAP: {vtt}", segment.uri));
        let (mut mpegts, mut local) = (None, None);
        for field in fields.split(',') {
            if let Some(v) = field.strip_prefix("MPEGTS:") {
                mpegts = Some(v.parse::<u64>().unwrap());
            } else if let Some(v) = field.strip_prefix("LOCAL:") {
                local = Some(vtt_seconds(v));
            }
        }
        let (mpegts, local) = (mpegts.unwrap(), local.unwrap());
        maps.push(mpegts);
        let shift = mpegts as f64 / 90_000.0 - local;
        for block in vtt.split("\n\n").skip(1) {
            let lines: Vec<&str> = block.lines().collect();
            let Some(at) = lines.iter().position(|l| l.contains("-->")) else {
                continue;
            };
            let (start, end) = lines[at].split_once("-->").unwrap();
            let end = end.split_whitespace().next().unwrap();
            cues.push(PublishedCue {
                segment: n,
                start: vtt_seconds(start) + shift,
                end: vtt_seconds(end) + shift,
                text: lines[at + 1..].join("\n"),
            });
        }
    }
    (durations, maps, cues)
}

//! Seek thumbnails: JPEG sprite sheets of small frames and a WebVTT track whose cues point at
//! each tile (`storyboard_1.jpg#xywh=x,y,w,h`), the format players (video.js, Shaka, Vidstack)
//! read for seek-bar previews. Made after the encode from the lowest rung, whose frames are a
//! fraction of the source's pixels: the source is never decoded a second time.
//!
//! Two small ffmpeg runs: the tiles one by one into the scratch directory (so their count, and
//! with it every cue, is exact), then the sheets from them.

use std::{ffi::OsString, fmt::Write as _, path::Path, time::Duration};

use prostream::{process, storage::STORYBOARD};
use tokio::process::Command;

use crate::{
    ffmpeg::{self, FfmpegError},
    output::Output,
};

/// Tile width in pixels; the height follows the picture's aspect.
const TILE_WIDTH: u32 = 160;
/// Tiles per sheet: 10 × 10.
const COLUMNS: u32 = 10;
const ROWS: u32 = 10;
/// At most this many tiles, however long the video: the interval grows with the length.
const MAX_TILES: u32 = 300;
/// At least this many seconds between tiles (one segment).
const MIN_STEP_SECS: u32 = 2;

/// Seconds between tiles: every 2 s, or longer so that at most [`MAX_TILES`] cover the video.
pub fn step_secs(duration_s: f64) -> u32 {
    let needed = (duration_s / f64::from(MAX_TILES)).ceil();
    (needed as u32).max(MIN_STEP_SECS)
}

/// A tile's size for a rung of `width`×`height`: [`TILE_WIDTH`] wide, the height even.
fn tile_size(width: u32, height: u32) -> (u32, u32) {
    let h = (f64::from(TILE_WIDTH) * f64::from(height) / f64::from(width) / 2.0).round() as u32 * 2;
    (TILE_WIDTH, h.max(2))
}

fn sheet_name(n: u32) -> String {
    format!("storyboard_{n}.jpg")
}

/// The WebVTT of `tiles` tiles of `size`, one every `step` seconds over `duration_s`; the last
/// cue lasts to the end.
pub fn vtt(tiles: u32, step: u32, duration_s: f64, (w, h): (u32, u32)) -> String {
    let mut text = String::from("WEBVTT\n");
    let per_sheet = COLUMNS * ROWS;
    for i in 0..tiles {
        let start = f64::from(i * step);
        let end = if i + 1 == tiles {
            duration_s.max(start + 0.001)
        } else {
            f64::from((i + 1) * step)
        };
        let (sheet, at) = (i / per_sheet + 1, i % per_sheet);
        let (x, y) = ((at % COLUMNS) * w, (at / COLUMNS) * h);
        let _ = write!(
            text,
            "\n{} --> {}\n{}#xywh={x},{y},{w},{h}\n",
            timestamp(start),
            timestamp(end),
            sheet_name(sheet)
        );
    }
    text
}

/// A WebVTT timestamp of `secs`.
fn timestamp(secs: f64) -> String {
    prostream::media::webvtt::format_time((secs * 1000.0).round() as u64)
}

/// Makes the storyboard of a finished encode into `work` (tiles pass through `scratch`);
/// returns the files written, sheets first, or nothing for a video without picture.
pub async fn make(
    ffmpeg: &Path,
    work: &Path,
    scratch: &Path,
    output: &Output,
    duration_s: f64,
    limit: Duration,
) -> Result<Vec<String>, FfmpegError> {
    let Some(rung) = output.ladder.rungs.last() else {
        return Ok(Vec::new());
    };
    let step = step_secs(duration_s);
    let size = tile_size(rung.width, rung.height);
    let tiles_dir = scratch.join("storyboard");
    tokio::fs::create_dir_all(&tiles_dir)
        .await
        .map_err(|e| io_error(&tiles_dir, e))?;

    let mut tiles = Command::new(ffmpeg);
    tiles
        .args(common_args())
        .args(["-protocol_whitelist", "file", "-i"]);
    tiles.arg(work.join(format!("{}.m3u8", rung.name)));
    tiles.args([
        "-vf",
        &format!("fps=1/{step}:round=down,scale={}:{}", size.0, size.1),
        "-q:v",
        "5",
    ]);
    tiles.arg(tiles_dir.join("%05d.jpg"));
    ffmpeg::run(tiles, limit).await?;
    let count = count_files(&tiles_dir).await?;
    if count == 0 {
        return Ok(Vec::new());
    }

    let mut sheets = Command::new(ffmpeg);
    sheets.args(common_args()).args(["-framerate", "1", "-i"]);
    sheets.arg(tiles_dir.join("%05d.jpg"));
    sheets.args(["-vf", &format!("tile={COLUMNS}x{ROWS}"), "-q:v", "5"]);
    sheets.arg(work.join("storyboard_%d.jpg"));
    ffmpeg::run(sheets, limit).await?;

    let text = vtt(count, step, duration_s, size);
    tokio::fs::write(work.join(STORYBOARD), text)
        .await
        .map_err(|e| io_error(&work.join(STORYBOARD), e))?;
    let _ = tokio::fs::remove_dir_all(&tiles_dir).await;
    let mut files: Vec<String> = (1..=count.div_ceil(COLUMNS * ROWS))
        .map(sheet_name)
        .collect();
    files.push(STORYBOARD.to_owned());
    Ok(files)
}

fn common_args() -> Vec<OsString> {
    ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        .map(OsString::from)
        .to_vec()
}

async fn count_files(dir: &Path) -> Result<u32, FfmpegError> {
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| io_error(dir, e))?;
    let mut n = 0;
    while entries
        .next_entry()
        .await
        .map_err(|e| io_error(dir, e))?
        .is_some()
    {
        n += 1;
    }
    Ok(n)
}

fn io_error(path: &Path, source: std::io::Error) -> FfmpegError {
    FfmpegError::Process(process::ProcessError::Io {
        program: format!("storyboard ({})", path.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_videos_get_sparser_tiles_never_more_than_the_cap() {
        assert_eq!(step_secs(12.0), 2);
        assert_eq!(step_secs(600.0), 2);
        assert_eq!(step_secs(601.0), 3);
        assert_eq!(step_secs(3600.0), 12);
        assert!(3600.0 / f64::from(step_secs(3600.0)) <= f64::from(MAX_TILES));
    }

    #[test]
    fn tiles_keep_the_aspect_with_even_heights() {
        assert_eq!(tile_size(426, 240), (160, 90));
        assert_eq!(tile_size(240, 426), (160, 284));
        assert_eq!(tile_size(176, 144), (160, 130));
    }

    #[test]
    fn cues_walk_the_sheets_row_by_row() {
        let text = vtt(102, 2, 203.5, (160, 90));
        assert!(text.starts_with(
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nstoryboard_1.jpg#xywh=0,0,160,90\n"
        ));
        assert!(
            text.contains("00:00:22.000 --> 00:00:24.000\nstoryboard_1.jpg#xywh=160,90,160,90\n"),
            "{text}"
        );
        // Tile 100 is the first of the second sheet; the last cue lasts to the end.
        assert!(
            text.contains("00:03:20.000 --> 00:03:22.000\nstoryboard_2.jpg#xywh=0,0,160,90\n"),
            "{text}"
        );
        assert!(
            text.ends_with("00:03:22.000 --> 00:03:23.500\nstoryboard_2.jpg#xywh=160,0,160,90\n"),
            "{text}"
        );
        assert_eq!(text.matches("-->").count(), 102);
    }
}

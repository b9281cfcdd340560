//! The files a viewer downloads: a progressive MP4 of the highest rung with the default audio
//! track, and an M4A of the default audio, remuxed from the encoded HLS segments (`-c copy`:
//! no second encode, a fraction of a second for a short video). `+faststart` puts the index
//! first, so a player starts on the first bytes and seeks with ranges.

use std::{ffi::OsString, path::Path, time::Duration};

use prostream::storage::{AUDIO_DOWNLOAD, VIDEO_DOWNLOAD};
use tokio::process::Command;

use crate::{
    ffmpeg::{self, FfmpegError},
    output::Output,
};

/// Which downloads an attempt wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Downloads {
    pub video: bool,
    pub audio: bool,
}

/// The ffmpeg arguments that remux the renditions named `video` and `audio` (media playlists of
/// the attempt in `work`) into `out`.
fn remux_args(work: &Path, video: Option<&str>, audio: Option<&str>, out: &str) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        .map(OsString::from)
        .to_vec();
    let mut maps = Vec::new();
    for (n, (name, stream)) in [(video, "v"), (audio, "a")]
        .into_iter()
        .filter_map(|(name, stream)| name.map(|n| (n, stream)))
        .enumerate()
    {
        // Our own playlists and segments, read from the attempt's directory and nothing else.
        args.extend(["-protocol_whitelist", "file", "-i"].map(OsString::from));
        args.push(work.join(format!("{name}.m3u8")).into());
        maps.push(format!("{n}:{stream}:0"));
    }
    for map in maps {
        args.extend(["-map".into(), map.into()]);
    }
    args.extend(["-c", "copy", "-movflags", "+faststart"].map(OsString::from));
    args.push(work.join(out).into());
    args
}

/// Writes the downloads of a finished encode into `work`: `download.mp4` when there is video,
/// `download.m4a` when there is audio.
pub async fn make(
    ffmpeg: &Path,
    work: &Path,
    output: &Output,
    limit: Duration,
) -> Result<Downloads, FfmpegError> {
    let video = output.ladder.rungs.first().map(|r| r.name.as_str());
    let audio = output
        .audio
        .iter()
        .find(|t| t.default)
        .or(output.audio.first())
        .map(|t| t.name.as_str());
    let mut made = Downloads::default();
    if video.is_some() {
        remux(
            ffmpeg,
            remux_args(work, video, audio, VIDEO_DOWNLOAD),
            limit,
        )
        .await?;
        made.video = true;
    }
    if audio.is_some() {
        remux(ffmpeg, remux_args(work, None, audio, AUDIO_DOWNLOAD), limit).await?;
        made.audio = true;
    }
    Ok(made)
}

async fn remux(ffmpeg: &Path, args: Vec<OsString>, limit: Duration) -> Result<(), FfmpegError> {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(args);
    ffmpeg::run(cmd, limit).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn the_video_download_joins_the_top_rung_and_the_default_audio_without_encoding() {
        let args = join(&remux_args(
            Path::new("/w"),
            Some("720p"),
            Some("audio_1"),
            VIDEO_DOWNLOAD,
        ));
        assert_eq!(
            args,
            "-hide_banner -nostdin -y -loglevel error \
             -protocol_whitelist file -i /w/720p.m3u8 -protocol_whitelist file -i /w/audio_1.m3u8 \
             -map 0:v:0 -map 1:a:0 -c copy -movflags +faststart /w/download.mp4"
        );
    }

    #[test]
    fn the_audio_download_is_the_audio_alone() {
        let args = join(&remux_args(
            Path::new("/w"),
            None,
            Some("audio_0"),
            AUDIO_DOWNLOAD,
        ));
        assert!(
            args.contains("-i /w/audio_0.m3u8 -map 0:a:0 -c copy"),
            "{args}"
        );
        assert!(args.ends_with("/w/download.m4a"), "{args}");
    }
}

//! What one attempt writes, rendition by rendition, and its master playlist: an early one from
//! the targets as soon as every rendition has a segment (the video is playable), and the final
//! one from the measured segments, with the rows the database records.
//!
//! Renditions are the rungs' video, each audio track and each subtitle track. The captions an
//! owner added are not the attempt's: `captions.rs` adds them as the master is published. A rung's variant
//! plays with the audio group, so its `BANDWIDTH` and `CODECS` count the group's most demanding
//! track (RFC 8216, 4.3.4.2). An audio-only source's variant is its default track, the others its
//! group. The subtitle renditions (WebVTT, `subtitles.rs`) are written by the worker, not ffmpeg;
//! a master names them only once they are published, which the caller says.

use std::{collections::HashMap, path::Path};

use prostream::{
    db::{RenditionKind, videos::RenditionRow},
    ids::VideoId,
};

use crate::{
    ffmpeg,
    ladder::{self, Ladder},
    playlist::{self, Measured, PlaylistError, Variant},
    subtitles::{self, SubtitleTrack},
    tracks::AudioTrack,
};

/// The renditions an attempt encodes.
#[derive(Debug, Clone)]
pub struct Output {
    pub ladder: Ladder,
    /// Empty for a silent source.
    pub audio: Vec<AudioTrack>,
    /// The source's text subtitle tracks, to extract and segment.
    pub subtitles: Vec<SubtitleTrack>,
    /// What the master announces: the rate we encode (120 fps comes out at 60).
    pub frame_rate: Option<f64>,
}

/// What one rendition amounts to: measured, or for the early master its target.
#[derive(Debug, Clone)]
struct Figures {
    measured: Measured,
    codecs: String,
}

impl Output {
    /// Every rendition by name, as ffmpeg writes them.
    pub fn names(&self) -> Vec<String> {
        ffmpeg::rendition_names(&self.ladder, &self.audio)
    }

    /// The target peak of a rendition in bit/s: a rung's VBV maxrate, an audio track's bitrate.
    fn target_bps(&self, name: &str) -> u64 {
        let kbps = self
            .ladder
            .rungs
            .iter()
            .find(|r| r.name == name)
            .map_or(ladder::AUDIO_KBPS, |r| r.video_kbps);
        u64::from(kbps) * 1000
    }

    /// The master's variants and audio group from each rendition's figures.
    fn assemble(&self, figures: &HashMap<String, Figures>) -> (Vec<Variant>, Vec<AudioTrack>) {
        let audio: Vec<&Figures> = self
            .audio
            .iter()
            .filter_map(|t| figures.get(&t.name))
            .collect();
        if self.ladder.rungs.is_empty() {
            let Some(track) = self.audio.iter().find(|t| t.default).or(self.audio.first()) else {
                return (Vec::new(), Vec::new());
            };
            let Some(f) = figures.get(&track.name) else {
                return (Vec::new(), Vec::new());
            };
            let variant = Variant {
                uri: format!("{}.m3u8", track.name),
                measured: f.measured.clone(),
                codecs: f.codecs.clone(),
                resolution: None,
                frame_rate: None,
            };
            // One track is the variant alone, as a plain audio stream.
            let group = if self.audio.len() > 1 {
                self.audio.clone()
            } else {
                Vec::new()
            };
            return (vec![variant], group);
        }
        let audio_peak = audio.iter().map(|f| f.measured.peak_bps).max().unwrap_or(0);
        let audio_average = audio
            .iter()
            .map(|f| f.measured.average_bps)
            .max()
            .unwrap_or(0);
        let audio_codecs = audio.first().map(|f| f.codecs.clone());
        let variants = self
            .ladder
            .rungs
            .iter()
            .filter_map(|rung| {
                let f = figures.get(&rung.name)?;
                let codecs = match &audio_codecs {
                    Some(a) => format!("{},{a}", f.codecs),
                    None => f.codecs.clone(),
                };
                Some(Variant {
                    uri: format!("{}.m3u8", rung.name),
                    measured: Measured {
                        peak_bps: f.measured.peak_bps + audio_peak,
                        average_bps: f.measured.average_bps + audio_average,
                        ..f.measured.clone()
                    },
                    codecs,
                    resolution: Some((rung.width, rung.height)),
                    frame_rate: self.frame_rate,
                })
            })
            .collect();
        (variants, self.audio.clone())
    }
}

/// The master from the targets once every rendition has a segment and its init segment; `None`
/// while one has not. It names `subtitles`, which must be published already. The caller
/// publishes it with the captions (`captions.rs`).
pub async fn early_master(
    work: &Path,
    output: &Output,
    subtitles: &[SubtitleTrack],
) -> anyhow::Result<Option<Vec<u8>>> {
    let mut figures = HashMap::new();
    for name in output.names() {
        let (playlist_path, init) = ffmpeg::rendition_files(work, &name);
        let Ok(bytes) = tokio::fs::read(&playlist_path).await else {
            return Ok(None);
        };
        let Ok(playlist) = m3u8_rs::parse_media_playlist_res(&bytes) else {
            return Ok(None);
        };
        if playlist.segments.is_empty() || !tokio::fs::try_exists(&init).await? {
            return Ok(None);
        }
        // Nothing is measured yet: announce the cap; the final master has real figures.
        let target = output.target_bps(&name);
        let measured = Measured {
            peak_bps: target,
            average_bps: target,
            duration_s: 0.0,
            segments: playlist.segments.len(),
        };
        let codecs = ffmpeg::codecs_of(&init).await?;
        figures.insert(name, Figures { measured, codecs });
    }
    let (variants, audio) = output.assemble(&figures);
    Ok(Some(playlist::master(&variants, &audio, subtitles)))
}

/// Measures every finished rendition and returns the master playlist with the measured
/// bandwidths (for the caller to publish with the captions), and the rows to record: each rung
/// as its variant (with its audio), each audio track and each of `subtitles` (published
/// already) on its own.
pub async fn final_master(
    video_id: VideoId,
    work: &Path,
    output: &Output,
    subtitles: &[SubtitleTrack],
) -> Result<(Vec<RenditionRow>, Vec<u8>), PlaylistError> {
    let mut figures = HashMap::new();
    for name in output.names() {
        let (playlist_path, init) = ffmpeg::rendition_files(work, &name);
        let media_playlist = playlist::read_media_playlist(&playlist_path).await?;
        let measured = playlist::measure(work, &media_playlist).await?;
        let codecs = ffmpeg::codecs_of(&init)
            .await
            .map_err(|source| PlaylistError::Io {
                path: init.display().to_string(),
                source,
            })?;
        figures.insert(name, Figures { measured, codecs });
    }
    let (variants, group) = output.assemble(&figures);
    let mut rows: Vec<RenditionRow> = output
        .ladder
        .rungs
        .iter()
        .zip(&variants)
        .map(|(rung, v)| RenditionRow {
            video_id,
            name: rung.name.clone(),
            playlist: v.uri.clone(),
            kind: RenditionKind::Video,
            width: Some(rung.width as i32),
            height: Some(rung.height as i32),
            bandwidth: v.measured.peak_bps as i64,
            average_bandwidth: v.measured.average_bps as i64,
            codecs: v.codecs.clone(),
            frame_rate: output.frame_rate,
            language: None,
            label: None,
            is_default: false,
            channels: None,
            describes_video: false,
            forced: false,
            captions: false,
        })
        .collect();
    rows.extend(output.audio.iter().filter_map(|t| {
        let f = figures.get(&t.name)?;
        Some(RenditionRow {
            video_id,
            name: t.name.clone(),
            playlist: format!("{}.m3u8", t.name),
            kind: RenditionKind::Audio,
            width: None,
            height: None,
            bandwidth: f.measured.peak_bps as i64,
            average_bandwidth: f.measured.average_bps as i64,
            codecs: f.codecs.clone(),
            frame_rate: None,
            language: Some(t.language.clone()),
            label: Some(t.label.clone()),
            is_default: t.default,
            channels: Some(crate::normalize::AUDIO_CHANNELS as i32),
            describes_video: t.describes_video,
            forced: false,
            captions: false,
        })
    }));
    for t in subtitles {
        let playlist_name = format!("{}.m3u8", t.name);
        let media_playlist = playlist::read_media_playlist(&work.join(&playlist_name)).await?;
        let measured = playlist::measure(work, &media_playlist).await?;
        rows.push(RenditionRow {
            video_id,
            name: t.name.clone(),
            playlist: playlist_name,
            kind: RenditionKind::Subtitles,
            width: None,
            height: None,
            bandwidth: measured.peak_bps as i64,
            average_bandwidth: measured.average_bps as i64,
            codecs: subtitles::CODECS.to_owned(),
            frame_rate: None,
            language: Some(t.language.clone()),
            label: Some(t.label.clone()),
            is_default: t.default,
            channels: None,
            describes_video: false,
            forced: t.forced,
            captions: t.captions,
        });
    }
    Ok((rows, playlist::master(&variants, &group, subtitles)))
}

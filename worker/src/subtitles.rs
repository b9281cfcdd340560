//! Text subtitle tracks of the source as HLS subtitle renditions: each becomes a WebVTT media
//! playlist (`subs_0.m3u8`, …) of segments aligned with the video's (1 s, then 2 s), all of one
//! `EXT-X-MEDIA:TYPE=SUBTITLES` group every variant references.
//!
//! ffmpeg extracts each track to one WebVTT file (`ffmpeg::extract_subtitles`: the subtitle
//! streams alone are demuxed, the picture is not decoded a second time); this module plans the
//! tracks and cuts those files into segments (`prostream::media::webvtt`). Bitmap subtitles (PGS, DVB, VobSub) would need OCR:
//! they are dropped and listed. Everything here but [`write_renditions`] is pure and unit-tested.

use std::path::Path;

use anyhow::Context;
use prostream::{
    db::videos::DroppedStream,
    media::{
        self, ProbeInfo, SubtitleInfo,
        webvtt::{media_playlist, parse_webvtt, segment_name, segment_spans, segment_text},
    },
};

use crate::{
    playlist,
    tracks::{label_of, unique},
};

/// The subtitle group of the master playlist (the captions an owner adds join it), and what
/// marks captions for the deaf and hard of hearing there.
pub use prostream::captions::{CAPTIONS_CHARACTERISTICS, SUBTITLE_GROUP};

/// What the renditions table records as a subtitle rendition's codec (RFC 6381, ISO 14496-30).
pub const CODECS: &str = "wvtt";

/// One subtitle rendition: a text track of the source, as segmented WebVTT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtitleTrack {
    /// Index of the stream in the source (`-map 0:{input}`).
    pub input: usize,
    /// `subs_0`, `subs_1`…: also the stem of its playlist and segment files.
    pub name: String,
    /// BCP 47 (`en`, `und`).
    pub language: String,
    /// What a player's menu shows: the track's title, else its language's name; unique.
    pub label: String,
    /// The source marks it default: players show it without being asked.
    pub default: bool,
    /// Only the parts a viewer needs whatever the language (signs, foreign dialogue).
    pub forced: bool,
    /// Captions for the deaf and hard of hearing (SDH).
    pub captions: bool,
}

/// The most text subtitle tracks of a source that become renditions: a film with every
/// language of a disc has about thirty; a crafted file with thousands must not make a master (and
/// an extraction) that large. Captions added through the API have their own cap.
pub const MAX_SUBTITLE_TRACKS: usize = 32;

/// The subtitle renditions of `info` (its first [`MAX_SUBTITLE_TRACKS`] text tracks, in source
/// order) and the tracks dropped (bitmaps, `bitmap_subtitles`; past the cap,
/// `too_many_subtitle_tracks`).
pub fn plan_subtitles(info: &ProbeInfo) -> (Vec<SubtitleTrack>, Vec<DroppedStream>) {
    let (mut text, bitmaps): (Vec<&SubtitleInfo>, Vec<&SubtitleInfo>) =
        info.subtitles.iter().partition(|s| s.is_text());
    let mut dropped: Vec<DroppedStream> = bitmaps
        .into_iter()
        .map(|s| dropped_stream(s, "bitmap_subtitles"))
        .collect();
    if text.len() > MAX_SUBTITLE_TRACKS {
        let past = text.split_off(MAX_SUBTITLE_TRACKS);
        dropped.extend(
            past.into_iter()
                .map(|s| dropped_stream(s, "too_many_subtitle_tracks")),
        );
        dropped.sort_by_key(|d| d.index);
    }
    // DEFAULT=YES on one track at most: the first the source marks. Not in MP4/MOV: ffmpeg reads
    // a track's "enabled" flag as default, and muxers enable every track, so each mov_text track
    // would be shown unasked.
    let trusts_default = !info.format_name.starts_with("mov,");
    let default_index = text
        .iter()
        .find(|s| s.labels.default && trusts_default)
        .map(|s| s.index);
    let mut labels: Vec<String> = Vec::new();
    let tracks = text
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let l = &s.labels;
            let marks = [l.forced.then_some("forced"), l.captions.then_some("CC")];
            let label = unique(
                &labels,
                label_of(l, &marks, &format!("Subtitles {}", n + 1)),
            );
            labels.push(label.clone());
            SubtitleTrack {
                input: s.index,
                name: format!("subs_{n}"),
                language: media::bcp47(l.language.as_deref()),
                label,
                default: Some(s.index) == default_index,
                forced: l.forced,
                captions: l.captions,
            }
        })
        .collect();
    (tracks, dropped)
}

/// A subtitle stream the output does not carry, and why.
pub fn dropped_stream(s: &SubtitleInfo, reason: &str) -> DroppedStream {
    DroppedStream {
        index: i32::try_from(s.index).unwrap_or(i32::MAX),
        kind: "subtitle".into(),
        codec: s.codec.clone(),
        language: media::bcp47(s.labels.language.as_deref()),
        reason: reason.into(),
    }
}

/// Where ffmpeg extracts `track` to (in the attempt's scratch directory: never published).
pub fn extracted_path(scratch: &Path, track: &SubtitleTrack) -> std::path::PathBuf {
    scratch.join(format!("{}.vtt", track.name))
}

/// Cuts each track's extracted WebVTT (in `scratch`) into segments and a playlist in `work`.
/// Returns the files written, in the order to publish them: every segment, then the playlists.
pub async fn write_renditions(
    work: &Path,
    scratch: &Path,
    tracks: &[SubtitleTrack],
    duration_s: f64,
    mpegts: u64,
) -> anyhow::Result<Vec<String>> {
    let spans = segment_spans(duration_s);
    let mut segments = Vec::new();
    let mut playlists = Vec::new();
    for track in tracks {
        let path = extracted_path(scratch, track);
        let bytes = tokio::fs::read(&path)
            .await
            .with_context(|| format!("reading the extracted subtitles {}", path.display()))?;
        let cues = parse_webvtt(&String::from_utf8_lossy(&bytes));
        for (n, span) in spans.iter().enumerate() {
            let name = segment_name(&track.name, n);
            playlist::write_atomically(work, &name, segment_text(&cues, *span, mpegts).as_bytes())
                .await
                .with_context(|| format!("writing {name}"))?;
            segments.push(name);
        }
        let name = format!("{}.m3u8", track.name);
        playlist::write_atomically(work, &name, media_playlist(&track.name, &spans).as_bytes())
            .await
            .with_context(|| format!("writing {name}"))?;
        playlists.push(name);
    }
    segments.extend(playlists);
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prostream::media::TrackLabels;

    fn sub(index: usize, codec: &str, language: Option<&str>, labels: TrackLabels) -> SubtitleInfo {
        SubtitleInfo {
            index,
            codec: codec.into(),
            labels: TrackLabels {
                language: language.map(Into::into),
                ..labels
            },
        }
    }

    fn info(subtitles: Vec<SubtitleInfo>) -> ProbeInfo {
        ProbeInfo {
            format_name: "matroska,webm".into(),
            duration_s: 5.0,
            start_s: 0.0,
            video: None,
            audio: None,
            audio_tracks: Vec::new(),
            subtitles,
            cover: None,
        }
    }

    #[test]
    fn text_tracks_become_renditions_and_bitmaps_are_dropped() {
        let plain = TrackLabels::default;
        let (tracks, dropped) = plan_subtitles(&info(vec![
            sub(2, "subrip", Some("eng"), plain()),
            sub(
                3,
                "ass",
                Some("eng"),
                TrackLabels {
                    captions: true,
                    default: true,
                    ..plain()
                },
            ),
            sub(4, "hdmv_pgs_subtitle", Some("ger"), plain()),
            sub(
                5,
                "mov_text",
                Some("fre"),
                TrackLabels {
                    forced: true,
                    default: true,
                    ..plain()
                },
            ),
            sub(
                6,
                "webvtt",
                None,
                TrackLabels {
                    title: Some("Commentary".into()),
                    ..plain()
                },
            ),
            sub(7, "subrip", None, plain()),
            sub(8, "dvd_subtitle", None, plain()),
        ]));
        let summary: Vec<_> = tracks
            .iter()
            .map(|t| {
                (
                    t.input,
                    t.name.as_str(),
                    t.language.as_str(),
                    t.label.as_str(),
                    t.default,
                    t.forced,
                    t.captions,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (2, "subs_0", "en", "English", false, false, false),
                (3, "subs_1", "en", "English (CC)", true, false, true),
                (5, "subs_2", "fr", "Français (forced)", false, true, false),
                (6, "subs_3", "und", "Commentary", false, false, false),
                (7, "subs_4", "und", "Subtitles 5", false, false, false),
            ]
        );
        let gone: Vec<_> = dropped
            .iter()
            .map(|d| {
                (
                    d.index,
                    d.kind.as_str(),
                    d.language.as_str(),
                    d.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            gone,
            [
                (4, "subtitle", "de", "bitmap_subtitles"),
                (8, "subtitle", "und", "bitmap_subtitles")
            ]
        );
    }

    #[test]
    fn text_tracks_past_the_cap_are_dropped_and_named() {
        let many = (0..MAX_SUBTITLE_TRACKS + 3)
            .map(|n| sub(n + 1, "subrip", Some("eng"), TrackLabels::default()))
            .collect();
        let (tracks, dropped) = plan_subtitles(&info(many));
        assert_eq!(tracks.len(), MAX_SUBTITLE_TRACKS);
        assert_eq!(tracks.last().unwrap().input, MAX_SUBTITLE_TRACKS);
        let gone: Vec<_> = dropped
            .iter()
            .map(|d| (d.index, d.reason.as_str()))
            .collect();
        let first_dropped = MAX_SUBTITLE_TRACKS as i32 + 1;
        assert_eq!(
            gone,
            (first_dropped..first_dropped + 3)
                .map(|i| (i, "too_many_subtitle_tracks"))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn mp4_subtitles_are_not_default_since_every_track_there_reads_as_default() {
        let mut mp4 = info(vec![sub(
            1,
            "mov_text",
            Some("deu"),
            TrackLabels {
                default: true,
                ..TrackLabels::default()
            },
        )]);
        mp4.format_name = "mov,mp4,m4a,3gp,3g2,mj2".into();
        let (tracks, _) = plan_subtitles(&mp4);
        assert!(!tracks[0].default);
        assert_eq!(tracks[0].label, "Deutsch");
    }

    #[test]
    fn equal_labels_are_numbered() {
        let (tracks, _) = plan_subtitles(&info(vec![
            sub(0, "subrip", Some("eng"), TrackLabels::default()),
            sub(1, "subrip", Some("eng"), TrackLabels::default()),
        ]));
        let labels: Vec<_> = tracks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["English", "English 2"]);
    }
}

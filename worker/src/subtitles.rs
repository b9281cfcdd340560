//! Text subtitle tracks of the source as HLS subtitle renditions: each becomes a WebVTT media
//! playlist (`subs_0.m3u8`, …) of segments aligned with the video's (1 s, then 2 s), all of one
//! `EXT-X-MEDIA:TYPE=SUBTITLES` group every variant references.
//!
//! ffmpeg extracts each track to one WebVTT file (`ffmpeg::extract_subtitles`: the subtitle
//! streams alone are demuxed, the picture is not decoded a second time); this module plans the
//! tracks and cuts those files into segments. Bitmap subtitles (PGS, DVB, VobSub) would need OCR:
//! they are dropped and listed. Everything here but [`write_renditions`] is pure and unit-tested.

use std::{fmt::Write as _, path::Path};

use anyhow::Context;
use prostream::{
    db::videos::DroppedStream,
    media::{self, ProbeInfo, SubtitleInfo},
};

use crate::{
    ffmpeg::{FIRST_SEGMENT_SECS, SEGMENT_SECS},
    playlist,
    tracks::{label_of, unique},
};

/// The `GROUP-ID` of the subtitle renditions in the master playlist.
pub const SUBTITLE_GROUP: &str = "subs";

/// What the renditions table records as a subtitle rendition's codec (RFC 6381, ISO 14496-30).
pub const CODECS: &str = "wvtt";

/// The `CHARACTERISTICS` of captions for the deaf and hard of hearing: they transcribe the
/// dialogue and describe music and sound (Apple's HLS authoring specification).
pub const CAPTIONS_CHARACTERISTICS: &str =
    "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound";

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

/// The subtitle renditions of `info` (its text tracks, in source order) and the tracks dropped
/// (bitmaps, `bitmap_subtitles`).
pub fn plan_subtitles(info: &ProbeInfo) -> (Vec<SubtitleTrack>, Vec<DroppedStream>) {
    let (text, bitmaps): (Vec<&SubtitleInfo>, Vec<&SubtitleInfo>) =
        info.subtitles.iter().partition(|s| s.is_text());
    let dropped = bitmaps
        .into_iter()
        .map(|s| dropped(s, "bitmap_subtitles"))
        .collect();
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
pub fn dropped(s: &SubtitleInfo, reason: &str) -> DroppedStream {
    DroppedStream {
        index: i32::try_from(s.index).unwrap_or(i32::MAX),
        kind: "subtitle".into(),
        codec: s.codec.clone(),
        language: media::bcp47(s.labels.language.as_deref()),
        reason: reason.into(),
    }
}

/// One WebVTT cue, times in milliseconds of the source's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    pub id: Option<String>,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Cue settings after the end time (`line:90% align:center`), as written.
    pub settings: String,
    pub text: String,
}

/// The cues of a WebVTT file (as ffmpeg writes it: `mm:ss.ttt` or `hh:mm:ss.ttt`). `NOTE`,
/// `STYLE` and `REGION` blocks, and blocks without a valid timing line, are skipped.
pub fn parse_webvtt(text: &str) -> Vec<Cue> {
    let text = text.trim_start_matches('\u{feff}').replace("\r\n", "\n");
    let mut cues = Vec::new();
    // Blocks are separated by blank lines; the first is the header.
    for block in text.split("\n\n").skip(1) {
        let lines: Vec<&str> = block.lines().collect();
        let Some(timing_at) = lines.iter().position(|l| l.contains("-->")) else {
            continue;
        };
        // A cue's identifier is the one line before its timing line.
        if timing_at > 1 || lines.first().is_some_and(|l| l.starts_with("NOTE")) {
            continue;
        }
        let Some((start, rest)) = lines[timing_at].split_once("-->") else {
            continue;
        };
        let mut rest = rest.split_whitespace();
        let (Some(start_ms), Some(end_ms)) =
            (parse_time(start.trim()), rest.next().and_then(parse_time))
        else {
            continue;
        };
        if end_ms <= start_ms {
            continue;
        }
        cues.push(Cue {
            id: (timing_at == 1).then(|| lines[0].to_owned()),
            start_ms,
            end_ms,
            settings: rest.collect::<Vec<_>>().join(" "),
            text: lines[timing_at + 1..].join("\n"),
        });
    }
    cues
}

/// `01:02:03.456` or `02:03.456` in milliseconds.
fn parse_time(text: &str) -> Option<u64> {
    let (clock, millis) = text.split_once('.')?;
    if millis.len() != 3 {
        return None;
    }
    let millis: u64 = millis.parse().ok()?;
    let parts: Vec<u64> = clock
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (h, m, s) = match parts.as_slice() {
        [m, s] => (0, *m, *s),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    (m < 60 && s < 60).then_some(((h * 60 + m) * 60 + s) * 1000 + millis)
}

/// `hh:mm:ss.ttt`, a WebVTT timestamp.
pub(crate) fn format_time(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The segments' spans in milliseconds, as the video's: the first [`FIRST_SEGMENT_SECS`], then
/// [`SEGMENT_SECS`] each, the last up to `duration_s`. Always at least one.
pub fn segment_spans(duration_s: f64) -> Vec<(u64, u64)> {
    let end = (duration_s.max(0.0) * 1000.0).ceil() as u64;
    let mut spans = Vec::new();
    let mut start = 0;
    let mut length = u64::from(FIRST_SEGMENT_SECS) * 1000;
    loop {
        let stop = (start + length).min(end.max(1));
        spans.push((start, stop));
        if stop >= end {
            return spans;
        }
        start = stop;
        length = u64::from(SEGMENT_SECS) * 1000;
    }
}

/// One WebVTT segment: the header, with `X-TIMESTAMP-MAP` saying that cue time 0 is media time
/// `mpegts` (90 kHz), and every cue that overlaps `span`, whole: a cue spanning a boundary is in
/// each segment it overlaps, so a player that starts in the middle shows it (RFC 8216, 3.5).
pub fn segment_text(cues: &[Cue], span: (u64, u64), mpegts: u64) -> String {
    let mut out = format!("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000\n");
    for cue in cues
        .iter()
        .filter(|c| c.start_ms < span.1 && c.end_ms > span.0)
    {
        out.push('\n');
        if let Some(id) = &cue.id {
            out.push_str(id);
            out.push('\n');
        }
        let _ = write!(
            out,
            "{} --> {}",
            format_time(cue.start_ms),
            format_time(cue.end_ms)
        );
        if !cue.settings.is_empty() {
            out.push(' ');
            out.push_str(&cue.settings);
        }
        out.push('\n');
        out.push_str(&cue.text);
        out.push('\n');
    }
    out
}

/// The name of segment `n` of `track`.
pub fn segment_name(track: &str, n: usize) -> String {
    format!("{track}_{n:05}.vtt")
}

/// A finished (`VOD`, `ENDLIST`) media playlist of `track`'s segments, one per span.
pub fn media_playlist(track: &str, spans: &[(u64, u64)]) -> String {
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{SEGMENT_SECS}\n\
         #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n"
    );
    for (n, (start, end)) in spans.iter().enumerate() {
        let secs = (end - start) as f64 / 1000.0;
        let _ = writeln!(out, "#EXTINF:{secs:.3},\n{}", segment_name(track, n));
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
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

    #[test]
    fn ffmpeg_webvtt_parses_into_cues() {
        let text = "WEBVTT\n\n00:00.477 --> 00:01.477\nHello <i>world</i>\n\n\
                    NOTE a comment\n--> not a cue\n\n\
                    intro\n01:00:01.977 --> 01:00:04.477 line:90% align:center\nSecond line\nspans\n\n\
                    00:05.000 --> 00:04.000\nbackwards\n\n";
        let cues = parse_webvtt(text);
        assert_eq!(
            cues,
            [
                Cue {
                    id: None,
                    start_ms: 477,
                    end_ms: 1477,
                    settings: String::new(),
                    text: "Hello <i>world</i>".into(),
                },
                Cue {
                    id: Some("intro".into()),
                    start_ms: 3_601_977,
                    end_ms: 3_604_477,
                    settings: "line:90% align:center".into(),
                    text: "Second line\nspans".into(),
                },
            ]
        );
        assert_eq!(
            parse_webvtt("WEBVTT\r\n\r\n00:00.000 --> 00:00.500\r\nx\r\n").len(),
            1
        );
    }

    #[test]
    fn spans_follow_the_video_segments() {
        assert_eq!(
            segment_spans(5.5),
            [(0, 1000), (1000, 3000), (3000, 5000), (5000, 5500)]
        );
        assert_eq!(segment_spans(3.0), [(0, 1000), (1000, 3000)]);
        assert_eq!(segment_spans(0.4), [(0, 400)]);
        assert_eq!(segment_spans(0.0), [(0, 1)]);
    }

    #[test]
    fn a_cue_spanning_a_boundary_is_in_every_segment_it_overlaps() {
        let cue = |start_ms, end_ms, text: &str| Cue {
            id: None,
            start_ms,
            end_ms,
            settings: String::new(),
            text: text.into(),
        };
        let cues = [cue(500, 1500, "one"), cue(3000, 3600, "two")];
        assert_eq!(
            segment_text(&cues, (0, 1000), 6000),
            "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:6000,LOCAL:00:00:00.000\n\n\
             00:00:00.500 --> 00:00:01.500\none\n"
        );
        let second = segment_text(&cues, (1000, 3000), 6000);
        assert!(
            second.contains("one") && !second.contains("two"),
            "{second}"
        );
        let third = segment_text(&cues, (3000, 5000), 6000);
        assert!(!third.contains("one") && third.contains("two"), "{third}");
    }

    #[test]
    fn the_media_playlist_is_finished_and_parses() {
        let text = media_playlist("subs_0", &segment_spans(3.5));
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert!(parsed.end_list);
        assert_eq!(parsed.target_duration, 2);
        assert_eq!(parsed.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
        let segments: Vec<_> = parsed
            .segments
            .iter()
            .map(|s| (s.uri.as_str(), s.duration))
            .collect();
        assert_eq!(
            segments,
            [
                ("subs_0_00000.vtt", 1.0),
                ("subs_0_00001.vtt", 2.0),
                ("subs_0_00002.vtt", 0.5)
            ]
        );
    }
}

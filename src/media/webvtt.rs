//! WebVTT as HLS carries it: cues, and segments cut to the video's (1 s, then 2 s), each with an
//! `X-TIMESTAMP-MAP` that puts cue time 0 at the media's first presentation time. The worker cuts
//! the source's subtitle tracks with it, the API the captions an owner uploads (`captions`).
//! Everything here is pure.

use std::fmt::Write as _;

use super::{
    HLS_FIRST_SEGMENT_SECS as FIRST_SEGMENT_SECS, HLS_TARGET_DURATION_SECS as SEGMENT_SECS,
};

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
pub(crate) fn parse_time(text: &str) -> Option<u64> {
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
pub fn format_time(ms: u64) -> String {
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
        write_cue(&mut out, cue);
    }
    out
}

/// Appends `cue` as a WebVTT block: a blank line, its identifier if any, the timing line with its
/// settings, the text.
pub fn write_cue(out: &mut String, cue: &Cue) {
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

#[cfg(test)]
mod tests {
    use super::*;

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

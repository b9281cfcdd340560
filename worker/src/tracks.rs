//! What the source carries beside the picture, and what of it the HLS asset keeps: every audio
//! track (up to [`MAX_AUDIO_TRACKS`]) becomes an alternate audio rendition of one group, which
//! every video variant references, so each track is encoded once, not once per rung. What is
//! not kept is listed with the reason, for the API to say so. Pure and unit-tested.

use prostream::{
    db::videos::DroppedStream,
    media::{self, AudioInfo, ProbeInfo, TrackLabels},
};

/// More audio tracks than this are dropped (the first ones in the file are kept, and the
/// default one always): players list them all in one menu, and each costs an encode.
pub const MAX_AUDIO_TRACKS: usize = 8;

/// The `GROUP-ID` of the audio renditions in the master playlist.
pub const AUDIO_GROUP: &str = "audio";

/// One audio rendition: a track of the source, encoded to AAC stereo 48 kHz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    /// Index of the stream in the source (`-map 0:{input}`).
    pub input: usize,
    /// `audio_0`, `audio_1`…: also the stem of its playlist and segment files.
    pub name: String,
    /// BCP 47 (`en`, `und`).
    pub language: String,
    /// What a player's menu shows: the track's title, else its language's name; unique.
    pub label: String,
    /// The source's default track (or its first): the one players start with.
    pub default: bool,
    /// An audio description for the visually impaired.
    pub describes_video: bool,
}

/// The audio renditions of `info`, in source order, and the audio tracks dropped.
pub fn plan_audio(info: &ProbeInfo) -> (Vec<AudioTrack>, Vec<DroppedStream>) {
    let default_index = info.audio.as_ref().map(|a| a.index);
    // The default track, then the others in file order, up to the cap.
    let mut kept: Vec<&AudioInfo> = info
        .audio_tracks
        .iter()
        .filter(|a| Some(a.index) == default_index)
        .chain(
            info.audio_tracks
                .iter()
                .filter(|a| Some(a.index) != default_index),
        )
        .take(MAX_AUDIO_TRACKS)
        .collect();
    kept.sort_by_key(|a| a.index);
    let dropped = info
        .audio_tracks
        .iter()
        .filter(|a| !kept.iter().any(|k| k.index == a.index))
        .map(|a| DroppedStream {
            index: i32::try_from(a.index).unwrap_or(i32::MAX),
            kind: "audio".into(),
            codec: a.codec.clone(),
            language: media::bcp47(a.labels.language.as_deref()),
            reason: "too_many_audio_tracks".into(),
        })
        .collect();
    let mut labels: Vec<String> = Vec::new();
    let tracks = kept
        .iter()
        .enumerate()
        .map(|(n, a)| {
            let label = unique(&labels, base_label(a, n));
            labels.push(label.clone());
            AudioTrack {
                input: a.index,
                name: format!("audio_{n}"),
                language: media::bcp47(a.labels.language.as_deref()),
                label,
                default: Some(a.index) == default_index,
                describes_video: a.labels.describes_video,
            }
        })
        .collect();
    (tracks, dropped)
}

/// The track's title; else its language's name, marked when it describes the video; else
/// "Track N" (1-based).
fn base_label(a: &AudioInfo, n: usize) -> String {
    let mark = a.labels.describes_video.then_some("audio description");
    label_of(&a.labels, &[mark], &format!("Track {}", n + 1))
}

/// What a player's menu shows for a track: its title (at most 64 characters); else its language's
/// name with the `marks` that apply in parentheses ("English (audio description)"); else
/// `fallback`.
pub(crate) fn label_of(labels: &TrackLabels, marks: &[Option<&str>], fallback: &str) -> String {
    if let Some(title) = labels.title.as_deref().map(str::trim)
        && !title.is_empty()
    {
        return title.chars().take(64).collect();
    }
    let Some(name) = media::language_name(labels.language.as_deref()) else {
        return fallback.to_owned();
    };
    let marks: Vec<&str> = marks.iter().flatten().copied().collect();
    if marks.is_empty() {
        name
    } else {
        format!("{name} ({})", marks.join(", "))
    }
}

/// `label`, or `label 2`, `label 3`…: HLS wants every `NAME` of a group to differ.
pub(crate) fn unique(taken: &[String], label: String) -> String {
    if !taken.contains(&label) {
        return label;
    }
    (2..)
        .map(|i| format!("{label} {i}"))
        .find(|l| !taken.contains(l))
        .expect("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(index: usize, language: Option<&str>, title: Option<&str>) -> AudioInfo {
        AudioInfo {
            index,
            codec: "aac".into(),
            channels: 2,
            sample_rate: Some(48_000),
            labels: TrackLabels {
                language: language.map(Into::into),
                title: title.map(Into::into),
                ..TrackLabels::default()
            },
        }
    }

    fn info(tracks: Vec<AudioInfo>, default: usize) -> ProbeInfo {
        ProbeInfo {
            format_name: "matroska,webm".into(),
            duration_s: 2.0,
            start_s: 0.0,
            video: None,
            audio: tracks.iter().find(|a| a.index == default).cloned(),
            audio_tracks: tracks,
            subtitles: Vec::new(),
            cover: None,
        }
    }

    #[test]
    fn every_track_becomes_a_rendition_with_its_language_and_name() {
        let mut description = track(3, Some("eng"), None);
        description.labels.describes_video = true;
        let (tracks, dropped) = plan_audio(&info(
            vec![
                track(1, Some("eng"), Some("English")),
                track(2, Some("fre"), None),
                description,
            ],
            2,
        ));
        assert!(dropped.is_empty());
        let summary: Vec<_> = tracks
            .iter()
            .map(|t| {
                (
                    t.input,
                    t.name.as_str(),
                    t.language.as_str(),
                    t.label.as_str(),
                    t.default,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (1, "audio_0", "en", "English", false),
                (2, "audio_1", "fr", "Français", true),
                (3, "audio_2", "en", "English (audio description)", false),
            ]
        );
        assert!(tracks[2].describes_video);
    }

    #[test]
    fn names_are_unique_and_untagged_tracks_are_numbered() {
        let (tracks, _) = plan_audio(&info(
            vec![
                track(0, Some("eng"), None),
                track(1, Some("eng"), None),
                track(2, None, None),
            ],
            0,
        ));
        let labels: Vec<_> = tracks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["English", "English 2", "Track 3"]);
        assert_eq!(tracks[2].language, "und");
    }

    #[test]
    fn tracks_past_the_cap_are_dropped_but_never_the_default() {
        let all: Vec<_> = (0..10).map(|i| track(i, Some("deu"), None)).collect();
        let (tracks, dropped) = plan_audio(&info(all, 9));
        assert_eq!(tracks.len(), MAX_AUDIO_TRACKS);
        let kept: Vec<_> = tracks.iter().map(|t| t.input).collect();
        assert_eq!(kept, [0, 1, 2, 3, 4, 5, 6, 9]);
        assert!(tracks.last().unwrap().default);
        let gone: Vec<_> = dropped
            .iter()
            .map(|d| (d.index, d.reason.as_str()))
            .collect();
        assert_eq!(
            gone,
            [(7, "too_many_audio_tracks"), (8, "too_many_audio_tracks")]
        );
    }

    #[test]
    fn a_silent_source_has_no_audio_renditions() {
        assert_eq!(plan_audio(&info(Vec::new(), 0)), (Vec::new(), Vec::new()));
    }
}

//! After the encode: measure each rendition and write the master playlist.
//!
//! ffmpeg's own `BANDWIDTH` is derived from maxrate and understates real
//! peaks by 3–8 % (docs/design.md, "Pitfalls"), and its master lacks
//! `EXT-X-INDEPENDENT-SEGMENTS`, so we write the master ourselves from the
//! segments on disk: `BANDWIDTH` is the peak segment bitrate, as the HLS spec
//! defines it, and `AVERAGE-BANDWIDTH` the mean over the whole rendition.

use std::path::Path;

use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, MasterPlaylist, MediaPlaylist, Resolution,
    VariantStream,
};

use crate::{
    normalize::AUDIO_CHANNELS,
    subtitles::{CAPTIONS_CHARACTERISTICS, SUBTITLE_GROUP, SubtitleTrack},
    tracks::{AUDIO_GROUP, AudioTrack},
};

pub use prostream::captions::MASTER;

/// What the segments of one rendition measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub peak_bps: u64,
    pub average_bps: u64,
    pub duration_s: f64,
    pub segments: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaylistError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid media playlist: {reason}")]
    Invalid { path: String, reason: String },
}

pub async fn read_media_playlist(path: &Path) -> Result<MediaPlaylist, PlaylistError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| PlaylistError::Io {
            path: path.display().to_string(),
            source,
        })?;
    m3u8_rs::parse_media_playlist_res(&bytes).map_err(|e| PlaylistError::Invalid {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Measures a finished rendition from its playlist and segment sizes.
pub async fn measure(dir: &Path, playlist: &MediaPlaylist) -> Result<Measured, PlaylistError> {
    if !playlist.end_list || playlist.segments.is_empty() {
        return Err(PlaylistError::Invalid {
            path: dir.display().to_string(),
            reason: "the playlist is unfinished or empty".into(),
        });
    }
    let mut peak = 0u64;
    let mut total_bits = 0u64;
    let mut total_secs = 0f64;
    for segment in &playlist.segments {
        let path = dir.join(&segment.uri);
        let bytes = tokio::fs::metadata(&path)
            .await
            .map_err(|source| PlaylistError::Io {
                path: path.display().to_string(),
                source,
            })?
            .len();
        let secs = f64::from(segment.duration).max(0.001);
        peak = peak.max((bytes as f64 * 8.0 / secs).ceil() as u64);
        total_bits += bytes * 8;
        total_secs += secs;
    }
    Ok(Measured {
        peak_bps: peak,
        average_bps: (total_bits as f64 / total_secs).ceil() as u64,
        duration_s: total_secs,
        segments: playlist.segments.len(),
    })
}

/// One variant of the master playlist: a rung (its bandwidth and codecs counting the audio it
/// plays with), or the one audio track of an audio-only source.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub uri: String,
    pub measured: Measured,
    pub codecs: String,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

/// The master playlist, highest bandwidth first. With `audio` tracks, each is an `EXT-X-MEDIA`
/// of one group and every variant references that group; the same for `subtitles`.
pub fn master(variants: &[Variant], audio: &[AudioTrack], subtitles: &[SubtitleTrack]) -> Vec<u8> {
    let mut sorted: Vec<&Variant> = variants.iter().collect();
    sorted.sort_by_key(|v| std::cmp::Reverse(v.measured.peak_bps));
    let group = (!audio.is_empty()).then(|| AUDIO_GROUP.to_owned());
    let subtitle_group = (!subtitles.is_empty()).then(|| SUBTITLE_GROUP.to_owned());
    let playlist = MasterPlaylist {
        version: Some(7),
        independent_segments: true,
        alternatives: audio
            .iter()
            .map(audio_media)
            .chain(subtitles.iter().map(subtitle_media))
            .collect(),
        variants: sorted
            .into_iter()
            .map(|v| VariantStream {
                uri: v.uri.clone(),
                bandwidth: v.measured.peak_bps,
                average_bandwidth: Some(v.measured.average_bps),
                codecs: Some(v.codecs.clone()),
                resolution: v.resolution.map(|(w, h)| Resolution {
                    width: w.into(),
                    height: h.into(),
                }),
                frame_rate: v.frame_rate.map(|f| (f * 1000.0).round() / 1000.0),
                audio: group.clone(),
                subtitles: subtitle_group.clone(),
                ..VariantStream::default()
            })
            .collect(),
        ..MasterPlaylist::default()
    };
    let mut out = Vec::new();
    playlist
        .write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

/// The `EXT-X-MEDIA:TYPE=AUDIO` of one track.
fn audio_media(track: &AudioTrack) -> AlternativeMedia {
    AlternativeMedia {
        media_type: AlternativeMediaType::Audio,
        uri: Some(format!("{}.m3u8", track.name)),
        group_id: AUDIO_GROUP.to_owned(),
        language: Some(track.language.clone()),
        name: track.label.clone(),
        default: track.default,
        autoselect: true,
        // Players pick an audio description only when the viewer asked for one.
        characteristics: track
            .describes_video
            .then(|| "public.accessibility.describes-video".to_owned()),
        channels: Some(AUDIO_CHANNELS.to_string()),
        ..AlternativeMedia::default()
    }
}

/// The `EXT-X-MEDIA:TYPE=SUBTITLES` of one track.
fn subtitle_media(track: &SubtitleTrack) -> AlternativeMedia {
    AlternativeMedia {
        media_type: AlternativeMediaType::Subtitles,
        uri: Some(format!("{}.m3u8", track.name)),
        group_id: SUBTITLE_GROUP.to_owned(),
        language: Some(track.language.clone()),
        name: track.label.clone(),
        default: track.default,
        // RFC 8216 4.3.4.1: FORCED=YES tracks are chosen automatically, so AUTOSELECT must be YES.
        autoselect: true,
        forced: track.forced,
        // Players offer captions to viewers who asked for them in their accessibility settings.
        characteristics: track.captions.then(|| CAPTIONS_CHARACTERISTICS.to_owned()),
        ..AlternativeMedia::default()
    }
}

/// Writes `contents` to `dir/name` through a temporary file and a rename, so
/// a reader never sees half of it.
pub async fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, contents).await?;
    tokio::fs::rename(&tmp, dir.join(name)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(uri: &str, peak: u64, res: Option<(u32, u32)>) -> Variant {
        Variant {
            uri: uri.into(),
            measured: Measured {
                peak_bps: peak,
                average_bps: peak * 9 / 10,
                duration_s: 12.0,
                segments: 3,
            },
            codecs: "avc1.64001f,mp4a.40.2".into(),
            resolution: res,
            frame_rate: Some(29.97002997),
        }
    }

    #[test]
    fn the_master_lists_every_attribute_highest_first() {
        let text = String::from_utf8(master(
            &[
                variant("480p.m3u8", 1_500_000, Some((854, 480))),
                variant("720p.m3u8", 3_000_000, Some((1280, 720))),
            ],
            &[],
            &[],
        ))
        .unwrap();
        assert!(text.contains("#EXT-X-INDEPENDENT-SEGMENTS"), "{text}");
        let first = text.find("720p.m3u8").unwrap();
        assert!(first < text.find("480p.m3u8").unwrap());
        assert!(text.contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2700000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.97"
        ), "{text}");
        // It parses back with the same crate.
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.variants.len(), 2);
    }

    #[test]
    fn audio_tracks_are_one_group_every_variant_references() {
        let track = |n: usize, language: &str, label: &str, default, describes_video| AudioTrack {
            input: n + 1,
            name: format!("audio_{n}"),
            language: language.into(),
            label: label.into(),
            default,
            describes_video,
        };
        let text = String::from_utf8(master(
            &[variant("720p.m3u8", 3_000_000, Some((1280, 720)))],
            &[
                track(0, "en", "English", true, false),
                track(1, "fr", "Français", false, false),
                track(2, "en", "English (audio description)", false, true),
            ],
            &[],
        ))
        .unwrap();
        assert!(text.contains(
            "#EXT-X-MEDIA:TYPE=AUDIO,URI=\"audio_0.m3u8\",GROUP-ID=\"audio\",LANGUAGE=\"en\",NAME=\"English\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\""
        ), "{text}");
        assert!(text.contains("NAME=\"Français\",AUTOSELECT=YES"), "{text}");
        assert!(
            text.contains("CHARACTERISTICS=\"public.accessibility.describes-video\""),
            "{text}"
        );
        assert!(text.contains("AUDIO=\"audio\""), "{text}");
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.alternatives.len(), 3);
        assert_eq!(parsed.variants[0].audio.as_deref(), Some("audio"));
    }

    #[test]
    fn subtitle_tracks_are_one_group_every_variant_references() {
        let sub =
            |n: usize, language: &str, label: &str, default, forced, captions| SubtitleTrack {
                input: n + 2,
                name: format!("subs_{n}"),
                language: language.into(),
                label: label.into(),
                default,
                forced,
                captions,
            };
        let text = String::from_utf8(master(
            &[
                variant("720p.m3u8", 3_000_000, Some((1280, 720))),
                variant("360p.m3u8", 900_000, Some((640, 360))),
            ],
            &[],
            &[
                sub(0, "en", "English (CC)", true, false, true),
                sub(1, "fr", "Français (forced)", false, true, false),
            ],
        ))
        .unwrap();
        assert!(
            text.contains(
                "#EXT-X-MEDIA:TYPE=SUBTITLES,URI=\"subs_0.m3u8\",GROUP-ID=\"subs\",LANGUAGE=\"en\",NAME=\"English (CC)\",DEFAULT=YES,AUTOSELECT=YES,CHARACTERISTICS=\"public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound\""
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "#EXT-X-MEDIA:TYPE=SUBTITLES,URI=\"subs_1.m3u8\",GROUP-ID=\"subs\",LANGUAGE=\"fr\",NAME=\"Français (forced)\",AUTOSELECT=YES,FORCED=YES\n"
            ),
            "{text}"
        );
        assert!(!text.contains("AUDIO="), "no audio group: {text}");
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.alternatives.len(), 2);
        assert!(
            parsed
                .variants
                .iter()
                .all(|v| v.subtitles.as_deref() == Some("subs")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn measuring_reads_the_real_segment_sizes() {
        let dir = std::env::temp_dir().join(format!("prostream-measure-{}", std::process::id()));
        tokio::fs::create_dir_all(&dir).await.unwrap();
        tokio::fs::write(dir.join("a.m4s"), vec![0u8; 1000])
            .await
            .unwrap();
        tokio::fs::write(dir.join("b.m4s"), vec![0u8; 250])
            .await
            .unwrap();
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\na.m4s\n#EXTINF:1.0,\nb.m4s\n#EXT-X-ENDLIST\n";
        let playlist = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        let m = measure(&dir, &playlist).await.unwrap();
        assert_eq!(m.peak_bps, 2000);
        assert_eq!(m.average_bps, 2000);
        assert_eq!(m.segments, 2);
        tokio::fs::remove_dir_all(&dir).await.unwrap();
    }
}

//! ffprobe's JSON (`-show_format -show_streams`) and what we take from it:
//! the one video stream to transcode, the one audio stream to keep, and a
//! cover image. Pure, so every decision is unit-tested over real ffprobe
//! output (`tests/fixtures/ffprobe/`).

use serde::Deserialize;

use super::{
    AudioInfo, Color, CoverInfo, ProbeError, ProbeInfo, Rational, SubtitleInfo, TrackLabels,
    VideoInfo,
};

/// Parses ffprobe's JSON into what we need to know about the file.
pub fn parse(json: &[u8]) -> Result<ProbeInfo, ProbeError> {
    let info = parse_lenient(json)?;
    if info.duration_s > 0.0 {
        Ok(info)
    } else {
        Err(ProbeError::Corrupt(
            "the file does not say how long it is".into(),
        ))
    }
}

/// As [`parse`], but a file that does not say how long it is (a WebM that
/// a browser's MediaRecorder streamed out) gets `duration_s` 0, to be measured.
pub(super) fn parse_lenient(json: &[u8]) -> Result<ProbeInfo, ProbeError> {
    let parsed: FfprobeOutput = serde_json::from_slice(json)
        .map_err(|e| ProbeError::Corrupt(format!("ffprobe output unreadable: {e}")))?;
    parsed.into_info()
}

#[derive(Debug, Deserialize)]
struct FfprobeOutput {
    #[serde(default)]
    streams: Vec<FfprobeStream>,
    format: Option<FfprobeFormat>,
}

#[derive(Debug, Deserialize)]
struct FfprobeFormat {
    format_name: String,
    duration: Option<String>,
    start_time: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FfprobeStream {
    index: usize,
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    sample_aspect_ratio: Option<String>,
    pix_fmt: Option<String>,
    color_range: Option<String>,
    color_space: Option<String>,
    color_transfer: Option<String>,
    color_primaries: Option<String>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    bit_rate: Option<String>,
    channels: Option<u32>,
    sample_rate: Option<String>,
    duration: Option<String>,
    /// Frames the container's index counts (MP4, MOV, AVI); absent from Matroska and MPEG-TS.
    nb_frames: Option<String>,
    #[serde(default)]
    disposition: Disposition,
    #[serde(default)]
    side_data_list: Vec<SideData>,
    #[serde(default)]
    tags: Tags,
}

#[derive(Debug, Default, Deserialize)]
struct Disposition {
    #[serde(default)]
    default: u8,
    #[serde(default)]
    attached_pic: u8,
    #[serde(default)]
    forced: u8,
    #[serde(default)]
    visual_impaired: u8,
    #[serde(default)]
    descriptions: u8,
    #[serde(default)]
    hearing_impaired: u8,
    #[serde(default)]
    captions: u8,
}

#[derive(Debug, Deserialize)]
struct SideData {
    rotation: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct Tags {
    rotate: Option<String>,
    language: Option<String>,
    title: Option<String>,
}

/// ffprobe's word for "not known".
fn known(value: &Option<String>) -> Option<String> {
    value
        .clone()
        .filter(|v| !v.is_empty() && v != "unknown" && v != "none" && v != "N/A")
}

impl FfprobeStream {
    fn decodable_codec(&self) -> Option<String> {
        known(&self.codec_name)
    }

    fn is_default(&self) -> bool {
        self.disposition.default == 1
    }

    fn is_picture(&self) -> bool {
        self.codec_type.as_deref() == Some("video") && self.disposition.attached_pic == 1
    }

    /// Clockwise degrees the frames must be turned to display upright: 0, 90, 180 or 270.
    ///
    /// The display matrix side data counts counter-clockwise (a phone's
    /// portrait video says `rotation: -90`); the old `rotate` tag counts clockwise.
    fn rotation(&self) -> u32 {
        let clockwise = self
            .side_data_list
            .iter()
            .find_map(|s| s.rotation.map(|r| -r))
            .or_else(|| self.tags.rotate.as_deref().and_then(|r| r.parse().ok()))
            .unwrap_or(0.0);
        // Snap to the nearest quarter turn, as ffmpeg's autorotate does.
        let quarter = (clockwise / 90.0).round() as i64;
        (quarter.rem_euclid(4) * 90) as u32
    }

    /// Width of the picture as displayed (non-square pixels stretched out), before rotation.
    fn display_width(&self, width: u32) -> u32 {
        let sar = self
            .sample_aspect_ratio
            .as_deref()
            .and_then(|s| Rational::parse_sep(s, ':'));
        match sar {
            Some(sar) if sar.num != sar.den => {
                ((f64::from(width) * sar.as_f64()).round() as u32).max(1)
            }
            _ => width,
        }
    }

    fn to_video(&self) -> Option<VideoInfo> {
        if self.codec_type.as_deref() != Some("video") || self.is_picture() {
            return None;
        }
        let codec = self.decodable_codec()?;
        let (w, h) = (
            self.width.filter(|&w| w > 0)?,
            self.height.filter(|&h| h > 0)?,
        );
        let w = self.display_width(w);
        let rotation = self.rotation();
        let (width, height) = if rotation % 180 == 90 { (h, w) } else { (w, h) };
        let avg_frame_rate = self.avg_frame_rate.as_deref().and_then(Rational::parse);
        let r_frame_rate = self.r_frame_rate.as_deref().and_then(Rational::parse);
        Some(VideoInfo {
            index: self.index,
            codec,
            width,
            height,
            rotation,
            frame_rate: avg_frame_rate
                .or(r_frame_rate)
                .map_or(0.0, Rational::as_f64),
            avg_frame_rate,
            r_frame_rate,
            bit_rate: self.bit_rate.as_deref().and_then(|b| b.parse().ok()),
            frame_count: self
                .nb_frames
                .as_deref()
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0),
            real_frame_rate: None,
            pix_fmt: known(&self.pix_fmt),
            color: Color {
                range: known(&self.color_range),
                space: known(&self.color_space),
                transfer: known(&self.color_transfer),
                primaries: known(&self.color_primaries),
            },
        })
    }

    fn to_audio(&self) -> Option<AudioInfo> {
        if self.codec_type.as_deref() != Some("audio") {
            return None;
        }
        Some(AudioInfo {
            index: self.index,
            codec: self.decodable_codec()?,
            channels: self.channels.unwrap_or(2),
            sample_rate: self.sample_rate.as_deref().and_then(|r| r.parse().ok()),
            labels: self.labels(),
        })
    }

    fn to_subtitle(&self) -> Option<SubtitleInfo> {
        if self.codec_type.as_deref() != Some("subtitle") {
            return None;
        }
        Some(SubtitleInfo {
            index: self.index,
            codec: self.decodable_codec()?,
            labels: self.labels(),
        })
    }

    fn labels(&self) -> TrackLabels {
        let d = &self.disposition;
        TrackLabels {
            language: known(&self.tags.language),
            title: known(&self.tags.title),
            default: d.default == 1,
            forced: d.forced == 1,
            describes_video: d.visual_impaired == 1 || d.descriptions == 1,
            captions: d.hearing_impaired == 1 || d.captions == 1,
        }
    }

    fn to_cover(&self) -> Option<CoverInfo> {
        if !self.is_picture() {
            return None;
        }
        Some(CoverInfo {
            index: self.index,
            codec: self.decodable_codec()?,
        })
    }
}

/// The stream marked default, or else the first one that qualifies.
fn pick<T>(streams: &[FfprobeStream], convert: impl Fn(&FfprobeStream) -> Option<T>) -> Option<T> {
    streams
        .iter()
        .filter(|s| s.is_default())
        .find_map(&convert)
        .or_else(|| streams.iter().find_map(&convert))
}

impl FfprobeOutput {
    fn into_info(mut self) -> Result<ProbeInfo, ProbeError> {
        // ffprobe numbers each stream once; a stream listed twice under one index would be
        // mapped (and, as the default audio track, announced) twice. The first one stands.
        let mut seen = std::collections::HashSet::new();
        self.streams.retain(|s| seen.insert(s.index));
        let format = self
            .format
            .ok_or_else(|| ProbeError::Corrupt("ffprobe found no container".into()))?;
        if self.streams.is_empty() {
            // A container recognised by its header whose stream table is
            // unreadable: an MP4 whose moov box is damaged looks like this.
            return Err(ProbeError::Corrupt(format!(
                "the {} container lists no streams: its index is damaged",
                format.format_name
            )));
        }
        let video = pick(&self.streams, FfprobeStream::to_video);
        let audio = pick(&self.streams, FfprobeStream::to_audio);
        let audio_tracks = self
            .streams
            .iter()
            .filter_map(FfprobeStream::to_audio)
            .collect();
        let subtitles = self
            .streams
            .iter()
            .filter_map(FfprobeStream::to_subtitle)
            .collect();
        let cover = self.streams.iter().find_map(FfprobeStream::to_cover);
        if video.is_none() && audio.is_none() {
            return Err(ProbeError::NoStreams);
        }
        let duration_s = format
            .duration
            .as_deref()
            .and_then(|d| d.parse::<f64>().ok())
            .or_else(|| {
                self.streams
                    .iter()
                    .filter_map(|s| s.duration.as_deref()?.parse::<f64>().ok())
                    .reduce(f64::max)
            })
            .filter(|d| d.is_finite() && *d > 0.0)
            .unwrap_or(0.0);
        let video = video.map(|v| VideoInfo {
            real_frame_rate: v
                .frame_count
                .and_then(|n| super::budget::real_rate(n, duration_s)),
            ..v
        });
        let start_s = format
            .start_time
            .as_deref()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite())
            .unwrap_or(0.0);
        Ok(ProbeInfo {
            format_name: format.format_name,
            duration_s,
            start_s,
            video,
            audio,
            audio_tracks,
            subtitles,
            cover,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(json: &str) -> Result<ProbeInfo, ProbeError> {
        parse(json.as_bytes())
    }

    #[test]
    fn portrait_rotation_swaps_the_displayed_dimensions() {
        let info = parse_str(
            r#"{"streams":[{"index":0,"codec_type":"video","codec_name":"h264","width":1920,"height":1080,
                "avg_frame_rate":"30000/1001","side_data_list":[{"rotation":-90}]}],
                "format":{"format_name":"mov,mp4","duration":"5.0"}}"#,
        )
        .unwrap();
        let v = info.video.unwrap();
        assert_eq!((v.width, v.height, v.rotation), (1080, 1920, 90));
        assert!((v.frame_rate - 29.97).abs() < 0.01);
        assert_eq!(v.avg_frame_rate, Some(Rational::new(30000, 1001)));
    }

    #[test]
    fn rotations_count_clockwise_from_either_source() {
        let rotation = |side: &str| {
            parse_str(&format!(
                r#"{{"streams":[{{"index":0,"codec_type":"video","codec_name":"h264","width":64,"height":32,{side}}}],
                    "format":{{"format_name":"mov","duration":"1"}}}}"#
            ))
            .unwrap()
            .video
            .unwrap()
            .rotation
        };
        assert_eq!(rotation(r#""side_data_list":[{"rotation":90}]"#), 270);
        assert_eq!(rotation(r#""side_data_list":[{"rotation":-180}]"#), 180);
        assert_eq!(rotation(r#""side_data_list":[{"rotation":180}]"#), 180);
        assert_eq!(rotation(r#""tags":{"rotate":"90"}"#), 90);
        assert_eq!(rotation(r#""tags":{"rotate":"270"}"#), 270);
        assert_eq!(rotation(r#""side_data_list":[{"rotation":-89.9}]"#), 90);
        assert_eq!(rotation(r#""disposition":{"default":1}"#), 0);
    }

    #[test]
    fn non_square_pixels_give_the_displayed_width() {
        let info = parse_str(
            r#"{"streams":[{"index":0,"codec_type":"video","codec_name":"mpeg2video","width":720,"height":576,
                "sample_aspect_ratio":"64:45"}],"format":{"format_name":"mpeg","duration":"3"}}"#,
        )
        .unwrap();
        let v = info.video.unwrap();
        assert_eq!((v.width, v.height), (1024, 576));
    }

    #[test]
    fn cover_art_alone_is_not_a_video_stream_but_a_cover() {
        let info = parse_str(
            r#"{"streams":[{"index":0,"codec_type":"audio","codec_name":"mp3","channels":2},
                {"index":1,"codec_type":"video","codec_name":"mjpeg","width":500,"height":500,
                 "disposition":{"attached_pic":1}}],
                "format":{"format_name":"mp3","duration":"60.0"}}"#,
        )
        .unwrap();
        assert!(info.video.is_none());
        assert_eq!(info.audio.unwrap().codec, "mp3");
        assert_eq!(
            info.cover,
            Some(CoverInfo {
                index: 1,
                codec: "mjpeg".into()
            })
        );
    }

    #[test]
    fn a_cover_before_the_video_does_not_hide_the_video() {
        let info = parse_str(
            r#"{"streams":[{"index":0,"codec_type":"video","codec_name":"png","width":1000,"height":1000,
                 "disposition":{"default":1,"attached_pic":1}},
                {"index":1,"codec_type":"video","codec_name":"h264","width":640,"height":360},
                {"index":2,"codec_type":"audio","codec_name":"aac","channels":2}],
                "format":{"format_name":"mov","duration":"4.0"}}"#,
        )
        .unwrap();
        assert_eq!(info.video.unwrap().index, 1);
        assert_eq!(info.cover.unwrap().index, 0);
    }

    #[test]
    fn a_stream_index_listed_twice_counts_once() {
        // Found by fuzzing (probe_plan): two default audio tracks under one index.
        let info = parse_str(
            r#"{"streams":[{"index":0,"codec_type":"audio","codec_name":"aac","disposition":{"default":1}},
                {"index":0,"codec_type":"audio","codec_name":"aac","disposition":{"default":1}}],
                "format":{"format_name":"matroska,webm","duration":"4.0"}}"#,
        )
        .unwrap();
        assert_eq!(info.audio_tracks.len(), 1);
    }

    #[test]
    fn the_default_audio_track_wins_over_the_first() {
        let json = |d0: u8, d1: u8| {
            format!(
                r#"{{"streams":[{{"index":0,"codec_type":"audio","codec_name":"aac","disposition":{{"default":{d0}}}}},
                    {{"index":1,"codec_type":"audio","codec_name":"opus","disposition":{{"default":{d1}}}}}],
                    "format":{{"format_name":"matroska,webm","duration":"4.0"}}}}"#
            )
        };
        assert_eq!(parse_str(&json(0, 1)).unwrap().audio.unwrap().index, 1);
        assert_eq!(parse_str(&json(1, 1)).unwrap().audio.unwrap().index, 0);
        assert_eq!(parse_str(&json(0, 0)).unwrap().audio.unwrap().index, 0);
    }

    #[test]
    fn every_audio_and_subtitle_track_is_listed_with_its_labels() {
        let info = parse_str(
            r#"{"streams":[{"index":0,"codec_type":"video","codec_name":"h264","width":64,"height":32},
                {"index":1,"codec_type":"audio","codec_name":"aac","channels":2,
                 "disposition":{"default":1},"tags":{"language":"eng","title":"English"}},
                {"index":2,"codec_type":"audio","codec_name":"ac3","channels":6,
                 "disposition":{"visual_impaired":1},"tags":{"language":"fra"}},
                {"index":3,"codec_type":"subtitle","codec_name":"subrip",
                 "disposition":{"forced":1,"hearing_impaired":1},"tags":{"language":"deu"}},
                {"index":4,"codec_type":"subtitle","codec_name":"hdmv_pgs_subtitle"},
                {"index":5,"codec_type":"audio","codec_name":"unknown"}],
                "format":{"format_name":"matroska,webm","duration":"4.0"}}"#,
        )
        .unwrap();
        let indexes: Vec<usize> = info.audio_tracks.iter().map(|a| a.index).collect();
        assert_eq!(indexes, [1, 2], "an undecodable track is not listed");
        let english = &info.audio_tracks[0].labels;
        assert_eq!(english.language.as_deref(), Some("eng"));
        assert_eq!(english.title.as_deref(), Some("English"));
        assert!(english.default && !english.describes_video);
        let french = &info.audio_tracks[1];
        assert_eq!((french.channels, french.labels.describes_video), (6, true));
        assert_eq!(info.subtitles.len(), 2);
        let german = &info.subtitles[0];
        assert!(german.is_text() && german.labels.forced && german.labels.captions);
        assert!(!info.subtitles[1].is_text(), "PGS is a bitmap");
    }

    #[test]
    fn a_file_with_only_data_streams_is_refused() {
        let err = parse_str(
            r#"{"streams":[{"index":0,"codec_type":"data","codec_name":"bin_data"}],
                "format":{"format_name":"mpegts","duration":"3.0"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "no_media_streams");
    }

    #[test]
    fn a_file_without_a_duration_is_left_to_be_measured() {
        let json = r#"{"streams":[{"index":0,"codec_type":"video","codec_name":"vp9","width":320,"height":180,
            "avg_frame_rate":"30/1","duration":"N/A"}],"format":{"format_name":"matroska,webm","duration":"N/A"}}"#;
        assert_eq!(parse_lenient(json.as_bytes()).unwrap().duration_s, 0.0);
        assert_eq!(parse(json.as_bytes()).unwrap_err().code(), "corrupt_media");
    }

    #[test]
    fn a_container_without_a_stream_table_is_corrupt() {
        // What ffprobe prints for an MP4 whose moov box is overwritten with garbage.
        let err = parse_str(r#"{"streams":[],"format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2"}}"#)
            .unwrap_err();
        assert_eq!(err.code(), "corrupt_media");
    }
}

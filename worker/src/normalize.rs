//! What every source is turned into, whatever it was: one video stream of
//! constant frame rate at most 60 fps, SDR BT.709, 8-bit 4:2:0 with even
//! sides; every audio track stereo at 48 kHz. Pure decisions over the probe, unit
//! tested over real ffprobe output (`worker/tests/fixtures/ffprobe/`); the
//! filter text they produce goes into the one ffmpeg command of `ffmpeg.rs`.
//!
//! Rotation needs nothing here: ffmpeg's autorotate turns decoded frames
//! upright (also inside `-filter_complex`) and writes no rotation into the
//! output, and the ladder already plans rungs from the displayed size.

use prostream::media::{Color, Rational, VideoInfo};

/// Browsers and phones play up to 60 fps everywhere; more is capped.
pub const MAX_FRAME_RATE: u32 = 60;
/// Every rendition's audio: AAC stereo at 48 kHz.
pub const AUDIO_CHANNELS: u32 = 2;
pub const AUDIO_SAMPLE_RATE: u32 = 48_000;

/// Used when a stream announces no usable frame rate at all.
const FALLBACK_FRAME_RATE: Rational = Rational::new(30, 1);

/// How the source's light is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicRange {
    Sdr,
    /// HDR10 and friends: SMPTE ST 2084.
    Pq,
    /// Hybrid log-gamma (ARIB STD-B67), as phones record HDR.
    Hlg,
}

/// What the video of one source needs.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoPlan {
    /// Stream index in the source (a cover image may come first).
    pub input: usize,
    /// Constant output frame rate.
    pub frame_rate: Rational,
    pub range: DynamicRange,
    /// BT.2020 primaries: converted to BT.709 (and tone mapped if HDR) before scaling.
    pub wide_gamut: bool,
    /// The source's YCbCr matrix, as the scale filter names it.
    pub matrix: &'static str,
    /// `pc` (full, JPEG) or `tv` (limited).
    pub full_range: bool,
}

impl VideoPlan {
    /// Keyframe interval in frames for `keyframe_secs`.
    pub fn gop(&self, keyframe_secs: u32) -> u32 {
        (self.frame_rate.as_f64() * f64::from(keyframe_secs))
            .round()
            .max(1.0) as u32
    }

    /// Whether colours pass through zscale (tone mapping or gamut conversion).
    fn converts_gamut(&self) -> bool {
        self.range != DynamicRange::Sdr || self.wide_gamut
    }

    /// Filters applied once to the decoded source, before the ladder's
    /// `split`: constant frame rate first (fewer frames for what follows),
    /// then HDR → SDR. Ends in limited-range BT.709 when it converts colours.
    pub fn prefilter(&self) -> String {
        let mut chain = vec![format!("fps={}", self.frame_rate)];
        chain.extend(self.colour_filters());
        chain.join(",")
    }

    /// The colour part of [`Self::prefilter`], also used for the poster.
    pub fn colour_filters(&self) -> Vec<String> {
        if !self.converts_gamut() {
            return Vec::new();
        }
        let input = format!(
            "tin={}:pin=2020:min=2020_ncl:rin={}",
            match self.range {
                DynamicRange::Pq => "smpte2084",
                DynamicRange::Hlg => "arib-std-b67",
                // BT.2020's SDR transfer is BT.709's curve.
                DynamicRange::Sdr => "709",
            },
            if self.full_range { "full" } else { "limited" }
        );
        match self.range {
            // Linear light, nominal peak 100 nits, so SDR reference white
            // lands on SDR white; Möbius keeps everything up to there as it
            // is and rolls off only the highlights above (hable dims all of
            // it: HLG reference white came out at 180 of 235).
            DynamicRange::Pq | DynamicRange::Hlg => vec![
                format!("zscale={input}:t=linear:npl=100"),
                "format=gbrpf32le".into(),
                "zscale=p=709".into(),
                "tonemap=tonemap=mobius:desat=0".into(),
                "zscale=t=709:m=709:r=limited".into(),
                "format=yuv420p".into(),
            ],
            DynamicRange::Sdr => vec![
                format!("zscale={input}:t=709:p=709:m=709:r=limited"),
                "format=yuv420p".into(),
            ],
        }
    }

    /// Resizes to one rung and converts to limited-range BT.709 8-bit 4:2:0.
    pub fn rung_filter(&self, width: u32, height: u32) -> String {
        let (matrix, range) = if self.converts_gamut() {
            ("bt709", "tv")
        } else {
            (self.matrix, if self.full_range { "pc" } else { "tv" })
        };
        format!(
            "scale={width}:{height}:in_color_matrix={matrix}:in_range={range}:\
             out_color_matrix=bt709:out_range=tv,format=yuv420p,setsar=1"
        )
    }
}

pub fn plan_video(video: &VideoInfo) -> VideoPlan {
    let wide_gamut = video.color.primaries.as_deref() == Some("bt2020");
    VideoPlan {
        input: video.index,
        frame_rate: follow_real_frames(
            output_frame_rate(video.avg_frame_rate, video.r_frame_rate),
            video.real_frame_rate,
        ),
        range: dynamic_range(&video.color),
        wide_gamut,
        matrix: matrix(&video.color, video.width.min(video.height)),
        full_range: full_range(&video.color, video.pix_fmt.as_deref()),
    }
}

pub fn dynamic_range(color: &Color) -> DynamicRange {
    match color.transfer.as_deref() {
        Some("smpte2084") => DynamicRange::Pq,
        Some("arib-std-b67") => DynamicRange::Hlg,
        _ => DynamicRange::Sdr,
    }
}

/// The YCbCr matrix to decode with. Untagged video gets what players
/// assume: BT.709 from 720 lines up, BT.601 below.
fn matrix(color: &Color, short_side: u32) -> &'static str {
    match color.space.as_deref() {
        Some("bt709") => "bt709",
        Some("bt470bg" | "smpte170m") => "bt601",
        Some("bt2020nc" | "bt2020c") => "bt2020",
        Some("smpte240m") => "smpte240m",
        Some("fcc") => "fcc",
        _ if short_side >= 720 => "bt709",
        _ => "bt601",
    }
}

/// Full ("pc", JPEG) range: MJPEG's `yuvj*` formats are full range even untagged.
fn full_range(color: &Color, pix_fmt: Option<&str>) -> bool {
    match color.range.as_deref() {
        Some("pc") => true,
        Some("tv") => false,
        _ => pix_fmt.is_some_and(|p| p.starts_with("yuvj")),
    }
}

/// The constant frame rate to encode at.
///
/// Starts from ffprobe's `r_frame_rate`, the rate that represents every
/// timestamp: a variable-rate phone clip averaging 29.87 fps says 30, and
/// frames are duplicated into its gaps rather than dropped from its bursts.
/// As in ffmpeg's own guess, a base rate above 210 next to an average below
/// 70 is a container's time base, not a frame rate, and so is any base rate
/// above 240: the average is used, rounded to a whole number. Above [`MAX_FRAME_RATE`] the rate is divided
/// by the smallest whole number that brings it to 60 or below (120 → 60,
/// 100 → 50, 90 → 45), so every kept frame is evenly spaced.
pub fn output_frame_rate(avg: Option<Rational>, base: Option<Rational>) -> Rational {
    let rate = match (base, avg) {
        (Some(b), Some(a)) if b.as_f64() > 240.0 || (b.as_f64() > 210.0 && a.as_f64() < 70.0) => {
            whole(a)
        }
        (Some(b), _) => b,
        (None, Some(a)) => a,
        (None, None) => FALLBACK_FRAME_RATE,
    };
    cap(rate)
}

/// A source whose counted frames are far sparser than its declared rate (timestamps that jump
/// ahead) is encoded at a rate that follows its real average
/// ([`prostream::media::budget::rate_for_real_frames`]), not at `planned`: the `fps` filter
/// would otherwise repeat its few frames into hours of encoding.
pub fn follow_real_frames(planned: Rational, real: Option<f64>) -> Rational {
    let Some(real) = real else {
        return planned;
    };
    let sparse = prostream::media::budget::rate_for_real_frames(real);
    if f64::from(sparse) < planned.as_f64() {
        Rational::new(sparse, 1)
    } else {
        planned
    }
}

fn whole(rate: Rational) -> Rational {
    Rational::new((rate.as_f64().round() as u32).max(1), 1)
}

fn cap(rate: Rational) -> Rational {
    let max = u64::from(MAX_FRAME_RATE);
    let (num, den) = (u64::from(rate.num), u64::from(rate.den));
    if num <= max * den {
        return reduce(num, den);
    }
    let divisor = num.div_ceil(max * den);
    reduce(num, den * divisor)
}

fn reduce(num: u64, den: u64) -> Rational {
    let g = gcd(num, den).max(1);
    let (num, den) = (num / g, den / g);
    // A rate that does not fit in u32 over u32 is nonsense; fall back.
    match (u32::try_from(num), u32::try_from(den)) {
        (Ok(n), Ok(d)) if n > 0 && d > 0 => Rational::new(n, d),
        _ => FALLBACK_FRAME_RATE,
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prostream::media::{ProbeInfo, parse_ffprobe_json};

    /// Real ffprobe output of clips made by `scripts/ffprobe-fixtures.sh`.
    fn fixture(name: &str) -> ProbeInfo {
        let path = format!(
            "{}/tests/fixtures/ffprobe/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let json = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        parse_ffprobe_json(&json).unwrap()
    }

    fn video(name: &str) -> VideoPlan {
        plan_video(fixture(name).video.as_ref().unwrap())
    }

    #[test]
    fn frame_rates_above_60_are_divided_evenly() {
        let r = |n, d| Some(Rational::new(n, d));
        assert_eq!(
            output_frame_rate(r(120, 1), r(120, 1)),
            Rational::new(60, 1)
        );
        assert_eq!(
            output_frame_rate(r(240, 1), r(240, 1)),
            Rational::new(60, 1)
        );
        assert_eq!(
            output_frame_rate(r(100, 1), r(100, 1)),
            Rational::new(50, 1)
        );
        assert_eq!(output_frame_rate(r(90, 1), r(90, 1)), Rational::new(45, 1));
        assert_eq!(
            output_frame_rate(r(120_000, 1001), r(120_000, 1001)),
            Rational::new(60_000, 1001)
        );
        assert_eq!(output_frame_rate(r(60, 1), r(60, 1)), Rational::new(60, 1));
        assert_eq!(
            output_frame_rate(r(30_000, 1001), r(30_000, 1001)),
            Rational::new(30_000, 1001)
        );
    }

    #[test]
    fn a_container_time_base_is_not_taken_for_a_frame_rate() {
        let rate = output_frame_rate(Some(Rational::new(2997, 100)), Some(Rational::new(1000, 1)));
        assert_eq!(rate, Rational::new(30, 1));
        // A 120 fps variable-rate clip in a 1 ms time base: 120, capped to 60.
        let rate = output_frame_rate(
            Some(Rational::new(11_950, 100)),
            Some(Rational::new(1000, 1)),
        );
        assert_eq!(rate, Rational::new(60, 1));
        assert_eq!(output_frame_rate(None, None), Rational::new(30, 1));
        assert_eq!(
            output_frame_rate(Some(Rational::new(25, 1)), None),
            Rational::new(25, 1)
        );
    }

    #[test]
    fn a_source_far_sparser_than_its_declared_rate_follows_its_real_frames() {
        let sixty = Rational::new(60, 1);
        // Five frames over 14,000 s: 1 fps, not 60.
        assert_eq!(
            follow_real_frames(sixty, Some(5.0 / 14_000.0)),
            Rational::new(1, 1)
        );
        // A screen recording averaging 5 fps: four times that.
        assert_eq!(follow_real_frames(sixty, Some(5.0)), Rational::new(20, 1));
        // Close to the declared rate (variable-rate phone clips), or uncounted: unchanged.
        let ntsc = Rational::new(30_000, 1001);
        assert_eq!(follow_real_frames(ntsc, Some(29.87)), ntsc);
        assert_eq!(follow_real_frames(sixty, None), sixty);
        assert_eq!(video("h264_vfr").frame_rate, Rational::new(30, 1));
    }

    #[test]
    fn a_120_fps_clip_is_encoded_at_60() {
        let plan = video("h264_120fps");
        assert_eq!(plan.frame_rate, Rational::new(60, 1));
        assert_eq!(plan.gop(2), 120);
        assert!(
            plan.prefilter().starts_with("fps=60/1"),
            "{}",
            plan.prefilter()
        );
    }

    #[test]
    fn a_variable_frame_rate_clip_becomes_constant_at_its_base_rate() {
        let info = fixture("h264_vfr");
        let v = info.video.as_ref().unwrap();
        // Averaging 17 fps with bursts at 30.
        assert!(v.frame_rate < 20.0, "{v:?}");
        let plan = plan_video(v);
        assert_eq!(plan.frame_rate, Rational::new(30, 1));
        assert_eq!(plan.prefilter(), "fps=30/1");
    }

    #[test]
    fn pq_and_hlg_are_tone_mapped_to_bt709() {
        for (name, range, transfer) in [
            ("hevc_pq", DynamicRange::Pq, "tin=smpte2084"),
            ("hevc_hlg", DynamicRange::Hlg, "tin=arib-std-b67"),
        ] {
            let plan = video(name);
            assert_eq!(plan.range, range, "{name}");
            let pre = plan.prefilter();
            assert!(pre.contains(transfer), "{pre}");
            assert!(pre.contains("tonemap=tonemap=mobius"), "{pre}");
            assert!(
                pre.ends_with("zscale=t=709:m=709:r=limited,format=yuv420p"),
                "{pre}"
            );
            assert!(plan.rung_filter(640, 360).contains("in_color_matrix=bt709"));
        }
    }

    #[test]
    fn bt2020_sdr_changes_gamut_without_tone_mapping() {
        let plan = video("hevc_bt2020_sdr");
        assert_eq!(plan.range, DynamicRange::Sdr);
        assert!(plan.wide_gamut);
        let pre = plan.prefilter();
        assert!(
            pre.contains("zscale=tin=709:pin=2020:min=2020_ncl"),
            "{pre}"
        );
        assert!(!pre.contains("tonemap"), "{pre}");
    }

    #[test]
    fn sdr_sources_only_get_a_frame_rate_filter() {
        for name in [
            "h264_yuv444p",
            "h264_yuv422p10",
            "prores_mov",
            "h264_rotated_90",
        ] {
            let plan = video(name);
            assert_eq!(plan.range, DynamicRange::Sdr, "{name}");
            assert!(!plan.wide_gamut, "{name}");
            assert_eq!(plan.prefilter(), "fps=30/1", "{name}");
            let rung = plan.rung_filter(320, 180);
            assert!(
                rung.ends_with("out_color_matrix=bt709:out_range=tv,format=yuv420p,setsar=1"),
                "{rung}"
            );
        }
    }

    #[test]
    fn mjpeg_is_decoded_as_full_range() {
        let plan = video("mjpeg_avi");
        assert!(plan.full_range);
        assert!(plan.rung_filter(320, 180).contains("in_range=pc"));
        assert!(!video("h264_yuv444p").full_range);
    }

    #[test]
    fn untagged_video_gets_the_matrix_players_assume() {
        let untagged = Color::default();
        assert_eq!(matrix(&untagged, 1080), "bt709");
        assert_eq!(matrix(&untagged, 480), "bt601");
        let tagged = Color {
            space: Some("bt709".into()),
            ..Color::default()
        };
        assert_eq!(matrix(&tagged, 480), "bt709");
    }

    #[test]
    fn a_rotated_phone_clip_is_planned_portrait() {
        let info = fixture("h264_rotated_90");
        let v = info.video.as_ref().unwrap();
        assert_eq!((v.width, v.height, v.rotation), (180, 320, 90));
    }

    #[test]
    fn the_default_audio_track_is_the_default_rendition() {
        let info = fixture("mkv_two_audio_second_default");
        let (tracks, _) = crate::tracks::plan_audio(&info);
        let defaults: Vec<usize> = tracks
            .iter()
            .filter(|t| t.default)
            .map(|t| t.input)
            .collect();
        assert_eq!(defaults, [2]);
        assert_eq!(tracks.len(), 2, "both tracks are kept");
    }

    #[test]
    fn surround_and_odd_sample_rates_are_seen() {
        let surround = fixture("aac_5_1_44100");
        let a = surround.audio.unwrap();
        assert_eq!((a.channels, a.sample_rate), (6, Some(44_100)));
    }

    #[test]
    fn a_cover_image_is_a_poster_not_a_video() {
        let info = fixture("mp3_with_cover");
        assert!(info.video.is_none());
        assert!(info.audio.is_some());
        assert_eq!(info.cover.as_ref().unwrap().index, 1);
    }
}

//! The work a source may buy. A file's declared duration and frame rates are only numbers in
//! its header: a few kilobytes whose last frame's timestamp lies 14,000 s ahead declare hours
//! of 60 fps video, and the encoder's constant-rate filter would faithfully make those hours up
//! by repeating frames. So the work is judged by the frames the file really holds (counted,
//! see [`super::VideoInfo::frame_count`]):
//!
//! - a source whose frames are sparse is encoded at a rate that follows its real average
//!   ([`rate_for_real_frames`]), never at the declared rate;
//! - a video-only source with fewer than [`MIN_REAL_FRAME_RATE`] frames a second over its
//!   whole length, or more frames than its duration can hold, is refused (`implausible_timing`):
//!   nothing sensible can be made of it;
//! - the frames the worker will process, times their pixels, must stay within
//!   `MAX_DECODE_PIXELS` (`work_budget_exceeded`).
//!
//! Variable-frame-rate phone clips keep their rate: their real average is close to the declared
//! one. A still picture over a soundtrack (one frame, minutes of audio) is encoded at 1 fps.

use super::{ProbeError, ProbeInfo};
use crate::config::MediaLimits;

/// Below this many frames a second on average (one every 10 s), a source without audio is not a
/// video: a slideshow is slower than that only when it has something to hear.
pub const MIN_REAL_FRAME_RATE: f64 = 0.1;

/// How many times its real average rate a sparse source is encoded at, so that the frames of
/// its bursts (a screen recording that moves now and then) keep their spacing.
pub const SPARSE_HEADROOM: f64 = 4.0;

/// The highest rate the worker encodes at (`worker::normalize::MAX_FRAME_RATE`).
const MAX_OUTPUT_RATE: f64 = 60.0;

/// Frames per second of `frames` spread over `duration_s` (`None` when either is unknown).
pub fn real_rate(frames: u64, duration_s: f64) -> Option<f64> {
    (frames > 0 && duration_s.is_finite() && duration_s > 0.0).then(|| frames as f64 / duration_s)
}

/// The whole frame rate worth encoding a source whose frames really average `real` a second:
/// [`SPARSE_HEADROOM`] times that, at least 1 fps. The worker encodes at the smaller of this and
/// the rate it plans from the declared rates.
pub fn rate_for_real_frames(real: f64) -> u32 {
    let rate = (real * SPARSE_HEADROOM).ceil();
    if rate.is_finite() && rate >= 1.0 {
        rate.min(f64::from(u32::MAX)) as u32
    } else {
        1
    }
}

/// Refuses a source whose timing cannot be made sense of or whose work exceeds the budget.
pub fn check(info: &ProbeInfo, limits: &MediaLimits) -> Result<(), ProbeError> {
    let Some(video) = &info.video else {
        return Ok(());
    };
    let duration = info.duration_s;
    if let Some(frames) = video.frame_count {
        check_timing(frames, duration, info.audio.is_some(), limits)?;
    }
    let work = work_pixels(info);
    if work > limits.max_decode_pixels {
        return Err(ProbeError::WorkBudgetExceeded(format!(
            "decoding and encoding this source means {work} pixels ({} frames of {}x{}); at \
             most {} are accepted (MAX_DECODE_PIXELS). Send it shorter, smaller or at a lower \
             frame rate",
            frames_to_process(info),
            video.width,
            video.height,
            limits.max_decode_pixels
        )));
    }
    Ok(())
}

fn check_timing(
    frames: u64,
    duration_s: f64,
    has_audio: bool,
    limits: &MediaLimits,
) -> Result<(), ProbeError> {
    let real = real_rate(frames, duration_s).unwrap_or(0.0);
    if !has_audio && real < MIN_REAL_FRAME_RATE {
        return Err(ProbeError::ImplausibleTiming(format!(
            "the file declares {duration_s:.0} s of video but holds {frames} frames ({real:.4} \
             per second on average): its timestamps jump far ahead of its frames. Send the \
             video as it was recorded"
        )));
    }
    // Two frames of slack: a clip of a frame or two may declare a duration shorter than them.
    if frames as f64 > duration_s * limits.max_frame_rate * 1.1 + 2.0 {
        return Err(ProbeError::ImplausibleTiming(format!(
            "the file holds {frames} frames in {duration_s:.3} s, more than {} fps: its \
             timestamps do not match its frames",
            limits.max_frame_rate
        )));
    }
    Ok(())
}

/// Frames the worker decodes or encodes, conservatively: every frame in the file, or the
/// output frames of its duration at the rate it will be encoded at, whichever is more.
pub fn frames_to_process(info: &ProbeInfo) -> u64 {
    let Some(video) = &info.video else {
        return 0;
    };
    let declared = [video.avg_frame_rate, video.r_frame_rate]
        .into_iter()
        .flatten()
        .map(|r| r.as_f64())
        .fold(video.frame_rate, f64::max);
    let mut rate = if declared > 0.0 {
        declared.min(MAX_OUTPUT_RATE)
    } else {
        30.0
    };
    if let Some(real) = video.real_frame_rate {
        rate = rate.min(f64::from(rate_for_real_frames(real)));
    }
    let output = (info.duration_s * rate).ceil();
    let output = if output.is_finite() && output > 0.0 {
        output as u64
    } else {
        0
    };
    output.max(video.frame_count.unwrap_or(0))
}

/// [`frames_to_process`] times the pixels of a frame.
pub fn work_pixels(info: &ProbeInfo) -> u64 {
    info.video.as_ref().map_or(0, |v| {
        frames_to_process(info).saturating_mul(u64::from(v.width) * u64::from(v.height))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::parse_ffprobe_json;

    /// Real ffprobe output from `worker/tests/fixtures/ffprobe/`.
    fn fixture(name: &str) -> ProbeInfo {
        let path = format!(
            "{}/worker/tests/fixtures/ffprobe/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let json = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        parse_ffprobe_json(&json).unwrap()
    }

    /// What ffprobe reports for an MP4 of five frames whose last one is stamped at 14,000 s
    /// (`setpts` on the last frame): a tiny average, a base rate of 60 and nb_frames 5.
    const CRAFTED_MP4: &str = r#"{"streams":[{"index":0,"codec_type":"video","codec_name":"h264",
        "width":320,"height":240,"r_frame_rate":"60/1","avg_frame_rate":"300/840001",
        "duration":"14000.016667","nb_frames":"5"}],
        "format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"14000.017000"}}"#;

    #[test]
    fn every_fixture_of_a_real_camera_or_encoder_passes() {
        for name in [
            "h264_120fps",
            "h264_rotated_90",
            "h264_vfr",
            "h264_yuv422p10",
            "h264_yuv444p",
            "hevc_bt2020_sdr",
            "hevc_hlg",
            "hevc_pq",
            "mjpeg_avi",
            "mkv_two_audio_second_default",
            "mp3_with_cover",
            "prores_mov",
            "aac_5_1_44100",
        ] {
            let info = fixture(name);
            assert!(check(&info, &MediaLimits::default()).is_ok(), "{name}");
        }
    }

    #[test]
    fn a_variable_frame_rate_clip_counts_its_real_frames() {
        let info = fixture("h264_vfr");
        let video = info.video.as_ref().unwrap();
        assert_eq!(video.frame_count, Some(16));
        let real = video.real_frame_rate.unwrap();
        assert!((real - 17.13).abs() < 0.01, "{real}");
        // Four times 17.1 is above its base rate of 30: it keeps 30.
        assert_eq!(rate_for_real_frames(real), 69);
        // 0.934 s at 30 fps.
        assert_eq!(frames_to_process(&info), 29);
    }

    #[test]
    fn five_frames_declared_as_14000_seconds_are_implausible_timing() {
        let info = parse_ffprobe_json(CRAFTED_MP4.as_bytes()).unwrap();
        let err = check(&info, &MediaLimits::default()).unwrap_err();
        assert_eq!(err.code(), "implausible_timing");
        assert!(err.to_string().contains("5 frames"), "{err}");
    }

    #[test]
    fn sparse_frames_over_a_soundtrack_are_encoded_at_one_frame_a_second() {
        let mut info = parse_ffprobe_json(CRAFTED_MP4.as_bytes()).unwrap();
        info.audio = Some(crate::media::AudioInfo {
            index: 1,
            codec: "aac".into(),
            channels: 2,
            sample_rate: Some(48_000),
            labels: Default::default(),
        });
        assert!(check(&info, &MediaLimits::default()).is_ok());
        // 1 fps over 14,000 s, not 60 fps (840,000 frames).
        assert_eq!(frames_to_process(&info), 14_001);
    }

    #[test]
    fn more_frames_than_the_duration_holds_are_implausible_timing() {
        let json = CRAFTED_MP4
            .replace(r#""nb_frames":"5""#, r#""nb_frames":"100000""#)
            .replace("14000.0", "10.0");
        let info = parse_ffprobe_json(json.as_bytes()).unwrap();
        let err = check(&info, &MediaLimits::default()).unwrap_err();
        assert_eq!(err.code(), "implausible_timing");
        // One frame in a clip that declares less than its length is fine.
        assert!(check_timing(1, 0.001, false, &MediaLimits::default()).is_ok());
    }

    #[test]
    fn the_work_budget_counts_frames_times_pixels() {
        let info = fixture("h264_120fps");
        // 1 s at 120 fps is encoded at 60 but decoded at 120: 120 frames of 320x240.
        let (w, h) = {
            let v = info.video.as_ref().unwrap();
            (u64::from(v.width), u64::from(v.height))
        };
        assert_eq!(frames_to_process(&info), 120);
        assert_eq!(work_pixels(&info), 120 * w * h);
        let tight = MediaLimits {
            max_decode_pixels: 120 * w * h - 1,
            ..MediaLimits::default()
        };
        assert_eq!(
            check(&info, &tight).unwrap_err().code(),
            "work_budget_exceeded"
        );
        let exact = MediaLimits {
            max_decode_pixels: 120 * w * h,
            ..MediaLimits::default()
        };
        assert!(check(&info, &exact).is_ok());
    }

    #[test]
    fn the_default_budget_takes_four_hours_of_4k60_and_no_more() {
        let limits = MediaLimits::default();
        let frames: u64 = 4 * 3600 * 60;
        assert_eq!(limits.max_decode_pixels, frames * 3840 * 2160);
        assert_eq!(rate_for_real_frames(0.0004), 1);
        assert_eq!(rate_for_real_frames(59.9), 240);
    }
}

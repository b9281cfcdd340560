//! ffprobe's JSON about an uploaded file, as the API and the worker read it, and the decisions
//! taken from it: the limits check, the ladder, the video plan, the audio tracks and the subtitle
//! tracks. The file is the
//! uploader's, so every field is theirs to choose. Whatever the JSON says, nothing panics, and an
//! accepted source gives a ladder of even-sided rungs no larger than the source and a constant
//! output frame rate within what players take.
#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use prostream::{config::MediaLimits, media::parse_ffprobe_json};
use prostream_worker::{ladder, normalize, subtitles, tracks};

#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    limits: MediaLimits,
}

fuzz_target!(|data: &[u8]| {
    let Ok(info) = parse_ffprobe_json(data) else {
        return;
    };
    let limits = Defaults::parse_from(["fuzz"]).limits;
    if prostream::media::check_limits(&info, &limits).is_err() {
        return;
    }
    let plan = ladder::plan(&ladder::Source {
        video: info.video.as_ref().map(|v| (v.width, v.height)),
        video_bit_rate: info.video.as_ref().and_then(|v| v.bit_rate),
        audio: info.audio.is_some(),
    });
    if let Some(video) = &info.video {
        for rung in &plan.rungs {
            assert!(
                rung.width % 2 == 0 && rung.height % 2 == 0,
                "odd rung {rung:?}"
            );
            assert!(rung.width > 0 && rung.height > 0, "empty rung {rung:?}");
            assert!(
                rung.height <= video.height.max(video.width),
                "rung {rung:?} above a {}x{} source",
                video.width,
                video.height
            );
        }
        let fps = normalize::plan_video(video).frame_rate.as_f64();
        assert!(
            fps.is_finite() && fps > 0.0 && fps <= f64::from(normalize::MAX_FRAME_RATE),
            "output frame rate {fps}"
        );
    }
    let (audio, _) = tracks::plan_audio(&info);
    assert!(audio.len() <= tracks::MAX_AUDIO_TRACKS, "{} audio tracks", audio.len());
    assert!(audio.iter().filter(|t| t.default).count() <= 1, "two default audio tracks");
    let (text, _) = subtitles::plan_subtitles(&info);
    assert!(text.len() <= subtitles::MAX_SUBTITLE_TRACKS, "{} subtitle tracks", text.len());
});

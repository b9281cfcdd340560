//! Which renditions a source gets, at which bitrates. Pure and unit-tested.
//!
//! Rungs are named by their short side (a portrait phone video's 720p rung is
//! 720×1280). Only rungs at or below the source's short side are made: no
//! upscaling. Each rung's bitrate is the cap of its capped-CRF encode (x264's
//! VBV maxrate): sized for H.264 `veryfast` at up to 30 fps, and lowered to the
//! source's own video bitrate, which already bounds the detail there is to keep.

/// (short side, peak video kbit/s).
pub const STANDARD_RUNGS: [(u32, u32); 5] = [
    (1080, 5000),
    (720, 2800),
    (480, 1400),
    (360, 800),
    (240, 400),
];

/// AAC stereo, every audio rendition.
pub const AUDIO_KBPS: u32 = 128;

/// The lowest bitrate a rung is given, however starved the source.
const MIN_VIDEO_KBPS: u32 = 150;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// `720p`; also the stem of its playlist and segment files.
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// The most video bits per second this rung may spend (VBV maxrate); easy
    /// content spends far less (benchmark 7 in BENCHMARKS.md).
    pub video_kbps: u32,
}

impl Rung {
    /// VBV buffer: 1.5 s at the peak rate.
    pub fn bufsize_kbps(&self) -> u32 {
        self.video_kbps * 3 / 2
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    /// Highest first. Empty for an audio-only source.
    pub rungs: Vec<Rung>,
    pub audio: bool,
}

impl Ladder {
    /// Rung names, highest first; none for an audio-only source.
    pub fn names(&self) -> Vec<String> {
        self.rungs.iter().map(|r| r.name.clone()).collect()
    }
}

/// The source as the ladder sees it: displayed size (rotation applied).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Source {
    pub video: Option<(u32, u32)>,
    pub video_bit_rate: Option<u64>,
    pub audio: bool,
}

pub fn plan(source: &Source) -> Ladder {
    let Some((width, height)) = source.video else {
        return Ladder {
            rungs: Vec::new(),
            audio: source.audio,
        };
    };
    let short = width.min(height);
    let cap_kbps = source.video_bit_rate.map(|b| {
        u32::try_from(b / 1000)
            .unwrap_or(u32::MAX)
            .max(MIN_VIDEO_KBPS)
    });
    let capped = |kbps: u32| cap_kbps.map_or(kbps, |cap| kbps.min(cap));

    let mut rungs: Vec<Rung> = STANDARD_RUNGS
        .iter()
        .filter(|(side, _)| *side <= short)
        .map(|&(side, kbps)| {
            let (w, h) = fit_short_side(width, height, side);
            Rung {
                name: format!("{side}p"),
                width: w,
                height: h,
                video_kbps: capped(kbps),
            }
        })
        .collect();
    if rungs.is_empty() {
        // Smaller than the smallest rung: one rendition at the source size.
        let (w, h) = (even(width), even(height));
        rungs.push(Rung {
            name: format!("{}p", w.min(h)),
            width: w,
            height: h,
            video_kbps: capped(STANDARD_RUNGS[STANDARD_RUNGS.len() - 1].1),
        });
    }
    Ladder {
        rungs,
        audio: source.audio,
    }
}

/// Scales so the short side is `side`, keeping the aspect ratio, both sides even, never past the
/// source: rounding 691 to even gave 692 (found by fuzzing `probe_plan`).
fn fit_short_side(width: u32, height: u32, side: u32) -> (u32, u32) {
    let scale = |long: u32, short: u32| {
        even_round(f64::from(long) * f64::from(side) / f64::from(short)).min(even(long))
    };
    if width >= height {
        (scale(width, height), side)
    } else {
        (side, scale(height, width))
    }
}

fn even_round(x: f64) -> u32 {
    ((x / 2.0).round() as u32 * 2).max(2)
}

fn even(x: u32) -> u32 {
    (x & !1).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder(w: u32, h: u32, bit_rate: Option<u64>) -> Ladder {
        plan(&Source {
            video: Some((w, h)),
            video_bit_rate: bit_rate,
            audio: true,
        })
    }

    #[test]
    fn a_720p_source_gets_720_480_360_240() {
        let l = ladder(1280, 720, None);
        assert_eq!(l.names(), ["720p", "480p", "360p", "240p"]);
        assert_eq!((l.rungs[0].width, l.rungs[0].height), (1280, 720));
        assert_eq!((l.rungs[1].width, l.rungs[1].height), (854, 480));
        assert_eq!((l.rungs[3].width, l.rungs[3].height), (426, 240));
    }

    #[test]
    fn a_4k_source_stops_at_1080p() {
        assert_eq!(ladder(3840, 2160, None).rungs[0].name, "1080p");
    }

    #[test]
    fn portrait_ladders_follow_the_short_side() {
        let l = ladder(1080, 1920, None);
        assert_eq!(l.rungs[0].name, "1080p");
        assert_eq!((l.rungs[0].width, l.rungs[0].height), (1080, 1920));
        assert_eq!((l.rungs[1].width, l.rungs[1].height), (720, 1280));
    }

    #[test]
    fn an_odd_long_side_is_rounded_down_not_past_the_source() {
        let ladder = plan(&Source {
            video: Some((360, 691)),
            video_bit_rate: None,
            audio: false,
        });
        let top = &ladder.rungs[0];
        assert_eq!(
            (top.name.as_str(), top.width, top.height),
            ("360p", 360, 690)
        );
    }

    #[test]
    fn every_dimension_is_even() {
        for (w, h) in [(1279, 719), (641, 361), (999, 1777), (300, 301)] {
            for r in ladder(w, h, None).rungs {
                assert_eq!((r.width % 2, r.height % 2), (0, 0), "{w}x{h} -> {r:?}");
            }
        }
    }

    #[test]
    fn a_tiny_source_gets_one_rung_at_its_own_size() {
        let l = ladder(177, 145, None);
        assert_eq!(l.rungs.len(), 1);
        assert_eq!((l.rungs[0].width, l.rungs[0].height), (176, 144));
        assert_eq!(l.rungs[0].name, "144p");
    }

    #[test]
    fn bitrates_are_capped_by_what_the_source_carries() {
        let l = ladder(1280, 720, Some(1_000_000));
        assert_eq!(
            l.rungs.iter().map(|r| r.video_kbps).collect::<Vec<_>>(),
            [1000, 1000, 800, 400]
        );
        let starved = ladder(1280, 720, Some(20_000));
        assert!(starved.rungs.iter().all(|r| r.video_kbps == MIN_VIDEO_KBPS));
    }

    #[test]
    fn vbv_follows_the_measured_ladder_settings() {
        let r = &ladder(1920, 1080, None).rungs[0];
        assert_eq!((r.video_kbps, r.bufsize_kbps()), (5000, 7500));
    }

    #[test]
    fn an_audio_only_source_gets_no_rungs() {
        let l = plan(&Source {
            video: None,
            video_bit_rate: None,
            audio: true,
        });
        assert!(l.rungs.is_empty() && l.audio);
    }
}

//! Reading timestamps out of our fragmented MP4 segments, for the subtitles' `X-TIMESTAMP-MAP`.
//!
//! The MPEGTS of a WebVTT segment's `X-TIMESTAMP-MAP` is the media time (90 kHz) at which cue
//! time 0 plays. ffmpeg's mp4 muxer cannot store a negative decode time, so it shifts the video
//! by x264's B-frame delay: the first frame (source time 0) is presented at its composition
//! offset, not at 0 (measured: 1024/15360 s = 2 frames at 30 fps with tfdt 0, and the init
//! segment's edit list says the same). Subtitle cues are timed from source time 0, so the map
//! says MPEGTS = the first video sample's presentation time, read here from the first segment.

/// The earliest presentation time of the first fragment of `segment` in 90 kHz units, from its
/// `tfdt` and `trun` boxes and the `mdhd` timescale of `init`; `None` if the boxes are not there.
pub fn first_pts_90k(init: &[u8], segment: &[u8]) -> Option<u64> {
    let timescale = timescale(init)?;
    let moof = child(segment, b"moof")?;
    let traf = child(moof, b"traf")?;
    let tfhd = child(traf, b"tfhd")?;
    let tfdt = child(traf, b"tfdt")?;
    let trun = child(traf, b"trun")?;

    let base = match tfdt.first()? {
        1 => u64::from_be_bytes(tfdt.get(4..12)?.try_into().ok()?),
        _ => u64::from(u32_at(tfdt, 4)?),
    };
    // tfhd: version+flags, track_ID, then the optional fields its flags name.
    let tfhd_flags = u32_at(tfhd, 0)? & 0x00ff_ffff;
    let mut at = 8;
    if tfhd_flags & 0x01 != 0 {
        at += 8; // base-data-offset
    }
    if tfhd_flags & 0x02 != 0 {
        at += 4; // sample-description-index
    }
    let default_duration = if tfhd_flags & 0x08 != 0 {
        u32_at(tfhd, at)?
    } else {
        0
    };

    let version = *trun.first()?;
    let flags = u32_at(trun, 0)? & 0x00ff_ffff;
    let count = u32_at(trun, 4)?;
    let mut at = 8;
    if flags & 0x001 != 0 {
        at += 4; // data-offset
    }
    if flags & 0x004 != 0 {
        at += 4; // first-sample-flags
    }
    let mut decode = i128::from(base);
    let mut earliest: Option<i128> = None;
    for _ in 0..count {
        let mut duration = default_duration;
        if flags & 0x100 != 0 {
            duration = u32_at(trun, at)?;
            at += 4;
        }
        if flags & 0x200 != 0 {
            at += 4; // size
        }
        if flags & 0x400 != 0 {
            at += 4; // flags
        }
        let offset = if flags & 0x800 != 0 {
            let raw = u32_at(trun, at)?;
            at += 4;
            // Signed in version 1, unsigned in version 0.
            if version == 1 {
                i128::from(raw as i32)
            } else {
                i128::from(raw)
            }
        } else {
            0
        };
        let pts = decode + offset;
        earliest = Some(earliest.map_or(pts, |e| e.min(pts)));
        decode += i128::from(duration);
    }
    let earliest = u64::try_from(earliest?.max(0)).ok()?;
    Some(
        ((u128::from(earliest) * 90_000 + u128::from(timescale) / 2) / u128::from(timescale))
            as u64,
    )
}

/// The `mdhd` timescale of the first track of an init segment.
fn timescale(init: &[u8]) -> Option<u32> {
    let moov = child(init, b"moov")?;
    let trak = child(moov, b"trak")?;
    let mdia = child(trak, b"mdia")?;
    let mdhd = child(mdia, b"mdhd")?;
    // version+flags, then creation and modification times (4 or 8 bytes each).
    let at = if *mdhd.first()? == 1 { 20 } else { 12 };
    u32_at(mdhd, at).filter(|&t| t > 0)
}

/// The payload of the first box of type `kind` among the boxes that fill `data`.
fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size = u32_at(data, at)? as usize;
        let (header, size) = match size {
            1 => (
                16,
                usize::try_from(u64::from_be_bytes(
                    data.get(at + 8..at + 16)?.try_into().ok()?,
                ))
                .ok()?,
            ),
            0 => (8, data.len() - at),
            n => (8, n),
        };
        if size < header || at + size > data.len() {
            return None;
        }
        if &data[at + 4..at + 8] == kind {
            return Some(&data[at + header..at + size]);
        }
        at += size;
    }
    None
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    fn init(timescale: u32) -> Vec<u8> {
        let mut mdhd = vec![0u8; 12];
        mdhd.extend_from_slice(&timescale.to_be_bytes());
        mdhd.extend_from_slice(&[0; 8]);
        let mdia = boxed(b"mdia", &boxed(b"mdhd", &mdhd));
        let trak = boxed(b"trak", &[boxed(b"tkhd", &[0; 84]), mdia].concat());
        [
            boxed(b"ftyp", b"iso6"),
            boxed(b"moov", &[boxed(b"mvhd", &[0; 100]), trak].concat()),
        ]
        .concat()
    }

    /// A fragment as ffmpeg writes one for x264 with B-frames: per-sample duration, size, flags
    /// and composition offsets.
    fn segment(base: u32, samples: &[(u32, u32)]) -> Vec<u8> {
        let tfhd = boxed(b"tfhd", &[0, 0x02, 0, 0x20, 0, 0, 0, 1, 0, 0, 0, 0]);
        let mut tfdt = vec![0u8; 4];
        tfdt.extend_from_slice(&base.to_be_bytes());
        let mut trun = vec![0, 0x00, 0x0f, 0x05];
        trun.extend_from_slice(&(samples.len() as u32).to_be_bytes());
        trun.extend_from_slice(&[0; 8]); // data offset, first sample flags
        for (duration, offset) in samples {
            trun.extend_from_slice(&duration.to_be_bytes());
            trun.extend_from_slice(&100u32.to_be_bytes());
            trun.extend_from_slice(&0u32.to_be_bytes());
            trun.extend_from_slice(&offset.to_be_bytes());
        }
        let traf = boxed(
            b"traf",
            &[tfhd, boxed(b"tfdt", &tfdt), boxed(b"trun", &trun)].concat(),
        );
        [
            boxed(b"styp", b"msdh"),
            boxed(b"moof", &[boxed(b"mfhd", &[0; 8]), traf].concat()),
            boxed(b"mdat", &[0; 16]),
        ]
        .concat()
    }

    #[test]
    fn the_first_frame_is_presented_at_its_composition_offset() {
        // What ffmpeg wrote for 30 fps (measured): I P B B with offsets 1024 2560 1024 0.
        let seg = segment(0, &[(512, 1024), (512, 2560), (512, 1024), (512, 0)]);
        assert_eq!(first_pts_90k(&init(15360), &seg), Some(6000));
        // A later fragment, and a B-frame earliest in presentation order.
        let seg = segment(15360, &[(512, 1024), (512, 0)]);
        assert_eq!(first_pts_90k(&init(15360), &seg), Some(90_000 + 3000));
        // Audio: no composition offsets.
        let seg = segment(0, &[(1024, 0), (1024, 0)]);
        assert_eq!(first_pts_90k(&init(48000), &seg), Some(0));
    }

    #[test]
    fn anything_else_is_none() {
        assert_eq!(first_pts_90k(&init(15360), b"not a segment"), None);
        assert_eq!(first_pts_90k(b"", &segment(0, &[(512, 0)])), None);
        let mut cut = segment(0, &[(512, 1024)]);
        cut.truncate(40);
        assert_eq!(first_pts_90k(&init(15360), &cut), None);
    }
}

//! Captions an owner adds to a video, as HLS subtitle renditions beside the source's own.
//!
//! Each caption track (`captions` table, one normalised WebVTT file) becomes `cc_{id}.m3u8` and
//! its WebVTT segments in the directory of the attempt whose master playlist is published,
//! cut to the video's segments with the same `X-TIMESTAMP-MAP` as the source's subtitles, and an
//! `EXT-X-MEDIA:TYPE=SUBTITLES` in the master's subtitle group. Two writers keep the master
//! naming exactly the committed captions, each holding [`db::captions::lock_video`]:
//!
//! - the API, when a caption is added or deleted ([`republish`]), if a master is published;
//! - the worker, with every master it publishes (early and final), for every attempt.
//!
//! A master is rewritten by [`merge_master`]: the captions' entries are replaced and the rest of
//! the playlist kept as it is.

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use m3u8_rs::{AlternativeMedia, AlternativeMediaType};
use sqlx::PgConnection;

use crate::{
    db::{self, CaptionKind, captions::CaptionRow},
    ids::{CaptionId, VideoId},
    media::webvtt,
    storage::{self, MediaStore, StorageError},
};

/// The master playlist's name in an attempt's directory.
pub const MASTER: &str = "master.m3u8";

/// The `GROUP-ID` of every subtitle rendition, the source's and the captions'.
pub const SUBTITLE_GROUP: &str = "subs";

/// The `CHARACTERISTICS` of captions for the deaf and hard of hearing: they transcribe the
/// dialogue and describe music and sound (Apple's HLS authoring specification).
pub const CAPTIONS_CHARACTERISTICS: &str =
    "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound";

/// How many caption tracks one video may have.
pub const MAX_PER_VIDEO: usize = 16;

/// Caption files start with this; the source's subtitle renditions never do.
const PREFIX: &str = "cc_";

/// The stem of a caption track's files: `cc_{id}` (`.m3u8`, `_00000.vtt`, …).
pub fn stem(id: CaptionId) -> String {
    format!("{PREFIX}{}", id.get().simple())
}

/// The files of caption `id` (its WebVTT `text`) for a video `duration_s` long whose cue time 0
/// is media time `mpegts`: every segment, then the playlist that lists them (the order to
/// publish them in).
pub fn files(id: CaptionId, text: &str, duration_s: f64, mpegts: u64) -> Vec<(String, Bytes)> {
    let stem = stem(id);
    let cues = webvtt::parse_webvtt(text);
    let spans = webvtt::segment_spans(duration_s);
    // Each cue goes to the segments it overlaps (found by binary search: the spans are sorted),
    // so a long video with many cues costs cues + segments, not their product.
    let mut buckets: Vec<Vec<webvtt::Cue>> = vec![Vec::new(); spans.len()];
    for cue in cues {
        let first = spans.partition_point(|span| span.1 <= cue.start_ms);
        for (span, bucket) in spans[first..].iter().zip(&mut buckets[first..]) {
            if span.0 >= cue.end_ms {
                break;
            }
            bucket.push(cue.clone());
        }
    }
    let mut files: Vec<(String, Bytes)> = spans
        .iter()
        .zip(&buckets)
        .enumerate()
        .map(|(n, (span, cues))| {
            let text = webvtt::segment_text(cues, *span, mpegts);
            (webvtt::segment_name(&stem, n), Bytes::from(text))
        })
        .collect();
    files.push((
        format!("{stem}.m3u8"),
        Bytes::from(webvtt::media_playlist(&stem, &spans)),
    ));
    files
}

/// The names [`files`] writes for `caption`, to remove them.
pub fn file_names(id: CaptionId, duration_s: f64) -> Vec<String> {
    let stem = stem(id);
    let spans = webvtt::segment_spans(duration_s);
    let mut names: Vec<String> = (0..spans.len())
        .map(|n| webvtt::segment_name(&stem, n))
        .collect();
    names.push(format!("{stem}.m3u8"));
    names
}

/// A master playlist we cannot read back.
#[derive(Debug, thiserror::Error)]
#[error("the published master playlist does not parse: {0}")]
pub struct UnreadableMaster(String);

/// `master` naming exactly `captions` as subtitle renditions: earlier caption entries replaced,
/// every other line kept, and every variant referencing the subtitle group while it has a track.
pub fn merge_master(master: &[u8], captions: &[CaptionRow]) -> Result<Vec<u8>, UnreadableMaster> {
    let mut playlist =
        m3u8_rs::parse_master_playlist_res(master).map_err(|e| UnreadableMaster(e.to_string()))?;
    // m3u8-rs reads any playlist as a master: a media playlist comes out with no variant.
    if playlist.variants.is_empty() {
        return Err(UnreadableMaster("it names no variant stream".into()));
    }
    playlist.alternatives.retain(|m| !is_caption(m));
    let mut names: Vec<String> = playlist
        .alternatives
        .iter()
        .filter(|m| m.media_type == AlternativeMediaType::Subtitles)
        .map(|m| m.name.clone())
        .collect();
    for caption in captions {
        // Labels are unique among captions; a source track may hold one already.
        let mut name = caption.label.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{} {n}", caption.label);
            n += 1;
        }
        names.push(name.clone());
        playlist.alternatives.push(AlternativeMedia {
            media_type: AlternativeMediaType::Subtitles,
            uri: Some(format!("{}.m3u8", stem(caption.id))),
            group_id: SUBTITLE_GROUP.to_owned(),
            language: Some(caption.language.clone()),
            name,
            default: false,
            autoselect: true,
            characteristics: (caption.kind == CaptionKind::Captions)
                .then(|| CAPTIONS_CHARACTERISTICS.to_owned()),
            ..AlternativeMedia::default()
        });
    }
    let group = playlist
        .alternatives
        .iter()
        .any(|m| m.media_type == AlternativeMediaType::Subtitles)
        .then(|| SUBTITLE_GROUP.to_owned());
    for variant in &mut playlist.variants {
        variant.subtitles.clone_from(&group);
    }
    let mut out = Vec::new();
    playlist
        .write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    Ok(out)
}

fn is_caption(media: &AlternativeMedia) -> bool {
    media.media_type == AlternativeMediaType::Subtitles
        && media.uri.as_deref().is_some_and(|u| u.starts_with(PREFIX))
}

/// How many caption files the API writes at once.
const PARALLEL_WRITES: usize = 16;

/// Why the API could not republish a master.
#[derive(Debug, thiserror::Error)]
pub enum RepublishError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Master(#[from] UnreadableMaster),
}

/// What changed, for [`republish`].
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// This caption (with its WebVTT) is new: its files are written before the master names it.
    Added(&'a CaptionRow, &'a str),
    /// This caption is gone: the master stops naming it, then its files are removed.
    Removed(CaptionId),
}

/// Brings the video's published master (if its current attempt has one) in line with its
/// captions after `change`. Call it in the transaction that made the change, after
/// [`db::captions::lock_video`]: the captions it reads are the ones about to be committed.
/// Without a published master there is nothing to do: the worker names the captions in the
/// master it publishes.
pub async fn republish(
    tx: &mut PgConnection,
    store: &dyn MediaStore,
    video_id: VideoId,
    change: Change<'_>,
) -> Result<(), RepublishError> {
    let Some(published) = db::captions::published_master(tx, video_id).await? else {
        return Ok(());
    };
    let key = published.attempt_key.as_str();
    let Some(current) = storage::read_output(store, video_id, key, MASTER).await? else {
        return Ok(());
    };
    let captions = db::captions::list(tx, video_id).await?;
    let mpegts = u64::try_from(published.mpegts).unwrap_or(0);
    if let Change::Added(caption, text) = change {
        // A four-hour video has 7,200 segments: on S3, one PUT after another would hold the
        // lock (and the client) for minutes. The master comes only after all of them.
        futures_util::stream::iter(files(caption.id, text, published.duration_s, mpegts))
            .map(|(name, contents)| async move {
                store.replace_output(video_id, key, &name, contents).await
            })
            .buffer_unordered(PARALLEL_WRITES)
            .try_collect::<()>()
            .await?;
    }
    let merged = merge_master(&current, &captions)?;
    store
        .replace_output(video_id, key, MASTER, Bytes::from(merged))
        .await?;
    if let Change::Removed(id) = change {
        let names = file_names(id, published.duration_s);
        store.remove_outputs(video_id, key, &names).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn caption(label: &str, kind: CaptionKind) -> CaptionRow {
        CaptionRow {
            id: CaptionId::generate(),
            video_id: VideoId::generate(),
            language: "en".into(),
            label: label.into(),
            kind,
            cue_count: 1,
            size_bytes: 40,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    const MASTER_TEXT: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",LANGUAGE=\"en\",NAME=\"English\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio_0.m3u8\"\n\
        #EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",LANGUAGE=\"en\",NAME=\"English\",AUTOSELECT=YES,URI=\"subs_0.m3u8\"\n\
        #EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"audio\",SUBTITLES=\"subs\"\n\
        720p.m3u8\n";

    fn parsed(bytes: &[u8]) -> m3u8_rs::MasterPlaylist {
        m3u8_rs::parse_master_playlist_res(bytes).unwrap()
    }

    #[test]
    fn captions_join_the_subtitle_group_and_leave_the_rest_alone() {
        let cc = caption("English", CaptionKind::Captions);
        let merged = merge_master(MASTER_TEXT.as_bytes(), std::slice::from_ref(&cc)).unwrap();
        let playlist = parsed(&merged);
        let subs: Vec<_> = playlist
            .alternatives
            .iter()
            .filter(|m| m.media_type == AlternativeMediaType::Subtitles)
            .map(|m| (m.name.as_str(), m.uri.clone().unwrap()))
            .collect();
        // The source's track keeps its name; the caption's label is numbered beside it.
        assert_eq!(
            subs,
            [
                ("English", "subs_0.m3u8".to_owned()),
                ("English 2", format!("{}.m3u8", stem(cc.id)))
            ]
        );
        let added = playlist.alternatives.last().unwrap();
        assert_eq!(
            added.characteristics.as_deref(),
            Some(CAPTIONS_CHARACTERISTICS)
        );
        assert!(added.autoselect && !added.default);
        let variant = &playlist.variants[0];
        assert_eq!(variant.subtitles.as_deref(), Some("subs"));
        assert_eq!(variant.audio.as_deref(), Some("audio"));
        assert_eq!(variant.average_bandwidth, Some(800_000));
        assert_eq!(variant.codecs.as_deref(), Some("avc1.64001f,mp4a.40.2"));
        // Merging again with none left restores the original entries.
        let back = parsed(&merge_master(&merged, &[]).unwrap());
        assert_eq!(back, parsed(MASTER_TEXT.as_bytes()));
    }

    #[test]
    fn the_group_reference_goes_with_the_last_subtitle_track() {
        let plain = MASTER_TEXT
            .lines()
            .filter(|l| !l.contains("TYPE=SUBTITLES"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace(",SUBTITLES=\"subs\"", "");
        let cc = caption("Deutsch", CaptionKind::Subtitles);
        let with = parsed(&merge_master(plain.as_bytes(), std::slice::from_ref(&cc)).unwrap());
        assert_eq!(with.variants[0].subtitles.as_deref(), Some("subs"));
        assert_eq!(with.alternatives.last().unwrap().characteristics, None);
        let without =
            parsed(&merge_master(&merge_master(plain.as_bytes(), &[cc]).unwrap(), &[]).unwrap());
        assert_eq!(without.variants[0].subtitles, None);
        assert!(merge_master(b"#EXTM3U\n#EXTINF:2,\na.m4s\n", &[]).is_err());
    }

    #[test]
    fn files_are_segments_then_the_playlist() {
        let cc = caption("English", CaptionKind::Captions);
        let text = "WEBVTT\n\n00:00:00.500 --> 00:00:02.500\nHello\n";
        let files = files(cc.id, text, 3.5, 6000);
        let names: Vec<_> = files.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names, file_names(cc.id, 3.5));
        let stem = stem(cc.id);
        assert_eq!(names.last().unwrap(), &format!("{stem}.m3u8"));
        assert_eq!(names.len(), 4);
        let first = std::str::from_utf8(&files[0].1).unwrap();
        assert!(first.contains("X-TIMESTAMP-MAP=MPEGTS:6000") && first.contains("Hello"));
        let third = std::str::from_utf8(&files[2].1).unwrap();
        assert!(!third.contains("Hello"), "{third}");
    }
}

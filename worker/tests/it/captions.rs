//! Captions added after upload (`/v1/videos/{id}/captions`): checked strictly, kept per video,
//! and published as subtitle renditions of the master playlist before, while and after the
//! video encodes.

use crate::common;

use std::time::Duration;

use common::{
    TestApp, client_with_key,
    media::{PublishedCue, published_cues},
};
use m3u8_rs::{AlternativeMediaType, MasterPlaylist};
use prostream::config::OwnerPolicy;
use serde_json::Value;
use sqlx::PgPool;

const READY: Duration = Duration::from_secs(240);

const SRT: &str = "1\n00:00:00,500 --> 00:00:01,800\nHello <i>there</i>\n\n\
                   2\n00:00:03,000 --> 00:00:04,500\n[door slams]\n";

/// `POST /v1/videos/{id}/captions?{query}` with `body` as `content_type`: status and JSON.
async fn add(
    app: &TestApp,
    client: &reqwest::Client,
    id: &str,
    query: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let response = app
        .post_body_as(
            client,
            &format!("/v1/videos/{id}/captions?{query}"),
            content_type,
            body,
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn refused(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
}

async fn master(app: &TestApp, video: &Value) -> (String, MasterPlaylist) {
    let base = TestApp::hls_base(video);
    let text = app.get_text(&app.url(&format!("{base}/master.m3u8"))).await;
    let playlist = m3u8_rs::parse_master_playlist_res(text.as_bytes())
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    (text, playlist)
}

/// The subtitle renditions a master names: (NAME, LANGUAGE, URI).
fn subtitle_entries(master: &MasterPlaylist) -> Vec<(String, String, String)> {
    master
        .alternatives
        .iter()
        .filter(|m| m.media_type == AlternativeMediaType::Subtitles)
        .map(|m| {
            (
                m.name.clone(),
                m.language.clone().unwrap_or_default(),
                m.uri.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn caption_uri(caption: &Value) -> String {
    format!(
        "cc_{}.m3u8",
        caption["id"].as_str().unwrap().replace('-', "")
    )
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn caption_files_are_checked_and_only_the_owner_may_add_list_or_delete_them(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("c.mp4", 1, 160, 120, false).await;
    let id = app.upload_ok(&clip).await;
    let srt = "application/x-subrip";

    // Mistakes name their line.
    let merged = "1\n00:00:01,000 --> 00:00:02,000\none\n2\n00:00:03,000 --> 00:00:04,000\ntwo\n";
    let answer = add(&app, &app.http, &id, "language=en", srt, merged).await;
    refused(&answer, 422, "invalid_captions");
    assert!(
        answer.1["detail"].as_str().unwrap().starts_with("line 5:"),
        "{}",
        answer.1
    );
    let latin1 = b"1\n00:00:01,000 --> 00:00:02,000\nd\xe9j\xe0 vu\n".to_vec();
    let answer = add(&app, &app.http, &id, "", srt, latin1).await;
    refused(&answer, 422, "invalid_captions");
    assert!(
        answer.1["detail"]
            .as_str()
            .unwrap()
            .contains("line 3: this is not UTF-8"),
        "{}",
        answer.1
    );
    let bad_time = "WEBVTT\n\n00:00.000 --> 00:01.000\nok\n\n00:01.000 --> 00:0x.000\nbad\n";
    let answer = add(&app, &app.http, &id, "", "text/vtt", bad_time).await;
    assert!(
        answer.1["detail"].as_str().unwrap().starts_with("line 6:"),
        "{}",
        answer.1
    );
    refused(
        &add(&app, &app.http, &id, "", srt, "").await,
        422,
        "invalid_captions",
    );
    // Over 1 MiB: refused while it streams.
    let huge = "1\n00:00:01,000 --> 00:00:02,000\n".to_owned() + &"x".repeat(1 << 20) + "\n";
    refused(
        &add(&app, &app.http, &id, "", srt, huge).await,
        413,
        "captions_too_large",
    );
    refused(
        &add(&app, &app.http, &id, "", "image/png", SRT).await,
        415,
        "unsupported_content_type",
    );
    refused(
        &add(&app, &app.http, &id, "language=e1", srt, SRT).await,
        400,
        "invalid_language",
    );
    refused(
        &add(&app, &app.http, &id, "kind=sdh", srt, SRT).await,
        400,
        "invalid_kind",
    );
    refused(
        &add(&app, &app.http, &id, "label=%20", srt, SRT).await,
        400,
        "invalid_label",
    );
    refused(
        &add(&app, &app.http, &id, "label=a%0Ab", srt, SRT).await,
        400,
        "invalid_label",
    );

    // Another owner, and nobody, cannot tell the video exists.
    let other = client_with_key(&app.new_key("other", false).await);
    refused(
        &add(&app, &other, &id, "", srt, SRT).await,
        404,
        "not_found",
    );
    refused(
        &add(&app, &reqwest::Client::new(), &id, "", srt, SRT).await,
        401,
        "api_key_required",
    );
    assert_eq!(app.count("captions").await, 0);

    // Good files: SubRip and WebVTT, labels from the language, numbered when taken.
    let (status, first) = add(&app, &app.http, &id, "language=eng&kind=captions", srt, SRT).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        (
            &first["language"],
            &first["label"],
            &first["kind"],
            &first["cues"]
        ),
        (
            &Value::from("en"),
            &Value::from("English"),
            &Value::from("captions"),
            &Value::from(2)
        )
    );
    let vtt = "WEBVTT\n\n00:00.500 --> 00:01.000\nBonjour\n";
    let (status, second) = add(&app, &app.http, &id, "language=en", "text/vtt", vtt).await;
    assert_eq!(
        (status, second["label"].as_str()),
        (201, Some("English 2")),
        "{second}"
    );
    let (status, pt) = add(
        &app,
        &app.http,
        &id,
        "language=pt-BR&label=Portugu%C3%AAs",
        "text/plain",
        vtt,
    )
    .await;
    assert_eq!(
        (status, pt["language"].as_str()),
        (201, Some("pt-BR")),
        "{pt}"
    );
    refused(
        &add(&app, &app.http, &id, "label=English", srt, SRT).await,
        409,
        "caption_label_taken",
    );

    // Two requests racing for one label: exactly one wins.
    let racers = (0..6).map(|_| add(&app, &app.http, &id, "label=Racing", srt, SRT));
    let answers = futures_util::future::join_all(racers).await;
    let won = answers.iter().filter(|a| a.0 == 201).count();
    assert_eq!(won, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|a| a.0 == 201 || a.1["code"] == "caption_label_taken"),
        "{answers:?}"
    );

    // Sixteen at most.
    for n in 0..12 {
        let (status, body) = add(&app, &app.http, &id, &format!("label=L{n}"), srt, SRT).await;
        assert_eq!(status, 201, "{body}");
    }
    refused(
        &add(&app, &app.http, &id, "label=one-too-many", srt, SRT).await,
        409,
        "too_many_captions",
    );

    let listed = app.get_json(&format!("/v1/videos/{id}/captions")).await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 16);
    assert_eq!(items[0]["id"], first["id"], "oldest first");
    let caption_path = format!("/v1/videos/{id}/captions/{}", first["id"].as_str().unwrap());
    assert_eq!(app.get_json(&caption_path).await["label"], "English");
    let theirs = other.get(app.url(&caption_path)).send().await.unwrap();
    assert_eq!(theirs.status(), 404);
    let theirs = other.delete(app.url(&caption_path)).send().await.unwrap();
    assert_eq!(theirs.status(), 404);
    assert_eq!(app.delete(&caption_path).await.status(), 204);
    assert_eq!(app.delete(&caption_path).await.status(), 404);
    assert_eq!(app.get(&caption_path).await.status(), 404);
    let malformed = format!("/v1/videos/{id}/captions/not-a-uuid");
    assert_eq!(app.get(&malformed).await.status(), 404);

    // Deleting the video deletes its captions.
    assert_eq!(app.delete(&format!("/v1/videos/{id}")).await.status(), 204);
    assert_eq!(app.count("captions").await, 0);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn captions_count_against_the_owners_storage_quota(pool: PgPool) {
    let app = TestApp::spawn_with_policy(
        pool,
        OwnerPolicy {
            quota_max_bytes: 1_000_000,
            ..OwnerPolicy::default()
        },
    )
    .await;
    let clip = app.clip("q.mp4", 1, 160, 120, false).await;
    let id = app.upload_ok(&clip).await;
    let stored = app.get_json("/v1/usage").await["stored_bytes"]
        .as_u64()
        .unwrap();
    let room = 1_000_000 - stored;
    // A file whose WebVTT is larger than the room left is refused; a small one fits and counts.
    let long_cue = "x".repeat(room as usize + 10);
    let big = format!("1\n00:00:01,000 --> 00:00:02,000\n{long_cue}\n");
    refused(
        &add(&app, &app.http, &id, "", "application/x-subrip", big).await,
        413,
        "storage_quota_exceeded",
    );
    let (status, caption) = add(&app, &app.http, &id, "", "application/x-subrip", SRT).await;
    assert_eq!(status, 201, "{caption}");
    let after = app.get_json("/v1/usage").await["stored_bytes"]
        .as_u64()
        .unwrap();
    assert_eq!(after, stored + caption["size_bytes"].as_u64().unwrap());
    app.shutdown().await;
}

/// The caption renditions a master names, with the cues they publish.
async fn caption_cues(
    app: &TestApp,
    video: &Value,
    caption: &Value,
) -> (Vec<f32>, Vec<u64>, Vec<PublishedCue>) {
    let base = TestApp::hls_base(video);
    published_cues(app, &app.url(&format!("{base}/{}", caption_uri(caption)))).await
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn captions_reach_the_master_before_while_and_after_the_video_encodes(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    // Long enough to be still encoding for a while after it is playable.
    let clip = app.clip("long.mp4", 60, 640, 360, true).await;
    let id = app.upload_ok(&clip).await;
    // Queued, no worker yet: recorded, and named by the worker's first master.
    let (status, early) = add(
        &app,
        &app.http,
        &id,
        "language=en&kind=captions",
        "application/x-subrip",
        SRT,
    )
    .await;
    assert_eq!(status, 201, "{early}");

    app.start_worker(1).await;
    let video = app.wait_until_playable(&id, READY).await;
    let (text, playlist) = master(&app, &video).await;
    assert_eq!(
        subtitle_entries(&playlist),
        [("English".into(), "en".into(), caption_uri(&early))],
        "{text}"
    );
    assert!(
        playlist
            .variants
            .iter()
            .all(|v| v.subtitles.as_deref() == Some("subs")),
        "{text}"
    );
    let cc = playlist
        .alternatives
        .iter()
        .find(|m| m.media_type == AlternativeMediaType::Subtitles)
        .unwrap();
    assert!(
        cc.characteristics
            .as_deref()
            .unwrap()
            .contains("transcribes-spoken-dialog"),
        "{text}"
    );

    // Added while it encodes: the API rewrites the published master at once.
    let vtt = "WEBVTT\n\n00:02.000 --> 00:03.000\nHallo\n";
    let (status, german) = add(&app, &app.http, &id, "language=de", "text/vtt", vtt).await;
    assert_eq!(status, 201, "{german}");
    let (text, playlist) = master(&app, &video).await;
    let names: Vec<String> = subtitle_entries(&playlist)
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(names, ["English", "Deutsch"], "{text}");
    let still = app.get_json(&format!("/v1/videos/{id}")).await;
    assert_eq!(
        still["status"], "processing",
        "added while it encodes: {still}"
    );

    // Ready: the final master (measured bandwidths) names both; the cues sit at their times on
    // the media timeline, in segments cut like the video's.
    let video = app.wait_until_ready(&id, READY).await;
    let (text, playlist) = master(&app, &video).await;
    let names: Vec<String> = subtitle_entries(&playlist)
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(names, ["English", "Deutsch"], "{text}");
    let (durations, maps, cues) = caption_cues(&app, &video, &early).await;
    let top = &playlist.variants[0].uri;
    let base = TestApp::hls_base(&video);
    let rendition = app.get_text(&app.url(&format!("{base}/{top}"))).await;
    let rendition = m3u8_rs::parse_media_playlist_res(rendition.as_bytes()).unwrap();
    let video_durations: Vec<f32> = rendition.segments.iter().map(|s| s.duration).collect();
    assert_eq!(
        durations.len(),
        video_durations.len(),
        "{durations:?} vs {video_durations:?}"
    );
    for (c, v) in durations.iter().zip(&video_durations) {
        assert!((c - v).abs() < 0.05, "{durations:?} vs {video_durations:?}");
    }
    let start = maps[0] as f64 / 90_000.0;
    let hello: Vec<&PublishedCue> = cues
        .iter()
        .filter(|c| c.text == "Hello <i>there</i>")
        .collect();
    assert!(!hello.is_empty(), "{cues:?}");
    assert!(
        (hello[0].start - start - 0.5).abs() < 0.001 && (hello[0].end - start - 1.8).abs() < 0.001,
        "{cues:?}"
    );
    let (_, _, german_cues) = caption_cues(&app, &video, &german).await;
    assert!(
        german_cues
            .iter()
            .any(|c| c.text == "Hallo" && (c.start - start - 2.0).abs() < 0.001),
        "{german_cues:?}"
    );

    // Deleted: gone from the master, and its files with it.
    let path = format!("/v1/videos/{id}/captions/{}", early["id"].as_str().unwrap());
    assert_eq!(app.delete(&path).await.status(), 204);
    let (text, playlist) = master(&app, &video).await;
    let names: Vec<String> = subtitle_entries(&playlist)
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(names, ["Deutsch"], "{text}");
    let gone = app.get(&format!("{base}/{}", caption_uri(&early))).await;
    assert_eq!(gone.status(), 404);
    // The last one gone: no variant references the subtitle group any more.
    let path = format!(
        "/v1/videos/{id}/captions/{}",
        german["id"].as_str().unwrap()
    );
    assert_eq!(app.delete(&path).await.status(), 204);
    let (text, playlist) = master(&app, &video).await;
    assert!(subtitle_entries(&playlist).is_empty(), "{text}");
    assert!(
        playlist.variants.iter().all(|v| v.subtitles.is_none()),
        "{text}"
    );
    app.shutdown().await;
}

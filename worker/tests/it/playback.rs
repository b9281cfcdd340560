//! Playback access: public videos' HLS for anyone, private videos' HLS only through the
//! expiring signed URLs the API hands out, which a standard player (ffmpeg here) follows from
//! the master URL alone.

use crate::common;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use common::{TestApp, eventually, header_str, probe_duration};
use prostream::ids::VideoId;
use prostream::playback::{Signer, SigningKey};
use prostream_worker::pipeline::Outcome;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Uploads `clip`, gives the video `visibility`, runs its job to the end; returns the video.
async fn ready_video(app: &TestApp, clip: &Path, visibility: &str) -> Value {
    let id: VideoId = app.upload_ok(clip).await.parse().unwrap();
    sqlx::query("UPDATE videos SET visibility = $2 WHERE id = $1")
        .bind(id)
        .bind(visibility)
        .execute(&app.pool)
        .await
        .unwrap();
    let ctx = app.job_context().await;
    assert_eq!(app.process(&ctx, &id.to_string()).await, Outcome::Ready);
    let video = app.get_json(&format!("/v1/videos/{id}")).await;
    assert_eq!(video["status"], "ready", "{video}");
    video
}

/// A client with no API key, as a player or a browser's `<video>` has none.
fn anonymous() -> reqwest::Client {
    reqwest::Client::new()
}

/// The problem `code` of a response, asserting its status.
async fn problem(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status, "{}", response.url());
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    body["code"].as_str().unwrap().to_owned()
}

async fn get(url: &str) -> reqwest::Response {
    anonymous().get(url).send().await.unwrap()
}

/// ffmpeg given only `master_url`: decodes every stream of every variant to null.
async fn decode_all_variants(master_url: &str) {
    common::media::ffmpeg_decodes(master_url, &["-map", "0"]).await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_private_video_plays_from_its_signed_master_url_alone_and_not_without_it(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("clip.mp4", 3, 640, 360, true).await;
    let source_duration = probe_duration(clip.to_str().unwrap()).await;
    let video = ready_video(&app, &clip, "private").await;
    let id = video["id"].as_str().unwrap();

    let hls = video["playback"]["hls"].as_str().unwrap();
    assert!(
        hls.starts_with(&format!("/v1/videos/{id}/signed/")),
        "{hls}"
    );
    let poster = video["playback"]["poster"].as_str().unwrap();
    assert_eq!(
        poster.trim_end_matches("poster.jpg"),
        hls.trim_end_matches("master.m3u8")
    );
    let expires_at = time::OffsetDateTime::parse(
        video["playback"]["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ttl = time::Duration::hours(1);
    let now = time::OffsetDateTime::now_utc();
    assert!(
        expires_at >= now + ttl - time::Duration::minutes(1),
        "{expires_at}"
    );
    assert!(expires_at <= now + ttl + ttl / 10, "{expires_at}");

    // Without the token: refused, even with the owner's API key.
    let attempt = hls.split('/').nth_back(1).unwrap();
    let unsigned = app.url(&format!("/v1/videos/{id}/hls/{attempt}"));
    for file in ["master.m3u8", "240p.m3u8", "240p_init.mp4", "poster.jpg"] {
        let url = format!("{unsigned}/{file}");
        assert_eq!(
            problem(get(&url).await, 403).await,
            "playback_token_required"
        );
        let with_key = app.http.get(&url).send().await.unwrap();
        assert_eq!(problem(with_key, 403).await, "playback_token_required");
    }

    // With it, and no API key: the master, whose relative URIs resolve under the same token.
    let master_url = app.url(hls);
    let master = get(&master_url).await;
    assert_eq!(master.status(), 200);
    assert_eq!(master.headers()["cache-control"], "private, max-age=1");
    let text = master.text().await.unwrap();
    assert!(
        text.contains("\n360p.m3u8") && text.contains("\n240p.m3u8"),
        "{text}"
    );
    let base = TestApp::hls_base(&video);
    let segment = get(&app.url(&format!("{base}/240p_init.mp4"))).await;
    assert_eq!(segment.status(), 200);
    let cache = header_str(&segment, "cache-control").to_owned();
    let max_age: i64 = cache
        .strip_prefix("private, max-age=")
        .and_then(|rest| rest.strip_suffix(", immutable"))
        .unwrap_or_else(|| panic!("{cache}"))
        .parse()
        .unwrap();
    assert!(max_age <= (expires_at - now).whole_seconds() + 1, "{cache}");

    // The standard-player proof: ffmpeg with the master URL only decodes every variant.
    decode_all_variants(&master_url).await;
    let over_http = probe_duration(&master_url).await;
    assert!(
        (over_http - source_duration).abs() <= 0.5,
        "{over_http} vs {source_duration}"
    );

    let poster = get(&app.url(poster)).await;
    assert_eq!(poster.status(), 200);
    assert_eq!(poster.headers()["content-type"], "image/jpeg");
    assert!(header_str(&poster, "cache-control").starts_with("private, "));
    assert!(poster.bytes().await.unwrap().starts_with(&[0xFF, 0xD8]));

    // The list signs the same way.
    let list = app.get_json("/v1/videos").await;
    assert_eq!(list["items"][0]["playback"]["hls"], hls);

    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_public_video_plays_with_no_token_and_no_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("clip.mp4", 2, 320, 240, true).await;
    let video = ready_video(&app, &clip, "public").await;
    let id = video["id"].as_str().unwrap();

    let hls = video["playback"]["hls"].as_str().unwrap();
    assert!(hls.starts_with(&format!("/v1/videos/{id}/hls/")), "{hls}");
    assert!(video["playback"]["expires_at"].is_null(), "{video}");
    let master = get(&app.url(hls)).await;
    assert_eq!(master.status(), 200);
    assert_eq!(master.headers()["cache-control"], "public, max-age=1");
    let base = TestApp::hls_base(&video);
    let init = get(&app.url(&format!("{base}/240p_init.mp4"))).await;
    assert_eq!(init.status(), 200);
    assert_eq!(
        init.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    decode_all_variants(&app.url(hls)).await;

    // A signed URL works for a public video too (one handed out while it was private).
    let token = app.signer().sign(id.parse().unwrap(), now()).token;
    let attempt = hls.split('/').nth_back(1).unwrap();
    let signed = app.url(&format!(
        "/v1/videos/{id}/signed/{token}/{attempt}/master.m3u8"
    ));
    assert_eq!(get(&signed).await.status(), 200);

    // Made private through this API: the plain URL stops working at once, and opens again
    // at once when made public.
    for (visibility, status) in [("private", 403), ("public", 200)] {
        let patched = app
            .patch_json(
                &format!("/v1/videos/{id}"),
                &json!({ "visibility": visibility }),
            )
            .await;
        assert_eq!(patched.status(), 200);
        assert_eq!(get(&app.url(hls)).await.status(), status, "{visibility}");
    }

    // Made private by another API replica (here: straight in the database), this one follows
    // once its remembered answer is older than the TTL.
    sqlx::query("UPDATE videos SET visibility = 'private' WHERE id = $1::uuid")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let changed = Instant::now();
    let response = eventually(
        prostream::http::public_videos::TTL + Duration::from_secs(1),
        "this replica follows the change to private",
        async || {
            let response = get(&app.url(hls)).await;
            if response.status() == 403 {
                Ok(response)
            } else {
                Err(format!(
                    "still public {:?} after the change",
                    changed.elapsed()
                ))
            }
        },
    )
    .await;
    assert_eq!(problem(response, 403).await, "playback_token_required");

    app.shutdown().await;
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// Writes an attempt's output for a video that has no row: the signed route needs none.
fn fake_attempt(app: &TestApp, id: VideoId, attempt: &str) {
    let dir = app
        .media_dir
        .join("videos")
        .join(id.to_string())
        .join(attempt);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("master.m3u8"), format!("#EXTM3U\n# {id}\n")).unwrap();
    std::fs::write(dir.join("240p_00000.m4s"), vec![7u8; 1000]).unwrap();
}

/// `token` with the character at `index` replaced by another one of the same alphabet.
fn flip(token: &str, index: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[index] = match bytes[index] {
        b'0'..=b'8' => bytes[index] + 1,
        b'9' => b'0',
        b'A' => b'B',
        _ => b'A',
    };
    String::from_utf8(bytes).unwrap()
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn tampered_expired_and_other_videos_tokens_are_refused_with_their_codes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (a, b) = (VideoId::generate(), VideoId::generate());
    fake_attempt(&app, a, "1-aaaa0001");
    fake_attempt(&app, b, "1-bbbb0001");
    let url = |video: VideoId, token: &str, attempt: &str| {
        app.url(&format!(
            "/v1/videos/{video}/signed/{token}/{attempt}/master.m3u8"
        ))
    };
    let token_a = app.signer().sign(a, now()).token;
    let ok = get(&url(a, &token_a, "1-aaaa0001")).await;
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains(&a.to_string()));

    let (expiry, rest) = token_a.split_once('.').unwrap();
    let (kid, signature) = rest.split_once('.').unwrap();
    let signature_at = expiry.len() + 1 + kid.len() + 1;
    let mut invalid = vec![
        // one character of the signature, first and last
        flip(&token_a, signature_at),
        flip(&token_a, token_a.len() - 1),
        // one digit of the expiry, first and last
        flip(&token_a, 0),
        flip(&token_a, expiry.len() - 1),
        // the expiry pushed a year later, signature kept
        format!(
            "{}.{kid}.{signature}",
            expiry.parse::<u64>().unwrap() + 31_536_000
        ),
        // another key's token under the same key id
        Signer::new(vec![SigningKey::generate(kid)], Duration::from_secs(60))
            .unwrap()
            .sign(a, now())
            .token,
        // not a token at all
        "garbage".to_owned(),
        format!("{expiry}.{kid}"),
    ];
    invalid.dedup();
    for token in &invalid {
        let response = get(&url(a, token, "1-aaaa0001")).await;
        assert_eq!(
            problem(response, 403).await,
            "playback_token_invalid",
            "{token}"
        );
    }
    // Video A's token on video B's path (and B's attempt).
    let response = get(&url(b, &token_a, "1-bbbb0001")).await;
    assert_eq!(problem(response, 403).await, "playback_token_invalid");

    // Authentic but past its expiry.
    let past = now().unix_timestamp() as u64 - 5;
    let expired = app.signer().sign_until(a, past).token;
    let response = get(&url(a, &expired, "1-aaaa0001")).await;
    assert_eq!(problem(response, 403).await, "playback_token_expired");

    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_signed_url_from_the_api_stops_working_when_its_ttl_has_passed(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let clip = app.clip("clip.mp4", 2, 320, 240, true).await;
    let id = ready_video(&app, &clip, "private").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one_second =
        Signer::new(vec![SigningKey::generate("short")], Duration::from_secs(1)).unwrap();
    app.restart_api_with_signer(one_second).await;

    let video = app.get_json(&format!("/v1/videos/{id}")).await;
    let master = app.url(video["playback"]["hls"].as_str().unwrap());
    let response = eventually(
        Duration::from_secs(10),
        "the 1 s URL stops working",
        async || {
            let response = get(&master).await;
            if response.status() == 403 {
                return Ok(response);
            }
            assert_eq!(response.status(), 200);
            Err("the 1 s URL still works")
        },
    )
    .await;
    assert_eq!(problem(response, 403).await, "playback_token_expired");
    // A fresh read gives a fresh URL.
    let video = app.get_json(&format!("/v1/videos/{id}")).await;
    assert_ne!(app.url(video["playback"]["hls"].as_str().unwrap()), master);

    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_rotated_key_keeps_old_urls_working_until_it_is_removed(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let clip = app.clip("clip.mp4", 2, 320, 240, true).await;
    let id = ready_video(&app, &clip, "private").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (k1, k2) = (SigningKey::generate("k1"), SigningKey::generate("k2"));
    let hour = Duration::from_secs(3600);
    let hls_path = |video: &Value| video["playback"]["hls"].as_str().unwrap().to_owned();

    app.restart_api_with_signer(Signer::new(vec![k1.clone()], hour).unwrap())
        .await;
    let old = hls_path(&app.get_json(&format!("/v1/videos/{id}")).await);
    assert!(old.contains(".k1."), "{old}");
    assert_eq!(get(&app.url(&old)).await.status(), 200);

    // k2 added first: old URLs still play, new ones are signed with k2.
    app.restart_api_with_signer(Signer::new(vec![k2.clone(), k1], hour).unwrap())
        .await;
    assert_eq!(get(&app.url(&old)).await.status(), 200);
    let new = hls_path(&app.get_json(&format!("/v1/videos/{id}")).await);
    assert!(new.contains(".k2."), "{new}");
    decode_all_variants(&app.url(&new)).await;

    // k1 removed: its URLs are refused, k2's still play.
    app.restart_api_with_signer(Signer::new(vec![k2], hour).unwrap())
        .await;
    let response = get(&app.url(&old)).await;
    assert_eq!(problem(response, 403).await, "playback_token_invalid");
    assert_eq!(get(&app.url(&new)).await.status(), 200);

    app.shutdown().await;
}

/// Sends `path` as it is (no client-side normalisation of `..` or percent-escapes); returns the
/// status and body.
async fn raw_get(base: &str, path: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    (status, text)
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn traversal_with_a_valid_token_never_reaches_a_file_outside_the_attempt(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (a, b) = (VideoId::generate(), VideoId::generate());
    fake_attempt(&app, a, "1-aaaa0001");
    fake_attempt(&app, b, "1-bbbb0001");
    let secret = "SECRET-NOT-SERVED";
    let video_a = app.media_dir.join("videos").join(a.to_string());
    std::fs::write(video_a.join("outside.m3u8"), secret).unwrap();
    std::fs::write(video_a.join("1-aaaa0001").join(".hidden.m3u8"), secret).unwrap();
    std::fs::create_dir_all(app.media_dir.join("uploads")).unwrap();
    std::fs::write(app.media_dir.join("uploads").join(a.to_string()), secret).unwrap();
    std::fs::write(app.media_dir.join("top.m3u8"), secret).unwrap();

    let token = app.signer().sign(a, now()).token;
    let signed = format!("/v1/videos/{a}/signed/{token}");
    let (status, _) = raw_get(&app.base, &format!("{signed}/1-aaaa0001/master.m3u8")).await;
    assert_eq!(status, 200);
    for path in [
        format!("{signed}/1-aaaa0001/../outside.m3u8"),
        format!("{signed}/1-aaaa0001/..%2Foutside.m3u8"),
        format!("{signed}/1-aaaa0001/..%2foutside.m3u8"),
        format!("{signed}/1-aaaa0001/%2e%2e%2Foutside.m3u8"),
        format!("{signed}/1-aaaa0001/..%5Coutside.m3u8"),
        format!("{signed}/1-aaaa0001/.hidden.m3u8"),
        format!("{signed}/1-aaaa0001/%2e%2e"),
        format!("{signed}/../1-aaaa0001/master.m3u8"),
        format!("{signed}/%2e%2e/outside.m3u8"),
        format!("{signed}/..%2F..%2F..%2Fuploads/{a}"),
        format!("{signed}/..%2F..%2F..%2F/top.m3u8"),
        format!("{signed}/..%2F{b}%2F1-bbbb0001/master.m3u8"),
        format!("{signed}/1-aaaa0001/..%2F..%2F{b}%2F1-bbbb0001%2Fmaster.m3u8"),
        format!("{signed}/../../{b}/1-bbbb0001/master.m3u8"),
        format!("{signed}/1-aaaa0001/%00master.m3u8"),
        format!("/v1/videos/{a}/signed/{token}%2F..%2F..%2F{b}/1-bbbb0001/master.m3u8"),
        format!("/v1/videos/{a}%2F..%2F{b}/signed/{token}/1-bbbb0001/master.m3u8"),
    ] {
        let (status, text) = raw_get(&app.base, &path).await;
        assert!(
            [400, 403, 404].contains(&status),
            "{path} answered {status}: {text}"
        );
        assert!(!text.contains(secret), "{path}: {text}");
    }

    app.shutdown().await;
}

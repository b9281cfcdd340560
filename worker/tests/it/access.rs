//! Who may do what: API keys on every `/v1` operation, owners who see only their own videos and
//! uploads, admin keys that see everything, per-owner quotas, visibility, and `AUTH_MODE=open`.

use crate::common;

use std::time::Duration;

use common::{TestApp, client_with_key, get_json_as, header_str, make_clip, scratch};
use prostream::{config::OwnerPolicy, db};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

/// A request of `method` to `url` with the tus header (so the tus routes reach their key check).
fn request(client: &reqwest::Client, method: Method, url: &str) -> reqwest::RequestBuilder {
    client.request(method, url).header("tus-resumable", "1.0.0")
}

/// The problem `code` of a response (`None` for a HEAD or a body that is not a problem).
async fn code_of(response: reqwest::Response) -> Option<String> {
    let body: Value = response.json().await.ok()?;
    body["code"].as_str().map(str::to_owned)
}

/// Every operation the OpenAPI document says needs `api_key`, as (method, path with ids filled in).
fn secured_operations(id: &str) -> Vec<(Method, String)> {
    let doc = serde_json::to_value(prostream::http::openapi()).unwrap();
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("api_key").is_some()));
            if secured {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                found.push((method, path.replace("{id}", id)));
            }
        }
    }
    found
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn every_v1_operation_but_playback_refuses_a_missing_malformed_unknown_or_revoked_key(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let revoked = app.new_key("gone", false).await;
    let mut conn = app.pool.acquire().await.unwrap();
    assert!(
        db::keys::revoke(&mut conn, &revoked[..prostream::auth::PREFIX_LEN])
            .await
            .unwrap()
    );
    drop(conn);

    // The document must cover the API: every /v1 operation except HLS playback (plain for public
    // videos, signed for private ones) needs a key.
    let doc = serde_json::to_value(prostream::http::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") || path.contains("/hls/") || path.contains("/signed/") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("api_key").is_some()));
            assert!(secured, "{method} {path} does not require an API key");
            assert!(
                operation["responses"].get("401").is_some(),
                "{method} {path} does not document its 401"
            );
        }
    }
    let operations = secured_operations(&uuid::Uuid::now_v7().to_string());
    assert!(operations.len() >= 12, "{operations:?}");

    let anonymous = reqwest::Client::new();
    let cases: [(&str, Option<String>, &str); 5] = [
        ("no header", None, "api_key_required"),
        (
            "not bearer",
            Some(format!("Basic {}", app.key)),
            "api_key_invalid",
        ),
        (
            "malformed",
            Some("Bearer ps_short".into()),
            "api_key_invalid",
        ),
        (
            "unknown",
            Some(format!("Bearer {}", prostream::auth::generate().secret)),
            "api_key_invalid",
        ),
        (
            "revoked",
            Some(format!("Bearer {revoked}")),
            "api_key_invalid",
        ),
    ];
    for (method, path) in &operations {
        for (label, header, code) in &cases {
            let mut req = request(&anonymous, method.clone(), &app.url(path));
            if let Some(value) = header {
                req = req.header("authorization", value);
            }
            let response = req.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {label}"
            );
            assert_eq!(
                response.headers()["www-authenticate"],
                r#"Bearer realm="prostream""#,
                "{method} {path}"
            );
            if *method != Method::HEAD {
                assert_eq!(
                    code_of(response).await.as_deref(),
                    Some(*code),
                    "{method} {path} with {label}"
                );
            }
        }
    }
    // Nothing was created by any of them.
    assert_eq!(app.count("videos").await, 0);
    assert_eq!(app.count("uploads").await, 0);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn another_owners_videos_and_uploads_answer_404_and_an_admin_key_sees_them_all(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("a.mp4", 1, 160, 120, true).await;
    let mine = app.upload_ok(&clip).await;
    let other = client_with_key(&app.new_key("someone-else", false).await);
    let admin = client_with_key(&app.new_key("operator", true).await);

    // Someone else's key: every operation on the video is a 404, as for a video that does not exist.
    let video = app.url(&format!("/v1/videos/{mine}"));
    let attempts = [
        (Method::GET, video.clone(), None),
        (
            Method::PATCH,
            video.clone(),
            Some(json!({"title": "mine now"})),
        ),
        (Method::POST, format!("{video}/cancel"), None),
        (Method::POST, format!("{video}/retry"), None),
        (Method::DELETE, video.clone(), None),
    ];
    for (method, url, body) in &attempts {
        let mut req = other.request(method.clone(), url);
        if let Some(body) = body {
            req = req.json(body);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {url}");
        assert_eq!(code_of(response).await.as_deref(), Some("not_found"));
    }
    let theirs: Value = get_json_as(&other, &app.url("/v1/videos")).await;
    assert_eq!(theirs["items"], json!([]), "{theirs}");
    // Untouched by all that: still queued, still titled as uploaded.
    let video_now = app.get_json(&format!("/v1/videos/{mine}")).await;
    assert_eq!(video_now["status"], "queued", "{video_now}");
    assert_eq!(video_now["title"], "Untitled");

    // A resumable upload of ours: HEAD, PATCH and DELETE with their key are 404s too.
    let created = request(&app.http, Method::POST, &app.url("/v1/uploads"))
        .header("upload-length", "100")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let upload = app.url(header_str(&created, "location"));
    for method in [Method::HEAD, Method::PATCH, Method::DELETE] {
        let response = request(&other, method.clone(), &upload)
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .body(vec![0u8; 10])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method}");
    }
    let head = request(&app.http, Method::HEAD, &upload)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["upload-offset"], "0");

    // The admin key sees and lists every owner's video, and may act on it.
    let seen: Value = get_json_as(&admin, &video).await;
    assert_eq!(seen["id"], mine.as_str());
    let all: Value = get_json_as(&admin, &app.url("/v1/videos")).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");
    let head = request(&admin, Method::HEAD, &upload).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let canceled = admin.post(format!("{video}/cancel")).send().await.unwrap();
    assert_eq!(canceled.status(), StatusCode::OK);
    let deleted = admin.delete(&video).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(app.entries("uploads").iter().all(|f| f.starts_with('.')));

    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn uploads_past_the_daily_quota_get_429_with_retry_after_until_an_operator_raises_it(
    pool: PgPool,
) {
    let policy = OwnerPolicy {
        quota_uploads_per_day: 2,
        ..OwnerPolicy::default()
    };
    let app = TestApp::spawn_with_policy(pool, policy).await;
    let clip = app.clip("a.mp4", 1, 160, 120, false).await;
    app.upload_ok(&clip).await;
    // A refused file counts too: it cost a probe.
    let (status, _) = app.upload_bytes(b"not a video".to_vec(), "video/mp4").await;
    assert_eq!(status, 415);

    for attempt in ["raw", "tus"] {
        let response = match attempt {
            "raw" => {
                app.post_body("/v1/videos", "video/mp4", std::fs::read(&clip).unwrap())
                    .await
            }
            _ => request(&app.http, Method::POST, &app.url("/v1/uploads"))
                .header("upload-length", "100")
                .send()
                .await
                .unwrap(),
        };
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{attempt}"
        );
        let wait: u64 = header_str(&response, "retry-after").parse().unwrap();
        assert!((1..=86_400).contains(&wait), "{wait}");
        assert_eq!(
            code_of(response).await.as_deref(),
            Some("upload_quota_exceeded")
        );
    }
    // Another owner has its own count.
    let other = client_with_key(&app.new_key("other", false).await);
    let response = app.upload_as(&other, &clip).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    // The operator raises this owner's limit (as `prostream keys quota` does): one more fits.
    let mut conn = app.pool.acquire().await.unwrap();
    let raised = db::owners::Overrides {
        max_bytes: None,
        max_uploads_per_day: Some(3),
    };
    assert!(
        db::owners::set_overrides(&mut conn, "test-owner", raised)
            .await
            .unwrap()
    );
    drop(conn);
    app.upload_ok(&clip).await;
    let (status, body) = app.upload(&clip, "video/mp4").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(app.count("videos").await, 3);

    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn uploads_that_would_pass_the_storage_quota_get_413_and_leave_nothing_behind(pool: PgPool) {
    let fixtures = scratch();
    let clip = make_clip(&fixtures, "a.mp4", 2, 320, 240, true).await;
    let size = std::fs::metadata(&clip).unwrap().len();
    let policy = OwnerPolicy {
        quota_max_bytes: size * 3 / 2,
        ..OwnerPolicy::default()
    };
    let app = TestApp::spawn_with_policy(pool, policy).await;
    app.upload_ok(&clip).await;

    // Announced: refused before a byte is read.
    let (status, body) = app.upload(&clip, "video/mp4").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "storage_quota_exceeded");
    // Chunked, so the size is known only at the end: refused when it would be recorded.
    let bytes = std::fs::read(&clip).unwrap();
    let stream = futures_util::stream::iter(
        bytes
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let chunked = reqwest::Body::wrap_stream(stream);
    let response = app.post_body("/v1/videos", "video/mp4", chunked).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        code_of(response).await.as_deref(),
        Some("storage_quota_exceeded")
    );
    // tus: the whole Upload-Length counts from the creation on.
    let response = request(&app.http, Method::POST, &app.url("/v1/uploads"))
        .header("upload-length", size.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let small = request(&app.http, Method::POST, &app.url("/v1/uploads"))
        .header("upload-length", (size / 4).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), StatusCode::CREATED);
    // ... and an unfinished one holds its place: the next small one no longer fits.
    let next = request(&app.http, Method::POST, &app.url("/v1/uploads"))
        .header("upload-length", (size / 3).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(app.count("videos").await, 1);
    let originals: Vec<String> = app
        .entries("uploads")
        .into_iter()
        .filter(|f| !f.starts_with('.'))
        .collect();
    assert_eq!(originals.len(), 1, "{originals:?}");

    // Deleting a video frees its bytes.
    let id = app.get_json("/v1/videos").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = app.delete(&format!("/v1/videos/{id}")).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    app.upload_ok(&clip).await;

    let _ = std::fs::remove_dir_all(&fixtures);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_video_is_private_by_default_public_on_request_and_its_visibility_can_change(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let clip = app.clip("a.mp4", 1, 160, 120, false).await;
    let (status, video) = app.upload(&clip, "video/mp4").await;
    assert_eq!(status, 202);
    assert_eq!(video["visibility"], "private");
    let id = video["id"].as_str().unwrap().to_owned();

    let response = app
        .post_body(
            "/v1/videos?visibility=public&title=Open",
            "video/mp4",
            std::fs::read(&clip).unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let public: Value = response.json().await.unwrap();
    assert_eq!(public["visibility"], "public");
    assert_eq!(public["title"], "Open");

    for asked in ["secret", ""] {
        let bad = app
            .post_body(
                &format!("/v1/videos?visibility={asked}"),
                "video/mp4",
                std::fs::read(&clip).unwrap(),
            )
            .await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{asked:?}");
        assert_eq!(code_of(bad).await.as_deref(), Some("invalid_visibility"));
    }

    let patched: Value = app
        .patch_json(
            &format!("/v1/videos/{id}"),
            &json!({"visibility": "public", "title": "Renamed"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["visibility"], "public", "{patched}");
    assert_eq!(patched["title"], "Renamed");
    for (body, code) in [
        (json!({"visibility": "secret"}), "invalid_json"),
        (json!({"owner": "me"}), "invalid_json"),
        (json!({"title": ""}), "invalid_title"),
        (json!([null, null]), "invalid_json"),
    ] {
        let response = app.patch_json(&format!("/v1/videos/{id}"), &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code_of(response).await.as_deref(), Some(code), "{body}");
    }
    let text = app
        .http
        .patch(app.url(&format!("/v1/videos/{id}")))
        .body("visibility=private")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // tus: `visibility` in Upload-Metadata ("public" in base64).
    let created = request(&app.http, Method::POST, &app.url("/v1/uploads"))
        .header(
            "upload-length",
            std::fs::metadata(&clip).unwrap().len().to_string(),
        )
        .header("upload-metadata", "visibility cHVibGlj")
        .header("content-type", "application/offset+octet-stream")
        .body(std::fs::read(&clip).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let video_id = header_str(&created, "prostream-video-id");
    let via_tus = app.get_json(&format!("/v1/videos/{video_id}")).await;
    assert_eq!(via_tus["visibility"], "public", "{via_tus}");

    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn in_open_mode_a_request_without_a_key_acts_as_an_admin(pool: PgPool) {
    let app = TestApp::spawn_open(pool).await;
    let clip = app.clip("a.mp4", 1, 160, 120, false).await;
    // One video of a keyed owner...
    let owned = app.upload_ok(&clip).await;
    // ... seen, with a keyless one, by a keyless request.
    let anonymous = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let response = app.upload_as(&anonymous, &clip).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let page: Value = get_json_as(&anonymous, &app.url("/v1/videos")).await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&owned.as_str()));
    // A key that is sent must still be a real one.
    let response = anonymous
        .get(app.url("/v1/videos"))
        .header("authorization", "Bearer nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn an_owner_reads_its_usage_and_only_an_admin_key_lists_every_owner(pool: PgPool) {
    let policy = OwnerPolicy {
        quota_max_bytes: 1 << 30,
        quota_uploads_per_day: 10,
        ..OwnerPolicy::default()
    };
    let app = TestApp::spawn_with_policy(pool, policy).await;
    let clip = app.clip("a.mp4", 1, 160, 120, false).await;
    let size = std::fs::metadata(&clip).unwrap().len();
    app.upload_ok(&clip).await;

    let usage = app.get_json("/v1/usage").await;
    assert_eq!(usage["owner"], "test-owner", "{usage}");
    assert_eq!(usage["stored_bytes"], size);
    assert_eq!(usage["max_bytes"], 1u64 << 30);
    assert_eq!(usage["uploads_today"], 1);
    assert_eq!(usage["uploads_per_day"], 10);

    let refused = app.http.get(app.url("/v1/owners")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(code_of(refused).await.as_deref(), Some("forbidden"));

    let admin = client_with_key(&app.new_key("operator", true).await);
    let owners: Value = get_json_as(&admin, &app.url("/v1/owners")).await;
    let names: Vec<&str> = owners["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["owner"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["operator", "test-owner"], "{owners}");
    assert_eq!(owners["items"][1]["stored_bytes"], size);

    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn the_bearer_scheme_is_matched_in_any_case_and_a_malformed_key_is_told_what_is_wrong(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool).await;
    let anonymous = reqwest::Client::new();
    let get = |authorization: String| {
        anonymous
            .get(app.url("/v1/videos"))
            .header("authorization", authorization)
            .send()
    };
    // RFC 9110, 11.1: the scheme is case-insensitive.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = get(format!("{scheme} {}", app.key)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    // Each refusal says what is actually wrong, and never repeats what was sent.
    for (header, says, not) in [
        (
            format!("Basic {}", app.key),
            "does not use the Bearer scheme",
            "not a ProStream API key",
        ),
        (
            "Bearer ps_short".to_owned(),
            "not a ProStream API key: it is 8 characters long",
            "Bearer scheme",
        ),
        (
            format!("bearer {}x", app.key),
            "not a ProStream API key: it is 47 characters long",
            "Bearer scheme",
        ),
        (
            "Bearer ghp_notours".to_owned(),
            "not a ProStream API key: it does not start with `ps_`",
            "Bearer scheme",
        ),
    ] {
        let response = get(header.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "api_key_invalid", "{header}");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains(says) && !detail.contains(not),
            "{header}: {detail}"
        );
        assert!(
            !detail.contains(&app.key) && !detail.contains("ghp_"),
            "{detail}"
        );
    }
    app.shutdown().await;
}

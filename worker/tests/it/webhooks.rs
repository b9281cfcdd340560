//! Webhooks end to end: owners register endpoints through the API, videos change state through
//! the real worker loop and lifecycle calls, and a loopback receiver (a small axum server) records
//! every request. Signatures are checked by an independent implementation of Standard Webhooks:
//! PyPI's `standardwebhooks`, run by `tests/interop/verify_webhooks.py`.

use crate::common;

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use common::{TestApp, client_with_key, eventually, get_json_as, scratch};
use serde_json::{Value, json};
use sqlx::PgPool;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Ok,
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// Answers only after this long (past the deliverer's timeout).
    Sleep(Duration),
}

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Self {
        type Shared = (Arc<Mutex<Vec<Received>>>, Behaviour);
        async fn hook(
            State((log, behaviour)): State<Shared>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let seen = {
                let mut log = log.lock().unwrap();
                log.push(Received {
                    headers: headers
                        .iter()
                        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                        .collect(),
                    body: String::from_utf8(body.to_vec()).unwrap(),
                    at: Instant::now(),
                });
                log.len()
            };
            match behaviour {
                Behaviour::Ok => StatusCode::OK,
                Behaviour::FailFirst(n) if seen <= n => StatusCode::INTERNAL_SERVER_ERROR,
                Behaviour::FailFirst(_) => StatusCode::NO_CONTENT,
                Behaviour::Sleep(d) => {
                    // The slow endpoint under test stalls on purpose (not a wait for anything).
                    tokio::time::sleep(d).await;
                    StatusCode::OK
                }
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .fallback(hook)
            .with_state((log.clone(), behaviour));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, log }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/prostream", self.addr)
    }

    fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Polls until a request for `video_id` of event `kind` arrived; returns it.
    async fn wait_for(&self, video_id: &str, kind: &str, limit: Duration) -> Received {
        let what = format!("a {kind} for {video_id}");
        eventually(limit, &what, async || {
            let requests = self.requests();
            let found = requests.iter().find(|r| {
                let event = r.json();
                event["type"] == kind && event["data"]["video_id"] == video_id
            });
            match found {
                Some(found) => Ok(found.clone()),
                None => Err(format!(
                    "got {:?}",
                    requests
                        .iter()
                        .map(|r| r.json()["type"].clone())
                        .collect::<Vec<_>>()
                )),
            }
        })
        .await
    }
}

/// Registers `url` for `events` with `client`'s key; returns the answer (201: id and secret).
async fn register(app: &TestApp, client: &reqwest::Client, url: &str, events: &[&str]) -> Value {
    let response = client
        .post(app.url("/v1/webhooks"))
        .json(&json!({ "url": url, "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

const ALL_EVENTS: [&str; 5] = [
    "video.playable",
    "video.ready",
    "video.failed",
    "video.canceled",
    "video.captions_changed",
];

/// Verifies `requests` with PyPI's standardwebhooks (and that a tampered body is rejected).
async fn verify_independently(secret: &str, requests: &[Received]) -> String {
    let python = std::env::var("PROSTREAM_WEBHOOK_PYTHON").expect(
        "PROSTREAM_WEBHOOK_PYTHON is not set: run these tests through scripts/test.sh, which \
         installs PyPI's standardwebhooks into .dev/venv-webhooks and names its python",
    );
    let deliveries: Vec<Value> = requests
        .iter()
        .map(|r| {
            let headers: serde_json::Map<String, Value> = r
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), Value::String(v.clone())))
                .collect();
            json!({ "headers": headers, "body": r.body })
        })
        .collect();
    let dir = scratch();
    let file = dir.join("deliveries.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&json!({ "secret": secret, "deliveries": deliveries })).unwrap(),
    )
    .unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/interop/verify_webhooks.py"
    );
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&file)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let _ = std::fs::remove_dir_all(dir);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "standardwebhooks refused our deliveries:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn deliveries(app: &TestApp, webhook_id: &str) -> Vec<Value> {
    let listing = app
        .get_json(&format!("/v1/webhooks/{webhook_id}/deliveries"))
        .await;
    listing["deliveries"].as_array().unwrap().clone()
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_transcoded_video_sends_playable_and_ready_that_standardwebhooks_verifies(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let hook = register(&app, &app.http, &receiver.url(), &ALL_EVENTS).await;
    let secret = hook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{hook}");
    assert_eq!(hook["events"], json!(ALL_EVENTS));

    let clip = app.clip("hook.mp4", 2, 320, 240, true).await;
    let id = app.upload_ok(&clip).await;
    app.start_worker(1).await;

    let ready = receiver
        .wait_for(&id, "video.ready", Duration::from_secs(90))
        .await;
    let playable = receiver
        .wait_for(&id, "video.playable", Duration::from_secs(5))
        .await;
    let event = ready.json();
    assert_video_data(&event, "ready", true);
    assert!(event["data"]["error"].is_null(), "{event}");
    // RFC 3339 in UTC, as Postgres reads it back.
    let stamp = event["timestamp"].as_str().unwrap();
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "{event}");
    let parsed: Option<f64> =
        sqlx::query_scalar("SELECT extract(epoch FROM $1::timestamptz)::float8")
            .bind(stamp)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(parsed.is_some(), "{event}");
    assert_eq!(playable.json()["data"]["playable"], true);
    assert_eq!(ready.header("content-type"), "application/json");
    assert_ne!(ready.header("webhook-id"), playable.header("webhook-id"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sent: i64 = ready.header("webhook-timestamp").parse().unwrap();
    assert!((now - sent).abs() < 60, "timestamp {sent}, now {now}");

    let out = verify_independently(secret, &[playable.clone(), ready.clone()]).await;
    assert!(
        out.contains("video.ready") && out.contains("video.playable"),
        "{out}"
    );

    // The listing: both delivered at the first attempt, with the event ids sent as webhook-id.
    let hook_id = hook["id"].as_str().unwrap();
    let listed = deliveries(&app, hook_id).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    for d in &listed {
        assert_eq!(d["state"], "delivered", "{d}");
        assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d}");
        assert_eq!(d["attempts"][0]["status"], 200, "{d}");
        assert!(
            [ready.header("webhook-id"), playable.header("webhook-id")]
                .contains(&d["event_id"].as_str().unwrap()),
            "{d}"
        );
    }
    // Listed without its secret.
    let list = app.get_json("/v1/webhooks").await;
    assert_eq!(list["webhooks"][0]["id"], hook["id"]);
    assert!(list["webhooks"][0].get("secret").is_none(), "{list}");
    app.shutdown().await;
}

/// An origin whose every answer is junk (not media).
async fn junk_origin() -> SocketAddr {
    let app = Router::new().fallback(|| async { vec![7u8; 30_000] });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn canceled_and_failed_videos_send_their_events(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let hook = register(
        &app,
        &app.http,
        &receiver.url(),
        &["video.canceled", "video.failed"],
    )
    .await;

    // Canceled while queued (no worker runs here).
    let clip = app.clip("c.mp4", 1, 160, 120, false).await;
    let canceled = app.upload_ok(&clip).await;
    let (status, _) = app.post(&format!("/v1/videos/{canceled}/cancel")).await;
    assert_eq!(status, 200);
    let got = receiver
        .wait_for(&canceled, "video.canceled", Duration::from_secs(10))
        .await;
    assert_eq!(got.json()["data"]["status"], "canceled");

    // Failed: a URL whose content is not media.
    let origin = junk_origin().await;
    let response = app
        .post_json(
            "/v1/videos",
            &json!({ "url": format!("http://{origin}/junk.mp4") }),
        )
        .await;
    assert_eq!(response.status(), 202);
    let failed = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = receiver
        .wait_for(&failed, "video.failed", Duration::from_secs(20))
        .await;
    let event = got.json();
    assert_video_data(&event, "failed", false);
    assert_eq!(
        event["data"]["error"]["code"], "unsupported_media",
        "{event}"
    );

    // Nothing else was sent: the endpoint did not subscribe to ready/playable, and a canceled
    // video does not fail.
    assert_eq!(receiver.requests().len(), 2);
    verify_independently(hook["secret"].as_str().unwrap(), &receiver.requests()).await;
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_failing_endpoint_is_retried_with_backoff_until_it_answers_2xx(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let receiver = Receiver::start(Behaviour::FailFirst(2)).await;
    let hook = register(&app, &app.http, &receiver.url(), &["video.canceled"]).await;
    let clip = app.clip("r.mp4", 1, 160, 120, false).await;
    let id = app.upload_ok(&clip).await;
    app.post(&format!("/v1/videos/{id}/cancel")).await;

    // Test schedule (WEBHOOK_RETRY_BASE_SECS 0.05): 0.05 s after the 1st failure, 3 s after the 2nd.
    let hook_id = hook["id"].as_str().unwrap();
    let delivery = eventually(Duration::from_secs(20), "the delivery", async || {
        let listed = deliveries(&app, hook_id).await;
        match listed.first() {
            Some(d) if d["state"] == "delivered" => Ok(d.clone()),
            _ => Err(format!("not delivered: {listed:?}")),
        }
    })
    .await;
    let attempts = delivery["attempts"].as_array().unwrap();
    let statuses: Vec<i64> = attempts
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 204], "{delivery}");
    assert_eq!(
        attempts
            .iter()
            .map(|a| a["attempt"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(delivery["delivered_at"].is_string(), "{delivery}");
    assert!(delivery["next_attempt_at"].is_null(), "{delivery}");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    // The same message every time (webhook-id), backing off: the third came ≥ 3 s after the second.
    assert!(
        requests
            .iter()
            .all(|r| r.header("webhook-id") == requests[0].header("webhook-id"))
    );
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    let second_gap = requests[2].at - requests[1].at;
    assert!(second_gap >= Duration::from_millis(2900), "{second_gap:?}");
    assert!(requests[1].at - requests[0].at < second_gap);
    verify_independently(hook["secret"].as_str().unwrap(), &requests).await;
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_slow_endpoint_delays_neither_the_video_nor_another_owners_deliveries(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    // Answers after 30 s; the deliverer gives up on each attempt after 2 s (test setting).
    let slow = Receiver::start(Behaviour::Sleep(Duration::from_secs(30))).await;
    register(&app, &app.http, &slow.url(), &ALL_EVENTS).await;
    let other_key = app.new_key("other-owner", false).await;
    let other = client_with_key(&other_key);
    let fast = Receiver::start(Behaviour::Ok).await;
    register(&app, &other, &fast.url(), &["video.canceled"]).await;

    let clip = app.clip("s.mp4", 2, 320, 240, true).await;
    // Cancellations of the slow endpoint's owner pile up deliveries to it first.
    let mut piled = VecDeque::new();
    for _ in 0..6 {
        let id = app.upload_ok(&clip).await;
        app.post(&format!("/v1/videos/{id}/cancel")).await;
        piled.push_back(id);
    }
    let id = app.upload_ok(&clip).await;
    let started = Instant::now();
    app.start_worker(1).await;

    // The other owner's video: canceled now, told within a couple of seconds.
    let response = app.upload_as(&other, &clip).await;
    assert_eq!(response.status(), 202);
    let others = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let canceled_at = Instant::now();
    let answer = other
        .post(app.url(&format!("/v1/videos/{others}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    fast.wait_for(&others, "video.canceled", Duration::from_secs(3))
        .await;
    let told_in = canceled_at.elapsed();

    app.wait_until_ready(&id, Duration::from_secs(90)).await;
    let ready_in = started.elapsed();
    // The slow endpoint was tried meanwhile; its attempts time out and are recorded as such (the
    // video may be ready before the first 2 s timeout has run out: that is the point).
    assert!(!slow.requests().is_empty());
    let hook = slow_hook_id(&app).await;
    let timed_out = eventually(
        Duration::from_secs(30),
        "a timed-out attempt to the slow endpoint",
        async || {
            let listed = deliveries(&app, &hook).await;
            let timed_out = listed
                .iter()
                .flat_map(|d| d["attempts"].as_array().unwrap().iter())
                .filter(|a| {
                    a["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("no answer within"))
                })
                .count();
            if timed_out > 0 {
                Ok(timed_out)
            } else {
                Err(format!("{listed:?}"))
            }
        },
    )
    .await;
    println!(
        "other owner told {told_in:?} after its cancel; video ready {ready_in:?} after the worker \
         started; {timed_out} attempts to the slow endpoint timed out meanwhile"
    );
    app.shutdown().await;
}

/// The video an event tells of: its status, and whether it is playable.
fn assert_video_data(event: &Value, status: &str, playable: bool) {
    assert_eq!(event["data"]["status"], status, "{event}");
    assert_eq!(event["data"]["playable"], playable, "{event}");
}

async fn slow_hook_id(app: &TestApp) -> String {
    let list = app.get_json("/v1/webhooks").await;
    list["webhooks"][0]["id"].as_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn another_owner_can_neither_list_nor_delete_a_webhook(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let hook = register(&app, &app.http, &receiver.url(), &["video.ready"]).await;
    let id = hook["id"].as_str().unwrap();
    let other = client_with_key(&app.new_key("other-owner", false).await);

    let theirs = get_json_as(&other, &app.url("/v1/webhooks")).await;
    assert_eq!(theirs["webhooks"], json!([]));
    for (method, path) in [
        (reqwest::Method::DELETE, format!("/v1/webhooks/{id}")),
        (
            reqwest::Method::GET,
            format!("/v1/webhooks/{id}/deliveries"),
        ),
    ] {
        let response = other.request(method, app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "not_found");
    }
    // An admin sees every owner's webhooks.
    let admin = client_with_key(&app.new_key("ops", true).await);
    let all = get_json_as(&admin, &app.url("/v1/webhooks")).await;
    assert_eq!(all["webhooks"][0]["id"], hook["id"]);
    // Without a key: 401.
    let anonymous = reqwest::Client::new()
        .get(app.url("/v1/webhooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Still there for its owner, who can delete it once.
    assert_eq!(
        app.get_json("/v1/webhooks").await["webhooks"][0]["id"],
        hook["id"]
    );
    let path = app.url(&format!("/v1/webhooks/{id}"));
    assert_eq!(app.http.delete(&path).send().await.unwrap().status(), 204);
    assert_eq!(app.http.delete(&path).send().await.unwrap().status(), 404);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn internal_urls_other_schemes_and_unknown_events_are_refused_at_registration(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let refused = async |url: &str, events: Value, want: (u16, &str)| {
        let body = json!({ "url": url, "events": events });
        let response = app.post_json("/v1/webhooks", &body).await;
        let status = response.status().as_u16();
        let problem: Value = response.json().await.unwrap();
        let code = problem["code"].as_str().unwrap_or_default();
        assert_eq!((status, code), want, "{body}");
    };
    let ready = json!(["video.ready"]);
    let (forbidden, invalid) = ((422, "url_forbidden"), (400, "invalid_url"));
    for (url, want) in [
        ("http://10.0.0.1/hook", forbidden),
        ("http://169.254.169.254/latest/meta-data", forbidden),
        ("http://[::1]:8080/hook", forbidden),
        ("http://192.168.1.10/hook", forbidden),
        // https gets the same address checks.
        ("https://10.0.0.1/hook", forbidden),
        ("https://[::1]:8443/hook", forbidden),
        // A name is checked after DNS too (the test allowlist names 127.0.0.1, not localhost).
        ("http://localhost:9/hook", forbidden),
        ("ftp://example.com/hook", invalid),
        ("ws://example.com/hook", invalid),
        ("http://user:pw@example.com/hook", invalid),
        ("https://user:pw@example.com/hook", invalid),
        ("not a url", invalid),
    ] {
        refused(url, ready.clone(), want).await;
    }
    for events in [
        json!([]),
        json!(["video.exploded"]),
        json!(["video.ready", "ready"]),
    ] {
        refused("http://example.com/hook", events, (400, "invalid_events")).await;
    }
    let not_a_list = json!("video.ready");
    refused("http://example.com/hook", not_a_list, (400, "invalid_json")).await;
    assert_eq!(app.get_json("/v1/webhooks").await["webhooks"], json!([]));
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn adding_and_deleting_a_caption_sends_video_captions_changed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    register(
        &app,
        &app.http,
        &receiver.url(),
        &["video.captions_changed"],
    )
    .await;
    let clip = app.clip("cc.mp4", 1, 160, 120, false).await;
    let id = app.upload_ok(&clip).await;
    let added = app
        .post_body(
            &format!("/v1/videos/{id}/captions?language=en"),
            "text/vtt",
            "WEBVTT\n\n00:00.000 --> 00:00.500\nHi\n",
        )
        .await;
    assert_eq!(added.status(), 201);
    let caption: Value = added.json().await.unwrap();
    let first = receiver
        .wait_for(&id, "video.captions_changed", Duration::from_secs(10))
        .await;
    assert_eq!(first.json()["data"]["video_id"], id.as_str());
    let path = format!(
        "/v1/videos/{id}/captions/{}",
        caption["id"].as_str().unwrap()
    );
    assert_eq!(app.delete(&path).await.status(), 204);
    eventually(Duration::from_secs(10), "a second event", async || {
        let n = receiver
            .requests()
            .iter()
            .filter(|r| r.json()["type"] == "video.captions_changed")
            .count();
        if n == 2 {
            Ok(())
        } else {
            Err(format!("{n} events"))
        }
    })
    .await;
    // A refused caption changes nothing and sends nothing.
    let refused = app
        .post_body(
            &format!("/v1/videos/{id}/captions"),
            "text/vtt",
            "not captions",
        )
        .await;
    assert_eq!(refused.status(), 422);
    assert_eq!(receiver.requests().len(), 2);
    app.shutdown().await;
}

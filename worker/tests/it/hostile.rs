//! Hostile clients: bodies, fields, headers and URIs far past their limits, and connections
//! that dribble, stall or idle. Each request is refused with a problem and a stable code
//! (or, past hyper's head buffer, a bare 431) without the API reading the rest, and each slow
//! connection is closed. The clients speak HTTP/1.1 over a raw TCP socket so that they can
//! misbehave exactly as an attacker would.

use crate::common;

use std::time::Duration;

use common::TestApp;
use prostream::{config::MediaLimits, http::serve::ServeConfig};
use serde_json::Value;
use sqlx::PgPool;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, tcp::OwnedReadHalf},
};

/// How far past each limit the hostile bodies go: enough that reading it all would show.
const HOSTILE_BYTES: usize = 8 << 20;
/// A bound on how long a test waits for the server's answer or for it to hang up, so that a
/// regression fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

fn host(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(host(app)).await.unwrap()
}

/// Sends `head` (request line and headers, without the blank line) with a chunked body:
/// `prefix`, then `filler` bytes up to `total`, in 64 KiB chunks; stops writing when the server
/// hangs up. Returns the answer's status and JSON body.
async fn send_chunked(
    app: &TestApp,
    head: &str,
    prefix: &[u8],
    filler: u8,
    total: usize,
) -> (u16, Value) {
    let (read, mut write) = connect(app).await.into_split();
    let head = format!(
        "{head}\r\nHost: {}\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        host(app),
        app.key
    );
    let prefix = prefix.to_vec();
    let writer = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        write_chunk(&mut write, &prefix).await?;
        let filler = vec![filler; 64 << 10];
        let mut sent = prefix.len();
        while sent < total {
            write_chunk(&mut write, &filler).await?;
            sent += filler.len();
        }
        write.write_all(b"0\r\n\r\n").await?;
        Ok::<_, std::io::Error>(write)
    });
    let answer = read_response(read).await;
    // The server answered before the end; the rest of the body is of no interest.
    writer.abort();
    answer
}

async fn write_chunk(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    data: &[u8],
) -> std::io::Result<()> {
    write
        .write_all(format!("{:x}\r\n", data.len()).as_bytes())
        .await?;
    write.write_all(data).await?;
    write.write_all(b"\r\n").await
}

/// Reads one HTTP/1.1 response with a `Content-Length` body: its status and body as JSON
/// (`Null` when the body is empty).
async fn read_response(mut read: OwnedReadHalf) -> (u16, Value) {
    tokio::time::timeout(PATIENCE, async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = read.read(&mut chunk).await.expect("the answer arrives");
            assert!(n > 0, "the server hung up without an answer");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let n = read.read(&mut chunk).await.expect("the body arrives");
            assert!(n > 0, "the answer's body broke off");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = &buf[head_end..head_end + length];
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)))
        };
        (status, json)
    })
    .await
    .expect("the server answers within the test's patience")
}

fn assert_problem(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
}

/// Waits for the server to close the connection: a read returns EOF or a reset.
async fn assert_closed(stream: &mut TcpStream, what: &str) {
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // A 408 or similar before closing is fine.
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept {what} open");
}

const BOUNDARY: &str = "hostileboundary";

fn multipart_head() -> String {
    format!("POST /v1/videos HTTP/1.1\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}")
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn json_bodies_past_64_kib_are_refused_with_413_body_too_large(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    // URL ingest: POST /v1/videos lifts axum's body limit for uploads.
    let ingest = send_chunked(
        &app,
        "POST /v1/videos HTTP/1.1\r\nContent-Type: application/json",
        br#"{"url": "http://example.com/a.mp4", "title": ""#,
        b'a',
        HOSTILE_BYTES,
    )
    .await;
    assert_problem(&ingest, 413, "body_too_large");
    let id = uuid::Uuid::now_v7();
    let patch = send_chunked(
        &app,
        &format!("PATCH /v1/videos/{id} HTTP/1.1\r\nContent-Type: application/json"),
        br#"{"title": ""#,
        b'a',
        HOSTILE_BYTES,
    )
    .await;
    assert_problem(&patch, 413, "body_too_large");
    let webhook = send_chunked(
        &app,
        "POST /v1/webhooks HTTP/1.1\r\nContent-Type: application/json",
        br#"{"url": "http://example.com/hook", "events": [""#,
        b'a',
        HOSTILE_BYTES,
    )
    .await;
    assert_problem(&webhook, 413, "body_too_large");
    assert_eq!(app.count("videos").await, 0);
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_multipart_title_field_is_refused_at_its_limit_not_read_whole(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let prefix = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n");
    let answer = send_hostile_multipart(&app, &prefix, b't').await;
    assert_problem(&answer, 400, "invalid_title");
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn multipart_part_headers_that_never_end_are_refused_with_413(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    // A header line that goes on and on: multer would buffer it until a blank line.
    let prefix = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; x=\"");
    let answer = send_hostile_multipart(&app, &prefix, b'h').await;
    assert_problem(&answer, 413, "body_too_large");
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn an_unknown_multipart_field_past_64_kib_is_refused_with_413(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let prefix = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"extra\"\r\n\r\n");
    let answer = send_hostile_multipart(&app, &prefix, b'x').await;
    assert_problem(&answer, 413, "body_too_large");
}

/// Streams a multipart body of `prefix` and then `fill` for HOSTILE_BYTES; returns the answer once
/// it has checked that nothing of the body stayed on disk.
async fn send_hostile_multipart(app: &TestApp, prefix: &str, fill: u8) -> (u16, Value) {
    let answer = send_chunked(
        app,
        &multipart_head(),
        prefix.as_bytes(),
        fill,
        HOSTILE_BYTES,
    )
    .await;
    app.assert_no_uploads_left();
    answer
}

/// Sends a bodiless request whose head is `head` plus the usual headers; returns the answer.
async fn send_head(app: &TestApp, head: &str) -> (u16, Value) {
    let (read, mut write) = connect(app).await.into_split();
    let head = format!(
        "{head}\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        host(app),
        app.key
    );
    // A head past hyper's buffer is answered (and the connection closed) before it is all sent.
    // The task hands the write half back: dropping it would half-close the connection, and
    // hyper drops a request whose client has hung up.
    let writer = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        Ok::<_, std::io::Error>(write)
    });
    let answer = read_response(read).await;
    writer.abort();
    answer
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_query_past_8_kib_is_refused_with_414_uri_too_long(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let title = "q".repeat(16 << 10);
    let answer = send_head(&app, &format!("GET /v1/videos?title={title} HTTP/1.1")).await;
    assert_problem(&answer, 414, "uri_too_long");
    // Past hyper's own buffer for the request head: a bare 414/431, never a read of all of it.
    let huge = "q".repeat(HOSTILE_BYTES);
    let answer = send_head(&app, &format!("GET /v1/videos?title={huge} HTTP/1.1")).await;
    assert!([414, 431].contains(&answer.0), "{answer:?}");
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn tus_metadata_past_4_kib_is_refused_with_400(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let creation = "POST /v1/uploads HTTP/1.1\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 1000\r\nContent-Length: 0";
    let value = "A".repeat(16 << 10);
    let answer = send_head(
        &app,
        &format!("{creation}\r\nUpload-Metadata: title {value}"),
    )
    .await;
    assert_problem(&answer, 400, "invalid_upload_metadata");
    assert_eq!(app.count("uploads").await, 0);
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_tus_metadata_header_past_hypers_buffer_gets_431(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let creation = "POST /v1/uploads HTTP/1.1\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 1000\r\nContent-Length: 0";
    let huge = "A".repeat(HOSTILE_BYTES);
    let answer = send_head(
        &app,
        &format!("{creation}\r\nUpload-Metadata: title {huge}"),
    )
    .await;
    assert_eq!(answer.0, 431, "{answer:?}");
    assert_eq!(app.count("uploads").await, 0);
}

/// The API with one-second timeouts: header read (and keep-alive idle) and upload idle.
async fn impatient_app(pool: PgPool) -> TestApp {
    let limits = MediaLimits {
        upload_idle_timeout_secs: 1,
        ..MediaLimits::default()
    };
    let mut app = TestApp::spawn_with(pool, limits).await;
    app.restart_api_with_serve_config(ServeConfig {
        header_read_timeout_secs: 1,
    })
    .await;
    app
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn connections_that_dribble_their_headers_are_closed(pool: PgPool) {
    let app = impatient_app(pool).await;
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut dribblers = Vec::new();
    for _ in 0..5 {
        let (mut read, mut write) = connect(&app).await.into_split();
        // One byte every 200 ms: each arrives well within any per-read timeout, the whole
        // head never does. (The slow client under test, not a wait for anything.)
        let dribble = tokio::spawn(async move {
            for byte in head {
                if write.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            std::future::pending::<()>().await;
        });
        dribblers.push(tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let closed = tokio::time::timeout(PATIENCE, async {
                loop {
                    match read.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            dribble.abort();
            closed.is_ok()
        }));
    }
    for dribbler in dribblers {
        assert!(
            dribbler.await.unwrap(),
            "a dribbling connection stayed open"
        );
    }
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn an_idle_keep_alive_connection_is_closed_after_its_response(pool: PgPool) {
    let app = impatient_app(pool).await;
    let mut stream = connect(&app).await;
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", host(&app)).as_bytes())
        .await
        .unwrap();
    let (read, write) = stream.into_split();
    let answer = read_response_keep(read).await;
    assert_eq!(answer.0, 200);
    let mut stream = answer.1.reunite(write).unwrap();
    assert_closed(&mut stream, "an idle keep-alive connection").await;
}

/// [`read_response`] that gives the read half back, for a connection that stays open.
async fn read_response_keep(mut read: OwnedReadHalf) -> (u16, OwnedReadHalf) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    // /healthz answers a small JSON body: read until it is complete.
    while !buf.ends_with(b"}") {
        let n = tokio::time::timeout(PATIENCE, read.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (status, read)
}

/// Starts an upload that announces `length` bytes, sends `sent` of them, and stalls.
async fn stall(app: &TestApp, head: &str, first: &[u8], length: usize) -> (u16, Value) {
    let (read, mut write) = connect(app).await.into_split();
    let head = format!(
        "{head}\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Length: {length}\r\n\r\n",
        host(app),
        app.key
    );
    write.write_all(head.as_bytes()).await.unwrap();
    write.write_all(first).await.unwrap();
    // The write half stays open (and silent) until the answer has come.
    let answer = read_response(read).await;
    drop(write);
    answer
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_stalled_raw_upload_is_refused_with_408_and_leaves_no_file(pool: PgPool) {
    let app = impatient_app(pool).await;
    let head = "POST /v1/videos HTTP/1.1\r\nContent-Type: video/mp4";
    let answer = stall(&app, head, &[0u8; 4096], 1 << 20).await;
    assert_problem(&answer, 408, "upload_timeout");
    app.assert_no_uploads_left();
    assert_eq!(app.count("videos").await, 0);
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_stalled_multipart_upload_is_refused_with_408_and_leaves_no_file(pool: PgPool) {
    let app = impatient_app(pool).await;
    let first = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\
         Content-Type: video/mp4\r\n\r\n{}",
        "v".repeat(4096)
    );
    let answer = stall(&app, &multipart_head(), first.as_bytes(), 1 << 20).await;
    assert_problem(&answer, 408, "upload_timeout");
    app.assert_no_uploads_left();
    assert_eq!(app.count("videos").await, 0);
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_stalled_tus_patch_is_refused_with_408_and_keeps_what_arrived(pool: PgPool) {
    let app = impatient_app(pool).await;
    let created = app
        .http
        .post(app.url("/v1/uploads"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "100000")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream"
    );
    let answer = stall(&app, &head, &[7u8; 1000], 100_000).await;
    assert_problem(&answer, 408, "upload_timeout");
    let offset = app
        .http
        .head(app.url(&location))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(offset.headers()["upload-offset"], "1000");
}

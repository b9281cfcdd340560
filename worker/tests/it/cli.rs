//! The `prostream` client commands, run as the real binary against a live API
//! and worker: upload and follow, list, show, cancel, retry, delete, and the
//! errors they print.

use crate::common;

use std::{
    process::{Command, Output},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use common::{TestApp, eventually, make_clip, prostream_bin, scratch};
use serde_json::Value;
use sqlx::PgPool;

/// How long one `prostream` command may take in these tests (an upload with `--wait` included).
const COMMAND_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `prostream ARGS` against the test API, in its own state directory.
/// (Asynchronously: the API under test runs on this test's runtime.)
async fn prostream(app: &TestApp, state: &std::path::Path, args: &[&str]) -> Output {
    let run = tokio::process::Command::new(prostream_bin())
        .args(args)
        .env("PROSTREAM_URL", &app.base)
        .env("PROSTREAM_API_KEY", &app.key)
        .env("XDG_STATE_HOME", state)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(COMMAND_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("prostream {args:?} did not finish within {COMMAND_LIMIT:?}"))
        .unwrap()
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn upload_wait_list_show_and_delete_from_the_command_line(pool: PgPool) {
    prostream_bin();
    let mut app = TestApp::spawn(pool).await;
    app.start_worker(1).await;
    let fixtures = scratch();
    let clip = make_clip(&fixtures, "cli.mp4", 3, 320, 240, true).await;
    let clip_arg = clip.to_str().unwrap();

    let upload = prostream(
        &app,
        &fixtures,
        &[
            "upload",
            clip_arg,
            "--title",
            "From the CLI",
            "--wait",
            "--json",
        ],
    )
    .await;
    let video = json_of(&upload);
    assert_eq!(video["status"], "ready", "{video}");
    assert_eq!(video["title"], "From the CLI");
    let id = video["id"].as_str().unwrap().to_owned();
    assert!(
        video["playback"]["hls"]
            .as_str()
            .unwrap()
            .ends_with("/master.m3u8")
    );

    // Human output of the same upload names the absolute playback URL.
    let show = prostream(&app, &fixtures, &["videos", "show", &id]).await;
    assert!(show.status.success(), "{}", stderr(&show));
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("status:     ready"), "{text}");
    // (Private by default: the URL is signed, `/v1/videos/{id}/signed/{token}/{attempt}/…`.)
    assert!(
        text.contains(&format!("playback:   {}/v1/videos/{id}/", app.base))
            && text.contains("/master.m3u8"),
        "{text}"
    );

    let list = json_of(&prostream(&app, &fixtures, &["videos", "list", "--json"]).await);
    assert_eq!(list["items"][0]["id"], id.as_str());

    // A refused action prints the problem code and detail and exits non-zero.
    let cancel = prostream(&app, &fixtures, &["videos", "cancel", &id]).await;
    assert_eq!(cancel.status.code(), Some(1));
    assert!(
        stderr(&cancel).contains("error: not_cancelable: the video is ready"),
        "{}",
        stderr(&cancel)
    );

    let delete = prostream(&app, &fixtures, &["videos", "delete", &id]).await;
    assert!(delete.status.success(), "{}", stderr(&delete));
    let gone = prostream(&app, &fixtures, &["videos", "show", &id]).await;
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("error: not_found"),
        "{}",
        stderr(&gone)
    );

    let _ = std::fs::remove_dir_all(fixtures);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_refused_file_and_an_unreachable_server_are_errors_with_codes(pool: PgPool) {
    prostream_bin();
    let app = TestApp::spawn(pool).await;
    let fixtures = scratch();
    let junk = fixtures.join("junk.mp4");
    std::fs::write(&junk, vec![7u8; 20_000]).unwrap();

    let refused = prostream(&app, &fixtures, &["upload", junk.to_str().unwrap()]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("error: unsupported_media: "),
        "{}",
        stderr(&refused)
    );

    let missing = prostream(&app, &fixtures, &["upload", "/nonexistent/clip.mp4"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("error: file_unreadable: "),
        "{}",
        stderr(&missing)
    );

    let down = Command::new(prostream_bin())
        .args(["videos", "list", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(
        stderr(&down).contains("error: connection_failed: "),
        "{}",
        stderr(&down)
    );

    let _ = std::fs::remove_dir_all(fixtures);
    app.shutdown().await;
}

/// A TCP proxy to `upstream` that forwards client bytes to the server only
/// while the returned budget lasts, then cuts the link: a link that breaks
/// mid-upload. Raise the budget to heal the link.
///
/// A cut half-closes the server side (the body just stops) and keeps reading
/// until the server closes the connection, so the returned count of open
/// server connections tells when the server has finished with every request
/// it received: only then is its offset final.
async fn cutting_proxy(upstream: String, budget: u64) -> (String, Arc<AtomicU64>, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let left = Arc::new(AtomicU64::new(budget));
    let open = Arc::new(AtomicU64::new(0));
    let (budget, open_out) = (left.clone(), open.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            open.fetch_add(1, Ordering::SeqCst);
            let (left, open) = (left.clone(), open.clone());
            tokio::spawn(async move {
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = client_rx.read(&mut buf).await.unwrap_or(0);
                        let spent = left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| {
                            l.checked_sub(n as u64)
                        });
                        if n == 0 || spent.is_err() {
                            // The client is gone, or the budget is spent: the link breaks here.
                            let _ = server_tx.shutdown().await;
                            return;
                        }
                        if server_tx.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut client_alive = true;
                    loop {
                        match server_rx.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) if client_alive => {
                                client_alive = client_tx.write_all(&buf[..n]).await.is_ok();
                            }
                            Ok(_) => {}
                        }
                    }
                    let _ = client_tx.shutdown().await;
                };
                tokio::join!(up, down);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (format!("http://{addr}"), budget, open_out)
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn an_upload_cut_off_midway_resumes_from_the_servers_offset_when_run_again(pool: PgPool) {
    prostream_bin();
    let mut app = TestApp::spawn(pool).await;
    app.start_worker(1).await;
    let fixtures = scratch();
    // Large enough for several pieces: noise does not compress.
    let clip = make_clip(&fixtures, "big.mp4", 8, 1280, 720, true).await;
    let size = std::fs::metadata(&clip).unwrap().len();
    assert!(size > 3 * 1024 * 1024, "{size}");
    let upstream = app.base.trim_start_matches("http://").to_owned();
    let clip_arg = clip.to_str().unwrap();
    let run = |server: String| {
        let state = fixtures.clone();
        let clip_arg = clip_arg.to_owned();
        let key = app.key.clone();
        async move {
            let run = tokio::process::Command::new(prostream_bin())
                .args(["upload", &clip_arg, "--json", "--wait", "--server", &server])
                .env("XDG_STATE_HOME", &state)
                .env("PROSTREAM_API_KEY", &key)
                .env("PROSTREAM_UPLOAD_CHUNK_BYTES", "1048576")
                .kill_on_drop(true)
                .output();
            tokio::time::timeout(COMMAND_LIMIT, run)
                .await
                .expect("prostream upload did not finish in time")
                .unwrap()
        }
    };

    // The link breaks after about 40 % of the file.
    let (server, budget, open) = cutting_proxy(upstream, size * 2 / 5).await;
    let first = run(server.clone()).await;
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    // The server records what arrived once it notices the broken body, then
    // answers and closes the connection; read the offset after every
    // connection the client opened is closed by the server.
    eventually(
        std::time::Duration::from_secs(60),
        "the server closes every connection of the broken upload",
        async || open.load(Ordering::SeqCst) == 0,
    )
    .await;
    let (kept, locked): (i64, bool) =
        sqlx::query_as("SELECT upload_offset, lock_token IS NOT NULL FROM uploads")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        !locked,
        "the upload is still locked after its request ended"
    );
    assert!(kept > 0 && (kept as u64) < size, "offset {kept} of {size}");

    // The link heals; the same command again continues where the server stands.
    budget.store(u64::MAX, Ordering::SeqCst);
    let second = run(server).await;
    let video = json_of(&second);
    assert!(
        stderr(&second).contains(&format!("resuming at byte {kept} of {size}")),
        "{}",
        stderr(&second)
    );
    assert_eq!(video["status"], "ready", "{video}");
    let id = video["id"].as_str().unwrap();
    let stored = std::fs::read_dir(app.media_dir.join("uploads"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with(id))
        .expect("the original is kept")
        .path();
    assert!(
        std::fs::read(stored).unwrap() == std::fs::read(&clip).unwrap(),
        "the original differs from the file"
    );
    // Finished uploads are forgotten by the client.
    let state = std::fs::read_to_string(fixtures.join("prostream/uploads.json")).unwrap();
    assert!(!state.contains("/v1/uploads/"), "{state}");
    let _ = std::fs::remove_dir_all(fixtures);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn a_missing_or_refused_key_names_the_option_and_the_variable_that_set_it(pool: PgPool) {
    prostream_bin();
    let app = TestApp::spawn(pool).await;
    let fixtures = scratch();
    let clip = fixtures.join("any.mp4");
    std::fs::write(&clip, vec![7u8; 1000]).unwrap();
    let unknown = prostream::auth::generate().secret;
    let cases: [(&[&str], Option<&str>, &str); 4] = [
        (&["videos", "list"], None, "error: api_key_required: "),
        (
            &["videos", "list"],
            Some(unknown.as_str()),
            "error: api_key_invalid: ",
        ),
        (
            &["videos", "list"],
            Some("ps_short"),
            "error: api_key_invalid: ",
        ),
        (
            &["upload", clip.to_str().unwrap()],
            None,
            "error: api_key_required: ",
        ),
    ];
    for (args, key, error) in cases {
        let mut command = tokio::process::Command::new(prostream_bin());
        command
            .args(args)
            .env("PROSTREAM_URL", &app.base)
            .env("XDG_STATE_HOME", &fixtures)
            .env_remove("PROSTREAM_API_KEY")
            .kill_on_drop(true);
        if let Some(key) = key {
            command.env("PROSTREAM_API_KEY", key);
        }
        let output = command.output().await.unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?} {key:?}");
        let text = stderr(&output);
        assert!(
            text.contains(error)
                && text.contains("--api-key")
                && text.contains("PROSTREAM_API_KEY"),
            "{args:?} {key:?}: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(fixtures);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn upload_public_makes_a_public_video_and_without_it_the_servers_default_holds(pool: PgPool) {
    prostream_bin();
    let app = TestApp::spawn(pool).await;
    let fixtures = scratch();
    let clip = make_clip(&fixtures, "public.mp4", 1, 160, 120, false).await;
    let clip_arg = clip.to_str().unwrap();

    let public =
        json_of(&prostream(&app, &fixtures, &["upload", clip_arg, "--public", "--json"]).await);
    assert_eq!(public["visibility"], "public", "{public}");
    let private = json_of(&prostream(&app, &fixtures, &["upload", clip_arg, "--json"]).await);
    assert_eq!(private["visibility"], "private", "{private}");
    assert_ne!(public["id"], private["id"]);

    let _ = std::fs::remove_dir_all(fixtures);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn upload_wait_prints_the_playback_url_as_soon_as_the_video_is_playable(pool: PgPool) {
    use tokio::io::{AsyncBufReadExt, BufReader};

    prostream_bin();
    let mut app = TestApp::spawn(pool).await;
    app.start_worker(1).await;
    let fixtures = scratch();
    // Long enough to be playable (after its first segments) well before it is ready.
    let clip = make_clip(&fixtures, "long.mp4", 40, 640, 360, true).await;
    let mut child = tokio::process::Command::new(prostream_bin())
        .args(["upload", clip.to_str().unwrap(), "--wait"])
        .env("PROSTREAM_URL", &app.base)
        .env("PROSTREAM_API_KEY", &app.key)
        .env("XDG_STATE_HOME", &fixtures)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(COMMAND_LIMIT, lines.next_line())
        .await
        .expect("prostream upload --wait printed nothing in time")
        .unwrap()
        .expect("prostream upload --wait ended without output");

    // The first line is the URL, printed while the video still encodes.
    let id: String = sqlx::query_scalar("SELECT id::text FROM videos")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let video = app.get_json(&format!("/v1/videos/{id}")).await;
    assert_eq!(video["status"], "processing", "{first}: {video}");
    let url = first
        .strip_prefix("playable:   ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("not the playback URL: {first}"));
    assert!(
        url.starts_with(&format!("{}/v1/videos/{id}/", app.base)) && url.ends_with("/master.m3u8"),
        "{first}"
    );
    // It plays already, without a key (a private video's URL is signed).
    let master = reqwest::get(url).await.unwrap();
    assert_eq!(master.status(), 200, "{url}");
    assert!(master.text().await.unwrap().starts_with("#EXTM3U"));

    // Then the command goes on to the end and prints the ready video.
    let mut rest = Vec::new();
    while let Some(line) = tokio::time::timeout(COMMAND_LIMIT, lines.next_line())
        .await
        .expect("prostream upload --wait did not finish in time")
        .unwrap()
    {
        rest.push(line);
    }
    let status = child.wait().await.unwrap();
    assert!(status.success(), "{status:?}: {rest:?}");
    assert!(rest.iter().any(|l| l == "status:     ready"), "{rest:?}");
    assert!(
        !rest.iter().any(|l| l.starts_with("playable:")),
        "announced twice: {rest:?}"
    );

    let _ = std::fs::remove_dir_all(fixtures);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn videos_list_shows_why_a_video_failed(pool: PgPool) {
    prostream_bin();
    let app = TestApp::spawn(pool).await;
    let fixtures = scratch();
    let clip = make_clip(&fixtures, "list.mp4", 1, 160, 120, false).await;
    let failed = app.upload_ok(&clip).await;
    let queued = app.upload_ok(&clip).await;
    sqlx::query(
        "UPDATE jobs SET state = 'failed', error_code = 'transcode_failed',
                         error_message = 'ffmpeg exited with status 1', finished_at = now()
         WHERE video_id = $1::uuid",
    )
    .bind(&failed)
    .execute(&app.pool)
    .await
    .unwrap();

    let list = prostream(&app, &fixtures, &["videos", "list"]).await;
    assert!(list.status.success(), "{}", stderr(&list));
    let text = String::from_utf8_lossy(&list.stdout);
    let row = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id}: {text}"))
    };
    assert!(
        row(&failed).contains(" failed: transcode_failed "),
        "{text}"
    );
    assert!(
        row(&queued).contains(" queued ") && !row(&queued).contains("transcode_failed"),
        "{text}"
    );
    // The columns still line up: every row's title starts under TITLE.
    let title_at = text.lines().next().unwrap().find("TITLE").unwrap();
    for id in [&failed, &queued] {
        let line = row(id);
        assert!(
            line.len() > title_at
                && line.as_bytes()[title_at - 1] == b' '
                && line.as_bytes()[title_at] != b' ',
            "{text}"
        );
    }

    let _ = std::fs::remove_dir_all(fixtures);
    app.shutdown().await;
}

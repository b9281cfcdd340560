//! The `prostream` client commands, run as the real binary against a live API
//! and worker: upload and follow, list, show, cancel, retry, delete, and the
//! errors they print.

mod common;

use std::{
    path::PathBuf,
    process::{Command, Output},
    sync::OnceLock,
};

use common::{TestApp, make_clip, scratch};
use serde_json::Value;
use sqlx::PgPool;

/// The `prostream` binary of this build profile, built once per test process
/// (this crate cannot name another package's binary directly).
fn prostream_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/cli-<hash>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let profile = profile_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "prostream", "--bin", "prostream"]);
        if profile != "debug" {
            build.args(["--profile", &profile]);
        }
        assert!(
            build.status().unwrap().success(),
            "building prostream failed"
        );
        profile_dir.join("prostream")
    })
}

/// Runs `prostream ARGS` against the test API, in its own state directory.
/// (Asynchronously: the API under test runs on this test's runtime.)
async fn prostream(app: &TestApp, state: &std::path::Path, args: &[&str]) -> Output {
    tokio::process::Command::new(prostream_bin())
        .args(args)
        .env("PROSTREAM_URL", &app.base)
        .env("XDG_STATE_HOME", state)
        .output()
        .await
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
    assert!(
        text.contains(&format!("playback:   {}/v1/videos/{id}/hls/", app.base)),
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

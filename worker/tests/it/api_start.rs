//! The real `prostream serve` process at start: what it refuses to start with, and what it
//! serves where.

use crate::common;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use common::{binary::ServeEnv, eventually, loopback_addr, metrics_text};
use sqlx::PgPool;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

/// The demo key docker-compose.yml and .env.example carried: published, so refused.
fn published_key() -> String {
    format!("compose-demo:{}", prostream::playback::PUBLISHED_SECRETS[0])
}

/// `prostream serve` with loopback addresses and `env`; nothing else from this environment
/// but PATH.
fn serve(env: &[(&str, String)]) -> Command {
    let mut command = Command::new(common::prostream_bin());
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND_ADDR", loopback_addr())
        .env("METRICS_ADDR", loopback_addr())
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn the_api_refuses_to_start_with_a_signing_key_published_in_the_repository() {
    for opt_in in ["", "yes", "true"] {
        let mut env = vec![
            ("PLAYBACK_SIGNING_KEYS", published_key()),
            // Nothing listens here: the refusal comes before any connection.
            ("DATABASE_URL", "postgres://127.0.0.1:9/none".into()),
        ];
        if !opt_in.is_empty() {
            env.push(("ALLOW_PUBLISHED_SIGNING_KEY", opt_in.into()));
        }
        let run = tokio::time::timeout(Duration::from_secs(30), serve(&env).output())
            .await
            .expect("the API exits instead of serving")
            .unwrap();
        assert!(!run.status.success(), "started with a published key");
        let said = String::from_utf8_lossy(&run.stderr);
        assert!(
            said.contains("published in ProStream's repository")
                && said.contains("ALLOW_PUBLISHED_SIGNING_KEY"),
            "{said}"
        );
        assert!(
            !said.contains(prostream::playback::PUBLISHED_SECRETS[0]),
            "{said}"
        );
    }
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn the_demo_opt_in_starts_with_a_loud_warning_and_metrics_listen_apart(pool: PgPool) {
    let env = ServeEnv::new(&pool, "start").await;
    let (api, metrics) = (loopback_addr(), loopback_addr());
    let mut server = serve(&[
        ("PLAYBACK_SIGNING_KEYS", published_key()),
        (
            "ALLOW_PUBLISHED_SIGNING_KEY",
            prostream::config::PUBLISHED_KEY_OPT_IN.into(),
        ),
        ("BIND_ADDR", api.clone()),
        ("METRICS_ADDR", metrics.clone()),
        ("DATABASE_URL", env.database_url),
        ("REDIS_URL", env.redis_url),
        ("QUEUE_NAME", env.queue_name),
        ("MEDIA_ROOT", env.dir.display().to_string()),
        ("LOG_FORMAT", "text".into()),
    ])
    .spawn()
    .unwrap();

    // The warning is logged before the API listens; read the log until both listeners are bound
    // (the metrics one is bound second).
    let mut log = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen
        .iter()
        .any(|l: &String| l.contains("ProStream API listening"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = tokio::time::timeout(left, log.next_line())
            .await
            .unwrap_or_else(|_| panic!("the API did not start; its log: {seen:#?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the API exited; its log: {seen:#?}"));
        seen.push(line);
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("WARN") && l.contains("ANYONE CAN SIGN PLAYBACK URLS")),
        "{seen:#?}"
    );
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });

    let client = reqwest::Client::new();
    let what = format!("the metrics listener answers (the API's log: {seen:#?})");
    let scraped = eventually(Duration::from_secs(10), &what, async || {
        client.get(format!("http://{metrics}/metrics")).send().await
    })
    .await;
    let text = metrics_text(scraped).await;
    assert!(
        text.lines().any(|l| l == "# TYPE prostream_jobs gauge"),
        "{text}"
    );
    // The metrics listener serves nothing else; the API's port does not serve metrics.
    let get = async |url: String| client.get(url).send().await.unwrap();
    let health = get(format!("http://{metrics}/healthz")).await;
    assert_eq!(health.status(), 404);
    let public = get(format!("http://{api}/metrics")).await;
    assert_eq!(public.status(), 404);
    assert_eq!(public.headers()["content-type"], "application/problem+json");
    assert_eq!(get(format!("http://{api}/healthz")).await.status(), 200);

    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let _ = std::fs::remove_dir_all(env.dir);
}

#[tokio::test]
async fn init_signing_key_makes_a_key_once_and_keeps_it() {
    let dir = std::env::temp_dir().join(format!("prostream-keygen-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("playback-signing-keys");
    let init = || {
        Command::new(common::prostream_bin())
            .arg("init-signing-key")
            .arg(&file)
            .output()
    };
    assert!(init().await.unwrap().status.success());
    let first = std::fs::read_to_string(&file).unwrap();
    let keys = prostream::playback::parse_keys(first.trim()).unwrap();
    assert!(prostream::playback::published_in(&keys).is_empty());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(init().await.unwrap().status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first);
    std::fs::remove_dir_all(dir).unwrap();
}

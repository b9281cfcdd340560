//! The `prostream` binary (the API and the client commands), for tests that run it as a process.

use std::{path::PathBuf, process::Command, sync::OnceLock};

use sqlx::PgPool;

/// The `prostream` binary of this build profile, built once per test process
/// (this crate cannot name another package's binary directly). The build blocks
/// the test's one runtime thread, so each test calls this before it starts the
/// API and a worker: a worker whose heartbeats stall for the length of a build
/// was seen never to poll again.
pub fn prostream_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/it-<hash>
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

/// A loopback port free at the time of asking, for a process told where to listen.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `127.0.0.1:{a free port}`.
pub fn loopback_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// The URL of the database `#[sqlx::test]` made for this test (for a process to connect to).
pub async fn database_url(pool: &PgPool) -> String {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for sqlx::test");
    format!("{}/{database}", base.rsplit_once('/').unwrap().0)
}

/// What a `prostream serve` process of a test connects to: this test's database, Redis, a
/// queue of its own, and a scratch directory (`prostream-{what}-{id}`, not yet created).
pub struct ServeEnv {
    pub database_url: String,
    pub redis_url: String,
    pub queue_name: String,
    pub dir: PathBuf,
}

impl ServeEnv {
    pub async fn new(pool: &PgPool, what: &str) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        Self {
            database_url: database_url(pool).await,
            redis_url: super::redis_url(),
            queue_name: format!("prostream-test:{id}"),
            dir: std::env::temp_dir().join(format!("prostream-{what}-{id}")),
        }
    }
}

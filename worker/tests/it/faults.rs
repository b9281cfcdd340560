//! Fault injection against a real stack: the API, three `prostream-worker`
//! processes, a Redis server of the test's own (so it can be flushed and
//! restarted) and Postgres. Short leases and reconciler intervals keep it quick.
//!
//! One test runs the scenarios in order on one stack and prints a summary:
//! jobs submitted, faults injected, jobs lost (must be 0), duplicate outputs (0).

use crate::common;

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use common::{TestApp, eventually, free_port, loopback_addr, make_clip, scratch};
use prostream::config::MediaLimits;
use sqlx::PgPool;
use tokio::process::{Child, Command};

const WORKERS: usize = 3;
const SETTLE: Duration = Duration::from_secs(120);

/// A redis-server on a free loopback port, persisting nothing.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed");
        let redis = Self { port, child };
        eventually(
            Duration::from_secs(10),
            "redis-server answers",
            async || redis.ping().await,
        )
        .await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        match client.get_multiplexed_async_connection().await {
            Ok(mut c) => redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

    async fn flushall(&self) {
        let client = redis::Client::open(self.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    }

    /// Stops the server (losing everything) and starts a new one on the same port.
    async fn restart(&mut self, down_for: Duration) {
        self.child.kill().await.unwrap();
        // The fault itself: Redis stays away this long (not a wait for anything).
        tokio::time::sleep(down_for).await;
        *self = Self::start(self.port).await;
    }
}

/// A `prostream-worker` process; `HOSTNAME` makes its claims recognisable in `jobs.worker_id`.
struct Worker {
    host: String,
    child: Child,
    metrics: String,
}

struct Stack {
    app: TestApp,
    redis: Redis,
    database_url: String,
    logs: PathBuf,
    workers: Vec<Worker>,
    spawned: usize,
    submitted: usize,
    faults: Vec<&'static str>,
    /// Videos that must end `ready`.
    expect_ready: Vec<String>,
}

impl Stack {
    fn spawn_worker(&mut self, extra: &[(&str, &str)]) {
        self.spawned += 1;
        let host = format!("fault-w{}", self.spawned);
        let log = std::fs::File::create(self.logs.join(format!("{host}.log"))).unwrap();
        let metrics = loopback_addr();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_prostream-worker"));
        cmd.env("HOSTNAME", &host)
            .env("DATABASE_URL", &self.database_url)
            .env("DATABASE_MAX_CONNECTIONS", "4")
            .env("REDIS_URL", self.redis.url())
            .env("QUEUE_NAME", &self.app.queue_name)
            .env("MEDIA_ROOT", &self.app.media_dir)
            .env("JOB_LEASE_SECS", "5")
            .env("MAINTENANCE_INTERVAL_SECS", "1")
            .env("RECONCILE_AFTER_SECS", "3")
            .env("RETRY_BACKOFF_SECS", "1")
            .env("MIN_FREE_DISK_BYTES", "0")
            .env(
                "WORKER_HEALTH_FILE",
                self.logs.join(format!("{host}.health")),
            )
            .env("RUST_LOG", "info,sqlx=warn")
            .env("WORKER_METRICS_ADDR", &metrics)
            .envs(extra.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd.spawn().unwrap();
        self.workers.push(Worker {
            host,
            child,
            metrics,
        });
    }

    async fn upload(&mut self, clip: &Path) -> String {
        self.submitted += 1;
        self.app.upload_ok(clip).await
    }

    /// The worker process holding `video`'s job, once it is processing.
    async fn holder(&self, video: &str) -> usize {
        let what = format!("{video} is claimed by a worker");
        eventually(Duration::from_secs(60), &what, async || {
            let worker: Option<String> = sqlx::query_scalar(
                "SELECT worker_id FROM jobs WHERE video_id = $1::uuid AND state = 'processing'",
            )
            .bind(video)
            .fetch_optional(&self.app.pool)
            .await
            .unwrap()
            .flatten();
            let w = worker?;
            self.workers
                .iter()
                .position(|p| w.starts_with(&format!("{}-", p.host)))
        })
        .await
    }

    async fn signal(&mut self, index: usize, signal: &str) -> Worker {
        let worker = self.workers.remove(index);
        let pid = worker.child.id().unwrap().to_string();
        let status = Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        worker
    }

    async fn stop_all_workers(&mut self) {
        while !self.workers.is_empty() {
            let mut worker = self.signal(0, "TERM").await;
            let status = tokio::time::timeout(Duration::from_secs(15), worker.child.wait())
                .await
                .expect("a worker exits soon after SIGTERM")
                .unwrap();
            assert!(status.success(), "{} exited with {status}", worker.host);
        }
    }

    async fn wait_all_ready(&self) {
        for id in &self.expect_ready {
            let video = self
                .app
                .wait_for_status(id, &["ready", "failed", "canceled"], SETTLE)
                .await;
            assert_eq!(video["status"], "ready", "{video}");
        }
    }

    /// With Postgres away the API answers promptly, with a 5xx that carries a code.
    async fn assert_coded_5xx_while_postgres_is_down(&self, id: &str) {
        let during = self
            .app
            .http
            .get(self.app.url(&format!("/v1/videos/{id}")))
            .timeout(Duration::from_secs(40))
            .send()
            .await
            .expect("the API answers while Postgres is down");
        assert!(during.status().is_server_error(), "{}", during.status());
        let problem: serde_json::Value = during.json().await.unwrap();
        assert!(problem["code"].is_string(), "{problem}");
    }

    fn dump_logs(&self) {
        for entry in std::fs::read_dir(&self.logs).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                eprintln!(
                    "--- {} (last lines)\n{}",
                    path.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }
}

/// A Postgres server of the test's own, so it can really be restarted.
struct PgCluster {
    dir: PathBuf,
    port: u16,
}

impl PgCluster {
    fn bin(tool: &str) -> PathBuf {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries are installed (scripts/test.sh installs them)")
            .map(|e| e.unwrap().path())
            .collect();
        versions.sort();
        versions.last().unwrap().join("bin").join(tool)
    }

    /// initdb refuses to run as root: run the server tools as `postgres` then.
    fn command(tool: &str) -> Command {
        Command::from(Self::std_command(tool))
    }

    fn std_command(tool: &str) -> std::process::Command {
        let is_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if is_root {
            let mut cmd = std::process::Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(Self::bin(tool));
            cmd
        } else {
            std::process::Command::new(Self::bin(tool))
        }
    }

    async fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("prostream-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::process::Command::new("chmod")
            .args(["777"])
            .arg(&dir)
            .status()
            .unwrap();
        let cluster = Self {
            dir,
            port: free_port(),
        };
        let data = cluster.dir.join("data");
        let init = Self::command("initdb")
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(init.success(), "initdb failed");
        cluster.pg_ctl("start").await;
        cluster
    }

    async fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let status = Self::command("pg_ctl")
            .args(["-D"])
            .arg(self.dir.join("data"))
            .args(["-l"])
            .arg(self.dir.join("server.log"))
            .args(["-o", &options, "-m", "fast", "-w", action])
            .stdout(Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success(), "pg_ctl {action} failed");
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Self::std_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Stack {
    async fn new(pool: PgPool, database_url: String, fixtures: &Path) -> Self {
        let redis = Redis::start(free_port()).await;
        let app = TestApp::spawn_on(pool, MediaLimits::default(), &redis.url()).await;
        let logs = fixtures.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let mut stack = Stack {
            app,
            redis,
            database_url,
            logs,
            workers: Vec::new(),
            spawned: 0,
            submitted: 0,
            faults: Vec::new(),
            expect_ready: Vec::new(),
        };
        for _ in 0..WORKERS {
            stack.spawn_worker(&[]);
        }
        stack
    }
}

/// 3c. Postgres really restarts while a job encodes: the API answers with an
/// error instead of hanging, and the workers carry on without a restart.
#[tokio::test]
async fn postgres_restart_during_encoding_loses_nothing() {
    let cluster = PgCluster::start().await;
    let admin = sqlx::PgPool::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE prostream")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .connect(&cluster.url("prostream"))
        .await
        .unwrap();
    prostream::db::MIGRATOR.run(&pool).await.unwrap();
    let fixtures = scratch();
    let mut stack = Stack::new(pool, cluster.url("prostream"), &fixtures).await;
    let clip = make_clip(&fixtures, "medium.mp4", 10, 1280, 720, true).await;
    let outcome = {
        let run = async {
            let id = stack.upload(&clip).await;
            stack.holder(&id).await;
            cluster.pg_ctl("stop").await;
            stack.assert_coded_5xx_while_postgres_is_down(&id).await;
            // The fault itself: Postgres stays down this long (not a wait for anything).
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.pg_ctl("start").await;
            stack.faults.push("Postgres restart mid-encode");
            stack.expect_ready.push(id);
            stack.wait_all_ready().await;
        };
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run)).await
    };
    if let Err(panic) = outcome {
        stack.dump_logs();
        std::panic::resume_unwind(panic);
    }
    println!(
        "postgres restart summary: jobs submitted: {}, faults injected: {}, jobs lost: 0, duplicate outputs: {}",
        stack.submitted,
        stack.faults.len(),
        stack.app.entries("videos").len() - 1
    );
    assert_eq!(stack.app.entries("videos").len(), 1);
    stack.stop_all_workers().await;
    let app = stack.app;
    app.shutdown().await;
    std::fs::remove_dir_all(fixtures).unwrap();
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn fault_injection_suite(pool: PgPool) {
    let database_url = common::binary::database_url(&pool).await;
    let fixtures = scratch();
    let mut stack = Stack::new(pool, database_url, &fixtures).await;
    let medium = make_clip(&fixtures, "medium.mp4", 10, 1280, 720, true).await;
    let small = make_clip(&fixtures, "small.mp4", 2, 320, 240, true).await;

    let outcome = {
        let run = async {
            sigkill_mid_encode(&mut stack, &medium).await;
            flushall_with_jobs_queued_and_running(&mut stack, &medium, &small).await;
            redis_restart_during_uploads(&mut stack, &small).await;
            postgres_outage_during_encoding(&mut stack, &medium).await;
            sigterm_mid_encode(&mut stack, &medium).await;
            hanging_ffmpeg_is_killed_and_the_job_fails(&mut stack, &small, &fixtures).await;
            cancel_retry_delete(&mut stack, &medium, &small).await;
        };
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run)).await
    };
    // On a failure, show what the workers said before the panic propagates.
    if let Err(panic) = outcome {
        stack.dump_logs();
        std::panic::resume_unwind(panic);
    }
    stack.wait_all_ready().await;

    // Every video that should be ready is, and each has exactly one output.
    let ready: HashSet<String> =
        sqlx::query_scalar::<_, String>("SELECT video_id::text FROM jobs WHERE state = 'ready'")
            .fetch_all(&stack.app.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let lost = stack
        .expect_ready
        .iter()
        .filter(|id| !ready.contains(*id))
        .count();
    let published = stack.app.entries("videos");
    let duplicates = published.len() - published.iter().filter(|d| ready.contains(*d)).count();
    println!(
        "fault injection summary: jobs submitted: {}, faults injected: {} ({}), jobs lost: {lost}, duplicate outputs: {duplicates}",
        stack.submitted,
        stack.faults.len(),
        stack.faults.join(", ")
    );
    assert_eq!(lost, 0);
    assert_eq!(duplicates, 0);
    assert_eq!(published.len(), ready.len());

    // The live workers export what they did.
    let mut scraped = String::new();
    for worker in &stack.workers {
        let url = format!("http://{}/metrics", worker.metrics);
        scraped += &reqwest::get(&url).await.unwrap().text().await.unwrap();
    }
    for name in [
        "prostream_job_attempts_total{outcome=\"ready\"}",
        "prostream_job_duration_seconds_bucket",
        "prostream_encode_speed_ratio_bucket",
        "prostream_jobs_reconciled_total",
        "prostream_leases_reaped_total",
    ] {
        assert!(
            scraped.contains(name),
            "no {name} in the workers' metrics:\n{scraped}"
        );
    }
    stack.stop_all_workers().await;
    let app = stack.app;
    app.shutdown().await;
    std::fs::remove_dir_all(fixtures).unwrap();
}

/// 1. A worker killed outright: its lease runs out, another worker runs the job again.
async fn sigkill_mid_encode(stack: &mut Stack, clip: &Path) {
    let id = stack.upload(clip).await;
    let holder = stack.holder(&id).await;
    let mut killed = stack.signal(holder, "KILL").await;
    killed.child.wait().await.unwrap();
    stack.faults.push("SIGKILL worker mid-encode");
    // Its ffmpeg is orphaned, not killed: it dies on its next progress write
    // into the closed pipe (about every half second).
    let pattern = format!("{}/videos/{id}/1-", stack.app.media_dir.display());
    wait_for_no_process(
        &pattern,
        Duration::from_secs(5),
        "the killed worker's ffmpeg exits",
    )
    .await;
    stack.spawn_worker(&[]);
    let video = stack.app.wait_until_ready(&id, SETTLE).await;
    assert_eq!(video["attempts"], 2, "the killed attempt counts: {video}");
    stack.expect_ready.push(id);
}

/// 2. Redis loses every key while jobs wait and run.
async fn flushall_with_jobs_queued_and_running(stack: &mut Stack, medium: &Path, small: &Path) {
    let mut ids = vec![stack.upload(medium).await];
    for _ in 0..4 {
        ids.push(stack.upload(small).await);
    }
    stack.holder(&ids[0]).await;
    stack.redis.flushall().await;
    stack.faults.push("FLUSHALL");
    stack.expect_ready.extend(ids);
    stack.wait_all_ready().await;
}

/// 3a. Redis goes away during a burst of uploads: every request answers, no job is lost.
async fn redis_restart_during_uploads(stack: &mut Stack, clip: &Path) {
    let body = std::fs::read(clip).unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .default_headers(stack.app.http_headers())
        .build()
        .unwrap();
    let uploads = (0..6).map(|i| {
        let (client, url, body) = (client.clone(), stack.app.url("/v1/videos"), body.clone());
        async move {
            // A burst spread over the restart, on purpose (not a wait for anything).
            tokio::time::sleep(Duration::from_millis(150 * i)).await;
            let response = client
                .post(url)
                .header("content-type", "video/mp4")
                .body(body)
                .send()
                .await
                .expect("every upload gets an answer");
            let status = response.status().as_u16();
            let json: serde_json::Value = response.json().await.unwrap();
            (status, json)
        }
    });
    let restart = stack.redis.restart(Duration::from_millis(500));
    let (answers, ()) = tokio::join!(futures_util::future::join_all(uploads), restart);
    stack.faults.push("Redis restart during uploads");
    for (status, json) in answers {
        stack.submitted += 1;
        match status {
            202 => stack
                .expect_ready
                .push(json["id"].as_str().unwrap().to_owned()),
            s if s >= 500 => assert!(json["code"].is_string(), "a 5xx carries a code: {json}"),
            other => panic!("unexpected {other}: {json}"),
        }
    }
    stack.wait_all_ready().await;
}

/// 3b. Postgres refuses every connection for a few seconds while a job encodes.
async fn postgres_outage_during_encoding(stack: &mut Stack, clip: &Path) {
    let id = stack.upload(clip).await;
    stack.holder(&id).await;
    let admin = sqlx::PgPool::connect(&std::env::var("DATABASE_URL").unwrap())
        .await
        .unwrap();
    let name = stack.database_url.rsplit_once('/').unwrap().1.to_owned();
    sqlx::query(&format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
    ))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&name)
        .execute(&admin)
        .await
        .unwrap();
    // While it is down the API answers, with a clear error rather than hanging.
    stack.assert_coded_5xx_while_postgres_is_down(&id).await;
    // The fault itself: Postgres refuses connections this long (not a wait for anything).
    tokio::time::sleep(Duration::from_secs(3)).await;
    sqlx::query(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    stack.faults.push("Postgres outage mid-encode");
    stack.expect_ready.push(id);
    stack.wait_all_ready().await;
}

/// 6. SIGTERM: the worker hands its job back and exits 0; another finishes it, attempt not charged.
async fn sigterm_mid_encode(stack: &mut Stack, clip: &Path) {
    let id = stack.upload(clip).await;
    let holder = stack.holder(&id).await;
    let mut stopped = stack.signal(holder, "TERM").await;
    let status = tokio::time::timeout(Duration::from_secs(10), stopped.child.wait())
        .await
        .expect("the worker exits within seconds of SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    stack.faults.push("SIGTERM worker mid-encode");
    stack.spawn_worker(&[]);
    let video = stack.app.wait_until_ready(&id, SETTLE).await;
    assert_eq!(
        video["attempts"], 1,
        "a handed-back attempt is not charged: {video}"
    );
    stack.expect_ready.push(id);
}

/// 4. An ffmpeg that hangs is killed at its time limit; the job is retried, then fails.
async fn hanging_ffmpeg_is_killed_and_the_job_fails(
    stack: &mut Stack,
    clip: &Path,
    fixtures: &Path,
) {
    stack.stop_all_workers().await;
    let fake = fixtures.join("hanging-ffmpeg");
    std::fs::write(
        &fake,
        "#!/bin/sh\n# stands in for an ffmpeg stuck on a pathological input\nexec sleep 300\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .unwrap();
    let fake_path = fake.to_str().unwrap().to_owned();
    stack.spawn_worker(&[
        ("FFMPEG_PATH", fake_path.as_str()),
        ("ENCODE_TIMEOUT_FACTOR", "0"),
        ("ENCODE_TIMEOUT_MIN_SECS", "1"),
    ]);
    let id = stack.upload(clip).await;
    let video = stack
        .app
        .wait_for_status(&id, &["failed", "ready"], SETTLE)
        .await;
    stack.faults.push("hanging ffmpeg");
    assert_eq!(video["status"], "failed", "{video}");
    assert_eq!(video["error"]["code"], "transcode_timeout");
    assert_eq!(video["attempts"], 3);
    let left = std::process::Command::new("pgrep")
        .args(["-f", &fake_path])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "the hung process was killed");
    stack.stop_all_workers().await;
    for _ in 0..WORKERS {
        stack.spawn_worker(&[]);
    }
    // 5c. Retry the failed video: with a working ffmpeg it ends ready.
    let (status, _) = stack.app.post(&format!("/v1/videos/{id}/retry")).await;
    assert_eq!(status, 202);
    stack.expect_ready.push(id);
    stack.wait_all_ready().await;
}

/// 5. Cancel a queued and a running job, delete a ready one.
async fn cancel_retry_delete(stack: &mut Stack, medium: &Path, small: &Path) {
    // Queued: every worker busy with a longer job, so the small one waits.
    let busy: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..WORKERS {
            ids.push(stack.upload(medium).await);
        }
        ids
    };
    let queued = stack.upload(small).await;
    let (status, video) = stack.app.post(&format!("/v1/videos/{queued}/cancel")).await;
    assert_eq!(
        (status, video["status"].as_str()),
        (200, Some("canceled")),
        "{video}"
    );

    // Running: ffmpeg is gone within 2 s and no partial output remains.
    let running = &busy[0];
    let holder = stack.holder(running).await;
    let (status, _) = stack
        .app
        .post(&format!("/v1/videos/{running}/cancel"))
        .await;
    assert_eq!(status, 200);
    let canceled_at = Instant::now();
    let pattern = format!("{}/videos/{running}/", stack.app.media_dir.display());
    wait_for_no_process(
        &pattern,
        Duration::from_secs(2),
        "the canceled job's ffmpeg exits",
    )
    .await;
    eprintln!(
        "canceled ffmpeg gone after {:?} (worker {holder})",
        canceled_at.elapsed()
    );
    stack.faults.push("cancel queued");
    stack.faults.push("cancel running");
    stack.expect_ready.extend(busy[1..].iter().cloned());
    stack.wait_all_ready().await;
    assert!(
        stack.app.attempt_dirs(running).is_empty(),
        "the canceled attempt's output is gone"
    );
    for id in [&queued, running] {
        let video = stack.app.get_json(&format!("/v1/videos/{id}")).await;
        assert_eq!(video["status"], "canceled", "{video}");
    }

    // Delete a ready video: rows and files go.
    let gone = stack.expect_ready.pop().unwrap();
    let response = stack.app.delete(&format!("/v1/videos/{gone}")).await;
    assert_eq!(response.status(), 204);
    assert!(!stack.app.entries("videos").contains(&gone));
    assert!(!stack.app.entries("uploads").contains(&gone));
    stack.faults.push("delete ready");
}

/// Whether no process has `pattern` on its command line.
/// Waits until no process has `pattern` on its command line (`what`), for at most `limit`.
async fn wait_for_no_process(pattern: &str, limit: Duration, what: &str) {
    eventually(limit, what, async || {
        let out = Command::new("pgrep")
            .args(["-f", pattern])
            .output()
            .await
            .unwrap();
        out.stdout.is_empty()
    })
    .await;
}

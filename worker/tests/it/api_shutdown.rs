//! SIGTERM on the real `prostream serve` process: it stops accepting
//! connections, lets an upload in flight finish, and exits 0.

use crate::common;

use std::{process::Stdio, time::Duration};

use common::{binary::ServeEnv, eventually, loopback_addr};
use sqlx::PgPool;
use tokio::process::Command;

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn sigterm_lets_an_upload_in_flight_finish_and_refuses_new_connections(pool: PgPool) {
    let env = ServeEnv::new(&pool, "shutdown").await;
    let media = env.dir.clone();
    let addr = loopback_addr();

    // A real clip to upload, made before the server starts.
    std::fs::create_dir_all(&media).unwrap();
    let clip = common::make_clip(&media, "clip.mp4", 2, 160, 120, false).await;
    let body = std::fs::read(&clip).unwrap();
    let key = common::create_key(&pool, "shutdown-test", false).await;

    let mut server = Command::new(common::prostream_bin())
        .arg("serve")
        .env("BIND_ADDR", &addr)
        .env("METRICS_ADDR", loopback_addr())
        .env("DATABASE_URL", &env.database_url)
        .env("REDIS_URL", &env.redis_url)
        .env("QUEUE_NAME", &env.queue_name)
        .env("MEDIA_ROOT", media.join("root"))
        .env("SHUTDOWN_GRACE_SECS", "20")
        .env(
            "PLAYBACK_SIGNING_KEYS",
            prostream::playback::SigningKey::generate("test").to_spec(),
        )
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(20), "the API starts", async || {
        client.get(format!("http://{addr}/healthz")).send().await
    })
    .await;

    // An upload that trickles in over about two seconds.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let chunks: Vec<Vec<u8>> = body
        .chunks(body.len() / 10 + 1)
        .map(<[u8]>::to_vec)
        .collect();
    let upload = tokio::spawn({
        let (client, url) = (client.clone(), format!("http://{addr}/v1/videos"));
        let key = key.clone();
        async move {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|c| (c, rx))
            });
            client
                .post(url)
                .header("content-type", "video/mp4")
                .bearer_auth(&key)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await
        }
    });
    let mut chunks = chunks.into_iter();
    tx.send(Ok(chunks.next().unwrap())).await.unwrap();
    // The API is receiving it: the upload's file is there.
    let uploads = media.join("root/uploads");
    eventually(
        Duration::from_secs(20),
        "the API receives the upload",
        async || {
            std::fs::read_dir(&uploads).is_ok_and(|mut entries| {
                entries.any(|e| {
                    e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".incoming-"))
                })
            })
        },
    )
    .await;

    let pid = server.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-s", "TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    // New connections are refused while the upload is still arriving.
    eventually(
        Duration::from_secs(10),
        "the API refuses connections after SIGTERM",
        async || {
            reqwest::Client::new()
                .get(format!("http://{addr}/healthz"))
                .send()
                .await
                .is_err()
        },
    )
    .await;
    for chunk in chunks {
        tx.send(Ok(chunk)).await.unwrap();
        // The slow client under test: the rest trickles in (not a wait for anything).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(tx);
    let response = upload
        .await
        .unwrap()
        .expect("the upload in flight gets its answer");
    assert_eq!(response.status(), 202);
    let status = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("the API exits once the upload is done")
        .unwrap();
    assert!(status.success(), "{status}");
    let videos: i64 = sqlx::query_scalar("SELECT count(*) FROM videos")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(videos, 1);
    std::fs::remove_dir_all(&media).unwrap();
}

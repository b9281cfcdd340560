//! https for URL ingest and webhooks, against servers on loopback whose certificates are made
//! here (rcgen): one issued by the test CA that OUTBOUND_CA_BUNDLE names, valid for `localhost`
//! and 127.0.0.1, which serves a clip and takes webhooks; and three that each fail with a code of
//! their own: one issued by a CA nobody trusts, one by the test CA for another name, one by the
//! test CA that has expired. The SSRF guard applies as for http: these servers are reached
//! through the tests' allowlist (`127.0.0.1:*`, and `localhost` on the one port named).

use crate::common;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use common::{TestApp, eventually, make_clip, scratch};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// A certificate authority of the tests.
struct Ca(CertifiedIssuer<'static, KeyPair>);

/// A server's certificate and key.
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// The CA's certificate, as OUTBOUND_CA_BUNDLE holds it.
    fn pem(&self) -> String {
        self.0.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses) valid from `not_before` to
    /// `not_after`.
    fn issue(
        &self,
        names: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Identity {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        Identity {
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }

    /// A server certificate for `names`, valid since yesterday for a year.
    fn issue_current(&self, names: &[&str]) -> Identity {
        let now = OffsetDateTime::now_utc();
        self.issue(
            names,
            now - time::Duration::days(1),
            now + time::Duration::days(365),
        )
    }
}

/// TCP connections with the TLS handshake done: what `axum::serve` serves.
struct TlsListener {
    tcp: TcpListener,
    tls: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that refuses the certificate breaks the handshake off: wait for the next.
            if let Ok(tls) = self.tls.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// An https server on 127.0.0.1: `GET /clip.mp4` serves the clip, `POST /hook` records the body.
struct Origin {
    addr: SocketAddr,
    hooks: Arc<Mutex<Vec<Value>>>,
}

impl Origin {
    async fn start(identity: Identity, clip: PathBuf) -> Self {
        type Shared = (PathBuf, Arc<Mutex<Vec<Value>>>);
        async fn clip_file(State((path, _)): State<Shared>) -> Response {
            (
                [(header::CONTENT_TYPE, "video/mp4")],
                tokio::fs::read(path).await.unwrap(),
            )
                .into_response()
        }
        async fn hook(State((_, hooks)): State<Shared>, body: Bytes) -> StatusCode {
            hooks
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            StatusCode::NO_CONTENT
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![identity.cert], identity.key)
            .unwrap();
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/clip.mp4", get(clip_file))
            .route("/hook", post(hook))
            .with_state((clip, hooks.clone()));
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = TlsListener {
            tcp,
            tls: TlsAcceptor::from(Arc::new(config)),
        };
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, hooks }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn hooks(&self) -> Vec<Value> {
        self.hooks.lock().unwrap().clone()
    }
}

/// Asks for a URL ingest of `url`; returns the new video's id.
async fn ingest(app: &TestApp, url: &str) -> String {
    let response = app
        .http
        .post(app.url("/v1/videos"))
        .json(&json!({ "url": url }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let video: Value = response.json().await.unwrap();
    assert_eq!(status, 202, "{url}: {video}");
    video["id"].as_str().unwrap().to_owned()
}

/// Registers `url` for `video.canceled`; returns the webhook's id.
async fn register(app: &TestApp, url: &str) -> String {
    let response = app
        .http
        .post(app.url("/v1/webhooks"))
        .json(&json!({ "url": url, "events": ["video.canceled"] }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let hook: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{url}: {hook}");
    hook["id"].as_str().unwrap().to_owned()
}

/// The first delivery of a webhook once its first attempt is recorded.
async fn first_attempted_delivery(app: &TestApp, hook: &str) -> Value {
    let path = format!("/v1/webhooks/{hook}/deliveries");
    eventually(
        Duration::from_secs(15),
        &format!("an attempt of webhook {hook}"),
        async || {
            let list = app.get_json(&path).await;
            list["deliveries"]
                .as_array()
                .and_then(|d| d.first())
                .filter(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
                .cloned()
        },
    )
    .await
}

/// Uploads a clip and cancels it (no worker runs): every `video.canceled` webhook gets a delivery.
async fn cancel_a_video(app: &TestApp, clip: &std::path::Path) -> String {
    let id = app.upload_ok(clip).await;
    let (status, video) = app.post(&format!("/v1/videos/{id}/cancel")).await;
    assert_eq!(status, 200, "{video}");
    id
}

/// The API with `bundle` in OUTBOUND_CA_BUNDLE; `localhost:{port}` joins URL ingest's allowlist.
async fn app_trusting(pool: PgPool, bundle: &std::path::Path, localhost: Option<u16>) -> TestApp {
    let bundle = bundle.display().to_string();
    TestApp::spawn_with_config(pool, |config| {
        config.outbound_tls.outbound_ca_bundle = bundle;
        if let Some(port) = localhost {
            let allow = &mut config.ingest.url_ingest_allow_hosts;
            allow.push(format!("localhost:{port}"));
        }
    })
    .await
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn https_downloads_and_deliveries_work_with_the_ca_of_outbound_ca_bundle(pool: PgPool) {
    let fixtures = scratch();
    let ca = Ca::new("ProStream test CA");
    let bundle = fixtures.join("ca.pem");
    std::fs::write(&bundle, ca.pem()).unwrap();
    let clip = make_clip(&fixtures, "remote.mp4", 1, 160, 120, false).await;
    let origin = Origin::start(ca.issue_current(&["localhost", "127.0.0.1"]), clip.clone()).await;
    let app = app_trusting(pool, &bundle, Some(origin.port())).await;

    // A download by name: the certificate is checked for `localhost` (sent as SNI).
    let url = format!("https://localhost:{}/clip.mp4", origin.port());
    let id = ingest(&app, &url).await;
    let video = app
        .wait_for_status(&id, &["queued", "failed"], Duration::from_secs(30))
        .await;
    assert_eq!(video["status"], "queued", "{video}");
    assert_eq!(video["source"]["url"], url.as_str());
    assert!(
        (video["source"]["duration_s"].as_f64().unwrap() - 1.0).abs() < 0.2,
        "{video}"
    );
    let originals = app.entries("uploads");
    assert_eq!(originals.len(), 1, "{originals:?}");
    let stored = std::fs::read(app.media_dir.join("uploads").join(&originals[0])).unwrap();
    assert!(
        stored == std::fs::read(&clip).unwrap(),
        "the original differs"
    );

    // A delivery by address: the certificate is checked for 127.0.0.1.
    let hook = register(&app, &format!("https://127.0.0.1:{}/hook", origin.port())).await;
    let canceled = cancel_a_video(&app, &clip).await;
    let received = eventually(
        Duration::from_secs(15),
        "the video.canceled webhook over https",
        async || origin.hooks().into_iter().next(),
    )
    .await;
    assert_eq!(received["type"], "video.canceled", "{received}");
    assert_eq!(
        received["data"]["video_id"],
        canceled.as_str(),
        "{received}"
    );
    let delivery = eventually(
        Duration::from_secs(15),
        "the delivery recorded as delivered",
        async || {
            let delivery = first_attempted_delivery(&app, &hook).await;
            (delivery["state"] == "delivered").then_some(delivery)
        },
    )
    .await;
    assert_eq!(delivery["attempts"][0]["status"], 204, "{delivery}");
    assert!(delivery["attempts"][0]["error"].is_null(), "{delivery}");

    let _ = std::fs::remove_dir_all(fixtures);
    app.shutdown().await;
}

#[sqlx::test(migrator = "prostream::db::MIGRATOR")]
async fn untrusted_wrong_host_and_expired_certificates_each_fail_with_their_code(pool: PgPool) {
    let fixtures = scratch();
    let ca = Ca::new("ProStream test CA");
    let stranger = Ca::new("A CA nobody trusts");
    let bundle = fixtures.join("ca.pem");
    std::fs::write(&bundle, ca.pem()).unwrap();
    let clip = make_clip(&fixtures, "remote.mp4", 1, 160, 120, false).await;
    let now = OffsetDateTime::now_utc();
    // (code, the server's certificate, what the message says besides the host)
    let cases = [
        (
            "tls_untrusted_certificate",
            stranger.issue_current(&["localhost", "127.0.0.1"]),
            "not issued by a trusted certificate authority",
        ),
        (
            "tls_wrong_host",
            ca.issue_current(&["wrong.example"]),
            "not valid for that name; it is for wrong.example",
        ),
        (
            "tls_certificate_expired",
            ca.issue(
                &["localhost", "127.0.0.1"],
                now - time::Duration::days(30),
                now - time::Duration::days(1),
            ),
            "has expired",
        ),
    ];
    let mut origins = Vec::new();
    for (code, identity, said) in cases {
        origins.push((code, said, Origin::start(identity, clip.clone()).await));
    }
    let app = app_trusting(pool, &bundle, None).await;

    // URL ingest: each download fails with its code, and a message naming the host.
    for (code, said, origin) in &origins {
        let url = format!("https://127.0.0.1:{}/clip.mp4", origin.port());
        let id = ingest(&app, &url).await;
        let video = app
            .wait_for_status(&id, &["queued", "failed"], Duration::from_secs(30))
            .await;
        assert_eq!(video["status"], "failed", "{url}: {video}");
        assert_eq!(video["error"]["code"], *code, "{url}: {video}");
        let message = video["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(said) && message.contains("127.0.0.1"),
            "{code}: {message}"
        );
    }
    assert_eq!(app.entries("uploads"), Vec::<String>::new());

    // Webhooks: each endpoint's attempt fails with its code in front of the message; nothing
    // reaches the endpoint.
    let mut hooks = Vec::new();
    for (code, said, origin) in &origins {
        let hook = register(&app, &format!("https://127.0.0.1:{}/hook", origin.port())).await;
        hooks.push((*code, *said, hook));
    }
    cancel_a_video(&app, &clip).await;
    for (code, said, hook) in &hooks {
        let delivery = first_attempted_delivery(&app, hook).await;
        let attempt = &delivery["attempts"][0];
        assert!(attempt["status"].is_null(), "{code}: {delivery}");
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(&format!("{code}: ")) && error.contains(said),
            "{code}: {error}"
        );
        assert_ne!(delivery["state"], "delivered", "{code}: {delivery}");
    }
    for (code, _, origin) in &origins {
        assert_eq!(origin.hooks(), Vec::<Value>::new(), "{code}");
    }

    let _ = std::fs::remove_dir_all(fixtures);
    app.shutdown().await;
}

#[tokio::test]
async fn the_api_refuses_to_start_with_a_ca_bundle_it_cannot_use() {
    let fixtures = scratch();
    let junk = fixtures.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let missing = fixtures.join("missing.pem");
    for (bundle, said) in [
        (&missing, "cannot read the CA bundle"),
        (&junk, "holds no PEM certificate"),
    ] {
        let run = tokio::process::Command::new(common::prostream_bin())
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "PLAYBACK_SIGNING_KEYS",
                prostream::playback::SigningKey::generate("t").to_spec(),
            )
            .env("OUTBOUND_CA_BUNDLE", bundle)
            // Nothing listens here: the refusal comes before any connection.
            .env("DATABASE_URL", "postgres://127.0.0.1:9/none")
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("METRICS_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let run = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("the API exits instead of serving")
            .unwrap();
        assert!(!run.status.success(), "started with {}", bundle.display());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains(said)
                && stderr.contains("OUTBOUND_CA_BUNDLE")
                && stderr.contains(&bundle.display().to_string()),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(fixtures);
}

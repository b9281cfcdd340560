//! Sending webhooks as the Standard Webhooks specification describes them
//! (<https://www.standardwebhooks.com/>): each delivery is a POST of the event's JSON with
//! `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">` keyed with the endpoint's secret (base64 after `whsec_`).
//!
//! The deliverer runs in the API process. Deliveries live in Postgres (written by
//! [`crate::db::webhooks::enqueue_event`] with the state change), so the deliverer only ever
//! takes them from there: with a lease, so several API instances never send one attempt twice,
//! and an instance that dies mid-attempt leaves a lease that runs out. A failed attempt is tried
//! again on the spec's schedule (scaled by `WEBHOOK_RETRY_BASE_SECS`) until
//! `WEBHOOK_RETRY_WINDOW_SECS` after the event, then the delivery is `failed`.
//!
//! Slow endpoints cannot hold things up: every attempt has a timeout, at most
//! `WEBHOOK_CONCURRENCY` run at once, and at most [`PER_ENDPOINT`] of them go to one endpoint.
//! Transcoding never waits for any of it: the state change only writes rows.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use clap::Args;
use hmac::{Hmac, Mac};
use rand::RngCore;
use reqwest::Url;
use sha2::Sha256;
use sqlx::{PgPool, postgres::PgListener};
use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{
    db::webhooks::{self as store, AttemptResult, DueDelivery, Next},
    fetch::{self, AllowList, ExtraRoots, FetchError, Policy},
    telemetry,
};

/// Attempts in flight to one endpoint at most (per API instance and across instances).
pub const PER_ENDPOINT: i64 = 4;
/// What a webhook secret starts with (the spec's libraries strip it).
pub const SECRET_PREFIX: &str = "whsec_";
/// How long registering an endpoint waits for its name's addresses: a resolver that does not
/// answer must not hold the request (the name is checked again at every attempt).
const DNS_BOUND: Duration = Duration::from_secs(2);
/// Delays after the 1st, 2nd, … failed attempt, in units of `WEBHOOK_RETRY_BASE_SECS`: with the
/// default 5 s, the spec's schedule of 5 s, 5 min, 30 min, 2 h, 5 h, then every 10 h.
const SCHEDULE: [u32; 6] = [1, 60, 360, 1440, 3600, 7200];

/// Webhook settings (API).
#[derive(Debug, Clone, Args)]
pub struct WebhookConfig {
    /// `host:port` pairs (comma-separated; `[v6]:port` for IPv6, `host:*` for every port) a
    /// webhook may be sent to although they are or resolve to internal addresses (loopback,
    /// private, link-local…). A bare host is refused at start.
    #[arg(
        long,
        env = "WEBHOOK_ALLOW_HOSTS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub webhook_allow_hosts: Vec<String>,
    /// Seconds an endpoint has to answer one delivery attempt.
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub webhook_timeout_secs: u64,
    /// Delivery attempts one API instance runs at once.
    #[arg(long, env = "WEBHOOK_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub webhook_concurrency: u16,
    /// The first retry delay in seconds; later ones follow the spec's schedule scaled by it
    /// (5: 5 s, 5 min, 30 min, 2 h, 5 h, then every 10 h).
    #[arg(long, env = "WEBHOOK_RETRY_BASE_SECS", default_value_t = 5.0)]
    pub webhook_retry_base_secs: f64,
    /// A delivery is retried until this many seconds after its event, then marked failed.
    #[arg(long, env = "WEBHOOK_RETRY_WINDOW_SECS", default_value_t = 24 * 3600)]
    pub webhook_retry_window_secs: u64,
}

/// The deliverer's shared parts; also checks URLs at registration.
pub struct Webhooks {
    policy: Arc<Policy>,
    client: reqwest::Client,
    timeout: Duration,
    concurrency: usize,
    retry_base: Duration,
    window: Duration,
    /// Wakes the deliverer: a slot came free.
    wake: Notify,
}

impl Webhooks {
    /// `roots`: OUTBOUND_CA_BUNDLE's CAs, trusted besides the system's for https endpoints.
    pub fn new(config: &WebhookConfig, roots: &ExtraRoots) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.webhook_retry_base_secs.is_finite() && config.webhook_retry_base_secs > 0.0,
            "WEBHOOK_RETRY_BASE_SECS must be a positive number of seconds"
        );
        let timeout = Duration::from_secs(config.webhook_timeout_secs);
        let policy = Arc::new(Policy {
            allow: AllowList::parse(&config.webhook_allow_hosts, "WEBHOOK_ALLOW_HOSTS")
                .map_err(anyhow::Error::msg)?,
            max_bytes: 0,
            timeout,
            max_redirects: 0,
            allow_var: "WEBHOOK_ALLOW_HOSTS",
        });
        Ok(Self {
            client: fetch::webhook_client(policy.clone(), timeout, roots)?,
            policy,
            timeout,
            concurrency: usize::from(config.webhook_concurrency),
            retry_base: Duration::from_secs_f64(config.webhook_retry_base_secs),
            window: Duration::from_secs(config.webhook_retry_window_secs),
            wake: Notify::new(),
        })
    }

    /// What can be checked of a stored endpoint URL without the network: an http or https URL
    /// without credentials whose host is not a literal internal address. Names are checked again
    /// after DNS on every attempt; an https endpoint's certificate at every attempt.
    pub fn check_url(&self, raw: &str) -> Result<Url, FetchError> {
        let url = Url::parse(raw.trim())
            .map_err(|e| FetchError::InvalidUrl(format!("not a valid URL: {e}")))?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(FetchError::InvalidUrl(format!(
                    "a webhook URL must be http or https, not {other}:"
                )));
            }
        }
        self.policy.check_url(&url)?;
        Ok(url)
    }

    /// A new endpoint: in the form the API takes ([`fetch::parse_http_url`]), not a literal
    /// internal address, and not a name that resolves to one now (it is checked again at every
    /// attempt, since DNS answers change). A name that does not resolve within [`DNS_BOUND`] is
    /// accepted; its attempts will say why they failed.
    pub async fn check_endpoint(&self, raw: &str) -> Result<Url, FetchError> {
        let url = fetch::parse_http_url(raw)?;
        self.policy.check_url(&url)?;
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Ok(url);
        };
        if self.policy.allows(&url) {
            return Ok(url);
        }
        if resolves_to_internal(host, port).await {
            return Err(fetch::resolves_internal(host, "WEBHOOK_ALLOW_HOSTS"));
        }
        Ok(url)
    }
}

/// Whether `host` resolves to an internal address now. A name that does not resolve, or not
/// within [`DNS_BOUND`], does not.
async fn resolves_to_internal(host: &str, port: u16) -> bool {
    match tokio::time::timeout(DNS_BOUND, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(mut addrs)) => addrs.any(|addr| !fetch::is_public(addr.ip())),
        _ => false,
    }
}

/// A new endpoint secret: `whsec_` and the standard base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` header value: `v1,` and the base64 HMAC-SHA256 of
/// `{msg_id}.{timestamp}.{body}` keyed with the decoded secret. `None` for a malformed secret.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The delay before the attempt after `failed` failed attempts.
pub fn retry_delay(base: Duration, failed: i32) -> Duration {
    let step = usize::try_from(failed.max(1) - 1)
        .unwrap_or(0)
        .min(SCHEDULE.len() - 1);
    base * SCHEDULE[step]
}

/// Sends due deliveries until `shutdown`. Woken by Postgres (NOTIFY at the commit of an event),
/// by a finished attempt, and otherwise every retry base (within 250 ms to 1 s) for retries
/// coming due.
pub async fn run_deliverer(pool: PgPool, webhooks: Arc<Webhooks>, shutdown: CancellationToken) {
    let poll = webhooks
        .retry_base
        .clamp(Duration::from_millis(250), Duration::from_secs(1));
    let lease = webhooks.timeout + Duration::from_secs(30);
    let slots = Arc::new(Semaphore::new(webhooks.concurrency));
    let mut listener = listen(&pool).await;
    loop {
        let free = slots.available_permits();
        if free > 0 {
            let taken = match pool.acquire().await {
                Ok(mut conn) => store::take_due(&mut conn, lease, PER_ENDPOINT, free as i64).await,
                Err(err) => Err(err),
            };
            match taken {
                Ok(batch) => {
                    for delivery in batch {
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            break; // cannot happen: only this loop takes permits
                        };
                        let (pool, webhooks) = (pool.clone(), webhooks.clone());
                        tokio::spawn(async move {
                            deliver(&pool, &webhooks, delivery).await;
                            drop(permit);
                            webhooks.wake.notify_one();
                        });
                    }
                }
                Err(err) => tracing::warn!(error = %err, "cannot look for webhook deliveries"),
            }
        }
        let notified = async {
            match listener.as_mut() {
                Some(l) => {
                    if l.recv().await.is_err() {
                        tokio::time::sleep(poll).await; // reconnects at the next recv
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = notified => {}
            () = webhooks.wake.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
        if pool.is_closed() {
            // The listener keeps its connection checked out (a closed pool makes `recv` fail,
            // but does not take the connection back): drop it, or `Pool::close` waits forever.
            return;
        }
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let attempt = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(store::CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match attempt.await {
        Ok(listener) => Some(listener),
        Err(err) => {
            tracing::warn!(error = %err, "cannot LISTEN for webhook events; polling only");
            None
        }
    }
}

/// One attempt of one delivery, recorded with what comes next.
async fn deliver(pool: &PgPool, webhooks: &Webhooks, delivery: DueDelivery) {
    let started_at = OffsetDateTime::now_utc();
    let clock = Instant::now();
    let (status, error) = match send(webhooks, &delivery, started_at.unix_timestamp()).await {
        Ok(status) => (Some(status), None),
        Err(error) => (None, Some(error)),
    };
    let result = AttemptResult {
        started_at,
        duration: clock.elapsed(),
        status,
        error,
    };
    let next = if status.is_some_and(|s| (200..300).contains(&s)) {
        Next::Delivered
    } else {
        let delay = retry_delay(webhooks.retry_base, delivery.attempt);
        let give_up_at = delivery.event_created_at + webhooks.window;
        if OffsetDateTime::now_utc() + delay > give_up_at {
            Next::Failed
        } else {
            Next::RetryIn(delay)
        }
    };
    let outcome = match next {
        Next::Delivered => "delivered",
        Next::RetryIn(_) => "retried",
        Next::Failed => "failed",
    };
    tracing::info!(
        delivery_id = %delivery.id, attempt = delivery.attempt, status = ?result.status,
        error = result.error.as_deref().unwrap_or(""), outcome, "webhook attempt"
    );
    let recorded = async {
        let mut conn = pool.acquire().await?;
        store::finish_attempt(&mut conn, delivery.id, delivery.attempt, &result, next).await
    };
    match recorded.await {
        Ok(true) => {
            metrics::counter!(telemetry::WEBHOOK_DELIVERIES, "result" => outcome).increment(1)
        }
        Ok(false) => tracing::info!(delivery_id = %delivery.id, "delivery gone meanwhile"),
        // The lease runs out and the attempt is made again: at least once, as the spec expects.
        Err(err) => tracing::warn!(delivery_id = %delivery.id, error = %err,
                                   "could not record a webhook attempt"),
    }
}

/// POSTs the signed payload; the status, or why there is none (a TLS failure with its code in
/// front: `tls_untrusted_certificate: …`).
async fn send(webhooks: &Webhooks, delivery: &DueDelivery, timestamp: i64) -> Result<u16, String> {
    // Checked again at every attempt: the allowlist may have changed since registration.
    let url = webhooks
        .check_url(&delivery.url)
        .map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&delivery.payload).map_err(|e| e.to_string())?;
    let msg_id = delivery.event_id.to_string();
    let signature = sign(&delivery.secret, &msg_id, timestamp, &body)
        .ok_or_else(|| "the endpoint's secret is malformed".to_owned())?;
    let response = webhooks
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|err| {
            if err.is_timeout() {
                format!(
                    "no answer within {:?} (WEBHOOK_TIMEOUT_SECS)",
                    webhooks.timeout
                )
            } else {
                fetch::describe(err).with_code()
            }
        })?;
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_specs_example() {
        // The test vector of the Standard Webhooks reference libraries (and svix's).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn secrets_are_prefixed_base64_of_32_random_bytes() {
        let secret = new_secret();
        let bytes = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(bytes.len(), 32);
        assert_ne!(secret, new_secret());
    }

    #[test]
    fn retries_follow_the_specs_schedule_scaled_by_the_base() {
        let base = Duration::from_secs(5);
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(base, n).as_secs()).collect();
        assert_eq!(delays, [5, 300, 1800, 7200, 18000, 36000, 36000, 36000]);
    }
}

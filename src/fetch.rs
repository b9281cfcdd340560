//! Downloading a source from a URL someone gave us, without letting that URL
//! reach what it must not: loopback, private networks, link-local (cloud
//! metadata at 169.254.169.254), multicast and the like are refused after DNS
//! resolution, on the first request and on every redirect hop. Hosts named in
//! the allowlist are exempt (tests use it for a loopback server).
//!
//! Bounded in every way: size (checked against `Content-Length` and while
//! streaming), total time, and number of redirects.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt;
use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
    redirect,
};
use tokio::io::AsyncWriteExt;

/// Why a download did not produce a file. `code()` is stored as the job's error code.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    InvalidUrl(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("the source is larger than the limit of {0} bytes (MAX_UPLOAD_BYTES)")]
    TooLarge(u64),
    #[error("the download took longer than {0:?} (URL_INGEST_TIMEOUT_SECS)")]
    TimedOut(Duration),
    #[error("the server answered {0}")]
    Status(reqwest::StatusCode),
    #[error("the download failed: {0}")]
    Network(String),
    #[error("writing the download failed: {0}")]
    Io(#[from] std::io::Error),
}

impl FetchError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "invalid_url",
            Self::Forbidden(_) => "url_forbidden",
            Self::TooManyRedirects(_) => "too_many_redirects",
            Self::TooLarge(_) => "upload_too_large",
            Self::TimedOut(_) => "download_timeout",
            Self::Status(_) | Self::Network(_) => "download_failed",
            Self::Io(_) => "internal_error",
        }
    }

    /// Worth trying again later (the remote side or the network), as opposed to a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status(status) => status.is_server_error() || status.as_u16() == 429,
            Self::Network(_) | Self::TimedOut(_) => true,
            _ => false,
        }
    }
}

/// The rules a download follows.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Host names or IP addresses (as written in URLs) exempt from the address check.
    pub allow_hosts: HashSet<String>,
    pub max_bytes: u64,
    pub timeout: Duration,
    pub max_redirects: usize,
    /// The setting that fills `allow_hosts`, named in refusals.
    pub allow_var: &'static str,
}

impl Policy {
    /// Whether `host` (as written in a URL) is on the allowlist.
    pub fn allows(&self, host: &str) -> bool {
        self.allows_host(host)
    }

    fn allows_host(&self, host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        self.allow_hosts.contains(host) || self.allow_hosts.contains(bare)
    }

    /// Checks what can be checked without the network: scheme, and literal addresses.
    pub fn check_url(&self, url: &Url) -> Result<(), FetchError> {
        // The binaries carry no TLS client yet (and the image no CA bundle):
        // an https URL is refused here rather than failing later as a download.
        if url.scheme() == "https" {
            return Err(FetchError::InvalidUrl(
                "https URLs cannot be ingested yet (this build has no TLS client); \
                 use an http URL or upload the file"
                    .into(),
            ));
        }
        if url.scheme() != "http" {
            return Err(FetchError::InvalidUrl(format!(
                "only http URLs can be ingested, not {}:",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| FetchError::InvalidUrl("the URL has no host".into()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::InvalidUrl(
                "URLs with credentials are not accepted".into(),
            ));
        }
        if self.allows_host(host) {
            return Ok(());
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        match literal {
            Some(ip) if !is_public(ip) => Err(forbidden(host, ip, self.allow_var)),
            _ => Ok(()),
        }
    }
}

fn forbidden(host: &str, ip: IpAddr, allow_var: &str) -> FetchError {
    FetchError::Forbidden(format!(
        "{host} is {ip}, a loopback, private, link-local or otherwise internal address; \
         add the host to {allow_var} to allow it"
    ))
}

/// Whether an address is on the public internet. Everything else (loopback,
/// RFC 1918, CGNAT, link-local incl. cloud metadata, multicast, unique-local,
/// documentation, benchmarking, reserved, IPv4-mapped forms of these) is not.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7 (incl. fd00:ec2::254)
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 can reach IPv4 internals
}

/// Resolves names with the system resolver and refuses any name with an
/// internal address among its answers, so a DNS record cannot point us inward.
struct GuardedResolver {
    policy: Arc<Policy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !policy.allows_host(&host)
                && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
            {
                return Err(Box::new(forbidden(&host, bad.ip(), policy.allow_var)) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// An HTTP client that enforces `policy` on every hop.
pub fn client(policy: Arc<Policy>) -> reqwest::Result<reqwest::Client> {
    let hops = policy.clone();
    let redirects = redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > hops.max_redirects {
            return attempt.error(FetchError::TooManyRedirects(hops.max_redirects));
        }
        match hops.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(err) => attempt.error(err),
        }
    });
    reqwest::Client::builder()
        // A proxy would resolve names itself, past our resolver.
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver {
            policy: policy.clone(),
        }))
        .redirect(redirects)
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!(
            "ProStream/",
            env!("CARGO_PKG_VERSION"),
            " (URL ingest)"
        ))
        .build()
}

/// An HTTP client for webhook deliveries: the same address checks after DNS on every
/// request, no redirects (a 3xx is an answer, and not a success), `timeout` per request.
pub fn webhook_client(policy: Arc<Policy>, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .redirect(redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .user_agent(concat!(
            "ProStream/",
            env!("CARGO_PKG_VERSION"),
            " (webhooks)"
        ))
        .build()
}

/// The message of a request that failed, with its causes (our own refusal when it is one).
pub fn describe(err: reqwest::Error) -> FetchError {
    from_reqwest(err)
}

/// Downloads `url` into `dest` (created or truncated) under `policy`; returns the size.
pub async fn download(
    client: &reqwest::Client,
    policy: &Policy,
    url: &Url,
    dest: &std::path::Path,
) -> Result<u64, FetchError> {
    policy.check_url(url)?;
    let work = async {
        let response = client.get(url.clone()).send().await.map_err(from_reqwest)?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > policy.max_bytes)
        {
            return Err(FetchError::TooLarge(policy.max_bytes));
        }
        let mut out =
            tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::create(dest).await?);
        let mut body = response.bytes_stream();
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(from_reqwest)?;
            written += chunk.len() as u64;
            if written > policy.max_bytes {
                return Err(FetchError::TooLarge(policy.max_bytes));
            }
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        out.into_inner().sync_data().await?;
        Ok(written)
    };
    tokio::time::timeout(policy.timeout, work)
        .await
        .map_err(|_| FetchError::TimedOut(policy.timeout))?
}

/// Finds our own refusal (from the resolver or the redirect policy) inside
/// reqwest's error chain; anything else is a network failure.
fn from_reqwest(err: reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(cause) = source {
        if let Some(ours) = cause.downcast_ref::<FetchError>() {
            return match ours {
                FetchError::Forbidden(m) => FetchError::Forbidden(m.clone()),
                FetchError::TooManyRedirects(n) => FetchError::TooManyRedirects(*n),
                FetchError::InvalidUrl(m) => FetchError::InvalidUrl(m.clone()),
                other => FetchError::Network(other.to_string()),
            };
        }
        source = cause.source();
    }
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    FetchError::Network(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> Policy {
        Policy {
            allow_hosts: allow.iter().map(|s| s.to_string()).collect(),
            max_bytes: 1000,
            timeout: Duration::from_secs(5),
            max_redirects: 3,
            allow_var: "URL_INGEST_ALLOW_HOSTS",
        }
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.0.8",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_credentials_and_literal_addresses() {
        let p = policy(&[]);
        let check = |u: &str| p.check_url(&Url::parse(u).unwrap()).map_err(|e| e.code());
        assert_eq!(check("file:///etc/passwd"), Err("invalid_url"));
        assert_eq!(check("ftp://example.com/a.mp4"), Err("invalid_url"));
        assert_eq!(
            check("http://user:pw@example.com/a.mp4"),
            Err("invalid_url")
        );
        assert_eq!(
            check("http://169.254.169.254/latest/meta-data"),
            Err("url_forbidden")
        );
        assert_eq!(check("http://[::1]:8080/a.mp4"), Err("url_forbidden"));
        assert_eq!(check("http://[::ffff:7f00:1]/a.mp4"), Err("url_forbidden"));
        assert_eq!(check("http://2130706433/a.mp4"), Err("url_forbidden")); // 127.0.0.1 in decimal
        assert_eq!(check("https://example.com/a.mp4"), Err("invalid_url"));
        assert_eq!(check("http://example.com/a.mp4"), Ok(()));
        let open = policy(&["127.0.0.1"]);
        assert!(
            open.check_url(&Url::parse("http://127.0.0.1:9/a.mp4").unwrap())
                .is_ok()
        );
    }
}

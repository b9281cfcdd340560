//! Downloading a source from a URL someone gave us, without letting that URL
//! reach what it must not: loopback, private networks, link-local (cloud
//! metadata at 169.254.169.254), multicast and the like are refused after DNS
//! resolution, on the first request and on every redirect hop. IPv6 addresses
//! that embed an IPv4 one (mapped, compatible, translated, NAT64, 6to4, Teredo)
//! are judged by it or refused outright. `host:port` pairs named in the
//! allowlist are exempt (tests use it for a loopback server); refusals name the
//! host as written, never what it resolved to.
//!
//! Bounded in every way: size (checked against `Content-Length` and while
//! streaming), total time, and number of redirects.
//!
//! https is verified (rustls): the certificate must chain to the system's trust store or to a CA
//! of OUTBOUND_CA_BUNDLE ([`OutboundTlsConfig`]) and name the host; a certificate that does not
//! fails with a code of its own ([`TlsFailure`]). The address checks are the same as for http:
//! the resolver below serves both.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
    redirect,
};
use rustls::{
    CertificateError,
    pki_types::{CertificateDer, pem::PemObject},
};
use tokio::io::AsyncWriteExt;

/// The longest URL the API takes (URL ingest, webhooks), in characters.
pub const MAX_URL_CHARS: usize = 2048;

/// A dotted IPv4 address without leading zeros, as a piece of [`HTTP_URL_PATTERN`].
macro_rules! ipv4 {
    () => {
        "(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
    };
}

/// The URLs the API takes (URL ingest, webhooks): `http://` or `https://`; a host name (labels of
/// letters, digits and single hyphens, the last one starting with a letter), a dotted IPv4
/// address or a bracketed IPv6 one in hex groups (the last two may be a dotted IPv4 address); an
/// optional port (0-65535); then an optional
/// path, query and fragment of RFC 3986 characters (no `'`, no spaces: percent-encode them).
/// The OpenAPI document states this pattern (`HttpUrl`) and [`parse_http_url`] matches it, so the
/// two cannot disagree. Written for ECMA-262, Python and the `regex` crate alike: no lookaround,
/// no `\d` or `\s`, and every URL it matches is one the `url` crate parses to the same host (the
/// last label of a name starts with a letter, so it is never read as an IPv4 number; no label
/// has `--`, so none is read as punycode).
pub const HTTP_URL_PATTERN: &str = concat!(
    "^https?://",
    "(?:",
    // A host name.
    "(?:[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\\.)*[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*",
    // A dotted IPv4 address, without leading zeros (which the URL standard reads as octal).
    "|",
    ipv4!(),
    // An IPv6 address: eight groups, or fewer around one `::`.
    "|\\[(?:",
    "(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}",
    "|(?:[0-9A-Fa-f]{1,4}:){1,7}:",
    "|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}",
    "|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}",
    "|(?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}",
    "|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}",
    "|(?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}",
    "|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}",
    "|:(?:(?::[0-9A-Fa-f]{1,4}){1,7}|:)",
    // The same with the last two groups written as an IPv4 address (`::ffff:127.0.0.1`).
    "|(?:[0-9A-Fa-f]{1,4}:){6}",
    ipv4!(),
    "|::(?:[0-9A-Fa-f]{1,4}:){0,5}",
    ipv4!(),
    "|[0-9A-Fa-f]{1,4}::(?:[0-9A-Fa-f]{1,4}:){0,4}",
    ipv4!(),
    "|(?:[0-9A-Fa-f]{1,4}:){1}[0-9A-Fa-f]{1,4}::(?:[0-9A-Fa-f]{1,4}:){0,3}",
    ipv4!(),
    "|(?:[0-9A-Fa-f]{1,4}:){2}[0-9A-Fa-f]{1,4}::(?:[0-9A-Fa-f]{1,4}:){0,2}",
    ipv4!(),
    "|(?:[0-9A-Fa-f]{1,4}:){3}[0-9A-Fa-f]{1,4}::(?:[0-9A-Fa-f]{1,4}:){0,1}",
    ipv4!(),
    "|(?:[0-9A-Fa-f]{1,4}:){4}[0-9A-Fa-f]{1,4}::",
    ipv4!(),
    ")\\]",
    ")",
    // The port.
    "(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?",
    // Path, query, fragment.
    "(?:/(?:[A-Za-z0-9._~!$&()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?",
    "(?:\\?(?:[A-Za-z0-9._~!$&()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?",
    "(?:#(?:[A-Za-z0-9._~!$&()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?",
    "$",
);

/// A URL someone gave the API, in the form [`HTTP_URL_PATTERN`] states. Only the form is
/// checked here; [`Policy::check_url`] judges where it points.
pub fn parse_http_url(raw: &str) -> Result<Url, FetchError> {
    static FORM: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(HTTP_URL_PATTERN).expect("HTTP_URL_PATTERN is a valid regex")
    });
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(FetchError::InvalidUrl(format!(
            "the URL is longer than {MAX_URL_CHARS} characters"
        )));
    }
    if !FORM.is_match(raw) {
        return Err(FetchError::InvalidUrl(
            "not an accepted URL: send http:// or https://, a host name, IPv4 address or \
             [IPv6] address, an optional port, then path, query and fragment with any other \
             character (spaces, quotes, non-ASCII) percent-encoded; no credentials, no \
             surrounding spaces"
                .into(),
        ));
    }
    Url::parse(raw).map_err(|e| FetchError::InvalidUrl(format!("not a valid URL: {e}")))
}

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
    /// The TLS handshake failed; `message` says why and names the host.
    #[error("{message}")]
    Tls {
        failure: TlsFailure,
        message: String,
    },
    #[error("writing the download failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a TLS handshake failed, as far as the code says (the message says the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The certificate does not chain to a trusted CA (self-signed, a private CA not in
    /// OUTBOUND_CA_BUNDLE, a missing intermediate) or its signature does not verify.
    UntrustedCertificate,
    /// The certificate is for other names than the URL's host.
    WrongHost,
    /// The certificate is past its expiry.
    CertificateExpired,
    /// Anything else: not yet valid, revoked, not for servers, no common protocol version…
    Other,
}

impl TlsFailure {
    pub fn code(self) -> &'static str {
        match self {
            Self::UntrustedCertificate => "tls_untrusted_certificate",
            Self::WrongHost => "tls_wrong_host",
            Self::CertificateExpired => "tls_certificate_expired",
            Self::Other => "tls_failed",
        }
    }
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
            Self::Tls { failure, .. } => failure.code(),
            Self::Io(_) => "internal_error",
        }
    }

    /// The message with the code in front where the code is not stored apart (webhook attempts
    /// keep one `error` text): `tls_wrong_host: the TLS certificate of …`.
    pub fn with_code(&self) -> String {
        match self {
            Self::Tls { .. } => format!("{}: {self}", self.code()),
            _ => self.to_string(),
        }
    }

    /// Worth trying again later (the remote side or the network), as opposed to a refusal. A
    /// certificate that fails verification is not: it will fail the same way until someone
    /// changes it or the trust store.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status(status) => status.is_server_error() || status.as_u16() == 429,
            Self::Network(_) | Self::TimedOut(_) => true,
            _ => false,
        }
    }
}

/// Internal `host:port` pairs a download (or webhook) may reach anyway: URL_INGEST_ALLOW_HOSTS
/// and WEBHOOK_ALLOW_HOSTS. A host is allowed on the ports listed for it only, or on every port
/// when written `host:*`.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    /// Host (as a URL spells it: lowercase, IPv4 in dotted decimal, IPv6 compressed in brackets)
    /// → its ports, `None` for every port.
    hosts: HashMap<String, Option<HashSet<u16>>>,
}

impl AllowList {
    /// Parses `host:port` entries (`[v6]:port` for IPv6, `host:*` for every port); empty entries
    /// are skipped. `var` names the setting in the error.
    pub fn parse<S: AsRef<str>>(entries: &[S], var: &str) -> Result<Self, String> {
        let mut list = Self::default();
        for entry in entries.iter().map(|e| e.as_ref().trim()) {
            if entry.is_empty() {
                continue;
            }
            let (host, port) = split_host_port(entry).ok_or_else(|| {
                let bare = entry.trim_end_matches(':');
                format!(
                    "{var}: {entry:?} is not host:port; name the port too, e.g. {bare}:80 (an \
                     http URL without a port uses 80, an https URL 443), [::1]:8080 for IPv6, or \
                     {bare}:* for every port of the host"
                )
            })?;
            let ports = list
                .hosts
                .entry(host)
                .or_insert_with(|| Some(HashSet::new()));
            match (ports.as_mut(), port) {
                (Some(listed), Some(port)) => {
                    listed.insert(port);
                }
                (_, None) => *ports = None,
                (None, Some(_)) => {}
            }
        }
        Ok(list)
    }

    /// Whether `host` (as `Url::host_str` gives it) is listed, on some port.
    fn has_host(&self, host: &str) -> bool {
        self.hosts.contains_key(&host.to_ascii_lowercase())
    }

    /// Whether `host` is listed with `port`.
    fn allows(&self, host: &str, port: u16) -> bool {
        match self.hosts.get(&host.to_ascii_lowercase()) {
            Some(None) => true,
            Some(Some(ports)) => ports.contains(&port),
            None => false,
        }
    }
}

/// `host:port` or `host:*` → the host as a URL spells it, and the port (`None`: every port).
fn split_host_port(entry: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = entry.rsplit_once(':')?;
    let port = match port {
        "*" => None,
        digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse().ok()?)
        }
        _ => return None,
    };
    // A bare IPv6 address (`::1`) splits at its last colon: it needs brackets.
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return None;
    }
    // The URL parser spells the host the way request URLs will (case, IPv4 and IPv6 forms).
    let url = Url::parse(&format!("http://{host}/")).ok()?;
    Some((url.host_str()?.to_owned(), port))
}

/// The rules a download follows.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `host:port` pairs exempt from the address check.
    pub allow: AllowList,
    pub max_bytes: u64,
    pub timeout: Duration,
    pub max_redirects: usize,
    /// The setting that fills `allow`, named in refusals.
    pub allow_var: &'static str,
}

impl Policy {
    /// Whether the URL's host and port are on the allowlist.
    pub fn allows(&self, url: &Url) -> bool {
        match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => self.allow.allows(host, port),
            _ => false,
        }
    }

    /// Checks what can be checked without the network: scheme, credentials, the allowlist's
    /// ports, and literal addresses. Runs before the first request and on every redirect hop
    /// (an https page may redirect to http and the other way round: each hop is checked alike),
    /// so the resolver may trust a listed host name: its port has been checked here.
    pub fn check_url(&self, url: &Url) -> Result<(), FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::InvalidUrl(format!(
                "only http and https URLs can be ingested, not {}:",
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
        if self.allows(url) {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(80);
        // A listed host is internal on every port; only the listed ones are open.
        if self.allow.has_host(host) {
            return Err(FetchError::Forbidden(format!(
                "{host} is allowed by {} on other ports only; add {host}:{port} to allow this one",
                self.allow_var
            )));
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        match literal {
            Some(ip) if !is_public(ip) => Err(FetchError::Forbidden(format!(
                "{host} is a loopback, private, link-local or otherwise internal address; add \
                 {host}:{port} to {} to allow it",
                self.allow_var
            ))),
            _ => Ok(()),
        }
    }
}

/// The refusal of a name that resolves to an internal address. It names the host as written and
/// not the address: what an internal name resolves to is nobody's business outside.
pub fn resolves_internal(host: &str, allow_var: &str) -> FetchError {
    FetchError::Forbidden(format!(
        "{host} resolves to an internal address (loopback, private, link-local or the like); \
         add {host}:PORT to {allow_var} to allow it"
    ))
}

/// Whether an address is on the public internet. Everything else (loopback,
/// RFC 1918, CGNAT, link-local incl. cloud metadata, multicast, unique-local,
/// documentation, benchmarking, reserved) is not. IPv6 forms of an IPv4 address
/// are judged by it (IPv4-mapped, NAT64 `64:ff9b::/96`) or refused whatever it
/// is where the way to it is a translator or tunnel of unknown reach
/// (IPv4-compatible `::/96`, SIIT-translated `::ffff:0:0:0/96`, local-use NAT64
/// `64:ff9b:1::/48`, 6to4 `2002::/16`, Teredo `2001::/32`).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Embedded::Judged(v4) => is_public_v4(v4),
            Embedded::Refused => false,
            Embedded::None => is_public_v6(v6),
        },
    }
}

/// What an IPv6 address says about an IPv4 one inside it.
enum Embedded {
    /// Traffic goes to this IPv4 address: judge it.
    Judged(Ipv4Addr),
    /// An IPv4-embedding range whose reach cannot be judged from the address: refuse.
    Refused,
    /// No IPv4 address inside.
    None,
}

fn embedded_v4(ip: Ipv6Addr) -> Embedded {
    let s = ip.segments();
    let [.., high, low] = s;
    let last32 = Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match s {
        // ::ffff:a.b.c.d, IPv4-mapped: a socket sends it over IPv4 to a.b.c.d.
        [0, 0, 0, 0, 0, 0xffff, _, _] => Embedded::Judged(last32),
        // 64:ff9b::a.b.c.d, the well-known NAT64 prefix: the translator reaches a.b.c.d.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Embedded::Judged(last32),
        // :: and ::1 are themselves (unspecified, loopback): judged as IPv6.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => Embedded::None,
        // ::a.b.c.d, IPv4-compatible (deprecated; some stacks still send it to a.b.c.d), and
        // ::ffff:0:a.b.c.d, SIIT-translated.
        [0, 0, 0, 0, 0, 0, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Embedded::Refused,
        // 64:ff9b:1::/48, local-use NAT64: some translator of this network, to anywhere.
        [0x64, 0xff9b, 1, ..] => Embedded::Refused,
        // 6to4 (deprecated, RFC 7526) and Teredo tunnel through relays to an embedded IPv4
        // address (plain in 6to4, obfuscated in Teredo); no video source needs them.
        [0x2002, ..] | [0x2001, 0, ..] => Embedded::Refused,
        _ => Embedded::None,
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
        || (a == 192 && b == 88 && c == 99) // 6to4 relays (deprecated)
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [first, second, third, fourth, ..] = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7 (incl. fd00:ec2::254)
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (first == 0x0100 && second == 0 && third == 0 && fourth == 0) // discard 100::/64
        || first == 0x2001 && second == 0x0db8 // documentation
        || (first & 0xfff0) == 0x3ff0 // documentation 3fff::/20
        || first == 0x2001 && second == 0x0002 && third == 0 // benchmarking 2001:2::/48
        || first == 0x0064 && second == 0xff9b) // other NAT64 forms can reach IPv4 internals
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
            // A listed name's port was checked by `check_url` before any request.
            if !policy.allow.has_host(&host) && addrs.iter().any(|a| !is_public(a.ip())) {
                return Err(Box::new(resolves_internal(&host, policy.allow_var)) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Where outbound https looks for trust besides the system's store (the API's setting).
#[derive(Debug, Clone, Default, Args)]
pub struct OutboundTlsConfig {
    /// A PEM file of CA certificates that https URL ingest and webhook deliveries trust in
    /// addition to the system's CA store (e.g. the private CA of internal hosts in
    /// URL_INGEST_ALLOW_HOSTS or WEBHOOK_ALLOW_HOSTS). Empty: the system's store only. Read at
    /// start: a file that cannot be read or holds no valid certificate stops the API.
    #[arg(long, env = "OUTBOUND_CA_BUNDLE", default_value = "")]
    pub outbound_ca_bundle: String,
}

/// The CA certificates of OUTBOUND_CA_BUNDLE, ready for the clients.
#[derive(Debug, Clone, Default)]
pub struct ExtraRoots {
    certs: Vec<CertificateDer<'static>>,
}

impl ExtraRoots {
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The certificates of a PEM bundle: every `CERTIFICATE` block (other blocks, and text
    /// between blocks, are skipped), each a parsable X.509 certificate; at least one.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let mut certs = Vec::new();
        for (n, block) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let cert = block.map_err(|e| format!("certificate {}: not valid PEM ({e})", n + 1))?;
            // What rustls will do with it: a trust anchor, parsed now rather than at first use.
            rustls::RootCertStore::empty()
                .add(cert.clone())
                .map_err(|e| format!("certificate {}: not a usable CA certificate ({e})", n + 1))?;
            certs.push(cert);
        }
        if certs.is_empty() {
            return Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
        }
        Ok(Self { certs })
    }

    /// The certificates added to the system's store of a client.
    fn merge_into(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> reqwest::Result<reqwest::ClientBuilder> {
        let certs = self
            .certs
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<reqwest::Result<Vec<_>>>()?;
        Ok(builder.tls_certs_merge(certs))
    }
}

impl OutboundTlsConfig {
    /// The bundle's certificates (none when the setting is empty), or why the API cannot start.
    pub fn load(&self) -> anyhow::Result<ExtraRoots> {
        let path = self.outbound_ca_bundle.trim();
        if path.is_empty() {
            return Ok(ExtraRoots::default());
        }
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the CA bundle {path} (OUTBOUND_CA_BUNDLE)"))?;
        let roots = ExtraRoots::from_pem(&pem).map_err(|e| {
            anyhow::anyhow!(
                "the CA bundle {path} (OUTBOUND_CA_BUNDLE) cannot be used: {e}; it must hold \
                 PEM CA certificates"
            )
        })?;
        tracing::info!(
            path,
            certificates = roots.len(),
            "outbound https also trusts OUTBOUND_CA_BUNDLE"
        );
        Ok(roots)
    }
}

/// Builds a client whose https trusts the system's store and `roots`; a failure says so.
fn build(
    builder: reqwest::ClientBuilder,
    roots: &ExtraRoots,
    what: &str,
) -> anyhow::Result<reqwest::Client> {
    roots
        .merge_into(builder)
        .and_then(reqwest::ClientBuilder::build)
        .with_context(|| {
            format!(
                "cannot set up the {what} HTTP client (https trusts the system's CA store, \
             /etc/ssl/certs or SSL_CERT_FILE, and OUTBOUND_CA_BUNDLE)"
            )
        })
}

/// An HTTP client that enforces `policy` on every hop.
pub fn client(policy: Arc<Policy>, roots: &ExtraRoots) -> anyhow::Result<reqwest::Client> {
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
    let builder = reqwest::Client::builder()
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
        ));
    build(builder, roots, "URL ingest")
}

/// An HTTP client for webhook deliveries: the same address checks after DNS on every
/// request, no redirects (a 3xx is an answer, and not a success), `timeout` per request.
pub fn webhook_client(
    policy: Arc<Policy>,
    timeout: Duration,
    roots: &ExtraRoots,
) -> anyhow::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .redirect(redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .user_agent(concat!(
            "ProStream/",
            env!("CARGO_PKG_VERSION"),
            " (webhooks)"
        ));
    build(builder, roots, "webhook")
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
        // Gathered into writes as uploads are (see `WRITE_BUFFER_BYTES` there for the size).
        let mut out =
            tokio::io::BufWriter::with_capacity(256 << 10, tokio::fs::File::create(dest).await?);
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
/// reqwest's error chain, then a TLS failure; anything else is a network failure.
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
    if let Some(tls) = find_tls(&err) {
        let host = err.url().and_then(Url::host_str).unwrap_or("the server");
        return tls_failure(host, tls);
    }
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    FetchError::Network(message)
}

/// The rustls error inside an error chain. TLS streams report through `std::io::Error`, whose
/// `source()` skips the error it wraps: that one is looked at with `get_ref`.
fn find_tls<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut source = Some(err);
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && let Some(tls) = find_tls(inner)
        {
            return Some(tls);
        }
        source = cause.source();
    }
    None
}

/// The failure of a TLS handshake with `host`, its code and a message that says what to do.
fn tls_failure(host: &str, err: &rustls::Error) -> FetchError {
    let (failure, message) = match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => (
                TlsFailure::UntrustedCertificate,
                format!(
                    "the TLS certificate of {host} is not issued by a trusted certificate \
                     authority ({err}): a self-signed certificate, an incomplete chain, or a \
                     private CA (add it to OUTBOUND_CA_BUNDLE)"
                ),
            ),
            CertificateError::NotValidForName => (
                TlsFailure::WrongHost,
                format!("the TLS certificate of {host} is not valid for that name"),
            ),
            CertificateError::NotValidForNameContext { presented, .. } => (
                TlsFailure::WrongHost,
                format!(
                    "the TLS certificate of {host} is not valid for that name; it is for {}",
                    if presented.is_empty() {
                        "no name".to_owned()
                    } else {
                        presented
                            .iter()
                            .map(|name| plain_name(name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            ),
            CertificateError::Expired => (
                TlsFailure::CertificateExpired,
                format!("the TLS certificate of {host} has expired"),
            ),
            CertificateError::ExpiredContext { not_after, .. } => (
                TlsFailure::CertificateExpired,
                format!(
                    "the TLS certificate of {host} has expired (it was valid until {})",
                    rfc3339(not_after.as_secs())
                ),
            ),
            _ => (
                TlsFailure::Other,
                format!("the TLS certificate of {host} was refused: {err}"),
            ),
        },
        _ => (
            TlsFailure::Other,
            format!("the TLS handshake with {host} failed: {err}"),
        ),
    };
    FetchError::Tls { failure, message }
}

/// A name as rustls-webpki lists it (`DnsName("a.example")`, `IpAddress(10.0.0.1)`), plain.
fn plain_name(presented: &str) -> &str {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|name| name.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|ip| ip.strip_suffix(')'))
        })
        .unwrap_or(presented)
}

fn rfc3339(unix_secs: u64) -> String {
    i64::try_from(unix_secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{unix_secs} (Unix time)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> Policy {
        Policy {
            allow: AllowList::parse(allow, "URL_INGEST_ALLOW_HOSTS").unwrap(),
            max_bytes: 1000,
            timeout: Duration::from_secs(5),
            max_redirects: 3,
            allow_var: "URL_INGEST_ALLOW_HOSTS",
        }
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            // IPv4: loopback, RFC 1918, cloud metadata, CGNAT, this network, multicast,
            // broadcast, IETF, documentation, benchmarking, 6to4 relays, reserved.
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
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "192.88.99.1",
            "240.0.0.1",
            // IPv6: loopback, unspecified, ULA, link-local, site-local, multicast,
            // documentation, benchmarking, discard.
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "2001:2::1",
            "100::1",
            // IPv4-mapped (::ffff:0:0/96): judged by the IPv4 address.
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            // IPv4-compatible (::/96): refused whatever the IPv4 address.
            "::127.0.0.1",
            "::169.254.169.254",
            "::8.8.8.8",
            // SIIT-translated (::ffff:0:0:0/96): refused.
            "::ffff:0:127.0.0.1",
            "::ffff:0:8.8.8.8",
            // NAT64 well-known prefix (64:ff9b::/96): judged; local-use (64:ff9b:1::/48): refused.
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::8.8.8.8",
            // 6to4 (2002::/16) and Teredo (2001::/32): refused.
            "2002:7f00:1::1",
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "2a00:1450:4001:82a::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_taken_in_the_documented_form_only() {
        let long_path = format!("http://example.com/{}", "a".repeat(MAX_URL_CHARS - 19));
        assert_eq!(long_path.len(), MAX_URL_CHARS);
        let too_long = format!("{long_path}a");
        for good in [
            "http://example.com",
            "https://example.com/clip.mp4",
            "https://Example.COM:8443/a/b%20c.mp4?x=1&y=a:b/c?d#frag",
            "http://receiver:8080/hook",
            "http://localhost/hook",
            "http://a-b.c-d.e1/",
            "http://127.0.0.1:65535/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[2001:db8::8:800:200c:417a]:80/x",
            "http://[1:2:3:4:5:6:7:8]/",
            "http://[1:2:3:4:5:6:7::]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://[1:2:3:4:5:6:1.2.3.4]/",
            "http://[1::5:6:255.255.255.255]/",
            "https://h.example/~user/(x)*+,;=!$&@:",
            long_path.as_str(),
        ] {
            assert!(parse_http_url(good).is_ok(), "{good} was refused");
        }
        for bad in [
            "",
            "example.com/clip.mp4",
            "ftp://example.com/",
            "HTTP://example.com/",
            "http:example.com",
            "http://user:pw@example.com/",
            "http://user@example.com/",
            " http://example.com/",
            "http://example.com/\n",
            "http://example.com/a b",
            "http://example.com/it's",
            "http://example.com/é",
            "http://example.com/%zz",
            "http://exa_mple.com/",
            "http://xn--nxasmq6b.com/",
            "http://a--b.com/",
            "http://-a.com/",
            "http://a-.com/",
            "http://example.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://010.0.0.1/",
            "http://256.0.0.1/",
            "http://1.2.3/",
            "http://[::1/",
            "http://[1:2:3:4:5:6:7:8:9]/",
            "http://[fe80::1%25eth0]/",
            "http://[::ffff:127.0.0.01]/",
            "http://[1:2:3:4:5:6:7:1.2.3.4]/",
            "http://example.com:65536/",
            "http://example.com:/",
            "http://example.com\\a",
            too_long.as_str(),
        ] {
            assert_eq!(
                parse_http_url(bad).map_err(|e| e.code()).err(),
                Some("invalid_url"),
                "{bad:?} was taken"
            );
        }
    }

    /// Every `n`-character string over `alphabet`, for `n` up to `max`.
    fn strings(alphabet: &[char], max: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = all.clone();
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn every_host_the_pattern_takes_is_parsed_as_written() {
        // Names the URL standard could read as a number, as punycode or as nothing at all.
        for host in strings(&['a', 'x', 'n', '0', '9', '-', '.'], 6) {
            let raw = format!("http://{host}/");
            if let Ok(url) = parse_http_url(&raw) {
                assert_eq!(url.host_str(), Some(host.as_str()), "{raw}");
                assert!(matches!(url.host(), Some(url::Host::Domain(_))), "{raw}");
            }
        }
        for groups in strings(&['0', 'f', ':'], 8)
            .into_iter()
            .chain(strings(&['1', ':', '.'], 10))
        {
            let raw = format!("http://[{groups}]/");
            if let Ok(url) = parse_http_url(&raw) {
                assert!(matches!(url.host(), Some(url::Host::Ipv6(_))), "{raw}");
            }
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
        assert_eq!(check("http://[::127.0.0.1]/a.mp4"), Err("url_forbidden"));
        assert_eq!(
            check("http://[::ffff:0:127.0.0.1]/a.mp4"),
            Err("url_forbidden")
        );
        assert_eq!(check("http://[2002:7f00:1::1]/a.mp4"), Err("url_forbidden"));
        assert_eq!(check("http://2130706433/a.mp4"), Err("url_forbidden")); // 127.0.0.1 in decimal
        assert_eq!(check("https://example.com/a.mp4"), Ok(()));
        assert_eq!(check("https://127.0.0.1/a.mp4"), Err("url_forbidden"));
        assert_eq!(check("http://example.com/a.mp4"), Ok(()));
    }

    #[test]
    fn the_allowlist_opens_the_listed_port_of_a_host_and_no_other() {
        let p = policy(&["127.0.0.1:9000", "Minio:80", "[::1]:8080", "10.0.0.5:*"]);
        let check = |u: &str| p.check_url(&Url::parse(u).unwrap()).map_err(|e| e.code());
        assert_eq!(check("http://127.0.0.1:9000/a.mp4"), Ok(()));
        assert_eq!(check("http://127.0.0.1:9001/a.mp4"), Err("url_forbidden"));
        assert_eq!(check("http://127.0.0.1/a.mp4"), Err("url_forbidden"));
        // Port 80 is http's default: written or not, it is the same port; https's is 443.
        assert_eq!(check("http://minio/a.mp4"), Ok(()));
        assert_eq!(check("http://minio:80/a.mp4"), Ok(()));
        assert_eq!(check("https://minio/a.mp4"), Err("url_forbidden"));
        assert_eq!(check("http://minio:9000/a.mp4"), Err("url_forbidden"));
        assert_eq!(check("http://[::1]:8080/a.mp4"), Ok(()));
        assert_eq!(check("http://[0:0::1]:8080/a.mp4"), Ok(()));
        assert_eq!(check("http://[::1]:22/a.mp4"), Err("url_forbidden"));
        assert_eq!(check("http://10.0.0.5:22/a.mp4"), Ok(()));
        // Another spelling of a listed address is not the listed host.
        assert_eq!(
            check("http://[::ffff:127.0.0.1]:9000/a.mp4"),
            Err("url_forbidden")
        );
    }

    #[test]
    fn an_allowlist_entry_without_a_port_is_refused_with_the_syntax() {
        for bad in [
            "minio",
            "127.0.0.1",
            "::1",
            "[::1]",
            "minio:",
            "minio:http",
            "h:70000",
        ] {
            let err = AllowList::parse(&[bad], "WEBHOOK_ALLOW_HOSTS").unwrap_err();
            assert!(
                err.contains("WEBHOOK_ALLOW_HOSTS") && err.contains("host:port"),
                "{bad}: {err}"
            );
        }
        assert!(AllowList::parse(&["", " minio:80 "], "X").is_ok());
    }

    #[test]
    fn tls_failures_get_a_code_each_and_a_message_naming_the_host() {
        use rustls::pki_types::{ServerName, UnixTime};
        let failure = |err: CertificateError| {
            let failed = tls_failure("media.example", &rustls::Error::InvalidCertificate(err));
            (failed.code(), failed.to_string(), failed.is_transient())
        };
        let (code, message, transient) = failure(CertificateError::UnknownIssuer);
        assert_eq!(code, "tls_untrusted_certificate");
        assert!(message.contains("media.example") && message.contains("OUTBOUND_CA_BUNDLE"));
        assert!(!transient);
        assert_eq!(
            failure(CertificateError::BadSignature).0,
            "tls_untrusted_certificate"
        );
        let (code, message, _) = failure(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("media.example").unwrap().to_owned(),
            presented: vec![
                "DnsName(\"other.example\")".into(),
                "IpAddress(10.0.0.1)".into(),
            ],
        });
        assert_eq!(code, "tls_wrong_host");
        assert!(
            message.ends_with("it is for other.example, 10.0.0.1"),
            "{message}"
        );
        assert_eq!(
            failure(CertificateError::NotValidForName).0,
            "tls_wrong_host"
        );
        let (code, message, _) = failure(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000)),
        });
        assert_eq!(code, "tls_certificate_expired");
        assert!(message.contains("2023-11-14T22:13:20Z"), "{message}");
        assert_eq!(
            failure(CertificateError::Expired).0,
            "tls_certificate_expired"
        );
        assert_eq!(failure(CertificateError::Revoked).0, "tls_failed");
        assert_eq!(failure(CertificateError::NotValidYet).0, "tls_failed");
        let handshake = tls_failure(
            "media.example",
            &rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
        );
        assert_eq!(handshake.code(), "tls_failed");
        assert!(
            handshake
                .with_code()
                .starts_with("tls_failed: the TLS handshake with media.example"),
            "{}",
            handshake.with_code()
        );
    }

    #[test]
    fn a_ca_bundle_needs_pem_certificates_and_nothing_unusable() {
        let err = |pem: &str| ExtraRoots::from_pem(pem.as_bytes()).unwrap_err();
        assert!(err("").contains("no PEM certificate"));
        assert!(err("not a bundle at all\n").contains("no PEM certificate"));
        // Other PEM blocks (a key) do not count.
        assert!(
            err("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .contains("no PEM certificate")
        );
        // A certificate block that is not valid base64, or whose content is not a certificate.
        assert!(
            err("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
                .contains("certificate 1: not valid PEM")
        );
        assert!(
            err("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .contains("certificate 1: not a usable CA certificate")
        );
    }

    #[test]
    fn an_unreadable_ca_bundle_stops_the_start_and_an_empty_setting_adds_nothing() {
        let config = |path: &str| OutboundTlsConfig {
            outbound_ca_bundle: path.into(),
        };
        assert!(config("").load().unwrap().is_empty());
        assert!(config("  ").load().unwrap().is_empty());
        let err = config("/nonexistent/ca.pem").load().unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("/nonexistent/ca.pem") && message.contains("OUTBOUND_CA_BUNDLE"),
            "{message}"
        );
    }

    #[test]
    fn refusals_name_the_host_as_written_and_never_a_resolved_address() {
        let message = resolves_internal("db.internal", "WEBHOOK_ALLOW_HOSTS").to_string();
        assert!(message.contains("db.internal"), "{message}");
        assert!(message.contains("internal address"), "{message}");
        assert!(!message.chars().any(|c| c.is_ascii_digit()), "{message}");
        let p = policy(&[]);
        let literal = p
            .check_url(&Url::parse("http://[::127.0.0.1]:8080/").unwrap())
            .unwrap_err()
            .to_string();
        assert!(literal.starts_with("[::7f00:1] is a loopback"), "{literal}");
    }
}

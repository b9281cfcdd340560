//! Signed playback tokens for private videos: pure, no HTTP.
//!
//! A token is `{expires}.{kid}.{mac}`:
//! - `expires`: Unix seconds after which the token is refused (decimal, canonical form);
//! - `kid`: the id of the key that signed it (`[A-Za-z0-9_-]`, 1-32 characters);
//! - `mac`: unpadded base64url of HMAC-SHA256(secret, `prostream-playback-v1\0` ‖ the video's
//!   16 id bytes ‖ `expires` as 8 big-endian bytes). The prefix keeps these MACs apart from any
//!   other use of the same secret; every input has a fixed length, so no two (video, expiry)
//!   pairs share a message.
//!
//! The token goes in the URL path (`/v1/videos/{id}/signed/{token}/{attempt}/{file}`), so the
//! relative URIs inside the playlists resolve under the same token and a player needs only the
//! master URL. It carries only characters that need no escaping in a path segment.
//!
//! Keys rotate: the [`Signer`] holds a list, the first signs, every one verifies. Add the new key
//! first, and remove the old one once the longest TTL has passed since the new one went first.

use std::{fmt, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use time::OffsetDateTime;

use crate::ids::VideoId;

type HmacSha256 = Hmac<Sha256>;

/// What the MAC covers before the video id and expiry.
const DOMAIN: &[u8] = b"prostream-playback-v1\0";
/// Shortest accepted secret, in bytes: 256 bits of base64 is 43 characters, 32 is the floor.
pub const MIN_SECRET_LEN: usize = 32;
const MAX_KID_LEN: usize = 32;
/// The MAC in base64url without padding: 32 bytes → 43 characters.
const MAC_B64_LEN: usize = 43;
/// A signed expiry is rounded up to a multiple of TTL/10, at most this much, so that the URLs of
/// one video stay the same for a while (a page polling the video keeps its player and its cache).
const MAX_ROUNDING: Duration = Duration::from_secs(15 * 60);

/// Secrets that have been published with this repository (in docker-compose.yml, .env.example,
/// deploy/k8s, the README or the docs, now or in an earlier version): anyone can sign playback
/// URLs with them, so the API refuses to start with one (see [`published_in`]). Keep every
/// example value of `PLAYBACK_SIGNING_KEYS` in this repository here; a test greps the repository
/// for them.
pub const PUBLISHED_SECRETS: &[&str] = &[
    // docker-compose.yml and .env.example until the Compose stack generated its own key.
    "INSECURE-demo-key-set-your-own-PLAYBACK_SIGNING_KEYS",
    // deploy/k8s/secret.yaml's placeholder (also too short to be accepted at all).
    "REPLACE-ME",
];

/// The ids of the keys in `keys` whose secret is published (see [`PUBLISHED_SECRETS`]).
pub fn published_in(keys: &[SigningKey]) -> Vec<&str> {
    keys.iter()
        .filter(|k| PUBLISHED_SECRETS.iter().any(|p| k.secret == p.as_bytes()))
        .map(|k| k.id.as_str())
        .collect()
}

/// One signing key.
#[derive(Clone)]
pub struct SigningKey {
    id: String,
    secret: Vec<u8>,
}

impl SigningKey {
    pub fn new(id: &str, secret: &[u8]) -> Result<Self, KeyError> {
        let id_ok = !id.is_empty()
            && id.len() <= MAX_KID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(KeyError::BadId(id.to_owned()));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::ShortSecret(id.to_owned()));
        }
        Ok(Self {
            id: id.to_owned(),
            secret: secret.to_vec(),
        })
    }

    /// A key with a fresh random 256-bit secret (tests, and `kid:secret` suggestions).
    pub fn generate(id: &str) -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self::new(id, URL_SAFE_NO_PAD.encode(bytes).as_bytes()).expect("a generated key is valid")
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as `PLAYBACK_SIGNING_KEYS` writes it: `kid:secret`.
    pub fn to_spec(&self) -> String {
        format!("{}:{}", self.id, String::from_utf8_lossy(&self.secret))
    }

    fn mac(&self, video_id: VideoId, expires: u64) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(DOMAIN);
        mac.update(video_id.get().as_bytes());
        mac.update(&expires.to_be_bytes());
        mac
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why a key list was refused (at start).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "no playback signing key: set PLAYBACK_SIGNING_KEYS to `kid:secret` (comma-separated for rotation)"
    )]
    None,
    #[error("a PLAYBACK_SIGNING_KEYS entry is not `kid:secret`")]
    NotAPair,
    #[error("playback key id {0:?} must be 1-32 characters of A-Z, a-z, 0-9, `-` and `_`")]
    BadId(String),
    #[error(
        "the secret of playback key {0:?} is shorter than 32 bytes; use e.g. `openssl rand -base64 32`"
    )]
    ShortSecret(String),
    #[error("playback key id {0:?} appears twice")]
    DuplicateId(String),
}

/// Parses `kid:secret[,kid:secret…]`. Whitespace around entries is ignored; a secret is taken
/// byte for byte (it may contain `:` but not `,`).
pub fn parse_keys(spec: &str) -> Result<Vec<SigningKey>, KeyError> {
    let mut keys: Vec<SigningKey> = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, secret) = entry.split_once(':').ok_or(KeyError::NotAPair)?;
        let key = SigningKey::new(id.trim(), secret.trim().as_bytes())?;
        if keys.iter().any(|k| k.id == key.id) {
            return Err(KeyError::DuplicateId(key.id));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeyError::None);
    }
    Ok(keys)
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, unknown key, wrong MAC (tampered, or another video's).
    #[error("the playback token is not valid for this video")]
    Invalid,
    /// Authentic, but past its expiry.
    #[error("the playback token has expired")]
    Expired,
}

/// A token and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedToken {
    pub token: String,
    pub expires_at: OffsetDateTime,
}

/// Signs with the first key, verifies with any. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Signer {
    keys: Arc<[SigningKey]>,
    ttl: Duration,
}

impl Signer {
    pub fn new(keys: Vec<SigningKey>, ttl: Duration) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::None);
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.id == key.id) {
                return Err(KeyError::DuplicateId(key.id.clone()));
            }
        }
        Ok(Self {
            keys: keys.into(),
            ttl: ttl.max(Duration::from_secs(1)),
        })
    }

    /// From `PLAYBACK_SIGNING_KEYS` and `PLAYBACK_URL_TTL_SECS`.
    pub fn from_spec(spec: &str, ttl: Duration) -> Result<Self, KeyError> {
        Self::new(parse_keys(spec)?, ttl)
    }

    /// The id of the key that signs.
    pub fn signing_key_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `video_id` valid for at least the TTL from `now`: the expiry is rounded up to a
    /// multiple of TTL/10 (1 s to 15 min), so repeated calls return the same token for a while.
    pub fn sign(&self, video_id: VideoId, now: OffsetDateTime) -> SignedToken {
        let step = self.rounding_step();
        let earliest = unix(now).saturating_add(self.ttl.as_secs());
        let expires = earliest.div_ceil(step).saturating_mul(step);
        self.sign_until(video_id, expires)
    }

    /// The expiry of a signed token is rounded up to a multiple of this (seconds).
    fn rounding_step(&self) -> u64 {
        (self.ttl / 10)
            .clamp(Duration::from_secs(1), MAX_ROUNDING)
            .as_secs()
    }

    /// The latest expiry [`Self::sign`] can give at `now`. A token that expires later was not
    /// made by this API as configured (a leaked key, or a token minted to last forever): refused.
    fn latest_expiry(&self, now: OffsetDateTime) -> u64 {
        unix(now)
            .saturating_add(self.ttl.as_secs())
            .saturating_add(self.rounding_step())
    }

    /// A token for `video_id` that expires at `expires` (Unix seconds).
    pub fn sign_until(&self, video_id: VideoId, expires: u64) -> SignedToken {
        let key = &self.keys[0];
        let mac = key.mac(video_id, expires).finalize().into_bytes();
        SignedToken {
            token: format!("{expires}.{}.{}", key.id, URL_SAFE_NO_PAD.encode(mac)),
            expires_at: from_unix(expires),
        }
    }

    /// Checks `token` for `video_id` at `now`; returns its expiry. The MAC is checked before the
    /// expiry, in constant time, so only an authentic token can be reported as expired. An
    /// authentic token that expires later than a token signed now could is invalid: lowering
    /// PLAYBACK_URL_TTL_SECS thus also shortens the URLs already handed out.
    pub fn verify(
        &self,
        video_id: VideoId,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, TokenError> {
        let mut parts = token.splitn(3, '.');
        let (Some(expires), Some(kid), Some(mac)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let expires = parse_canonical_u64(expires).ok_or(TokenError::Invalid)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or(TokenError::Invalid)?;
        if mac.len() != MAC_B64_LEN {
            return Err(TokenError::Invalid);
        }
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| TokenError::Invalid)?;
        key.mac(video_id, expires)
            .verify_slice(&mac)
            .map_err(|_| TokenError::Invalid)?;
        if expires <= unix(now) {
            return Err(TokenError::Expired);
        }
        if expires > self.latest_expiry(now) {
            return Err(TokenError::Invalid);
        }
        Ok(from_unix(expires))
    }
}

/// Digits only, no sign, no leading zero (one spelling per value), fits in u64.
fn parse_canonical_u64(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

fn unix(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp()).unwrap_or(0)
}

/// Clamped to the last second of year 9999 (only a key holder can make such a token).
fn from_unix(secs: u64) -> OffsetDateTime {
    const LAST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let secs = i64::try_from(secs).unwrap_or(LAST).min(LAST);
    OffsetDateTime::from_unix_timestamp(secs).expect("within time's range")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap()
    }

    fn signer(keys: &[&SigningKey]) -> Signer {
        Signer::new(keys.iter().map(|k| (*k).clone()).collect(), HOUR).unwrap()
    }

    /// `token` with the character at `index` replaced by another of the same alphabet.
    fn flip(token: &str, index: usize) -> String {
        let mut bytes = token.as_bytes().to_vec();
        bytes[index] = match bytes[index] {
            b'0'..=b'8' => bytes[index] + 1,
            b'9' => b'0',
            b'A' => b'B',
            _ => b'A',
        };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_token_verifies_for_its_video_until_it_expires() {
        let s = signer(&[&SigningKey::generate("k1")]);
        let video = VideoId::generate();
        let signed = s.sign(video, now());
        assert!(signed.expires_at >= now() + HOUR);
        assert!(signed.expires_at <= now() + HOUR + HOUR / 10);
        assert_eq!(s.verify(video, &signed.token, now()), Ok(signed.expires_at));
        let just_before = signed.expires_at - time::Duration::seconds(1);
        assert!(s.verify(video, &signed.token, just_before).is_ok());
        assert_eq!(
            s.verify(video, &signed.token, signed.expires_at),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tokens_use_only_characters_safe_in_a_path_segment() {
        let s = signer(&[&SigningKey::generate("key_2026-01")]);
        let token = s.sign(VideoId::generate(), now()).token;
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{token}"
        );
        assert!(token.contains(".key_2026-01."));
    }

    #[test]
    fn repeated_signing_within_the_rounding_step_gives_the_same_token() {
        let s = signer(&[&SigningKey::generate("k1")]);
        let video = VideoId::generate();
        let a = s.sign(video, now());
        let b = s.sign(video, now() + time::Duration::seconds(5));
        assert_eq!(a, b);
        let one_second = Signer::new(vec![SigningKey::generate("k")], Duration::from_secs(1))
            .unwrap()
            .sign(video, now());
        assert_eq!(one_second.expires_at, now() + time::Duration::seconds(1));
    }

    #[test]
    fn a_token_of_another_video_is_invalid() {
        let s = signer(&[&SigningKey::generate("k1")]);
        let token = s.sign(VideoId::generate(), now()).token;
        assert_eq!(
            s.verify(VideoId::generate(), &token, now()),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn any_flipped_character_makes_a_token_invalid_never_expired() {
        let s = signer(&[&SigningKey::generate("k1")]);
        let video = VideoId::generate();
        let token = s.sign(video, now()).token;
        for i in 0..token.len() {
            if token.as_bytes()[i] == b'.' {
                continue;
            }
            let tampered = flip(&token, i);
            assert_eq!(
                s.verify(video, &tampered, now()),
                Err(TokenError::Invalid),
                "{tampered}"
            );
        }
        // An expiry moved into the past is tampering, not expiry.
        let (_, rest) = token.split_once('.').unwrap();
        let past = format!("{}.{rest}", unix(now()) - 10);
        assert_eq!(s.verify(video, &past, now()), Err(TokenError::Invalid));
    }

    #[test]
    fn malformed_tokens_are_invalid() {
        let s = signer(&[&SigningKey::generate("k1")]);
        let video = VideoId::generate();
        let token = s.sign(video, now()).token;
        let (expires, rest) = token.split_once('.').unwrap();
        for bad in [
            String::new(),
            "..".into(),
            "1.k1".into(),
            format!("0{expires}.{rest}"), // same value, another spelling
            format!("+{expires}.{rest}"), // a sign
            format!("{expires}.{rest}="), // padding
            format!("{expires}.{rest}AA"), // too long
            format!("{expires}.{}", &rest[..rest.len() - 1]),
            format!("{expires}.k2.{}", rest.split_once('.').unwrap().1), // unknown key
            format!("99999999999999999999999.{rest}"),                   // overflows u64
            token.replace('.', "~"),
        ] {
            assert_eq!(
                s.verify(video, &bad, now()),
                Err(TokenError::Invalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rotation_signs_with_the_first_key_and_verifies_with_every_listed_one() {
        let k1 = SigningKey::generate("k1");
        let k2 = SigningKey::generate("k2");
        let video = VideoId::generate();
        let old = signer(&[&k1]).sign(video, now()).token;

        let rotating = signer(&[&k2, &k1]);
        assert!(rotating.verify(video, &old, now()).is_ok());
        let new = rotating.sign(video, now()).token;
        assert!(new.contains(".k2."), "{new}");
        assert_eq!(rotating.signing_key_id(), "k2");

        let rotated = signer(&[&k2]);
        assert!(rotated.verify(video, &new, now()).is_ok());
        assert_eq!(rotated.verify(video, &old, now()), Err(TokenError::Invalid));
    }

    #[test]
    fn a_key_id_names_its_key_and_a_reused_id_with_another_secret_is_invalid() {
        let video = VideoId::generate();
        let token = signer(&[&SigningKey::generate("k1")])
            .sign(video, now())
            .token;
        let impostor = signer(&[&SigningKey::generate("k1")]);
        assert_eq!(
            impostor.verify(video, &token, now()),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn key_lists_parse_in_order_and_bad_ones_are_refused() {
        let secret = "s".repeat(32);
        let keys = parse_keys(&format!(" k2:{secret} , k1:{secret}:with-colon ,")).unwrap();
        assert_eq!(
            keys.iter().map(SigningKey::id).collect::<Vec<_>>(),
            ["k2", "k1"]
        );
        assert_eq!(keys[1].secret, format!("{secret}:with-colon").as_bytes());
        assert!(matches!(parse_keys(""), Err(KeyError::None)));
        assert!(matches!(parse_keys(" , "), Err(KeyError::None)));
        assert!(matches!(parse_keys("no-colon"), Err(KeyError::NotAPair)));
        assert!(matches!(
            parse_keys("k1:short"),
            Err(KeyError::ShortSecret(_))
        ));
        assert!(matches!(
            parse_keys(&format!("a.b:{secret}")),
            Err(KeyError::BadId(_))
        ));
        assert!(matches!(
            parse_keys(&format!(":{secret}")),
            Err(KeyError::BadId(_))
        ));
        assert!(matches!(
            parse_keys(&format!("k1:{secret},k1:{secret}x")),
            Err(KeyError::DuplicateId(_))
        ));
        let spec = SigningKey::generate("gen").to_spec();
        assert_eq!(parse_keys(&spec).unwrap()[0].id(), "gen");
    }

    #[test]
    fn a_far_future_expiry_signed_with_the_right_key_is_invalid() {
        let s = signer(&[&SigningKey::generate("k1")]);
        let video = VideoId::generate();
        // The latest a token signed now can expire: TTL plus the rounding step (6 min here).
        let latest = unix(now()) + HOUR.as_secs() + 360;
        assert!(
            s.verify(video, &s.sign_until(video, latest).token, now())
                .is_ok()
        );
        for expires in [latest + 1, unix(now()) + 2 * HOUR.as_secs(), 4_102_444_800] {
            let token = s.sign_until(video, expires).token; // 4_102_444_800: 2100-01-01
            assert_eq!(
                s.verify(video, &token, now()),
                Err(TokenError::Invalid),
                "{expires}"
            );
        }
    }

    #[test]
    fn published_secrets_are_found_whatever_the_key_id() {
        let published = format!("mine:{}", PUBLISHED_SECRETS[0]);
        let own = SigningKey::generate("own").to_spec();
        let keys = parse_keys(&format!("{own},{published}")).unwrap();
        assert_eq!(published_in(&keys), ["mine"]);
        assert!(published_in(&parse_keys(&own).unwrap()).is_empty());
    }

    /// Every `PLAYBACK_SIGNING_KEYS` value written in the repository's deployment files and docs
    /// (`=` in env files and shell, `:` in YAML) is a published secret the API refuses.
    #[test]
    fn every_signing_key_written_in_the_repository_is_refused() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![
            root.join("docker-compose.yml"),
            root.join(".env.example"),
            root.join("README.md"),
        ];
        for dir in ["deploy", "docs", "scripts"] {
            files.extend(files_under(&root.join(dir)));
        }
        let mut seen = 0;
        for file in &files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            for written in assigned_values(&text, "PLAYBACK_SIGNING_KEYS") {
                let written = written.trim_start_matches("${PLAYBACK_SIGNING_KEYS:-");
                // Templates and references (`$(openssl rand …)`, `${VAR}`, `$KEY`) are no key.
                if written.contains('$') || !written.contains(':') {
                    continue;
                }
                for entry in written.trim_end_matches('}').split(',') {
                    let (_, secret) = entry.split_once(':').unwrap();
                    seen += 1;
                    assert!(
                        PUBLISHED_SECRETS.contains(&secret),
                        "{}: the signing key {entry:?} is published; add its secret to \
                         PUBLISHED_SECRETS",
                        file.display()
                    );
                }
            }
        }
        assert!(
            seen > 0,
            "no signing key found in {files:?}: is the pattern stale?"
        );
    }

    /// What follows `name` and `=` or `:` (with optional quotes and spaces) in `text`.
    fn assigned_values<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        let quotes: &[char] = &['"', '\''];
        text.match_indices(name)
            .filter_map(|(at, _)| {
                let rest = text[at + name.len()..].trim_start_matches(quotes);
                let rest = rest.trim_start_matches([' ', '\t']);
                let rest = rest.strip_prefix(['=', ':'])?;
                let rest = rest
                    .trim_start_matches([' ', '\t'])
                    .trim_start_matches(quotes);
                let end = rest
                    .find(|c: char| c.is_whitespace() || "\"'`".contains(c))
                    .unwrap_or(rest.len());
                Some(&rest[..end]).filter(|v| !v.is_empty())
            })
            .collect()
    }

    fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
        found
    }

    #[test]
    fn a_signing_key_never_prints_its_secret() {
        let key = SigningKey::new("k1", &[b'x'; 40]).unwrap();
        let shown = format!("{key:?} {:?}", signer(&[&key]));
        assert!(!shown.contains("xxxx"), "{shown}");
    }
}

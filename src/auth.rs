//! API keys: how one looks, what is stored of it, and how a presented one is recognised.
//!
//! A key is `ps_` followed by 32 random bytes in unpadded base64url (46 characters in all). Only
//! its SHA-256 is stored; the first [`PREFIX_LEN`] characters are kept in clear so that people can
//! tell keys apart in `prostream keys list` and revoke one by its prefix. A salted slow hash would
//! add nothing: a 256-bit random secret cannot be guessed, so the digest is looked up directly.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// What every key starts with, so a leaked one is recognisable (secret scanners, logs).
pub const KEY_MARKER: &str = "ps_";
/// How many leading characters of a key are stored and shown in clear.
pub const PREFIX_LEN: usize = 11;

/// A freshly generated key: `secret` is shown once and never stored.
pub struct GeneratedKey {
    pub secret: String,
    pub prefix: String,
    pub sha256: [u8; 32],
}

pub fn generate() -> GeneratedKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{KEY_MARKER}{}", URL_SAFE_NO_PAD.encode(bytes));
    GeneratedKey {
        prefix: secret[..PREFIX_LEN].to_owned(),
        sha256: digest(&secret),
        secret,
    }
}

/// The stored form of a presented key.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether a presented string could be a key at all (cheap check before a database lookup).
pub fn looks_like_key(secret: &str) -> bool {
    secret.len() == KEY_MARKER.len() + 43
        && secret.starts_with(KEY_MARKER)
        && secret[KEY_MARKER.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What keeps a presented string from being a key, for the 401 message (it never repeats the
/// string); `None` when it looks like one.
pub fn format_problem(secret: &str) -> Option<String> {
    let expected = KEY_MARKER.len() + 43;
    if !secret.starts_with(KEY_MARKER) {
        Some(format!("it does not start with `{KEY_MARKER}`"))
    } else if secret.len() != expected {
        Some(format!(
            "it is {} characters long, and a key is {expected}",
            secret.chars().count()
        ))
    } else if !looks_like_key(secret) {
        Some("it holds characters other than letters, digits, `-` and `_`".to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_well_formed_and_hash_to_their_digest() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret, b.secret);
        assert!(looks_like_key(&a.secret), "{}", a.secret);
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(a.prefix.len(), PREFIX_LEN);
        assert_eq!(digest(&a.secret), a.sha256);
        assert_ne!(a.sha256, b.sha256);
    }

    #[test]
    fn strings_that_are_not_keys_are_told_apart_without_a_lookup() {
        let key = generate().secret;
        assert!(!looks_like_key(&key[1..]));
        assert!(!looks_like_key(&format!("{key}x")));
        assert!(!looks_like_key(&key.replace(KEY_MARKER, "pk_")));
        assert!(!looks_like_key(&format!("{}*{}", &key[..10], &key[11..])));
        assert!(!looks_like_key(""));
    }

    #[test]
    fn a_malformed_key_is_told_what_is_wrong_with_it() {
        let key = generate().secret;
        assert_eq!(format_problem(&key), None);
        assert_eq!(
            format_problem(&key.replace(KEY_MARKER, "pk_")).as_deref(),
            Some("it does not start with `ps_`")
        );
        assert_eq!(
            format_problem("ps_short").as_deref(),
            Some("it is 8 characters long, and a key is 46")
        );
        assert_eq!(
            format_problem(&format!("{}*{}", &key[..10], &key[11..])).as_deref(),
            Some("it holds characters other than letters, digits, `-` and `_`")
        );
        // Every string `looks_like_key` refuses has a problem, and only those.
        for s in [&key[1..], &format!("{key}x"), ""] {
            assert_eq!(format_problem(s).is_some(), !looks_like_key(s), "{s}");
        }
    }
}

//! The playback token in a signed URL (`/v1/videos/{id}/signed/{token}/…`): anyone can send any
//! path segment. Whatever comes in, `verify` never panics, and the only token it accepts for a
//! video is the one the signer itself writes for that expiry (one spelling per token).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use prostream::{ids::VideoId, playback::Signer};
use time::OffsetDateTime;
use uuid::Uuid;

const VIDEO: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001);

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let signer = Signer::from_spec(
        "k1:ZnV6emluZy1vbmx5LWtleS1ub3QtYS1zZWNyZXQtMzI,k0:YW4tb2xkZXIta2V5LWtlcHQtZm9yLXZlcmlmeWluZy0",
        Duration::from_secs(3600),
    )
    .expect("the fuzzing keys parse");
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a valid time");
    let video = VideoId::from(VIDEO);
    if let Ok(expires) = signer.verify(video, token, now) {
        let again = signer.sign_until(video, expires.unix_timestamp() as u64);
        assert_eq!(
            again.token, token,
            "a token in another spelling was accepted"
        );
    }
});

//! The tus headers a client controls: `Upload-Metadata`, `Upload-Length`, `Upload-Offset` and
//! `Upload-Checksum`. Input: the four values separated by newlines. Whatever comes in, the parsers
//! answer a value or a 4xx problem (never a panic, never a 5xx), and accepted metadata is bounded.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use prostream::http::tus::headers;

fuzz_target!(|data: &[u8]| {
    let mut values = data.split(|b| *b == b'\n');
    let mut map = HeaderMap::new();
    for name in [
        "upload-metadata",
        "upload-length",
        "upload-offset",
        "upload-checksum",
    ] {
        let Some(value) = values.next() else { break };
        // Only what could arrive on the wire: hyper refuses other bytes before we see them.
        if let Ok(value) = HeaderValue::from_bytes(value) {
            map.insert(HeaderName::from_static(name), value);
        }
    }
    match headers::metadata(&map) {
        Ok(meta) => {
            let raw = meta.raw.as_deref().unwrap_or("");
            assert!(
                raw.len() <= headers::MAX_METADATA_BYTES,
                "metadata over its cap accepted"
            );
            // Decoded values never exceed what their base64 can hold.
            for value in [&meta.filename, &meta.title, &meta.visibility]
                .into_iter()
                .flatten()
            {
                assert!(value.len() <= raw.len());
            }
        }
        Err(problem) => assert!(problem.status().is_client_error(), "{problem:?}"),
    }
    for parsed in [headers::upload_length(&map), headers::upload_offset(&map)] {
        if let Err(problem) = parsed {
            assert!(problem.status().is_client_error(), "{problem:?}");
        }
    }
    if let Err(problem) = headers::checksum(&map) {
        assert!(problem.status().is_client_error(), "{problem:?}");
    }
});

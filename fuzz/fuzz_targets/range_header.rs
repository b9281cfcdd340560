//! `Range` headers on the HLS routes, parsed by `http-range-header` (what tower-http's ServeFile
//! uses to answer 206/416). Input: 8 bytes of file length, then the header value. Whatever comes
//! in, nothing panics, and every range that validates lies inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (len, header) = data.split_at(8);
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) % (1 << 40);
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    // An empty file: the HLS routes answer a Range request for one with 416 before ServeFile
    // parses it (src/http/hls.rs, serve_file), because http-range-header 0.4 validates
    // `bytes=0-N` against zero bytes as the range 0-0 (this target's first crash).
    if len == 0 {
        return;
    }
    let Ok(parsed) = http_range_header::parse_range_header(header) else {
        return;
    };
    if let Ok(ranges) = parsed.validate(len) {
        for range in ranges {
            assert!(range.start() <= range.end(), "{range:?}");
            assert!(
                *range.end() < len,
                "{range:?} outside a file of {len} bytes"
            );
        }
    }
});

//! The string rules the server enforces, as schemas of their own in the OpenAPI document: each
//! states the same pattern the server checks (a test holds each pair together), so a client, a
//! generator or a validator reading the document knows what will be refused.

use std::borrow::Cow;

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr, Type,
        schema::{ObjectBuilder, Schema},
    },
};

use crate::{fetch, ingest::TITLE_PATTERN};

/// A string schema with a pattern and a description.
fn string_schema(pattern: &str, max_length: Option<usize>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .max_length(max_length)
        .description(Some(description))
        .into()
}

/// A video's title as a person gives it.
pub struct Title;

impl PartialSchema for Title {
    fn schema() -> RefOr<Schema> {
        string_schema(
            TITLE_PATTERN,
            None,
            "1-200 characters once the whitespace around them is trimmed, none of them a \
             control character (U+0000-U+001F, U+007F-U+009F), a line or paragraph separator \
             (U+2028, U+2029) or a bidirectional embedding, override or isolate (U+202A-U+202E, \
             U+2066-U+2069). Anything else is refused with 400 `invalid_title`.",
        )
    }
}

impl ToSchema for Title {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Title")
    }
}

/// A URL the API fetches (URL ingest) or posts to (webhooks).
pub struct HttpUrl;

impl PartialSchema for HttpUrl {
    fn schema() -> RefOr<Schema> {
        string_schema(
            fetch::HTTP_URL_PATTERN,
            Some(fetch::MAX_URL_CHARS),
            "An http or https URL of at most 2048 characters: a host name (letters, digits and \
             single hyphens, the last label starting with a letter), a dotted IPv4 address or a \
             bracketed IPv6 address in hex groups (the last two may be a dotted IPv4 address); an \
             optional port; then path, query and \
             fragment with any space, quote or non-ASCII character percent-encoded. No \
             credentials. Anything else is refused with 400 `invalid_url`; an internal address \
             (loopback, private, link-local…) not allowed by the server's settings with 422 \
             `url_forbidden`.",
        )
    }
}

impl ToSchema for HttpUrl {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("HttpUrl")
    }
}

/// A language tag (BCP 47 in form; ISO 639 codes are read too and written as BCP 47).
pub struct LanguageTag;

impl PartialSchema for LanguageTag {
    fn schema() -> RefOr<Schema> {
        string_schema(
            crate::media::LANGUAGE_TAG_PATTERN,
            Some(crate::media::MAX_LANGUAGE_TAG_CHARS),
            "A language of 2 or 3 letters, then subtags of 1 to 8 letters or digits, at most 35              characters: `en`, `eng` (read as `en`), `pt-BR`, `zh-Hant`. Anything else is refused              with 400 `invalid_language`.",
        )
    }
}

impl ToSchema for LanguageTag {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("LanguageTag")
    }
}

/// How `is_plain_file_name` (storage) admits an HLS path segment: ASCII letters, digits, `_`,
/// `-` and `.`, not first, 1-128 of them.
pub const PLAIN_NAME_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$";

/// An HLS attempt key or file name.
pub struct PlainName;

impl PartialSchema for PlainName {
    fn schema() -> RefOr<Schema> {
        string_schema(
            PLAIN_NAME_PATTERN,
            None,
            "1-128 ASCII letters, digits, `_`, `-` and `.`, not starting with `.`; anything else \
             is refused with 400 `invalid_file_name`.",
        )
    }
}

impl ToSchema for PlainName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("PlainName")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::is_plain_file_name;

    #[test]
    fn the_language_tag_pattern_admits_what_the_server_reads() {
        let pattern = regex::Regex::new(crate::media::LANGUAGE_TAG_PATTERN).unwrap();
        let long = format!("en{}", "-abcdefgh".repeat(4));
        for tag in [
            "en",
            "eng",
            "pt-BR",
            "xx-a1",
            "zh-Hant",
            "",
            "english",
            "en-",
            "en_US",
            "e1",
            "a-b-c",
            "é",
            long.as_str(),
        ] {
            let fits = pattern.is_match(tag) && tag.len() <= crate::media::MAX_LANGUAGE_TAG_CHARS;
            assert_eq!(fits, crate::media::parse_bcp47(tag).is_some(), "{tag}");
        }
    }

    #[test]
    fn the_plain_name_pattern_admits_what_storage_does() {
        let pattern = regex::Regex::new(PLAIN_NAME_PATTERN).unwrap();
        let long = "a".repeat(128);
        let too_long = "a".repeat(129);
        for name in [
            "master.m3u8",
            "1-ab12cd34",
            "720p_00001.m4s",
            "-x",
            "_",
            "a..b",
            long.as_str(),
            too_long.as_str(),
            "",
            ".hidden",
            "..",
            "a/b",
            "a b",
            "é",
            "a\n",
            "a%2e",
        ] {
            assert_eq!(pattern.is_match(name), is_plain_file_name(name), "{name:?}");
        }
    }
}

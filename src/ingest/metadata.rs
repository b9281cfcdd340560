//! What a person names a video and who may watch it: titles and visibility, checked the same
//! way for every door a video comes in by (raw and multipart uploads, URL ingest, tus metadata)
//! and for `PATCH /v1/videos/{id}`.

use super::IngestError;
use crate::db::Visibility;

pub const MAX_TITLE_CHARS: usize = 200;

/// [`choose_title`]'s rule for a given title as the OpenAPI document states it (`Title`): any
/// whitespace around (trimmed), then 1-200 characters that start and end with neither whitespace
/// nor a forbidden character and hold no forbidden character ([`is_forbidden_in_title`]). The
/// classes are spelled out because `\s` differs between ECMA-262, Python and Rust; the whitespace
/// is Rust's (`char::is_whitespace`, what `str::trim` removes). A test holds the two together.
pub const TITLE_PATTERN: &str = concat!(
    r"^[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028-\u202F\u205F\u2066-\u2069\u3000]",
    r"(?:[^\x00-\x1F\x7F-\x9F\u2028-\u202E\u2066-\u2069]{0,198}",
    r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028-\u202F\u205F\u2066-\u2069\u3000])?",
    r"[\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$",
);

/// The title: the one given (1-200 characters once trimmed, no control or bidi-override
/// characters), else the file name with those characters removed, else `Untitled`. Every way a
/// title enters (raw and multipart uploads, URL ingest, tus metadata, PATCH) goes through here.
pub fn choose_title(given: Option<String>, filename: Option<&str>) -> Result<String, IngestError> {
    if let Some(title) = given {
        return check_title(&title);
    }
    let from_name: String = filename
        .map(|n| {
            let kept: String = n.chars().filter(|&c| !is_forbidden_in_title(c)).collect();
            kept.trim().chars().take(MAX_TITLE_CHARS).collect()
        })
        .unwrap_or_default();
    Ok(if from_name.is_empty() {
        "Untitled".to_owned()
    } else {
        from_name
    })
}

/// A title someone chose: trimmed, 1-200 characters, none of [`is_forbidden_in_title`].
fn check_title(title: &str) -> Result<String, IngestError> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(IngestError::InvalidTitle(format!(
            "a title must have 1 to {MAX_TITLE_CHARS} characters"
        )));
    }
    if let Some(bad) = title.chars().find(|&c| is_forbidden_in_title(c)) {
        return Err(IngestError::InvalidTitle(format!(
            "a title may not contain control characters, line or paragraph separators, or \
             bidirectional embeddings, overrides and isolates (found U+{:04X}); remove it",
            u32::from(bad)
        )));
    }
    Ok(title.to_owned())
}

/// Characters a title may not carry: C0 and C1 controls and DEL (newlines, escapes: they forge
/// log lines and terminal output), U+2028/U+2029 (line breaks to JavaScript), and the bidi
/// embeddings, overrides and isolates U+202A-U+202E, U+2066-U+2069 (they make a title read
/// differently from what it is, e.g. a file name whose extension appears reversed). The
/// direction marks U+200E/U+200F stay allowed: they change the order of nothing but neutral
/// characters, and right-to-left titles need them.
pub fn is_forbidden_in_title(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The visibility asked for (`public` or `private`), else `default`.
pub fn parse_visibility(
    given: Option<&str>,
    default: Visibility,
) -> Result<Visibility, IngestError> {
    // Exactly the names the document's enum lists: no trimming, so the two cannot disagree.
    match given {
        None => Ok(default),
        Some(text) => text.parse().map_err(IngestError::InvalidVisibility),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_comes_from_the_request_then_the_file_name() {
        assert_eq!(
            choose_title(Some("  Mine ".into()), Some("a.mp4")).unwrap(),
            "Mine"
        );
        assert_eq!(choose_title(None, Some("a.mp4")).unwrap(), "a.mp4");
        assert_eq!(choose_title(None, Some("  ")).unwrap(), "Untitled");
        assert_eq!(choose_title(None, None).unwrap(), "Untitled");
        assert!(choose_title(Some(" ".into()), None).is_err());
        assert!(choose_title(Some("x".repeat(201)), None).is_err());
    }

    #[test]
    fn a_given_title_with_a_control_or_bidi_override_character_is_refused() {
        for bad in [
            "line\nbreak",
            "tab\there",
            "esc\u{1b}[31m",
            "nul\0",
            "del\u{7f}",
            "c1\u{85}x",
            "c1\u{9b}",
            "sep\u{2028}x",
            "para\u{2029}x",
            "evil\u{202E}4pm.exe",
            "embed\u{202A}x",
            "isolate\u{2066}x\u{2069}",
            "first strong\u{2068}",
        ] {
            let err = choose_title(Some(bad.into()), None).unwrap_err();
            assert_eq!(err.code(), "invalid_title", "{bad:?}");
        }
        for good in [
            "Ünïcode title",
            "שלום\u{200F} world",
            "left\u{200E}mark",
            "emoji 🎬",
        ] {
            assert_eq!(choose_title(Some(good.into()), None).unwrap(), good);
        }
    }

    #[test]
    fn a_file_name_as_title_loses_its_control_and_bidi_characters() {
        assert_eq!(
            choose_title(None, Some("\u{202E}4pm.exe\nclip\u{1b}.mp4")).unwrap(),
            "4pm.execlip.mp4"
        );
        assert_eq!(
            choose_title(None, Some("\n\u{202E}\t")).unwrap(),
            "Untitled"
        );
    }

    #[test]
    fn the_documented_title_pattern_accepts_exactly_the_titles_choose_title_does() {
        let pattern = regex::Regex::new(TITLE_PATTERN).unwrap();
        // Whitespace that trims, characters that are forbidden, both, and plain ones.
        let alphabet = [
            ' ', '\t', '\n', '\u{85}', '\u{a0}', '\u{2000}', '\u{2028}', '\u{202f}', '\u{3000}',
            '\u{0}', '\u{1b}', '\u{9b}', '\u{202e}', '\u{2066}', 'a', 'é', '🎬', '\u{200e}',
            '\u{feff}',
        ];
        let mut candidates: Vec<String> = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = candidates
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            candidates.extend(longer);
        }
        // Around the length bound, with whitespace that does not count.
        for n in [199, 200, 201] {
            candidates.push(format!(" \u{3000}{}\n", "é".repeat(n)));
            candidates.push(format!("a{}b", " ".repeat(n - 2)));
        }
        for title in candidates {
            let accepted = choose_title(Some(title.clone()), None).is_ok();
            assert_eq!(pattern.is_match(&title), accepted, "{title:?}");
        }
    }
}

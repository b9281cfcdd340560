//! Track languages: containers tag them in ISO 639-2 (`eng`, `fre`/`fra`), HLS and WebVTT want
//! BCP 47 (`en`, `fr`), and a player's menu wants a name a viewer reads ("Français").

use isolang::Language;

/// BCP 47 for "undetermined": no tag, or one we cannot read.
pub const UNDETERMINED: &str = "und";

/// The 639-2/B ("bibliographic") codes that differ from their 639-2/T twin, which 639-3 uses.
/// Matroska files written by older tools carry the B form (`fre`, `ger`, `chi`).
const BIBLIOGRAPHIC: [(&str, &str); 20] = [
    ("alb", "sqi"),
    ("arm", "hye"),
    ("baq", "eus"),
    ("bur", "mya"),
    ("chi", "zho"),
    ("cze", "ces"),
    ("dut", "nld"),
    ("fre", "fra"),
    ("geo", "kat"),
    ("ger", "deu"),
    ("gre", "ell"),
    ("ice", "isl"),
    ("mac", "mkd"),
    ("mao", "mri"),
    ("may", "msa"),
    ("per", "fas"),
    ("rum", "ron"),
    ("slo", "slk"),
    ("tib", "bod"),
    ("wel", "cym"),
];

/// A container's language tag as a language, if it names one: ISO 639-2/T, 639-2/B, 639-3 or a
/// two-letter 639-1 code, in any case.
fn parse(tag: &str) -> Option<Language> {
    let tag = tag.trim().to_ascii_lowercase();
    match tag.len() {
        2 => Language::from_639_1(&tag),
        3 => {
            let terminology = BIBLIOGRAPHIC
                .iter()
                .find(|(b, _)| *b == tag)
                .map_or(tag.as_str(), |(_, t)| t);
            Language::from_639_3(terminology)
        }
        _ => None,
    }
}

/// The BCP 47 tag of a container's language tag: the two-letter code where the language has one
/// (`eng` → `en`), else its three letters (`yue`); `und` when absent or unknown (`und`, `mis`,
/// garbage).
pub fn bcp47(tag: Option<&str>) -> String {
    tag.and_then(parse).map_or(UNDETERMINED.to_owned(), |lang| {
        lang.to_639_1().unwrap_or(lang.to_639_3()).to_owned()
    })
}

/// The form of a language tag this API reads (`LanguageTag` in the OpenAPI document): a primary
/// language of 2 or 3 letters, then subtags of 1 to 8 letters or digits, at most 35 characters
/// (the length RFC 5646 asks every implementation to support).
pub const LANGUAGE_TAG_PATTERN: &str = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$";
pub const MAX_LANGUAGE_TAG_CHARS: usize = 35;

/// A language tag a person typed (`en`, `pt-BR`, `eng`, `zh-Hant`) in [`LANGUAGE_TAG_PATTERN`]'s
/// form, as BCP 47: a known ISO 639 primary language as [`bcp47`] writes it (`eng` → `en`), an
/// unknown one lowercased (BCP 47 asks for the form, players for nothing more), then the other
/// subtags as given. `None` if it does not have that form.
pub fn parse_bcp47(text: &str) -> Option<String> {
    if text.len() > MAX_LANGUAGE_TAG_CHARS {
        return None;
    }
    let mut subtags = text.split('-');
    let primary = subtags.next()?;
    if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let mut tag = match parse(primary) {
        Some(language) => language
            .to_639_1()
            .unwrap_or(language.to_639_3())
            .to_owned(),
        None => primary.to_ascii_lowercase(),
    };
    for subtag in subtags {
        if subtag.is_empty()
            || subtag.len() > 8
            || !subtag.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return None;
        }
        tag.push('-');
        tag.push_str(subtag);
    }
    Some(tag)
}

/// A name for a player's menu: the language in its own words ("Français"), else in English,
/// else `None` (undetermined).
pub fn display_name(tag: Option<&str>) -> Option<String> {
    let lang = tag.and_then(parse)?;
    if lang.to_639_3() == UNDETERMINED {
        return None;
    }
    let name = lang.to_autonym().unwrap_or(lang.to_name());
    // The first of several names ("Spanish; Castilian"), capitalised ("français" → "Français").
    let name = name.split([';', ',']).next().unwrap_or(name).trim();
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_tags_are_read_as_bcp47() {
        assert_eq!(parse_bcp47("en").as_deref(), Some("en"));
        assert_eq!(parse_bcp47("eng").as_deref(), Some("en"));
        assert_eq!(parse_bcp47("pt-BR").as_deref(), Some("pt-BR"));
        assert_eq!(parse_bcp47("zh-Hant").as_deref(), Some("zh-Hant"));
        assert_eq!(parse_bcp47("UND").as_deref(), Some("und"));
        assert_eq!(parse_bcp47("XX-a1").as_deref(), Some("xx-a1"));
        for bad in [
            "",
            "english",
            "en-",
            "en_US",
            "en-toolongsubtag",
            "e1",
            "a",
            "é",
        ] {
            assert_eq!(parse_bcp47(bad), None, "{bad}");
        }
    }

    #[test]
    fn container_tags_become_bcp47() {
        assert_eq!(bcp47(Some("eng")), "en");
        assert_eq!(bcp47(Some("fra")), "fr");
        assert_eq!(bcp47(Some("fre")), "fr", "the bibliographic form");
        assert_eq!(bcp47(Some("GER")), "de");
        assert_eq!(bcp47(Some("en")), "en");
        assert_eq!(bcp47(Some("yue")), "yue", "no two-letter code");
        assert_eq!(bcp47(Some("und")), "und");
        assert_eq!(bcp47(Some("xx-garbage")), "und");
        assert_eq!(bcp47(None), "und");
    }

    #[test]
    fn names_are_in_the_language_itself() {
        assert_eq!(display_name(Some("fra")).as_deref(), Some("Français"));
        assert_eq!(display_name(Some("eng")).as_deref(), Some("English"));
        assert_eq!(display_name(Some("ger")).as_deref(), Some("Deutsch"));
        assert_eq!(display_name(Some("und")), None);
        assert_eq!(display_name(None), None);
    }
}

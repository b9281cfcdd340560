//! Caption files an owner uploads (`POST /v1/videos/{id}/captions`): WebVTT or SubRip, read
//! strictly, so a mistake is refused with the line it is on rather than shown to viewers as a
//! missing or garbled cue.
//!
//! Hand-written, not a subtitle crate: the reader must name the right line, and the crates we
//! tried (rsubs-lib 0.4) count lines per block and drift by one at every blank line. Both formats
//! come out as [`Cue`]s, which [`render`] writes back as one normalised WebVTT file: what the
//! database keeps and the segments are cut from. `STYLE`, `REGION` and `NOTE` blocks are dropped
//! (players style cues themselves); cue settings and the text's inline tags are kept.

use super::webvtt::{Cue, parse_time, write_cue};

/// The most cues one file may hold: a two-hour film has about 1,500.
pub const MAX_CUES: usize = 20_000;

/// Which format a file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptionFormat {
    WebVtt,
    SubRip,
}

/// Why a caption file was refused, and on which line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct CaptionError {
    pub line: usize,
    pub reason: String,
}

fn error(line: usize, reason: impl Into<String>) -> CaptionError {
    CaptionError {
        line,
        reason: reason.into(),
    }
}

/// Reads a WebVTT or SubRip file (UTF-8, with or without a byte order mark, any line endings)
/// into its cues, in file order.
pub fn parse(bytes: &[u8]) -> Result<(CaptionFormat, Vec<Cue>), CaptionError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        error(
            line,
            "this is not UTF-8 text; save the file as UTF-8 (most editors offer it under \"Save as\")",
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(at) = text.find('\0') {
        let line = 1 + text[..at].matches('\n').count();
        return Err(error(line, "the text holds a NUL character"));
    }
    // CR LF, lone CR and LF all end a line (WebVTT, 3.1); numbering follows the lines as split.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    let first = lines.first().copied().unwrap_or("");
    let (format, cues) = if first == "WEBVTT"
        || first.starts_with("WEBVTT ")
        || first.starts_with("WEBVTT\t")
    {
        (CaptionFormat::WebVtt, parse_webvtt(&lines)?)
    } else if blocks(&lines)
        .next()
        .is_some_and(|b| looks_like_subrip(b.lines))
    {
        (CaptionFormat::SubRip, parse_subrip(&lines)?)
    } else {
        return Err(error(
            1,
            "neither WebVTT (whose first line is `WEBVTT`) nor SubRip (a cue number, then a line \
             like `00:00:01,000 --> 00:00:02,500`)",
        ));
    };
    if cues.is_empty() {
        return Err(error(lines.len(), "the file holds no cues"));
    }
    Ok((format, cues))
}

/// The cues as one WebVTT file.
pub fn render(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n");
    for cue in cues {
        write_cue(&mut out, cue);
    }
    out
}

/// A run of non-blank lines and the number of its first line.
struct Block<'a> {
    first_line: usize,
    lines: &'a [&'a str],
}

fn blocks<'a>(lines: &'a [&'a str]) -> impl Iterator<Item = Block<'a>> + 'a {
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < lines.len() && lines[at].trim().is_empty() {
            at += 1;
        }
        if at == lines.len() {
            return None;
        }
        let start = at;
        while at < lines.len() && !lines[at].trim().is_empty() {
            at += 1;
        }
        Some(Block {
            first_line: start + 1,
            lines: &lines[start..at],
        })
    })
}

fn looks_like_subrip(block: &[&str]) -> bool {
    let numbered = block.first().is_some_and(|l| is_cue_number(l)) && block.len() > 1;
    let timing = if numbered { block[1] } else { block[0] };
    timing.contains("-->")
}

fn is_cue_number(line: &str) -> bool {
    let line = line.trim();
    !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit())
}

fn parse_webvtt(lines: &[&str]) -> Result<Vec<Cue>, CaptionError> {
    let mut cues = Vec::new();
    let mut all = blocks(lines);
    // The header: `WEBVTT` and, up to the first blank line, header lines we do not need.
    let header = all.next().map_or(&[][..], |b| b.lines);
    if let Some(at) = header.iter().position(|l| l.contains("-->")) {
        return Err(error(
            at + 1,
            "a blank line must separate the `WEBVTT` header from the first cue",
        ));
    }
    for block in all {
        let head = block.lines[0];
        if ["NOTE", "STYLE", "REGION"].iter().any(|k| {
            head == *k || head.starts_with(&format!("{k} ")) || head.starts_with(&format!("{k}\t"))
        }) {
            continue;
        }
        let (id, timing_at) = if head.contains("-->") {
            (None, 0)
        } else if block.lines.get(1).is_some_and(|l| l.contains("-->")) {
            (Some(head.to_owned()), 1)
        } else {
            return Err(error(
                block.first_line,
                "expected a cue: an optional identifier line, then a timing line like \
                 `00:00:01.000 --> 00:00:02.500`",
            ));
        };
        let line = block.first_line + timing_at;
        let (start_ms, end_ms, settings) = timing(
            block.lines[timing_at],
            line,
            parse_time,
            "hh:mm:ss.ttt or mm:ss.ttt",
        )?;
        let text = cue_text(&block.lines[timing_at + 1..], line + 1)?;
        push(
            &mut cues,
            Cue {
                id,
                start_ms,
                end_ms,
                settings,
                text,
            },
            block.first_line,
        )?;
    }
    Ok(cues)
}

fn parse_subrip(lines: &[&str]) -> Result<Vec<Cue>, CaptionError> {
    let mut cues = Vec::new();
    for block in blocks(lines) {
        // The cue number is optional in practice (some tools leave it out): a block may start
        // with its timing line.
        let timing_at = usize::from(is_cue_number(block.lines[0]));
        let Some(timing_line) = block.lines.get(timing_at).filter(|l| l.contains("-->")) else {
            let line = block.first_line + timing_at.min(block.lines.len() - 1);
            return Err(error(
                line,
                "expected a cue number, then a timing line like `00:00:01,000 --> 00:00:02,500`",
            ));
        };
        let line = block.first_line + timing_at;
        // SubRip's own coordinates (`X1:… Y2:…`) have no WebVTT meaning: dropped.
        let (start_ms, end_ms, _) = timing(timing_line, line, parse_subrip_time, "hh:mm:ss,mmm")?;
        let text = cue_text(&block.lines[timing_at + 1..], line + 1)?;
        let cue = Cue {
            id: None,
            start_ms,
            end_ms,
            settings: String::new(),
            text: subrip_text(&text),
        };
        push(&mut cues, cue, block.first_line)?;
    }
    Ok(cues)
}

fn push(cues: &mut Vec<Cue>, cue: Cue, line: usize) -> Result<(), CaptionError> {
    if cues.len() == MAX_CUES {
        return Err(error(line, format!("more than {MAX_CUES} cues")));
    }
    cues.push(cue);
    Ok(())
}

/// `start --> end [settings]`, checked.
fn timing(
    text: &str,
    line: usize,
    parse: fn(&str) -> Option<u64>,
    form: &str,
) -> Result<(u64, u64, String), CaptionError> {
    let (start, rest) = text.split_once("-->").unwrap_or((text, ""));
    let mut rest = rest.split_whitespace();
    let end = rest.next().unwrap_or("");
    let read = |t: &str| {
        parse(t.trim())
            .ok_or_else(|| error(line, format!("`{}` is not a timestamp ({form})", t.trim())))
    };
    let (start_ms, end_ms) = (read(start)?, read(end)?);
    if end_ms <= start_ms {
        return Err(error(
            line,
            format!("the cue ends ({end}) before it starts ({})", start.trim()),
        ));
    }
    Ok((start_ms, end_ms, rest.collect::<Vec<_>>().join(" ")))
}

/// A cue's text lines; a `-->` among them means a blank line is missing before a cue.
fn cue_text(lines: &[&str], first_line: usize) -> Result<String, CaptionError> {
    if let Some(at) = lines.iter().position(|l| l.contains("-->")) {
        return Err(error(
            first_line + at,
            "a timing line inside a cue's text: is the blank line before this cue missing?",
        ));
    }
    Ok(lines.join("\n"))
}

/// `01:02:03,456` (a `.` is accepted too, and hours of any width).
fn parse_subrip_time(text: &str) -> Option<u64> {
    let text = text.replacen(',', ".", 1);
    let (clock, _) = text.split_once('.')?;
    if clock.split(':').count() != 3 {
        return None;
    }
    parse_time(&text)
}

/// SubRip's text as WebVTT's: `<i>`, `<b>` and `<u>` mean the same; `<font …>` and ASS overrides
/// such as `{\an8}` have no WebVTT form and are dropped; a bare `&` is escaped. One pass: every
/// look-ahead is bounded, so a hostile megabyte-long line costs no more than its length.
fn subrip_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Once a search for a tag's end finds none, none comes later either: it is not repeated.
    let (mut no_gt, mut no_brace) = (false, false);
    while let Some(c) = rest.chars().next() {
        let starts = |prefix: &str| {
            rest.get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        };
        let skip = if !no_gt && (starts("<font") || starts("</font")) {
            let end = rest.find('>');
            no_gt = end.is_none();
            end.map(|e| e + 1)
        } else if !no_brace && rest.starts_with("{\\") {
            let end = rest.find('}');
            no_brace = end.is_none();
            end.map(|e| e + 1)
        } else {
            None
        };
        if let Some(n) = skip {
            rest = &rest[n..];
            continue;
        }
        if c == '&' && !is_entity(rest) {
            out.push_str("&amp;");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Whether `text` starts with a character reference (`&amp;`, `&#233;`): at most 10 bytes.
fn is_entity(text: &str) -> bool {
    let head = &text.as_bytes()[..text.len().min(10)];
    let Some(end) = head.iter().position(|&b| b == b';') else {
        return false;
    };
    end > 1
        && head[1..end]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'#')
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::super::webvtt::format_time;
    use super::*;

    fn refused(text: &str) -> CaptionError {
        parse(text.as_bytes()).expect_err(text)
    }

    #[test]
    fn subrip_becomes_webvtt_cues() {
        let srt = "\u{feff}1\r\n00:00:00,500 --> 00:00:02,000\r\n<font color=\"red\">Hello</font> & <i>bye</i>\r\n\r\n\
                   2\r\n00:00:02,000 --> 00:00:03,250 X1:10 X2:20 Y1:1 Y2:2\r\n{\\an8}Top\r\ntwo lines\r\n";
        let (format, cues) = parse(srt.as_bytes()).unwrap();
        assert_eq!(format, CaptionFormat::SubRip);
        assert_eq!(
            render(&cues),
            "WEBVTT\n\n00:00:00.500 --> 00:00:02.000\nHello &amp; <i>bye</i>\n\n\
             00:00:02.000 --> 00:00:03.250\nTop\ntwo lines\n"
        );
    }

    #[test]
    fn webvtt_keeps_ids_and_settings_and_drops_notes_and_styles() {
        let vtt = "WEBVTT - a title\nKind: captions\n\nNOTE written by hand\n\nSTYLE\n::cue { color: red }\n\n\
                   intro\n00:01.000 --> 00:02.000 line:10% align:start\n[music]\n\n\
                   01:00:00.000 --> 01:00:01.000\n&amp; more\n";
        let (format, cues) = parse(vtt.as_bytes()).unwrap();
        assert_eq!(format, CaptionFormat::WebVtt);
        assert_eq!(cues.len(), 2);
        assert_eq!(cues[0].id.as_deref(), Some("intro"));
        assert_eq!(cues[0].settings, "line:10% align:start");
        assert_eq!((cues[1].start_ms, cues[1].end_ms), (3_600_000, 3_601_000));
        // What render writes, the worker's lenient reader reads back the same.
        assert_eq!(super::super::webvtt::parse_webvtt(&render(&cues)), cues);
    }

    #[test]
    fn mistakes_are_refused_with_their_line() {
        let bad_time = "WEBVTT\n\n00:00.000 --> 00:01.000\nok\n\n00:01.000 --> 00:02,000\nbad\n";
        assert_eq!(refused(bad_time).line, 6);
        assert!(
            refused(bad_time)
                .reason
                .contains("`00:02,000` is not a timestamp")
        );
        let backwards = "1\n00:00:05,000 --> 00:00:01,000\nx\n";
        assert_eq!(refused(backwards).line, 2);
        // A blank line forgotten between cues: the second timing line is read as text.
        let merged =
            "1\n00:00:01,000 --> 00:00:02,000\none\n2\n00:00:03,000 --> 00:00:04,000\ntwo\n";
        assert_eq!(refused(merged).line, 5);
        let no_timing = "WEBVTT\n\n\n\nhello\nworld\n";
        assert_eq!(refused(no_timing).line, 5);
        let header_cue = "WEBVTT\n00:00.000 --> 00:01.000\nx\n";
        assert_eq!(refused(header_cue).line, 2);
        assert_eq!(refused("just some text\n").line, 1);
        assert_eq!(
            refused("WEBVTT\n\nNOTE nothing else\n").reason,
            "the file holds no cues"
        );
        let latin1 = b"1\n00:00:01,000 --> 00:00:02,000\nd\xe9j\xe0 vu\n";
        let err = parse(latin1).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.reason.contains("UTF-8"));
        assert_eq!(refused("WEBVTT\n\n00:00.000 --> 00:01.000\na\0b\n").line, 4);
    }

    #[test]
    fn too_many_cues_are_refused() {
        let mut srt = String::new();
        for n in 0..=MAX_CUES {
            let _ = write!(srt, "{n}\n{} --> {}\nx\n\n", srt_time(n), srt_time(n + 1));
        }
        let err = refused(&srt);
        assert_eq!(err.line, MAX_CUES * 4 + 1);
    }

    #[test]
    fn a_hostile_megabyte_line_is_read_in_one_pass() {
        // Every character a look-ahead could start at: `<font` without `>`, `&` without `;`,
        // `{\` without `}`. Quadratic scanning would take hours here, not milliseconds.
        for filler in ["<font", "&", "{\\", "x"] {
            let line = filler.repeat((1 << 20) / filler.len());
            let srt = format!("1\n00:00:01,000 --> 00:00:02,000\n{line}\n");
            let (_, cues) = parse(srt.as_bytes()).unwrap();
            assert!(cues[0].text.len() >= line.len(), "{filler}");
        }
    }

    fn srt_time(n: usize) -> String {
        format_time(n as u64 * 100).replace('.', ",")
    }
}

//! Word splitting helpers that mirror BuildKit's line parsers.
//!
//! All helpers take a slice of the logical line and report byte offsets relative to that
//! slice, so the caller can map them back to source lines and columns.

/// A word and the byte offset where it starts in the string it was split from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) text: String,
    pub(crate) offset: usize,
    /// Length in bytes of the word as written (quotes included).
    pub(crate) raw_len: usize,
}

use std::time::Duration;

/// Splits on whitespace with no quote handling (BuildKit's
/// `parseStringsWhitespaceDelimited`).
pub(crate) fn split_whitespace(s: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, ch) in s.char_indices() {
        if ch.is_whitespace() {
            if let Some(st) = start.take() {
                words.push(Word {
                    text: s[st..i].to_string(),
                    offset: st,
                    raw_len: i - st,
                });
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        words.push(Word {
            text: s[st..].to_string(),
            offset: st,
            raw_len: s.len() - st,
        });
    }
    words
}

/// Splits on unquoted whitespace, keeping quotes and escape characters in the words
/// (BuildKit's `parseWords`, used for `ENV`, `LABEL` and `ARG`). Quote removal happens
/// later, during expansion.
pub(crate) fn parse_words(s: &str, escape: char) -> Vec<Word> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut start = 0;
    let mut blank_ok = false;
    let mut chars = s.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        match phase {
            Phase::Spaces => {
                if ch.is_whitespace() {
                    continue;
                }
                start = i;
                phase = Phase::Word;
            }
            Phase::Word | Phase::Quote(_) => {}
        }
        match phase {
            Phase::Spaces => unreachable!("phase set above"),
            Phase::Word => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(Word {
                            text: std::mem::take(&mut word),
                            offset: start,
                            raw_len: i - start,
                        });
                    }
                    word.clear();
                    blank_ok = false;
                    phase = Phase::Spaces;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    blank_ok = true;
                    phase = Phase::Quote(ch);
                    word.push(ch);
                    continue;
                }
                if ch == escape {
                    // An escape keeps itself and the next character, whatever it is; an
                    // escape at the very end is dropped.
                    if let Some((_, next)) = chars.next() {
                        word.push(ch);
                        word.push(next);
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                    word.push(ch);
                    continue;
                }
                // Inside single quotes the escape character is an ordinary character.
                if ch == escape && q != '\'' {
                    match chars.next() {
                        Some((_, next)) => {
                            word.push(ch);
                            word.push(next);
                        }
                        None => phase = Phase::Word,
                    }
                    continue;
                }
                word.push(ch);
            }
        }
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(Word {
            text: word,
            offset: start,
            raw_len: s.len() - start,
        });
    }
    words
}

/// Splits a shell line into words on unquoted whitespace, keeping quotes and escapes as
/// written (BuildKit's lexer with raw quotes and raw escapes). Used to find heredoc words.
pub(crate) fn split_shell_raw(s: &str, escape: char) -> Vec<Word> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut chars = s.char_indices();
    while let Some((i, ch)) = chars.next() {
        if let Some(q) = quote {
            if ch == q {
                quote = None;
            } else if ch == escape && q == '"' {
                chars.next();
            }
            continue;
        }
        if ch.is_whitespace() {
            if let Some(st) = start.take() {
                words.push(Word {
                    text: s[st..i].to_string(),
                    offset: st,
                    raw_len: i - st,
                });
            }
            continue;
        }
        if start.is_none() {
            start = Some(i);
        }
        if ch == '\'' || ch == '"' {
            quote = Some(ch);
        } else if ch == escape {
            chars.next();
        }
    }
    if let Some(st) = start {
        words.push(Word {
            text: s[st..].to_string(),
            offset: st,
            raw_len: s.len() - st,
        });
    }
    words
}

/// A `--name[=value]` flag before an instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFlag {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
    pub(crate) offset: usize,
    pub(crate) raw_len: usize,
}

/// Takes the leading `--flag[=value]` words off `s` (BuildKit's `extractBuilderFlags`):
/// quotes inside a flag are removed, the escape character escapes the next character, and
/// a lone `--` ends the flags. Returns the flags and the byte offset where the arguments
/// start.
pub(crate) fn extract_flags(s: &str, escape: char) -> (Vec<RawFlag>, usize) {
    let mut flags = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &s[pos..];
        let trimmed = rest.trim_start();
        let start = pos + (rest.len() - trimmed.len());
        if !trimmed.starts_with("--") {
            return (flags, start);
        }
        // Read one word, removing quotes.
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut end = s.len();
        let mut chars = s[start..].char_indices();
        while let Some((i, ch)) = chars.next() {
            if let Some(q) = quote {
                if ch == q {
                    quote = None;
                } else if ch == escape && q == '"' {
                    if let Some((_, next)) = chars.next() {
                        word.push(next);
                    }
                } else {
                    word.push(ch);
                }
                continue;
            }
            if ch.is_whitespace() {
                end = start + i;
                break;
            }
            if ch == '\'' || ch == '"' {
                quote = Some(ch);
            } else if ch == escape {
                if let Some((_, next)) = chars.next() {
                    word.push(next);
                }
            } else {
                word.push(ch);
            }
        }
        if word == "--" {
            let rest = &s[end..];
            return (flags, end + (rest.len() - rest.trim_start().len()));
        }
        let body = &word[2..];
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        flags.push(RawFlag {
            name,
            value,
            offset: start,
            raw_len: end - start,
        });
        pos = end;
    }
}

/// Parses a JSON array of strings, as Docker's exec form. `None` means "not JSON": the
/// caller falls back to the shell form, as Docker does for a malformed array.
pub(crate) fn parse_json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

/// Parses a Go `time.Duration` string (`1h2m3.5s`, `500ms`, `0`), as Docker accepts for
/// `HEALTHCHECK` options. Negative durations are rejected.
pub(crate) fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * nanos_per;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(total.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(words: &[Word]) -> Vec<&str> {
        words.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn parse_words_keeps_quotes_and_escapes() {
        let w = parse_words(r#"a=1 b="x y" c='p q' d=\" e"#, '\\');
        assert_eq!(texts(&w), ["a=1", r#"b="x y""#, "c='p q'", r#"d=\""#, "e"]);
        assert_eq!(w[1].offset, 4);
        assert_eq!(w[1].raw_len, 7);
    }

    #[test]
    fn parse_words_empty_quotes_make_a_word() {
        assert_eq!(texts(&parse_words(r#"a="" '' "#, '\\')), ["a=\"\"", "''"]);
    }

    #[test]
    fn parse_words_backtick_escape() {
        assert_eq!(texts(&parse_words("a=`  b", '`')), ["a=` ", "b"]);
    }

    #[test]
    fn split_shell_raw_keeps_quoted_words_whole() {
        let w = split_shell_raw(r#"cat <<"E O F" > 'a b' x\ y"#, '\\');
        assert_eq!(texts(&w), ["cat", r#"<<"E O F""#, ">", "'a b'", r"x\ y"]);
    }

    #[test]
    fn extract_flags_stops_at_first_argument() {
        let (flags, at) = extract_flags("--from=build --chown=\"a b\" --link src dst", '\\');
        assert_eq!(flags.len(), 3);
        assert_eq!(flags[0].name, "from");
        assert_eq!(flags[0].value.as_deref(), Some("build"));
        assert_eq!(flags[1].value.as_deref(), Some("a b"));
        assert_eq!(flags[2].name, "link");
        assert_eq!(flags[2].value, None);
        assert_eq!(
            &"--from=build --chown=\"a b\" --link src dst"[at..],
            "src dst"
        );
    }

    #[test]
    fn extract_flags_double_dash_ends_flags() {
        let s = "--link -- --weird dst";
        let (flags, at) = extract_flags(s, '\\');
        assert_eq!(flags.len(), 1);
        assert_eq!(&s[at..], "--weird dst");
    }

    #[test]
    fn json_array_parsing() {
        assert_eq!(
            parse_json_array(r#" ["a", "b \"c\"", "\u00e9\n"] "#),
            Some(vec!["a".into(), "b \"c\"".into(), "é\n".into()])
        );
        assert_eq!(parse_json_array("[a, b]"), None);
        assert_eq!(parse_json_array("[1]"), None);
        assert_eq!(parse_json_array("echo [a]"), None);
        assert_eq!(parse_json_array("[]"), Some(vec![]));
    }
}

//! Shell-style variable expansion and quote removal, as Docker applies it to the arguments
//! of `ENV`, `ARG`, `WORKDIR`, `COPY`, `ADD`, `USER`, `LABEL`, `EXPOSE`, `FROM`, etc.
//!
//! Supported, following BuildKit's shell lexer:
//! - `$VAR`, `${VAR}`; unset variables expand to the empty string;
//! - `${VAR:-word}` (unset or empty), `${VAR-word}` (unset), `${VAR:+word}`,
//!   `${VAR+word}`, `${VAR:?message}`, `${VAR?message}`;
//! - `${VAR#pattern}`, `${VAR##pattern}`, `${VAR%pattern}`, `${VAR%%pattern}` with `*`
//!   and `?` wildcards;
//! - single quotes keep everything literal, double quotes allow expansion, both are
//!   removed; the escape character (`\` or `` ` ``) makes the next character literal
//!   (inside double quotes only before `"`, `$` and the escape character itself).
//!
//! [`expand`] also reports every variable name the word referred to, whether set or not,
//! so a build cache key can include exactly the values that influenced the result.

use std::collections::{BTreeMap, BTreeSet};

/// An expansion failure. Messages name the offending word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${` without its `}`.
    #[error("unterminated ${{ in {0:?}: expected }}")]
    UnterminatedBrace(String),
    /// An unclosed single or double quote.
    #[error("unterminated {quote} quote in {word:?}")]
    UnterminatedQuote {
        /// `single` or `double`.
        quote: &'static str,
        /// The whole word.
        word: String,
    },
    /// `${}` or `${VAR<unknown modifier>...}`.
    #[error("bad substitution in {0:?}")]
    BadSubstitution(String),
    /// `${VAR:?message}` with `VAR` unset (or empty).
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The message given after `?`, or a default one.
        message: String,
    },
}

/// The result of [`expand`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expanded {
    /// The word with variables substituted and quotes removed.
    pub value: String,
    /// Every variable name the word referred to, whether it was set or not.
    pub used: BTreeSet<String>,
}

/// Expands `word`. `lookup` returns a variable's value, `None` when it is unset.
///
/// ```
/// use std::collections::BTreeMap;
/// let vars = BTreeMap::from([("V".to_string(), "1.2".to_string())]);
/// let e = ags_build::expand::expand_map(r#"app-${V}-"${MISSING:-x y}"-'$V'"#, '\\', &vars).unwrap();
/// assert_eq!(e.value, "app-1.2-x y-$V");
/// assert_eq!(e.used.into_iter().collect::<Vec<_>>(), ["MISSING", "V"]);
/// ```
pub fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Expanded, ExpandError> {
    let mut lexer = Lexer {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        word,
        lookup,
        used: BTreeSet::new(),
    };
    let value = lexer.process(None)?;
    Ok(Expanded {
        value,
        used: lexer.used,
    })
}

/// [`expand`] with variables from a map.
pub fn expand_map(
    word: &str,
    escape: char,
    vars: &BTreeMap<String, String>,
) -> Result<Expanded, ExpandError> {
    expand(word, escape, &|name| vars.get(name).cloned())
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    word: &'a str,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    used: BTreeSet<String>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes until `stop` (consumed) or the end of the word.
    fn process(&mut self, stop: Option<char>) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            let Some(ch) = self.next() else {
                return match stop {
                    Some(_) => Err(ExpandError::UnterminatedBrace(self.word.to_string())),
                    None => Ok(out),
                };
            };
            if Some(ch) == stop {
                return Ok(out);
            }
            if ch == self.escape {
                // An escape at the very end is dropped, as BuildKit does.
                if let Some(next) = self.next() {
                    out.push(next);
                }
                continue;
            }
            match ch {
                '\'' => out.push_str(&self.single_quoted()?),
                '"' => out.push_str(&self.double_quoted()?),
                '$' => out.push_str(&self.dollar()?),
                _ => out.push(ch),
            }
        }
    }

    fn single_quoted(&mut self) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
                None => {
                    return Err(ExpandError::UnterminatedQuote {
                        quote: "single",
                        word: self.word.to_string(),
                    });
                }
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('"') => return Ok(out),
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) if c == self.escape => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.pos += 1;
                        out.push(n);
                    }
                    _ => out.push(c),
                },
                Some(c) => out.push(c),
                None => {
                    return Err(ExpandError::UnterminatedQuote {
                        quote: "double",
                        word: self.word.to_string(),
                    });
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    fn get(&mut self, name: &str) -> Option<String> {
        self.used.insert(name.to_string());
        (self.lookup)(name)
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok(self.get(&name).unwrap_or_default())
            }
            Some(c) if c.is_ascii_digit() => {
                // `$1` and friends: positional parameters are never set in a build.
                self.pos += 1;
                Ok(self.get(&c.to_string()).unwrap_or_default())
            }
            _ => Ok("$".to_string()),
        }
    }

    /// After `${`.
    fn braced(&mut self) -> Result<String, ExpandError> {
        let name = self.name();
        if name.is_empty() {
            return match self.peek() {
                None => Err(ExpandError::UnterminatedBrace(self.word.to_string())),
                Some(_) => Err(ExpandError::BadSubstitution(self.word.to_string())),
            };
        }
        let value = self.get(&name);
        let Some(op) = self.next() else {
            return Err(ExpandError::UnterminatedBrace(self.word.to_string()));
        };
        let colon = op == ':';
        let op = if colon {
            match self.next() {
                Some(c @ ('-' | '+' | '?')) => c,
                Some(_) => return Err(ExpandError::BadSubstitution(self.word.to_string())),
                None => return Err(ExpandError::UnterminatedBrace(self.word.to_string())),
            }
        } else {
            op
        };
        let is_set = match &value {
            Some(v) => !(colon && v.is_empty()),
            None => false,
        };
        match op {
            '}' => Ok(value.unwrap_or_default()),
            '-' => {
                let word = self.process(Some('}'))?;
                Ok(if is_set {
                    value.unwrap_or_default()
                } else {
                    word
                })
            }
            '+' => {
                let word = self.process(Some('}'))?;
                Ok(if is_set { word } else { String::new() })
            }
            '?' => {
                let message = self.process(Some('}'))?;
                if is_set {
                    Ok(value.unwrap_or_default())
                } else {
                    Err(ExpandError::Required {
                        message: if message.is_empty() {
                            "is not set".to_string()
                        } else {
                            message
                        },
                        name,
                    })
                }
            }
            '#' | '%' => {
                let longest = self.peek() == Some(op);
                if longest {
                    self.pos += 1;
                }
                let pattern = self.process(Some('}'))?;
                let value = value.unwrap_or_default();
                Ok(trim_pattern(&value, &pattern, op == '#', longest))
            }
            _ => Err(ExpandError::BadSubstitution(self.word.to_string())),
        }
    }
}

/// Removes the shortest or longest prefix (`prefix`) or suffix matching `pattern`.
fn trim_pattern(value: &str, pattern: &str, prefix: bool, longest: bool) -> String {
    let bounds: Vec<usize> = value
        .char_indices()
        .map(|(i, _)| i)
        .chain([value.len()])
        .collect();
    let mut candidates: Vec<usize> = bounds.clone();
    if prefix == longest {
        candidates.reverse();
    }
    for cut in candidates {
        let part = if prefix { &value[..cut] } else { &value[cut..] };
        if glob_match(pattern, part) {
            return if prefix { &value[cut..] } else { &value[..cut] }.to_string();
        }
    }
    value.to_string()
}

/// `*` and `?` wildcard matching over the whole string.
fn glob_match(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("A".to_string(), "alpha".to_string()),
            ("EMPTY".to_string(), String::new()),
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ("FILE".to_string(), "archive.tar.gz".to_string()),
        ])
    }

    fn x(word: &str) -> String {
        expand_map(word, '\\', &vars()).unwrap().value
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(x("$A"), "alpha");
        assert_eq!(x("${A}"), "alpha");
        assert_eq!(x("pre$A-post"), "prealpha-post");
        assert_eq!(x("${A}_x"), "alpha_x");
        assert_eq!(x("$A_x"), "");
        assert_eq!(x("$NOPE"), "");
        assert_eq!(x("a$"), "a$");
        assert_eq!(x("$ a"), "$ a");
        assert_eq!(x("$1"), "");
        assert_eq!(x("${PATH}:/opt"), "/usr/bin:/bin:/opt");
    }

    #[test]
    fn default_and_alternative() {
        assert_eq!(x("${NOPE:-d}"), "d");
        assert_eq!(x("${EMPTY:-d}"), "d");
        assert_eq!(x("${A:-d}"), "alpha");
        assert_eq!(x("${NOPE-d}"), "d");
        assert_eq!(x("${EMPTY-d}"), "");
        assert_eq!(x("${A:+alt}"), "alt");
        assert_eq!(x("${EMPTY:+alt}"), "");
        assert_eq!(x("${EMPTY+alt}"), "alt");
        assert_eq!(x("${NOPE+alt}"), "");
        assert_eq!(x("${NOPE:-$A}"), "alpha");
        assert_eq!(x("${NOPE:-${A:+x}y}"), "xy");
        assert_eq!(x("${NOPE:-a b}"), "a b");
    }

    #[test]
    fn required() {
        let e = expand_map("${NOPE:?set NOPE please}", '\\', &vars()).unwrap_err();
        assert_eq!(e.to_string(), "NOPE: set NOPE please");
        let e = expand_map("${EMPTY:?}", '\\', &vars()).unwrap_err();
        assert_eq!(e.to_string(), "EMPTY: is not set");
        assert_eq!(x("${EMPTY?}"), "");
        assert_eq!(x("${A:?}"), "alpha");
    }

    #[test]
    fn pattern_trimming() {
        assert_eq!(x("${FILE#*.}"), "tar.gz");
        assert_eq!(x("${FILE##*.}"), "gz");
        assert_eq!(x("${FILE%.*}"), "archive.tar");
        assert_eq!(x("${FILE%%.*}"), "archive");
        assert_eq!(x("${FILE#nomatch}"), "archive.tar.gz");
        assert_eq!(x("${FILE%?z}"), "archive.tar.");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(x(r#""$A b""#), "alpha b");
        assert_eq!(x("'$A b'"), "$A b");
        assert_eq!(x(r"\$A"), "$A");
        assert_eq!(x(r"\\$A"), r"\alpha");
        assert_eq!(x(r#""\$A \"q\" \n""#), r#"$A "q" \n"#);
        assert_eq!(x(r#"a"b"'c'd"#), "abcd");
        assert_eq!(x(r"trailing\"), "trailing");
        assert_eq!(x(r"a\ b"), "a b");
        assert_eq!(x(r#"'it''s'"#), "its");
    }

    #[test]
    fn backtick_escape() {
        let v = vars();
        let e = |w| expand_map(w, '`', &v).unwrap().value;
        assert_eq!(e(r"C:\dir\$A"), r"C:\dir\alpha");
        assert_eq!(e("`$A"), "$A");
        assert_eq!(e("``"), "`");
    }

    #[test]
    fn used_variables_are_reported() {
        let e = expand_map("$A ${NOPE:-$EMPTY} '$QUOTED' \\$ESC", '\\', &vars()).unwrap();
        let used: Vec<_> = e.used.into_iter().collect();
        assert_eq!(used, ["A", "EMPTY", "NOPE"]);
    }

    #[test]
    fn errors() {
        let err = |w: &str| expand_map(w, '\\', &vars()).unwrap_err();
        assert_eq!(
            err("${A").to_string(),
            "unterminated ${ in \"${A\": expected }"
        );
        assert_eq!(
            err("${").to_string(),
            "unterminated ${ in \"${\": expected }"
        );
        assert_eq!(
            err("${A:-x").to_string(),
            "unterminated ${ in \"${A:-x\": expected }"
        );
        assert_eq!(err("${}").to_string(), "bad substitution in \"${}\"");
        assert_eq!(err("${A:x}").to_string(), "bad substitution in \"${A:x}\"");
        assert_eq!(
            err("${A/x/y}").to_string(),
            "bad substitution in \"${A/x/y}\""
        );
        assert_eq!(
            err("'abc").to_string(),
            "unterminated single quote in \"'abc\""
        );
        assert_eq!(
            err("\"abc").to_string(),
            "unterminated double quote in \"\\\"abc\""
        );
    }

    #[test]
    fn glob() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*.gz", "x.tar.gz"));
    }
}

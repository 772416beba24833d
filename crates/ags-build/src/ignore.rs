//! `.containerignore` / `.dockerignore` matching with Docker's semantics
//! (moby/patternmatcher), which differ from `.gitignore`:
//! - patterns are relative to the context root; a leading `/` or `./` is dropped and the
//!   pattern is cleaned like Go's `filepath.Clean`;
//! - `*` and `?` never cross `/` (so `*.md` only matches at the top level), `**` matches
//!   any number of directories, `[...]` is a character class (`[^...]` negated), `\`
//!   escapes the next character;
//! - a pattern that matches a directory excludes everything under it;
//! - `!pattern` re-includes, and the last matching pattern wins;
//! - a line starting with `#` is a comment; blank lines are ignored.
//!
//! A hand-written matcher rather than a glob crate: Docker's rules (no `*` across `/`,
//! parent-directory matching, `a/**` not matching `a` itself) are not what `glob` or
//! `globset` implement, and context filtering must agree with Docker exactly.

use std::path::{Path, PathBuf};

/// An error reading or compiling an ignore file.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// A malformed pattern, e.g. an unclosed `[`.
    #[error("line {line}: bad pattern {pattern:?}: {reason}")]
    BadPattern {
        /// 1-based line in the ignore file.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The ignore file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A pattern error, with the file it came from.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// The pattern error.
        #[source]
        source: Box<IgnoreError>,
    },
}

/// Picks the ignore file for a build, or `None` when there is none. In order of preference:
/// `<containerfile>.containerignore` and `<containerfile>.dockerignore` next to the
/// Containerfile (BuildKit's per-Dockerfile ignore files), then `.containerignore` and
/// `.dockerignore` in the context directory.
pub fn find_ignore_file(context_dir: &Path, containerfile: Option<&Path>) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(cf) = containerfile {
        for ext in ["containerignore", "dockerignore"] {
            let mut name = cf.as_os_str().to_owned();
            name.push(".");
            name.push(ext);
            candidates.push(PathBuf::from(name));
        }
    }
    candidates.push(context_dir.join(".containerignore"));
    candidates.push(context_dir.join(".dockerignore"));
    candidates.into_iter().find(|p| p.is_file())
}

/// A compiled ignore file.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
enum Segment {
    /// `**`: any number of path components.
    AnyDirs,
    Glob(Vec<Token>),
}

#[derive(Debug, Clone)]
enum Token {
    Literal(char),
    /// `*`
    Star,
    /// `?`
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl IgnoreMatcher {
    /// Compiles the text of an ignore file.
    pub fn new(text: &str) -> Result<Self, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let exclusion = pattern.starts_with('!');
            if exclusion {
                pattern = pattern[1..].trim();
            }
            let mut cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let segments = compile(&cleaned).map_err(|reason| IgnoreError::BadPattern {
                line: n + 1,
                pattern: line.to_string(),
                reason,
            })?;
            patterns.push(Pattern {
                exclusion,
                segments,
            });
        }
        Ok(IgnoreMatcher { patterns })
    }

    /// Reads and compiles the ignore file [`find_ignore_file`] picks; an empty matcher
    /// when there is none.
    pub fn load(context_dir: &Path, containerfile: Option<&Path>) -> Result<Self, IgnoreError> {
        let Some(path) = find_ignore_file(context_dir, containerfile) else {
            return Ok(IgnoreMatcher::default());
        };
        let text = std::fs::read_to_string(&path).map_err(|source| IgnoreError::Read {
            path: path.clone(),
            source,
        })?;
        IgnoreMatcher::new(&text).map_err(|e| IgnoreError::InFile {
            path,
            source: Box::new(e),
        })
    }

    /// True when the ignore file has `!` exceptions: a walker must then look inside
    /// excluded directories, since something in them may be re-included.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// True when the file or directory at `rel_path` (relative to the context root,
    /// `/`-separated) is excluded from the build context. The context root itself is
    /// never excluded.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        let cleaned = clean(rel_path);
        let path = cleaned.trim_start_matches('/');
        if path.is_empty() || path == "." {
            return false;
        }
        let comps: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            // A pattern matches the path itself or any of its parent directories.
            let matched =
                (1..=comps.len()).any(|k| match_segments(&pattern.segments, &comps[..k], true));
            if matched {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

fn compile(pattern: &str) -> Result<Vec<Segment>, &'static str> {
    pattern
        .split('/')
        .map(|seg| {
            if seg == "**" {
                return Ok(Segment::AnyDirs);
            }
            let mut tokens = Vec::new();
            let mut chars = seg.chars().peekable();
            while let Some(ch) = chars.next() {
                match ch {
                    '*' => {
                        // `**` inside a component behaves like `*`.
                        while chars.peek() == Some(&'*') {
                            chars.next();
                        }
                        tokens.push(Token::Star);
                    }
                    '?' => tokens.push(Token::One),
                    '\\' => tokens.push(Token::Literal(chars.next().ok_or("trailing backslash")?)),
                    '[' => {
                        let negated = chars.peek() == Some(&'^');
                        if negated {
                            chars.next();
                        }
                        let mut ranges = Vec::new();
                        loop {
                            let c = match chars.next().ok_or("unclosed [")? {
                                ']' if !ranges.is_empty() => break,
                                ']' => return Err("empty character class"),
                                '\\' => chars.next().ok_or("trailing backslash")?,
                                c => c,
                            };
                            if chars.peek() == Some(&'-') {
                                chars.next();
                                let hi = match chars.next().ok_or("unclosed [")? {
                                    '\\' => chars.next().ok_or("trailing backslash")?,
                                    ']' => return Err("unfinished character range"),
                                    h => h,
                                };
                                if hi < c {
                                    return Err("character range out of order");
                                }
                                ranges.push((c, hi));
                            } else {
                                ranges.push((c, c));
                            }
                        }
                        tokens.push(Token::Class { negated, ranges });
                    }
                    c => tokens.push(Token::Literal(c)),
                }
            }
            Ok(Segment::Glob(tokens))
        })
        .collect()
}

fn match_segments(segs: &[Segment], comps: &[&str], first: bool) -> bool {
    match segs.split_first() {
        None => comps.is_empty(),
        Some((Segment::AnyDirs, rest)) => {
            // A trailing `**` after something (`a/**`) needs at least one component, as
            // moby's prefix match on `a/` does; a lone `**` matches everything.
            let min = usize::from(rest.is_empty() && !first);
            (min..=comps.len()).any(|k| match_segments(rest, &comps[k..], false))
        }
        Some((Segment::Glob(tokens), rest)) => match comps.split_first() {
            Some((head, more)) => {
                let chars: Vec<char> = head.chars().collect();
                match_tokens(tokens, &chars) && match_segments(rest, more, false)
            }
            None => false,
        },
    }
}

fn match_tokens(tokens: &[Token], s: &[char]) -> bool {
    match tokens.split_first() {
        None => s.is_empty(),
        Some((Token::Star, rest)) => (0..=s.len()).any(|k| match_tokens(rest, &s[k..])),
        Some((tok, rest)) => match s.split_first() {
            Some((c, more)) => {
                let ok = match tok {
                    Token::Literal(l) => l == c,
                    Token::One => true,
                    Token::Class { negated, ranges } => {
                        ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated
                    }
                    Token::Star => unreachable!("handled above"),
                };
                ok && match_tokens(rest, more)
            }
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> IgnoreMatcher {
        IgnoreMatcher::new(text).unwrap()
    }

    #[test]
    fn star_does_not_cross_slash() {
        let i = m("*.md\n");
        assert!(i.is_excluded("README.md"));
        assert!(!i.is_excluded("docs/README.md"));
        let i = m("*/*.md\n");
        assert!(i.is_excluded("docs/a.md"));
        assert!(!i.is_excluded("a/b/c.md"));
    }

    #[test]
    fn double_star() {
        let i = m("**/*.md\n");
        assert!(i.is_excluded("README.md"));
        assert!(i.is_excluded("a/b/c.md"));
        assert!(!i.is_excluded("a/b/c.txt"));
        let i = m("a/**/b\n");
        assert!(i.is_excluded("a/b"));
        assert!(i.is_excluded("a/x/y/b"));
        assert!(i.is_excluded("a/x/b/inside"));
        assert!(!i.is_excluded("a/x/c"));
        let i = m("a/**\n");
        assert!(!i.is_excluded("a"));
        assert!(i.is_excluded("a/x"));
        assert!(i.is_excluded("a/x/y"));
        let i = m("**\n");
        assert!(i.is_excluded("anything"));
        assert!(i.is_excluded("a/b/c"));
    }

    #[test]
    fn question_mark_and_classes() {
        let i = m("file?.txt\n[a-c]*.log\n[^x]y\nlit\\*\n");
        assert!(i.is_excluded("file1.txt"));
        assert!(!i.is_excluded("file10.txt"));
        assert!(i.is_excluded("b-today.log"));
        assert!(!i.is_excluded("d.log"));
        assert!(i.is_excluded("zy"));
        assert!(!i.is_excluded("xy"));
        assert!(i.is_excluded("lit*"));
        assert!(!i.is_excluded("litx"));
    }

    #[test]
    fn directory_match_excludes_contents() {
        let i = m("node_modules\n/build/\n./target\n");
        assert!(i.is_excluded("node_modules"));
        assert!(i.is_excluded("node_modules/x/y.js"));
        assert!(!i.is_excluded("src/node_modules"), "anchored at the root");
        assert!(i.is_excluded("build/out.o"));
        assert!(i.is_excluded("target/debug/x"));
        assert!(!i.is_excluded("src/main.rs"));
    }

    #[test]
    fn exceptions_and_last_match_wins() {
        let i = m("*.md\n!README.md\n");
        assert!(i.is_excluded("CHANGES.md"));
        assert!(!i.is_excluded("README.md"));
        assert!(i.has_exceptions());
        let i = m("!README.md\n*.md\n");
        assert!(i.is_excluded("README.md"));
        let i = m("docs\n!docs/keep\n");
        assert!(i.is_excluded("docs/other"));
        assert!(!i.is_excluded("docs/keep"));
        assert!(!i.is_excluded("docs/keep/deep/file"));
        let i = m("*\n!src\nsrc/*.tmp\n");
        assert!(i.is_excluded("Cargo.toml"));
        assert!(!i.is_excluded("src/lib.rs"));
        assert!(i.is_excluded("src/x.tmp"));
    }

    #[test]
    fn comments_blanks_and_cleaning() {
        let i = m("\u{feff}# comment\n\n  \n #not-a-comment\n  spaced.txt  \na/../b\n! ./c\n");
        assert!(i.is_excluded("#not-a-comment"));
        assert!(i.is_excluded("spaced.txt"));
        assert!(i.is_excluded("b"));
        assert!(!i.is_excluded("a"));
        assert!(!i.is_excluded("# comment"));
        assert!(i.has_exceptions());
        assert!(i.is_excluded("./spaced.txt"), "paths are cleaned too");
        assert!(!i.is_excluded(""));
        assert!(!i.is_excluded("."));
    }

    #[test]
    fn bad_patterns() {
        let e = IgnoreMatcher::new("ok\n[abc\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: bad pattern \"[abc\": unclosed [");
        assert!(IgnoreMatcher::new("x\\").is_err());
        assert!(IgnoreMatcher::new("[]").is_err());
        assert!(IgnoreMatcher::new("[z-a]").is_err());
    }

    #[test]
    fn choosing_the_ignore_file() {
        let dir = std::env::temp_dir().join(format!("ags-build-ignore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(find_ignore_file(&dir, None), None);
        assert!(!IgnoreMatcher::load(&dir, None).unwrap().is_excluded("x"));
        std::fs::write(dir.join(".dockerignore"), "x\n").unwrap();
        assert_eq!(
            find_ignore_file(&dir, None),
            Some(dir.join(".dockerignore"))
        );
        std::fs::write(dir.join(".containerignore"), "y\n").unwrap();
        assert_eq!(
            find_ignore_file(&dir, None),
            Some(dir.join(".containerignore"))
        );
        let loaded = IgnoreMatcher::load(&dir, None).unwrap();
        assert!(loaded.is_excluded("y") && !loaded.is_excluded("x"));
        let cf = dir.join("Containerfile");
        std::fs::write(dir.join("Containerfile.dockerignore"), "z\n[\n").unwrap();
        assert_eq!(
            find_ignore_file(&dir, Some(&cf)),
            Some(dir.join("Containerfile.dockerignore"))
        );
        let err = IgnoreMatcher::load(&dir, Some(&cf)).unwrap_err();
        assert!(
            err.to_string()
                .contains("Containerfile.dockerignore: line 2"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

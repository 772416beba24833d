//! Containerfile text to [`Containerfile`]: directives, comments, line continuations,
//! heredocs, and one typed [`Instruction`] per line, each with its [`Span`].
//!
//! The parser follows BuildKit's (the Dockerfile frontend's) rules so that files written
//! for `docker build` mean the same here:
//! - parser directives (`# syntax=`, `# escape=`, `# check=`) are only recognised before
//!   anything else; the first other line, blank line or unknown directive ends them;
//! - a line whose first non-blank character is `#` is a comment, also in the middle of a
//!   continued instruction, and so are blank lines inside a continuation;
//! - the escape character at the end of a line (trailing blanks allowed) continues it;
//! - heredoc bodies (`RUN`, `COPY`, `ADD`) follow the line that names them, verbatim;
//! - a malformed JSON array is taken as shell form.
//!
//! Values are not expanded here; see [`crate::expand`].

mod ast;
pub(crate) mod heredoc;
mod instructions;
mod mount;
mod words;

#[cfg(test)]
mod tests;

pub use ast::*;

use std::fmt;

/// A Containerfile syntax error, displayed as `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {kind}")]
pub struct ParseError {
    /// The file name given to [`parse`].
    pub file: String,
    /// 1-based line of the offending token.
    pub line: usize,
    /// 1-based column (in characters) of the offending token.
    pub col: usize,
    /// Length of the offending token in characters, for underlining.
    pub len: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// What is wrong with a Containerfile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The file has no instructions.
    #[error("the file contains no instructions: expected at least a FROM line")]
    Empty,
    /// The file has instructions but no `FROM`.
    #[error("no FROM instruction: a build needs at least one stage")]
    NoFrom,
    /// An instruction other than `ARG` before the first `FROM`.
    #[error("{0} before the first FROM: only ARG may come before FROM")]
    BeforeFrom(&'static str),
    /// An unknown keyword, with a suggestion when one is close.
    #[error("unknown instruction \"{word}\"{}", suggestion_text(.suggestion))]
    UnknownInstruction {
        /// The word as written.
        word: String,
        /// A known keyword within a small edit distance.
        suggestion: Option<&'static str>,
    },
    /// An instruction without its required arguments.
    #[error("{keyword} requires {what}")]
    MissingArgument {
        /// The instruction keyword.
        keyword: &'static str,
        /// What was expected, e.g. "a command".
        what: &'static str,
    },
    /// A flag the instruction does not accept.
    #[error("unknown flag --{flag} for {keyword}")]
    UnknownFlag {
        /// The flag name without dashes.
        flag: String,
        /// The instruction keyword.
        keyword: &'static str,
    },
    /// A flag given twice that may appear only once.
    #[error("flag --{0} given more than once")]
    DuplicateFlag(String),
    /// A flag that needs `=value` given without one.
    #[error("flag --{0} needs a value: expected --{0}=VALUE")]
    FlagNeedsValue(String),
    /// A flag whose value is not acceptable.
    #[error("invalid value {value:?} for --{flag}: expected {expected}")]
    BadFlagValue {
        /// The flag name without dashes.
        flag: String,
        /// The value as written.
        value: String,
        /// What would be accepted.
        expected: String,
    },
    /// A malformed `RUN --mount=...`.
    #[error("invalid --mount: {0}")]
    BadMount(String),
    /// A heredoc without its terminator line.
    #[error(
        "unterminated heredoc: no line {delimiter:?} closes the <<{delimiter} started on line {start_line}"
    )]
    UnterminatedHeredoc {
        /// The terminator that was never found.
        delimiter: String,
        /// The line that named the heredoc.
        start_line: usize,
    },
    /// `# escape=` with a value other than `\` or `` ` ``.
    #[error("invalid escape directive {0:?}: expected \\ or `")]
    BadEscape(String),
    /// The same parser directive twice.
    #[error("the {0} parser directive may be given only once")]
    DuplicateDirective(String),
    /// `ONBUILD` wrapping an instruction it may not wrap.
    #[error("ONBUILD cannot wrap {0}")]
    OnbuildNotAllowed(String),
    /// An `AS name` that is not a valid stage name.
    #[error(
        "invalid stage name {0:?}: expected a letter followed by letters, digits, '-', '_' or '.'"
    )]
    BadStageName(String),
    /// Two stages with the same name.
    #[error("duplicate stage name {name:?}: already used on line {first_line}")]
    DuplicateStageName {
        /// The name.
        name: String,
        /// The line of the first stage with this name.
        first_line: usize,
    },
    /// Any other instruction-specific syntax error; the message says what was expected.
    #[error("{0}")]
    Syntax(String),
}

fn suggestion_text(s: &Option<&'static str>) -> String {
    match s {
        Some(k) => format!(" (did you mean {k}?)"),
        None => String::new(),
    }
}

/// Parses a Containerfile. `file` is the name used in error messages.
///
/// ```
/// let cf = ags_build::parser::parse("Containerfile", "FROM alpine\nRUN true\n").unwrap();
/// assert_eq!(cf.stages[0].from.image, "alpine");
/// let err = ags_build::parser::parse("Containerfile", "FROM alpine\nRUNN true\n").unwrap_err();
/// assert_eq!(err.to_string(), r#"Containerfile:2:1: unknown instruction "RUNN" (did you mean RUN?)"#);
/// ```
pub fn parse(file: &str, source: &str) -> Result<Containerfile, ParseError> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let lines: Vec<&str> = source
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let directives = parse_directives(file, &lines)?;
    let escape = directives.escape;

    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut saw_instruction = false;
    let mut i = 0;
    while i < lines.len() {
        let Some(logical) = next_logical_line(&lines, &mut i, escape) else {
            continue;
        };
        let ctx = Ctx {
            file,
            line: &logical,
            escape,
        };
        let parsed = instructions::parse_line(&ctx, &lines, &mut i)?;
        saw_instruction = true;
        match parsed {
            instructions::Parsed::From(from, span) => {
                if let Some(name) = &from.alias {
                    if let Some(prev) = stages.iter().find(|s| s.name.as_ref() == Some(name)) {
                        return Err(ctx.error_span(
                            span,
                            ParseErrorKind::DuplicateStageName {
                                name: name.clone(),
                                first_line: prev.span.line,
                            },
                        ));
                    }
                }
                stages.push(Stage {
                    index: stages.len(),
                    name: from.alias.clone(),
                    from,
                    span,
                    text: logical.text.trim().to_string(),
                    instructions: Vec::new(),
                });
            }
            instructions::Parsed::Instruction(instruction) => match stages.last_mut() {
                Some(stage) => stage.instructions.push(instruction),
                None => match instruction.kind {
                    InstructionKind::Arg(decls) => global_args.extend(decls),
                    other => {
                        return Err(ctx.error_span(
                            instruction.span,
                            ParseErrorKind::BeforeFrom(other.keyword()),
                        ));
                    }
                },
            },
        }
    }
    let at_start = |kind| ParseError {
        file: file.to_string(),
        line: 1,
        col: 1,
        len: 0,
        kind,
    };
    if !saw_instruction {
        return Err(at_start(ParseErrorKind::Empty));
    }
    if stages.is_empty() {
        return Err(at_start(ParseErrorKind::NoFrom));
    }
    Ok(Containerfile {
        file: file.to_string(),
        directives,
        global_args,
        stages,
    })
}

/// Reads the parser directives at the top of the file.
fn parse_directives(file: &str, lines: &[&str]) -> Result<Directives, ParseError> {
    let mut d = Directives::default();
    let mut seen: Vec<String> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some((name, value, value_col)) = directive_of(line) else {
            break;
        };
        if !["syntax", "escape", "check"].contains(&name.as_str()) {
            break;
        }
        let err = |kind, col: usize, len: usize| ParseError {
            file: file.to_string(),
            line: n + 1,
            col,
            len,
            kind,
        };
        if seen.contains(&name) {
            return Err(err(
                ParseErrorKind::DuplicateDirective(name),
                1,
                line.chars().count(),
            ));
        }
        match name.as_str() {
            "escape" => {
                d.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        let len = value.chars().count();
                        return Err(err(ParseErrorKind::BadEscape(value), value_col, len));
                    }
                }
            }
            "syntax" => d.syntax = Some(value),
            _ => d.check = Some(value),
        }
        seen.push(name);
    }
    Ok(d)
}

/// Matches `# name = value` (BuildKit's directive regex); returns the lowercased name, the
/// value and the value's 1-based column.
fn directive_of(line: &str) -> Option<(String, String, usize)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_alphanumeric())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let name = rest[..name_len].to_ascii_lowercase();
    let after = rest[name_len..].trim_start().strip_prefix('=')?;
    let value = after.trim();
    if value.is_empty() {
        return None;
    }
    let value_start = line.len() - after.trim_start().len();
    let col = line[..value_start].chars().count() + 1;
    Some((name, value.to_string(), col))
}

/// One instruction's text with continuations joined, and a map back to source positions.
#[derive(Debug)]
pub(crate) struct LogicalLine {
    pub(crate) text: String,
    /// (byte offset in `text`, source line, source column) of each joined piece.
    segments: Vec<(usize, usize, usize)>,
}

impl LogicalLine {
    fn push(&mut self, piece: &str, line: usize, col: usize) {
        self.segments.push((self.text.len(), line, col));
        self.text.push_str(piece);
    }

    /// The source position of a byte offset in `text`.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let seg = self
            .segments
            .iter()
            .rev()
            .find(|s| s.0 <= offset)
            .unwrap_or(&self.segments[0]);
        let from = seg.0.min(self.text.len());
        let to = offset.clamp(from, self.text.len());
        (seg.1, seg.2 + self.text[from..to].chars().count())
    }

    /// The line of the last piece (heredoc bodies start after it).
    pub(crate) fn last_line(&self) -> usize {
        self.segments.last().map_or(0, |s| s.1)
    }
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Strips a trailing escape character (and blanks after it); true when the line continues.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(s) => (s, true),
        None => (line, false),
    }
}

/// Assembles the next instruction's logical line starting at `lines[*i]`, skipping
/// comments and blank lines; `None` when the line at `*i` holds no instruction.
fn next_logical_line(lines: &[&str], i: &mut usize, escape: char) -> Option<LogicalLine> {
    let raw = lines[*i];
    *i += 1;
    let first = raw.trim_start();
    if first.is_empty() || first.starts_with('#') {
        return None;
    }
    let col = raw[..raw.len() - first.len()].chars().count() + 1;
    let mut logical = LogicalLine {
        text: String::new(),
        segments: Vec::new(),
    };
    let (piece, mut more) = trim_continuation(first, escape);
    logical.push(piece, *i, col);
    while more && *i < lines.len() {
        let raw = lines[*i];
        *i += 1;
        if is_comment(raw) || raw.trim().is_empty() {
            continue;
        }
        let (piece, cont) = trim_continuation(raw, escape);
        more = cont;
        logical.push(piece, *i, 1);
    }
    if logical.text.trim().is_empty() {
        return None;
    }
    Some(logical)
}

/// What instruction parsers need to build spans and errors.
pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a str,
    pub(crate) line: &'a LogicalLine,
    pub(crate) escape: char,
}

impl Ctx<'_> {
    /// The byte offset of `s`, which must be a slice of the logical line's text.
    pub(crate) fn offset_of(&self, s: &str) -> usize {
        let base = self.line.text.as_ptr() as usize;
        (s.as_ptr() as usize)
            .saturating_sub(base)
            .min(self.line.text.len())
    }

    /// The span of `len` bytes at byte `offset` of the logical line.
    pub(crate) fn span(&self, offset: usize, len: usize) -> Span {
        let (line, col) = self.line.position(offset);
        let end = (offset + len).min(self.line.text.len());
        let start = offset.min(end);
        Span {
            line,
            col,
            len: self.line.text[start..end].chars().count(),
        }
    }

    /// The span of a slice of the logical line.
    pub(crate) fn span_of(&self, s: &str) -> Span {
        self.span(self.offset_of(s), s.len())
    }

    pub(crate) fn error(&self, offset: usize, len: usize, kind: ParseErrorKind) -> ParseError {
        self.error_span(self.span(offset, len), kind)
    }

    pub(crate) fn error_span(&self, span: Span, kind: ParseErrorKind) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line: span.line,
            col: span.col,
            len: span.len,
            kind,
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Shell(s) => f.write_str(s),
            Command::Exec(v) => {
                let json = serde_json::to_string(v).map_err(|_| fmt::Error)?;
                f.write_str(&json)
            }
        }
    }
}

//! Parsing one logical line into a typed instruction.

use std::time::Duration;

use super::heredoc::{parse_heredoc_word, strip_leading_tabs};
use super::mount::parse_mount;
use super::words::{
    RawFlag, extract_flags, parse_go_duration, parse_json_array, parse_words, split_shell_raw,
    split_whitespace,
};
use super::{
    ArgDecl, Command, Copy, CopySource, Ctx, From, Healthcheck, Heredoc, Instruction,
    InstructionKind, KeyValue, NetworkMode, ParseError, ParseErrorKind, Run, Span,
};

/// Every keyword the parser knows, upper case.
pub(crate) const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

pub(crate) enum Parsed {
    From(From, Span),
    Instruction(Instruction),
}

/// Parses the logical line in `ctx`; reads heredoc bodies from `lines` starting at `*next`.
pub(crate) fn parse_line(
    ctx: &Ctx<'_>,
    lines: &[&str],
    next: &mut usize,
) -> Result<Parsed, ParseError> {
    let text = ctx.line.text.trim();
    let (keyword, rest, kw_span) = split_keyword(ctx, text)?;
    let heredocs = match keyword {
        "RUN" | "COPY" | "ADD" => read_heredocs(ctx, rest, lines, next)?,
        _ => Vec::new(),
    };
    if keyword == "FROM" {
        let from = parse_from(ctx, rest, kw_span)?;
        return Ok(Parsed::From(from, kw_span));
    }
    let kind = parse_kind(ctx, keyword, rest, kw_span, heredocs)?;
    Ok(Parsed::Instruction(Instruction {
        kind,
        span: kw_span,
        text: text.to_string(),
    }))
}

/// Splits `text` into its upper-cased keyword and the rest, rejecting unknown keywords.
fn split_keyword<'a>(
    ctx: &Ctx<'_>,
    text: &'a str,
) -> Result<(&'static str, &'a str, Span), ParseError> {
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    let word = &text[..end];
    let rest = text[end..].trim();
    let span = ctx.span_of(word);
    let upper = word.to_ascii_uppercase();
    match KEYWORDS.iter().find(|k| **k == upper) {
        Some(k) => Ok((k, rest, span)),
        None => Err(ctx.error_span(
            span,
            ParseErrorKind::UnknownInstruction {
                word: word.to_string(),
                suggestion: suggest(&upper),
            },
        )),
    }
}

/// The closest keyword within edit distance 2 (and less than the word's length).
fn suggest(upper: &str) -> Option<&'static str> {
    KEYWORDS
        .iter()
        .map(|k| (edit_distance(upper, k), *k))
        .filter(|&(d, _)| d <= 2 && d < upper.len())
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Finds heredoc words in `rest` and reads their bodies, in order, from the source lines
/// after the instruction. JSON-form arguments have no heredocs.
fn read_heredocs(
    ctx: &Ctx<'_>,
    rest: &str,
    lines: &[&str],
    next: &mut usize,
) -> Result<Vec<Heredoc>, ParseError> {
    if !rest.contains("<<") {
        return Ok(Vec::new());
    }
    let (_, args_at) = extract_flags(rest, ctx.escape);
    if parse_json_array(&rest[args_at..]).is_some() {
        return Ok(Vec::new());
    }
    let base = ctx.offset_of(rest);
    let mut docs = Vec::new();
    for word in split_shell_raw(rest, ctx.escape) {
        let Some(hw) = parse_heredoc_word(&word.text) else {
            continue;
        };
        let span = ctx.span(base + word.offset, word.raw_len);
        let mut content = String::new();
        let mut terminated = false;
        while *next < lines.len() {
            let line = lines[*next];
            *next += 1;
            let candidate = if hw.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if candidate == hw.delimiter {
                terminated = true;
                break;
            }
            content.push_str(line);
            content.push('\n');
        }
        if !terminated {
            return Err(ctx.error_span(
                span,
                ParseErrorKind::UnterminatedHeredoc {
                    delimiter: hw.delimiter,
                    start_line: ctx.line.last_line(),
                },
            ));
        }
        if hw.strip_tabs {
            content = strip_leading_tabs(&content);
        }
        docs.push(Heredoc {
            delimiter: hw.delimiter,
            content,
            expand: hw.expand,
            strip_tabs: hw.strip_tabs,
            fd: hw.fd,
            span,
        });
    }
    Ok(docs)
}

fn syntax(ctx: &Ctx<'_>, at: &str, message: impl Into<String>) -> ParseError {
    ctx.error_span(ctx.span_of(at), ParseErrorKind::Syntax(message.into()))
}

fn missing(ctx: &Ctx<'_>, kw: Span, keyword: &'static str, what: &'static str) -> ParseError {
    ctx.error_span(kw, ParseErrorKind::MissingArgument { keyword, what })
}

fn parse_kind(
    ctx: &Ctx<'_>,
    keyword: &'static str,
    rest: &str,
    kw: Span,
    heredocs: Vec<Heredoc>,
) -> Result<InstructionKind, ParseError> {
    let kind = match keyword {
        "RUN" => InstructionKind::Run(parse_run(ctx, rest, kw, heredocs)?),
        "COPY" | "ADD" => {
            let copy = parse_copy(ctx, keyword, rest, kw, heredocs)?;
            if keyword == "COPY" {
                InstructionKind::Copy(copy)
            } else {
                InstructionKind::Add(copy)
            }
        }
        "ENV" => InstructionKind::Env(parse_key_values(ctx, keyword, rest, kw)?),
        "LABEL" => InstructionKind::Label(parse_key_values(ctx, keyword, rest, kw)?),
        "ARG" => InstructionKind::Arg(parse_arg(ctx, rest, kw)?),
        "WORKDIR" => {
            no_flags(ctx, keyword, rest)?;
            if rest.is_empty() {
                return Err(missing(ctx, kw, keyword, "a path"));
            }
            InstructionKind::Workdir(rest.to_string())
        }
        "USER" => InstructionKind::User(single_word(ctx, keyword, rest, kw, "a user name or id")?),
        "STOPSIGNAL" => InstructionKind::StopSignal(single_word(
            ctx,
            keyword,
            rest,
            kw,
            "a signal name or number",
        )?),
        "MAINTAINER" => {
            if rest.is_empty() {
                return Err(missing(ctx, kw, keyword, "a name"));
            }
            InstructionKind::Maintainer(rest.to_string())
        }
        "ENTRYPOINT" | "CMD" => {
            no_flags(ctx, keyword, rest)?;
            if rest.is_empty() {
                return Err(missing(ctx, kw, keyword, "a command"));
            }
            let command = command_of(rest);
            if keyword == "CMD" {
                InstructionKind::Cmd(command)
            } else {
                InstructionKind::Entrypoint(command)
            }
        }
        "SHELL" => {
            if rest.is_empty() {
                return Err(missing(
                    ctx,
                    kw,
                    keyword,
                    "a JSON array such as [\"/bin/sh\", \"-c\"]",
                ));
            }
            match parse_json_array(rest) {
                Some(v) if !v.is_empty() => InstructionKind::Shell(v),
                Some(_) => return Err(syntax(ctx, rest, "SHELL requires a non-empty JSON array")),
                None => {
                    return Err(syntax(
                        ctx,
                        rest,
                        "SHELL requires the arguments in JSON form, e.g. [\"/bin/bash\", \"-c\"]",
                    ));
                }
            }
        }
        "EXPOSE" => {
            no_flags(ctx, keyword, rest)?;
            let ports: Vec<String> = split_whitespace(rest).into_iter().map(|w| w.text).collect();
            if ports.is_empty() {
                return Err(missing(ctx, kw, keyword, "at least one port"));
            }
            InstructionKind::Expose(ports)
        }
        "VOLUME" => {
            no_flags(ctx, keyword, rest)?;
            let volumes = match parse_json_array(rest) {
                Some(v) => {
                    if v.iter().any(|s| s.trim().is_empty()) {
                        return Err(syntax(ctx, rest, "VOLUME paths cannot be empty strings"));
                    }
                    v
                }
                None => split_whitespace(rest).into_iter().map(|w| w.text).collect(),
            };
            if volumes.is_empty() {
                return Err(missing(ctx, kw, keyword, "at least one path"));
            }
            InstructionKind::Volume(volumes)
        }
        "HEALTHCHECK" => InstructionKind::Healthcheck(parse_healthcheck(ctx, rest, kw)?),
        "ONBUILD" => {
            if rest.is_empty() {
                return Err(missing(ctx, kw, keyword, "an instruction to wrap"));
            }
            let (inner_kw, inner_rest, inner_span) = split_keyword(ctx, rest)?;
            if matches!(inner_kw, "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(ctx.error_span(
                    inner_span,
                    ParseErrorKind::OnbuildNotAllowed(inner_kw.to_string()),
                ));
            }
            let inner = parse_kind(ctx, inner_kw, inner_rest, inner_span, Vec::new())?;
            InstructionKind::Onbuild(Box::new(Instruction {
                kind: inner,
                span: inner_span,
                text: rest.to_string(),
            }))
        }
        other => unreachable!("keyword {other} is handled by the caller"),
    };
    Ok(kind)
}

/// Exec form when `rest` is a valid JSON array of strings, shell form otherwise.
fn command_of(rest: &str) -> Command {
    match parse_json_array(rest) {
        Some(v) => Command::Exec(v),
        None => Command::Shell(rest.to_string()),
    }
}

fn single_word(
    ctx: &Ctx<'_>,
    keyword: &'static str,
    rest: &str,
    kw: Span,
    what: &'static str,
) -> Result<String, ParseError> {
    no_flags(ctx, keyword, rest)?;
    let words = split_whitespace(rest);
    match words.as_slice() {
        [] => Err(missing(ctx, kw, keyword, what)),
        [one] => Ok(one.text.clone()),
        [_, extra, ..] => {
            let base = ctx.offset_of(rest);
            Err(ctx.error(
                base + extra.offset,
                rest.len() - extra.offset,
                ParseErrorKind::Syntax(format!("{keyword} takes exactly one argument: {what}")),
            ))
        }
    }
}

/// Instructions without flags still reject `--foo` words up front, so a typo in a flag
/// name is not silently taken as an argument.
fn no_flags(ctx: &Ctx<'_>, keyword: &'static str, rest: &str) -> Result<(), ParseError> {
    check_flags(ctx, keyword, rest, &[]).map(|_| ())
}

#[derive(Clone, Copy, PartialEq)]
enum FlagType {
    Str,
    Bool,
    Multi,
}

/// Validated flags of one instruction.
struct Flags {
    flags: Vec<(RawFlag, Span)>,
}

impl Flags {
    fn string(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|(f, _)| f.value.clone())
    }

    fn get(&self, name: &str) -> Option<&(RawFlag, Span)> {
        self.flags.iter().find(|(f, _)| f.name == name)
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &(RawFlag, Span)> {
        self.flags.iter().filter(move |(f, _)| f.name == name)
    }

    fn boolean(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|(f, _)| f.value.as_deref().is_none_or(|v| v == "true"))
    }
}

/// Takes the leading flags off `rest`, checks them against `spec`, and returns them with
/// the argument part of `rest`.
fn check_flags<'a>(
    ctx: &Ctx<'_>,
    keyword: &'static str,
    rest: &'a str,
    spec: &[(&str, FlagType)],
) -> Result<(Flags, &'a str), ParseError> {
    let (raw, args_at) = extract_flags(rest, ctx.escape);
    let base = ctx.offset_of(rest);
    let mut flags: Vec<(RawFlag, Span)> = Vec::new();
    for flag in raw {
        let span = ctx.span(base + flag.offset, flag.raw_len);
        let err = |kind| ctx.error_span(span, kind);
        let Some((_, ty)) = spec.iter().find(|(n, _)| *n == flag.name) else {
            return Err(err(ParseErrorKind::UnknownFlag {
                flag: flag.name.clone(),
                keyword,
            }));
        };
        if *ty != FlagType::Multi && flags.iter().any(|(f, _)| f.name == flag.name) {
            return Err(err(ParseErrorKind::DuplicateFlag(flag.name.clone())));
        }
        match (ty, flag.value.as_deref()) {
            (FlagType::Bool, None | Some("true" | "false")) => {}
            (FlagType::Bool, Some(v)) => {
                return Err(err(ParseErrorKind::BadFlagValue {
                    flag: flag.name.clone(),
                    value: v.to_string(),
                    expected: "true or false".into(),
                }));
            }
            (_, None | Some("")) if *ty != FlagType::Bool => {
                return Err(err(ParseErrorKind::FlagNeedsValue(flag.name.clone())));
            }
            _ => {}
        }
        flags.push((flag, span));
    }
    Ok((Flags { flags }, &rest[args_at..]))
}

fn parse_from(ctx: &Ctx<'_>, rest: &str, kw: Span) -> Result<From, ParseError> {
    let (flags, args) = check_flags(ctx, "FROM", rest, &[("platform", FlagType::Str)])?;
    let words = split_whitespace(args);
    let base = ctx.offset_of(args);
    let word_span = |i: usize| ctx.span(base + words[i].offset, words[i].raw_len);
    let alias = match words.len() {
        0 => return Err(missing(ctx, kw, "FROM", "an image name (or scratch)")),
        1 => None,
        3 if words[1].text.eq_ignore_ascii_case("as") => {
            let name = words[2].text.to_ascii_lowercase();
            if !valid_stage_name(&name) {
                return Err(ctx.error_span(
                    word_span(2),
                    ParseErrorKind::BadStageName(words[2].text.clone()),
                ));
            }
            Some(name)
        }
        n => {
            let i = if n >= 2 && !words[1].text.eq_ignore_ascii_case("as") {
                1
            } else {
                n - 1
            };
            return Err(ctx.error_span(
                word_span(i),
                ParseErrorKind::Syntax(format!(
                    "unexpected {:?}: FROM takes an image and optionally AS <name>",
                    words[i].text
                )),
            ));
        }
    };
    Ok(From {
        image: words[0].text.clone(),
        platform: flags.string("platform"),
        alias,
    })
}

/// BuildKit's stage name rule: `^[a-z][a-z0-9-_.]*$` after lowercasing.
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn parse_run(
    ctx: &Ctx<'_>,
    rest: &str,
    kw: Span,
    heredocs: Vec<Heredoc>,
) -> Result<Run, ParseError> {
    let spec = [
        ("mount", FlagType::Multi),
        ("network", FlagType::Str),
        ("security", FlagType::Str),
    ];
    let (flags, args) = check_flags(ctx, "RUN", rest, &spec)?;
    if args.trim().is_empty() {
        return Err(missing(ctx, kw, "RUN", "a command"));
    }
    let mut mounts = Vec::new();
    for (flag, span) in flags.all("mount") {
        let value = flag.value.as_deref().unwrap_or_default();
        mounts.push(
            parse_mount(value).map_err(|m| ctx.error_span(*span, ParseErrorKind::BadMount(m)))?,
        );
        if let Some(m) = mounts.last_mut() {
            m.span = *span;
        }
    }
    let bad_value = |name: &str, expected: &str| {
        let (flag, span) = flags.get(name).expect("flag present");
        ctx.error_span(
            *span,
            ParseErrorKind::BadFlagValue {
                flag: name.to_string(),
                value: flag.value.clone().unwrap_or_default(),
                expected: expected.to_string(),
            },
        )
    };
    let network = match flags.string("network").as_deref() {
        None => None,
        Some("default") => Some(NetworkMode::Default),
        Some("none") => Some(NetworkMode::None),
        Some("host") => Some(NetworkMode::Host),
        Some(_) => return Err(bad_value("network", "default, none or host")),
    };
    let security = flags.string("security");
    if let Some(s) = &security {
        if s != "sandbox" && s != "insecure" {
            return Err(bad_value("security", "sandbox or insecure"));
        }
    }
    let command = if heredocs.is_empty() {
        command_of(args)
    } else {
        Command::Shell(args.to_string())
    };
    Ok(Run {
        command,
        mounts,
        network,
        security,
        heredocs,
    })
}

fn parse_copy(
    ctx: &Ctx<'_>,
    keyword: &'static str,
    rest: &str,
    kw: Span,
    heredocs: Vec<Heredoc>,
) -> Result<Copy, ParseError> {
    let copy_spec: &[(&str, FlagType)] = &[
        ("from", FlagType::Str),
        ("chown", FlagType::Str),
        ("chmod", FlagType::Str),
        ("link", FlagType::Bool),
        ("exclude", FlagType::Multi),
    ];
    let add_spec: &[(&str, FlagType)] = &[
        ("chown", FlagType::Str),
        ("chmod", FlagType::Str),
        ("link", FlagType::Bool),
        ("exclude", FlagType::Multi),
        ("checksum", FlagType::Str),
        ("keep-git-dir", FlagType::Bool),
        ("unpack", FlagType::Bool),
    ];
    let spec = if keyword == "COPY" {
        copy_spec
    } else {
        add_spec
    };
    let (flags, args) = check_flags(ctx, keyword, rest, spec)?;
    let (mut words, json_form) = match parse_json_array(args) {
        Some(v) => (v, true),
        None => (
            split_whitespace(args).into_iter().map(|w| w.text).collect(),
            false,
        ),
    };
    if words.is_empty() {
        return Err(missing(ctx, kw, keyword, "a source and a destination"));
    }
    if words.len() == 1 && heredocs.is_empty() {
        return Err(ctx.error_span(
            ctx.span_of(args),
            ParseErrorKind::Syntax(format!(
                "{keyword} requires at least one source and a destination, found only {:?}",
                words[0]
            )),
        ));
    }
    let dest = if words.len() == 1 {
        // `COPY <<EOF` alone has no destination.
        return Err(missing(ctx, kw, keyword, "a destination after the heredoc"));
    } else {
        words.pop().expect("at least two words")
    };
    let mut heredocs = heredocs.into_iter();
    let sources = words
        .into_iter()
        .map(|w| {
            if !json_form && parse_heredoc_word(&w).is_some() {
                if let Some(doc) = heredocs.next() {
                    return CopySource::Heredoc(doc);
                }
            }
            CopySource::Path(w)
        })
        .collect();
    let unpack = flags.get("unpack").map(|_| flags.boolean("unpack"));
    Ok(Copy {
        sources,
        dest,
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.boolean("link"),
        excludes: flags
            .all("exclude")
            .filter_map(|(f, _)| f.value.clone())
            .collect(),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.boolean("keep-git-dir"),
        unpack,
        json_form,
    })
}

/// `ENV`/`LABEL`: `k=v k2="v 2"` or the legacy `k value with spaces`.
fn parse_key_values(
    ctx: &Ctx<'_>,
    keyword: &'static str,
    rest: &str,
    kw: Span,
) -> Result<Vec<KeyValue>, ParseError> {
    no_flags(ctx, keyword, rest)?;
    let words = parse_words(rest, ctx.escape);
    if words.is_empty() {
        return Err(missing(ctx, kw, keyword, "at least one KEY=VALUE pair"));
    }
    let base = ctx.offset_of(rest);
    if !words[0].text.contains('=') {
        // Legacy form: the first word is the key and the rest of the line the value.
        let key = &words[0];
        let value = rest[key.offset + key.raw_len..].trim();
        if value.is_empty() {
            return Err(ctx.error(
                base + key.offset,
                key.raw_len,
                ParseErrorKind::Syntax(format!(
                    "{keyword} {} has no value: expected {keyword} KEY=VALUE or {keyword} KEY VALUE",
                    key.text
                )),
            ));
        }
        return Ok(vec![KeyValue {
            key: key.text.clone(),
            value: value.to_string(),
            span: ctx.span(base + key.offset, rest.len() - key.offset),
        }]);
    }
    let mut pairs = Vec::new();
    for w in words {
        let span = ctx.span(base + w.offset, w.raw_len);
        let Some((k, v)) = w.text.split_once('=') else {
            return Err(ctx.error_span(
                span,
                ParseErrorKind::Syntax(format!(
                    "expected KEY=VALUE, found {:?} (quote values that contain spaces)",
                    w.text
                )),
            ));
        };
        if k.is_empty() {
            return Err(ctx.error_span(
                span,
                ParseErrorKind::Syntax(format!("{keyword} name cannot be empty in {:?}", w.text)),
            ));
        }
        pairs.push(KeyValue {
            key: k.to_string(),
            value: v.to_string(),
            span,
        });
    }
    Ok(pairs)
}

fn parse_arg(ctx: &Ctx<'_>, rest: &str, kw: Span) -> Result<Vec<ArgDecl>, ParseError> {
    no_flags(ctx, "ARG", rest)?;
    let words = parse_words(rest, ctx.escape);
    if words.is_empty() {
        return Err(missing(
            ctx,
            kw,
            "ARG",
            "a name, e.g. ARG NAME or ARG NAME=default",
        ));
    }
    let base = ctx.offset_of(rest);
    words
        .into_iter()
        .map(|w| {
            let span = ctx.span(base + w.offset, w.raw_len);
            let (name, default) = match w.text.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w.text.clone(), None),
            };
            if name.is_empty() {
                return Err(ctx.error_span(
                    span,
                    ParseErrorKind::Syntax(format!("ARG name cannot be empty in {:?}", w.text)),
                ));
            }
            Ok(ArgDecl {
                name,
                default,
                span,
            })
        })
        .collect()
}

fn parse_healthcheck(ctx: &Ctx<'_>, rest: &str, kw: Span) -> Result<Healthcheck, ParseError> {
    let spec = [
        ("interval", FlagType::Str),
        ("timeout", FlagType::Str),
        ("start-period", FlagType::Str),
        ("start-interval", FlagType::Str),
        ("retries", FlagType::Str),
    ];
    let (flags, args) = check_flags(ctx, "HEALTHCHECK", rest, &spec)?;
    let words = split_whitespace(args);
    let Some(first) = words.first() else {
        return Err(missing(ctx, kw, "HEALTHCHECK", "CMD <command> or NONE"));
    };
    let base = ctx.offset_of(args);
    let first_span = ctx.span(base + first.offset, first.raw_len);
    if first.text.eq_ignore_ascii_case("none") {
        if words.len() > 1 || !flags.flags.is_empty() {
            return Err(ctx.error_span(
                first_span,
                ParseErrorKind::Syntax("HEALTHCHECK NONE takes no flags or arguments".into()),
            ));
        }
        return Ok(Healthcheck::None);
    }
    if !first.text.eq_ignore_ascii_case("cmd") {
        return Err(ctx.error_span(
            first_span,
            ParseErrorKind::Syntax(format!(
                "unknown HEALTHCHECK type {:?}: expected CMD or NONE",
                first.text
            )),
        ));
    }
    let command = args[first.offset + first.raw_len..].trim();
    if command.is_empty() {
        return Err(missing(ctx, kw, "HEALTHCHECK", "a command after CMD"));
    }
    let duration = |name: &str| -> Result<Option<Duration>, ParseError> {
        let Some((flag, span)) = flags.get(name) else {
            return Ok(None);
        };
        let value = flag.value.clone().unwrap_or_default();
        let bad = |expected: &str| {
            ctx.error_span(
                *span,
                ParseErrorKind::BadFlagValue {
                    flag: name.to_string(),
                    value: value.clone(),
                    expected: expected.to_string(),
                },
            )
        };
        let d = parse_go_duration(&value)
            .ok_or_else(|| bad("a duration such as 30s, 1m30s or 500ms"))?;
        if !d.is_zero() && d < Duration::from_millis(1) {
            return Err(bad("0 or at least 1ms"));
        }
        Ok(Some(d))
    };
    let retries = match flags.get("retries") {
        None => None,
        Some((flag, span)) => {
            let v = flag.value.clone().unwrap_or_default();
            Some(v.parse::<u32>().map_err(|_| {
                ctx.error_span(
                    *span,
                    ParseErrorKind::BadFlagValue {
                        flag: "retries".into(),
                        value: v.clone(),
                        expected: "a non-negative whole number".into(),
                    },
                )
            })?)
        }
    };
    Ok(Healthcheck::Cmd {
        command: command_of(command),
        interval: duration("interval")?,
        timeout: duration("timeout")?,
        start_period: duration("start-period")?,
        start_interval: duration("start-interval")?,
        retries,
    })
}

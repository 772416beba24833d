use super::*;

mod instructions;
mod run;
mod samples;

pub(super) fn p(src: &str) -> Containerfile {
    match parse("Containerfile", src) {
        Ok(cf) => cf,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

pub(super) fn err(src: &str) -> String {
    match parse("Containerfile", src) {
        Ok(cf) => panic!("expected an error, got {cf:#?}"),
        Err(e) => e.to_string(),
    }
}

/// The only instruction after a `FROM a` line.
pub(super) fn one(body: &str) -> Instruction {
    let cf = p(&format!("FROM a\n{body}"));
    assert_eq!(cf.stages[0].instructions.len(), 1, "{body}");
    cf.stages[0].instructions[0].clone()
}

pub(super) fn kind(body: &str) -> InstructionKind {
    one(body).kind
}

pub(super) fn run(body: &str) -> Run {
    match kind(body) {
        InstructionKind::Run(r) => r,
        other => panic!("not RUN: {other:?}"),
    }
}

pub(super) fn copy(body: &str) -> Copy {
    match kind(body) {
        InstructionKind::Copy(c) | InstructionKind::Add(c) => c,
        other => panic!("not COPY/ADD: {other:?}"),
    }
}

pub(super) fn kv(pairs: &[KeyValue]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect()
}

pub(super) fn shell(s: &str) -> Command {
    Command::Shell(s.to_string())
}

pub(super) fn exec(v: &[&str]) -> Command {
    Command::Exec(v.iter().map(|s| s.to_string()).collect())
}

// ---- directives ----

#[test]
fn directives_are_read_at_the_top() {
    let cf = p("# syntax=docker/dockerfile:1.7\n# escape=`\n#check=skip=all\nFROM a\n");
    assert_eq!(
        cf.directives.syntax.as_deref(),
        Some("docker/dockerfile:1.7")
    );
    assert_eq!(cf.directives.escape, '`');
    assert_eq!(cf.directives.check.as_deref(), Some("skip=all"));
    assert_eq!(p("#   ESCAPE = \\\nFROM a\n").directives.escape, '\\');
}

#[test]
fn directives_end_at_first_other_line() {
    // After a comment, blank line, unknown directive or instruction they are comments.
    for src in [
        "# hello\n# escape=`\nFROM a\n",
        "\n# escape=`\nFROM a\n",
        "# foo=bar\n# escape=`\nFROM a\n",
        "FROM a\n# escape=`\n",
    ] {
        assert_eq!(p(src).directives.escape, '\\', "{src:?}");
    }
}

#[test]
fn bad_directives() {
    assert_eq!(
        err("# escape=x\nFROM a\n"),
        "Containerfile:1:10: invalid escape directive \"x\": expected \\ or `"
    );
    assert_eq!(
        err("# escape=`\n# escape=\\\nFROM a\n"),
        "Containerfile:2:1: the escape parser directive may be given only once"
    );
}

#[test]
fn backtick_escape_continues_lines_and_keeps_backslashes() {
    let cf = p("# escape=`\nFROM a\nRUN dir C:\\ `\n  && echo hi\nCOPY a\\b C:\\dest\\\n");
    let ins = &cf.stages[0].instructions;
    assert_eq!(
        ins[0].kind,
        InstructionKind::Run(Run {
            command: shell("dir C:\\   && echo hi"),
            mounts: vec![],
            network: None,
            security: None,
            heredocs: vec![],
        })
    );
    let InstructionKind::Copy(c) = &ins[1].kind else {
        panic!()
    };
    assert_eq!(c.sources, [CopySource::Path("a\\b".into())]);
    assert_eq!(c.dest, "C:\\dest\\");
}

// ---- comments, continuations, keywords ----

#[test]
fn comments_blank_lines_and_continuations() {
    let src = "\
# leading comment
FROM alpine

   # indented comment
RUN apk add \\
    curl \\
# a comment inside the continuation
\\
    git \\

    make
run echo done   \\   \t
";
    let cf = p(src);
    let ins = &cf.stages[0].instructions;
    assert_eq!(ins.len(), 2);
    assert_eq!(
        run_of(&ins[0]).command,
        shell("apk add     curl     git     make")
    );
    assert_eq!(
        ins[0].span,
        Span {
            line: 5,
            col: 1,
            len: 3
        }
    );
    assert_eq!(run_of(&ins[1]).command, shell("echo done"));
    assert_eq!(ins[1].span.line, 12);
}

pub(super) fn run_of(i: &Instruction) -> &Run {
    match &i.kind {
        InstructionKind::Run(r) => r,
        other => panic!("not RUN: {other:?}"),
    }
}

#[test]
fn a_hash_in_the_middle_of_a_line_is_not_a_comment() {
    assert_eq!(run("RUN echo a # b\n").command, shell("echo a # b"));
}

#[test]
fn keywords_are_case_insensitive_and_indentation_is_allowed() {
    let cf = p("from a AS Build\n  rUn true\n\tCopy x y\n");
    assert_eq!(cf.stages[0].name.as_deref(), Some("build"));
    assert_eq!(
        cf.stages[0].instructions[0].span,
        Span {
            line: 2,
            col: 3,
            len: 3
        }
    );
    assert_eq!(
        cf.stages[0].instructions[1].span,
        Span {
            line: 3,
            col: 2,
            len: 4
        }
    );
    assert_eq!(cf.stages[0].instructions[0].text, "rUn true");
}

#[test]
fn crlf_and_bom() {
    let cf = p("\u{feff}FROM a\r\nRUN x \\\r\n  y\r\n");
    assert_eq!(
        run_of(&cf.stages[0].instructions[0]).command,
        shell("x   y")
    );
}

// ---- FROM ----

#[test]
fn from_forms() {
    let cf = p(
        "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\nFROM scratch\nFROM build as final\n",
    );
    assert_eq!(cf.stages.len(), 3);
    assert_eq!(
        cf.stages[0].from,
        From {
            image: "golang:1.22".into(),
            platform: Some("$BUILDPLATFORM".into()),
            alias: Some("build".into()),
        }
    );
    assert_eq!(cf.stages[1].from.image, "scratch");
    assert_eq!(cf.stages[1].name, None);
    assert_eq!(cf.stages[2].from.image, "build");
    assert_eq!(cf.stages[2].index, 2);
    assert_eq!(cf.stage("BUILD").map(|s| s.index), Some(0));
    assert_eq!(cf.stage("1").map(|s| s.index), Some(1));
    assert_eq!(cf.stage("3"), None);
    assert_eq!(cf.last_stage().index, 2);
    assert_eq!(
        cf.stages[0].text,
        "FROM --platform=$BUILDPLATFORM golang:1.22 AS build"
    );
}

#[test]
fn from_errors() {
    assert_eq!(
        err("FROM\n"),
        "Containerfile:1:1: FROM requires an image name (or scratch)"
    );
    assert_eq!(
        err("FROM a b\n"),
        "Containerfile:1:8: unexpected \"b\": FROM takes an image and optionally AS <name>"
    );
    assert_eq!(
        err("FROM a AS\n"),
        "Containerfile:1:8: unexpected \"AS\": FROM takes an image and optionally AS <name>"
    );
    assert_eq!(
        err("FROM a AS b c\n"),
        "Containerfile:1:13: unexpected \"c\": FROM takes an image and optionally AS <name>"
    );
    assert_eq!(
        err("FROM a AS 1st\n"),
        "Containerfile:1:11: invalid stage name \"1st\": expected a letter followed by letters, digits, '-', '_' or '.'"
    );
    assert_eq!(
        err("FROM a AS x\nFROM b AS X\n"),
        "Containerfile:2:1: duplicate stage name \"x\": already used on line 1"
    );
    assert_eq!(
        err("FROM --plat=x a\n"),
        "Containerfile:1:6: unknown flag --plat for FROM"
    );
}

// ---- file-level errors ----

#[test]
fn file_level_errors() {
    assert_eq!(
        err(""),
        "Containerfile:1:1: the file contains no instructions: expected at least a FROM line"
    );
    assert_eq!(
        err("# just a comment\n\n"),
        "Containerfile:1:1: the file contains no instructions: expected at least a FROM line"
    );
    assert_eq!(
        err("ARG A=1\n"),
        "Containerfile:1:1: no FROM instruction: a build needs at least one stage"
    );
    assert_eq!(
        err("ARG A\n\n  RUN true\nFROM a\n"),
        "Containerfile:3:3: RUN before the first FROM: only ARG may come before FROM"
    );
}

#[test]
fn unknown_instructions() {
    assert_eq!(
        err("FROM a\n\n\n\n\n\nRUNN true\n"),
        "Containerfile:7:1: unknown instruction \"RUNN\" (did you mean RUN?)"
    );
    assert_eq!(
        err("FROM a\n  workdri /x\n"),
        "Containerfile:2:3: unknown instruction \"workdri\" (did you mean WORKDIR?)"
    );
    assert_eq!(
        err("FROM a\nfrobnicate x\n"),
        "Containerfile:2:1: unknown instruction \"frobnicate\""
    );
    let e = parse("Containerfile", "FROM a\nCOPPY a b\n").unwrap_err();
    assert_eq!(
        e.kind,
        ParseErrorKind::UnknownInstruction {
            word: "COPPY".into(),
            suggestion: Some("COPY")
        }
    );
    assert_eq!((e.line, e.col, e.len), (2, 1, 5));
}

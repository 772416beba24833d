use std::time::Duration;

use super::*;

// ---- COPY / ADD ----

#[test]
fn copy_forms_and_flags() {
    let c = copy(
        "COPY --from=build --chown=1000:1000 --chmod=0644 --link --exclude=*.md --exclude=tmp/ a b/ c* /dst/\n",
    );
    assert_eq!(
        c,
        Copy {
            sources: ["a", "b/", "c*"]
                .map(|s| CopySource::Path(s.into()))
                .to_vec(),
            dest: "/dst/".into(),
            from: Some("build".into()),
            chown: Some("1000:1000".into()),
            chmod: Some("0644".into()),
            link: true,
            excludes: vec!["*.md".into(), "tmp/".into()],
            checksum: None,
            keep_git_dir: false,
            unpack: None,
            json_form: false,
        }
    );
    let c = copy("COPY [\"my file\", \"other\", \"/dest dir/\"]\n");
    assert!(c.json_form);
    assert_eq!(c.sources[0], CopySource::Path("my file".into()));
    assert_eq!(c.dest, "/dest dir/");
    assert!(!copy("COPY --link=false a b\n").link);
    assert!(copy("COPY --link=true a b\n").link);
}

#[test]
fn add_flags() {
    let c =
        copy("ADD --checksum=sha256:abc --keep-git-dir --unpack=false https://x/y.tar.gz /opt/\n");
    assert_eq!(c.checksum.as_deref(), Some("sha256:abc"));
    assert!(c.keep_git_dir);
    assert_eq!(c.unpack, Some(false));
    assert_eq!(c.sources, [CopySource::Path("https://x/y.tar.gz".into())]);
    assert!(matches!(kind("ADD a b\n"), InstructionKind::Add(_)));
}

#[test]
fn copy_errors() {
    assert_eq!(
        err("FROM a\nCOPY --foo a b\n"),
        "Containerfile:2:6: unknown flag --foo for COPY"
    );
    assert_eq!(
        err("FROM a\nCOPY --checksum=sha256:x a b\n"),
        "Containerfile:2:6: unknown flag --checksum for COPY"
    );
    assert_eq!(
        err("FROM a\nADD --from=x a b\n"),
        "Containerfile:2:5: unknown flag --from for ADD"
    );
    assert_eq!(
        err("FROM a\nCOPY --link=yes a b\n"),
        "Containerfile:2:6: invalid value \"yes\" for --link: expected true or false"
    );
    assert_eq!(
        err("FROM a\nCOPY --from= a b\n"),
        "Containerfile:2:6: flag --from needs a value: expected --from=VALUE"
    );
    assert_eq!(
        err("FROM a\nCOPY\n"),
        "Containerfile:2:1: COPY requires a source and a destination"
    );
    assert_eq!(
        err("FROM a\nCOPY   onlyone\n"),
        "Containerfile:2:8: COPY requires at least one source and a destination, found only \"onlyone\""
    );
    assert_eq!(
        err("FROM a\nADD [\"x\"]\n"),
        "Containerfile:2:5: ADD requires at least one source and a destination, found only \"x\""
    );
}

// ---- ENV / LABEL / ARG ----

#[test]
fn env_forms() {
    let InstructionKind::Env(pairs) = kind("ENV A=1 B=\"two words\" C='$lit' D=a\\ b E=\n") else {
        panic!()
    };
    assert_eq!(
        kv(&pairs),
        [
            ("A", "1"),
            ("B", "\"two words\""),
            ("C", "'$lit'"),
            ("D", "a\\ b"),
            ("E", "")
        ]
    );
    assert_eq!(
        pairs[1].span,
        Span {
            line: 2,
            col: 9,
            len: 13
        }
    );
    let InstructionKind::Env(pairs) = kind("ENV PATH /usr/local/bin:$PATH   and more\n") else {
        panic!()
    };
    assert_eq!(kv(&pairs), [("PATH", "/usr/local/bin:$PATH   and more")]);
    let InstructionKind::Env(pairs) = kind("ENV A=1 \\\n    B=2\n") else {
        panic!()
    };
    assert_eq!(kv(&pairs), [("A", "1"), ("B", "2")]);
    assert_eq!(
        pairs[1].span,
        Span {
            line: 3,
            col: 5,
            len: 3
        }
    );
}

#[test]
fn env_errors() {
    assert_eq!(
        err("FROM a\nENV\n"),
        "Containerfile:2:1: ENV requires at least one KEY=VALUE pair"
    );
    assert_eq!(
        err("FROM a\nENV ONLY\n"),
        "Containerfile:2:5: ENV ONLY has no value: expected ENV KEY=VALUE or ENV KEY VALUE"
    );
    assert_eq!(
        err("FROM a\nENV A=1 B\n"),
        "Containerfile:2:9: expected KEY=VALUE, found \"B\" (quote values that contain spaces)"
    );
    assert_eq!(
        err("FROM a\nENV =x\n"),
        "Containerfile:2:5: ENV name cannot be empty in \"=x\""
    );
}

#[test]
fn label_forms() {
    let InstructionKind::Label(pairs) =
        kind("LABEL org.opencontainers.image.title=\"ags agent\" \"quoted key\"=v version=1.0\n")
    else {
        panic!()
    };
    assert_eq!(
        kv(&pairs),
        [
            ("org.opencontainers.image.title", "\"ags agent\""),
            ("\"quoted key\"", "v"),
            ("version", "1.0")
        ]
    );
    let InstructionKind::Label(pairs) = kind("LABEL description some text\n") else {
        panic!()
    };
    assert_eq!(kv(&pairs), [("description", "some text")]);
}

#[test]
fn arg_forms() {
    let cf = p("ARG A\nARG B=1 C=\"x y\" D=\nFROM a\nARG E=$B\n");
    let globals: Vec<(&str, Option<&str>)> = cf
        .global_args
        .iter()
        .map(|a| (a.name.as_str(), a.default.as_deref()))
        .collect();
    assert_eq!(
        globals,
        [
            ("A", None),
            ("B", Some("1")),
            ("C", Some("\"x y\"")),
            ("D", Some(""))
        ]
    );
    assert_eq!(
        cf.global_args[2].span,
        Span {
            line: 2,
            col: 9,
            len: 7
        }
    );
    let InstructionKind::Arg(decls) = &cf.stages[0].instructions[0].kind else {
        panic!()
    };
    assert_eq!(decls[0].default.as_deref(), Some("$B"));
    assert_eq!(
        err("FROM a\nARG\n"),
        "Containerfile:2:1: ARG requires a name, e.g. ARG NAME or ARG NAME=default"
    );
    assert_eq!(
        err("FROM a\nARG =1\n"),
        "Containerfile:2:5: ARG name cannot be empty in \"=1\""
    );
}

// ---- single-argument instructions ----

#[test]
fn workdir_user_stopsignal_maintainer() {
    assert_eq!(
        kind("WORKDIR /home/$USER/my dir\n"),
        InstructionKind::Workdir("/home/$USER/my dir".into())
    );
    assert_eq!(
        kind("USER 1000:1000\n"),
        InstructionKind::User("1000:1000".into())
    );
    assert_eq!(
        kind("STOPSIGNAL SIGTERM\n"),
        InstructionKind::StopSignal("SIGTERM".into())
    );
    assert_eq!(
        kind("MAINTAINER Jane <j@x.org>\n"),
        InstructionKind::Maintainer("Jane <j@x.org>".into())
    );
    assert_eq!(
        err("FROM a\nWORKDIR\n"),
        "Containerfile:2:1: WORKDIR requires a path"
    );
    assert_eq!(
        err("FROM a\nUSER\n"),
        "Containerfile:2:1: USER requires a user name or id"
    );
    assert_eq!(
        err("FROM a\nUSER a b c\n"),
        "Containerfile:2:8: USER takes exactly one argument: a user name or id"
    );
    assert_eq!(
        err("FROM a\nSTOPSIGNAL\n"),
        "Containerfile:2:1: STOPSIGNAL requires a signal name or number"
    );
    assert_eq!(
        err("FROM a\nMAINTAINER\n"),
        "Containerfile:2:1: MAINTAINER requires a name"
    );
    assert_eq!(
        err("FROM a\nWORKDIR --x /a\n"),
        "Containerfile:2:9: unknown flag --x for WORKDIR"
    );
}

// ---- CMD / ENTRYPOINT / SHELL ----

#[test]
fn cmd_entrypoint_shell() {
    assert_eq!(
        kind("CMD [\"bash\", \"-l\"]\n"),
        InstructionKind::Cmd(exec(&["bash", "-l"]))
    );
    assert_eq!(
        kind("CMD echo $HOME\n"),
        InstructionKind::Cmd(shell("echo $HOME"))
    );
    assert_eq!(
        kind("ENTRYPOINT []\n"),
        InstructionKind::Entrypoint(exec(&[]))
    );
    assert_eq!(
        kind("ENTRYPOINT exec top -b\n"),
        InstructionKind::Entrypoint(shell("exec top -b"))
    );
    assert_eq!(
        kind("SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n"),
        InstructionKind::Shell(vec![
            "/bin/bash".into(),
            "-o".into(),
            "pipefail".into(),
            "-c".into()
        ])
    );
    assert_eq!(
        err("FROM a\nCMD\n"),
        "Containerfile:2:1: CMD requires a command"
    );
    assert_eq!(
        err("FROM a\nENTRYPOINT\n"),
        "Containerfile:2:1: ENTRYPOINT requires a command"
    );
    assert_eq!(
        err("FROM a\nSHELL /bin/bash -c\n"),
        "Containerfile:2:7: SHELL requires the arguments in JSON form, e.g. [\"/bin/bash\", \"-c\"]"
    );
    assert_eq!(
        err("FROM a\nSHELL []\n"),
        "Containerfile:2:7: SHELL requires a non-empty JSON array"
    );
    assert_eq!(
        err("FROM a\nSHELL\n"),
        "Containerfile:2:1: SHELL requires a JSON array such as [\"/bin/sh\", \"-c\"]"
    );
    assert_eq!(shell("a b").to_string(), "a b");
    assert_eq!(exec(&["a", "b\"c"]).to_string(), r#"["a","b\"c"]"#);
}

// ---- EXPOSE / VOLUME ----

#[test]
fn expose_and_volume() {
    assert_eq!(
        kind("EXPOSE 80 443/tcp 53/udp $PORT\n"),
        InstructionKind::Expose(vec![
            "80".into(),
            "443/tcp".into(),
            "53/udp".into(),
            "$PORT".into()
        ])
    );
    assert_eq!(
        kind("VOLUME /data /cache\n"),
        InstructionKind::Volume(vec!["/data".into(), "/cache".into()])
    );
    assert_eq!(
        kind("VOLUME [\"/my data\"]\n"),
        InstructionKind::Volume(vec!["/my data".into()])
    );
    assert_eq!(
        err("FROM a\nEXPOSE\n"),
        "Containerfile:2:1: EXPOSE requires at least one port"
    );
    assert_eq!(
        err("FROM a\nVOLUME\n"),
        "Containerfile:2:1: VOLUME requires at least one path"
    );
    assert_eq!(
        err("FROM a\nVOLUME []\n"),
        "Containerfile:2:1: VOLUME requires at least one path"
    );
    assert_eq!(
        err("FROM a\nVOLUME [\"\"]\n"),
        "Containerfile:2:8: VOLUME paths cannot be empty strings"
    );
}

// ---- HEALTHCHECK ----

#[test]
fn healthcheck_forms() {
    assert_eq!(
        kind("HEALTHCHECK NONE\n"),
        InstructionKind::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        kind(
            "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=0 --start-interval=2s --retries=3 \\\n  CMD curl -f http://localhost/ || exit 1\n"
        ),
        InstructionKind::Healthcheck(Healthcheck::Cmd {
            command: shell("curl -f http://localhost/ || exit 1"),
            interval: Some(Duration::from_secs(90)),
            timeout: Some(Duration::from_millis(500)),
            start_period: Some(Duration::ZERO),
            start_interval: Some(Duration::from_secs(2)),
            retries: Some(3),
        })
    );
    assert_eq!(
        kind("HEALTHCHECK cmd [\"/bin/check\"]\n"),
        InstructionKind::Healthcheck(Healthcheck::Cmd {
            command: exec(&["/bin/check"]),
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        })
    );
}

#[test]
fn healthcheck_errors() {
    assert_eq!(
        err("FROM a\nHEALTHCHECK\n"),
        "Containerfile:2:1: HEALTHCHECK requires CMD <command> or NONE"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK CMD\n"),
        "Containerfile:2:1: HEALTHCHECK requires a command after CMD"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK RUN x\n"),
        "Containerfile:2:13: unknown HEALTHCHECK type \"RUN\": expected CMD or NONE"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK NONE x\n"),
        "Containerfile:2:13: HEALTHCHECK NONE takes no flags or arguments"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK --interval=5 CMD x\n"),
        "Containerfile:2:13: invalid value \"5\" for --interval: expected a duration such as 30s, 1m30s or 500ms"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK --timeout=10ns CMD x\n"),
        "Containerfile:2:13: invalid value \"10ns\" for --timeout: expected 0 or at least 1ms"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK --retries=-1 CMD x\n"),
        "Containerfile:2:13: invalid value \"-1\" for --retries: expected a non-negative whole number"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK --every=1s CMD x\n"),
        "Containerfile:2:13: unknown flag --every for HEALTHCHECK"
    );
}

#[test]
fn go_durations() {
    use crate::parser::words::parse_go_duration as d;
    assert_eq!(d("1h2m3s"), Some(Duration::from_secs(3723)));
    assert_eq!(d("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(d("250us"), Some(Duration::from_micros(250)));
    assert_eq!(d("0"), Some(Duration::ZERO));
    for bad in ["", "5", "1x", "s", "-1s", "1.2.3s"] {
        assert_eq!(d(bad), None, "{bad}");
    }
}

// ---- ONBUILD ----

#[test]
fn onbuild() {
    let i = one("ONBUILD   COPY . /app/src\n");
    let InstructionKind::Onbuild(inner) = i.kind else {
        panic!()
    };
    assert_eq!(
        inner.span,
        Span {
            line: 2,
            col: 11,
            len: 4
        }
    );
    assert_eq!(inner.text, "COPY . /app/src");
    assert!(matches!(inner.kind, InstructionKind::Copy(_)));
    let InstructionKind::Onbuild(inner) = kind("onbuild run make\n") else {
        panic!()
    };
    assert_eq!(inner.kind.keyword(), "RUN");
    for (word, col) in [("ONBUILD", 9), ("FROM", 9), ("maintainer", 9)] {
        assert_eq!(
            err(&format!("FROM a\nONBUILD {word} x\n")),
            format!(
                "Containerfile:2:{col}: ONBUILD cannot wrap {}",
                word.to_uppercase()
            )
        );
    }
    assert_eq!(
        err("FROM a\nONBUILD\n"),
        "Containerfile:2:1: ONBUILD requires an instruction to wrap"
    );
    assert_eq!(
        err("FROM a\nONBUILD RUNN x\n"),
        "Containerfile:2:9: unknown instruction \"RUNN\" (did you mean RUN?)"
    );
    assert_eq!(
        err("FROM a\nONBUILD COPY --bad a b\n"),
        "Containerfile:2:14: unknown flag --bad for COPY"
    );
}

#[test]
fn error_kind_and_position_are_structured() {
    let e = parse("Dockerfile", "FROM a\nCOPY --chown a b\n").unwrap_err();
    assert_eq!(e.file, "Dockerfile");
    assert_eq!((e.line, e.col, e.len), (2, 6, 7));
    assert_eq!(e.kind, ParseErrorKind::FlagNeedsValue("chown".into()));
}

#[test]
fn flag_errors_on_continued_lines_point_at_the_right_line() {
    assert_eq!(
        err("FROM a\nCOPY --link \\\n     --nope=1 \\\n     a b\n"),
        "Containerfile:3:6: unknown flag --nope for COPY"
    );
}

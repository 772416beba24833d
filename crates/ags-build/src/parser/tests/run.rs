use super::*;

// ---- RUN ----

#[test]
fn run_shell_and_exec_forms() {
    assert_eq!(run("RUN echo hi\n").command, shell("echo hi"));
    assert_eq!(
        run(r#"RUN ["/bin/sh", "-c", "echo \"hi\" \u0041"]"#).command,
        exec(&["/bin/sh", "-c", "echo \"hi\" A"])
    );
    // A malformed JSON array is shell form, as in Docker.
    assert_eq!(run("RUN [not, json]\n").command, shell("[not, json]"));
    assert_eq!(run("RUN [\"a\", 1]\n").command, shell("[\"a\", 1]"));
    assert_eq!(
        err("FROM a\nRUN\n"),
        "Containerfile:2:1: RUN requires a command"
    );
    assert_eq!(
        err("FROM a\nRUN --network=none\n"),
        "Containerfile:2:1: RUN requires a command"
    );
}

#[test]
fn run_mounts() {
    let r = run(
        "RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked \\\n    --mount=type=bind,source=.,target=/src,rw \\\n    --mount=type=secret,id=tok,required,env=TOKEN --mount=type=tmpfs,target=/tmp,size=64m \\\n    --mount=target=/ctx --mount=type=ssh --mount=type=cache,target=/c,from=build,source=/x,mode=0700,uid=1000,gid=1000,ro pip install\n",
    );
    assert_eq!(r.command, shell("pip install"));
    assert_eq!(r.mounts.len(), 7);
    let m = &r.mounts[0];
    assert_eq!(m.kind, MountType::Cache);
    assert_eq!(m.target.as_deref(), Some("/root/.cache"));
    assert_eq!(m.id.as_deref(), Some("pip"));
    assert_eq!(m.sharing, CacheSharing::Locked);
    assert_eq!(
        m.span,
        Span {
            line: 2,
            col: 5,
            len: 60
        }
    );
    let m = &r.mounts[1];
    assert_eq!((m.kind, m.readonly), (MountType::Bind, Some(false)));
    assert_eq!(m.source.as_deref(), Some("."));
    assert_eq!(m.span.line, 3);
    let m = &r.mounts[2];
    assert_eq!(m.kind, MountType::Secret);
    assert!(m.required);
    assert_eq!(m.env.as_deref(), Some("TOKEN"));
    assert_eq!(r.mounts[3].kind, MountType::Tmpfs);
    assert_eq!(r.mounts[3].size.as_deref(), Some("64m"));
    assert_eq!(
        r.mounts[4].kind,
        MountType::Bind,
        "bind is the default type"
    );
    assert_eq!(r.mounts[5].kind, MountType::Ssh);
    let m = &r.mounts[6];
    assert_eq!(m.from.as_deref(), Some("build"));
    assert_eq!(m.mode_bits(), Some(0o700));
    assert_eq!(
        (m.uid.as_deref(), m.gid.as_deref()),
        (Some("1000"), Some("1000"))
    );
    assert_eq!(m.readonly, Some(true));
}

#[test]
fn run_mount_quoting_and_variables() {
    let r = run("RUN --mount='type=cache,\"target=/a,b\",id=$ID' true\n");
    assert_eq!(r.mounts[0].target.as_deref(), Some("/a,b"));
    assert_eq!(r.mounts[0].id.as_deref(), Some("$ID"));
    let r = run("RUN --mount=type=cache,target=$HOME/.cache,uid=$UID true\n");
    assert_eq!(r.mounts[0].uid.as_deref(), Some("$UID"));
}

#[test]
fn run_mount_errors() {
    let cases = [
        (
            "type=nfs,target=/x",
            "unknown mount type \"nfs\": expected bind, cache, secret, ssh or tmpfs",
        ),
        ("type=cache", "type=cache needs a target=PATH"),
        ("type=cache,target=/x,bogus=1", "unknown key \"bogus\""),
        (
            "type=cache,target=/x,sharing=weird",
            "sharing=\"weird\": expected shared, private or locked",
        ),
        (
            "type=bind,target=/x,sharing=locked",
            "sharing is not valid for type=bind",
        ),
        (
            "type=tmpfs,target=/x,from=a",
            "from is not valid for type=tmpfs",
        ),
        (
            "type=cache,target=/x,mode=999",
            "mode=\"999\": expected an octal number such as 0755",
        ),
        (
            "type=cache,target=/x,uid=bob",
            "uid=\"bob\": expected a number",
        ),
        (
            "type=bind,target=/x,ro=maybe",
            "ro=\"maybe\": expected true or false",
        ),
        (
            "type=secret",
            "type=secret needs an id=, a target= or an env=",
        ),
        ("type=cache,target", "target needs a value: target=..."),
        ("'type=cache,\"target=/x'", "unterminated double quote"),
    ];
    for (value, message) in cases {
        assert_eq!(
            err(&format!("FROM a\nRUN --mount={value} true\n")),
            format!("Containerfile:2:5: invalid --mount: {message}"),
        );
    }
}

#[test]
fn run_network_and_security() {
    let r = run("RUN --network=none --security=insecure true\n");
    assert_eq!(r.network, Some(NetworkMode::None));
    assert_eq!(r.security.as_deref(), Some("insecure"));
    assert_eq!(
        run("RUN --network=host x\n").network,
        Some(NetworkMode::Host)
    );
    assert_eq!(
        run("RUN --network=default x\n").network,
        Some(NetworkMode::Default)
    );
    assert_eq!(
        err("FROM a\nRUN --network=bridge x\n"),
        "Containerfile:2:5: invalid value \"bridge\" for --network: expected default, none or host"
    );
    assert_eq!(
        err("FROM a\nRUN --security=x y\n"),
        "Containerfile:2:5: invalid value \"x\" for --security: expected sandbox or insecure"
    );
    assert_eq!(
        err("FROM a\nRUN --network=none --network=host x\n"),
        "Containerfile:2:20: flag --network given more than once"
    );
    assert_eq!(
        err("FROM a\nRUN --network x\n"),
        "Containerfile:2:5: flag --network needs a value: expected --network=VALUE"
    );
    assert_eq!(
        err("FROM a\nRUN --foo=1 x\n"),
        "Containerfile:2:5: unknown flag --foo for RUN"
    );
}

// ---- heredocs ----

#[test]
fn run_heredoc_script() {
    let cf = p("FROM a\nRUN <<EOF\nset -e\n  echo $HOME\nEOF\nUSER x\n");
    let ins = &cf.stages[0].instructions;
    assert_eq!(ins.len(), 2);
    let r = run_of(&ins[0]);
    assert_eq!(r.command, shell("<<EOF"));
    assert_eq!(
        r.heredocs,
        [Heredoc {
            delimiter: "EOF".into(),
            content: "set -e\n  echo $HOME\n".into(),
            expand: true,
            strip_tabs: false,
            fd: 0,
            span: Span {
                line: 2,
                col: 5,
                len: 5
            },
        }]
    );
    assert_eq!(r.shell_script().as_deref(), Some("set -e\n  echo $HOME\n"));
    assert_eq!(ins[1].span.line, 6);
    assert_eq!(ins[0].text, "RUN <<EOF");
}

#[test]
fn run_heredoc_tab_stripping_quotes_and_several() {
    let r = run("RUN <<-'ONE' 3<<\"TWO\" cat /dev/fd/3 -\n\t\tfirst $X\n\tONE\nsecond\nTWO\n");
    assert_eq!(r.heredocs.len(), 2);
    assert_eq!(r.heredocs[0].content, "first $X\n");
    assert!(r.heredocs[0].strip_tabs && !r.heredocs[0].expand);
    assert_eq!(r.heredocs[1].content, "second\n");
    assert_eq!(r.heredocs[1].fd, 3);
    assert!(!r.heredocs[1].expand);
    assert_eq!(
        r.shell_script().as_deref(),
        Some("<<-'ONE' 3<<\"TWO\" cat /dev/fd/3 -\nfirst $X\nONE\nsecond\nTWO\n")
    );
}

#[test]
fn run_heredoc_as_stdin_with_flags_and_continuation() {
    let r = run(
        "RUN --mount=type=cache,target=/c \\\n  python3 <<PY\nprint('# not a comment')\n\nPY\n",
    );
    assert_eq!(r.mounts.len(), 1);
    assert_eq!(r.command, shell("python3 <<PY"));
    assert_eq!(r.heredocs[0].content, "print('# not a comment')\n\n");
    assert_eq!(
        r.heredocs[0].span,
        Span {
            line: 3,
            col: 11,
            len: 4
        }
    );
}

#[test]
fn heredoc_terminator_must_match_exactly() {
    let r = run("RUN <<EOF\n EOF\nEOF \nEOF\n");
    assert_eq!(r.heredocs[0].content, " EOF\nEOF \n");
}

#[test]
fn heredoc_in_exec_form_or_other_instructions_is_literal() {
    assert_eq!(run("RUN [\"echo\", \"<<EOF\"]\n").heredocs, []);
    assert_eq!(
        kind("CMD cat <<EOF\n"),
        InstructionKind::Cmd(shell("cat <<EOF"))
    );
    assert_eq!(run("RUN echo a<<b\n").heredocs, []);
    assert_eq!(run("RUN echo '<<EOF'\n").heredocs, []);
}

#[test]
fn unterminated_heredoc() {
    assert_eq!(
        err("FROM a\nRUN cat <<END\nline\n"),
        "Containerfile:2:9: unterminated heredoc: no line \"END\" closes the <<END started on line 2"
    );
    assert_eq!(
        err("FROM a\nRUN <<A <<B\nx\nA\ny\n"),
        "Containerfile:2:9: unterminated heredoc: no line \"B\" closes the <<B started on line 2"
    );
}

#[test]
fn copy_heredocs() {
    let c = copy(
        "COPY --chmod=755 <<EOF <<-\"TWO\" /usr/local/bin/\n#!/bin/sh\necho $X\nEOF\n\tb\n\tTWO\n",
    );
    assert_eq!(c.dest, "/usr/local/bin/");
    assert_eq!(c.chmod.as_deref(), Some("755"));
    let [CopySource::Heredoc(a), CopySource::Heredoc(b)] = c.sources.as_slice() else {
        panic!("{:?}", c.sources)
    };
    assert_eq!(a.content, "#!/bin/sh\necho $X\n");
    assert!(a.expand);
    assert_eq!(b.content, "b\n");
    assert!(!b.expand);
    let c = copy("ADD <<EOF file.txt /dest\nhi\nEOF\n");
    assert_eq!(c.sources.len(), 2);
    assert_eq!(c.sources[1], CopySource::Path("file.txt".into()));
    assert_eq!(
        err("FROM a\nCOPY <<EOF\nx\nEOF\n"),
        "Containerfile:2:1: COPY requires a destination after the heredoc"
    );
}

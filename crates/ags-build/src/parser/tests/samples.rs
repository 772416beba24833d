use super::*;

// ---- realistic files ----

#[test]
fn realistic_multi_stage() {
    let src = r#"# syntax=docker/dockerfile:1.7
ARG RUST_VERSION=1.85
ARG DEBIAN=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-slim-${DEBIAN} AS build
ARG RUST_VERSION
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates/ crates/
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,id=target-${RUST_VERSION} \
    cargo build --release --locked && \
    cp target/release/ags /usr/local/bin/ags

FROM debian:${DEBIAN}-slim AS runtime
LABEL org.opencontainers.image.source="https://example.invalid/ags" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV LANG=C.UTF-8 \
    PATH=/usr/local/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build --chmod=0755 /usr/local/bin/ags /usr/local/bin/ags
RUN useradd --create-home --uid 1000 agent
USER agent
WORKDIR /home/agent
EXPOSE 8080/tcp
VOLUME ["/home/agent/work"]
HEALTHCHECK --interval=30s CMD ["ags", "--version"]
STOPSIGNAL SIGINT
ENTRYPOINT ["ags"]
CMD ["--help"]
"#;
    let cf = p(src);
    assert_eq!(
        cf.directives.syntax.as_deref(),
        Some("docker/dockerfile:1.7")
    );
    assert_eq!(cf.global_args.len(), 2);
    assert_eq!(cf.stages.len(), 2);
    let build = &cf.stages[0];
    assert_eq!(build.name.as_deref(), Some("build"));
    assert_eq!(
        build.from.image,
        "docker.io/library/rust:${RUST_VERSION}-slim-${DEBIAN}"
    );
    assert_eq!(build.span.line, 5);
    let keywords: Vec<&str> = build
        .instructions
        .iter()
        .map(|i| i.kind.keyword())
        .collect();
    assert_eq!(keywords, ["ARG", "WORKDIR", "COPY", "COPY", "RUN"]);
    let r = run_of(&build.instructions[4]);
    assert_eq!(r.mounts.len(), 2);
    assert_eq!(r.mounts[1].id.as_deref(), Some("target-${RUST_VERSION}"));
    assert_eq!(
        r.command,
        shell("cargo build --release --locked &&     cp target/release/ags /usr/local/bin/ags")
    );
    let runtime = &cf.stages[1];
    let keywords: Vec<&str> = runtime
        .instructions
        .iter()
        .map(|i| i.kind.keyword())
        .collect();
    assert_eq!(
        keywords,
        [
            "LABEL",
            "ENV",
            "RUN",
            "COPY",
            "RUN",
            "USER",
            "WORKDIR",
            "EXPOSE",
            "VOLUME",
            "HEALTHCHECK",
            "STOPSIGNAL",
            "ENTRYPOINT",
            "CMD"
        ]
    );
    assert_eq!(runtime.instructions[0].span.line, 16);
    assert_eq!(runtime.instructions[2].span.line, 20);
    assert_eq!(runtime.instructions[3].span.line, 23);
    let InstructionKind::Copy(c) = &runtime.instructions[3].kind else {
        panic!()
    };
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(runtime.instructions.last().map(|i| i.span.line), Some(32));
}

/// Shaped like `containerfiles/agent.Containerfile` (the default agent image), which is
/// written elsewhere; this keeps the parser honest about the constructs it uses.
#[test]
fn agent_containerfile_sample() {
    let src = r#"# syntax=docker/dockerfile:1
# The default ags agent image: a Debian base with the agents' runtimes and tools.
ARG DEBIAN_RELEASE=bookworm
ARG NODE_MAJOR=22

FROM docker.io/library/debian:${DEBIAN_RELEASE}-slim AS base
ARG DEBIAN_FRONTEND=noninteractive
ARG NODE_MAJOR
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
        bash ca-certificates curl git jq less openssh-client procps \
        python3 python3-venv ripgrep sudo tini unzip xz-utils \
        # build tools for native node modules
        build-essential \
 && curl -fsSL "https://deb.nodesource.com/setup_${NODE_MAJOR}.x" | bash - \
 && apt-get install -y nodejs

FROM base AS agents
ENV NPM_CONFIG_PREFIX=/usr/local \
    NPM_CONFIG_UPDATE_NOTIFIER=false
RUN --mount=type=cache,target=/root/.npm \
    npm install -g @openai/codex @anthropic-ai/claude-code @google/gemini-cli opencode-ai

FROM agents
COPY <<EOF /etc/profile.d/ags.sh
export PS1='[ags] \w\$ '
export PATH="/home/agent/.local/bin:\$PATH"
EOF
RUN <<-EOS
	set -eu
	useradd --create-home --shell /bin/bash --uid 1000 agent
	echo 'agent ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/agent
EOS
LABEL org.opencontainers.image.title="ags agent" \
      org.opencontainers.image.description="Default image for ags sandboxes"
USER agent
WORKDIR /home/agent
ENV HOME=/home/agent LANG=C.UTF-8
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["bash", "-l"]
"#;
    let cf = p(src);
    assert_eq!(cf.stages.len(), 3);
    assert_eq!(
        cf.global_args
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["DEBIAN_RELEASE", "NODE_MAJOR"]
    );
    let base = &cf.stages[0];
    let r = run_of(&base.instructions[3]);
    assert_eq!(r.mounts.len(), 2);
    let Command::Shell(cmd) = &r.command else {
        panic!()
    };
    assert!(
        cmd.contains("unzip xz-utils         build-essential"),
        "{cmd}"
    );
    assert!(!cmd.contains("native node modules"));
    let last = &cf.stages[2];
    let InstructionKind::Copy(c) = &last.instructions[0].kind else {
        panic!()
    };
    let [CopySource::Heredoc(doc)] = c.sources.as_slice() else {
        panic!()
    };
    assert_eq!(c.dest, "/etc/profile.d/ags.sh");
    assert_eq!(
        doc.content,
        "export PS1='[ags] \\w\\$ '\nexport PATH=\"/home/agent/.local/bin:\\$PATH\"\n"
    );
    let r = run_of(&last.instructions[1]);
    assert_eq!(
        r.shell_script().as_deref(),
        Some(
            "set -eu\nuseradd --create-home --shell /bin/bash --uid 1000 agent\necho 'agent ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/agent\n"
        )
    );
    let keywords: Vec<&str> = last.instructions.iter().map(|i| i.kind.keyword()).collect();
    assert_eq!(
        keywords,
        [
            "COPY",
            "RUN",
            "LABEL",
            "USER",
            "WORKDIR",
            "ENV",
            "ENTRYPOINT",
            "CMD"
        ]
    );
    assert_eq!(last.instructions[2].span.line, 38);
}

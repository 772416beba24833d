//! The syntax tree the parser produces.
//!
//! Values are kept as written (after line continuations are joined): quotes, escape
//! characters and `$VAR` references are still in them, because Docker expands and unquotes
//! most arguments only at build time, with the build arguments and environment of the
//! stage. Run a value through [`crate::expand::expand`] to get what the builder uses.

use std::fmt;
use std::time::Duration;

/// A position in the source file: 1-based line and column (in characters) and the length
/// in characters of the token it points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// Length of the token in characters (0 when the position is not a token).
    pub len: usize,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// The parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=...`: recorded only; ags never fetches a frontend image.
    pub syntax: Option<String>,
    /// `# escape=...`: the escape character, `\` (default) or `` ` ``.
    pub escape: char,
    /// `# check=...`: recorded only; ags runs no build checks.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// A parsed Containerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerfile {
    /// The name used in error messages (usually the file name as the user gave it).
    pub file: String,
    /// The parser directives at the top of the file.
    pub directives: Directives,
    /// `ARG`s declared before the first `FROM`, in order.
    pub global_args: Vec<ArgDecl>,
    /// The build stages, in file order; never empty.
    pub stages: Vec<Stage>,
}

impl Containerfile {
    /// Finds a stage by name (case-insensitive, as Docker does) or by decimal index.
    pub fn stage(&self, name_or_index: &str) -> Option<&Stage> {
        self.stage_index(name_or_index).map(|i| &self.stages[i])
    }

    /// Like [`Containerfile::stage`] but returns the index.
    pub fn stage_index(&self, name_or_index: &str) -> Option<usize> {
        let lower = name_or_index.to_ascii_lowercase();
        if let Some(i) = self
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(i);
        }
        match name_or_index.parse::<usize>() {
            Ok(i) if i < self.stages.len() => Some(i),
            _ => None,
        }
    }

    /// The stage built when no target is given: the last one.
    pub fn last_stage(&self) -> &Stage {
        // The parser never produces a Containerfile without stages.
        &self.stages[self.stages.len() - 1]
    }
}

/// One build stage: a `FROM` line and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Position of the stage in the file, starting at 0 (usable as `COPY --from=0`).
    pub index: usize,
    /// The `AS name`, lowercased, if any.
    pub name: Option<String>,
    /// The `FROM` line.
    pub from: From,
    /// Position of the `FROM` keyword.
    pub span: Span,
    /// The `FROM` line as written, continuations joined.
    pub text: String,
    /// The instructions of the stage, in order.
    pub instructions: Vec<Instruction>,
}

/// `FROM [--platform=...] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The image reference, `scratch`, or an earlier stage's name; may contain `$ARG`s.
    pub image: String,
    /// `--platform=...`, unexpanded.
    pub platform: Option<String>,
    /// The `AS name`, lowercased.
    pub alias: Option<String>,
}

/// One instruction with its position and source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// What the instruction says.
    pub kind: InstructionKind,
    /// Position of the keyword.
    pub span: Span,
    /// The instruction as written, continuations joined, without heredoc bodies.
    pub text: String,
}

/// The instructions ags understands, with their parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    /// `RUN`.
    Run(Run),
    /// `COPY`.
    Copy(Copy),
    /// `ADD` (same arguments as `COPY` plus a few ADD-only flags).
    Add(Copy),
    /// `ENV k=v ...` or legacy `ENV k v`; values unexpanded and still quoted.
    Env(Vec<KeyValue>),
    /// `ARG name[=default] ...`.
    Arg(Vec<ArgDecl>),
    /// `WORKDIR path`.
    Workdir(String),
    /// `USER user[:group]`.
    User(String),
    /// `LABEL k=v ...`; values unexpanded and still quoted.
    Label(Vec<KeyValue>),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `CMD`.
    Cmd(Command),
    /// `SHELL ["exe", "arg"]`.
    Shell(Vec<String>),
    /// `EXPOSE port[/proto] ...`.
    Expose(Vec<String>),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `ONBUILD <instruction>`: recorded in the image config, run by child builds.
    Onbuild(Box<Instruction>),
    /// `MAINTAINER name` (deprecated): the builder records it as the `maintainer` label
    /// (and the image config's `author`), as Docker does.
    Maintainer(String),
}

impl InstructionKind {
    /// The instruction keyword in upper case, e.g. `"RUN"`.
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::Run(_) => "RUN",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::User(_) => "USER",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Shell(_) => "SHELL",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::StopSignal(_) => "STOPSIGNAL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
            InstructionKind::Onbuild(_) => "ONBUILD",
            InstructionKind::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// A command in exec form (JSON array) or shell form (one string for `SHELL -c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `["exe", "arg"]`: run directly, no shell, no expansion.
    Exec(Vec<String>),
    /// `exe arg`: run through the stage's shell.
    Shell(String),
}

/// `RUN [--mount=...] [--network=...] [--security=...] command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The command. With heredocs, the shell form holds the line that names them
    /// (e.g. `<<EOF` or `python3 <<EOF`); see [`Run::shell_script`].
    pub command: Command,
    /// `--mount=...` flags, in order.
    pub mounts: Vec<Mount>,
    /// `--network=...`.
    pub network: Option<NetworkMode>,
    /// `--security=...`, as written (`sandbox` or `insecure`).
    pub security: Option<String>,
    /// Heredocs named on the line, in order.
    pub heredocs: Vec<Heredoc>,
}

impl Run {
    /// The script to hand to the shell for a shell-form `RUN`.
    ///
    /// Without heredocs this is the command line. A `RUN <<EOF` whose whole command is one
    /// heredoc runs the heredoc's body as the script. Otherwise the heredoc bodies are
    /// appended after the line with their terminators, so that the shell itself feeds them
    /// to the command, as BuildKit does. Returns `None` for exec form.
    pub fn shell_script(&self) -> Option<String> {
        let Command::Shell(line) = &self.command else {
            return None;
        };
        if self.heredocs.is_empty() {
            return Some(line.clone());
        }
        if self.heredocs.len() == 1 && is_single_heredoc_word(line.trim()) {
            return Some(self.heredocs[0].content.clone());
        }
        let mut script = line.clone();
        script.push('\n');
        for doc in &self.heredocs {
            script.push_str(&doc.content);
            script.push_str(&doc.delimiter);
            script.push('\n');
        }
        Some(script)
    }
}

fn is_single_heredoc_word(line: &str) -> bool {
    !line.contains(char::is_whitespace) && super::heredoc::parse_heredoc_word(line).is_some()
}

/// `RUN --network=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// The builder's default network.
    Default,
    /// No network at all.
    None,
    /// The host's network.
    Host,
}

/// The `type=` of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    /// `type=bind` (the default): a read-only view of the context or another stage.
    Bind,
    /// `type=cache`: a persistent cache directory.
    Cache,
    /// `type=secret`: a secret file.
    Secret,
    /// `type=ssh`: an SSH agent socket.
    Ssh,
    /// `type=tmpfs`: an empty tmpfs.
    Tmpfs,
}

impl MountType {
    /// The name as written in `type=`.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheSharing {
    /// Concurrent builds share the cache (default).
    #[default]
    Shared,
    /// Each concurrent writer gets its own copy.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// One `RUN --mount=...` flag. String fields are unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `type=`.
    pub kind: MountType,
    /// `target=` / `dst=` / `destination=`.
    pub target: Option<String>,
    /// `source=` / `src=`.
    pub source: Option<String>,
    /// `from=`: a stage name/index or an image.
    pub from: Option<String>,
    /// `id=`.
    pub id: Option<String>,
    /// `sharing=` (cache mounts).
    pub sharing: CacheSharing,
    /// `readonly` / `ro` (or `rw=false`); `None` when not given, so each type keeps its
    /// default (bind mounts are read-only, cache mounts writable).
    pub readonly: Option<bool>,
    /// `required` (secret and ssh mounts).
    pub required: bool,
    /// `mode=` (octal), as written.
    pub mode: Option<String>,
    /// `uid=`.
    pub uid: Option<String>,
    /// `gid=`.
    pub gid: Option<String>,
    /// `size=` (tmpfs).
    pub size: Option<String>,
    /// `env=` (secret mounts exposed as an environment variable).
    pub env: Option<String>,
    /// Position of the `--mount` flag.
    pub span: Span,
}

impl Mount {
    /// `mode=` as permission bits, if given and a valid octal number.
    pub fn mode_bits(&self) -> Option<u32> {
        self.mode
            .as_deref()
            .and_then(|m| u32::from_str_radix(m, 8).ok())
    }
}

/// A heredoc: `<<EOF` ... `EOF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, unquoted.
    pub delimiter: String,
    /// The body, every line ending in `\n`; with `<<-` leading tabs are already removed.
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): the body is then taken
    /// literally, without variable expansion.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from the body and the terminator.
    pub strip_tabs: bool,
    /// The file descriptor prefix (`3<<EOF`), 0 when absent.
    pub fd: u32,
    /// Position of the `<<EOF` word.
    pub span: Span,
}

/// A `COPY`/`ADD` source: a path (or URL for ADD), or an inline heredoc file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A context path, glob, or (ADD only) URL / git reference; unexpanded.
    Path(String),
    /// `COPY <<EOF /dest`: the heredoc body becomes a file.
    Heredoc(Heredoc),
}

/// Arguments of `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Sources, at least one.
    pub sources: Vec<CopySource>,
    /// Destination.
    pub dest: String,
    /// `--from=` (COPY only): stage name/index or image.
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=mode`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude=pattern`, may repeat.
    pub excludes: Vec<String>,
    /// `--checksum=sha256:...` (ADD only).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: bool,
    /// `--unpack=bool` (ADD only); `None` means the default (unpack local archives).
    pub unpack: Option<bool>,
    /// True when written as a JSON array.
    pub json_form: bool,
}

/// One `KEY=value` pair of `ENV` or `LABEL`; the value keeps its quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, unexpanded.
    pub key: String,
    /// The value, unexpanded and still quoted.
    pub value: String,
    /// Position of the pair.
    pub span: Span,
}

/// One `ARG name[=default]` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub name: String,
    /// The default, unexpanded and still quoted.
    pub default: Option<String>,
    /// Position of the declaration.
    pub span: Span,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited health check.
    None,
    /// `HEALTHCHECK [options] CMD command`.
    Cmd {
        /// The check command.
        command: Command,
        /// `--interval=`.
        interval: Option<Duration>,
        /// `--timeout=`.
        timeout: Option<Duration>,
        /// `--start-period=`.
        start_period: Option<Duration>,
        /// `--start-interval=`.
        start_interval: Option<Duration>,
        /// `--retries=`.
        retries: Option<u32>,
    },
}

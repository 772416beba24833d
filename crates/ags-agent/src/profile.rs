//! Agent profiles: what runs in the container for each agent, where its home lives and which
//! of its host files may be copied into a lockdown run.
//!
//! Everything here is static data so that it can be audited in one screen. Paths in
//! [`AgentProfile::homes`], [`AgentProfile::stage_files`] and [`AgentProfile::never_stage`] are
//! relative to the user's home directory: the same relative path is used on the host (below the
//! host home) and in the container (below [`CONTAINER_HOME`]).
//!
//! The lockdown allowlist ([`AgentProfile::stage_files`]) names single *files* only: login
//! tokens and settings. Directories (custom commands, skills, plugins) are deliberately not
//! staged, so that a lockdown run costs O(size of a few small files) and can never pick up a
//! session transcript that an agent happens to keep next to its settings. The denylist
//! ([`AgentProfile::never_stage`], plus [`NEVER_STAGE_NAMES`] and
//! [`NEVER_STAGE_EXTENSIONS`] for every agent) is checked *after* the allowlist and always wins.

use std::fmt;
use std::str::FromStr;

/// The home directory of the unprivileged user inside the sandbox.
pub const CONTAINER_HOME: &str = "/home/dev";

/// The agents ags knows how to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgentKind {
    /// OpenAI Codex CLI.
    Codex,
    /// Anthropic Claude Code.
    Claude,
    /// Google Gemini CLI.
    Gemini,
    /// opencode.
    Opencode,
    /// The pi coding agent.
    Pi,
    /// A plain interactive bash.
    Shell,
}

impl AgentKind {
    /// Every agent, in the order used by help texts.
    pub const ALL: [AgentKind; 6] = [
        AgentKind::Codex,
        AgentKind::Claude,
        AgentKind::Gemini,
        AgentKind::Opencode,
        AgentKind::Pi,
        AgentKind::Shell,
    ];

    /// The name used on the command line and in config files (`--agent codex`).
    pub fn name(self) -> &'static str {
        self.profile().name
    }

    /// Looks an agent up by its command-line name.
    pub fn from_name(name: &str) -> Option<AgentKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The static profile of this agent.
    pub fn profile(self) -> &'static AgentProfile {
        match self {
            AgentKind::Codex => &CODEX,
            AgentKind::Claude => &CLAUDE,
            AgentKind::Gemini => &GEMINI,
            AgentKind::Opencode => &OPENCODE,
            AgentKind::Pi => &PI,
            AgentKind::Shell => &SHELL,
        }
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown agent name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown agent `{name}`, expected one of codex, claude, gemini, opencode, pi, shell")]
pub struct UnknownAgent {
    /// The name that was given.
    pub name: String,
}

impl FromStr for AgentKind {
    type Err = UnknownAgent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentKind::from_name(s).ok_or_else(|| UnknownAgent { name: s.to_owned() })
    }
}

/// Whether a home entry is a directory or a single file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeKind {
    /// A directory such as `~/.codex`.
    Dir,
    /// A single file such as `~/.claude.json`.
    File,
}

/// One part of an agent's home: a path relative to the home directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeEntry {
    /// Relative to the home directory, e.g. `.codex`.
    pub path: &'static str,
    /// Directory or file.
    pub kind: HomeKind,
}

/// A file that may be copied from the host into a lockdown run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageFile {
    /// Relative to the home directory; always below one of the profile's [`HomeEntry`]s.
    pub path: &'static str,
    /// For JSON files: top-level keys removed before staging. Claude keeps per-project
    /// state (including prompt history) under `projects` in `~/.claude.json`, next to the
    /// login it needs, so the file is staged without that key.
    pub drop_json_keys: &'static [&'static str],
}

const fn file(path: &'static str) -> StageFile {
    StageFile {
        path,
        drop_json_keys: &[],
    }
}

const fn dir(path: &'static str) -> HomeEntry {
    HomeEntry {
        path,
        kind: HomeKind::Dir,
    }
}

/// The static description of one agent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentProfile {
    /// Which agent.
    pub kind: AgentKind,
    /// Command-line name.
    pub name: &'static str,
    /// The program run in the container (looked up on the image's `PATH`).
    pub command: &'static str,
    /// Arguments always placed right after the command.
    pub base_args: &'static [&'static str],
    /// Whether the agent needs a terminal (all of them do today).
    pub interactive: bool,
    /// The agent's home entries (relative to the home directory). In lockdown each one is
    /// replaced by a staged copy; in normal runs `[[agent_mount]]` entries usually map them.
    pub homes: &'static [HomeEntry],
    /// Login and settings files that may be staged in lockdown (allowlist).
    pub stage_files: &'static [StageFile],
    /// Paths that are never staged, whatever the allowlist says (history, sessions, logs).
    /// A path is denied when it equals an entry or lies below it.
    pub never_stage: &'static [&'static str],
    /// Arguments added in front of the user's arguments by `--defaults`.
    pub defaults_args: &'static [&'static str],
    /// The API domains the agent talks to. Informational (doctor output, docs); ags does not
    /// filter egress by domain.
    pub api_domains: &'static [&'static str],
}

/// File and directory names that are never staged for any agent, at any depth: they hold
/// conversation history, transcripts, caches or logs.
pub const NEVER_STAGE_NAMES: &[&str] = &[
    "history",
    "history.jsonl",
    "sessions",
    "archived_sessions",
    "log",
    "logs",
    "projects",
    "todos",
    "transcripts",
    "shell-snapshots",
    "file-history",
    "statsig",
    "tmp",
    "cache",
    "snapshot",
    "storage",
];

/// File name extensions that are never staged: line-delimited logs and databases.
pub const NEVER_STAGE_EXTENSIONS: &[&str] = &["jsonl", "log", "sqlite", "sqlite3", "db"];

/// Codex. `--defaults` adds nothing: codex's own sandbox stays on as an extra layer inside
/// ours, and `--dangerously-bypass-approvals-and-sandbox` is left for the user to pass
/// explicitly after `--`.
pub static CODEX: AgentProfile = AgentProfile {
    kind: AgentKind::Codex,
    name: "codex",
    command: "codex",
    base_args: &[],
    interactive: true,
    homes: &[dir(".codex")],
    stage_files: &[
        file(".codex/auth.json"),
        file(".codex/config.toml"),
        file(".codex/AGENTS.md"),
    ],
    never_stage: &[
        ".codex/history.jsonl",
        ".codex/sessions",
        ".codex/archived_sessions",
        ".codex/log",
    ],
    defaults_args: &[],
    api_domains: &["api.openai.com", "auth.openai.com", "chatgpt.com"],
};

/// Claude Code. `--defaults` skips the permission prompts (the container is the sandbox)
/// and ignores MCP servers configured on the host (`--strict-mcp-config` without
/// `--mcp-config`), since those usually point at host programs and sockets.
pub static CLAUDE: AgentProfile = AgentProfile {
    kind: AgentKind::Claude,
    name: "claude",
    command: "claude",
    base_args: &[],
    interactive: true,
    homes: &[
        dir(".claude"),
        HomeEntry {
            path: ".claude.json",
            kind: HomeKind::File,
        },
    ],
    stage_files: &[
        file(".claude/.credentials.json"),
        file(".claude/settings.json"),
        file(".claude/settings.local.json"),
        file(".claude/CLAUDE.md"),
        file(".claude/keybindings.json"),
        StageFile {
            path: ".claude.json",
            drop_json_keys: &["projects", "history", "cachedChangelog"],
        },
    ],
    never_stage: &[
        ".claude/projects",
        ".claude/history.jsonl",
        ".claude/todos",
        ".claude/shell-snapshots",
        ".claude/statsig",
        ".claude/file-history",
        ".claude/session-env",
        ".claude/debug",
        ".claude/ide",
        ".claude/plans",
    ],
    defaults_args: &["--strict-mcp-config", "--dangerously-skip-permissions"],
    api_domains: &["api.anthropic.com", "console.anthropic.com", "claude.ai"],
};

/// Gemini CLI. `--defaults` adds `--yolo` (auto-approve tool calls; the container is the
/// sandbox). `.gemini/.env` is not staged: it may hold arbitrary host variables.
pub static GEMINI: AgentProfile = AgentProfile {
    kind: AgentKind::Gemini,
    name: "gemini",
    command: "gemini",
    base_args: &[],
    interactive: true,
    homes: &[dir(".gemini")],
    stage_files: &[
        file(".gemini/settings.json"),
        file(".gemini/oauth_creds.json"),
        file(".gemini/google_accounts.json"),
        file(".gemini/installation_id"),
        file(".gemini/GEMINI.md"),
    ],
    never_stage: &[".gemini/tmp", ".gemini/history", ".gemini/checkpoints"],
    defaults_args: &["--yolo"],
    api_domains: &[
        "generativelanguage.googleapis.com",
        "cloudcode-pa.googleapis.com",
        "oauth2.googleapis.com",
    ],
};

/// opencode. Config in `~/.config/opencode`, login and state in `~/.local/share/opencode`;
/// only `auth.json` is taken from the latter.
pub static OPENCODE: AgentProfile = AgentProfile {
    kind: AgentKind::Opencode,
    name: "opencode",
    command: "opencode",
    base_args: &[],
    interactive: true,
    homes: &[dir(".config/opencode"), dir(".local/share/opencode")],
    stage_files: &[
        file(".config/opencode/opencode.json"),
        file(".config/opencode/opencode.jsonc"),
        file(".config/opencode/config.json"),
        file(".config/opencode/AGENTS.md"),
        file(".local/share/opencode/auth.json"),
    ],
    never_stage: &[
        ".local/share/opencode/storage",
        ".local/share/opencode/log",
        ".local/share/opencode/snapshot",
        ".local/share/opencode/project",
    ],
    defaults_args: &[],
    api_domains: &["opencode.ai", "models.dev"],
};

/// pi. Its settings and login live in `~/.pi/agent`; its sessions in `~/.pi/agent/sessions`
/// (which the predecessor staged by accident).
pub static PI: AgentProfile = AgentProfile {
    kind: AgentKind::Pi,
    name: "pi",
    command: "pi",
    base_args: &[],
    interactive: true,
    homes: &[dir(".pi")],
    stage_files: &[
        file(".pi/agent/auth.json"),
        file(".pi/agent/settings.json"),
        file(".pi/agent/models.json"),
        file(".pi/agent/AGENTS.md"),
    ],
    never_stage: &[".pi/agent/sessions", ".pi/history", ".pi/agent/history"],
    defaults_args: &[],
    api_domains: &["api.anthropic.com", "api.openai.com"],
};

/// An interactive bash: no home, nothing staged.
pub static SHELL: AgentProfile = AgentProfile {
    kind: AgentKind::Shell,
    name: "shell",
    command: "bash",
    base_args: &[],
    interactive: true,
    homes: &[],
    stage_files: &[],
    never_stage: &[],
    defaults_args: &[],
    api_domains: &[],
};

impl AgentProfile {
    /// Whether `rel` (relative to the home directory, `/`-separated) must never be staged:
    /// it equals or lies below an entry of [`AgentProfile::never_stage`], has a component in
    /// [`NEVER_STAGE_NAMES`] or an extension in [`NEVER_STAGE_EXTENSIONS`].
    pub fn is_never_staged(&self, rel: &str) -> bool {
        let below = |deny: &str| {
            rel == deny
                || rel
                    .strip_prefix(deny)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if self.never_stage.iter().any(|d| below(d)) {
            return true;
        }
        rel.split('/').any(|component| {
            let lower = component.to_ascii_lowercase();
            NEVER_STAGE_NAMES.contains(&lower.as_str())
                || lower.rsplit_once('.').is_some_and(|(stem, ext)| {
                    !stem.is_empty() && NEVER_STAGE_EXTENSIONS.contains(&ext)
                })
        })
    }

    /// The home entry that `rel` lies in (or is), if any.
    pub fn home_of(&self, rel: &str) -> Option<&'static HomeEntry> {
        self.homes.iter().find(|h| {
            rel == h.path
                || (h.kind == HomeKind::Dir
                    && rel
                        .strip_prefix(h.path)
                        .is_some_and(|rest| rest.starts_with('/')))
        })
    }

    /// The container path of a home-relative path.
    pub fn container_path(rel: &str) -> String {
        format!("{CONTAINER_HOME}/{rel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Invariants every profile must satisfy.
    fn check_profile(p: &AgentProfile) {
        assert_eq!(p.kind.profile(), p);
        assert_eq!(AgentKind::from_name(p.name), Some(p.kind));
        assert!(!p.command.is_empty());
        assert!(p.interactive);
        for h in p.homes {
            assert!(
                !h.path.starts_with('/') && !h.path.contains(".."),
                "{}",
                h.path
            );
        }
        for f in p.stage_files {
            assert!(
                p.home_of(f.path).is_some(),
                "{}: {} is outside its homes",
                p.name,
                f.path
            );
            assert!(
                !p.is_never_staged(f.path),
                "{}: allowlisted {} is denied",
                p.name,
                f.path
            );
        }
        for d in p.never_stage {
            assert!(p.is_never_staged(d));
            assert!(p.is_never_staged(&format!("{d}/x.json")));
        }
    }

    #[test]
    fn codex_profile() {
        let p = AgentKind::Codex.profile();
        check_profile(p);
        assert_eq!(p.command, "codex");
        assert_eq!(p.homes, &[dir(".codex")]);
        let staged: Vec<_> = p.stage_files.iter().map(|f| f.path).collect();
        assert!(staged.contains(&".codex/auth.json"));
        assert!(staged.contains(&".codex/config.toml"));
        assert!(p.is_never_staged(".codex/history.jsonl"));
        assert!(p.is_never_staged(".codex/sessions/2025/01/rollout.json"));
        assert!(p.is_never_staged(".codex/log/codex-tui.txt"));
        assert!(p.defaults_args.is_empty());
    }

    #[test]
    fn claude_profile() {
        let p = AgentKind::Claude.profile();
        check_profile(p);
        assert_eq!(p.command, "claude");
        assert_eq!(p.homes.len(), 2);
        assert_eq!(p.home_of(".claude.json").unwrap().kind, HomeKind::File);
        assert!(p.home_of(".claude.json.backup").is_none());
        let staged: Vec<_> = p.stage_files.iter().map(|f| f.path).collect();
        for f in [
            ".claude/.credentials.json",
            ".claude/settings.json",
            ".claude/settings.local.json",
            ".claude/CLAUDE.md",
            ".claude/keybindings.json",
            ".claude.json",
        ] {
            assert!(staged.contains(&f), "{f}");
        }
        for f in [
            ".claude/projects/-work/abc.jsonl",
            ".claude/history.jsonl",
            ".claude/todos/x.json",
            ".claude/shell-snapshots/s.sh",
            ".claude/statsig/s",
        ] {
            assert!(p.is_never_staged(f), "{f}");
        }
        assert!(p.defaults_args.contains(&"--dangerously-skip-permissions"));
    }

    #[test]
    fn gemini_profile() {
        let p = AgentKind::Gemini.profile();
        check_profile(p);
        assert_eq!(p.command, "gemini");
        let staged: Vec<_> = p.stage_files.iter().map(|f| f.path).collect();
        assert!(staged.contains(&".gemini/oauth_creds.json"));
        assert!(!staged.contains(&".gemini/.env"));
        assert!(p.is_never_staged(".gemini/tmp/abc/chats/session.json"));
        assert_eq!(p.defaults_args, &["--yolo"]);
    }

    #[test]
    fn opencode_profile() {
        let p = AgentKind::Opencode.profile();
        check_profile(p);
        assert_eq!(p.command, "opencode");
        assert_eq!(
            p.homes.iter().map(|h| h.path).collect::<Vec<_>>(),
            [".config/opencode", ".local/share/opencode"]
        );
        assert!(
            p.stage_files
                .iter()
                .any(|f| f.path == ".local/share/opencode/auth.json")
        );
        assert!(p.is_never_staged(".local/share/opencode/storage/session/a.json"));
    }

    #[test]
    fn pi_profile() {
        let p = AgentKind::Pi.profile();
        check_profile(p);
        assert_eq!(p.command, "pi");
        assert!(p.is_never_staged(".pi/agent/sessions/x.json"));
        assert!(
            p.stage_files
                .iter()
                .any(|f| f.path == ".pi/agent/auth.json")
        );
    }

    #[test]
    fn shell_profile() {
        let p = AgentKind::Shell.profile();
        check_profile(p);
        assert_eq!(p.command, "bash");
        assert!(p.homes.is_empty() && p.stage_files.is_empty());
    }

    #[test]
    fn names_round_trip() {
        for k in AgentKind::ALL {
            assert_eq!(k.name().parse::<AgentKind>().unwrap(), k);
            assert_eq!(k.to_string(), k.name());
        }
        let err = "claud".parse::<AgentKind>().unwrap_err();
        assert!(err.to_string().contains("unknown agent `claud`"));
    }

    #[test]
    fn global_denylist_applies_to_every_agent() {
        for k in AgentKind::ALL {
            let p = k.profile();
            assert!(p.is_never_staged(".x/history.jsonl"));
            assert!(p.is_never_staged(".x/Sessions/a"));
            assert!(p.is_never_staged(".x/debug.log"));
            assert!(!p.is_never_staged(".x/settings.json"));
        }
    }
}

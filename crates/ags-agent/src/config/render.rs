//! The effective config rendered back to TOML, for `ags config show`.
//!
//! The output is itself a valid config file: paths are shown expanded (absolute), and the
//! `[sandbox]` keys whose default is a fixed value (`image`, `network`, `pids`, `tmux`) are
//! shown with that value when the files leave them unset, so the output is what a run
//! actually uses. `[[secret]]` entries show only where a value would come from (`from_env`,
//! `secret_store` attributes, `command`): a [`Config`] never holds a secret's value, and
//! rendering resolves nothing.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use toml::Table;

use super::{Config, DEFAULT_PIDS, MountKind, MountMode, Network};

/// A size in the config's notation: the largest unit that divides it (`8g`, `512m`), else
/// bytes. [`super::parse_size`] reads it back to the same number.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "t"),
        (1 << 30, "g"),
        (1 << 20, "m"),
        (1 << 10, "k"),
    ];
    UNITS
        .iter()
        .find(|(unit, _)| bytes % unit == 0)
        .map_or_else(
            || bytes.to_string(),
            |(unit, suffix)| format!("{}{suffix}", bytes / unit),
        )
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn mode(m: MountMode) -> &'static str {
    match m {
        MountMode::Ro => "ro",
        MountMode::Rw => "rw",
    }
}

fn kind(k: MountKind) -> &'static str {
    match k {
        MountKind::Dir => "dir",
        MountKind::File => "file",
    }
}

// The output schema: the config file's own key names, in the order of the default file
// (serde keeps struct field order; a TOML table would sort the keys).

#[derive(Serialize)]
struct Document<'a> {
    sandbox: Sandbox,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mount: Vec<Mount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    agent_mount: Vec<AgentMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool: Vec<Tool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secret: Vec<Secret<'a>>,
    #[serde(skip_serializing_if = "Table::is_empty")]
    registries: &'a Table,
    #[serde(skip_serializing_if = "Table::is_empty")]
    images: &'a Table,
    #[serde(skip_serializing_if = "Option::is_none")]
    build: Option<Build>,
}

#[derive(Serialize)]
struct Build {
    snapshots: &'static str,
}

#[derive(Serialize)]
struct Sandbox {
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    containerfile: Option<String>,
    network: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<String>,
    pids: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpus: Option<f64>,
    passthrough_env: Vec<String>,
    tmux: bool,
}

#[derive(Serialize)]
struct Mount {
    host: String,
    container: String,
    mode: &'static str,
    kind: &'static str,
    create: bool,
    optional: bool,
}

#[derive(Serialize)]
struct AgentMount {
    agent: &'static str,
    host: String,
    container: String,
    kind: &'static str,
}

#[derive(Serialize)]
struct Tool {
    name: String,
    path: String,
    container_path: String,
    optional: bool,
}

/// Only the sources: the value is looked up at run time, never here.
#[derive(Serialize)]
struct Secret<'a> {
    env: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_env: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_store: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a [String]>,
    timeout_secs: u64,
}

impl Config {
    /// The config as a TOML document (see the module docs). Sections come in the order of
    /// the default file: `[sandbox]`, `[[mount]]`, `[[agent_mount]]`, `[[tool]]`,
    /// `[[secret]]`, `[registries]`, `[images]`, `[build]`; empty ones are left out.
    pub fn to_toml(&self) -> String {
        let sb = &self.sandbox;
        let doc = Document {
            sandbox: Sandbox {
                image: self.image().to_owned(),
                containerfile: sb.containerfile.as_ref().map(|c| path(&c.value)),
                network: match sb.network.as_ref().map_or(Network::Egress, |n| n.value) {
                    Network::Egress => "egress",
                    Network::None => "none",
                    Network::Host => "host",
                },
                memory: sb.memory_bytes.as_ref().map(|m| format_size(m.value)),
                pids: sb.pids.as_ref().map_or(DEFAULT_PIDS, |p| p.value),
                cpus: sb.cpus.as_ref().map(|c| c.value),
                passthrough_env: sb.passthrough_env.iter().map(|e| e.value.clone()).collect(),
                tmux: sb.tmux.as_ref().is_some_and(|t| t.value),
            },
            mount: self
                .mounts
                .iter()
                .map(|m| Mount {
                    host: path(&m.host),
                    container: path(&m.container),
                    mode: mode(m.mode),
                    kind: kind(m.kind),
                    create: m.create,
                    optional: m.optional,
                })
                .collect(),
            agent_mount: self
                .agent_mounts
                .iter()
                .map(|m| AgentMount {
                    agent: m.agent.name(),
                    host: path(&m.host),
                    container: path(&m.container),
                    kind: kind(m.kind),
                })
                .collect(),
            tool: self
                .tools
                .iter()
                .map(|t| Tool {
                    name: t.name.clone(),
                    path: path(&t.path),
                    container_path: path(&t.container_path),
                    optional: t.optional,
                })
                .collect(),
            secret: self
                .secrets
                .iter()
                .map(|x| Secret {
                    env: &x.env,
                    from_env: x.from_env.as_deref(),
                    secret_store: x.secret_store.as_ref(),
                    command: x.command.as_deref(),
                    timeout_secs: x.timeout.as_secs(),
                })
                .collect(),
            registries: &self.registries,
            images: &self.images,
            build: self.build.snapshots.as_ref().map(|s| Build {
                snapshots: s.value.as_str(),
            }),
        };
        // Strings, numbers, booleans, arrays and tables always serialize.
        toml::to_string(&doc).expect("config serializes as TOML")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{
        DEFAULT_CONFIG, DEFAULT_IMAGE, EnvMap, HostContext, parse_config, parse_size,
    };

    fn parse(text: &str) -> Config {
        let env = EnvMap::from([("TOKEN_SRC".to_owned(), "CANARY-VALUE".to_owned())]);
        let host = HostContext {
            home: Path::new("/home/u"),
            env: &env,
        };
        parse_config(Path::new("/home/u/.config/ags/config.toml"), text, host).unwrap()
    }

    #[test]
    fn sizes_round_trip() {
        for (bytes, text) in [
            (8u64 << 30, "8g"),
            (512 << 20, "512m"),
            (3 << 40, "3t"),
            ((16 << 20) + 1, "16777217"),
            (1536 << 20, "1536m"),
        ] {
            assert_eq!(format_size(bytes), text);
            assert_eq!(parse_size(text), Some(bytes));
        }
    }

    #[test]
    fn defaults_are_shown_as_effective_values() {
        let text = parse("").to_toml();
        assert!(text.starts_with("[sandbox]\n"), "{text}");
        assert!(
            text.contains(&format!("image = \"{DEFAULT_IMAGE}\"")),
            "{text}"
        );
        assert!(text.contains("network = \"egress\""), "{text}");
        assert!(text.contains(&format!("pids = {DEFAULT_PIDS}")), "{text}");
        assert!(text.contains("tmux = false"), "{text}");
        assert!(!text.contains("memory"), "{text}");
        assert!(!text.contains("[[mount]]"), "{text}");
        assert!(!text.contains("[build]"), "{text}");
    }

    #[test]
    fn secrets_show_sources_only() {
        let c = parse(
            "[[secret]]\nenv = \"GH_TOKEN\"\nfrom_env = \"TOKEN_SRC\"\n\
             secret_store = { service = \"gh\" }\ncommand = [\"/usr/bin/pass\", \"show\", \"gh\"]\n",
        );
        let text = c.to_toml();
        assert!(text.contains("[[secret]]"), "{text}");
        assert!(text.contains("from_env = \"TOKEN_SRC\""), "{text}");
        assert!(text.contains("service = \"gh\""), "{text}");
        assert!(text.contains("\"/usr/bin/pass\""), "{text}");
        assert!(text.contains("timeout_secs = 5"), "{text}");
        assert!(!text.contains("CANARY-VALUE"), "{text}");
    }

    /// Rendering, parsing the result and rendering again gives the same text: the output
    /// is a config file that means the same as the files it came from.
    #[test]
    fn output_is_a_config_that_parses_to_the_same() {
        let text = format!(
            "{DEFAULT_CONFIG}\n[[mount]]\nhost = \"~/notes\"\ncontainer = \"/home/dev/notes\"\n\
             mode = \"rw\"\ncreate = true\n\n[[tool]]\nname = \"jq\"\npath = \"/usr/bin/jq\"\n\
             container_path = \"/usr/local/bin/jq\"\n\n[[secret]]\nenv = \"A_TOKEN\"\nfrom_env = \"TOKEN_SRC\"\nsecret_store = {{ service = \"a\" }}\n\
             timeout_secs = 9\n\n[registries]\nallow_localhost_http = true\n\
             [registries.hosts.\"127.0.0.1:5000\"]\ninsecure = true\n\n[images]\nmax_entries = 10\n\n[build]\nsnapshots = \"copy\"\n"
        )
        .replace(
            "# memory = \"8g\"",
            "memory = \"1536m\"\ncpus = 1.5\nnetwork = \"none\"\npassthrough_env = [\"EDITOR\"]",
        );
        let first = parse(&text).to_toml();
        assert!(first.contains("host = \"/home/u/notes\""), "{first}");
        assert!(first.contains("memory = \"1536m\""), "{first}");
        assert!(first.contains("[[agent_mount]]"), "{first}");
        assert!(first.contains("service = \"a\""), "{first}");
        assert!(
            first.contains("[registries.hosts.\"127.0.0.1:5000\"]"),
            "{first}"
        );
        let second = parse(&first).to_toml();
        assert_eq!(first, second);
        let headers: Vec<_> = first
            .lines()
            .filter(|l| l.starts_with('['))
            .map(|l| l.trim_matches(['[', ']']).split('.').next().unwrap())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(headers.len(), 8, "{first}");
        let pos = |h: &str| {
            first
                .find(h)
                .unwrap_or_else(|| panic!("{h} missing: {first}"))
        };
        let order = [
            "[sandbox]",
            "[[mount]]",
            "[[agent_mount]]",
            "[[tool]]",
            "[[secret]]",
            "[registries",
            "[images]",
            "[build]",
        ];
        assert!(order.windows(2).all(|w| pos(w[0]) < pos(w[1])), "{first}");
        // Keys keep the file's order, not the alphabet's.
        assert!(pos("image = ") < pos("network = "), "{first}");
    }
}

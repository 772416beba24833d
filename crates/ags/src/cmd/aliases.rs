//! `ags create-aliases`: shell aliases that run each agent in the sandbox.
//!
//! Each agent's own command name runs it through ags (`codex` runs `ags --agent codex --`),
//! and `NAME-lockdown` runs it with `--lockdown`; the shell agent is `ags-shell`, since
//! `shell` is no command of its own. The trailing `--` hands every argument typed after
//! the alias to the agent, so `codex exec "fix the build"` works as it would outside.
//! Nothing is written: the aliases go to stdout, to be loaded from the shell's startup
//! file with `eval "$(ags create-aliases)"` (bash, zsh) or `ags create-aliases --shell fish
//! | source` (fish).

use std::io::IsTerminal;

use ags_agent::profile::AgentKind;

use crate::cli::Shell;

/// Print the aliases for `shell` (from `$SHELL` when not given).
pub fn execute(shell: Option<Shell>) -> anyhow::Result<i32> {
    let shell = shell.unwrap_or_else(|| detect(std::env::var("SHELL").ok().as_deref()));
    print!("{}", render(shell));
    if std::io::stdout().is_terminal() {
        let how = match shell {
            Shell::Bash => "add to ~/.bashrc: eval \"$(ags create-aliases --shell bash)\"",
            Shell::Zsh => "add to ~/.zshrc: eval \"$(ags create-aliases --shell zsh)\"",
            Shell::Fish => {
                "add to ~/.config/fish/config.fish: ags create-aliases --shell fish | source"
            }
        };
        eprintln!("{how}");
    }
    Ok(crate::exit::OK)
}

/// The shell named by `$SHELL`, bash syntax for anything else (POSIX shells share it).
fn detect(shell_env: Option<&str>) -> Shell {
    match shell_env.and_then(|s| s.rsplit('/').next()) {
        Some("zsh") => Shell::Zsh,
        Some("fish") => Shell::Fish,
        _ => Shell::Bash,
    }
}

/// The alias names and the ags arguments each one stands for, in agent order.
fn aliases() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for kind in AgentKind::ALL {
        let agent = kind.name();
        let base = match kind {
            AgentKind::Shell => "ags-shell".to_owned(),
            _ => agent.to_owned(),
        };
        out.push((base.clone(), format!("ags --agent {agent} --")));
        out.push((
            format!("{base}-lockdown"),
            format!("ags --agent {agent} --lockdown --"),
        ));
    }
    out
}

/// The script for one shell.
fn render(shell: Shell) -> String {
    let mut out = String::from(
        "# ags aliases: each agent's name runs it in the ags sandbox, NAME-lockdown in a\n\
         # hardened, throw-away session; arguments after the name go to the agent.\n",
    );
    for (name, command) in aliases() {
        // Names and commands are fixed ASCII words: nothing to escape.
        match shell {
            Shell::Bash | Shell::Zsh => out.push_str(&format!("alias {name}='{command}'\n")),
            Shell::Fish => out.push_str(&format!(
                "function {name} --description '{name} in the ags sandbox'\n    {command} $argv\nend\n"
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agent_has_a_plain_and_a_lockdown_alias() {
        let names: Vec<String> = aliases().into_iter().map(|(n, _)| n).collect();
        for kind in AgentKind::ALL {
            let base = if kind == AgentKind::Shell {
                "ags-shell"
            } else {
                kind.name()
            };
            assert!(names.contains(&base.to_owned()), "{base}");
            assert!(names.contains(&format!("{base}-lockdown")), "{base}");
        }
        assert_eq!(names.len(), 2 * AgentKind::ALL.len());
    }

    #[test]
    fn bash_and_zsh_syntax() {
        for shell in [Shell::Bash, Shell::Zsh] {
            let text = render(shell);
            assert!(
                text.contains("alias codex='ags --agent codex --'\n"),
                "{text}"
            );
            assert!(
                text.contains("alias claude-lockdown='ags --agent claude --lockdown --'\n"),
                "{text}"
            );
            assert!(
                text.contains("alias ags-shell='ags --agent shell --'\n"),
                "{text}"
            );
        }
    }

    #[test]
    fn fish_functions_pass_arguments() {
        let text = render(Shell::Fish);
        assert!(
            text.contains(
                "function gemini-lockdown --description 'gemini-lockdown in the ags sandbox'\n    ags --agent gemini --lockdown -- $argv\nend\n"
            ),
            "{text}"
        );
        assert!(!text.contains("alias "), "{text}");
    }

    #[test]
    fn shell_detection() {
        assert!(matches!(detect(Some("/usr/bin/zsh")), Shell::Zsh));
        assert!(matches!(detect(Some("/usr/local/bin/fish")), Shell::Fish));
        assert!(matches!(detect(Some("/bin/bash")), Shell::Bash));
        assert!(matches!(detect(Some("/bin/dash")), Shell::Bash));
        assert!(matches!(detect(None), Shell::Bash));
    }
}

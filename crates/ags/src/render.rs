//! Rendering errors for people: the error, each cause on its own line, and a hint when we
//! know how to fix it.

use std::io::Write;

/// A hint attached to an error chain with [`anyhow::Context`]-like ergonomics.
#[derive(Debug)]
pub struct Hint(pub String);

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Hint {}

/// Print `err` to stderr.
pub fn error(err: &anyhow::Error) {
    let _ = std::io::stderr().lock().write_all(format(err).as_bytes());
}

/// The lines [`error`] prints.
fn format(err: &anyhow::Error) -> String {
    // A hint attached with `.context(Hint(..))` is a layer of the chain whose concrete type
    // is anyhow's wrapper, not `Hint`: find it through anyhow's downcast, and leave its
    // line out of the chain by its text.
    let mut context_hint = err.downcast_ref::<Hint>().map(|h| h.0.clone());
    let mut hint = None;
    let mut out = String::new();
    let mut first = true;
    for cause in err.chain() {
        if let Some(h) = cause.downcast_ref::<Hint>() {
            hint = Some(h.0.clone());
            continue;
        }
        let text = cause.to_string();
        if context_hint.as_deref() == Some(text.as_str()) {
            hint = context_hint.take();
            continue;
        }
        if first {
            out.push_str(&format!("error: {text}\n"));
            first = false;
        } else {
            out.push_str(&format!("  caused by: {text}\n"));
        }
    }
    if let Some(h) = hint.or(context_hint).or_else(|| known_hint(err)) {
        out.push_str(&format!("  hint: {h}\n"));
    }
    out
}

/// Hints for failures whose fix is well known.
fn known_hint(err: &anyhow::Error) -> Option<String> {
    let text = err
        .chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    if text.contains("pasta is not installed") {
        Some("install the passt package, or use --network none".into())
    } else if text.contains("pasta failed") && text.contains("tun") {
        Some(
            "pasta needs /dev/net/tun to be readable and writable: sudo chmod 0666 /dev/net/tun"
                .into(),
        )
    } else if text.contains("unshare(CLONE_NEWUSER)") {
        Some("unprivileged user namespaces are disabled; run `ags doctor` for the fix".into())
    } else if text.contains("newuidmap") || text.contains("newgidmap") {
        Some("check /etc/subuid and /etc/subgid, and that newuidmap/newgidmap are setuid; run `ags doctor`".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn hints_print_last_wherever_they_are_attached() {
        let root: anyhow::Error = anyhow::Error::new(Hint("do this".into()));
        assert_eq!(format(&root), "  hint: do this\n");

        let inner = std::io::Error::other("disk on fire");
        let err = Err::<(), _>(inner)
            .context(Hint("call the fire brigade".into()))
            .context("cannot write /x")
            .unwrap_err();
        assert_eq!(
            format(&err),
            "error: cannot write /x\n  caused by: disk on fire\n  hint: call the fire brigade\n"
        );

        let plain = anyhow::anyhow!("pasta is not installed");
        assert!(
            format(&plain).ends_with("  hint: install the passt package, or use --network none\n")
        );
    }
}

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
    let mut out = std::io::stderr().lock();
    let mut hint = None;
    let mut first = true;
    for cause in err.chain() {
        if let Some(h) = cause.downcast_ref::<Hint>() {
            hint = Some(h.0.clone());
            continue;
        }
        if first {
            let _ = writeln!(out, "error: {cause}");
            first = false;
        } else {
            let _ = writeln!(out, "  caused by: {cause}");
        }
    }
    if let Some(h) = hint.or_else(|| known_hint(err)) {
        let _ = writeln!(out, "  hint: {h}");
    }
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

//! Path expansion and checks for config values.

use std::path::{Component, Path, PathBuf};

use super::HostContext;

/// Whether `name` is a portable environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a container mount target: absolute, normalized (no `.`, `..` or empty
/// components), not `/` and not inside `/proc`, `/sys` or `/dev` (mounting over those would
/// undo the runtime's masking).
pub fn check_container_path(p: &str) -> Result<PathBuf, String> {
    if !p.starts_with('/') {
        return Err(format!("container path must be absolute: {p:?}"));
    }
    let parts: Vec<&str> = p[1..].split('/').collect();
    let trailing_slash = parts.len() > 1 && parts.last() == Some(&"");
    let body = if trailing_slash {
        &parts[..parts.len() - 1]
    } else {
        &parts[..]
    };
    if body.iter().any(|c| c.is_empty() || *c == "." || *c == "..") || p.contains('\0') {
        return Err(format!(
            "container path must be normalized (no `.`, `..` or `//`): {p:?}"
        ));
    }
    let path = PathBuf::from(p.trim_end_matches('/'));
    if path == Path::new("/") || path.as_os_str().is_empty() {
        return Err("container path must not be `/`".to_owned());
    }
    for sys in ["/proc", "/sys", "/dev"] {
        if path.starts_with(sys) {
            return Err(format!("container path must not be inside {sys}: {p:?}"));
        }
    }
    Ok(path)
}

/// Expands a leading `~` (or `~/`) to the home directory and `$VAR` / `${VAR}` from the
/// environment map. `$$` is a literal `$`; a `$` not followed by a name is kept. An undefined
/// variable or `~user` is an error (its message names the variable).
pub fn expand_path(input: &str, host: HostContext<'_>) -> Result<PathBuf, String> {
    let mut out = String::new();
    let rest = if input == "~" {
        out.push_str(&host.home.to_string_lossy());
        ""
    } else if let Some(r) = input.strip_prefix("~/") {
        out.push_str(&host.home.to_string_lossy());
        out.push('/');
        r
    } else if input.starts_with('~') {
        return Err(format!("`~user` paths are not supported: {input:?}"));
    } else {
        input
    };
    let mut chars = rest.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|&(_, c)| c) {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('{') => {
                chars.next();
                let mut name = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed || !is_env_name(&name) {
                    return Err(format!("malformed `${{...}}` in {input:?}"));
                }
                out.push_str(lookup(&name, host, input)?);
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(lookup(&name, host, input)?);
            }
            _ => out.push('$'),
        }
    }
    if out.is_empty() {
        return Err(format!("path is empty after expansion: {input:?}"));
    }
    Ok(PathBuf::from(out))
}

fn lookup<'a>(name: &str, host: HostContext<'a>, input: &str) -> Result<&'a str, String> {
    if name == "HOME" {
        return host
            .home
            .to_str()
            .ok_or_else(|| "home directory is not UTF-8".to_owned());
    }
    host.env
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| format!("undefined variable `{name}` in {input:?}"))
}

/// Parses `512m`, `8g`, `8GiB`, `1073741824` (binary units, case-insensitive); at least
/// 16 MiB.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s
        .strip_suffix("ib")
        .or_else(|| s.strip_suffix('b'))
        .unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: u64 = num.trim().parse().ok()?;
    let bytes = n.checked_mul(mult)?;
    (bytes >= 16 << 20).then_some(bytes)
}

/// Lexically normalizes an absolute path (`.` dropped, `..` pops); no filesystem access.
pub fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

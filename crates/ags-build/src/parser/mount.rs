//! `RUN --mount=...` values.

use super::{CacheSharing, Mount, MountType, Span};

/// Parses the value of `--mount=` (comma-separated `key=value` fields, double quotes
/// allowed, as BuildKit reads it with a CSV reader). The error is the message only.
pub(crate) fn parse_mount(value: &str) -> Result<Mount, String> {
    let mut mount = Mount {
        kind: MountType::Bind,
        target: None,
        source: None,
        from: None,
        id: None,
        sharing: CacheSharing::Shared,
        readonly: None,
        required: false,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        env: None,
        span: Span::default(),
    };
    let fields = split_csv(value)?;
    // The type decides which keys are valid, so read it first wherever it is.
    for field in &fields {
        if let Some((k, v)) = field.split_once('=') {
            if k.eq_ignore_ascii_case("type") {
                mount.kind = match v.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    "tmpfs" => MountType::Tmpfs,
                    _ => {
                        return Err(format!(
                            "unknown mount type {v:?}: expected bind, cache, secret, ssh or tmpfs"
                        ));
                    }
                };
            }
        }
    }
    let parse_bool = |key: &str, v: &str| match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{key}={v:?}: expected true or false")),
    };
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let need = |v: Option<String>| v.ok_or_else(|| format!("{key} needs a value: {key}=..."));
        match key.as_str() {
            "type" => {}
            "target" | "dst" | "destination" => mount.target = Some(need(value)?),
            "source" | "src" => mount.source = Some(need(value)?),
            "from" => mount.from = Some(need(value)?),
            "id" => mount.id = Some(need(value)?),
            "readonly" | "ro" => {
                mount.readonly = Some(value.map_or(Ok(true), |v| parse_bool(&key, &v))?);
            }
            "readwrite" | "rw" => {
                mount.readonly = Some(!value.map_or(Ok(true), |v| parse_bool(&key, &v))?);
            }
            "required" => mount.required = value.map_or(Ok(true), |v| parse_bool(&key, &v))?,
            "sharing" => {
                mount.sharing = match need(value)?.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    other => {
                        return Err(format!(
                            "sharing={other:?}: expected shared, private or locked"
                        ));
                    }
                }
            }
            "mode" => {
                let v = need(value)?;
                if !v.contains('$') && u32::from_str_radix(&v, 8).is_err() {
                    return Err(format!("mode={v:?}: expected an octal number such as 0755"));
                }
                mount.mode = Some(v);
            }
            "uid" | "gid" => {
                let v = need(value)?;
                if !v.contains('$') && v.parse::<u32>().is_err() {
                    return Err(format!("{key}={v:?}: expected a number"));
                }
                if key == "uid" {
                    mount.uid = Some(v);
                } else {
                    mount.gid = Some(v);
                }
            }
            "size" => mount.size = Some(need(value)?),
            "env" => mount.env = Some(need(value)?),
            _ => return Err(format!("unknown key {key:?}")),
        }
    }
    let type_only = |what: &str, ok: &[MountType]| {
        if ok.contains(&mount.kind) {
            Ok(())
        } else {
            Err(format!(
                "{what} is not valid for type={}",
                mount.kind.as_str()
            ))
        }
    };
    if mount.from.is_some() {
        type_only("from", &[MountType::Bind, MountType::Cache])?;
    }
    if mount.sharing != CacheSharing::Shared {
        type_only("sharing", &[MountType::Cache])?;
    }
    if mount.size.is_some() {
        type_only("size", &[MountType::Tmpfs])?;
    }
    if mount.env.is_some() {
        type_only("env", &[MountType::Secret])?;
    }
    if mount.target.is_none() && !matches!(mount.kind, MountType::Secret | MountType::Ssh) {
        return Err(format!("type={} needs a target=PATH", mount.kind.as_str()));
    }
    if mount.kind == MountType::Secret
        && mount.id.is_none()
        && mount.target.is_none()
        && mount.env.is_none()
    {
        return Err("type=secret needs an id=, a target= or an env=".into());
    }
    Ok(mount)
}

/// Splits on commas outside double quotes and removes the quotes (CSV, as BuildKit reads
/// `--mount`).
fn split_csv(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = s.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => fields.push(std::mem::take(&mut field)),
            _ => field.push(ch),
        }
    }
    if in_quotes {
        return Err("unterminated double quote".into());
    }
    fields.push(field);
    Ok(fields.into_iter().filter(|f| !f.is_empty()).collect())
}

//! `COPY` and `ADD`: sources resolved and hashed here, written by the worker.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ags_oci::digest::Digest;

use super::{Builder, join_container, step_err};
use crate::builder::copy::{self, CopyJob, Source};
use crate::builder::{BuildError, StageState, users};
use crate::ignore::IgnoreMatcher;
use crate::parser::{Copy, CopySource, Instruction};
use crate::stages::{StageRef, StageScope, resolve_from};

/// Largest `ADD` download kept in memory.
const MAX_DOWNLOAD: u64 = 1 << 30;

impl Builder<'_> {
    pub(in crate::builder) fn copy_step(
        &mut self,
        scope: &StageScope<'_>,
        state: &mut StageState,
        ins: &Instruction,
        c: &Copy,
        is_add: bool,
    ) -> Result<(), BuildError> {
        let cf = self.cf;
        let span = ins.span;
        let kw = if is_add { "ADD" } else { "COPY" };
        let dest = self.expand(scope, span, "the destination", &c.dest)?;
        let dest_abs = join_container(&state.working_dir(), &dest);
        let chown = c
            .chown
            .as_deref()
            .map(|s| self.expand(scope, span, "--chown", s))
            .transpose()?;
        let chmod = match &c.chmod {
            Some(m) => {
                let m = self.expand(scope, span, "--chmod", m)?;
                Some(
                    u32::from_str_radix(&m, 8)
                        .ok()
                        .filter(|v| *v <= 0o7777)
                        .ok_or_else(|| {
                            step_err(cf, span, format!("--chmod={m}: expected an octal mode"))
                        })?,
                )
            }
            None => None,
        };
        // --from: another stage (by name or index) or an image.
        let mut views: Vec<Vec<PathBuf>> = Vec::new();
        let mut view_keys = Vec::new();
        if let Some(from) = &c.from {
            let from = self.expand(scope, span, "--from", from)?;
            match resolve_from(cf, &from) {
                StageRef::Stage(i) => {
                    let st = self.results.get(&i).ok_or_else(|| {
                        step_err(
                            cf,
                            span,
                            format!("--from={from}: that stage is not built before this step"),
                        )
                    })?;
                    self.ensure_tree(st)?;
                    views.push(st.lowers.clone());
                    view_keys.push(st.key.clone());
                }
                StageRef::Image(name) => {
                    let platform = self.opts.platform.clone();
                    let st = self.image_state(&name, &platform, span)?;
                    views.push(st.lowers.clone());
                    view_keys.push(st.key.clone());
                }
                StageRef::Scratch => {
                    return Err(step_err(cf, span, "--from=scratch has no files"));
                }
            }
        }
        let mut sources = Vec::new();
        let mut globbed = false;
        for src in &c.sources {
            match src {
                CopySource::Heredoc(h) => sources.push(Source::Data {
                    name: h.delimiter.clone(),
                    data: h.content.clone().into_bytes(),
                    mode: 0o644,
                }),
                CopySource::Path(p) => {
                    let p = self.expand(scope, span, "the source", p)?;
                    if !views.is_empty() {
                        sources.push(Source::View {
                            view: 0,
                            path: p.clone(),
                        });
                        continue;
                    }
                    if p.starts_with("http://") || p.starts_with("https://") {
                        if !is_add {
                            return Err(step_err(
                                cf,
                                span,
                                format!("COPY cannot fetch URLs ({p}); use ADD"),
                            ));
                        }
                        let checksum = c
                            .checksum
                            .as_deref()
                            .map(|s| self.expand(scope, span, "--checksum", s))
                            .transpose()?;
                        let data = download(&p, checksum.as_deref())
                            .map_err(|e| step_err(cf, span, format!("ADD {p}: {e}")))?;
                        let name = p
                            .split(['?', '#'])
                            .next()
                            .and_then(|u| u.rsplit('/').next())
                            .filter(|n| !n.is_empty())
                            .unwrap_or("download")
                            .to_string();
                        sources.push(Source::Data {
                            name,
                            data,
                            mode: 0o600,
                        });
                        continue;
                    }
                    if is_add && (p.starts_with("git@") || p.ends_with(".git")) {
                        return Err(step_err(
                            cf,
                            span,
                            format!("ADD of a git repository ({p}) is not supported by ags build"),
                        ));
                    }
                    if p.contains(['*', '?', '[']) {
                        globbed = true;
                    }
                    let rels = copy::context_source(&self.opts.context, &p, &self.ignore)
                        .map_err(|e| step_err(cf, span, format!("{kw} source {e}")))?;
                    if rels.len() > 1 {
                        globbed = true;
                    }
                    for rel in rels {
                        let path = self.opts.context.join(&rel);
                        if is_add
                            && c.unpack != Some(false)
                            && path.is_file()
                            && copy::is_archive(&path)
                        {
                            sources.push(Source::Archive { path });
                        } else {
                            sources.push(Source::Host {
                                path,
                                ctx_rel: Some(rel),
                            });
                        }
                    }
                }
            }
        }
        if chown.is_some() {
            self.ensure_tree(state)?;
        }
        let owner = match &chown {
            Some(spec) => users::resolve_in_layers(&state.lowers, spec)
                .map_err(|e| step_err(cf, span, format!("--chown={spec}: {e}")))?,
            None => (0, 0),
        };
        let excludes = IgnoreMatcher::new(&c.excludes.join("\n"))
            .map_err(|e| step_err(cf, span, format!("--exclude: {e}")))?;
        let job = CopyJob {
            dest_is_dir: dest.ends_with('/') || c.sources.len() > 1 || globbed,
            sources,
            dest: dest_abs.clone(),
            owner,
            chmod,
            ignore: self.ignore.clone(),
            excludes,
        };
        let extra: Vec<&str> = view_keys.iter().map(String::as_str).collect();
        let digest = copy::content_digest(&job, &extra)
            .map_err(|e| step_err(cf, span, format!("{kw}: {e}")))?;
        let text = format!(
            "{kw} dest={dest_abs} dir={} owner={owner:?} chmod={chmod:?} excludes={:?}",
            job.dest_is_dir, c.excludes
        );
        let key = self.key(state, &text, &BTreeMap::new(), Some(&digest));
        let budgets = self.opts.budgets.clone();
        let created_by = ins.text.clone();
        let unchanged = |_: &Self, _: &StageState| Ok(false);
        self.fs_step(
            state,
            key,
            &created_by,
            span,
            unchanged,
            move |b, st, snap| {
                let scratch = snap.to_path_buf();
                b.worker(st, snap, &views, move |merged, mounted| {
                    copy::apply(&job, merged, mounted, &scratch, &budgets).map_err(|e| {
                        let mut s = e.to_string();
                        let mut cur = std::error::Error::source(&e);
                        while let Some(c) = cur {
                            s.push_str(": ");
                            s.push_str(&c.to_string());
                            cur = c.source();
                        }
                        s
                    })
                })
                .map_err(|e| match e {
                    BuildError::Step { message, .. } => step_err(cf, span, message),
                    other => other,
                })
            },
        )
    }
}

/// `ADD URL`: fetched by ags (not inside the sandbox), verified against `--checksum`.
fn download(url: &str, checksum: Option<&str>) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let expected = checksum
        .map(|c| Digest::parse(c).map_err(|e| format!("--checksum: {e}")))
        .transpose()?;
    let data = {
        let client = reqwest::blocking::Client::builder()
            .build()
            .map_err(|e| e.to_string())?;
        let resp = client
            .get(url)
            .send()
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?;
        let mut data = Vec::new();
        resp.take(MAX_DOWNLOAD + 1)
            .read_to_end(&mut data)
            .map_err(|e| e.to_string())?;
        if data.len() as u64 > MAX_DOWNLOAD {
            return Err(format!("larger than {MAX_DOWNLOAD} bytes"));
        }
        data
    };
    if let Some(d) = expected {
        d.verify(&data)
            .map_err(|e| format!("checksum mismatch: {e}"))?;
    }
    Ok(data)
}

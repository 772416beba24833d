//! Build-argument scoping and stage dependency analysis.
//!
//! Docker's `ARG` rules, which [`GlobalScope`] and [`StageScope`] implement:
//! - `ARG`s before the first `FROM` (global) can be used in `FROM` lines only;
//! - inside a stage an `ARG NAME` (without default) re-declares a global arg and takes its
//!   value; `ARG NAME=default` gives a default; either way `--build-arg NAME=...` wins;
//! - an arg is visible from its declaration to the end of the stage; `ENV` with the same
//!   name takes precedence over it;
//! - the proxy args ([`PREDEFINED_ARGS`]) may be given as build args without being
//!   declared; they reach `RUN` but are kept out of the image and the cache key;
//! - automatic platform args (`TARGETPLATFORM`, `BUILDARCH`, ...) are set in the global
//!   scope without declaration, and inside a stage only when declared.
//!
//! [`needed_stages`] computes which stages a target needs (through `FROM <stage>`,
//! `COPY --from=<stage>` and `RUN --mount=from=<stage>`), so the builder skips the rest.

use std::collections::{BTreeMap, BTreeSet};

use crate::expand::{ExpandError, expand};
use crate::parser::{ArgDecl, Containerfile, InstructionKind, Span};

/// Build args Docker accepts without an `ARG` declaration.
pub const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// An error resolving args or stage references, located in the Containerfile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    /// A value could not be expanded.
    #[error("{file}:{line}:{col}: cannot expand {what}")]
    Expand {
        /// The Containerfile name.
        file: String,
        /// Line of the value.
        line: usize,
        /// Column of the value.
        col: usize,
        /// What was being expanded, e.g. `the FROM image`.
        what: String,
        /// The failure.
        #[source]
        source: ExpandError,
    },
    /// `--target` names no stage.
    #[error("{file}: no build stage named {target:?}: the stages are {known}")]
    UnknownTarget {
        /// The Containerfile name.
        file: String,
        /// The requested target.
        target: String,
        /// The known stage names / indexes, comma-separated.
        known: String,
    },
    /// A stage that (indirectly) depends on itself.
    #[error("{file}:{line}:{col}: circular dependency: stage {stage} depends on itself")]
    Circular {
        /// The Containerfile name.
        file: String,
        /// Line of the reference closing the cycle.
        line: usize,
        /// Column of the reference closing the cycle.
        col: usize,
        /// The stage (name or index).
        stage: String,
    },
}

fn expand_at(
    cf: &Containerfile,
    span: Span,
    what: &str,
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::expand::Expanded, StageError> {
    expand(word, cf.directives.escape, lookup).map_err(|source| StageError::Expand {
        file: cf.file.clone(),
        line: span.line,
        col: span.col,
        what: what.to_string(),
        source,
    })
}

/// The values of the global args (those before the first `FROM`), for expanding `FROM`
/// lines and as the values re-declared args take inside stages.
#[derive(Debug, Clone)]
pub struct GlobalScope {
    values: BTreeMap<String, String>,
    build_args: BTreeMap<String, String>,
}

impl GlobalScope {
    /// Resolves the global args: each default is expanded with the args before it, and a
    /// build arg of the same name overrides it. `automatic` holds the platform args
    /// (`TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`, `BUILDPLATFORM`, ...).
    pub fn new(
        cf: &Containerfile,
        build_args: &BTreeMap<String, String>,
        automatic: &BTreeMap<String, String>,
    ) -> Result<Self, StageError> {
        let mut values = automatic.clone();
        for decl in &cf.global_args {
            if let Some(v) = build_args.get(&decl.name) {
                values.insert(decl.name.clone(), v.clone());
            } else if let Some(default) = &decl.default {
                let what = format!("the default of ARG {}", decl.name);
                let e = expand_at(cf, decl.span, &what, default, &|n| values.get(n).cloned())?;
                values.insert(decl.name.clone(), e.value);
            } else if !automatic.contains_key(&decl.name) {
                // Declared without a value: explicitly unset, even if an earlier ARG of the
                // same name had one.
                values.remove(&decl.name);
            }
        }
        Ok(GlobalScope {
            values,
            build_args: build_args.clone(),
        })
    }

    /// A global arg's value (automatic platform args included).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The `FROM` image of stage `index`, expanded with the global args.
    pub fn from_image(&self, cf: &Containerfile, index: usize) -> Result<String, StageError> {
        let stage = &cf.stages[index];
        let e = expand_at(cf, stage.span, "the FROM image", &stage.from.image, &|n| {
            self.values.get(n).cloned()
        })?;
        Ok(e.value)
    }

    /// The `FROM --platform=` of stage `index`, expanded with the global args.
    pub fn from_platform(
        &self,
        cf: &Containerfile,
        index: usize,
    ) -> Result<Option<String>, StageError> {
        let stage = &cf.stages[index];
        let Some(p) = &stage.from.platform else {
            return Ok(None);
        };
        let e = expand_at(cf, stage.span, "the FROM --platform", p, &|n| {
            self.values.get(n).cloned()
        })?;
        Ok(Some(e.value))
    }

    /// Build args that no `ARG` anywhere declares and that are not predefined; Docker warns
    /// about these ("one or more build-args were not consumed").
    pub fn unused_build_args(&self, cf: &Containerfile) -> Vec<String> {
        let mut declared: BTreeSet<&str> = cf.global_args.iter().map(|d| d.name.as_str()).collect();
        for stage in &cf.stages {
            for ins in &stage.instructions {
                if let InstructionKind::Arg(decls) = &ins.kind {
                    declared.extend(decls.iter().map(|d| d.name.as_str()));
                }
            }
        }
        self.build_args
            .keys()
            .filter(|k| !declared.contains(k.as_str()) && !PREDEFINED_ARGS.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

/// The variables visible while walking one stage: its `ENV`s (including those inherited
/// from the base image) and the args it declared so far.
#[derive(Debug, Clone)]
pub struct StageScope<'g> {
    global: &'g GlobalScope,
    env: BTreeMap<String, String>,
    args: BTreeMap<String, String>,
    declared: BTreeSet<String>,
}

impl<'g> StageScope<'g> {
    /// Starts a stage whose base image (or parent stage) sets `base_env`.
    pub fn new(
        global: &'g GlobalScope,
        base_env: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        StageScope {
            global,
            env: base_env.into_iter().collect(),
            args: BTreeMap::new(),
            declared: BTreeSet::new(),
        }
    }

    /// Applies an `ARG` declaration: build arg, else the expanded default, else the global
    /// arg of the same name (or automatic platform arg), else unset.
    pub fn declare_arg(&mut self, cf: &Containerfile, decl: &ArgDecl) -> Result<(), StageError> {
        self.declared.insert(decl.name.clone());
        let value = if let Some(v) = self.global.build_args.get(&decl.name) {
            Some(v.clone())
        } else if let Some(default) = &decl.default {
            let what = format!("the default of ARG {}", decl.name);
            Some(expand_at(cf, decl.span, &what, default, &|n| self.lookup(n))?.value)
        } else {
            self.global.get(&decl.name).map(str::to_string)
        };
        match value {
            Some(v) => self.args.insert(decl.name.clone(), v),
            None => self.args.remove(&decl.name),
        };
        Ok(())
    }

    /// Applies an `ENV` (already expanded by the caller).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_string(), value.to_string());
    }

    /// Applies every `ARG` and `ENV` of an instruction (other kinds are ignored). All pairs
    /// of one `ENV` line are expanded with the environment from before the line, as Docker
    /// does. Returns the expanded `ENV` pairs.
    pub fn apply(
        &mut self,
        cf: &Containerfile,
        kind: &InstructionKind,
        span: Span,
    ) -> Result<Vec<(String, String)>, StageError> {
        match kind {
            InstructionKind::Arg(decls) => {
                for d in decls {
                    self.declare_arg(cf, d)?;
                }
                Ok(Vec::new())
            }
            InstructionKind::Env(pairs) => {
                let mut out = Vec::new();
                for p in pairs {
                    let key =
                        expand_at(cf, span, "the ENV name", &p.key, &|n| self.lookup(n))?.value;
                    let what = format!("the value of ENV {key}");
                    let value = expand_at(cf, p.span, &what, &p.value, &|n| self.lookup(n))?.value;
                    out.push((key, value));
                }
                for (k, v) in &out {
                    self.set_env(k, v);
                }
                Ok(out)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// A variable as instructions see it: `ENV` first, then declared args, then the
    /// predefined proxy args given as build args.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.env.get(name) {
            return Some(v.clone());
        }
        if let Some(v) = self.args.get(name) {
            return Some(v.clone());
        }
        if PREDEFINED_ARGS.contains(&name) {
            return self.global.build_args.get(name).cloned();
        }
        None
    }

    /// Expands `word` in this scope, reporting which variables it used.
    pub fn expand(
        &self,
        cf: &Containerfile,
        span: Span,
        what: &str,
        word: &str,
    ) -> Result<crate::expand::Expanded, StageError> {
        expand_at(cf, span, what, word, &|n| self.lookup(n))
    }

    /// The stage's environment (`ENV`s, base image's included).
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// The declared args that have a value: set in `RUN`'s environment (unless an `ENV`
    /// of the same name wins) and part of `RUN`'s cache key.
    pub fn arg_values(&self) -> &BTreeMap<String, String> {
        &self.args
    }

    /// Proxy build args for `RUN`'s environment; never persisted or cached.
    pub fn proxy_args(&self) -> BTreeMap<String, String> {
        self.global
            .build_args
            .iter()
            .filter(|(k, _)| PREDEFINED_ARGS.contains(&k.as_str()) && !self.declared.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// What a `FROM`, `COPY --from` or `RUN --mount=from=` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageRef {
    /// Another stage of this file, by index.
    Stage(usize),
    /// An image to pull.
    Image(String),
    /// `FROM scratch`: the empty image.
    Scratch,
}

/// What stage `index` is based on. A name refers to an earlier stage only, so
/// `FROM golang AS golang` still pulls the `golang` image, as in Docker.
pub fn resolve_base(
    cf: &Containerfile,
    global: &GlobalScope,
    index: usize,
) -> Result<StageRef, StageError> {
    let image = global.from_image(cf, index)?;
    if image.eq_ignore_ascii_case("scratch") {
        return Ok(StageRef::Scratch);
    }
    let lower = image.to_ascii_lowercase();
    Ok(cf.stages[..index]
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
        .map_or(StageRef::Image(image), StageRef::Stage))
}

/// What a `--from=` value (already expanded) refers to: a stage name (any stage of the
/// file), a stage index, or else an image.
pub fn resolve_from(cf: &Containerfile, from: &str) -> StageRef {
    match cf.stage_index(from) {
        Some(i) => StageRef::Stage(i),
        None => StageRef::Image(from.to_string()),
    }
}

/// One reference from a stage to another stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageDep {
    /// The stage referred to.
    pub stage: usize,
    /// Where the reference is.
    pub span: Span,
}

/// The stages stage `index` refers to directly, in file order of the references.
pub fn stage_dependencies(
    cf: &Containerfile,
    global: &GlobalScope,
    index: usize,
) -> Result<Vec<StageDep>, StageError> {
    let stage = &cf.stages[index];
    let mut deps = Vec::new();
    if let StageRef::Stage(s) = resolve_base(cf, global, index)? {
        deps.push(StageDep {
            stage: s,
            span: stage.span,
        });
    }
    let mut scope = StageScope::new(global, []);
    for ins in &stage.instructions {
        let mut froms: Vec<&str> = Vec::new();
        match &ins.kind {
            InstructionKind::Copy(c) => froms.extend(c.from.as_deref()),
            InstructionKind::Run(r) => {
                froms.extend(r.mounts.iter().filter_map(|m| m.from.as_deref()))
            }
            other => {
                scope.apply(cf, other, ins.span)?;
            }
        }
        for from in froms {
            let expanded = scope.expand(cf, ins.span, "the --from value", from)?.value;
            if let StageRef::Stage(s) = resolve_from(cf, &expanded) {
                deps.push(StageDep {
                    stage: s,
                    span: ins.span,
                });
            }
        }
    }
    Ok(deps)
}

/// The stages needed to build `target` (a stage name or index; the last stage when
/// `None`), in build order, `target` included. Stages nothing refers to are left out.
pub fn needed_stages(
    cf: &Containerfile,
    global: &GlobalScope,
    target: Option<&str>,
) -> Result<Vec<usize>, StageError> {
    let target = match target {
        None => cf.stages.len() - 1,
        Some(t) => cf.stage_index(t).ok_or_else(|| StageError::UnknownTarget {
            file: cf.file.clone(),
            target: t.to_string(),
            known: cf
                .stages
                .iter()
                .map(|s| s.name.clone().unwrap_or_else(|| s.index.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })?,
    };
    let mut deps: BTreeMap<usize, Vec<StageDep>> = BTreeMap::new();
    let mut done = BTreeSet::new();
    // Depth-first with an explicit path so a cycle is reported where it closes.
    let mut path: Vec<usize> = Vec::new();
    visit(cf, global, target, &mut deps, &mut done, &mut path)?;
    Ok(done.into_iter().collect())
}

fn visit(
    cf: &Containerfile,
    global: &GlobalScope,
    index: usize,
    deps: &mut BTreeMap<usize, Vec<StageDep>>,
    done: &mut BTreeSet<usize>,
    path: &mut Vec<usize>,
) -> Result<(), StageError> {
    if done.contains(&index) {
        return Ok(());
    }
    path.push(index);
    let direct = stage_dependencies(cf, global, index)?;
    for dep in &direct {
        if path.contains(&dep.stage) {
            let s = &cf.stages[dep.stage];
            return Err(StageError::Circular {
                file: cf.file.clone(),
                line: dep.span.line,
                col: dep.span.col,
                stage: s.name.clone().unwrap_or_else(|| s.index.to_string()),
            });
        }
        visit(cf, global, dep.stage, deps, done, path)?;
    }
    deps.insert(index, direct);
    path.pop();
    done.insert(index);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const MULTI: &str = r#"
ARG BASE=debian
ARG TAG=bookworm
ARG IMAGE=${BASE}:${TAG}
FROM $IMAGE AS base
ARG TAG
ARG LOCAL=x-$TAG
RUN echo $TAG

FROM base AS deps
RUN --mount=type=cache,target=/c,from=tools true

FROM alpine AS tools
RUN true

FROM scratch AS unused
COPY --from=deps / /

FROM base
ARG SRC=deps
COPY --from=${SRC} /a /a
COPY --from=0 /b /b
COPY --from=docker.io/library/busybox /bin/sh /sh
"#;

    #[test]
    fn global_args_expand_in_from() {
        let cf = parse("Containerfile", MULTI).unwrap();
        let g = GlobalScope::new(&cf, &args(&[]), &args(&[])).unwrap();
        assert_eq!(g.from_image(&cf, 0).unwrap(), "debian:bookworm");
        let g = GlobalScope::new(&cf, &args(&[("TAG", "trixie")]), &args(&[])).unwrap();
        assert_eq!(g.from_image(&cf, 0).unwrap(), "debian:trixie");
        assert_eq!(g.get("IMAGE"), Some("debian:trixie"));
    }

    #[test]
    fn stage_args_must_be_redeclared() {
        let cf = parse("Containerfile", MULTI).unwrap();
        let g = GlobalScope::new(&cf, &args(&[]), &args(&[])).unwrap();
        let mut scope = StageScope::new(&g, [("PATH".to_string(), "/bin".to_string())]);
        assert_eq!(
            scope.lookup("TAG"),
            None,
            "global arg invisible before ARG TAG"
        );
        for ins in &cf.stages[0].instructions {
            scope.apply(&cf, &ins.kind, ins.span).unwrap();
        }
        assert_eq!(scope.lookup("TAG").as_deref(), Some("bookworm"));
        assert_eq!(scope.lookup("LOCAL").as_deref(), Some("x-bookworm"));
        assert_eq!(scope.lookup("BASE"), None, "not re-declared");
        assert_eq!(scope.lookup("PATH").as_deref(), Some("/bin"));
        assert_eq!(
            scope.arg_values(),
            &args(&[("LOCAL", "x-bookworm"), ("TAG", "bookworm")])
        );
    }

    #[test]
    fn build_args_override_defaults_and_env_wins_over_args() {
        let cf = parse(
            "Containerfile",
            "FROM a\nARG V=1\nARG W=$V\nENV V=env X=$V\nARG V=2\n",
        )
        .unwrap();
        let g = GlobalScope::new(&cf, &args(&[("W", "cli")]), &args(&[])).unwrap();
        let mut scope = StageScope::new(&g, []);
        let ins = &cf.stages[0].instructions;
        scope.apply(&cf, &ins[0].kind, ins[0].span).unwrap();
        scope.apply(&cf, &ins[1].kind, ins[1].span).unwrap();
        assert_eq!(scope.lookup("W").as_deref(), Some("cli"));
        let env = scope.apply(&cf, &ins[2].kind, ins[2].span).unwrap();
        // Both pairs see the environment from before the line: X gets the ARG value.
        assert_eq!(env, [("V".into(), "env".into()), ("X".into(), "1".into())]);
        scope.apply(&cf, &ins[3].kind, ins[3].span).unwrap();
        assert_eq!(scope.lookup("V").as_deref(), Some("env"));
        assert_eq!(scope.arg_values().get("V").map(String::as_str), Some("2"));
    }

    #[test]
    fn proxy_and_automatic_args() {
        let cf = parse(
            "Containerfile",
            "FROM --platform=$BUILDPLATFORM a\nARG TARGETARCH\nRUN x\n",
        )
        .unwrap();
        let auto = args(&[("BUILDPLATFORM", "linux/amd64"), ("TARGETARCH", "arm64")]);
        let g = GlobalScope::new(
            &cf,
            &args(&[("HTTP_PROXY", "http://p"), ("NOPE", "1")]),
            &auto,
        )
        .unwrap();
        assert_eq!(
            g.from_platform(&cf, 0).unwrap().as_deref(),
            Some("linux/amd64")
        );
        let mut scope = StageScope::new(&g, []);
        assert_eq!(scope.lookup("TARGETARCH"), None);
        let ins = &cf.stages[0].instructions[0];
        scope.apply(&cf, &ins.kind, ins.span).unwrap();
        assert_eq!(scope.lookup("TARGETARCH").as_deref(), Some("arm64"));
        assert_eq!(scope.lookup("HTTP_PROXY").as_deref(), Some("http://p"));
        assert_eq!(scope.proxy_args(), args(&[("HTTP_PROXY", "http://p")]));
        assert!(!scope.arg_values().contains_key("HTTP_PROXY"));
        assert_eq!(g.unused_build_args(&cf), ["NOPE"]);
    }

    #[test]
    fn dependencies_and_needed_stages() {
        let cf = parse("Containerfile", MULTI).unwrap();
        let g = GlobalScope::new(&cf, &args(&[]), &args(&[])).unwrap();
        assert_eq!(
            resolve_base(&cf, &g, 0).unwrap(),
            StageRef::Image("debian:bookworm".into())
        );
        assert_eq!(resolve_base(&cf, &g, 1).unwrap(), StageRef::Stage(0));
        assert_eq!(resolve_base(&cf, &g, 3).unwrap(), StageRef::Scratch);
        let deps: Vec<usize> = stage_dependencies(&cf, &g, 4)
            .unwrap()
            .iter()
            .map(|d| d.stage)
            .collect();
        assert_eq!(deps, [0, 1, 0]);
        // The last stage needs base, deps and (through deps' cache mount) tools, not unused.
        assert_eq!(needed_stages(&cf, &g, None).unwrap(), [0, 1, 2, 4]);
        assert_eq!(needed_stages(&cf, &g, Some("DEPS")).unwrap(), [0, 1, 2]);
        assert_eq!(needed_stages(&cf, &g, Some("3")).unwrap(), [0, 1, 2, 3]);
        assert_eq!(needed_stages(&cf, &g, Some("tools")).unwrap(), [2]);
        let err = needed_stages(&cf, &g, Some("nope")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Containerfile: no build stage named \"nope\": the stages are base, deps, tools, unused, 4"
        );
    }

    #[test]
    fn same_name_as_image_is_not_a_self_reference() {
        let cf = parse("Containerfile", "FROM golang AS golang\nRUN true\n").unwrap();
        let g = GlobalScope::new(&cf, &args(&[]), &args(&[])).unwrap();
        assert_eq!(
            resolve_base(&cf, &g, 0).unwrap(),
            StageRef::Image("golang".into())
        );
        assert_eq!(needed_stages(&cf, &g, None).unwrap(), [0]);
    }

    #[test]
    fn cycles_are_errors() {
        let src = "FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\nCOPY --from=one /y /y\n";
        let cf = parse("Containerfile", src).unwrap();
        let g = GlobalScope::new(&cf, &args(&[]), &args(&[])).unwrap();
        assert_eq!(
            needed_stages(&cf, &g, None).unwrap_err().to_string(),
            "Containerfile:2:1: circular dependency: stage two depends on itself"
        );
        let cf = parse("Containerfile", "FROM a AS me\nCOPY --from=me /x /y\n").unwrap();
        assert!(matches!(
            needed_stages(&cf, &g, None),
            Err(StageError::Circular { .. })
        ));
    }

    #[test]
    fn expansion_errors_are_located() {
        let cf = parse("Containerfile", "ARG X=${Y\nFROM a\n").unwrap();
        let err = GlobalScope::new(&cf, &args(&[]), &args(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Containerfile:1:5: cannot expand the default of ARG X"
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}

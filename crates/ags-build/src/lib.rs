//! Containerfile (Dockerfile) front end for ags: everything about a build that can be
//! decided from text alone, before any step runs; and the image root filesystems builds
//! and runs start from.
//!
//! - [`parser`]: Containerfile text to a [`parser::Containerfile`] of [`parser::Stage`]s and
//!   typed [`parser::Instruction`]s, each with a [`parser::Span`]; syntax errors are
//!   [`parser::ParseError`]s displayed as `FILE:LINE:COL: message`.
//! - [`expand`]: Docker's `$VAR` / `${VAR:-default}` expansion and quote removal, reporting
//!   which variables a value used.
//! - [`stages`]: `ARG` scoping (global vs stage args, build-arg overrides, proxy and
//!   platform args), stage lookup, and which stages a target needs.
//! - [`ignore`]: `.containerignore` / `.dockerignore` matching.
//! - [`cache_key`]: the step cache key.
//! - [`rootfs`]: a pulled image unpacked into its shared, immutable tree (inside the
//!   sandbox's user namespace, so files keep their owners), layer by layer while the pull
//!   still downloads later layers ([`rootfs::StreamingUnpack`]), and removing such trees.
//!
//! The parser keeps values as written; the builder expands them in the stage's scope:
//!
//! ```
//! use std::collections::BTreeMap;
//! use ags_build::parser::{parse, InstructionKind};
//! use ags_build::stages::{needed_stages, GlobalScope, StageScope};
//!
//! let cf = parse("Containerfile", "\
//! ARG BASE=alpine:3.20
//! FROM $BASE AS build
//! ARG NAME=world
//! RUN echo hello > /greeting
//! FROM scratch AS unused
//! FROM $BASE
//! COPY --from=build /greeting /srv/${NAME:-x}
//! ").unwrap();
//!
//! let build_args = BTreeMap::from([("BASE".to_string(), "alpine:3.21".to_string())]);
//! let global = GlobalScope::new(&cf, &build_args, &BTreeMap::new()).unwrap();
//! assert_eq!(global.from_image(&cf, 0).unwrap(), "alpine:3.21");
//! // The last stage needs `build` but not `unused`.
//! assert_eq!(needed_stages(&cf, &global, None).unwrap(), [0, 2]);
//!
//! // Walking a stage: ARG/ENV update the scope, other values are expanded in it.
//! let mut scope = StageScope::new(&global, []);
//! let stage = &cf.stages[2];
//! let InstructionKind::Copy(copy) = &stage.instructions[0].kind else { unreachable!() };
//! let dest = scope.expand(&cf, stage.instructions[0].span, "the COPY destination", &copy.dest).unwrap();
//! assert_eq!(dest.value, "/srv/x"); // NAME was declared in `build`, not in this stage
//! ```

pub mod builder;
pub mod cache_key;
pub mod expand;
pub mod ignore;
pub mod parser;
pub mod rootfs;
pub mod stages;

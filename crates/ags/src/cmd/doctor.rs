//! `ags doctor`: check the host, print a fix for each problem.

use ags_runtime::host::{self, Status};

use crate::exit;

/// Print every check; exit non-zero when something required is missing.
pub fn execute() -> anyhow::Result<i32> {
    let me = super::invoker();
    let mut failed = false;
    for c in host::checks(me.name.as_deref(), me.uid) {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        println!("[{tag}] {}: {}", c.name, c.detail);
        if let Some(h) = &c.hint {
            println!("       fix: {h}");
        }
        failed |= c.status == Status::Fail && c.required;
    }
    Ok(if failed { exit::CHECK_FAILED } else { exit::OK })
}

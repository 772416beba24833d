//! Exit codes. A sandboxed command's own status passes through unchanged (or 128 + the
//! signal that killed it); ags's own failures use codes a command rarely uses, following
//! the convention of `docker run` and `podman run`.

/// Success.
pub const OK: i32 = 0;
/// A check failed (`ags doctor`).
pub const CHECK_FAILED: i32 = 1;
/// Bad command line or input (clap also uses 2).
pub const USAGE: i32 = 2;
/// ags itself failed before or around the command (the sandbox could not be set up).
pub const RUNTIME_FAILURE: i32 = 125;

/// Map an error to its exit code: input errors are usage errors, the rest runtime failures.
pub fn code_for(err: &anyhow::Error) -> i32 {
    if err.downcast_ref::<crate::settings::InputError>().is_some() {
        USAGE
    } else {
        RUNTIME_FAILURE
    }
}

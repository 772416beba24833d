#!/usr/bin/env bash
# The test command (README.md, "Tests"): on a fresh Debian machine, run as root, it
# provisions the host (ci/provision.sh: packages, the unprivileged test user with
# subuid/subgid, a delegated cgroup, /dev/net/tun 0666), checks formatting and lints,
# builds, and runs the whole suite. The end-to-end tests start `ags` as the test user.
# Idempotent. As a normal user it skips provisioning and runs the suite as that user.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."

step() { printf '\n==> %s\n' "$*" >&2; }

if [[ $(id -u) -eq 0 ]]; then
    step "provisioning the host"
    bash ci/provision.sh >/dev/null
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build"
cargo build --workspace --all-targets --locked

if [[ $(id -u) -eq 0 ]]; then
    # Like a systemd user service with Delegate=yes: the runner and everything it starts
    # (ags as the test user included) live in a cgroup the test user owns.
    step "entering the delegated cgroup"
    bash ci/enter-delegated-cgroup.sh $$ >/dev/null
fi

step "cargo test (unit, integration against a real registry, end-to-end as the test user)"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee /tmp/ags-test.log
status=${PIPESTATUS[0]}

# Fuzz the untrusted-input parsers (manifests, configs, WWW-Authenticate, references,
# layers) briefly with libFuzzer, built on stable Rust.
step "fuzzing (${FUZZ_SECONDS:-15} s per target)"
fuzz_status=0
FUZZ_SECONDS=${FUZZ_SECONDS:-15} bash ci/fuzz.sh || fuzz_status=$?
if [[ $fuzz_status -ne 0 && $status -eq 0 ]]; then
    status=$fuzz_status
fi

passed=$(grep -Eo '[0-9]+ passed' /tmp/ags-test.log | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' /tmp/ags-test.log | awk '{s+=$1} END {print s+0}')
printf '\n%s passed, %s failed\n' "$passed" "$failed"
exit "$status"

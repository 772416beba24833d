#!/usr/bin/env bash
# Moves processes into the cgroup that ci/provision.sh delegated to the test user, in
# every hierarchy, so that they and their children (for example a test runner that then
# switches to agstest) live in a cgroup the user owns: what a systemd user service with
# Delegate=yes gets. Rootless runtimes started from there can create their containers'
# cgroups at /ags-delegate/<id>.
#
# - cgroup v1/hybrid: writes PID to <mount>/ags-delegate/cgroup.procs for every hierarchy
#   listed by cgroup_hierarchies (lib.sh).
# - cgroup v2: writes PID to /sys/fs/cgroup/ags-delegate/runner/cgroup.procs (a leaf: v2
#   forbids processes in ags-delegate itself once it hands controllers to children).
#
# Writing a pid to cgroup.procs moves the whole thread group. Run as root, after
# ci/provision.sh. Idempotent: moving a process into the cgroup it is in is a no-op.
#
# Usage: ci/enter-delegated-cgroup.sh PID...     e.g. ci/enter-delegated-cgroup.sh $$
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ -r ${AGS_CI_ENV_FILE:-/run/ags-ci.env} ]]; then
    # shellcheck source=/dev/null
    . "${AGS_CI_ENV_FILE:-/run/ags-ci.env}"
fi
# shellcheck source=lib.sh
. "$here/lib.sh"

[[ $# -ge 1 ]] || die "usage: ${0##*/} PID..."
require_root
for pid in "$@"; do
    [[ $pid =~ ^[0-9]+$ ]] || die "not a pid: $pid"
    [[ -d /proc/$pid ]] || die "no such process: $pid"
done

targets=()
if [[ $(cgroup_mode) == v2 ]]; then
    targets+=("$AGS_CGROUP_ROOT/$AGS_CGROUP_DELEGATE_NAME/runner")
else
    while read -r mount; do
        targets+=("$mount/$AGS_CGROUP_DELEGATE_NAME")
    done < <(cgroup_hierarchies)
fi

for dir in "${targets[@]}"; do
    [[ -d $dir ]] || die "$dir does not exist: run ci/provision.sh first"
    for pid in "$@"; do
        echo "$pid" >"$dir/cgroup.procs" || die "could not move pid $pid into $dir"
    done
done
log "moved pid(s) $* into ${#targets[@]} delegated cgroup(s) ($AGS_CGROUP_DELEGATE_NAME)"

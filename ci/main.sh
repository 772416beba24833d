#!/usr/bin/env bash
# The main job (README.md, "Quick start"): provision the host when run as root, build ags
# in release mode, make a busybox rootfs, and run a command in a locked-down sandbox
# through `ags run`, as the unprivileged test user when run as root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."

if [[ $(id -u) -eq 0 ]]; then
    bash ci/provision.sh >/dev/null
    # shellcheck source=/dev/null
    . /run/ags-ci.env
    bash ci/enter-delegated-cgroup.sh $$ >/dev/null
fi

cargo build --release -p ags
rootfs=${AGS_ROOTFS:-/tmp/ags-demo-rootfs}
bash ci/mk-busybox-rootfs.sh "$rootfs" >/dev/null

# shellcheck disable=SC2016 # expanded inside the sandbox
cmd=(target/release/ags run --network egress --rootfs "$rootfs" -- sh -c
    'echo "hello from the sandbox: $(id)"; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status; ls /sys/fs/cgroup | wc -l')
if [[ $(id -u) -eq 0 ]]; then
    chown -R "$AGS_TEST_UID:$AGS_TEST_GID" "$rootfs"
    exec setpriv --reuid="$AGS_TEST_UID" --regid="$AGS_TEST_GID" --init-groups \
        env -i HOME="$AGS_TEST_HOME" XDG_RUNTIME_DIR="$AGS_TEST_RUNTIME_DIR" PATH=/usr/bin:/bin "${cmd[@]}"
fi
exec "${cmd[@]}"

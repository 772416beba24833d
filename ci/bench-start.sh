#!/usr/bin/env bash
# Start-latency benchmark: how long `ags run` takes to start a container running
# /bin/true and reap it, against peer tools doing the same on the same host in the same
# run, all rootless (as the test user from ci/provision.sh) on one busybox rootfs from
# ci/mk-busybox-rootfs.sh. Prints a table of medians and the ratios ags/bwrap, ags/runc,
# ags/crun and podman/ags on stdout. It never fails because a peer fails: a peer that
# cannot run is reported with the reason and left out.
#
# Run as root after ci/provision.sh. The script moves itself into the delegated cgroup
# (ci/enter-delegated-cgroup.sh $$) and then runs every command as the test user with
# setpriv (no PAM, no capabilities left), with HOME and XDG_RUNTIME_DIR set as a login
# session would, so that ags and the peers own the cgroup they start in: what a systemd
# user service with Delegate=yes gets.
#
# Contestants (all with a read-only root, all as the unprivileged user):
#   ags        $AGS_BIN run --rootfs ROOTFS -- /bin/true (skipped if $AGS_BIN is missing)
#   bwrap      bwrap --unshare-user --unshare-pid --unshare-ipc --unshare-uts
#              --unshare-net --ro-bind ROOTFS / --proc /proc --dev /dev /bin/true
#              (no cgroup, no seccomp)
#   runc       bundle from `runc spec --rootless` plus a network namespace, root.readonly,
#              args [/bin/true], linux.cgroupsPath /ags-delegate/bench-runc: a cgroup
#              per container in the delegated cgroup, as ags makes. `runc spec --rootless`
#              already has no linux.resources (the v1 devices controller cannot be written
#              rootless). Without delegation runc only works with no cgroupsPath (it then
#              ignores the EACCES and runs with no cgroup); inside the delegated cgroup it
#              would then create <current cgroup>/<id> anyway, so there is no "no cgroup"
#              variant here.
#   crun       the same bundle with cgroupsPath /ags-delegate/bench-crun. crun 1.8
#              refuses any hybrid host whose cgroup2 lists a controller ("cgroups in hybrid
#              mode not supported, drop all controllers from cgroupv2"; here it lists
#              hugetlb, which is bound to no v1 hierarchy). Workaround: the benchmark runs
#              crun in a private mount namespace (made by root before dropping to the
#              user) in which an empty file is bind-mounted over
#              /sys/fs/cgroup/unified/cgroup.controllers; crun then also creates its
#              cgroup in the delegated unified/ags-delegate. The host is left unchanged.
#   podman     podman run --rm --network=none --read-only --runtime runc --rootfs ROOTFS
#              /bin/true. --read-only: podman otherwise writes /run/.containerenv into the
#              (root-owned) rootfs; --runtime runc: podman's default crun hits the hybrid
#              check above, and podman runs its runtime in the mount namespace of its
#              rootless pause process, out of reach of the workaround. Rootless podman on
#              cgroup v1 makes no cgroup. Its configuration (cgroupfs manager, file events
#              logger: no systemd here) comes from ci/provision.sh.
#
# Usage: ci/bench-start.sh
# Environment:
#   AGS_BIN       ags binary (default /work/main/target/release/ags, or
#                 <repo>/target/release/ags relative to this script)
#   AGS_RUN_ARGS  extra arguments for `ags run`, before --rootfs (default none)
#   BENCH_RUNS    timed runs per contestant (default 30)
#   BENCH_WARMUP  untimed warm-up runs per contestant (default 3)
#   BENCH_PEERS   contestants to run, in this order (default "ags bwrap crun runc podman")
#   BENCH_OUT     directory for hyperfine's JSON and summary.{txt,json} (default a new
#                 /tmp/ags-bench-start.XXXXXX, kept and printed)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

require_root
[[ -r $AGS_CI_ENV_FILE ]] || die "$AGS_CI_ENV_FILE not found: run ci/provision.sh first"
# shellcheck source=/dev/null
. "$AGS_CI_ENV_FILE"
: "${AGS_TEST_USER:?} ${AGS_TEST_UID:?} ${AGS_TEST_GID:?} ${AGS_TEST_HOME:?} ${AGS_TEST_RUNTIME_DIR:?}"
command -v hyperfine >/dev/null || die "hyperfine not found: run ci/provision.sh"

ags_bin=${AGS_BIN:-$(cd "$here/.." && pwd)/target/release/ags}
runs=${BENCH_RUNS:-30}
warmup=${BENCH_WARMUP:-3}
peers=${BENCH_PEERS:-ags bwrap crun runc podman}
out=${BENCH_OUT:-$(mktemp -d /tmp/ags-bench-start.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
chmod 0755 "$out"
chown "$AGS_TEST_UID:$AGS_TEST_GID" "$out"

work=$(mktemp -d /tmp/ags-bench-work.XXXXXX)

trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
rootfs=$("$here/mk-busybox-rootfs.sh" "$work/rootfs")

# as_user CMD...: runs CMD as the test user with a login-like environment (setpriv
# leaves no capability behind: all of real, effective and saved ids change).
user_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
user_cmd=(setpriv --reuid="$AGS_TEST_UID" --regid="$AGS_TEST_GID" --init-groups --reset-env
    env PATH="$user_path" XDG_RUNTIME_DIR="$AGS_TEST_RUNTIME_DIR"
    AGS_CGROUP_DELEGATE_NAME="$AGS_CGROUP_DELEGATE_NAME")
as_user() { "${user_cmd[@]}" "$@"; }

# The crun workaround for hybrid hosts (see the header): a prefix that runs the rest of
# the command line in a private mount namespace with an empty cgroup.controllers.
crun_prefix=()
unified=$AGS_CGROUP_ROOT/unified
if [[ $(cgroup_mode) == v1 && -e $unified/cgroup.controllers ]] && is_cgroup2 "$unified" &&
    [[ -n $(<"$unified/cgroup.controllers") ]]; then
    : >"$work/empty"
    # shellcheck disable=SC2016 # $1 is expanded by the inner sh
    crun_prefix=(unshare -m --propagation private -- sh -c
        'mount --bind "$1" "$2/cgroup.controllers" && shift 2 && exec "$@"'
        sh "$work/empty" "$unified")
    log "hybrid host whose cgroup2 lists '$(<"$unified/cgroup.controllers")': crun runs with the mount-namespace workaround"
fi

# make_bundle DIR CGROUPS_PATH: an OCI bundle for runc/crun from `runc spec --rootless`.
make_bundle() {
    local dir=$1 cgroups_path=$2
    install -d -o "$AGS_TEST_UID" -g "$AGS_TEST_GID" "$dir"
    (cd "$dir" && as_user runc spec --rootless)
    as_user python3 - "$dir/config.json" "$rootfs" "$cgroups_path" <<'EOF'
import json, sys
path, rootfs, cgroups_path = sys.argv[1:]
with open(path) as f:
    spec = json.load(f)
spec["root"] = {"path": rootfs, "readonly": True}
spec["process"]["args"] = ["/bin/true"]
spec["process"]["terminal"] = False
linux = spec["linux"]
# The same namespaces as bwrap --unshare-user/pid/ipc/uts/net (+ mount).
if not any(ns["type"] == "network" for ns in linux["namespaces"]):
    linux["namespaces"].append({"type": "network"})
# Rootless v1: the devices controller is always written when resources are present.
linux.pop("resources", None)
if cgroups_path:
    linux["cgroupsPath"] = cgroups_path
else:
    linux.pop("cgroupsPath", None)
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
EOF
}

# Each contestant: name -> command line (an array built on demand) and a prefix run as
# root before dropping to the user (only crun's workaround uses one).
cmd=()
prefix=()
skip_reason=
setup() {
    local name=$1 cg=/$AGS_CGROUP_DELEGATE_NAME/bench-$1
    cmd=()
    prefix=()
    skip_reason=
    case $name in
    ags)
        if [[ ! -x $ags_bin ]]; then
            skip_reason="$ags_bin not found (build it with cargo build --release, or set AGS_BIN)"
            return
        fi
        local -a extra=()
        read -r -a extra <<<"${AGS_RUN_ARGS:-}"
        cmd=("$ags_bin" run "${extra[@]}" --rootfs "$rootfs" -- /bin/true)
        ;;
    bwrap)
        cmd=(bwrap --unshare-user --unshare-pid --unshare-ipc --unshare-uts --unshare-net
            --ro-bind "$rootfs" / --proc /proc --dev /dev /bin/true)
        ;;
    runc | crun)
        local runtime=$name
        command -v "$runtime" >/dev/null || {
            skip_reason="$runtime is not installed"
            return
        }
        make_bundle "$work/bundle-$name" "$cg"
        cmd=("$(command -v "$runtime")" --root "$AGS_TEST_RUNTIME_DIR/ags-bench-$runtime"
            run --bundle "$work/bundle-$name" "bench-$name-$$")
        if [[ $runtime == crun ]]; then prefix=("${crun_prefix[@]}"); fi
        ;;
    podman)
        command -v podman >/dev/null || {
            skip_reason="podman is not installed"
            return
        }
        cmd=(podman run --rm --network=none --read-only --runtime runc --rootfs "$rootfs" /bin/true)
        ;;
    *) skip_reason="unknown contestant (known: ags bwrap crun runc podman)" ;;
    esac
}

"$here/enter-delegated-cgroup.sh" "$$"
cd "$work"

# results.tsv: contestant, median in ms (empty when it did not run), reason.
results=$work/results.tsv
: >"$results"
for name in $peers; do
    setup "$name"
    if [[ -n $skip_reason ]]; then
        warn "skipping $name: $skip_reason"
        printf '%s\t\t%s\n' "$name" "$skip_reason" >>"$results"
        continue
    fi
    # One untimed run first: it shows why a contestant cannot run, and gives podman its
    # slow first start (pause process, storage) outside the measurement.
    rc=0
    timeout 120 "${prefix[@]}" "${user_cmd[@]}" "${cmd[@]}" >"$work/$name.check" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        reason="exits with status $rc"
        if [[ $rc -eq 124 ]]; then reason+=" (timed out after 120s)"; fi
        reason+=": $(tail -n 3 "$work/$name.check" | tr '\n\t' '  ')"
        warn "skipping $name: $reason"
        printf '%s\t\t%s\n' "$name" "$reason" >>"$results"
        continue
    fi
    log "benchmarking $name: ${cmd[*]}"
    if ! timeout 600 "${prefix[@]}" "${user_cmd[@]}" \
        hyperfine -N --style basic --warmup "$warmup" --runs "$runs" \
        --export-json "$out/$name.json" --command-name "$name" "$(printf '%q ' "${cmd[@]}")" >&2; then
        reason="hyperfine failed (a run exited non-zero or timed out)"
        warn "$name: $reason"
        printf '%s\t\t%s\n' "$name" "$reason" >>"$results"
        continue
    fi
    printf '%s\t%s\t\n' "$name" \
        "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"] * 1000)' "$out/$name.json")" \
        >>"$results"
done

# --- report: a table on stdout (and summary.txt), the same as JSON in summary.json ---
python3 - "$results" "$out" "$AGS_TEST_USER" "$runs" "$warmup" <<'EOF' | tee "$out/summary.txt"
import json, sys
results, out, user, runs, warmup = sys.argv[1:]
rows = [line.rstrip("\n").split("\t") for line in open(results) if line.strip()]
median = {name: float(ms) for name, ms, _ in rows if ms}
print(f"start latency of /bin/true, rootless as {user}: median of {runs} runs ({warmup} warm-up)")
print(f"{'contestant':<10} {'median ms':>10}  note")
for name, ms, why in rows:
    print(f"{name:<10} {float(ms):>10.2f}" if ms else f"{name:<10} {'-':>10}  {why}")
ratios = {}
print()
for a, b in [("ags", "bwrap"), ("ags", "runc"), ("ags", "crun"), ("podman", "ags")]:
    r = median[a] / median[b] if a in median and b in median else None
    ratios[f"{a}/{b}"] = r
    print(f"{a + '/' + b:<11}= {r:.2f}" if r is not None else f"{a + '/' + b:<11}= n/a")
with open(f"{out}/summary.json", "w") as f:
    json.dump({"runs": int(runs), "warmup": int(warmup), "median_ms": median, "ratios": ratios,
               "skipped": {name: why for name, ms, why in rows if not ms}}, f, indent=2)
EOF
log "results in $out (hyperfine JSON per contestant, summary.txt, summary.json)"
exit 0

#!/usr/bin/env bash
# Agent start benchmark (issue 5): how long `ags --agent shell --lockdown -- -c true` takes
# from start to exit with the image already present, without network (`--network none`,
# target: median <= 25 ms) and with egress (`--network egress`, target: median <= 60 ms),
# against `podman run` with the lockdown flags the Podman-based agent-sandbox passes
# (tightened to what ags's lockdown enforces, below), on the same image, in the same run,
# both rootless as the test user from ci/provision.sh. Prints a table of medians, the
# ratios ags/podman (and podman/ags), pass/fail against the targets and the peak RSS of
# both on stdout (also summary.txt, summary.json). It never fails because a contestant
# fails: one that cannot run is reported with the reason and left out.
#
# Setup, all on this machine:
# - a Debian trixie base from ci/mk-debian-base.sh (cached in /var/cache/ags-ci), pushed
#   with `ags-testimage push-tar` as library/debian:trixie-slim (Cmd bash) to a plain-HTTP
#   registry (ci/registry.sh) on a free port P of 127.0.0.1; ags and podman both pull
#   that manifest, so they run the same layer bytes (the script checks the digests);
# - a temporary HOME for the test user holding everything either tool reads or writes:
#     ~/.config/ags/config.toml     [sandbox] image = "127.0.0.1:P/library/debian:trixie-slim"
#                                   [registries.hosts."127.0.0.1:P"] insecure = true
#     ~/.local/share/ags            ags's store (its default place)
#     ~/.config/containers/         the test user's containers.conf from provision.sh
#                                   (cgroupfs manager, file events logger: no systemd) and
#                                   a storage.conf: overlay driver (native rootless overlay,
#                                   kernel >= 5.13), graph root in this HOME, run root a new
#                                   directory in $XDG_RUNTIME_DIR (podman's default place)
#   so both measured command lines are exactly what a user types, without store flags;
# - a workspace: a git repository (`git init` + one empty commit) in a temp directory,
#   the current directory of every run.
# The image is pulled before anything is measured (`ags pull`, `podman pull`); then each
# contestant gets one untimed run (it shows why a contestant cannot run, and does the
# one-time work: ags unpacks the image, podman starts its rootless pause process and
# maps the image for keep-id) and BENCH_WARMUP untimed runs inside hyperfine.
#
# Contestants (the same argv, `bash -c true`, in the same image):
#   ags     $AGS_BIN --agent shell --lockdown --network MODE -- -c true
#           lockdown (crates/ags-agent/src/plan.rs, ags-runtime policy.rs): read-only image
#           root; tmpfs /tmp (1 GiB, exec), /var/tmp (256 MiB, noexec), /run (64 MiB,
#           noexec), /home/dev (1 GiB, 0700), all nosuid,nodev, 65536 inodes; no
#           capabilities, no_new_privs, seccomp; 4096 processes (its own cgroup below the
#           delegated one), no memory limit unless configured; the invoking user is
#           1000:1000 inside; the workspace read-write at its own path and the working
#           directory, .git pinned onto itself, .git/hooks and .git/config read-only; env
#           HOME TERM LANG AGS_SANDBOX AGS_AGENT AGS_LOCKDOWN; hostname ags-shell;
#           egress: pasta with no route back to the host; none: loopback only.
#   podman  podman run --rm --pull=never --runtime runc
#             --userns=keep-id:uid=1000,gid=1000
#             --security-opt no-new-privileges --security-opt label=disable --cap-drop all
#             --pids-limit 4096 --read-only
#             --tmpfs /tmp:rw,nosuid,nodev,exec,size=1g,mode=1777
#             --tmpfs /var/tmp:rw,nosuid,nodev,noexec,size=256m,mode=1777
#             --tmpfs /run:rw,nosuid,nodev,noexec,size=64m,mode=755
#             --tmpfs /home/dev:rw,nosuid,nodev,exec,size=1g,mode=700,U
#             -v WS:WS:rw,nosuid,nodev -v WS/.git:WS/.git:rw,nosuid,nodev
#             -v WS/.git/hooks:WS/.git/hooks:ro,nosuid,nodev
#             -v WS/.git/config:WS/.git/config:ro,nosuid,nodev -w WS
#             --hostname ags-shell -e HOME=/home/dev -e TERM=xterm-256color -e LANG=C.UTF-8
#             -e AGS_SANDBOX=1 -e AGS_AGENT=shell -e AGS_LOCKDOWN=1
#             --network none | slirp4netns:allow_host_loopback=false
#             IMAGE bash -c true
#           agent-sandbox v0.17.1's lockdown (see /work/shared/reference/: podman/args.rs,
#           plan/types.rs) passes --rm --pull=never, --userns=keep-id, no-new-privileges,
#           label=disable, --cap-drop all, --pids-limit 4096, the three tmpfs with these
#           sizes, the workspace at its own path as workdir, and
#           slirp4netns:allow_host_loopback=false (pasta only from Podman 6; this is 4.3).
#           Added to match ags's lockdown: --read-only (agent-sandbox leaves the root
#           writable), the tmpfs home, the read-only .git/hooks and .git/config, the
#           environment and hostname, keep-id's uid=1000,gid=1000 (ags's in-sandbox user;
#           same cost as plain keep-id) and `--network none` for the no-network case.
#           Left out: -it (no terminal here, ags gets none either), --name and an empty
#           --env-file (no effect on start), the `bash -lc SCRIPT` wrapper (both run
#           `bash -c true`). --runtime runc: crun 1.8 refuses this hybrid cgroup host
#           (ci/README.md). podman's --tmpfs rejects nr_inodes, so its tmpfs have the
#           kernel's default inode limit. Rootless podman on cgroup v1 ignores
#           --pids-limit ("Resource limits are not supported and ignored on cgroups V1
#           rootless systems") where ags writes the limit into its delegated cgroup.
#
# Timing: hyperfine -N (no shell) started as the test user in the workspace, BENCH_RUNS
# timed runs after BENCH_WARMUP untimed ones; median, min and max of the wall-clock time
# from exec to exit. Peak RSS comes from BENCH_RSS_RUNS separate runs under
# /usr/bin/time -f %M (the largest maximum RSS of the command and the children it waited
# for: ags's holder and helpers; podman's conmon and runtime are not waited for), kept out
# of the timed runs. With egress, ags's figure is pasta's launcher (~30 MB before it
# forks into the background); ags's own is the one without network. The measured part (untimed checks, hyperfine, RSS runs) holds an
# exclusive flock on BENCH_LOCK, so that benchmarks of several worktrees do not overlap;
# the load average before and after is reported: other work on the machine shows up in
# the figures. Do not wrap this script in `flock BENCH_LOCK` yourself (it would wait for
# itself).
#
# Run as root after ci/provision.sh. The script moves itself into the delegated cgroup
# (ci/enter-delegated-cgroup.sh $$) and runs every command as the test user with setpriv
# (no PAM, no capabilities left), with HOME, USER and XDG_RUNTIME_DIR set as a login
# session would: what a systemd user service with Delegate=yes gets.
#
# Usage: ci/bench-agent.sh
# Environment:
#   AGS_BIN            ags binary (default <repo>/target/release/ags)
#   TESTIMAGE_BIN      a built ags-testimage; when unset the script runs
#                      cargo build --release -p ags-e2e --bin ags-testimage
#   BENCH_RUNS         timed runs per contestant and network (default 30)
#   BENCH_WARMUP       untimed hyperfine warm-up runs (default 3)
#   BENCH_RSS_RUNS     runs under /usr/bin/time for the peak RSS (default 5; 0: none)
#   BENCH_NETWORKS     network modes, in this order (default "none egress")
#   BENCH_PEERS        contestants, in this order (default "ags podman")
#   BENCH_DEBIAN_BASE  an OUT_DIR of ci/mk-debian-base.sh to use (default: run it)
#   BENCH_PORT         registry port (default the first free port from 5330 to 5399)
#   BENCH_LOCK         lock file held while measuring (default /tmp/ags-bench.lock;
#                      empty: no lock)
#   BENCH_OUT          directory for the hyperfine JSON, logs and summary.{txt,json}
#                      (default a new /tmp/ags-bench-agent.XXXXXX, kept and printed)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

require_root
[[ -r $AGS_CI_ENV_FILE ]] || die "$AGS_CI_ENV_FILE not found: run ci/provision.sh first"
# shellcheck source=/dev/null
. "$AGS_CI_ENV_FILE"
: "${AGS_TEST_USER:?} ${AGS_TEST_UID:?} ${AGS_TEST_GID:?} ${AGS_TEST_HOME:?} ${AGS_TEST_RUNTIME_DIR:?}"
for tool in hyperfine git flock python3; do
    command -v "$tool" >/dev/null || die "$tool not found: run ci/provision.sh"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found: run ci/provision.sh (package time)"
containers_conf=$AGS_TEST_HOME/.config/containers/containers.conf

ags_bin=${AGS_BIN:-$repo/target/release/ags}
runs=${BENCH_RUNS:-30}
warmup=${BENCH_WARMUP:-3}
rss_runs=${BENCH_RSS_RUNS:-5}
networks=${BENCH_NETWORKS:-none egress}
peers=${BENCH_PEERS:-ags podman}
lock=${BENCH_LOCK-/tmp/ags-bench.lock}
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number, not '$runs'"
[[ $warmup =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a number, not '$warmup'"
[[ $rss_runs =~ ^[0-9]+$ ]] || die "BENCH_RSS_RUNS must be a number, not '$rss_runs'"
for net in $networks; do
    [[ $net == none || $net == egress ]] || die "BENCH_NETWORKS: unknown network '$net' (known: none egress)"
done
# The issue-5 targets for ags's median, in milliseconds.
declare -A target_ms=([none]=25 [egress]=60)

out=${BENCH_OUT:-$(mktemp -d /tmp/ags-bench-agent.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# hyperfine and /usr/bin/time write here as the test user.
chmod 0755 "$out"
chown "$AGS_TEST_UID:$AGS_TEST_GID" "$out"
work=$(mktemp -d /tmp/ags-bench-agent-work.XXXXXX)
chmod 0755 "$work"
# podman refuses run roots longer than 50 characters: a short one on the runtime tmpfs.
runroot=$(mktemp -d "$AGS_TEST_RUNTIME_DIR/bench-agent.XXXXXX")
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    "$here/registry.sh" stop "$work/registry" 2>/dev/null || true
    # Root removes what the user namespaces created (files owned by subordinate ids).
    rm -rf "$work" "$runroot"
}
trap cleanup EXIT

# The contestants start containers in cgroups below the delegated one, as a login
# session's would.
"$here/enter-delegated-cgroup.sh" $$ >/dev/null

# --- the image in a local registry ------------------------------------------------------
base=${BENCH_DEBIAN_BASE:-}
if [[ -z $base ]]; then
    base=$("$here/mk-debian-base.sh" "$work/debian-base")
fi
[[ -r $base/rootfs.env && -r $base/layer.tar.gz ]] || die "$base is not an output of ci/mk-debian-base.sh"
base_created=$(sed -n 's/^CREATED=//p' "$base/rootfs.env")

port=${BENCH_PORT:-}
if [[ -z $port ]]; then
    port=$(free_port 5330 5399) || die "no free port between 5330 and 5399 (set BENCH_PORT)"
fi
"$here/registry.sh" start plain "$port" "$work/registry" >/dev/null
image=127.0.0.1:$port/library/debian:trixie-slim

testimage=${TESTIMAGE_BIN:-}
if [[ -z $testimage ]]; then
    log "building ags-testimage (cargo build --release -p ags-e2e --bin ags-testimage)"
    (cd "$repo" && cargo build --release -p ags-e2e --bin ags-testimage >&2) ||
        die "cannot build ags-testimage"
    testimage=${CARGO_TARGET_DIR:-$repo/target}/release/ags-testimage
fi
[[ -x $testimage ]] || die "$testimage not found"
log "pushing the Debian base ($base) as $image"
digest=$("$testimage" push-tar --registry "127.0.0.1:$port" --insecure --repo library/debian \
    --tag trixie-slim --mtime "$(date -u -d "$base_created" +%s)" --config-cmd bash \
    "$base/layer.tar.gz")

# --- the test user's temporary HOME and workspace ---------------------------------------
home=$work/home
ws=$work/ws
install -d -o "$AGS_TEST_UID" -g "$AGS_TEST_GID" -m 0700 "$home" "$home/.config" \
    "$home/.config/ags" "$home/.config/containers"
install -d -o "$AGS_TEST_UID" -g "$AGS_TEST_GID" -m 0755 "$ws"
chown "$AGS_TEST_UID:$AGS_TEST_GID" "$runroot"
chmod 0700 "$runroot"
cat >"$home/.config/ags/config.toml" <<EOF
# ci/bench-agent.sh: the Debian base from the local registry.
[sandbox]
image = "$image"

[registries.hosts."127.0.0.1:$port"]
insecure = true
EOF
if [[ -r $containers_conf ]]; then
    cp "$containers_conf" "$home/.config/containers/containers.conf"
else
    warn "$containers_conf not found (run ci/provision.sh): podman uses its defaults"
fi
cat >"$home/.config/containers/storage.conf" <<EOF
# ci/bench-agent.sh: podman's storage lives in this temporary HOME.
[storage]
driver = "overlay"
graphroot = "$home/.local/share/containers/storage"
runroot = "$runroot"
EOF
chown -R "$AGS_TEST_UID:$AGS_TEST_GID" "$home"

user_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
user_cmd=(setpriv --reuid="$AGS_TEST_UID" --regid="$AGS_TEST_GID" --init-groups --reset-env
    env PATH="$user_path" HOME="$home" USER="$AGS_TEST_USER" LOGNAME="$AGS_TEST_USER"
    XDG_RUNTIME_DIR="$AGS_TEST_RUNTIME_DIR" LANG=C.UTF-8 TERM=xterm-256color)
as_user() { (cd "$ws" && "${user_cmd[@]}" "$@"); }

as_user git init -q "$ws"
as_user git -c user.name=bench -c user.email=bench@localhost commit -q --allow-empty -m bench

# --- contestants ------------------------------------------------------------------------
# cmd_for NAME NETWORK: sets cmd to NAME's command line.
cmd=()
cmd_for() {
    local name=$1 net=$2
    case $name in
    ags) cmd=("$ags_bin" --agent shell --lockdown --network "$net" -- -c true) ;;
    podman)
        local podman_net=none
        [[ $net == egress ]] && podman_net=slirp4netns:allow_host_loopback=false
        # shellcheck disable=SC2054 # the commas separate mount and userns options
        cmd=(podman run --rm --pull=never --runtime runc
            --userns=keep-id:uid=1000,gid=1000
            --security-opt no-new-privileges --security-opt label=disable --cap-drop all
            --pids-limit 4096 --read-only
            --tmpfs /tmp:rw,nosuid,nodev,exec,size=1g,mode=1777
            --tmpfs /var/tmp:rw,nosuid,nodev,noexec,size=256m,mode=1777
            --tmpfs /run:rw,nosuid,nodev,noexec,size=64m,mode=755
            --tmpfs /home/dev:rw,nosuid,nodev,exec,size=1g,mode=700,U
            -v "$ws:$ws:rw,nosuid,nodev" -v "$ws/.git:$ws/.git:rw,nosuid,nodev"
            -v "$ws/.git/hooks:$ws/.git/hooks:ro,nosuid,nodev"
            -v "$ws/.git/config:$ws/.git/config:ro,nosuid,nodev" -w "$ws"
            --hostname ags-shell -e HOME=/home/dev -e TERM=xterm-256color -e LANG=C.UTF-8
            -e AGS_SANDBOX=1 -e AGS_AGENT=shell -e AGS_LOCKDOWN=1
            --network "$podman_net" "$image" bash -c true)
        ;;
    esac
}

# Prints why NAME cannot run at all, or nothing.
unavailable() {
    case $1 in
    ags)
        if [[ ! -x $ags_bin ]]; then
            echo "$ags_bin not found (build it with cargo build --release, or set AGS_BIN)"
        elif [[ $(as_user "$ags_bin" --help 2>/dev/null) != *--lockdown* ]]; then
            echo "$ags_bin has no --agent/--lockdown run mode"
        fi
        ;;
    podman)
        command -v podman >/dev/null || echo "podman is not installed"
        command -v runc >/dev/null || echo "runc is not installed"
        ;;
    *) echo "unknown contestant (known: ags podman)" ;;
    esac
}

# skipped.tsv: contestant, network ("all" for every one), reason.
skipped=$out/skipped.tsv
: >"$skipped"
skip() {
    warn "skipping $1 ($2): $3"
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$skipped"
}
failure_reason() {
    local rc=$1 logfile=$2 reason
    reason="exits with status $rc"
    if [[ $rc -eq 124 ]]; then reason+=" (timed out)"; fi
    echo "$reason: $(grep -v '^Command exited with non-zero status' "$logfile" | tail -n 3 | tr '\t' ' ' | paste -sd ' ')"
}

# Pull the image (untimed): afterwards it is present for both.
active=()
podman_digest=
ags_digest=
for name in $peers; do
    why=$(unavailable "$name")
    if [[ -n $why ]]; then
        skip "$name" all "$(echo "$why" | paste -sd ' ')"
        continue
    fi
    rc=0
    case $name in
    ags) as_user timeout 600 "$ags_bin" pull "$image" >"$out/ags.pull.log" 2>&1 || rc=$? ;;
    podman) as_user timeout 600 podman pull -q --tls-verify=false "$image" >"$out/podman.pull.log" 2>&1 || rc=$? ;;
    esac
    if [[ $rc -ne 0 ]]; then
        skip "$name" all "pull $(failure_reason "$rc" "$out/$name.pull.log")"
        continue
    fi
    case $name in
    ags) ags_digest=$(as_user "$ags_bin" images 2>/dev/null | grep -o 'sha256:[0-9a-f]*' | head -n 1 || true) ;;
    podman) podman_digest=$(as_user podman image inspect --format '{{.Digest}}' "$image" 2>/dev/null || true) ;;
    esac
    active+=("$name")
done
# `ags images` shows the first 12 hex digits of the manifest digest.
log "image $image: pushed $digest, podman has ${podman_digest:-?}, ags lists ${ags_digest:-?}"
same_image="ags and podman pulled this manifest"
if [[ -z $podman_digest || -z $ags_digest ]]; then
    same_image="not checked: a contestant did not pull it"
elif [[ $podman_digest != "$digest" || $digest != "$ags_digest"* ]]; then
    same_image="MISMATCH: podman has $podman_digest, ags lists $ags_digest"
    warn "$same_image"
fi

# --- the measured part, under the lock ---------------------------------------------------
# unlocked CMD...: runs CMD without the lock's file descriptor, so that nothing it leaves
# running (podman's pause process, pasta) keeps holding the lock after this script.
lock_fd=
unlocked() {
    if [[ -n $lock_fd ]]; then
        "$@" {lock_fd}>&-
    else
        "$@"
    fi
}
if [[ -n $lock ]]; then
    exec {lock_fd}>>"$lock"
    if ! flock -n "$lock_fd"; then
        log "waiting for $lock (another benchmark is running)"
        flock "$lock_fd"
    fi
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before measuring: $load_before ($(nproc) CPUs)"

# One untimed run per contestant and network: it shows why one cannot run, and does the
# one-time work (ags unpacks the image; podman maps it for keep-id).
declare -A ok
for net in $networks; do
    for name in "${active[@]}"; do
        cmd_for "$name" "$net"
        rc=0
        unlocked as_user timeout 300 "${cmd[@]}" </dev/null >"$out/$name-$net.check.log" 2>&1 || rc=$?
        if [[ $rc -ne 0 ]]; then
            skip "$name" "$net" "$(failure_reason "$rc" "$out/$name-$net.check.log")"
            continue
        fi
        ok[$name-$net]=1
    done
done

# hyperfine per contestant and network; results.tsv: contestant, network, median, min,
# max (ms).
results=$out/results.tsv
: >"$results"
for net in $networks; do
    for name in "${active[@]}"; do
        [[ -n ${ok[$name-$net]:-} ]] || continue
        cmd_for "$name" "$net"
        log "benchmarking $name, network $net: ${cmd[*]}"
        if ! unlocked as_user timeout 900 hyperfine -N --style basic --warmup "$warmup" \
            --runs "$runs" --export-json "$out/$name-$net.json" --command-name "$name-$net" \
            "$(printf '%q ' "${cmd[@]}")" </dev/null >&2; then
            skip "$name" "$net" "hyperfine failed (a run exited non-zero or timed out)"
            unset "ok[$name-$net]"
            continue
        fi
        python3 - "$out/$name-$net.json" "$name" "$net" >>"$results" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print("\t".join([sys.argv[2], sys.argv[3]] + [f"{r[k] * 1000:.3f}" for k in ("median", "min", "max")]))
EOF
    done
done

# Peak RSS; rss.tsv: contestant, network, run, KiB.
rss=$out/rss.tsv
: >"$rss"
for ((r = 1; r <= rss_runs; r++)); do
    for net in $networks; do
        for name in "${active[@]}"; do
            [[ -n ${ok[$name-$net]:-} ]] || continue
            cmd_for "$name" "$net"
            rm -f "$out/rss.tmp"
            if unlocked as_user /usr/bin/time -f %M -o "$out/rss.tmp" "${cmd[@]}" </dev/null \
                >"$out/$name-$net.rss.log" 2>&1; then
                printf '%s\t%s\t%s\t%s\n' "$name" "$net" "$r" "$(tail -n 1 "$out/rss.tmp")" >>"$rss"
            else
                warn "$name ($net): run $r under /usr/bin/time failed (see $out/$name-$net.rss.log)"
            fi
        done
    done
done
rm -f "$out/rss.tmp"

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ -n $lock_fd ]]; then
    exec {lock_fd}>&-
    lock_fd=
fi
log "load average after measuring: $load_after"

# --- report: a table on stdout (and summary.txt), the same as JSON in summary.json ------
versions="ags: $("$ags_bin" --version 2>/dev/null || echo '?'); $(podman --version 2>/dev/null || echo 'podman ?'); $(runc --version 2>/dev/null | head -n 1 || echo 'runc ?'); $(pasta --version 2>/dev/null | head -n 1 || echo 'pasta ?'); $(slirp4netns --version 2>/dev/null | head -n 1 || echo 'slirp4netns ?'); kernel $(uname -r)"
python3 - "$results" "$rss" "$skipped" "$out" "$AGS_TEST_USER" "$runs" "$warmup" "$image" \
    "$digest" "$same_image" "$networks" "$peers" "${target_ms[none]}" \
    "${target_ms[egress]}" "$load_before" "$load_after" "$(nproc)" "$versions" <<'EOF' | tee "$out/summary.txt"
import json, statistics, sys
(results, rss_file, skipped, out, user, runs, warmup, image, digest, same_image, networks,
 peers, t_none, t_egress, load_before, load_after, ncpu, versions) = sys.argv[1:]
targets = {"none": float(t_none), "egress": float(t_egress)}
med, lo, hi = {}, {}, {}
for line in open(results):
    name, net, m, a, b = line.rstrip("\n").split("\t")
    med[name, net], lo[name, net], hi[name, net] = float(m), float(a), float(b)
rss = {}
for line in open(rss_file):
    name, net, _, kib = line.rstrip("\n").split("\t")
    rss.setdefault((name, net), []).append(int(kib))
rss_mb = {k: statistics.median(v) / 1024 for k, v in rss.items()}
skip = {}
for line in open(skipped):
    if line.strip():
        name, net, why = line.rstrip("\n").split("\t", 2)
        skip.setdefault((name, net), why)
print(f"ags --agent shell --lockdown -- -c true vs podman run (lockdown flags), rootless as {user}: "
      f"median of {runs} runs ({warmup} warm-up)")
print(f"image {image} {digest} ({same_image})")
print(f"{'network':<8} {'contestant':<10} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'peak RSS MB':>12}  note")
for net in networks.split():
    for name in peers.split():
        k = (name, net)
        r = f"{rss_mb[k]:>12.1f}" if k in rss_mb else f"{'-':>12}"
        if k in med:
            print(f"{net:<8} {name:<10} {med[k]:>10.2f} {lo[k]:>8.2f} {hi[k]:>8.2f} {r}")
        else:
            why = skip.get(k) or skip.get((name, "all"), "not run")
            print(f"{net:<8} {name:<10} {'-':>10} {'-':>8} {'-':>8} {'-':>12}  {why}")
print()
ratios, verdicts = {}, {}
for net in networks.split():
    a, p = med.get(("ags", net)), med.get(("podman", net))
    r = a / p if a is not None and p else None
    ratios[f"ags/podman {net}"] = r
    ratio = f"ags/podman = {r:.3f} (podman/ags = {1 / r:.1f})" if r else "ags/podman = n/a"
    if a is None:
        verdict = "n/a"
    else:
        verdict = "PASS" if a <= targets[net] else "FAIL"
    verdicts[net] = verdict
    t = f"ags median {a:.2f} ms, target <= {targets[net]:.0f} ms: {verdict}" if a is not None else \
        f"ags target <= {targets[net]:.0f} ms: n/a"
    print(f"network {net:<7} {ratio:<40} {t}")
print(f"load average {load_before} before, {load_after} after ({ncpu} CPUs)")
print(versions)
with open(f"{out}/summary.json", "w") as f:
    json.dump({"image": image, "digest": digest, "same_image": same_image, "runs": int(runs),
               "warmup": int(warmup),
               "median_ms": {f"{n}/{net}": v for (n, net), v in med.items()},
               "min_ms": {f"{n}/{net}": v for (n, net), v in lo.items()},
               "max_ms": {f"{n}/{net}": v for (n, net), v in hi.items()},
               "peak_rss_mb": {f"{n}/{net}": v for (n, net), v in rss_mb.items()},
               "ratios": ratios, "targets_ms": targets, "verdicts": verdicts,
               "load_before": load_before, "load_after": load_after, "versions": versions,
               "skipped": {f"{n}/{net}": why for (n, net), why in skip.items()}}, f, indent=2)
EOF
log "results in $out (hyperfine JSON per contestant and network, logs, summary.txt, summary.json)"
exit 0

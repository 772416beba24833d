#!/usr/bin/env bash
# Build benchmark (issue 4): the shipped agent image, containerfiles/agent.Containerfile,
# built by `ags build` and by `buildah bud` (the Debian package), both rootless as the test
# user, in one run on the same host against the same local registry. It measures:
#   cold   a build from a cold cache: new empty store, no base image, empty cache mounts;
#          median of BENCH_RUNS, the ratio buildah/ags
#   noop   the same build again on the warm store (BENCH_NOOP_RUNS times): ags's target is
#          a median under 0.5 s, and every step must be served from the cache
#   edit   a build after editing only the last RUN (the agent CLIs): every step before it
#          must be served from the cache and no other RUN may run
# and prints a table on stdout (also summary.txt, summary.json and runs.tsv in BENCH_OUT).
# It never fails because a contestant fails: one that cannot run is reported with the
# reason and left out. Until `ags build` exists, the ags rows say why they are missing.
#
# Setup, all on this machine (docker.io is not reachable from CI, deb.debian.org and
# registry.npmjs.org are):
# - a Debian trixie base from ci/mk-debian-base.sh (cached in /var/cache/ags-ci; a fresh
#   host bootstraps it, ~1 min), pushed with `ags-testimage push-tar` as
#   library/debian:trixie-slim to a plain-HTTP registry (ci/registry.sh) on a free port P
#   of 127.0.0.1, which both builders use as the mirror of docker.io:
#     ags      [registries.hosts."docker.io"] mirrors = ["127.0.0.1:P"] and
#              [registries.hosts."127.0.0.1:P"] insecure = true, in a config of its own
#     buildah  a registries.conf (CONTAINERS_REGISTRIES_CONF) with 127.0.0.1:P as an
#              insecure mirror of docker.io, and a signature policy accepting anything
# - a copy of the Containerfile and its context directory (the edit changes the copy);
# - build arguments given to both: AGS_EXTRA_CA_CERTS holding the certificates in
#   BENCH_EXTRA_CA (default: the host's own additions, /usr/local/share/ca-certificates/
#   *.crt), so that npm trusts a TLS-intercepting egress proxy as the host does.
#
# Contestants, as agstest (setpriv, HOME and XDG_RUNTIME_DIR as a login would set them),
# from the cgroup provision.sh delegated (the script moves itself there), each with every
# piece of state in a new directory RUN per cold build:
#   ags      $AGS_BIN --store RUN/store --config CFG build -f CF -t localhost/ags/agent:latest
#            --build-arg ... CONTEXT, with XDG_{CACHE,DATA,CONFIG}_HOME in RUN too (wherever
#            the builder keeps its caches, they start empty)
#   buildah  buildah --root RUN/root --runroot RUNROOT --storage-driver overlay bud
#            --runtime runc --layers --signature-policy P -f CF -t ... --build-arg ...
#            CONTEXT, with TMPDIR=RUN/tmp (buildah keeps RUN --mount=type=cache
#            directories in $TMPDIR/buildah-cache). runc: crun 1.8 refuses this hybrid
#            cgroup host (ci/README.md). Rootless overlay: native in a user namespace.
# The last cold build's state of each contestant is kept for the noop and edit phases.
#
# Step accounting (noop and edit) reads the build logs; the format is defined in one
# place below, marked ADAPT: `STEP i/n: INSTRUCTION` per step and a line `--> cached`
# (ags) or `--> Using cache ID` (buildah) under a step served from the cache.
#
# Usage: ci/bench-build.sh                                 (as root, after ci/provision.sh)
# Environment:
#   AGS_BIN            ags binary (default <repo>/target/release/ags)
#   TESTIMAGE_BIN      a built ags-testimage; when unset the script runs
#                      cargo build --release -p ags-e2e --bin ags-testimage
#   BENCH_PEERS        contestants, in this order (default "ags buildah")
#   BENCH_RUNS         cold builds per contestant (default 1: one takes minutes)
#   BENCH_NOOP_RUNS    no-op rebuilds per contestant (default 5)
#   BENCH_CONTAINERFILE  default <repo>/containerfiles/agent.Containerfile
#   BENCH_CONTEXT      build context (default <repo>/containerfiles)
#   BENCH_EXTRA_CA     PEM files passed as AGS_EXTRA_CA_CERTS (default the host's
#                      /usr/local/share/ca-certificates/*.crt; "" for none)
#   BENCH_DEBIAN_BASE  an OUT_DIR of ci/mk-debian-base.sh to use (default: run it)
#   BENCH_PORT         registry port (default the first free port from 5230 to 5299)
#   BENCH_TIMEOUT      seconds one build may take (default 3600)
#   BENCH_OUT          directory for runs.tsv, steps.tsv, logs and summary.{txt,json}
#                      (default a new /tmp/ags-bench-build.XXXXXX, kept and printed)
#   BENCH_WORK_PARENT  where the stores live (default /var/tmp: gigabytes, not tmpfs)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

require_root
[[ -r $AGS_CI_ENV_FILE ]] || die "$AGS_CI_ENV_FILE not found: run ci/provision.sh first"
# shellcheck source=/dev/null
. "$AGS_CI_ENV_FILE"
: "${AGS_TEST_USER:?} ${AGS_TEST_UID:?} ${AGS_TEST_GID:?} ${AGS_TEST_RUNTIME_DIR:?} ${AGS_TEST_HOME:?}"
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found: run ci/provision.sh (package time)"

ags_bin=${AGS_BIN:-$repo/target/release/ags}
peers=${BENCH_PEERS:-ags buildah}
runs=${BENCH_RUNS:-1}
noop_runs=${BENCH_NOOP_RUNS:-5}
containerfile=${BENCH_CONTAINERFILE:-$repo/containerfiles/agent.Containerfile}
context=${BENCH_CONTEXT:-$repo/containerfiles}
build_timeout=${BENCH_TIMEOUT:-3600}
tag=localhost/ags/agent:latest
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number, not '$runs'"
[[ $noop_runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_NOOP_RUNS must be a positive number, not '$noop_runs'"
[[ $build_timeout =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIMEOUT must be a positive number, not '$build_timeout'"
[[ -r $containerfile ]] || die "$containerfile not found"
[[ -d $context ]] || die "$context is not a directory"

out=${BENCH_OUT:-$(mktemp -d /tmp/ags-bench-build.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${BENCH_WORK_PARENT:-/var/tmp}/ags-bench-build-work.XXXXXX")
chmod 0755 "$work"
runroots=()
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    "$here/registry.sh" stop "$work/registry" 2>/dev/null || true
    # Root removes what the user namespaces created (files owned by subordinate ids).
    rm -rf "$work" "${runroots[@]}"
}
trap cleanup EXIT

# The builds start containers in cgroups below the delegated one, as a login session's.
"$here/enter-delegated-cgroup.sh" $$ >/dev/null

# --- the base image in a local registry --------------------------------------------------
base=${BENCH_DEBIAN_BASE:-}
if [[ -z $base ]]; then
    base=$("$here/mk-debian-base.sh" "$work/debian-base")
fi
[[ -r $base/rootfs.env && -r $base/layer.tar.gz ]] || die "$base is not an output of ci/mk-debian-base.sh"
base_created=$(sed -n 's/^CREATED=//p' "$base/rootfs.env")

port=${BENCH_PORT:-}
if [[ -z $port ]]; then
    port=$(free_port 5230 5299) || die "no free port between 5230 and 5299 (set BENCH_PORT)"
fi
"$here/registry.sh" start plain "$port" "$work/registry" >/dev/null

testimage=${TESTIMAGE_BIN:-}
if [[ -z $testimage ]]; then
    log "building ags-testimage (cargo build --release -p ags-e2e --bin ags-testimage)"
    (cd "$repo" && cargo build --release -p ags-e2e --bin ags-testimage >&2) ||
        die "cannot build ags-testimage"
    testimage=${CARGO_TARGET_DIR:-$repo/target}/release/ags-testimage
fi
[[ -x $testimage ]] || die "$testimage not found"
log "pushing the Debian base ($base) as 127.0.0.1:$port/library/debian:trixie-slim"
"$testimage" push-tar --registry "127.0.0.1:$port" --insecure --repo library/debian \
    --tag trixie-slim --mtime "$(date -u -d "$base_created" +%s)" --config-cmd bash \
    "$base/layer.tar.gz" >/dev/null

# --- build inputs ------------------------------------------------------------------------
install -d -m 0755 "$work/context" "$work/files"
cp -a "$context/." "$work/context/"
cp "$containerfile" "$work/files/Containerfile"
chmod -R a+rX "$work/context" "$work/files"

build_args=()
if [[ -n ${BENCH_EXTRA_CA-} || -z ${BENCH_EXTRA_CA+set} ]]; then
    read -r -a ca_files <<<"${BENCH_EXTRA_CA:-$(echo /usr/local/share/ca-certificates/*.crt)}"
    ca_pem=
    for f in "${ca_files[@]}"; do
        [[ -r $f ]] || continue
        ca_pem+=$(<"$f")$'\n'
    done
    if [[ -n $ca_pem ]]; then
        log "passing AGS_EXTRA_CA_CERTS from ${ca_files[*]}"
        build_args+=(--build-arg "AGS_EXTRA_CA_CERTS=$ca_pem")
    fi
fi

cfg=$work/files/ags-config.toml
cat >"$cfg" <<EOF
# ci/bench-build.sh: the local registry stands in for docker.io.
[registries.hosts."docker.io"]
mirrors = ["127.0.0.1:$port"]
[registries.hosts."127.0.0.1:$port"]
insecure = true
EOF
cat >"$work/files/registries.conf" <<EOF
# ci/bench-build.sh: the local registry stands in for docker.io.
unqualified-search-registries = []
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:$port"
insecure = true
EOF
echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$work/files/policy.json"
chmod 0644 "$work/files"/*

# Writes to $2 the Containerfile $1 with its last RUN edited: " && : bench-edit-$3"
# appended to the instruction's last line. Only a shell-form RUN without heredocs can be
# edited that way; anything else is an error.
edit_last_run() {
    python3 - "$1" "$2" "$3" <<'EOF'
import re, sys
src, dst, n = sys.argv[1:]
lines = open(src).read().split("\n")
start = None
i = 0
while i < len(lines):
    if re.match(r"\s*RUN\s", lines[i], re.I):
        start = i
    # Skip the continuation lines of any instruction.
    while lines[i].rstrip().endswith("\\") and i + 1 < len(lines):
        i += 1
    i += 1
if start is None:
    sys.exit(f"{src}: no RUN instruction")
end = start
while lines[end].rstrip().endswith("\\"):
    end += 1
text = "\n".join(lines[start:end + 1])
if "<<" in text or re.match(r"\s*RUN\s+\[", lines[start], re.I):
    sys.exit(f"{src}:{start + 1}: the last RUN is in exec form or has a heredoc: cannot edit it")
lines[end] = lines[end].rstrip() + f" && : bench-edit-{n}"
open(dst, "w").write("\n".join(lines))
print(start + 1)
EOF
}

# --- ADAPT: how a build log shows its steps ----------------------------------------------
# ags (as specified for its builder, issue 4) prints "STEP i/n: INSTRUCTION" when a step
# starts and "--> cached" under a step whose result came from the cache; buildah prints
# the same STEP lines and "--> Using cache <id>". Lines may carry a prefix ("ags: ") and
# colours. Everything that reads the logs goes through step_table, which prints one TSV
# line per step: index, total, cached (1/0), FROM (1/0), RUN (1/0), edited (1/0: holds the
# bench-edit- marker or, in the log of an edit build, is the last RUN: ags shortens long
# instructions in its STEP lines, so the marker at the end of the line is not always shown),
# the instruction (its first 200 characters).
step_table() {
    python3 - "$1" <<'EOF'
import re, sys
step_re = re.compile(r"(?:^|\s)STEP (\d+)/(\d+): (.*)$")
cached_re = re.compile(r"(?:^|\s)--> (?:cached\b|Using cache\b)")
ansi = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
steps = []
for line in open(sys.argv[1], errors="replace"):
    line = ansi.sub("", line.rstrip("\n"))
    m = step_re.search(line)
    if m:
        steps.append([int(m.group(1)), int(m.group(2)), 0, m.group(3)])
    elif steps and cached_re.search(line):
        steps[-1][2] = 1
def word(text):
    return text.split(None, 1)[0].upper() if text.strip() else ""
runs = [i for i, _, _, text in steps if word(text) == "RUN"]
last_run = runs[-1] if runs and ".edit-" in sys.argv[1] else None
for i, n, cached, text in steps:
    edited = int("bench-edit-" in text or i == last_run)
    text = " ".join(text.split())[:200]
    w = word(text)
    print(f"{i}\t{n}\t{cached}\t{int(w == 'FROM')}\t{int(w == 'RUN')}\t{edited}\t{text}")
EOF
}
# --- end ADAPT ---------------------------------------------------------------------------

# --- contestants ------------------------------------------------------------------------
user_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
user_env=(setpriv --reuid="$AGS_TEST_UID" --regid="$AGS_TEST_GID" --init-groups --reset-env
    env PATH="$user_path" HOME="$AGS_TEST_HOME" USER="$AGS_TEST_USER" LOGNAME="$AGS_TEST_USER"
    XDG_RUNTIME_DIR="$AGS_TEST_RUNTIME_DIR")

# cmd_for NAME DIR RUNROOT CONTAINERFILE: sets cmd to NAME's build command with its state
# in DIR (and buildah's run root in RUNROOT, on the runtime tmpfs as by default).
cmd=()
cmd_for() {
    local name=$1 dir=$2 runroot=$3 cf=$4
    case $name in
    ags)
        cmd=(env XDG_CACHE_HOME="$dir/xdg-cache" XDG_DATA_HOME="$dir/xdg-data"
            XDG_CONFIG_HOME="$dir/xdg-config"
            "$ags_bin" --store "$dir/store" --config "$cfg" build -f "$cf" -t "$tag"
            "${build_args[@]}" "$work/context")
        ;;
    buildah)
        cmd=(env TMPDIR="$dir/tmp" CONTAINERS_REGISTRIES_CONF="$work/files/registries.conf"
            buildah --root "$dir/root" --runroot "$runroot" --storage-driver overlay
            bud --runtime runc --layers --signature-policy "$work/files/policy.json"
            -f "$cf" -t "$tag" "${build_args[@]}" "$work/context")
        ;;
    esac
}

# Prints why NAME cannot run at all, or nothing.
unavailable() {
    case $1 in
    ags)
        if [[ ! -x $ags_bin ]]; then
            echo "$ags_bin not found (build it with cargo build --release, or set AGS_BIN)"
        elif ! (cd "$work" && "${user_env[@]}" "$ags_bin" build --help >/dev/null 2>&1); then
            echo "$ags_bin has no working 'build' command ('ags build --help' fails)"
        fi
        ;;
    buildah)
        command -v buildah >/dev/null || echo "buildah is not installed"
        command -v runc >/dev/null || echo "runc is not installed"
        ;;
    *) echo "unknown contestant (known: ags buildah)" ;;
    esac
}

declare -A state runroot_of
# new_state NAME: a new empty state directory (and run root) for NAME.
new_state() {
    local name=$1 dir rr
    dir=$(mktemp -d "$work/run-$name.XXXXXX")
    rr=$(mktemp -d "$AGS_TEST_RUNTIME_DIR/bench-build.XXXXXX")
    runroots+=("$rr")
    install -d -m 0700 "$dir/tmp"
    chown -R "$AGS_TEST_UID:$AGS_TEST_GID" "$dir" "$rr"
    chmod 0700 "$dir" "$rr"
    state[$name]=$dir
    runroot_of[$name]=$rr
}
drop_state() {
    rm -rf "${state[$1]}" "${runroot_of[$1]}"
}

# build NAME CONTAINERFILE LOG: one build in NAME's current state; sets last to
# "seconds rss_kb" and returns the build's status.
last=
build() {
    local name=$1 cf=$2 logfile=$3 dir=${state[$1]} rc=0 t0 t1
    cmd_for "$name" "$dir" "${runroot_of[$name]}" "$cf"
    t0=$(now_us)
    (cd "$dir" && timeout "$build_timeout" "${user_env[@]}" \
        /usr/bin/time -f %M -o "$dir/rss" "${cmd[@]}") >"$logfile" 2>&1 || rc=$?
    t1=$(now_us)
    last="$(us_to_s $((t1 - t0))) $(tail -n 1 "$dir/rss" 2>/dev/null || echo 0)"
    return "$rc"
}

# runs.tsv: contestant, phase, run, seconds, peak RSS KiB. steps.tsv: contestant, phase,
# run, then step_table's columns. skipped.tsv: contestant, phase, reason.
results=$out/runs.tsv
steps=$out/steps.tsv
skipped=$out/skipped.tsv
: >"$results"
: >"$steps"
: >"$skipped"
skip() {
    warn "skipping $1 ($2): $3"
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$skipped"
}
failure_reason() {
    local rc=$1 logfile=$2 reason
    reason="exits with status $rc"
    if [[ $rc -eq 124 ]]; then reason+=" (timed out after ${build_timeout}s)"; fi
    echo "$reason: $(grep -v '^Command exited with non-zero status' "$logfile" | tail -n 3 | tr '\t' ' ' | paste -sd ' ')"
}
record() { # NAME PHASE RUN LOG
    local secs rss
    read -r secs rss <<<"$last"
    log "$2 $3 $1: ${secs}s, peak RSS ${rss} KiB"
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$secs" "$rss" >>"$results"
    step_table "$4" | sed "s/^/$1\t$2\t$3\t/" >>"$steps"
}

active=()
for name in $peers; do
    why=$(unavailable "$name")
    if [[ -n $why ]]; then
        skip "$name" all "$(echo "$why" | paste -sd ' ')"
    else
        active+=("$name")
    fi
done

# Cold builds, contestants taking turns; the last one's state stays for noop and edit.
declare -A disk
for ((r = 1; r <= runs; r++)); do
    still=()
    for name in "${active[@]}"; do
        new_state "$name"
        rc=0
        log "cold build $r/$runs: $name"
        build "$name" "$work/files/Containerfile" "$out/$name.cold-$r.log" || rc=$?
        if [[ $rc -ne 0 ]]; then
            skip "$name" cold "run $r $(failure_reason "$rc" "$out/$name.cold-$r.log")"
            sed -i "/^$name\t/d" "$results" "$steps"
            drop_state "$name"
            continue
        fi
        record "$name" cold "$r" "$out/$name.cold-$r.log"
        disk[$name]=$(du -sb "${state[$name]}" | cut -f1)
        if [[ $r -lt $runs ]]; then drop_state "$name"; fi
        still+=("$name")
    done
    active=("${still[@]}")
done

# No-op rebuilds on the warm state.
for ((r = 1; r <= noop_runs; r++)); do
    for name in "${active[@]}"; do
        rc=0
        build "$name" "$work/files/Containerfile" "$out/$name.noop-$r.log" || rc=$?
        if [[ $rc -ne 0 ]]; then
            skip "$name" noop "run $r $(failure_reason "$rc" "$out/$name.noop-$r.log")"
            continue
        fi
        record "$name" noop "$r" "$out/$name.noop-$r.log"
    done
done

# One rebuild after editing the last RUN.
edited_line=$(edit_last_run "$work/files/Containerfile" "$work/files/Containerfile.edited" 1) ||
    die "cannot edit the last RUN of $containerfile"
chmod 0644 "$work/files/Containerfile.edited"
log "edited the RUN at line $edited_line of the Containerfile (appended '&& : bench-edit-1')"
for name in "${active[@]}"; do
    rc=0
    build "$name" "$work/files/Containerfile.edited" "$out/$name.edit-1.log" || rc=$?
    if [[ $rc -ne 0 ]]; then
        skip "$name" edit "$(failure_reason "$rc" "$out/$name.edit-1.log")"
        continue
    fi
    record "$name" edit 1 "$out/$name.edit-1.log"
done

disk_tsv=$out/disk.tsv
: >"$disk_tsv"
for name in "${!disk[@]}"; do printf '%s\t%s\n' "$name" "${disk[$name]}" >>"$disk_tsv"; done

# --- report: a table on stdout (and summary.txt), the same as JSON in summary.json ------
python3 - "$results" "$steps" "$skipped" "$disk_tsv" "$out" "$AGS_TEST_USER" "$runs" \
    "$noop_runs" "$peers" "$(basename "$containerfile")" <<'EOF' | tee "$out/summary.txt"
import json, statistics, sys
results, steps_f, skipped, disk_f, out, user, runs, noop_runs, peers, cf = sys.argv[1:]
peers = peers.split()
times = {}
for line in open(results):
    name, phase, _, secs, kib = line.rstrip("\n").split("\t")
    times.setdefault((name, phase), []).append((float(secs), int(kib)))
steps = {}
for line in open(steps_f):
    name, phase, run, i, n, cached, is_from, is_run, edited, text = line.rstrip("\n").split("\t", 9)
    steps.setdefault((name, phase, run), []).append(
        dict(i=int(i), n=int(n), cached=cached == "1", from_=is_from == "1", run=is_run == "1",
             edited=edited == "1", text=text))
skips = {}
for line in open(skipped):
    if line.strip():
        name, phase, why = line.rstrip("\n").split("\t", 2)
        skips.setdefault(name, []).append(f"{phase}: {why}")
disk = dict(l.rstrip("\n").split("\t") for l in open(disk_f) if l.strip())

def med(name, phase):
    v = times.get((name, phase))
    return statistics.median(s for s, _ in v) if v else None

def executed(st):
    return [s for s in st if not s["cached"] and not s["from_"]]

print(f"build of {cf}, rootless as {user} (cold: median of {runs}, no-op: median of {noop_runs})")
print(f"{'contestant':<10} {'phase':<6} {'median s':>9} {'min s':>8} {'max s':>8} {'peak RSS MB':>12}  steps")
summary = {"runs": int(runs), "noop_runs": int(noop_runs), "median_s": {}, "checks": {},
           "state_bytes_after_cold": {k: int(v) for k, v in disk.items()}, "skipped": skips}
for name in peers:
    for phase in ("cold", "noop", "edit"):
        v = times.get((name, phase))
        if not v:
            continue
        t = [s for s, _ in v]
        rss = statistics.median(k for _, k in v) / 1024
        runs_steps = [st for (n, p, _), st in steps.items() if n == name and p == phase]
        note = ""
        if runs_steps:
            st = runs_steps[-1]
            ex = executed(st)
            note = f"{len(st)} steps, {len(st) - len(ex)} cached or FROM, ran: " + (
                ",".join(str(s["i"]) for s in ex) or "none")
        summary["median_s"].setdefault(name, {})[phase] = statistics.median(t)
        print(f"{name:<10} {phase:<6} {statistics.median(t):>9.3f} {min(t):>8.3f} {max(t):>8.3f} {rss:>12.1f}  {note}")
    for why in skips.get(name, []):
        print(f"{name:<10} skipped: {why}")
print()

def ratio(a, b):
    return a / b if a is not None and b else None

r = ratio(med("buildah", "cold"), med("ags", "cold"))
summary["ratio_cold_buildah_over_ags"] = r
print(f"{'cold buildah/ags':<34}= " + (f"{r:.2f}" if r is not None else "n/a"))
for name in peers:
    if name in disk:
        print(f"{'state after cold, ' + name:<34}= {int(disk[name]) / 2**30:.2f} GiB")
noop = med("ags", "noop")
ok = noop is not None and noop < 0.5
summary["checks"]["ags_noop_under_0.5s"] = ok if noop is not None else None
print(f"{'ags no-op rebuild < 0.5 s':<34}= " + ("n/a" if noop is None else f"{'PASS' if ok else 'FAIL'} ({noop:.3f} s)"))
for name in peers:
    for phase in ("noop", "edit"):
        runs_steps = [st for (n, p, _), st in sorted(steps.items()) if n == name and p == phase]
        if not runs_steps:
            continue
        if phase == "noop":
            good = all(not executed(st) for st in runs_steps)
            label = f"{name} no-op: all cached"
        else:
            st = runs_steps[-1]
            edited = [s for s in st if s["edited"]]
            first = edited[0]["i"] if edited else None
            ran_runs = [s["i"] for s in executed(st) if s["run"]]
            good = (first is not None and all(s["cached"] or s["from_"] for s in st if s["i"] < first)
                    and ran_runs == [first])
            label = f"{name} edit: only that RUN ran"
        summary["checks"][label] = good
        print(f"{label:<34}= {'PASS' if good else 'FAIL'}")
with open(f"{out}/summary.json", "w") as f:
    json.dump(summary, f, indent=2)
EOF
log "results in $out (runs.tsv, steps.tsv, logs, summary.txt, summary.json)"
exit 0

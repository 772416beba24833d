#!/usr/bin/env bash
# Pull benchmark: how long `ags pull` takes to fetch an image from a local registry and
# unpack its root filesystem into an empty store, against peer tools doing the same on
# the same host in the same run, all rootless (as the test user from ci/provision.sh).
# Prints a table of medians, the ratios podman/ags and (skopeo+umoci)/ags, and the peak
# RSS of every contestant (ags's is the number to watch) on stdout. It never fails
# because a peer fails: a contestant that cannot run is reported with the reason and
# left out.
#
# Setup: a plain-HTTP registry (ci/registry.sh) on a free port of 127.0.0.1, and one image
# pushed to it with ags-testimage (built here with cargo, package ags-e2e): a busybox
# rootfs layer (ci/mk-busybox-rootfs.sh) plus BENCH_LAYERS layers of BENCH_LAYER_SIZE
# seeded pseudo-random bytes each, all gzip: by default 6 layers, ~101 MiB compressed and
# uncompressed, since random data does not compress; so the measurement is transfer,
# decompression, digest verification and unpacking rather than compression ratios.
#
# Every timed run starts from a cold store: a new empty directory RUN for the store (ags),
# storage root (podman; its run root RUNROOT is a new directory in $XDG_RUNTIME_DIR), OCI
# layout and bundle (skopeo+umoci), made by root, owned by the test user, deleted by root
# after the run. The registry's blobs stay in the
# page cache (every contestant reads them from it alike). Contestants take turns, one run
# each per round, so that a slow drift of the machine affects all of them alike. One
# untimed run per contestant comes first: it shows why a contestant cannot run, starts
# podman's rootless pause process, and warms the page cache.
#
# Run as root after ci/provision.sh. Commands run as the test user with setpriv (no PAM,
# no capabilities left), with HOME from the passwd entry and XDG_RUNTIME_DIR set as a
# login session would. Elapsed time is wall-clock time around the whole command; peak
# RSS is /usr/bin/time's %M (the largest maximum resident set size among the command and
# the children it waited for, not a sum).
#
# Contestants:
#   ags           $AGS_BIN --store RUN/store --config CFG pull REF, where CFG holds
#                 [registries.hosts."127.0.0.1:PORT"] insecure = true (skipped when
#                 $AGS_BIN is missing or `ags pull --help` fails)
#   podman        podman --root RUN/root --runroot RUNROOT --storage-driver overlay
#                 pull -q --tls-verify=false REF: native rootless overlay (kernel >= 5.13),
#                 podman's fastest driver here; the storage driver is $BENCH_PODMAN_DRIVER
#   podman-vfs    the same with --storage-driver vfs, the driver rootless podman falls
#                 back to on this host without a storage.conf: it copies the whole tree
#                 below every layer, so it is shown for information only
#   skopeo-umoci  skopeo copy -q --src-tls-verify=false docker://REF oci:RUN/oci:bench,
#                 then umoci unpack --rootless --image RUN/oci:bench RUN/bundle
#
# Usage: ci/bench-pull.sh
# Environment:
#   AGS_BIN              ags binary (default <repo>/target/release/ags)
#   TESTIMAGE_BIN        a built ags-testimage; when unset, the script runs
#                        cargo build --release -p ags-e2e --bin ags-testimage
#   BENCH_RUNS           timed runs per contestant (default 5)
#   BENCH_PEERS          contestants, in this order (default "ags podman podman-vfs skopeo-umoci")
#   BENCH_LAYERS         random layers (default 5)
#   BENCH_LAYER_SIZE     size of each random layer (default 20M; K, M, G are binary units)
#   BENCH_PODMAN_DRIVER  storage driver of the "podman" contestant (default overlay)
#   BENCH_PORT           registry port (default the first free port from 5130 to 5199)
#   BENCH_OUT            directory for runs.tsv, logs and summary.{txt,json} (default a new
#                        /tmp/ags-bench-pull.XXXXXX, kept and printed)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

require_root
[[ -r $AGS_CI_ENV_FILE ]] || die "$AGS_CI_ENV_FILE not found: run ci/provision.sh first"
# shellcheck source=/dev/null
. "$AGS_CI_ENV_FILE"
: "${AGS_TEST_USER:?} ${AGS_TEST_UID:?} ${AGS_TEST_GID:?} ${AGS_TEST_RUNTIME_DIR:?}"
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found: run ci/provision.sh (package time)"

ags_bin=${AGS_BIN:-$repo/target/release/ags}
runs=${BENCH_RUNS:-5}
peers=${BENCH_PEERS:-ags podman podman-vfs skopeo-umoci}
layers=${BENCH_LAYERS:-5}
layer_size=${BENCH_LAYER_SIZE:-20M}
podman_driver=${BENCH_PODMAN_DRIVER:-overlay}
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number, not '$runs'"
[[ $layers =~ ^[0-9]+$ ]] || die "BENCH_LAYERS must be a number, not '$layers'"

out=${BENCH_OUT:-$(mktemp -d /tmp/ags-bench-pull.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/ags-bench-pull-work.XXXXXX)
chmod 0755 "$work"

trap '"$here/registry.sh" stop "$work/registry" 2>/dev/null || true; rm -rf "$work"' EXIT

# --- the registry and the image ---------------------------------------------------------
port=${BENCH_PORT:-}
if [[ -z $port ]]; then
    port=$(free_port 5130 5199) || die "no free port between 5130 and 5199 (set BENCH_PORT)"
fi
"$here/registry.sh" start plain "$port" "$work/registry" >/dev/null
ref=127.0.0.1:$port/bench:latest

testimage=${TESTIMAGE_BIN:-}
if [[ -z $testimage ]]; then
    log "building ags-testimage (cargo build --release -p ags-e2e --bin ags-testimage)"
    (cd "$repo" && cargo build --release -p ags-e2e --bin ags-testimage >&2) ||
        die "cannot build ags-testimage"
    testimage=${CARGO_TARGET_DIR:-$repo/target}/release/ags-testimage
fi
[[ -x $testimage ]] || die "$testimage not found"

rootfs=$("$here/mk-busybox-rootfs.sh" "$work/rootfs")
image_layers=("dir:$rootfs")
for ((i = 1; i <= layers; i++)); do image_layers+=("random:$layer_size:layer$i"); done
log "pushing $ref: busybox rootfs + $layers x $layer_size random, gzip"
digest=$("$testimage" push --registry "127.0.0.1:$port" --insecure --repo bench --tag latest \
    --compression gzip --config-cmd /bin/sh "${image_layers[@]}")
# The compressed size, from the manifest the registry serves.
image_bytes=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$port/v2/bench/manifests/latest" |
    python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(l["size"] for l in m["layers"]))')
log "pushed $ref $digest ($((layers + 1)) layers, $image_bytes bytes)"

cfg=$work/ags-config.toml
printf '[registries.hosts."127.0.0.1:%s"]\ninsecure = true\n' "$port" >"$cfg"
chmod 0644 "$cfg"

# --- contestants ------------------------------------------------------------------------
user_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
user_cmd=(setpriv --reuid="$AGS_TEST_UID" --regid="$AGS_TEST_GID" --init-groups --reset-env
    env PATH="$user_path" XDG_RUNTIME_DIR="$AGS_TEST_RUNTIME_DIR")

# cmd_for NAME DIR RUNROOT: sets cmd to NAME's command line with its state in DIR (and
# podman's run root in RUNROOT: podman refuses run roots longer than 50 characters).
cmd=()
cmd_for() {
    local name=$1 dir=$2 runroot=$3
    case $name in
    ags) cmd=("$ags_bin" --store "$dir/store" --config "$cfg" pull "$ref") ;;
    podman | podman-vfs)
        local driver=$podman_driver
        [[ $name == podman-vfs ]] && driver=vfs
        cmd=(podman --root "$dir/root" --runroot "$runroot" --storage-driver "$driver"
            pull -q --tls-verify=false "$ref")
        ;;
    skopeo-umoci)
        # shellcheck disable=SC2016 # expanded by the inner sh
        cmd=(sh -c 'skopeo copy -q --src-tls-verify=false "docker://$1" "oci:$2/oci:bench" &&
            umoci unpack --rootless --image "$2/oci:bench" "$2/bundle"' sh "$ref" "$dir")
        ;;
    esac
}

# Prints why NAME cannot run at all, or nothing.
unavailable() {
    case $1 in
    ags)
        if [[ ! -x $ags_bin ]]; then
            echo "$ags_bin not found (build it with cargo build --release, or set AGS_BIN)"
        elif ! (cd "$work" && "${user_cmd[@]}" "$ags_bin" pull --help >/dev/null 2>&1); then
            echo "$ags_bin has no working 'pull' command ('ags pull --help' fails)"
        fi
        ;;
    podman | podman-vfs) command -v podman >/dev/null || echo "podman is not installed" ;;
    skopeo-umoci)
        command -v skopeo >/dev/null || echo "skopeo is not installed"
        command -v umoci >/dev/null || echo "umoci is not installed"
        ;;
    *) echo "unknown contestant (known: ags podman podman-vfs skopeo-umoci)" ;;
    esac
}

# run_once NAME LOG: one cold pull; appends "seconds rss_kb" to $last, returns its status.
last=
run_once() {
    local name=$1 logfile=$2 dir runroot rc=0 t0 t1 us
    dir=$(mktemp -d "$work/run-$name.XXXXXX")
    # Where podman's default run root is too ($XDG_RUNTIME_DIR/containers): a tmpfs.
    runroot=$(mktemp -d "$AGS_TEST_RUNTIME_DIR/bench-pull.XXXXXX")
    chown "$AGS_TEST_UID:$AGS_TEST_GID" "$dir" "$runroot"
    chmod 0700 "$dir" "$runroot"
    cmd_for "$name" "$dir" "$runroot"
    t0=$(now_us)
    (cd "$dir" && timeout 600 "${user_cmd[@]}" /usr/bin/time -f %M -o "$dir/rss" "${cmd[@]}") \
        >"$logfile" 2>&1 || rc=$?
    t1=$(now_us)
    us=$((t1 - t0))
    last="$(us_to_s "$us") $(tail -n 1 "$dir/rss" 2>/dev/null || echo 0)"
    # Root removes what the user's namespaces created (files owned by subordinate ids).
    rm -rf "$dir" "$runroot"
    return "$rc"
}

# runs.tsv: contestant, run, seconds, peak RSS KiB. skipped.tsv: contestant, reason.
results=$out/runs.tsv
skipped=$out/skipped.tsv
: >"$results"
: >"$skipped"
skip() {
    warn "skipping $1: $2"
    printf '%s\t%s\n' "$1" "$2" >>"$skipped"
}
failure_reason() {
    local rc=$1 logfile=$2 reason
    reason="exits with status $rc"
    if [[ $rc -eq 124 ]]; then reason+=" (timed out after 600s)"; fi
    echo "$reason: $(grep -v '^Command exited with non-zero status' "$logfile" | tail -n 3 | tr '\t' ' ' | paste -sd ' ')"
}

active=()
for name in $peers; do
    why=$(unavailable "$name")
    if [[ -n $why ]]; then
        skip "$name" "$(echo "$why" | paste -sd ' ')"
        continue
    fi
    log "checking $name (untimed run)"
    rc=0
    run_once "$name" "$out/$name.check.log" || rc=$?
    if [[ $rc -ne 0 ]]; then
        skip "$name" "$(failure_reason "$rc" "$out/$name.check.log")"
        continue
    fi
    active+=("$name")
done

for ((r = 1; r <= runs; r++)); do
    still=()
    for name in "${active[@]}"; do
        rc=0
        run_once "$name" "$out/$name.log" || rc=$?
        if [[ $rc -ne 0 ]]; then
            skip "$name" "timed run $r $(failure_reason "$rc" "$out/$name.log")"
            sed -i "/^$name\t/d" "$results"
            continue
        fi
        read -r secs rss <<<"$last"
        log "run $r/$runs $name: ${secs}s, peak RSS ${rss} KiB"
        printf '%s\t%s\t%s\t%s\n' "$name" "$r" "$secs" "$rss" >>"$results"
        still+=("$name")
    done
    active=("${still[@]}")
done

# --- report: a table on stdout (and summary.txt), the same as JSON in summary.json ------
python3 - "$results" "$skipped" "$out" "$AGS_TEST_USER" "$runs" "$ref" "$((layers + 1))" \
    "$image_bytes" "$podman_driver" "$peers" <<'EOF' | tee "$out/summary.txt"
import json, statistics, sys
results, skipped, out, user, runs, ref, nlayers, nbytes, driver, peers = sys.argv[1:]
times, rss = {}, {}
for line in open(results):
    name, _, secs, kib = line.rstrip("\n").split("\t")
    times.setdefault(name, []).append(float(secs))
    rss.setdefault(name, []).append(int(kib))
skip = dict(line.rstrip("\n").split("\t", 1) for line in open(skipped) if line.strip())
med = {n: statistics.median(v) for n, v in times.items()}
rss_mb = {n: statistics.median(v) / 1024 for n, v in rss.items()}
labels = {"podman": f"podman ({driver})", "podman-vfs": "podman (vfs)", "skopeo-umoci": "skopeo+umoci"}
print(f"cold pull + unpack of {ref} ({nlayers} layers, {int(nbytes) / 2**20:.1f} MiB gzip), "
      f"rootless as {user}: median of {runs} runs")
print(f"{'contestant':<16} {'median s':>9} {'min s':>7} {'max s':>7} {'peak RSS MB':>12}  note")
for name in peers.split():
    label = labels.get(name, name)
    if name in med:
        t = times[name]
        print(f"{label:<16} {med[name]:>9.3f} {min(t):>7.3f} {max(t):>7.3f} {rss_mb[name]:>12.1f}")
    else:
        print(f"{label:<16} {'-':>9} {'-':>7} {'-':>7} {'-':>12}  {skip.get(name, 'not run')}")
print()
ratios = {}
for a, b, label in [("podman", "ags", "podman/ags"), ("podman-vfs", "ags", "podman-vfs/ags"),
                    ("skopeo-umoci", "ags", "(skopeo+umoci)/ags")]:
    r = med[a] / med[b] if a in med and b in med else None
    ratios[label] = r
    print(f"{label:<19}= {r:.2f}" if r is not None else f"{label:<19}= n/a")
ags_rss = rss_mb.get("ags")
print(f"{'ags peak RSS':<19}= {ags_rss:.1f} MB" if ags_rss is not None else f"{'ags peak RSS':<19}= n/a")
with open(f"{out}/summary.json", "w") as f:
    json.dump({"reference": ref, "layers": int(nlayers), "compressed_bytes": int(nbytes),
               "runs": int(runs), "median_s": med, "peak_rss_mb": rss_mb, "ratios": ratios,
               "skipped": skip}, f, indent=2)
EOF
log "results in $out (runs.tsv, logs, summary.txt, summary.json)"
exit 0

#!/usr/bin/env bash
# Short fuzzing pass over ags-oci's untrusted-input parsers (crates/ags-oci/fuzz):
#
#   ci/fuzz.sh [TARGET...]        default: every target; FUZZ_SECONDS=20 per target
#
# Builds the libFuzzer targets on *stable* Rust (no nightly, no cargo-fuzz): the
# instrumentation cargo-fuzz would add is passed by hand in RUSTFLAGS and `--target` keeps it
# away from build scripts and proc macros; libFuzzer itself comes from the libfuzzer-sys crate,
# built with the C++ compiler through cc. Needs only the Rust stable toolchain, a C++
# compiler (Debian: g++) and the crates.io index. Then it seeds each target with a few valid inputs generated below (in a
# temporary directory) and runs it for $FUZZ_SECONDS seconds. Set FUZZ_CORPUS_DIR to keep
# the corpora (one subdirectory per target) across runs, e.g. in a CI cache; the seeds are
# (re)added to it each time.
#
# Prints one summary line per target on stdout; exits non-zero if any target crashed (a
# panic, a failed invariant, a timeout or running out of memory). The input that crashed is
# kept under crates/ags-oci/fuzz/artifacts/<target>/ (gitignored); replay it with
#   crates/ags-oci/fuzz/target/<host triple>/release/<target> <that file>
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Relative to where the script was started, before the cd below.
corpus_root=${FUZZ_CORPUS_DIR:+$(realpath -m -- "$FUZZ_CORPUS_DIR")}
cd "$here/.."

fuzz_dir=crates/ags-oci/fuzz
all_targets=(parse_manifest image_config www_authenticate reference unpack_layer)
seconds=${FUZZ_SECONDS:-20}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || {
    echo "fuzz.sh: FUZZ_SECONDS must be a positive number of seconds, not '$seconds'" >&2
    exit 2
}
if (($# > 0)); then
    targets=("$@")
    for t in "${targets[@]}"; do
        [[ " ${all_targets[*]} " == *" $t "* ]] || {
            echo "fuzz.sh: unknown target '$t' (known: ${all_targets[*]})" >&2
            exit 2
        }
    done
else
    targets=("${all_targets[@]}")
fi

step() { printf '\n==> %s\n' "$*" >&2; }

# --- build -------------------------------------------------------------------------------
for tool in cargo rustc "${CXX:-c++}"; do
    command -v "$tool" >/dev/null || {
        echo "fuzz.sh: '$tool' not found (needs the Rust toolchain and a C++ compiler for" \
            "libFuzzer; on Debian: apt-get install g++)" >&2
        exit 2
    }
done
host=$(rustc -vV | sed -n 's/^host: //p')
target_dir="$PWD/$fuzz_dir/target"
bin_dir="$target_dir/$host/release"

# The fuzz crate is its own workspace and its lock file is not tracked (cargo-fuzz's
# default). Starting from the main workspace's lock keeps ags-oci's dependencies at the
# versions the rest of the project is tested with; cargo only adds what the fuzz crate needs.
if [[ ! -f $fuzz_dir/Cargo.lock ]]; then
    cp Cargo.lock "$fuzz_dir/Cargo.lock"
fi

# What `cargo fuzz build` passes, minus the sanitizer: the code under test is safe Rust,
# so a panic or a failed assertion is what we are looking for. Debug assertions and
# overflow checks turn silent arithmetic bugs into crashes.
rustflags=(
    --cfg fuzzing
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    -Cdebug-assertions
    -Coverflow-checks
)
bin_args=()
for t in "${targets[@]}"; do
    bin_args+=(--bin "$t")
done

step "building fuzz targets (${targets[*]}) for $host"
build_start=$(date +%s)
# Set RUSTFLAGS alone: encoded flags from the environment would take precedence over it.
env -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS RUSTFLAGS="${rustflags[*]}" \
    cargo build --release \
    --manifest-path "$fuzz_dir/Cargo.toml" \
    --target "$host" \
    --target-dir "$target_dir" \
    "${bin_args[@]}"
build_secs=$(($(date +%s) - build_start))
echo "fuzz: build: ${build_secs} s" >&2

# --- seeds -------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/ags-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
d1="sha256:$(sha one)"
d2="sha256:$(sha two)"
d3="sha256:$(sha three)"
oci_manifest=application/vnd.oci.image.manifest.v1+json
oci_index=application/vnd.oci.image.index.v1+json
docker_manifest=application/vnd.docker.distribution.manifest.v2+json
docker_list=application/vnd.docker.distribution.manifest.list.v2+json
oci_config=application/vnd.oci.image.config.v1+json
oci_layer=application/vnd.oci.image.layer.v1.tar+gzip
docker_layer=application/vnd.docker.image.rootfs.diff.tar.gzip

# seed TARGET NAME [SELECTOR-BYTE-IN-OCTAL]: stdin becomes a seed file.
seed() {
    local file="$work/corpus/$1/$2"
    mkdir -p "$work/corpus/$1"
    if (($# > 2)); then
        # shellcheck disable=SC2059 # the octal escape is the format on purpose
        printf "\\$3" >"$file"
    else
        : >"$file"
    fi
    cat >>"$file"
}

image_manifest() { # MEDIA-TYPE-FIELD-OR-EMPTY CONFIG-TYPE LAYER-TYPE
    local mt=""
    [[ -z $1 ]] || mt="\"mediaType\":\"$1\","
    printf '{"schemaVersion":2,%s"config":{"mediaType":"%s","digest":"%s","size":1234},' "$mt" "$2" "$d1"
    printf '"layers":[{"mediaType":"%s","digest":"%s","size":56789},' "$3" "$d2"
    printf '{"mediaType":"%s","digest":"%s","size":1,"annotations":{"a":"b"}}],' "$3" "$d3"
    printf '"annotations":{"org.opencontainers.image.created":"2024-01-01T00:00:00Z"}}'
}
image_index() { # MEDIA-TYPE-FIELD-OR-EMPTY ENTRY-TYPE
    local mt=""
    [[ -z $1 ]] || mt="\"mediaType\":\"$1\","
    printf '{"schemaVersion":2,%s"manifests":[' "$mt"
    printf '{"mediaType":"%s","digest":"%s","size":1,"platform":{"os":"linux","architecture":"amd64"}},' "$2" "$d1"
    printf '{"mediaType":"%s","digest":"%s","size":2,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},' "$2" "$d2"
    printf '{"mediaType":"%s","digest":"%s","size":3,"platform":{"os":"linux","architecture":"arm","variant":"v7","os.version":"x"}},' "$2" "$d3"
    printf '{"mediaType":"%s","digest":"%s","size":4,"platform":{"os":"unknown","architecture":"unknown"}}]}' "$2" "$d1"
}

# parse_manifest: selector byte = Content-Type (low 3 bits: 0 none, 1 OCI manifest, 2 OCI
# index, 3 Docker manifest, 4 Docker list, 5 application/json) and layer cap (bits 3-4).
image_manifest "$oci_manifest" "$oci_config" "$oci_layer" | seed parse_manifest oci-image 031
image_manifest "" "$oci_config" "$oci_layer" | seed parse_manifest oci-image-untyped 030
image_manifest "$docker_manifest" application/vnd.docker.container.image.v1+json "$docker_layer" |
    seed parse_manifest docker-image 033
image_index "$oci_index" "$oci_manifest" | seed parse_manifest oci-index 002
image_index "$docker_list" "$docker_manifest" | seed parse_manifest docker-list 004
image_index "" "$oci_manifest" | seed parse_manifest index-untyped 005
printf '{"schemaVersion":1,"fsLayers":[{"blobSum":"%s"}]}' "$d1" | seed parse_manifest schema1 000
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":1},"layers":[],"manifests":[]}' \
    "$oci_manifest" "$oci_config" "$d1" | seed parse_manifest ambiguous 001

seed image_config oci <<EOF
{"created":"2024-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"User":"1000:1000","Env":["PATH=/usr/local/bin:/usr/bin:/bin","LANG=C.UTF-8"],"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],"WorkingDir":"/work","Labels":{"a":"b"},"ExposedPorts":{"80/tcp":{}},"Volumes":{"/data":{}},"StopSignal":"SIGTERM"},"rootfs":{"type":"layers","diff_ids":["$d1","$d2"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"/bin/sh -c #(nop) ADD file","empty_layer":false}]}
EOF
seed image_config arm-variant <<EOF
{"architecture":"arm","variant":"v7","os":"linux","os.version":"1","os.features":["x"],"config":{},"rootfs":{"type":"layers","diff_ids":[]}}
EOF
seed image_config minimal <<<'{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'

seed www_authenticate docker-hub <<<'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull"'
seed www_authenticate basic <<<'Basic realm="Registry Realm"'
seed www_authenticate several <<<'Negotiate abc123==, Basic realm="x", Bearer realm="y",service=z, error="insufficient_scope"'
seed www_authenticate escapes <<<'bearer Realm = "a\"b\\c" , scope="repository:x:pull,push", junk;;, @@@'

for r in debian debian:12-slim library/debian:bookworm "ghcr.io/owner/img:v1.2.3" \
    "localhost:5000/a/b/c@$d1" "127.0.0.1:5000/foo:tag@$d2" "[::1]:5000/x_y.z--w:t" \
    "index.docker.io/user/img" "Registry/x"; do
    printf '%s' "$r" | seed reference "$(sha "$r" | cut -c1-16)"
done

# unpack_layer: selector byte = media type (0 tar, 1 tar+gzip, 2 tar+zstd). A small tree
# with the entry types the unpacker handles, in 512-byte records to keep the seeds small.
tree="$work/tree"
mkdir -p "$tree/etc/dir" "$tree/bin"
printf 'root:x:0:0::/root:/bin/sh\n' >"$tree/etc/passwd"
printf 'hello\n' >"$tree/etc/dir/file"
: >"$tree/etc/dir/.wh..wh..opq"
: >"$tree/etc/.wh.gone"
ln -s ../etc/passwd "$tree/bin/link"
ln "$tree/etc/dir/file" "$tree/etc/hardlink"
chmod 4755 "$tree/bin"
tar --format=gnu -b1 --owner=0 --group=0 --numeric-owner -C "$tree" -cf "$work/layer.tar" .
tar --format=pax -b1 --owner=1000 --group=1000 --numeric-owner -C "$tree" -cf "$work/layer-pax.tar" etc
seed unpack_layer tar 000 <"$work/layer.tar"
seed unpack_layer pax 000 <"$work/layer-pax.tar"
gzip -9 -n -c "$work/layer.tar" | seed unpack_layer tar-gzip 001
if command -v zstd >/dev/null; then
    zstd -q -19 -c "$work/layer.tar" | seed unpack_layer tar-zstd 002
fi

# Tokens libFuzzer splices into inputs; they get the JSON parsers past the shape checks fast.
dict="$work/json.dict"
for tok in '"schemaVersion"' '"mediaType"' '"config"' '"layers"' '"manifests"' '"digest"' \
    '"size"' '"urls"' '"platform"' '"annotations"' '"fsLayers"' '"os"' '"architecture"' \
    '"variant"' '"os.version"' '"rootfs"' '"diff_ids"' '"Env"' '"Cmd"' '"Entrypoint"' \
    '"WorkingDir"' '"User"' "\"$d1\"" "\"$oci_manifest\"" "\"$oci_index\"" \
    "\"$docker_manifest\"" "\"$docker_list\"" '"sha256:' 'null' 'true' '2' '[]' '{}'; do
    printf '"%s"\n' "$(printf '%s' "$tok" | sed 's/\\/\\\\/g; s/"/\\"/g')"
done >"$dict"

# --- run ---------------------------------------------------------------------------------
step "fuzzing each target for ${seconds} s"
failed=()
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    if [[ -n $corpus_root ]]; then
        mkdir -p "$corpus_root/$t"
        cp "$corpus"/* "$corpus_root/$t/"
        corpus="$corpus_root/$t"
    fi
    artifacts="$PWD/$fuzz_dir/artifacts/$t"
    log="$work/$t.log"
    mkdir -p "$corpus" "$artifacts"
    extra=()
    case $t in
    parse_manifest | image_config) extra+=("-dict=$dict") ;;
    esac
    # -timeout: an input taking over 10 s is a hang; -rss_limit_mb bounds memory.
    status=0
    "$bin_dir/$t" "$corpus" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "${extra[@]}" \
        >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    units=$(find "$corpus" -type f | wc -l)
    if ((status == 0)); then
        echo "fuzz: $t: ok, ${runs:-?} runs in ${seconds} s, corpus ${units} inputs"
    else
        failed+=("$t")
        crash=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n1)
        echo "fuzz: $t: FAILED (exit $status), ${runs:-?} runs; input: ${crash:-none written}"
        # The panic message, backtrace and libFuzzer report for the CI log, without the
        # progress lines.
        grep -v -e '^#[0-9]' -e '^INFO:' "$log" | head -n 200 >&2
    fi
done

echo "fuzz: build ${build_secs} s; ${#targets[@]} targets x ${seconds} s"
if ((${#failed[@]} > 0)); then
    echo "fuzz: crashed: ${failed[*]}" >&2
    exit 1
fi

#!/usr/bin/env bash
# Bootstraps a minimal Debian root filesystem from Debian's archive with debootstrap and
# turns it into a single-layer base image comparable to the official `debian:<suite>-slim`,
# for the tests and benchmarks that build the shipped agent Containerfile against a local
# registry (its FROM is docker.io/library/debian:trixie-slim, and docker.io is not
# reachable from CI; deb.debian.org is).
#
# What "slim" means here is what debuerreotype (the tool behind the official images) does:
# - debootstrap --variant=minbase (essential + apt), Release signatures checked against
#   debian-archive-keyring;
# - /etc/dpkg/dpkg.cfg.d/docker excludes docs (but copyrights), man pages, info, locales,
#   groff and lintian overrides, and the files already installed there are removed;
# - docker-style apt/dpkg tweaks: /etc/apt/apt.conf.d/docker-{clean,autoremove-suggests,
#   no-languages}, /etc/dpkg/dpkg.cfg.d/docker-apt-speedup, /usr/sbin/policy-rc.d (exit 101);
# - apt sources in deb822 form in /etc/apt/sources.list.d/debian.sources (SUITE,
#   SUITE-updates and SUITE-security on deb.debian.org; only SUITE for sid/unstable);
# - no package lists, apt caches, logs, /dev nodes, resolv.conf or hostname;
# - every mtime set to the date of the suite's Release file, entries sorted, numeric
#   owners: the same archive state gives the same layer bytes.
#
# OUT_DIR receives (files read-only, readable by everyone):
#   layer.tar.gz   the root filesystem as one OCI layer (tar, gzip -n)
#   rootfs.env     sourceable metadata: DEBIAN_SUITE, DEBIAN_ARCH, OCI_ARCH, OCI_VARIANT,
#                  DEBIAN_MIRROR, DEBIAN_BASE_KEY, CREATED (RFC 3339, the Release date),
#                  LAYER_DIFF_ID (sha256 of the tar), LAYER_DIGEST, LAYER_SIZE, TAR_SIZE,
#                  PACKAGES (count), BOOTSTRAP_SECONDS
#   packages.txt   the installed packages, "name version" per line
#   oci/           an OCI image layout holding the image under the tag SUITE-slim (config
#                  Cmd ["bash"], Env PATH), usable as `oci:OUT_DIR/oci:trixie-slim` by
#                  skopeo, buildah and podman
# and OUT_DIR is printed on stdout. Push it to a test registry with
#   ags-testimage push-tar --registry 127.0.0.1:PORT --insecure --repo library/debian \
#       --tag trixie-slim --config-cmd bash OUT_DIR/layer.tar.gz
# (see ci/bench-build.sh).
#
# Cache: the result is kept in $AGS_CI_CACHE/debian-base/SUITE-ARCH-KEY, KEY being the UTC
# date (DEBIAN_BASE_KEY overrides it: a fixed key pins a base across days), so a CI host
# bootstraps at most once a day per suite; the downloaded .debs are kept in
# $AGS_CI_CACHE/debootstrap/SUITE-ARCH so that a new day's bootstrap only fetches what
# changed. The newest DEBIAN_BASE_KEEP (3) entries per suite are kept. When the bootstrap
# fails (archive unreachable) and an older entry of the same suite exists, that one is used
# with a warning, unless DEBIAN_BASE_STRICT=1. A concurrent run waits for the first (flock).
#
# Usage: ci/mk-debian-base.sh OUT_DIR        (as root: debootstrap needs chroot and mknod)
# Environment:
#   DEBIAN_SUITE       default trixie (Debian 13: nodejs 20; bookworm's 18 is too old)
#   DEBIAN_MIRROR      default http://deb.debian.org/debian
#   DEBIAN_ARCH        default the host's (dpkg --print-architecture)
#   DEBIAN_BASE_KEY    cache key (default the UTC date, YYYYMMDD)
#   DEBIAN_BASE_KEEP   cache entries kept per suite and architecture (default 3)
#   DEBIAN_BASE_STRICT 1: fail rather than fall back to an older cache entry
#   DEBIAN_BASE_REFRESH 1: bootstrap again even when today's entry exists
#   AGS_CI_CACHE       default /var/cache/ags-ci
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[[ $# -eq 1 ]] || die "usage: ${0##*/} OUT_DIR"
require_root
out=$1

suite=${DEBIAN_SUITE:-trixie}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
arch=${DEBIAN_ARCH:-$(dpkg --print-architecture)}
key=${DEBIAN_BASE_KEY:-$(date -u +%Y%m%d)}
keep=${DEBIAN_BASE_KEEP:-3}
cache=${AGS_CI_CACHE:-/var/cache/ags-ci}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ $suite =~ ^[a-z0-9-]+$ ]] || die "DEBIAN_SUITE '$suite' is not a suite name"
[[ $key =~ ^[A-Za-z0-9._-]+$ ]] || die "DEBIAN_BASE_KEY '$key' may only hold letters, digits, '.', '_' and '-'"
[[ $keep =~ ^[1-9][0-9]*$ ]] || die "DEBIAN_BASE_KEEP must be a positive number, not '$keep'"

case $arch in
amd64) oci_arch=amd64 oci_variant= ;;
arm64) oci_arch=arm64 oci_variant=v8 ;;
armhf) oci_arch=arm oci_variant=v7 ;;
i386) oci_arch=386 oci_variant= ;;
ppc64el) oci_arch=ppc64le oci_variant= ;;
riscv64 | s390x) oci_arch=$arch oci_variant= ;;
*) die "no OCI architecture known for Debian architecture '$arch'" ;;
esac

command -v debootstrap >/dev/null || die "debootstrap not found: run ci/provision.sh"
[[ -r $keyring ]] || die "$keyring not found: install debian-archive-keyring"
[[ -e /usr/share/debootstrap/scripts/$suite ]] ||
    die "this debootstrap ($(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null)) has no script for '$suite': install a newer debootstrap (bookworm-backports) or set DEBIAN_SUITE"

base_dir=$cache/debian-base
entry=$base_dir/$suite-$arch-$key
install -d -m 0755 "$cache" "$base_dir" "$cache/debootstrap/$suite-$arch"

# --- helpers ---------------------------------------------------------------------------
work=
cleanup() {
    [[ -n $work && -d $work ]] || return 0
    # debootstrap mounts proc and sys (and more on some hosts) in the target; an
    # interrupted run can leave them mounted, and rm -rf must not descend into them.
    local m
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(findmnt -rn -o TARGET | grep -F "$work/" | sort -r)
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# Writes an OCI image layout in DIR ($1) holding the layer in $2 under tag $3.
write_oci_layout() {
    local dir=$1 layer=$2 tag=$3
    install -d -m 0755 "$dir/blobs/sha256"
    local digest=${layer_digest#sha256:}
    ln "$layer" "$dir/blobs/sha256/$digest" 2>/dev/null || cp "$layer" "$dir/blobs/sha256/$digest"
    python3 - "$dir" "$tag" "$layer_digest" "$layer_size" "$diff_id" "$created" "$oci_arch" \
        "$oci_variant" "$suite" <<'EOF'
import hashlib, json, os, sys
d, tag, ldigest, lsize, diff_id, created, arch, variant, suite = sys.argv[1:]

def blob(obj):
    data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(d, "blobs", "sha256", h), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + h, "size": len(data)}

config = {
    "created": created, "architecture": arch, "os": "linux",
    "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
               "Cmd": ["bash"]},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": created,
                 "created_by": f"ags ci/mk-debian-base.sh: debootstrap --variant=minbase {suite}, slimmed"}],
}
if variant:
    config["variant"] = variant
cfg = dict(mediaType="application/vnd.oci.image.config.v1+json", **blob(config))
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cfg,
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": ldigest, "size": int(lsize)}]}
man = dict(mediaType="application/vnd.oci.image.manifest.v1+json", **blob(manifest))
man["annotations"] = {"org.opencontainers.image.ref.name": tag}
man["platform"] = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
with open(os.path.join(d, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": [man]}, f)
with open(os.path.join(d, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
EOF
}

# The suite's apt sources, deb822, as in the official images.
write_sources() {
    local file=$1 keyfile=$2 suites=$suite
    case $suite in
    sid | unstable | experimental) ;;
    *) suites="$suite $suite-updates" ;;
    esac
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
            "$mirror" "$suites" "$keyfile"
        case $suite in
        sid | unstable | experimental) ;;
        *)
            printf '\nTypes: deb\nURIs: %s-security\nSuites: %s-security\nComponents: main\nSigned-By: %s\n' \
                "${mirror%/debian}/debian" "$suite" "$keyfile"
            ;;
        esac
    } >"$file"
}

# Makes the bootstrapped tree in $1 slim (see the header).
slim_rootfs() {
    local r=$1 keyfile
    # dpkg excludes, exactly the official slim images' list, so that packages installed
    # on top stay slim too.
    cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# The "slim" variant (written by ags ci/mk-debian-base.sh, as debuerreotype does):
# files that are unnecessary in containers are excluded, and stay excluded.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
    local d
    for d in groff info linda lintian/overrides locale man; do
        if [[ -d $r/usr/share/$d ]]; then
            find "$r/usr/share/$d" -mindepth 1 -delete
        fi
    done

    echo 'force-unsafe-io' >"$r/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
# As in the official images: no .deb files or package caches are kept. A Containerfile
# that mounts a cache on /var/cache/apt removes this file first.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
    echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
    printf '#!/bin/sh\n# Written by ags ci/mk-debian-base.sh: no services start in a container build.\nexit 101\n' \
        >"$r/usr/sbin/policy-rc.d"
    chmod 0755 "$r/usr/sbin/policy-rc.d"

    # trixie's keyring ships .pgp files (.gpg before).
    keyfile=/usr/share/keyrings/debian-archive-keyring.pgp
    [[ -e $r$keyfile ]] || keyfile=/usr/share/keyrings/debian-archive-keyring.gpg
    rm -f "$r/etc/apt/sources.list"
    install -d -m 0755 "$r/etc/apt/sources.list.d"
    write_sources "$r/etc/apt/sources.list.d/debian.sources" "$keyfile"

    # State that belongs to the host or to one run, not to an image.
    find "$r/var/lib/apt/lists" -mindepth 1 -delete
    install -d -m 0755 "$r/var/lib/apt/lists/partial"
    find "$r/var/cache/apt" "$r/var/cache/debconf" -type f \( -name '*.bin' -o -name '*.deb' -o -name '*-old' \) -delete
    find "$r/var/log" -type f -delete
    find "$r/dev" "$r/proc" "$r/sys" "$r/run" "$r/tmp" "$r/var/tmp" -mindepth 1 -delete 2>/dev/null || true
    rm -f "$r/etc/resolv.conf" "$r/etc/hostname" "$r/var/cache/ldconfig/aux-cache"
    find "$r/etc" -maxdepth 1 \( -name '*-' \) -type f -delete # passwd- shadow- ...
    if [[ -e $r/etc/machine-id ]]; then : >"$r/etc/machine-id"; fi
    chmod 1777 "$r/tmp" "$r/var/tmp"
}

bootstrap() {
    local t0 t1 rootfs release_date epoch
    work=$(mktemp -d "$base_dir/.work.XXXXXX")
    rootfs=$work/rootfs
    log "debootstrap --variant=minbase $suite ($arch) from $mirror into $rootfs"
    t0=$SECONDS
    # --cache-dir keeps the .debs across days; the keyring check stays on.
    if ! debootstrap --variant=minbase --arch="$arch" --keyring="$keyring" \
        --cache-dir="$cache/debootstrap/$suite-$arch" "$suite" "$rootfs" "$mirror" \
        >"$work/debootstrap.log" 2>&1; then
        tail -n 30 "$work/debootstrap.log" >&2
        # debootstrap's own log inside the target says more when the second stage fails.
        tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
        return 1
    fi
    t1=$SECONDS
    log "debootstrap took $((t1 - t0))s"

    # The Release date (from the lists debootstrap fetched) is the image's creation time.
    release_date=$(sed -n 's/^Date: //p' "$rootfs"/var/lib/apt/lists/*_dists_"${suite}"_InRelease 2>/dev/null | head -n 1)
    [[ -n $release_date ]] || release_date=$(sed -n 's/^Date: //p' "$rootfs"/var/lib/apt/lists/*_Release 2>/dev/null | head -n 1)
    epoch=$(date -u -d "${release_date:-now}" +%s)
    created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

    # shellcheck disable=SC2016 # dpkg-query's format, not shell
    chroot "$rootfs" dpkg-query -W -f='${Package} ${Version}\n' | LC_ALL=C sort >"$work/packages.txt"
    slim_rootfs "$rootfs"

    local -a top
    mapfile -t top < <(cd "$rootfs" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort)
    # --mtime for every entry (whole seconds, so no pax time records), numeric owners, no
    # atime/ctime, sorted: reproducible for the same archive state.
    tar --create --file="$work/layer.tar" --directory="$rootfs" --sort=name --numeric-owner \
        --format=posix --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
        --mtime="@$epoch" --warning=no-file-ignored -- "${top[@]}" 2>"$work/tar.log" ||
        {
            cat "$work/tar.log" >&2
            return 1
        }
    diff_id=sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
    tar_size=$(stat -c %s "$work/layer.tar")
    gzip -n -6 "$work/layer.tar"
    layer_digest=sha256:$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
    layer_size=$(stat -c %s "$work/layer.tar.gz")

    local staged=$work/entry
    install -d -m 0755 "$staged"
    mv "$work/layer.tar.gz" "$work/packages.txt" "$staged/"
    write_oci_layout "$staged/oci" "$staged/layer.tar.gz" "$suite-slim"
    {
        echo "DEBIAN_SUITE=$suite"
        echo "DEBIAN_ARCH=$arch"
        echo "OCI_ARCH=$oci_arch"
        echo "OCI_VARIANT=$oci_variant"
        echo "DEBIAN_MIRROR=$mirror"
        echo "DEBIAN_BASE_KEY=$key"
        echo "CREATED=$created"
        echo "LAYER_DIFF_ID=$diff_id"
        echo "LAYER_DIGEST=$layer_digest"
        echo "LAYER_SIZE=$layer_size"
        echo "TAR_SIZE=$tar_size"
        echo "PACKAGES=$(wc -l <"$staged/packages.txt")"
        echo "BOOTSTRAP_SECONDS=$((t1 - t0))"
    } >"$staged/rootfs.env"
    chmod -R a+rX,a-w "$staged"
    chmod u+w "$staged" "$staged/oci" "$staged/oci/blobs" "$staged/oci/blobs/sha256"
    rm -rf "$entry"
    mv "$staged" "$entry"
    log "cached $entry: layer $(numfmt --to=iec "$layer_size") gzip, $(numfmt --to=iec "$tar_size") tar, $(wc -l <"$entry/packages.txt") packages"
}

prune() {
    local -a old
    # .debs no bootstrap has needed for two weeks (debootstrap leaves the ones it reuses
    # alone, so an old but still current one is fetched again now and then: harmless).
    find "$cache/debootstrap/$suite-$arch" -name '*.deb' -mtime +14 -delete
    mapfile -t old < <(find "$base_dir" -mindepth 1 -maxdepth 1 -type d -name "$suite-$arch-*" -printf '%T@ %p\n' |
        sort -rn | tail -n +"$((keep + 1))" | cut -d' ' -f2-)
    if [[ ${#old[@]} -gt 0 ]]; then
        log "pruning old cache entries: ${old[*]}"
        rm -rf "${old[@]}"
    fi
}

# --- main ------------------------------------------------------------------------------
exec 9>"$base_dir/.lock"
flock 9
# Work directories of runs that were killed (an EXIT trap cleans up after the others).
find "$base_dir" -mindepth 1 -maxdepth 1 -name '.work.*' -mmin +60 -exec rm -rf --one-file-system {} + ||
    warn "could not remove every stale work directory in $base_dir (a mount left below one?)"

if [[ -s $entry/rootfs.env && -s $entry/layer.tar.gz && ${DEBIAN_BASE_REFRESH:-0} != 1 ]]; then
    log "using cached $entry"
elif bootstrap; then
    prune
else
    fallback=$(find "$base_dir" -mindepth 1 -maxdepth 1 -type d -name "$suite-$arch-*" -printf '%T@ %p\n' |
        sort -rn | head -n 1 | cut -d' ' -f2-)
    if [[ ${DEBIAN_BASE_STRICT:-0} == 1 || -z $fallback || ! -s $fallback/layer.tar.gz ]]; then
        die "debootstrap of $suite failed (log above)"
    fi
    warn "debootstrap of $suite failed: using the older cached base $fallback"
    entry=$fallback
fi

# OUT_DIR: hard links into the cache where possible (the files are read-only), copies
# otherwise.
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/layer.tar.gz" "$out/rootfs.env" "$out/packages.txt" "$out/oci"
cp -al "$entry/." "$out/" 2>/dev/null || cp -a "$entry/." "$out/"
chmod a+rx "$out"
log "wrote $out ($suite $arch, layer $(sed -n 's/^LAYER_DIGEST=//p' "$out/rootfs.env"))"
echo "$out"

#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine (run as root, no stdin needed) for ags's end-to-end
# tests and benchmarks. Idempotent and fast when everything is already in place: packages
# are checked with dpkg-query and apt is only called for missing ones.
#
# What it does, and why:
# 1. Installs the packages the build, the tests and the benchmark peers need (libseccomp
#    for libcontainer's seccomp feature, uidmap for multi-range id maps, pasta/slirp4netns
#    for networking, docker-registry for a local registry, the peer runtimes and buildah,
#    debootstrap + debian-archive-keyring for the Debian base image, hyperfine, ssh-keygen
#    for `ags setup`...).
# 2. Creates the unprivileged test user "agstest" with a 65536-wide /etc/subuid and
#    /etc/subgid range and its XDG_RUNTIME_DIR /run/user/<uid> (0700), as a login
#    session would. Tests run ags as this user, because ags is a rootless runtime.
# 3. Makes /dev/net/tun mode 0666 (as on most distributions; it is 0600 on these
#    machines) so that pasta and slirp4netns can open it as the user.
# 4. Delegates a cgroup to agstest the way systemd's Delegate=yes would for a user
#    service, because this host has no systemd to do it and every rootless start needs a
#    writable cgroup:
#    - cgroup v1 or hybrid: in every mounted v1 hierarchy (see cgroup_hierarchies in
#      lib.sh) it creates <mount>/ags-delegate and chowns it and its control files to
#      agstest; for cpuset it first copies cpuset.cpus/cpuset.mems from the parent, since
#      a cpuset cgroup with empty sets cannot hold tasks. On a hybrid host it also
#      creates <root>/unified/ags-delegate, chowned like a cgroup v2 delegation (below):
#      libcontainer ignores it, crun needs it.
#    - cgroup v2: it creates /sys/fs/cgroup/ags-delegate, enables +memory +pids +cpu in
#      the root's and its own cgroup.subtree_control where the kernel allows it, and
#      chowns the directory and its cgroup.procs, cgroup.subtree_control and
#      cgroup.threads files to agstest. ci/enter-delegated-cgroup.sh then puts processes
#      into the leaf ags-delegate/runner, because v2 forbids processes in a cgroup that
#      distributes controllers to children.
#    Containers then get a cgroupsPath of /ags-delegate/<id>; a process that should own
#    such cgroups is first moved into the delegated cgroup with
#    ci/enter-delegated-cgroup.sh PID (as root).
# 5. Writes /run/ags-ci.env (KEY=value lines, sourceable by a shell) with AGS_TEST_USER,
#    AGS_TEST_UID, AGS_TEST_GID, AGS_TEST_HOME, AGS_TEST_RUNTIME_DIR,
#    AGS_CGROUP_DELEGATE_NAME, AGS_CGROUP_MODE and AGS_CGROUP_DELEGATE_PATHS, and shows it
#    on stderr. The delegated cgroup directories are printed on stdout, one per line.
# 6. Gives agstest a rootless podman configuration that works without systemd (cgroupfs
#    manager, file events logger), for the benchmark's podman peer.
#
# Usage: ci/provision.sh
# Environment: AGS_TEST_USER (default agstest), AGS_CI_EXTRA_PACKAGES (space-separated
# packages to install as well, e.g. "shellcheck"), AGS_CI_ENV_FILE (default
# /run/ags-ci.env), AGS_CGROUP_ROOT (default /sys/fs/cgroup; for testing this script).
# /run and /sys/fs/cgroup do not survive a reboot: run it again after one.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

require_root
export DEBIAN_FRONTEND=noninteractive

user=${AGS_TEST_USER:-agstest}
packages=(
    libseccomp-dev pkg-config g++ uidmap passt slirp4netns busybox-static bubblewrap runc crun
    podman docker-registry skopeo umoci buildah hyperfine debootstrap debian-archive-keyring
    apache2-utils openssl iproute2 socat strace procps git ca-certificates curl python3
    catatonit time openssh-client
)
# More packages for a particular job (for example shellcheck for a lint job).
read -r -a extra_packages <<<"${AGS_CI_EXTRA_PACKAGES:-}"
packages+=("${extra_packages[@]}")

# --- 1. packages ----------------------------------------------------------------------
missing_packages() {
    local p status
    for p in "${packages[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
        [[ $status == ii* ]] || echo "$p"
    done
}

# apt-get update runs at most once, and only when needed: when there are no package
# lists at all, when a missing package has no install candidate in the lists, or when an
# install fails (stale lists name files the mirror no longer has). The lists' file times
# say nothing about their age (apt keeps the server's Last-Modified), so staleness is
# detected by those failures instead.
apt_updated=false
apt_update() {
    $apt_updated && return 1
    log "running apt-get update${1:+ ($1)}"
    apt-get update -q >&2 || die "apt-get update failed"
    apt_updated=true
}

have_apt_lists() {
    [[ -n $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit 2>/dev/null) ]]
}

# Prints those of the given packages that have no install candidate.
no_candidate() {
    local p candidate
    for p in "$@"; do
        candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ { print $2 }')
        [[ -n $candidate && $candidate != "(none)" ]] || echo "$p"
    done
}

install_packages() {
    local -a missing uninstallable
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "all ${#packages[@]} packages are installed"
        return
    fi
    log "missing packages: ${missing[*]}"
    have_apt_lists || apt_update "no package lists"
    mapfile -t uninstallable < <(no_candidate "${missing[@]}")
    if [[ ${#uninstallable[@]} -gt 0 ]] && apt_update "no candidate for ${uninstallable[*]}"; then
        mapfile -t uninstallable < <(no_candidate "${missing[@]}")
    fi
    if [[ ${#uninstallable[@]} -gt 0 ]]; then
        die "not installable from the configured apt sources: ${uninstallable[*]}"
    fi
    # With recommends, as a user's host would have them: podman's (catatonit for its
    # rootless pause process, fuse-overlayfs, dbus-user-session) matter.
    log "installing: ${missing[*]}"
    if ! apt-get install -y -q "${missing[@]}" >&2; then
        apt_update "apt-get install failed, the lists may be stale" ||
            die "apt-get install ${missing[*]} failed"
        apt-get install -y -q "${missing[@]}" >&2 ||
            die "apt-get install ${missing[*]} failed"
    fi
}

# --- 2. test user -----------------------------------------------------------------------
# Prints the number of ids in NAME's ranges in the subordinate id FILE.
subid_count() {
    local file=$1 name=$2 uid=$3
    awk -F: -v n="$name" -v u="$uid" '$1 == n || $1 == u { s += $3 } END { print s + 0 }' "$file"
}

# Prints the first id after every range in FILE, at least 100000 (SUB_UID_MIN).
subid_next_free() {
    awk -F: 'BEGIN { m = 100000 } NF >= 3 && $2 + $3 > m { m = $2 + $3 } END { print m }' "$1"
}

ensure_user() {
    if ! id -u "$user" >/dev/null 2>&1; then
        log "creating user $user"
        useradd -m -s /bin/bash "$user"
    fi
    uid=$(id -u "$user")
    gid=$(id -g "$user")
    home=$(getent passwd "$user" | cut -d: -f6)
    [[ -d $home ]] || install -d -m 0755 -o "$uid" -g "$gid" "$home"

    local file flag start
    for file in /etc/subuid /etc/subgid; do
        [[ -e $file ]] || install -m 0644 /dev/null "$file"
        if [[ $(subid_count "$file" "$user" "$uid") -lt 65536 ]]; then
            start=$(subid_next_free "$file")
            if [[ $file == /etc/subuid ]]; then flag=--add-subuids; else flag=--add-subgids; fi
            log "adding $file range $start-$((start + 65535)) for $user"
            usermod "$flag" "$start-$((start + 65535))" "$user"
        fi
    done

    runtime_dir=/run/user/$uid
    install -d -m 0755 /run/user
    install -d -m 0700 -o "$uid" -g "$gid" "$runtime_dir"
    # install -d leaves an existing directory's mode and owner alone.
    chown "$uid:$gid" "$runtime_dir"
    chmod 0700 "$runtime_dir"
}

# --- 3. /dev/net/tun ----------------------------------------------------------------------
ensure_tun() {
    if [[ ! -c /dev/net/tun ]]; then
        log "creating /dev/net/tun"
        install -d -m 0755 /dev/net
        mknod -m 0666 /dev/net/tun c 10 200
    fi
    chmod 0666 /dev/net/tun
}

# --- 4. cgroup delegation ----------------------------------------------------------------
delegated_paths=()

delegate_v1() {
    local mount dir f
    while read -r mount; do
        dir=$mount/$AGS_CGROUP_DELEGATE_NAME
        mkdir -p "$dir"
        if is_cgroup2 "$mount"; then
            # The hybrid host's unified hierarchy: no controllers, so processes may live
            # in the delegated cgroup itself; chown as systemd would on cgroup2.
            chown_v2_delegate "$dir"
            delegated_paths+=("$dir")
            continue
        fi
        if [[ -e $dir/cpuset.cpus ]]; then
            for f in cpuset.cpus cpuset.mems; do
                if [[ -z $(<"$dir/$f") ]]; then
                    cat "$mount/$f" >"$dir/$f"
                fi
            done
        fi
        # -R: the directory, its control files and any cgroups left below it by an
        # earlier run (which a later run must be able to remove). v1 has no notion of
        # delegation, so owning the control files is what lets the user's runtime write
        # its containers' limits.
        chown -R "$uid:$gid" "$dir"
        delegated_paths+=("$dir")
    done < <(cgroup_hierarchies)
    [[ ${#delegated_paths[@]} -gt 0 ]] || die "no cgroup v1 hierarchy is mounted under $AGS_CGROUP_ROOT"
}

# Chowns a cgroup2 directory the way systemd does for Delegate=yes (see
# systemd.resource-control(5) and the kernel's cgroup-v2.rst "Delegation Containment"):
# the directory and its cgroup.procs, cgroup.subtree_control and cgroup.threads files; the
# controller interface files (memory.max...) stay root's so that the user cannot raise
# its own limits. Everything below it (cgroups left by earlier runs) belongs to the user.
chown_v2_delegate() {
    local dir=$1 f
    chown "$uid:$gid" "$dir"
    for f in cgroup.procs cgroup.subtree_control cgroup.threads; do
        if [[ -e $dir/$f ]]; then chown "$uid:$gid" "$dir/$f"; fi
    done
    find "$dir" -mindepth 1 -maxdepth 1 -type d -exec chown -R "$uid:$gid" {} +
}

# Enables each controller of $2.. in $1/cgroup.subtree_control that $1 offers; a controller
# the kernel refuses (for example because $1 holds processes) only gets a warning.
enable_controllers() {
    local cg=$1 c
    shift
    for c in "$@"; do
        grep -qw "$c" "$cg/cgroup.controllers" || continue
        grep -qw "$c" "$cg/cgroup.subtree_control" && continue
        echo "+$c" >"$cg/cgroup.subtree_control" 2>/dev/null ||
            warn "could not enable the $c controller in $cg/cgroup.subtree_control"
    done
}

delegate_v2() {
    local root=$AGS_CGROUP_ROOT dir=$AGS_CGROUP_ROOT/$AGS_CGROUP_DELEGATE_NAME
    enable_controllers "$root" memory pids cpu
    mkdir -p "$dir"
    # The runner leaf: v2's "no internal processes" rule forbids processes directly in
    # a cgroup that hands controllers to its children, so the test runner lives in
    # ags-delegate/runner and containers in ags-delegate/<id> (siblings).
    mkdir -p "$dir/runner"
    enable_controllers "$dir" memory pids cpu
    chown_v2_delegate "$dir"
    delegated_paths+=("$dir")
}

# --- 6. podman configuration ------------------------------------------------------------
# Rootless podman defaults to the systemd cgroup manager and the journald events logger,
# neither of which exists here; cgroupfs + file work (podman then ignores resource limits
# on rootless cgroup v1 and says so).
ensure_podman_config() {
    local cfg=$home/.config/containers
    install -d -m 0755 -o "$uid" -g "$gid" "$home/.config" "$cfg"
    if [[ ! -e $cfg/containers.conf ]]; then
        log "writing $cfg/containers.conf"
        cat >"$cfg/containers.conf" <<'EOF'
# Written by ags ci/provision.sh: this host has no systemd and no user D-Bus.
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
        chown "$uid:$gid" "$cfg/containers.conf"
    fi
}

write_env_file() {
    local tmp
    tmp=$(mktemp "$AGS_CI_ENV_FILE.XXXXXX")
    {
        echo "AGS_TEST_USER=$user"
        echo "AGS_TEST_UID=$uid"
        echo "AGS_TEST_GID=$gid"
        echo "AGS_TEST_HOME=$home"
        echo "AGS_TEST_RUNTIME_DIR=$runtime_dir"
        echo "AGS_CGROUP_DELEGATE_NAME=$AGS_CGROUP_DELEGATE_NAME"
        echo "AGS_CGROUP_MODE=$mode"
        echo "AGS_CGROUP_DELEGATE_PATHS=\"${delegated_paths[*]}\""
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$AGS_CI_ENV_FILE"
}

install_packages
ensure_user
ensure_tun
mode=$(cgroup_mode)
if [[ $mode == v2 ]]; then delegate_v2; else delegate_v1; fi
ensure_podman_config
write_env_file

log "cgroup $mode: delegated to $user ($uid:$gid) (printed on stdout):"
printf '%s\n' "${delegated_paths[@]}"
log "wrote $AGS_CI_ENV_FILE:"
sed 's/^/  /' "$AGS_CI_ENV_FILE" >&2

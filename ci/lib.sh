# shellcheck shell=bash
# Helpers shared by the ci/ scripts. Source it, do not run it:
#   . "$(dirname "$0")/lib.sh"
#
# Everything here writes messages to stderr only, so that the scripts' stdout stays
# usable as data (paths, tables).

# The name of the cgroup that provision.sh delegates to the test user, below the root of
# every cgroup hierarchy. Tests give containers a cgroupsPath of /$AGS_CGROUP_DELEGATE_NAME/<id>.
AGS_CGROUP_DELEGATE_NAME=${AGS_CGROUP_DELEGATE_NAME:-ags-delegate}
# Where provision.sh writes the facts the test runner and benchmarks need.
AGS_CI_ENV_FILE=${AGS_CI_ENV_FILE:-/run/ags-ci.env}
AGS_CGROUP_ROOT=${AGS_CGROUP_ROOT:-/sys/fs/cgroup}

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "${0##*/}" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it changes users, cgroups and device nodes)"
}

# Prints "v2" when $AGS_CGROUP_ROOT is a cgroup2 (unified) mount, "v1" for a legacy or
# hybrid layout (a tmpfs holding one mount per v1 hierarchy).
cgroup_mode() {
    if is_cgroup2 "$AGS_CGROUP_ROOT"; then
        echo v2
    else
        echo v1
    fi
}

# Prints, one per line, the mount point of every cgroup hierarchy in which the test user
# gets a delegated cgroup:
# - v2: the unified root itself.
# - v1/hybrid: every mounted v1 hierarchy (fstype "cgroup"): the controller hierarchies
#   that libcontainer's v1 manager uses when they are mounted (cpu, cpuacct, cpuset,
#   devices, hugetlb, memory, pids, perf_event, blkio, net_cls, net_prio, freezer) and the
#   named name=systemd hierarchy, which runc's cgroupfs driver joins when a cgroupsPath is
#   set; plus, on a hybrid host, the cgroup2 mounted at $AGS_CGROUP_ROOT/unified, where
#   crun creates a cgroup too. systemd's Delegate=yes hands over all of these on a hybrid
#   host. libcontainer treats a hybrid host as v1 and never touches the unified one.
cgroup_hierarchies() {
    if [[ $(cgroup_mode) == v2 ]]; then
        echo "$AGS_CGROUP_ROOT"
        return
    fi
    local target
    while read -r target; do
        case $target in
        "$AGS_CGROUP_ROOT"/*) echo "$target" ;;
        esac
    done < <(findmnt -rn -t cgroup,cgroup2 -o TARGET)
}

# Succeeds when the hierarchy mounted at $1 is a cgroup2 (unified) one.
is_cgroup2() {
    [[ $(stat -f -c %T "$1") == cgroup2fs ]]
}

# Prints the first TCP port from $1 to $2 on which nothing listens (fails when all are taken).
free_port() {
    local p
    for ((p = $1; p <= $2; p++)); do
        if ! ss -Hltn "sport = :$p" | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Microseconds since the epoch: EPOCHREALTIME without its decimal separator (which
# follows the locale).
now_us() { echo "${EPOCHREALTIME//[!0-9]/}"; }

# Prints microseconds ($1) as seconds with six decimals.
us_to_s() { printf '%d.%06d\n' $(($1 / 1000000)) $(($1 % 1000000)); }

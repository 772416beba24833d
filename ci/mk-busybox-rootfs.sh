#!/usr/bin/env bash
# Builds a minimal root filesystem from a statically linked busybox, for tests and
# benchmarks that need a real but tiny container root:
#   DIR/bin/busybox and one symlink per applet (`busybox --list`) in DIR/bin;
#   DIR/sbin, DIR/usr/bin, DIR/usr/sbin as symlinks to bin, so #!/usr/bin/env works;
#   DIR/etc/passwd and DIR/etc/group with root (0), dev (1000, home /home/dev) and
#   nobody/nogroup (65534, what unmapped ids show as);
#   DIR/etc/hosts, DIR/etc/hostname, DIR/etc/mtab -> /proc/mounts; empty proc dev sys tmp var/tmp run root home/dev.
# Idempotent: running it again over DIR refreshes the files and links. Everything is
# owned by the invoking user and readable by all (a+rX), so an unprivileged user can use
# a rootfs that root built.
#
# Usage: ci/mk-busybox-rootfs.sh DIR       (environment: BUSYBOX, default /bin/busybox
#                                           from Debian's busybox-static)
# Prints DIR (absolute) on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[[ $# -eq 1 ]] || die "usage: ${0##*/} DIR"
busybox=${BUSYBOX:-/bin/busybox}
[[ -x $busybox ]] || die "$busybox not found: install busybox-static (ci/provision.sh does)"
# The rootfs has no libc, so a dynamically linked busybox would not start in it.
if ldd "$busybox" 2>/dev/null | grep -q '=>'; then
    die "$busybox is dynamically linked: install busybox-static instead of busybox"
fi

mkdir -p "$1"
root=$(cd "$1" && pwd)

install -d "$root"/{bin,etc,proc,dev,sys,run,root,home/dev,var/tmp,usr}
install -d -m 1777 "$root/tmp" "$root/var/tmp"

# Replace busybox only when it changed, so re-running is cheap and keeps its inode.
if ! cmp -s "$busybox" "$root/bin/busybox"; then
    install -m 0755 "$busybox" "$root/bin/busybox.tmp"
    mv -f "$root/bin/busybox.tmp" "$root/bin/busybox"
fi
count=0
while read -r applet; do
    [[ -n $applet && $applet != busybox && $applet != */* ]] || continue
    ln -sfn busybox "$root/bin/$applet"
    count=$((count + 1))
done < <("$root/bin/busybox" --list)

for link in sbin usr/bin usr/sbin; do
    target=bin
    [[ $link == usr/* ]] && target=../bin
    if [[ -d $root/$link && ! -L $root/$link ]]; then
        rmdir "$root/$link" 2>/dev/null || die "$root/$link is a non-empty directory, expected a symlink to $target"
    fi
    ln -sfn "$target" "$root/$link"
done

# write_file PATH: replaces PATH with stdin atomically, keeping an identical file untouched.
write_file() {
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat >"$tmp"
    chmod 0644 "$tmp"
    if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}

write_file "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
dev:x:1000:1000:dev:/home/dev:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
write_file "$root/etc/group" <<'EOF'
root:x:0:
dev:x:1000:
nogroup:x:65534:
EOF
write_file "$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF
echo sandbox | write_file "$root/etc/hostname"
# As on every distribution; podman otherwise tries to create it in the rootfs.
ln -sfn /proc/mounts "$root/etc/mtab"

chmod -R a+rX "$root"
log "busybox rootfs with $count applets in $root"
echo "$root"

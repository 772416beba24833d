#!/usr/bin/env bash
# Starts or stops a local OCI registry for the tests: Debian's docker-registry (CNCF
# distribution 2.8, `docker-registry serve CONFIG.yml`) listening on 127.0.0.1:PORT only,
# with its storage and every generated file in DIR.
#
# Usage: ci/registry.sh start MODE PORT DIR
#        ci/registry.sh stop  [MODE PORT] DIR
#        ci/registry.sh status [MODE PORT] DIR
# MODE:
#   plain         plain HTTP, no authentication.
#   tls           HTTPS with a certificate for 127.0.0.1 and localhost (SAN IP:127.0.0.1,
#                 DNS:localhost) signed by a throwaway test CA; `start` prints the CA
#                 certificate's path (DIR/tls/ca.crt) on stdout.
#   htpasswd      plain HTTP with basic authentication: user agsuser, password agspass
#                 (bcrypt entry in DIR/htpasswd; registry's docs advise TLS for basic
#                 authentication, which does not matter on loopback in tests).
#   tls-htpasswd  both: HTTPS and basic authentication; prints the CA path.
#
# `start` writes DIR/config.yml, DIR/registry.log, DIR/registry.pid and DIR/registry.env
# (REGISTRY_ADDR, REGISTRY_URL, REGISTRY_CA, REGISTRY_USER, REGISTRY_PASSWORD, sourceable),
# and returns once GET /v2/ answers 200 (401 with authentication). It is idempotent: a
# registry already running from DIR with the same MODE and PORT is kept; one with other
# settings is restarted. The test CA and certificate are kept across runs while valid.
# `stop` kills the registry whose pid is in DIR/registry.pid (if it still runs) and waits
# for it to exit; the storage is left in place.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() { die "usage: ${0##*/} start MODE PORT DIR | stop [MODE PORT] DIR | status [MODE PORT] DIR (MODE: plain, tls, htpasswd, tls-htpasswd)"; }

[[ $# -ge 2 ]] || usage
action=$1
shift
case $action in
start) [[ $# -eq 3 ]] || usage ;;
stop | status) [[ $# -eq 1 || $# -eq 3 ]] || usage ;;
*) usage ;;
esac
dir=${!#}
mode=
port=
if [[ $# -eq 3 ]]; then
    mode=$1
    port=$2
    case $mode in plain | tls | htpasswd | tls-htpasswd) ;; *) usage ;; esac
    [[ $port =~ ^[0-9]+$ && $port -ge 1 && $port -le 65535 ]] || die "invalid port: $port"
fi

[[ $action == start ]] && mkdir -p "$dir"
# Absolute, because the pid check below matches the registry's command line.
[[ -d $dir ]] && dir=$(cd "$dir" && pwd)
registry_user=agsuser
registry_password=agspass
pidfile=$dir/registry.pid

# Prints the pid of the registry started from DIR if it still runs.
running_pid() {
    local pid
    [[ -r $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    # The pid may have been reused by another program since: check it is our registry.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "serve $dir/config.yml" || return 1
    echo "$pid"
}

stop_registry() {
    local pid i
    if pid=$(running_pid); then
        log "stopping registry (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then
            warn "registry (pid $pid) ignored SIGTERM for 5s: sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

# Creates DIR/tls/{ca.crt,ca.key,server.crt,server.key} unless a valid set exists.
ensure_certs() {
    local t=$dir/tls
    install -d -m 0755 "$t"
    if [[ -s $t/ca.crt && -s $t/server.crt && -s $t/server.key ]] &&
        openssl x509 -checkend 86400 -noout -in "$t/server.crt" >/dev/null &&
        openssl verify -CAfile "$t/ca.crt" "$t/server.crt" >/dev/null 2>&1; then
        return
    fi
    log "generating a test CA and a server certificate for 127.0.0.1/localhost in $t"
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$t/ca.key" -out "$t/ca.crt" -days 30 -subj "/CN=ags test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$t/server.key" -out "$t/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" \
        "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$t/server.ext"
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" \
        -CAcreateserial -days 30 -extfile "$t/server.ext" -out "$t/server.crt" 2>/dev/null
    rm -f "$t/server.csr" "$t/server.ext"
    chmod 0600 "$t/ca.key" "$t/server.key"
    chmod 0644 "$t/ca.crt" "$t/server.crt"
}

ensure_htpasswd() {
    local f=$dir/htpasswd
    if [[ -s $f ]] && htpasswd -vb "$f" "$registry_user" "$registry_password" >/dev/null 2>&1; then
        return
    fi
    # -B: bcrypt, the only hash format the registry accepts.
    htpasswd -cBb "$f" "$registry_user" "$registry_password" 2>/dev/null ||
        die "htpasswd failed (is apache2-utils installed?)"
    chmod 0644 "$f"
}

write_config() {
    local secret tls=false auth=false
    [[ $mode == tls || $mode == tls-htpasswd ]] && tls=true
    [[ $mode == htpasswd || $mode == tls-htpasswd ]] && auth=true
    if [[ ! -s $dir/secret ]]; then
        (umask 077 && openssl rand -hex 32 >"$dir/secret")
    fi
    secret=$(<"$dir/secret")
    {
        cat <<EOF
# Written by ags ci/registry.sh ($mode): distribution 2.8 configuration format.
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  secret: $secret
  headers:
    X-Content-Type-Options: [nosniff]
EOF
        if $tls; then
            cat <<EOF
  tls:
    certificate: $dir/tls/server.crt
    key: $dir/tls/server.key
EOF
        fi
        if $auth; then
            cat <<EOF
auth:
  htpasswd:
    realm: ags-test-registry
    path: $dir/htpasswd
EOF
        fi
    } >"$dir/config.yml.tmp"
    mv -f "$dir/config.yml.tmp" "$dir/config.yml"
}

scheme() { if [[ $mode == tls* ]]; then echo https; else echo http; fi; }

# Prints the HTTP status of GET /v2/ (000 when nothing answers).
probe() {
    local -a tls_args=()
    [[ $mode == tls* ]] && tls_args=(--cacert "$dir/tls/ca.crt")
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${tls_args[@]}" \
        "$(scheme)://127.0.0.1:$port/v2/" 2>/dev/null || true
}

expected_status() { if [[ $mode == *htpasswd ]]; then echo 401; else echo 200; fi; }

write_env() {
    local ca=
    [[ $mode == tls* ]] && ca=$dir/tls/ca.crt
    {
        echo "REGISTRY_MODE=$mode"
        echo "REGISTRY_ADDR=127.0.0.1:$port"
        echo "REGISTRY_URL=$(scheme)://127.0.0.1:$port"
        echo "REGISTRY_CA=$ca"
        if [[ $mode == *htpasswd ]]; then
            echo "REGISTRY_USER=$registry_user"
            echo "REGISTRY_PASSWORD=$registry_password"
        else
            echo "REGISTRY_USER="
            echo "REGISTRY_PASSWORD="
        fi
    } >"$dir/registry.env"
}

start_registry() {
    command -v docker-registry >/dev/null || die "docker-registry not found: run ci/provision.sh"
    mkdir -p "$dir/storage"

    local pid status i
    if pid=$(running_pid); then
        if [[ $(cat "$dir/registry.settings" 2>/dev/null) == "$mode $port" && $(probe) == "$(expected_status)" ]]; then
            log "registry already running in $mode mode on 127.0.0.1:$port (pid $pid)"
            print_ca
            return
        fi
        stop_registry
    fi
    if ss -Hltn "sport = :$port" | grep -q .; then
        die "127.0.0.1:$port is already in use by another program"
    fi

    if [[ $mode == tls* ]]; then ensure_certs; fi
    if [[ $mode == *htpasswd ]]; then ensure_htpasswd; fi
    write_config

    # setsid: its own session, so the registry outlives this script and its terminal.
    # Descriptors above 2 are closed first: the registry outlives its caller too, and an
    # inherited one (such as the lock of `flock LOCK cargo test`) would stay open as long.
    (
        for fd in /proc/"$BASHPID"/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec setsid docker-registry serve "$dir/config.yml" </dev/null >>"$dir/registry.log" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$pidfile"
    echo "$mode $port" >"$dir/registry.settings"

    for ((i = 0; i < 200; i++)); do
        status=$(probe)
        [[ $status == "$(expected_status)" ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pidfile"
            tail -n 20 "$dir/registry.log" >&2 || true
            die "docker-registry exited during startup (log: $dir/registry.log)"
        fi
        sleep 0.05
    done
    if [[ $status != "$(expected_status)" ]]; then
        stop_registry
        tail -n 20 "$dir/registry.log" >&2 || true
        die "GET /v2/ answered $status instead of $(expected_status) after 10s (log: $dir/registry.log)"
    fi
    write_env
    log "registry running in $mode mode at $(scheme)://127.0.0.1:$port (pid $pid, storage $dir/storage, env $dir/registry.env)"
    print_ca
}

print_ca() {
    if [[ $mode == tls* ]]; then echo "$dir/tls/ca.crt"; fi
}

case $action in
start) start_registry ;;
stop) stop_registry ;;
status)
    if pid=$(running_pid); then
        log "registry running (pid $pid, $(cat "$dir/registry.settings" 2>/dev/null))"
    else
        log "registry not running"
        exit 1
    fi
    ;;
esac

# scripts/lib.sh: shared by scripts/demo, scripts/test and bench/run.
# Installs what is missing, builds, and runs throwaway PostgreSQL clusters.
# Never touches a cluster the user already runs.

set -euo pipefail

CRM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=${PG_MAJOR:-15}
PG_SYS_BIN=/usr/lib/postgresql/$PG_MAJOR/bin

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Install the Debian packages we need, only when something is missing.
ensure_deps() {
    local pkgs=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-$PG_MAJOR-pgtap
                libtap-parser-sourcehandler-pgtap-perl postgresql-$PG_MAJOR-cron make gcc)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # Debian's postgresql package starts a main cluster on install; we never use it.
}

# A private, relocated copy of the PostgreSQL installation: tests install the
# extension there, so they neither need nor disturb the system-wide install,
# and several checkouts can test at once.  The server runs as the postgres user
# (when we are root), which must be able to read the copy: a checkout may sit in
# a folder postgres cannot enter (root's home, a mktemp -d folder, mode 0700), so
# the copy lives outside the checkout, in a folder of /var/tmp of our own, one
# per checkout (keyed by a hash of the checkout's path).  CRM_PG_ROOT overrides.
private_pg_root_dir() {
    if [ -n "${CRM_PG_ROOT:-}" ]; then echo "$CRM_PG_ROOT"; return; fi
    local key
    key=$(printf '%s' "$CRM_ROOT" | sha256sum | cut -c1-16)
    echo "/var/tmp/crm_analytics-$(id -u)-$key/pgroot"
}

private_pg_root() {
    local root
    root=$(private_pg_root_dir)
    if [ -z "${CRM_PG_ROOT:-}" ]; then
        # our own folder, not one planted by another user of /var/tmp
        local base=${root%/pgroot}
        [ -d "$base" ] || mkdir -m 755 "$base"
        [ -O "$base" ] && [ ! -L "$base" ] || die "$base is not a folder of ours"
        [ -z "$(find "$base" -maxdepth 0 -perm /022)" ] || die "$base is writable by others"
        echo "$CRM_ROOT" > "$base/checkout"
    fi
    local stamp=$root/.stamp
    local want
    want=$(dpkg-query -W -f='${Version}' postgresql-$PG_MAJOR postgresql-$PG_MAJOR-pgtap postgresql-$PG_MAJOR-cron 2>/dev/null | tr '\n' ' ')
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        rm -rf "$root"
        mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql" "$root/usr/include"
        cp -a /usr/lib/postgresql/$PG_MAJOR "$root/usr/lib/postgresql/"
        cp -a /usr/share/postgresql/$PG_MAJOR "$root/usr/share/postgresql/"
        ln -s /usr/include/postgresql "$root/usr/include/postgresql"
        echo "$want" > "$stamp"
    fi
    chmod -R a+rX "$root" 2>/dev/null || true
    # the server (run as postgres) must reach it: check rather than fail obscurely in initdb
    if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$root/usr/lib/postgresql/$PG_MAJOR/bin/initdb"; then
        die "the postgres user cannot reach $root (set CRM_PG_ROOT to a folder it can read)"
    fi
    echo "$root/usr/lib/postgresql/$PG_MAJOR/bin"
}

# build and install into the installation whose bin dir is $1
build_install() {
    local bindir=$1; shift
    log "building and installing into $(dirname "$bindir")"
    # rebuild from scratch when the build flags or the target PostgreSQL change
    local stamp=$CRM_ROOT/build/flags.stamp want="$bindir $*"
    mkdir -p "$CRM_ROOT/build"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        make -C "$CRM_ROOT" -s PG_CONFIG="$bindir/pg_config" clean >/dev/null
        echo "$want" > "$stamp"
    fi
    make -C "$CRM_ROOT" -s PG_CONFIG="$bindir/pg_config" "$@" >/dev/null
    if [ -w "$("$bindir/pg_config" --sharedir)/extension" ]; then
        make -C "$CRM_ROOT" -s PG_CONFIG="$bindir/pg_config" install >/dev/null
    else
        as_root make -C "$CRM_ROOT" -s PG_CONFIG="$bindir/pg_config" install >/dev/null
    fi
}

# Run a command as the cluster owner (postgres when we are root).
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

free_port() {
    local p
    for p in $(seq "${1:-54400}" $(( ${1:-54400} + 599 ))); do
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && [ ! -e "/tmp/.s.PGSQL.$p" ]; then echo "$p"; return; fi
    done
    die "no free port"
}

# start_cluster BINDIR [postgres -c options...]: initdb + start in a temp dir.
# Sets PGHOST, PGPORT, PGUSER, CRM_CLUSTER_DIR; stop_cluster removes it.
start_cluster() {
    local bindir=$1; shift
    CRM_CLUSTER_DIR=$(mktemp -d /tmp/crm_cluster.XXXXXX)
    chmod 755 "$CRM_CLUSTER_DIR"
    [ "$(id -u)" = 0 ] && chown postgres: "$CRM_CLUSTER_DIR"
    as_owner "$bindir/initdb" -D "$CRM_CLUSTER_DIR/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
    export PGPORT=$(free_port "${CRM_PORT_BASE:-54400}")
    export PGHOST=$CRM_CLUSTER_DIR PGUSER=postgres
    local opts=(-c "listen_addresses=" -c "unix_socket_directories=$CRM_CLUSTER_DIR" -c "port=$PGPORT"
                -c fsync=off -c synchronous_commit=off -c full_page_writes=off
                -c shared_preload_libraries=pg_cron -c cron.database_name=postgres
                -c max_worker_processes=16 -c max_parallel_workers=8 -c max_parallel_workers_per_gather=2
                -c "timezone=UTC" "$@")
    as_owner "$bindir/pg_ctl" -D "$CRM_CLUSTER_DIR/data" -l "$CRM_CLUSTER_DIR/log" -w -s \
        -o "$(printf "%q " "${opts[@]}")" start || { cat "$CRM_CLUSTER_DIR/log" >&2; die "cluster did not start"; }
    trap stop_cluster EXIT
}

stop_cluster() {
    if [ -n "${CRM_CLUSTER_DIR:-}" ] && [ -d "$CRM_CLUSTER_DIR" ]; then
        if [ -n "${CRM_KEEP_CLUSTER:-}" ]; then
            log "cluster kept running: psql -h $PGHOST -p $PGPORT -U postgres (data in $CRM_CLUSTER_DIR)"
            return
        fi
        as_owner "$PG_SYS_BIN/pg_ctl" -D "$CRM_CLUSTER_DIR/data" -m immediate -s stop >/dev/null 2>&1 || true
        rm -rf "$CRM_CLUSTER_DIR"
    fi
}

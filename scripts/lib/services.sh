# shellcheck shell=bash
# Shared helpers for scripts/*.sh: find or start the Postgres and Redis the pipeline needs, and stop
# afterwards exactly what we started (nothing else).
#
# Source it from a script that runs under `set -euo pipefail`:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/services.sh"
#   services_trap                      # cleanup on exit, Ctrl-C and SIGTERM
#   ensure_tools postgres redis        # ffmpeg / postgres / redis / curl (default: the first three)
#   ensure_postgres prostream          # exports DATABASE_URL
#   ensure_redis                       # exports REDIS_URL
#   start_throwaway_s3                 # exports PROSTREAM_TEST_S3_* (an S3 server for the tests)
#
# Knobs (environment):
#   DATABASE_URL, REDIS_URL    used as they are when reachable
#   PROSTREAM_FORCE_THROWAWAY  =1: ignore both and the default ports, always start private servers
#                              (handy to test this file, or to keep a run away from a shared server)

# The repository root, wherever the script was started from.
PROSTREAM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PROSTREAM_REPO

# Commands to run at exit, in reverse order of registration (a stack: what started last stops first, so
# the API stops before the database it talks to).
_SERVICES_AT_EXIT=()

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# --- cleanup ------------------------------------------------------------------------------------------

# Register a command (a string, run with eval) to run when the script exits, however it exits.
services_at_exit() { _SERVICES_AT_EXIT+=("$1"); }

# Run the registered commands once, newest first. Failures are reported, never fatal: one stuck
# process must not keep us from stopping the others.
services_cleanup() {
    local i
    for ((i = ${#_SERVICES_AT_EXIT[@]} - 1; i >= 0; i--)); do
        eval "${_SERVICES_AT_EXIT[i]}" || warn "cleanup step failed: ${_SERVICES_AT_EXIT[i]}"
    done
    _SERVICES_AT_EXIT=()
}

_services_on_exit() {
    local rc=$?
    # Cleanup must run to the end: no errexit, and no death by SIGPIPE when our output went to a pipe
    # whose reader is already gone (`dev.sh | tee log`, then Ctrl-C kills tee too).
    set +e
    trap '' PIPE
    services_cleanup
    exit "$rc" # keep the script's own exit status (a failing test run must stay failing)
}

# Install the traps. A signal becomes an ordinary exit with the conventional status, and the EXIT trap
# does the cleanup, so there is one cleanup path for every way out.
services_trap() {
    trap _services_on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# Stop a process we started: SIGTERM, then SIGKILL if it is still there after $3 seconds (default 10).
stop_pid() {
    local pid=$1 name=${2:-process $1} grace=${3:-10} deadline
    kill -0 "$pid" 2>/dev/null || return 0
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || return 0
    deadline=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            warn "$name (pid $pid) did not stop within ${grace}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$pid" 2>/dev/null || true # reap it if it is our child
}

# --- tools --------------------------------------------------------------------------------------------

# Directory with the Postgres server binaries (initdb, pg_ctl, postgres), newest version first. Debian
# keeps them off PATH in /usr/lib/postgresql/<version>/bin; elsewhere (Homebrew, ...) they are on PATH.
pg_bindir() {
    local dir
    while read -r dir; do
        if [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null && command -v postgres >/dev/null; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    return 1
}

# ensure_tools [ffmpeg] [postgres] [redis] [curl] [procps] [jq]  (default: ffmpeg postgres redis)
# Installs what is missing with apt-get when we are root; otherwise says what to install and fails.
ensure_tools() {
    local want=("$@") packages=() tool
    ((${#want[@]})) || want=(ffmpeg postgres redis)
    for tool in "${want[@]}"; do
        case $tool in
        ffmpeg) command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || packages+=(ffmpeg) ;;
        postgres)
            # psql and pg_isready to talk to a server, the server binaries to start a throwaway one.
            command -v psql >/dev/null && command -v pg_isready >/dev/null && pg_bindir >/dev/null ||
                packages+=(postgresql)
            ;;
        redis) command -v redis-server >/dev/null && command -v redis-cli >/dev/null || packages+=(redis-server) ;;
        curl) command -v curl >/dev/null || packages+=(curl) ;;
        # pgrep: the tests check that no ffmpeg outlives its job.
        procps) command -v pgrep >/dev/null || packages+=(procps) ;;
        # The README's walk-through reads the API's JSON with jq.
        jq) command -v jq >/dev/null || packages+=(jq) ;;
        *) die "ensure_tools: unknown tool '$tool'" ;;
        esac
    done
    ((${#packages[@]})) || return 0

    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        log "installing ${packages[*]} with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    else
        printf 'error: missing tools. Install them, for example:\n' >&2
        printf '  sudo apt-get update && sudo apt-get install -y %s\n' "${packages[*]}" >&2
        local brew=("${packages[@]/#postgresql/postgresql@15}")
        printf '  (macOS: brew install %s)\n' "${brew[*]/#redis-server/redis}" >&2
        exit 1
    fi
}

# --- small utilities ----------------------------------------------------------------------------------

# A TCP port on 127.0.0.1 that nobody listens on right now. Bash's /dev/tcp tries to connect: refused
# means free. (Racy by nature; the servers below fail loudly if someone grabs the port in between.)
free_port() {
    local port _
    for _ in {1..100}; do
        port=$((20000 + RANDOM % 40000))
        if ! (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    die "found no free TCP port on 127.0.0.1"
}

# Is something listening on HOST:PORT?
port_open() { (: <"/dev/tcp/$1/$2") 2>/dev/null; }

# A URL with its password replaced by ***, for log lines.
redact_url() { sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#' <<<"$1"; }

# load_dotenv FILE: export the KEY=VALUE lines of a .env file, except variables already set, as
# Compose and dotenv do. Values are taken literally (one pair of surrounding quotes is removed); blank
# lines and comments are skipped.
load_dotenv() {
    local line key value
    while IFS= read -r line || [[ -n $line ]]; do
        [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
        key=${BASH_REMATCH[2]}
        value=${BASH_REMATCH[3]}
        if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then
            value=${BASH_REMATCH[1]}
        fi
        [[ -v $key ]] || export "$key=$value"
    done <"$1"
}

# Wait until a command succeeds, up to $1 seconds. Polls; never a fixed sleep.
wait_until() {
    local timeout=$1 deadline
    shift
    deadline=$((SECONDS + timeout))
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# --- Postgres -----------------------------------------------------------------------------------------

# The database name in a postgres:// URL (empty when there is none).
pg_url_db() {
    local rest=${1%%\?*}
    rest=${rest#*://}
    [[ $rest == */* ]] && printf '%s\n' "${rest#*/}" || printf '\n'
}

# The same URL with another database name; the query string (sslmode=...) is kept.
pg_url_with_db() {
    local url=$1 db=$2 query=""
    if [[ $url == *\?* ]]; then
        query="?${url#*\?}"
        url=${url%%\?*}
    fi
    local scheme=${url%%://*} rest=${url#*://}
    printf '%s://%s/%s%s\n' "$scheme" "${rest%%/*}" "$db" "$query"
}

# The URL for the server's maintenance database, from which we create and drop databases.
pg_server_url() { pg_url_with_db "${1:-$DATABASE_URL}" postgres; }

# psql without the user's ~/.psqlrc, quiet, unaligned, stop on the first error, short connect timeout,
# and never a password prompt (-w): a server that wants a password we lack is simply not usable.
_psql() { PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-3} psql -X -w -q -At -v ON_ERROR_STOP=1 "$@"; }

# Does a Postgres server answer at this URL? The database named in it may not exist yet, so the
# maintenance database counts too.
pg_reachable() {
    local url=$1
    _psql -d "$url" -c 'select 1' >/dev/null 2>&1 ||
        _psql -d "$(pg_server_url "$url")" -c 'select 1' >/dev/null 2>&1
}

# Database names are interpolated into SQL, so only plain identifiers are accepted.
_pg_check_name() {
    [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "not a plain database name: '$1'"
}

# create_database NAME: create it on the server of DATABASE_URL unless it exists.
create_database() {
    local name=$1 server
    # A URL without a database name connects to libpq's default (the user's name): nothing to create.
    [[ -n $name ]] || return 0
    _pg_check_name "$name"
    server=$(pg_server_url)
    if [[ -z $(_psql -d "$server" -c "select 1 from pg_database where datname = '$name'") ]]; then
        log "creating database $name"
        _psql -d "$server" -c "create database \"$name\""
    fi
}

# drop_database NAME: drop it (with its open connections) on the server of DATABASE_URL.
drop_database() {
    local name=$1
    _pg_check_name "$name"
    _psql -d "$(pg_server_url)" -c "drop database if exists \"$name\" with (force)"
}

# Run a command as the user that owns the throwaway cluster. initdb and postgres refuse to run as
# root, so as root we borrow the `postgres` system user (created by Debian's package), or make a
# dedicated system user when there is none.
_pg_user=""
_as_pg_user() {
    if [[ -z $_pg_user ]]; then
        "$@"
    else
        # From /, because the server user may not be allowed into our working directory.
        (cd / && runuser -u "$_pg_user" -- "$@")
    fi
}
_pick_pg_user() {
    [[ $(id -u) -eq 0 ]] || return 0
    if id -u postgres >/dev/null 2>&1; then
        _pg_user=postgres
    else
        id -u prostream-pg >/dev/null 2>&1 ||
            useradd --system --no-create-home --shell /usr/sbin/nologin prostream-pg
        _pg_user=prostream-pg
    fi
}

# Start a private Postgres: a fresh cluster in a temporary directory, on a free port, on 127.0.0.1
# only, trusting every local connection, with durability off (it is thrown away). Exports
# PROSTREAM_PG_DIR and DATABASE_URL, and registers its shutdown.
start_throwaway_postgres() {
    local dbname=$1 bindir port dir
    bindir=$(pg_bindir) || die "Postgres server binaries not found (run ensure_tools postgres)"
    _pick_pg_user
    # Under /tmp rather than the repository: the server user must be able to reach it (a repository
    # under /root is not reachable), and a Unix socket path must stay under about 100 bytes.
    dir=$(mktemp -d "${TMPDIR:-/tmp}/prostream-pg.XXXXXX")
    [[ -z $_pg_user ]] || chown "$_pg_user" "$dir"
    PROSTREAM_PG_DIR=$dir
    export PROSTREAM_PG_DIR
    services_at_exit "stop_throwaway_postgres '$dir'"

    log "starting a throwaway Postgres in $dir"
    _as_pg_user "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync \
        >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    }
    port=$(free_port)
    # pg_ctl -w waits until the server accepts connections.
    if ! _as_pg_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir \
            -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null; then
        cat "$dir/postgres.log" >&2
        die "the throwaway Postgres did not start"
    fi
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/$dbname"
    log "throwaway Postgres listening on 127.0.0.1:$port (log: $dir/postgres.log)"
}

# Stop the throwaway cluster in DIR (pg_ctl first, then the postmaster's PID) and delete it.
stop_throwaway_postgres() {
    local dir=$1 bindir pid
    if [[ -f $dir/data/postmaster.pid ]]; then
        pid=$(head -n1 "$dir/data/postmaster.pid")
        log "stopping the throwaway Postgres (pid $pid)"
        # A fast shutdown through pg_ctl; if that fails, the postmaster's PID.
        if ! bindir=$(pg_bindir) ||
            ! _as_pg_user "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null; then
            stop_pid "$pid" "throwaway Postgres"
        fi
    fi
    rm -rf "$dir"
}

# ensure_postgres [DBNAME]: make DATABASE_URL point at a reachable server, in this order:
#   1. DATABASE_URL as given (its database name is kept);
#   2. postgres://postgres@127.0.0.1:5432/DBNAME (a local server trusting the postgres user);
#   3. a throwaway server (start_throwaway_postgres).
# The database itself may not exist yet: see create_database.
ensure_postgres() {
    local dbname=${1:-prostream}
    if ! use_reachable DATABASE_URL Postgres pg_reachable "postgres://postgres@127.0.0.1:5432/$dbname"; then
        start_throwaway_postgres "$dbname"
    fi
}

# use_reachable VAR WHAT CHECK LOCAL_URL: unless PROSTREAM_FORCE_THROWAWAY is set, exports VAR as
# the first of its own value and LOCAL_URL (a server on its default local port) that `CHECK URL`
# finds reachable; status 1 when neither is (or when forced), for the caller to start a throwaway
# WHAT server.
use_reachable() {
    local var=$1 what=$2 check=$3 local_url=$4 given=${!1:-} local_at
    [[ -z ${PROSTREAM_FORCE_THROWAWAY:-} ]] || return 1
    if [[ -n $given ]]; then
        if "$check" "$given"; then
            log "using $what at $(redact_url "$given")"
            export "${var?}"
            return 0
        fi
        warn "$var ($(redact_url "$given")) is not reachable; looking for another server"
    fi
    if "$check" "$local_url"; then
        local_at=${local_url#*://}
        local_at=${local_at#*@}
        log "using the local $what at ${local_at%%/*}"
        export "$var=$local_url"
        return 0
    fi
    return 1
}

# --- Redis --------------------------------------------------------------------------------------------

# Does a Redis server answer PING at this URL? (redis-cli has no connect timeout of its own.)
redis_reachable() {
    [[ $(timeout 5 redis-cli -u "$1" ping 2>/dev/null) == PONG ]]
}

# Start a private Redis on a free port, on 127.0.0.1 only, without persistence. Exports
# PROSTREAM_REDIS_DIR and REDIS_URL, and registers its shutdown.
start_throwaway_redis() {
    local dir port
    dir=$(mktemp -d "${TMPDIR:-/tmp}/prostream-redis.XXXXXX")
    PROSTREAM_REDIS_DIR=$dir
    export PROSTREAM_REDIS_DIR
    services_at_exit "stop_throwaway_redis '$dir'"
    port=$(free_port)
    log "starting a throwaway Redis in $dir"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" ||
        die "redis-server failed to start"
    if ! wait_until 30 redis_reachable "redis://127.0.0.1:$port"; then
        cat "$dir/redis.log" >&2
        die "the throwaway Redis did not answer within 30s"
    fi
    export REDIS_URL="redis://127.0.0.1:$port"
    log "throwaway Redis listening on 127.0.0.1:$port (log: $dir/redis.log)"
}

# Stop the throwaway Redis in DIR by the PID it wrote, and delete the directory.
stop_throwaway_redis() {
    local dir=$1
    if [[ -s $dir/redis.pid ]]; then
        stop_pid "$(cat "$dir/redis.pid")" "throwaway Redis"
    fi
    rm -rf "$dir"
}

# ensure_redis: make REDIS_URL point at a reachable server: REDIS_URL as given, else
# redis://127.0.0.1:6379, else a throwaway server.
ensure_redis() {
    if ! use_reachable REDIS_URL Redis redis_reachable redis://127.0.0.1:6379; then
        start_throwaway_redis
    fi
}

# --- S3-compatible object storage (the tests of STORAGE_BACKEND=s3) ----------------------------------

# s3s-fs (crates.io): an S3 server over a local directory, built on the s3s crate. It checks SigV4
# signatures, headers and presigned URLs alike (so wrong credentials are refused as AWS would), and
# implements what object_store uses: list with delimiters, multipart uploads, bulk deletes.
S3S_FS_VERSION=0.14.1
# The SHA-256 of an empty body, which a SigV4-signed request without a body declares.
_EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

# Build s3s-fs once per machine (a few minutes) into a cache outside the repository, so fresh
# clones (CI) reuse it: ${PROSTREAM_TOOLS_DIR:-~/.cache/prostream}/s3s-fs-VERSION. Sets S3S_FS_BIN.
ensure_s3s_fs() {
    local root=${PROSTREAM_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prostream}/s3s-fs-$S3S_FS_VERSION
    S3S_FS_BIN=$root/bin/s3s-fs
    [[ -x $S3S_FS_BIN ]] && return 0
    command -v cargo >/dev/null || die "cargo is needed to build s3s-fs (the S3 server of the tests)"
    log "building s3s-fs $S3S_FS_VERSION from crates.io into $root (once per machine; a few minutes)"
    cargo install --locked --quiet s3s-fs --version "$S3S_FS_VERSION" --features binary --root "$root" ||
        die "could not build s3s-fs $S3S_FS_VERSION (cargo install s3s-fs)"
}

# start_throwaway_s3: s3s-fs on a free port on 127.0.0.1, over a temporary directory, with a random
# key pair, and one bucket made through the S3 API (CreateBucket, signed by curl). Tests work under
# a key prefix each, so they run in parallel. Exports PROSTREAM_TEST_S3_ENDPOINT, _BUCKET,
# _ACCESS_KEY_ID and _SECRET_ACCESS_KEY, and registers its shutdown (by PID).
start_throwaway_s3() {
    local dir port key secret bucket=prostream-test
    ensure_tools curl
    ensure_s3s_fs
    dir=$(mktemp -d "${TMPDIR:-/tmp}/prostream-s3.XXXXXX")
    mkdir "$dir/data"
    services_at_exit "stop_throwaway_s3 '$dir'"
    port=$(free_port)
    key=prostream-test
    secret=$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n')
    log "starting a throwaway S3 server (s3s-fs) in $dir"
    "$S3S_FS_BIN" --host 127.0.0.1 --port "$port" --access-key "$key" --secret-key "$secret" \
        "$dir/data" >"$dir/s3s-fs.log" 2>&1 &
    echo $! >"$dir/s3s-fs.pid"
    if ! wait_until 30 port_open 127.0.0.1 "$port"; then
        cat "$dir/s3s-fs.log" >&2
        die "s3s-fs did not listen on 127.0.0.1:$port within 30s"
    fi
    curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" \
        -H "x-amz-content-sha256: $_EMPTY_SHA256" -X PUT "http://127.0.0.1:$port/$bucket" ||
        die "could not create the test bucket on s3s-fs (see $dir/s3s-fs.log)"
    export PROSTREAM_TEST_S3_ENDPOINT="http://127.0.0.1:$port" PROSTREAM_TEST_S3_BUCKET=$bucket \
        PROSTREAM_TEST_S3_ACCESS_KEY_ID=$key PROSTREAM_TEST_S3_SECRET_ACCESS_KEY=$secret
    log "throwaway S3 server listening on 127.0.0.1:$port, bucket $bucket (log: $dir/s3s-fs.log)"
}

# Stop the throwaway S3 server in DIR by the PID recorded at its start, and delete the directory.
stop_throwaway_s3() {
    local dir=$1
    if [[ -s $dir/s3s-fs.pid ]]; then
        stop_pid "$(cat "$dir/s3s-fs.pid")" "throwaway S3 server (s3s-fs)"
    fi
    rm -rf "$dir"
}

# shellcheck shell=bash
# A whole ProStream stack for scripts that drive it from outside (benchmarks, contract and browser
# tests): a fresh database, its own queue name and media directory, the API and N workers, all on
# loopback and all stopped (by PID) and removed at exit. Sourcing it sources services.sh too; call
# ensure_postgres and ensure_redis (or stack_prelude) first.

# shellcheck source=services.sh source-path=SCRIPTDIR
declare -F services_trap >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/services.sh"

# stack_prelude TOOL...: what a script that drives the stack or the tests does first: in the
# repository root, with cleanup at exit, TOOL... installed (ensure_tools), Postgres (the `postgres`
# database) and Redis found or started.
stack_prelude() {
    cd "$PROSTREAM_REPO" || return
    services_trap
    ensure_tools "$@"
    ensure_postgres postgres
    ensure_redis
}

# start_stack PROFILE WORKERS
#   PROFILE: debug or release (built here); WORKERS: how many worker processes.
#   Exports STACK_URL (the API's base URL), STACK_DIR (logs and scratch), STACK_API_PID,
#   STACK_WORKER_LOGS (colon-separated), DATABASE_URL (the stack's database), MEDIA_ROOT, and
#   STACK_KEY: an API key of owner `stack` (PROSTREAM_API_KEY too, for the CLI).
start_stack() {
    local profile=$1 workers=$2 db port i
    local build=(cargo build --workspace --quiet)
    [[ $profile == release ]] && build+=(--release)
    log "${build[*]}"
    "${build[@]}"

    db="prostream_stack_$$_${RANDOM}"
    create_database "$db"
    services_at_exit "drop_database $db"
    DATABASE_URL=$(pg_url_with_db "$DATABASE_URL" "$db")
    export DATABASE_URL REDIS_URL QUEUE_NAME="prostream-stack:$$:${RANDOM}"

    STACK_DIR=$(mktemp -d /tmp/prostream-stack.XXXXXX)
    # Readable by other users: nginx's workers serve the media in the benchmark.
    chmod 755 "$STACK_DIR"
    services_at_exit "rm -rf $STACK_DIR"
    export STACK_DIR MEDIA_ROOT="$STACK_DIR/media" MIN_FREE_DISK_BYTES=0
    mkdir -p "$MEDIA_ROOT"
    port=$(free_port)
    export BIND_ADDR="127.0.0.1:$port" STACK_URL="http://127.0.0.1:$port"
    # The API's metrics listener, on a port of its own (the default 9090 may be taken).
    metrics_port=$(free_port)
    export METRICS_ADDR="127.0.0.1:$metrics_port" STACK_METRICS_URL="http://127.0.0.1:$metrics_port/metrics"

    # The API refuses to start without a key that signs private videos' playback URLs.
    PLAYBACK_SIGNING_KEYS=${PLAYBACK_SIGNING_KEYS:-stack:$(head -c 32 /dev/urandom | base64 | tr -d '\n')}
    export PLAYBACK_SIGNING_KEYS
    "target/$profile/prostream" migrate
    STACK_KEY=$("target/$profile/prostream" keys create --name stack --quiet)
    export STACK_KEY PROSTREAM_API_KEY=$STACK_KEY
    "target/$profile/prostream" serve >"$STACK_DIR/api.log" 2>&1 &
    STACK_API_PID=$!
    export STACK_API_PID
    services_at_exit "stop_pid $STACK_API_PID api"
    STACK_WORKER_LOGS=""
    for ((i = 1; i <= workers; i++)); do
        WORKER_HEALTH_FILE="$STACK_DIR/worker-$i.health" "target/$profile/prostream-worker" \
            >"$STACK_DIR/worker-$i.log" 2>&1 &
        services_at_exit "stop_pid $! worker-$i"
        STACK_WORKER_LOGS+="${STACK_WORKER_LOGS:+:}$STACK_DIR/worker-$i.log"
    done
    export STACK_WORKER_LOGS
    # STACK_DIR goes at exit, so a failed start shows the API's last lines here. A port that
    # another process took between free_port and the bind ends the API at once: say so then,
    # not after the deadline.
    wait_until 60 _stack_api_ready || {
        tail -n 30 "$STACK_DIR/api.log" >&2
        die "the API did not become ready within 60 s (its log is above)"
    }
}

# shellcheck disable=SC2317  # called through wait_until
_stack_api_ready() {
    kill -0 "$STACK_API_PID" 2>/dev/null || {
        tail -n 30 "$STACK_DIR/api.log" >&2
        die "the API exited during startup (its log is above)"
    }
    curl -sf --max-time 2 "$STACK_URL/readyz" -o /dev/null
}

# python_venv DIR PACKAGE==VERSION...: a virtualenv with exactly these packages (reused when present).
python_venv() {
    local dir=$1
    shift
    if [[ ! -x $dir/bin/python ]]; then
        command -v python3 >/dev/null || die "python3 is missing: sudo apt-get install -y python3 python3-venv"
        python3 -m venv "$dir" || die "cannot create a virtualenv: sudo apt-get install -y python3-venv"
    fi
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
}

#!/usr/bin/env bash
# Run the whole pipeline locally with one command: Postgres, Redis, the API and two workers.
#
#   bash scripts/dev.sh
#
# Uses DATABASE_URL / REDIS_URL when they answer, else the local servers on 5432 / 6379, else starts
# throwaway ones (see scripts/lib/services.sh). Variables from ./.env are loaded first when it exists.
# BIND_ADDR defaults to 127.0.0.1:8080 and MEDIA_ROOT to ./media. Logs go to .dev/logs/. Ctrl-C stops
# everything this script started, and nothing else.
set -euo pipefail

# shellcheck source=lib/services.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/services.sh"
cd "$PROSTREAM_REPO"
services_trap

if [[ -f .env ]]; then
    log "loading .env (variables already set in the environment win)"
    load_dotenv .env
fi

export BIND_ADDR=${BIND_ADDR:-127.0.0.1:8080}
export MEDIA_ROOT=${MEDIA_ROOT:-$PROSTREAM_REPO/media}
DEV_DIR=$PROSTREAM_REPO/.dev
LOG_DIR=$DEV_DIR/logs
TARGET_DIR=${CARGO_TARGET_DIR:-$PROSTREAM_REPO/target}
WORKERS=2

# Private videos' playback URLs are signed, and the API refuses to start without a key. Without
# PLAYBACK_SIGNING_KEYS one is made once and kept in .dev/, so URLs handed out survive a restart.
if [[ -z ${PLAYBACK_SIGNING_KEYS:-} ]]; then
    key_file=$DEV_DIR/playback-signing-key
    if [[ ! -s $key_file ]]; then
        mkdir -p "$DEV_DIR"
        (umask 077 && printf 'dev:%s\n' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')" >"$key_file")
        log "made a playback signing key in .dev/playback-signing-key"
    fi
    PLAYBACK_SIGNING_KEYS=$(<"$key_file")
    export PLAYBACK_SIGNING_KEYS
fi

# BIND_ADDR as a URL base: 0.0.0.0 and [::] listen everywhere, but are reached through loopback.
api_host=${BIND_ADDR%:*}
api_port=${BIND_ADDR##*:}
case $api_host in
0.0.0.0) api_host=127.0.0.1 ;;
"[::]") api_host="[::1]" ;;
esac
API_URL="http://$api_host:$api_port"

ensure_tools ffmpeg postgres redis curl jq
ensure_postgres prostream
create_database "$(pg_url_db "$DATABASE_URL")"
ensure_redis

# A server already on our port would answer /readyz in our place and hide a failed start.
if port_open "${api_host//[\[\]]/}" "$api_port"; then
    die "something already listens on $BIND_ADDR; stop it or run with BIND_ADDR=127.0.0.1:<other port>"
fi

log "building the workspace"
cargo build --workspace
mkdir -p "$MEDIA_ROOT" "$LOG_DIR"

log "applying migrations"
"$TARGET_DIR/debug/prostream" migrate

# start NAME COMMAND...: run a process in the background with its output in .dev/logs/NAME.log, and
# register its shutdown. Sets PIDS[NAME]. Each runs in a session of its own (setsid), so Ctrl-C in the
# terminal reaches only this script, which then stops them in order (workers first, then the API),
# each with SIGTERM and time to finish, instead of all of them at once.
declare -A PIDS=()
detach=()
command -v setsid >/dev/null && detach=(setsid)
start() {
    local name=$1
    shift
    "${detach[@]}" "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
    PIDS[$name]=$!
    services_at_exit "stop_pid ${PIDS[$name]} $name 30"
    log "started $name (pid ${PIDS[$name]}, log .dev/logs/$name.log)"
}

start api "$TARGET_DIR/debug/prostream" serve
for i in $(seq 1 "$WORKERS"); do
    WORKER_HEALTH_FILE=$DEV_DIR/worker-$i.health start "worker-$i" "$TARGET_DIR/debug/prostream-worker"
done

# Ready means the API answers /readyz with 200 (it checks Postgres and Redis). Give up early if the
# API process died, and after a deadline otherwise.
# shellcheck disable=SC2317  # called through wait_until
api_ready() {
    kill -0 "${PIDS[api]}" 2>/dev/null || {
        tail -n 20 "$LOG_DIR/api.log" >&2
        die "the API exited during startup (log: .dev/logs/api.log)"
    }
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$API_URL/readyz") == 200 ]]
}
log "waiting for $API_URL/readyz"
wait_until 60 api_ready || {
    tail -n 20 "$LOG_DIR/api.log" >&2
    die "the API was not ready within 60s (log: .dev/logs/api.log)"
}

# An API key for the person at the terminal: kept in .dev/api-key and reused while the database still
# knows it, otherwise a new one (owner `dev`).
key_file=$DEV_DIR/api-key
key=$(cat "$key_file" 2>/dev/null || true)
if [[ -z $key || $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" \
    "$API_URL/v1/videos?limit=1") != 200 ]]; then
    key=$("$TARGET_DIR/debug/prostream" keys create --name dev --owner dev --quiet)
    (umask 077 && echo "$key" >"$key_file")
fi

cat <<EOF

ProStream is running at $API_URL  (Ctrl-C stops it)
  API key:  $key   (also in .dev/api-key; paste it in the web page's "API key" field)
            export PROSTREAM_API_KEY=$key   # for the prostream CLI
  metrics:  http://${METRICS_ADDR:-127.0.0.1:9090}/metrics   (METRICS_ADDR; not on the API's port)
  logs:     $LOG_DIR/{api,worker-1,worker-2}.log
  media:    $MEDIA_ROOT
  database: $(redact_url "$DATABASE_URL")
  redis:    $(redact_url "$REDIS_URL")
  upload:   curl -sS -H "Authorization: Bearer $key" -F file=@video.mp4 -F title=demo $API_URL/v1/videos
  (no video at hand? ffmpeg -f lavfi -i testsrc2=duration=10:size=1280x720:rate=30 -f lavfi -i sine=duration=10 -c:v libx264 -c:a aac -shortest video.mp4)

EOF

# Until Ctrl-C or SIGTERM (the trap stops everything), or until one of the processes exits on its own,
# which is a failure: say which, and stop the rest.
set +e
wait -n "${PIDS[@]}"
rc=$?
set -e
for name in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
        warn "$name exited on its own (status $rc); stopping the rest. Its log: .dev/logs/$name.log"
    fi
done
exit $((rc == 0 ? 1 : rc))

#!/usr/bin/env bash
# Contract test: schemathesis (a property-based API tester from PyPI) against a live API with the
# OpenAPI document the API serves. Fails on any 5xx and on any response that does not match the
# document (status, content type, headers, body schema), so the code and /openapi.json cannot drift.
#
#   bash scripts/contract-test.sh
#
# Two passes: one with generated ids (unknown videos, malformed input), one with the ids of a real
# transcoded video so the handlers behind the 404s are exercised too.
set -euo pipefail

# shellcheck source=lib/services.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/services.sh"
# shellcheck source=lib/stack.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/stack.sh"
cd "$PROSTREAM_REPO"
services_trap

SCHEMATHESIS=schemathesis==4.32.5
ensure_tools ffmpeg postgres redis curl
ensure_postgres postgres
ensure_redis
python_venv .dev/venv-contract "$SCHEMATHESIS"
start_stack debug 1

# A real video, transcoded to the end, for the second pass.
clip="$STACK_DIR/clip.mp4"
ffmpeg -v error -f lavfi -i testsrc2=size=320x240:rate=25:duration=2 -f lavfi -i sine=duration=2 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$clip"
video=$(curl -sf -X POST -T "$clip" -H 'content-type: video/mp4' "$STACK_URL/v1/videos")
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$video")
is_ready() { curl -sf "$STACK_URL/v1/videos/$id" | grep -q '"status":"ready"'; }
wait_until 120 is_ready || die "the seed video did not become ready; see $STACK_DIR/worker-1.log"
hls=$(curl -sf "$STACK_URL/v1/videos/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["playback"]["hls"])')
attempt=$(basename "$(dirname "$hls")")

# positive_data_acceptance is left out: a body the schema allows (any bytes) is not a video, and
# the API rightly refuses it with 415/422 (both documented).
st=(.dev/venv-contract/bin/st run "$STACK_URL/openapi.json" --checks all
    --exclude-checks positive_data_acceptance --workers 1 --max-examples 60)

log "schemathesis, pass 1: generated input"
"${st[@]}"

log "schemathesis, pass 2: the real video $id (DELETE left out so it stays)"
cat >"$STACK_DIR/schemathesis.toml" <<TOML
[parameters]
"path.id" = "$id"
"path.attempt" = "$attempt"
"path.file" = "master.m3u8"
TOML
.dev/venv-contract/bin/st --config-file "$STACK_DIR/schemathesis.toml" run "$STACK_URL/openapi.json" \
    --checks all --exclude-checks positive_data_acceptance --workers 1 --max-examples 30 \
    --exclude-method DELETE

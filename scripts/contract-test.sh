#!/usr/bin/env bash
# Contract test: schemathesis (a property-based API tester from PyPI) against a live API with the
# OpenAPI document the API serves. Fails on any 5xx and on any response that does not match the
# document (status, content type, headers, body schema), so the code and /openapi.json cannot drift.
#
#   bash scripts/contract-test.sh
#
# Three passes: one with generated ids (unknown videos, malformed input), one with the ids of a real
# transcoded video so the handlers behind the 404s are exercised too, and an independent one:
# `st run --checks all` with no hooks and only tests/contract/independent.toml, which names each
# exception (tus's 412 among them) by operation and check, with the reason.
set -euo pipefail

# shellcheck source=lib/stack.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/stack.sh"
stack_prelude ffmpeg postgres redis curl
python_venv .dev/venv-contract schemathesis==4.32.5
start_stack debug 1

# tus bodies (application/offset+octet-stream) are serialised like application/octet-stream.
export SCHEMATHESIS_HOOKS=tests/contract/hooks.py
# 412 is what tus 1.0.0 prescribes for a request without `Tus-Resumable: 1.0.0` (missing or another
# value); the other statuses are schemathesis' defaults.
checks_config() {
    cat <<'TOML'
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "412", "415", "422", "428", "429", "5xx"]

[checks.missing_required_header]
expected-statuses = ["400", "401", "403", "406", "412", "415", "422"]

# A video just created has no HLS output yet: its files answer 404 until an attempt publishes
# them, as the document says. The stateful phase fills every parameter of this route from a
# POST /v1/videos answer and would call that 404 a "created resource not found" (ST302).
[[operations]]
include-path = "/v1/videos/{id}/hls/{attempt}/{file}"
checks.ensure_resource_availability.enabled = false

[[operations]]
include-path = "/v1/videos/{id}/signed/{token}/{attempt}/{file}"
checks.ensure_resource_availability.enabled = false
TOML
}

# positive_data_acceptance is left out: a body the schema allows (any bytes) is not a video, and
# the API rightly refuses it with 415/422 (both documented).
checks_config >"$STACK_DIR/schemathesis-1.toml"
# Every request carries the stack's key; the ignored_auth check also sends them without it.
auth=(-H "Authorization: Bearer $STACK_KEY")
st=(.dev/venv-contract/bin/st --config-file "$STACK_DIR/schemathesis-1.toml" run "$STACK_URL/openapi.json"
    "${auth[@]}" --checks all --exclude-checks positive_data_acceptance --workers 1 --max-examples 60)

log "schemathesis, pass 1: generated input"
"${st[@]}"

# A real video, transcoded to the end, for the second pass; made after pass 1, whose DELETEs could
# otherwise remove it.
clip="$STACK_DIR/clip.mp4"
ffmpeg -v error -f lavfi -i testsrc2=size=320x240:rate=25:duration=2 -f lavfi -i sine=duration=2 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$clip"
# Public, so that its HLS files are served without a signed URL.
video=$(curl -sf -X POST -T "$clip" -H 'content-type: video/mp4' -H "Authorization: Bearer $STACK_KEY" \
    "$STACK_URL/v1/videos?visibility=public")
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$video")
is_ready() { curl -sf -H "Authorization: Bearer $STACK_KEY" "$STACK_URL/v1/videos/$id" | grep -q '"status":"ready"'; }
wait_until 120 is_ready || die "the seed video did not become ready; see $STACK_DIR/worker-1.log"
hls=$(curl -sf -H "Authorization: Bearer $STACK_KEY" "$STACK_URL/v1/videos/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["playback"]["hls"])')
attempt=$(basename "$(dirname "$hls")")
# A private seed's playback.hls is /v1/videos/{id}/signed/{token}/{attempt}/master.m3u8; a public
# one's has no token (the signed route then answers its documented 403 playback_token_invalid).
token=none
[[ $hls == */signed/* ]] && token=$(basename "$(dirname "$(dirname "$hls")")")

# A real resumable upload, large enough that generated chunks never complete it, for pass 2.
upload=$(curl -sf -D - -o /dev/null -X POST -H 'Tus-Resumable: 1.0.0' -H 'Upload-Length: 1000000000' \
    -H "Authorization: Bearer $STACK_KEY" \
    "$STACK_URL/v1/uploads" | tr -d '\r' | sed -n 's|^[Ll]ocation: /v1/uploads/||p')
[[ -n $upload ]] || die "could not create a resumable upload"

log "schemathesis, pass 2: the real video $id and upload $upload (DELETE left out so they stay)"
{
    checks_config
    cat <<TOML

[parameters]
"path.id" = "$id"
"path.attempt" = "$attempt"
"path.token" = "$token"
"path.file" = "master.m3u8"

[[operations]]
include-path = "/v1/uploads/{id}"
parameters = { "path.id" = "$upload" }
TOML
} >"$STACK_DIR/schemathesis-2.toml"
.dev/venv-contract/bin/st --config-file "$STACK_DIR/schemathesis-2.toml" run "$STACK_URL/openapi.json" \
    "${auth[@]}" --checks all --exclude-checks positive_data_acceptance --workers 1 --max-examples 30 \
    --exclude-method DELETE

# The independent run: schemathesis' own defaults, no hooks, every check, the stack's key, and
# only the exceptions tests/contract/independent.toml names (docs/api.md lists them too). After
# the passes above, so that its DELETEs cannot take their seeds away.
log "schemathesis, pass 3: independent (no hooks; exceptions in tests/contract/independent.toml)"
(
    unset SCHEMATHESIS_HOOKS
    .dev/venv-contract/bin/st --config-file tests/contract/independent.toml \
        run "$STACK_URL/openapi.json" -H "Authorization: Bearer $STACK_KEY" --checks all
)

#!/usr/bin/env bash
# The Compose stack on a real Docker engine, end to end. Run by CI (.ci/run); needs root.
#
#   bash scripts/compose-smoke.sh
#
# 1. starts a private dockerd (Debian's docker.io; scripts/lib/dockerd.sh) and stops it by PID at exit;
# 2. builds the local stand-ins of the base images (scripts/docker-base-images.sh): no registry is
#    reachable here, so debian/rust/postgres/redis are made from Debian's packages and the host's toolchain;
# 3. builds the image with the classic builder, checks its size, user and ffmpeg components;
# 4. `docker compose up -d --wait` with the API published on a free loopback port, uploads a clip,
#    polls it to `ready`, fetches the master playlist, a rendition playlist, its init and first media
#    segment (and decodes them with the host's ffprobe) and the poster; checks every container of ours
#    runs as UID 1001;
# 5. scales to three workers, uploads a longer clip, stops the worker whose ffmpeg encodes it, and
#    sees the job handed back and finished `ready` by another worker;
# 6. `docker compose down -v`.
#
# Knobs (environment):
#   COMPOSE_SMOKE=skip          when the engine cannot run here (not root, dockerd fails): say why, exit 0
#   COMPOSE_SMOKE=off           do nothing (exit 0)
#   COMPOSE_SMOKE_NO_CACHE=1    build the image with --no-cache (a cold build; stand-ins stay cached)
#   SMOKE_MAX_IMAGE_MB          the runtime image must not be larger (default 200)
#   PROSTREAM_DOCKER_ROOT       the engine's state, kept between runs (default /var/lib/prostream-docker):
#                               the stand-ins and the build cache. Delete it for a fully cold run.
# Logs of the run (build, compose, dockerd) go to .dev/compose-smoke/.
set -euo pipefail

# shellcheck source=lib/services.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/services.sh"
# shellcheck source=lib/dockerd.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/dockerd.sh"
cd "$PROSTREAM_REPO"

MODE=${COMPOSE_SMOKE:-run}
case $MODE in
off | 0 | false)
    log "compose smoke: COMPOSE_SMOKE=$MODE, not run"
    exit 0
    ;;
run | skip | 1 | true) ;;
*) die "COMPOSE_SMOKE must be run, skip or off (got '$MODE')" ;;
esac

services_trap
PROJECT=prostream-smoke
IMAGE=prostream:local
MAX_IMAGE_MB=${SMOKE_MAX_IMAGE_MB:-200}
LOGDIR=$PROSTREAM_REPO/.dev/compose-smoke
mkdir -p "$LOGDIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/prostream-smoke.XXXXXX")
services_at_exit "rm -rf '$WORK'"
T0=$SECONDS
TIMES=()
mark() { TIMES+=("$(printf '%-34s %5d s' "$1" $((SECONDS - T0)))"); }

cannot_run() {
    if [[ $MODE == skip ]]; then
        warn "compose smoke skipped (COMPOSE_SMOKE=skip): $*"
        exit 0
    fi
    die "compose smoke cannot run: $*. (COMPOSE_SMOKE=skip skips it on such a machine.)"
}

[[ $(id -u) -eq 0 ]] || cannot_run "it starts dockerd, which needs root (running as $(id -un))"
ensure_tools ffmpeg curl
ensure_docker_engine || cannot_run "installing docker.io/debootstrap failed"
ensure_deploy_tools
dockerd_start || cannot_run "the Docker engine did not start (log: $PROSTREAM_DOCKER_ROOT/dockerd.log)"
mark "engine up"

# --- images ------------------------------------------------------------------------------------------
timeout 1800 bash scripts/docker-base-images.sh
mark "base-image stand-ins"

# Build cache kept between runs, but not forever: dangling images (cache of older builds, replaced
# images) go after three days, or all of them when the disk runs short. A cold build needs ~4 GB.
free_gb() { df -Pk "$PROSTREAM_DOCKER_ROOT" | awk 'NR == 2 {print int($4 / 1024 / 1024)}'; }
docker image prune -f --filter until=72h >/dev/null
if (($(free_gb) < 6)); then
    log "only $(free_gb) GB free under $PROSTREAM_DOCKER_ROOT: dropping the whole build cache"
    docker image prune -f >/dev/null
fi
(($(free_gb) >= 4)) || die "only $(free_gb) GB free under $PROSTREAM_DOCKER_ROOT; the image build needs about 4 GB"

build_args=(--network host -t "$IMAGE")
[[ ${COMPOSE_SMOKE_NO_CACHE:-} == 1 ]] && build_args+=(--no-cache)
log "docker build ${build_args[*]} . (classic builder; log: $LOGDIR/build.log)"
build_start=$SECONDS
if ! DOCKER_BUILDKIT=0 timeout 3600 docker build "${build_args[@]}" . >"$LOGDIR/build.log" 2>&1; then
    tail -n 40 "$LOGDIR/build.log" >&2
    die "docker build failed (log: $LOGDIR/build.log)"
fi
BUILD_SECS=$((SECONDS - build_start))
mark "image built"

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
SIZE_MB=$(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1e6}')
log "image $IMAGE: $SIZE_MB MB ($size bytes), built in ${BUILD_SECS}s"
awk -v s="$size" -v m="$MAX_IMAGE_MB" 'BEGIN {exit !(s <= m * 1e6)}' ||
    die "the runtime image is $SIZE_MB MB, over the $MAX_IMAGE_MB MB budget"
[[ $(docker image inspect -f '{{.Config.User}}' "$IMAGE") == 1001:1001 ]] || die "the image does not run as 1001:1001"

# In the image: no curl or wget, and an ffmpeg with every component the pipeline and the wider media
# matrix need.
in_image() { timeout 60 docker run --rm --network none --entrypoint "$1" "$IMAGE" "${@:2}"; }
in_image sh -c '! command -v curl && ! command -v wget' >/dev/null || die "curl or wget is in the image"
check_components() {
    local kind=$1 listing=$2 want missing=()
    shift 2
    for want in "$@"; do
        grep -qxF "$want" <<<"$listing" || missing+=("$want")
    done
    ((${#missing[@]} == 0)) || die "the image's ffmpeg lacks $kind: ${missing[*]}"
}
# Names from `ffmpeg -<kind>` listings: the word after the flags column, below the "--" line that
# ends the legend; demuxers and muxers list several names per line, comma-separated.
names() { in_image ffmpeg -hide_banner "-$1" | awk 'past && NF >= 2 {print $2} /^ *-+$/ {past = 1}' | tr ',' '\n'; }
check_components demuxers "$(names demuxers)" mov mp4 matroska webm avi flv mpegts mpeg ogg wav mp3 aac flac \
    asf mxf h264 hevc m4v image2 hls
check_components decoders "$(names decoders)" h264 hevc vp8 vp9 libdav1d mpeg4 mpeg2video mpeg1video prores \
    mjpeg png aac mp3float opus vorbis flac ac3 eac3 pcm_s16le pcm_s24le pcm_f32le subrip ass mov_text webvtt
check_components encoders "$(names encoders)" libx264 aac mjpeg png webvtt
check_components muxers "$(names muxers)" hls mp4 ipod image2 null mpegts matroska webvtt
check_components filters "$(in_image ffmpeg -hide_banner -filters | awk 'NF >= 3 && $1 ~ /^[.TSC|]+$/ {print $2}')" \
    scale split asplit fps format setsar setpts aresample aformat pan volume transpose hflip vflip rotate \
    zscale tonemap colorspace null anull trim ssim tile
check_components protocols "$(in_image ffmpeg -hide_banner -protocols | awk 'NF == 1 && $1 !~ /:$/ {print $1}')" file pipe
check_components bsfs "$(in_image ffmpeg -hide_banner -bsfs | awk 'NF == 1 && $1 !~ /:$/ {print $1}')" \
    aac_adtstoasc h264_mp4toannexb hevc_mp4toannexb vp9_superframe_split
in_image ffprobe -hide_banner -version >/dev/null || die "ffprobe does not run in the image"
log "image: UID 1001, no curl/wget, ffmpeg and ffprobe with every required component"
mark "image checked"

# --- the stack ---------------------------------------------------------------------------------------
API_PORT=$(free_port)
API="http://127.0.0.1:$API_PORT"
# dc SECONDS ARGS: Compose, bounded in time, with a clean environment and no .env: the file's
# defaults, plus what the smoke sets.
dc() {
    local limit=$1
    shift
    timeout "$limit" env -i PATH="$PATH" HOME="${HOME:-/tmp}" DOCKER_HOST="$DOCKER_HOST" DOCKER_CONFIG="$DOCKER_CONFIG" \
        API_BIND=127.0.0.1 API_PORT="$API_PORT" WORKER_REPLICAS=2 \
        docker compose --project-name "$PROJECT" --project-directory "$PROSTREAM_REPO" \
        --env-file /dev/null -f docker-compose.yml "$@"
}
SMOKE_OK=0
STACK_UP=1
on_exit_stack() {
    ((STACK_UP)) || return 0
    STACK_UP=0
    dc 60 logs --no-color --timestamps >"$LOGDIR/compose.log" 2>&1 || true
    if ((SMOKE_OK == 0)); then
        warn "the smoke failed; containers and the end of their logs (all of it in $LOGDIR/compose.log):"
        dc 30 ps -a >&2 || true
        tail -n 60 "$LOGDIR/compose.log" >&2 || true
    fi
    log "docker compose down -v"
    dc 180 down -v --remove-orphans --timeout 30 >/dev/null 2>&1 || warn "compose down failed"
}
services_at_exit on_exit_stack

log "docker compose up -d --wait (API on $API)"
if ! dc 420 up -d --wait --wait-timeout 360 --no-build --pull never --quiet-pull 2>"$LOGDIR/up.log"; then
    cat "$LOGDIR/up.log" >&2
    die "docker compose up --wait failed"
fi
mark "stack up and healthy"

containers() { dc 30 ps -q "$@"; }
[[ $(containers worker | wc -l) -eq 2 ]] || die "expected 2 worker containers (WORKER_REPLICAS=2)"
check_uids() {
    local c uids
    for c in $(containers api worker); do
        [[ $(timeout 30 docker exec "$c" id -u) == 1001 ]] || die "container $c: id -u is not 1001"
        # Every process of the container (tini, the binary, ffmpeg), as the host sees them.
        uids=$(timeout 30 docker top "$c" -eo uid,pid,comm | awk 'NR > 1 {print $1}' | sort -u)
        [[ $uids == 1001 ]] || die "container $c has processes running as UID(s) $(tr '\n' ' ' <<<"$uids")"
    done
}
check_uids
curl -fsS --max-time 10 "$API/readyz" >/dev/null || die "GET /readyz failed"
# An API key, made the way an operator makes one: the CLI inside the api container.
KEY=$(dc 60 exec -T api prostream keys create --name smoke --quiet) || die "prostream keys create failed in the api container"
[[ $KEY == ps_* ]] || die "prostream keys create printed no key: $KEY"
[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$API/v1/videos") == 401 ]] ||
    die "GET /v1/videos without a key was not refused with 401"

# --- upload → ready → HLS ----------------------------------------------------------------------------
json_field() { python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1"; }

make_clip() { # FILE SECONDS SIZE
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=$3:rate=30:duration=$2" \
        -f lavfi -i "sine=frequency=440:duration=$2" -c:v libx264 -preset ultrafast -pix_fmt yuv420p \
        -c:a aac -shortest "$1"
}

upload() { # FILE → prints the video id
    local body
    body=$(curl -sS --fail-with-body --max-time 120 -X POST -T "$1" -H 'content-type: video/mp4' \
        -H "Authorization: Bearer $KEY" "$API/v1/videos") ||
        die "upload of $1 failed: $body"
    json_field id <<<"$body"
}

video() { curl -fsS --max-time 10 -H "Authorization: Bearer $KEY" "$API/v1/videos/$1"; }

# wait_ready ID SECONDS: poll until ready; fail fast on failed/canceled.
wait_ready() {
    local id=$1 deadline=$((SECONDS + $2)) body status
    while ((SECONDS < deadline)); do
        body=$(video "$id") || die "GET /v1/videos/$id failed"
        status=$(json_field status <<<"$body")
        case $status in
        ready) return 0 ;;
        failed | canceled) die "video $id is $status: $(json_field error <<<"$body")" ;;
        esac
        sleep 1
    done
    die "video $id not ready within $2 s (last: $body)"
}

# fetch URL FILE: GET into FILE, fail on an HTTP error or an empty body.
fetch() {
    curl -fsS --max-time 30 -o "$2" "$1" || die "GET $1 failed"
    [[ -s $2 ]] || die "GET $1 returned an empty body"
}

# Resolve an HLS URI against the URL of the playlist that names it.
resolve() {
    case $2 in
    http://* | https://*) printf '%s\n' "$2" ;;
    /*) printf '%s%s\n' "$API" "$2" ;;
    *) printf '%s/%s\n' "${1%/*}" "$2" ;;
    esac
}

check_playback() { # ID
    local id=$1 body hls master variant init segment poster
    body=$(video "$id")
    hls=$(json_field playback.hls <<<"$body")
    [[ -n $hls ]] || die "video $id is ready without playback.hls: $body"
    master=$(resolve "$API/v1/videos/$id" "$hls")
    fetch "$master" "$WORK/master.m3u8"
    head -n1 "$WORK/master.m3u8" | grep -q '^#EXTM3U' || die "$master is not an HLS playlist"
    grep -q '^#EXT-X-STREAM-INF:.*BANDWIDTH=' "$WORK/master.m3u8" || die "$master lists no variant"
    variant=$(resolve "$master" "$(grep -v '^#' "$WORK/master.m3u8" | grep -m1 .)")
    fetch "$variant" "$WORK/variant.m3u8"
    grep -q '^#EXT-X-ENDLIST' "$WORK/variant.m3u8" || die "$variant is not complete"
    init=$(resolve "$variant" "$(sed -n 's/^#EXT-X-MAP:URI="\([^"]*\)".*/\1/p' "$WORK/variant.m3u8" | head -n1)")
    segment=$(resolve "$variant" "$(grep -v '^#' "$WORK/variant.m3u8" | grep -m1 .)")
    fetch "$init" "$WORK/init.mp4"
    fetch "$segment" "$WORK/segment.m4s"
    # The init segment and the first media segment together are a playable fMP4 fragment.
    cat "$WORK/init.mp4" "$WORK/segment.m4s" >"$WORK/first.mp4"
    ffprobe -v error -select_streams v:0 -show_entries stream=codec_name -of csv=p=0 "$WORK/first.mp4" |
        grep -qx h264 || die "the first segment of $variant does not decode as H.264"
    poster=$(json_field playback.poster <<<"$body")
    if [[ -n $poster ]]; then
        fetch "$(resolve "$API/v1/videos/$id" "$poster")" "$WORK/poster.jpg"
    fi
    log "video $id: master, $(basename "$variant"), its init and first segment ($(stat -c %s "$WORK/segment.m4s") bytes, H.264) and the poster served"
}

make_clip "$WORK/short.mp4" 4 640x360
log "uploading a 4 s clip"
short=$(upload "$WORK/short.mp4")
wait_ready "$short" 300
check_playback "$short"
mark "first video ready and served"

# --- scale, then lose a worker mid-encode ------------------------------------------------------------
log "docker compose up --scale worker=3"
dc 300 up -d --wait --wait-timeout 240 --no-build --pull never --scale worker=3 2>>"$LOGDIR/up.log" ||
    die "scaling to 3 workers failed"
[[ $(containers worker | wc -l) -eq 3 ]] || die "expected 3 worker containers after --scale worker=3"
check_uids
mark "scaled to 3 workers"

# Long enough that the encode is still running when we find and stop its worker.
make_clip "$WORK/long.mp4" 40 1280x720
log "uploading a 40 s 720p clip"
long=$(upload "$WORK/long.mp4")

# Mid-encode: the video reports transcoding progress, and one worker container runs ffmpeg (docker
# top lists a container's processes; the poster's ffmpeg only runs later, while publishing).
holder=""
deadline=$((SECONDS + 180))
while [[ -z $holder ]] && ((SECONDS < deadline)); do
    body=$(video "$long")
    if [[ $(json_field stage <<<"$body") == transcoding ]] &&
        awk -v p="$(json_field progress <<<"$body")" 'BEGIN {exit !(p > 0 && p < 90)}'; then
        for c in $(containers worker); do
            if timeout 10 docker top "$c" -eo pid,comm 2>/dev/null | awk '{print $2}' | grep -qx ffmpeg; then
                holder=$c
                break
            fi
        done
    fi
    [[ -n $holder ]] || sleep 0.5
done
[[ -n $holder ]] || die "video $long was not seen transcoding in a worker within 180 s (last: $body)"
holder_name=$(docker inspect -f '{{.Name}}' "$holder")
log "ffmpeg for $long runs in ${holder_name#/} (progress $(json_field progress <<<"$body")%); stopping that container"
timeout 90 docker stop -t 30 "$holder" >/dev/null || die "docker stop $holder_name failed"
mark "worker stopped mid-encode"
# The log lines of a container for one video, without the colour codes of the text format.
video_log() { timeout 30 docker logs "$1" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | grep "video_id=$2"; }
video_log "$holder" "$long" | grep -q 'outcome=HandedBack' ||
    die "the stopped worker did not log handing video $long back"

wait_ready "$long" 900
finisher=""
for c in $(containers worker); do
    [[ $c == "$holder" ]] && continue
    if video_log "$c" "$long" | grep -q 'outcome=Ready'; then
        finisher=$(docker inspect -f '{{.Name}}' "$c")
    fi
done
[[ -n $finisher ]] || die "no other worker logged finishing video $long"
log "video $long was handed back by ${holder_name#/} and finished by ${finisher#/}"
check_playback "$long"
mark "failover: job finished elsewhere"

SMOKE_OK=1
on_exit_stack
[[ -z $(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT") ]] ||
    die "docker compose down -v left volumes behind"
mark "down -v"

printf '\ncompose smoke passed. image %s: %s MB, build %d s.\n' "$IMAGE" "$SIZE_MB" "$BUILD_SECS"
printf '  %s\n' "${TIMES[@]}"

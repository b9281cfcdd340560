#!/usr/bin/env bash
# The web page in a real browser: Debian's Chromium driven by Playwright (playwright-core from npm),
# against a live stack (API + one worker). Screenshots land in target/web-test/.
#
#   bash scripts/web-test.sh
set -euo pipefail

# shellcheck source=lib/services.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/services.sh"
# shellcheck source=lib/stack.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/stack.sh"
cd "$PROSTREAM_REPO"
services_trap

ensure_tools ffmpeg postgres redis curl
for tool in chromium node npm; do
    command -v "$tool" >/dev/null && continue
    [[ $(id -u) -eq 0 ]] || die "$tool is missing: sudo apt-get install -y chromium nodejs npm"
    log "installing $tool with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool/node/nodejs}" >/dev/null
done
ensure_postgres postgres
ensure_redis
(cd tests/web && npm ci --silent --no-audit --no-fund)
start_stack debug 1

export ARTIFACTS="$PROSTREAM_REPO/target/web-test"
mkdir -p "$ARTIFACTS"
# 12 s of 640x360 with sound: long enough to play past 2 s over several segments.
export CLIP="$STACK_DIR/clip.mp4" JUNK="$STACK_DIR/junk.mp4" PROSTREAM_URL="$STACK_URL"
ffmpeg -v error -f lavfi -i testsrc2=size=640x360:rate=30:duration=12 -f lavfi -i sine=duration=12 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$CLIP"
head -c 50000 /dev/urandom >"$JUNK"

log "node --test tests/web/page.test.mjs"
(cd tests/web && node --test --test-reporter=spec page.test.mjs)
log "screenshots in $ARTIFACTS"

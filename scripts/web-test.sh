#!/usr/bin/env bash
# The web page in a real browser: Debian's Chromium driven by Playwright (playwright-core from npm),
# against a live stack (API + one worker). Screenshots land in target/web-test/.
#
#   bash scripts/web-test.sh
set -euo pipefail

# shellcheck source=lib/stack.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/stack.sh"
stack_prelude ffmpeg postgres redis curl
for tool in chromium node npm; do
    command -v "$tool" >/dev/null && continue
    [[ $(id -u) -eq 0 ]] || die "$tool is missing: sudo apt-get install -y chromium nodejs npm"
    log "installing $tool with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool/node/nodejs}" >/dev/null
done
(cd tests/web && npm ci --silent --no-audit --no-fund)
# The list's tests make URL ingests fail and stall against loopback origins (the stack itself and
# one the test runs): let the API fetch from 127.0.0.1.
export URL_INGEST_ALLOW_HOSTS="127.0.0.1:*"
start_stack debug 1

export ARTIFACTS="$PROSTREAM_REPO/target/web-test"
mkdir -p "$ARTIFACTS"
# 12 s of 640x360 with sound: long enough to play past 2 s over several segments.
export CLIP="$STACK_DIR/clip.mp4" JUNK="$STACK_DIR/junk.mp4" TXT="$STACK_DIR/notes.txt" PROSTREAM_URL="$STACK_URL"
ffmpeg -v error -f lavfi -i testsrc2=size=640x360:rate=30:duration=12 -f lavfi -i sine=duration=12 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$CLIP"
head -c 50000 /dev/urandom >"$JUNK"
# A text file: the browser sends it as text/plain; the page must still get the API's verdict on the bytes.
printf 'Shopping list\n- milk\n- a video file, not this one\n' >"$TXT"

# Media matrix cases a browser must play (tests/web/matrix.test.mjs), 3 s each.
export MATRIX_DIR="$STACK_DIR/matrix"
mkdir -p "$MATRIX_DIR"
m() { ffmpeg -v error -y "$@"; }
m -f lavfi -i "color=gray:size=640x360:rate=30:duration=3,drawbox=x=0:y=0:w=iw/2:h=ih/2:color=red:t=fill" \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$MATRIX_DIR/portrait.mp4"
python3 scripts/mp4-rotate.py "$MATRIX_DIR/portrait.mp4" 90
m -f lavfi -i color=c=0x808080:size=320x180:rate=30:duration=3 -vf format=yuv420p10le -c:v libx265 \
    -preset ultrafast -x265-params log-level=error -color_primaries bt2020 -colorspace bt2020nc \
    -color_trc smpte2084 "$MATRIX_DIR/pq.mp4"
m -f lavfi -i testsrc2=size=320x180:rate=120:duration=3 -c:v libx264 -preset ultrafast "$MATRIX_DIR/fast.mp4"
# Three audio languages (the French one the default, the last an audio description): players list
# each as an alternate audio rendition and switch between them. Two subtitle languages (SubRip),
# each one cue from 0.5 s to 2.5 s: players list them and show the cue at its time.
printf '1\n00:00:00,500 --> 00:00:02,500\nHello from the subtitles\n\n' >"$MATRIX_DIR/en.srt"
printf '1\n00:00:00,500 --> 00:00:02,500\nBonjour des sous-titres\n\n' >"$MATRIX_DIR/fr.srt"
m -f lavfi -i testsrc2=size=320x180:rate=30:duration=3 -f lavfi -i sine=frequency=440:duration=3 \
    -f lavfi -i sine=frequency=660:duration=3 -f lavfi -i sine=frequency=880:duration=3 \
    -i "$MATRIX_DIR/en.srt" -i "$MATRIX_DIR/fr.srt" \
    -map 0 -map 1 -map 2 -map 3 -map 4 -map 5 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac \
    -c:s srt -metadata:s:a:0 language=eng -metadata:s:a:1 language=fre -metadata:s:a:2 language=eng \
    -disposition:a:0 0 -disposition:a:1 default -disposition:a:2 visual_impaired \
    -metadata:s:s:0 language=eng -metadata:s:s:1 language=fre \
    "$MATRIX_DIR/languages.mkv"
m -f lavfi -i color=blue:size=300x300 -frames:v 1 "$MATRIX_DIR/cover.png"
m -f lavfi -i sine=duration=3 -i "$MATRIX_DIR/cover.png" -map 0 -map 1 -c:a libmp3lame -c:v png \
    -disposition:v attached_pic "$MATRIX_DIR/song.mp3"

# One file at a time (node runs them in name order): console.test.mjs's polling checks want nobody
# else's videos in progress, and page.test.mjs's screenshot (docs/page.png) shows its failed row.
tests=(console.test.mjs page.test.mjs matrix.test.mjs)
log "node --test ${tests[*]} (in tests/web)"
(cd tests/web && node --test --test-concurrency=1 --test-reporter=spec "${tests[@]}")
log "screenshots in $ARTIFACTS"

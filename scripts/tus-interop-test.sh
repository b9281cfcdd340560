#!/usr/bin/env bash
# Interoperability test for resumable uploads: tuspy (a tus client from PyPI that nobody here wrote)
# uploads a generated clip in small chunks to a live stack, is killed (SIGKILL) once the server's
# offset passes 30 %, and a fresh tuspy process resumes from the server's offset. The video must end
# `ready` with an original byte-identical (sha256) to the source. See tests/interop/tus_resume.py.
#
#   bash scripts/tus-interop-test.sh
set -euo pipefail

# shellcheck source=lib/stack.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/stack.sh"
stack_prelude ffmpeg postgres redis curl
python_venv .dev/venv-tus tuspy==1.1.0
start_stack debug 1

# A few MB that x264 cannot squeeze (noise), so the upload takes a dozen or so 256 KiB chunks.
clip="$STACK_DIR/interop.mp4"
ffmpeg -v error -f lavfi -i testsrc2=size=480x270:rate=30:duration=5 -f lavfi -i sine=duration=5 \
    -vf noise=alls=12:allf=t -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$clip"

log "tuspy: upload, SIGKILL past 30 %, resume with a fresh process"
.dev/venv-tus/bin/python tests/interop/tus_resume.py --api "$STACK_URL" --media-root "$MEDIA_ROOT" \
    --file "$clip" --work "$STACK_DIR/tus" ||
    die "the tus interoperability test failed; see $STACK_DIR/api.log and $STACK_DIR/worker-1.log"
log "tus interoperability: passed"

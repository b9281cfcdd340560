#!/usr/bin/env bash
# The README's walk-through, run verbatim: every fenced block that follows a `<!-- walkthrough -->`
# line of README.md, in order, in one bash with `set -euo pipefail`, against the stack of
# `scripts/dev.sh`, exactly as a newcomer runs them in a second terminal.
#
#   bash scripts/readme-test.sh
#
# It runs in a copy of the repository (target/readme-test/repo, building into
# target/readme-test/target) so that the walk-through's clip.mp4, dev.sh's .dev/ and media/ never touch the
# working tree, with a database and a queue name of its own. dev.sh listens on 127.0.0.1:8080, the
# address the README names: that port must be free. After the blocks it checks through the API what
# they should have left behind (every video ready but the deleted one), so a walk-through that
# silently did nothing fails too.
set -euo pipefail

# shellcheck source=lib/stack.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/stack.sh"
stack_prelude ffmpeg postgres redis curl jq

port_open 127.0.0.1 8080 &&
    die "something listens on 127.0.0.1:8080, the address the README's walk-through uses; stop it (a running scripts/dev.sh?) and run again"

target_dir=${CARGO_TARGET_DIR:-$PROSTREAM_REPO/target}
copy=$PROSTREAM_REPO/target/readme-test/repo
log "copying the repository's files to $copy"
rm -rf "$copy"
mkdir -p "$copy"
# Tracked and new files as they are in the working tree (a tracked file deleted there stays out).
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' file; do [[ -e $file ]] && printf '%s\0' "$file"; done |
    tar --null -T - -cf - | tar -xf - -C "$copy"
# The copy builds into a target directory of its own, kept between runs (incremental): sharing ours
# would put the copy's binaries at target/debug/, where the other tests' stacks would run them.
mkdir -p "$target_dir/readme-test/target"
ln -s "$target_dir/readme-test/target" "$copy/target"

# The blocks, as one script. A block marked for the walk-through must be the next fence after its
# marker, and there must be some: a README that lost its markers must not pass by running nothing.
script=$copy/walkthrough.sh
python3 - README.md "$script" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
blocks = re.findall(r"^<!-- walkthrough -->\n```sh\n(.*?)^```$", text, re.M | re.S)
markers = text.count("<!-- walkthrough -->")
if not blocks or len(blocks) != markers:
    sys.exit(f"README.md: {markers} walkthrough markers, {len(blocks)} of them followed by a ```sh block")
with open(sys.argv[2], "w", encoding="utf-8") as out:
    out.write("set -euo pipefail\nset -x\n")
    for block in blocks:
        out.write(block + "\n")
print(f"{len(blocks)} blocks", file=sys.stderr)
PY

db="prostream_readme_$$_${RANDOM}"
create_database "$db"
services_at_exit "drop_database $db"
export DATABASE_URL REDIS_URL
DATABASE_URL=$(pg_url_with_db "$DATABASE_URL" "$db")
export QUEUE_NAME="prostream-readme:$$:${RANDOM}"
# The API's metrics listener is not part of the walk-through: a free port, so a busy 9090 does not matter.
METRICS_ADDR="127.0.0.1:$(free_port)"
export METRICS_ADDR
# The walk-through runs target/debug/prostream of the copy: its own target, whatever ours is.
unset BIND_ADDR MEDIA_ROOT PLAYBACK_SIGNING_KEYS PROSTREAM_API_KEY PROSTREAM_URL CARGO_TARGET_DIR

log "starting scripts/dev.sh in $copy"
dev_log=$PROSTREAM_REPO/target/readme-test/dev.log
# Emptied here, not by the redirection below: that happens in the child, after the fork, and
# dev_ready could meanwhile find the previous run's "ProStream is running at" and start early.
: >"$dev_log"
(cd "$copy" && exec setsid bash scripts/dev.sh) >>"$dev_log" 2>&1 </dev/null &
dev_pid=$!
services_at_exit "stop_pid $dev_pid scripts/dev.sh 60"
# shellcheck disable=SC2317  # called through wait_until
dev_ready() {
    kill -0 "$dev_pid" 2>/dev/null || {
        tail -n 30 "$dev_log" >&2
        die "scripts/dev.sh exited (log: $dev_log)"
    }
    grep -q '^ProStream is running at' "$dev_log"
}
# The first start builds the workspace of the copy.
wait_until 1800 dev_ready || die "scripts/dev.sh did not come up within 30 min (log: $dev_log)"

log "running the README's walk-through (log: target/readme-test/walkthrough.log)"
rc=0
(cd "$copy" && timeout 900 bash walkthrough.sh) >"$PROSTREAM_REPO/target/readme-test/walkthrough.log" 2>&1 || rc=$?
if ((rc != 0)); then
    tail -n 40 "$PROSTREAM_REPO/target/readme-test/walkthrough.log" >&2
    die "the README's walk-through failed (exit $rc); full output in target/readme-test/walkthrough.log, the stack's logs in $copy/.dev/logs/"
fi

# What the walk-through should have left: four videos (raw, form, CLI, tus), all ready, the renamed
# one public; the canceled, retried and deleted one gone.
key=$(cat "$copy/.dev/api-key")
summary=""
expected="From the CLI=ready/private Renamed=ready/public Resumed=ready/private The same clip, as a form=ready/private"
# The CLI, the form and the tus upload may still be encoding when the blocks end: wait for them.
# shellcheck disable=SC2317  # called through wait_until
all_ready() {
    list=$(curl -sS --fail-with-body -H "Authorization: Bearer $key" "http://127.0.0.1:8080/v1/videos?limit=50")
    summary=$(jq -r '[.items[] | "\(.title)=\(.status)/\(.visibility)"] | sort | join(" ")' <<<"$list")
    [[ $summary == "$expected" ]]
}
wait_until 300 all_ready || die "after the walk-through the videos are [$summary], expected [$expected]"
log "the README's walk-through ran as written: $summary"

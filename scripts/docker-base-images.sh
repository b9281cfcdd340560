#!/usr/bin/env bash
# Local stand-ins for the base images the Dockerfile and docker-compose.yml name, for a Docker engine
# that reaches no image registry (only Debian's package archive, crates.io, PyPI and npm):
#
#   debian:bookworm-slim       debootstrap --variant=minbase bookworm, trimmed as the official slim
#   rust:1.95.0-slim-bookworm  that + gcc + the host's rustup toolchain 1.95.0
#   postgres:15                that + Debian's postgresql-15 + an entrypoint honouring POSTGRES_*
#   redis:7                    that + Debian's redis-server
#
# Tagged with exactly those names, so the Dockerfile and the Compose file run unchanged. An image is
# rebuilt only when its definition (docker/standin/, the recipe version below, the host toolchain
# or CA certificates) changed: each carries a label with the hash of what it was made from.
#
#   DOCKER_HOST=unix:///run/prostream-docker/docker.sock bash scripts/docker-base-images.sh
#
# scripts/compose-smoke.sh runs it against its private engine. Needs root (debootstrap) and a
# Docker engine that does not already have the real images under these names (it would replace them).
set -euo pipefail

# shellcheck source=lib/services.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/services.sh"
cd "$PROSTREAM_REPO"
services_trap

STANDIN=docker/standin
LABEL=org.prostream.standin
RUST_VERSION=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap needs it)"
docker version >/dev/null || die "no Docker engine answers at ${DOCKER_HOST:-the default socket}"

# Host CA certificates added to the system trust (Debian: /usr/local/share/ca-certificates), e.g. a
# TLS-inspecting proxy's. They go into the stand-in base only, never into the Dockerfile.
mapfile -t host_cas < <(find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | sort)

# Bump when the way a stand-in is made here changes (the files under docker/standin/ are hashed
# themselves). Every rebuilt base invalidates the image build cache, so this is not the script's hash.
RECIPE_VERSION=1
hash_of() { cat <(echo "$RECIPE_VERSION") "$@" | sha256sum | cut -c1-16; }

# The label value of an existing image, or nothing.
current_hash() { docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true; }

up_to_date() {
    local tag=$1 digest=$2
    if [[ $(current_hash "$tag") == "$digest" ]]; then
        log "$tag: stand-in up to date ($digest)"
        return 0
    fi
    return 1
}

# Build a stand-in from docker/standin/NAME with an extra context dir; the host network, because the
# engine's containers reach the package archive through it.
build_standin() {
    local tag=$1 context=$2 digest=$3
    log "$tag: building the stand-in"
    local out
    if ! out=$(DOCKER_BUILDKIT=0 docker build --quiet --network host --label "$LABEL=$digest" -t "$tag" "$context" 2>&1); then
        printf '%s\n' "$out" | tail -n 30 >&2
        die "building the $tag stand-in failed"
    fi
    drop_replaced "$tag"
}

# The image a tag pointed to before we rebuilt it, when nothing uses it any more.
_previous=""
remember_previous() { _previous=$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true); }
drop_replaced() {
    local now
    now=$(docker image inspect -f '{{.Id}}' "$1")
    if [[ -n $_previous && $_previous != "$now" ]]; then
        docker image rm "$_previous" >/dev/null 2>&1 || true
    fi
}

# --- debian:bookworm-slim ------------------------------------------------------------------------------
debian_slim() {
    local tag=debian:bookworm-slim digest dir
    digest=$(hash_of "$STANDIN"/debian/* "${host_cas[@]}")
    up_to_date "$tag" "$digest" && return 0
    remember_previous "$tag"
    log "$tag: debootstrap --variant=minbase bookworm (about a minute)"
    dir=$(mktemp -d "${TMPDIR:-/tmp}/prostream-rootfs.XXXXXX")
    services_at_exit "rm -rf '$dir'"
    timeout 900 debootstrap --variant=minbase bookworm "$dir/rootfs" "$DEBIAN_MIRROR" >"$dir/debootstrap.log" 2>&1 || {
        tail -n 30 "$dir/debootstrap.log" >&2
        die "debootstrap failed (log above)"
    }
    local r=$dir/rootfs
    install -m 0644 "$STANDIN/debian/dpkg-docker" "$r/etc/dpkg/dpkg.cfg.d/docker"
    install -m 0644 "$STANDIN/debian/apt-docker" "$r/etc/apt/apt.conf.d/docker"
    install -m 0644 "$STANDIN/debian/debian.sources" "$r/etc/apt/sources.list.d/debian.sources"
    rm -f "$r/etc/apt/sources.list"
    # Services never start in an image build.
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
    chmod 0755 "$r/usr/sbin/policy-rc.d"
    # What the path-excludes above keep out of later installs, removed from the base too.
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$r"/usr/share/{man,info,groff,lintian,linda,locale}/* "$r"/var/cache/apt/* \
        "$r"/var/lib/apt/lists/* "$r"/var/log/*.log "$r"/var/log/apt/* "$r"/tmp/*
    : >"$r/etc/hostname"
    if ((${#host_cas[@]})); then
        log "$tag: adding the host's extra CA certificates: ${host_cas[*]##*/}"
        install -d "$r/usr/local/share/ca-certificates"
        install -m 0644 "${host_cas[@]}" "$r/usr/local/share/ca-certificates/"
    fi
    tar --numeric-owner -C "$r" -c . |
        docker import --change "LABEL $LABEL=$digest" --change 'CMD ["bash"]' \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$tag" >/dev/null
    drop_replaced "$tag"
    rm -rf "$dir"
    log "$tag: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}')"
}

# --- rust:<version>-slim-bookworm ------------------------------------------------------------------------
rust_slim() {
    local tag="rust:$RUST_VERSION-slim-bookworm" toolchain rustup digest dir
    toolchain=$(rustup toolchain list -v 2>/dev/null | awk -v v="$RUST_VERSION" '$1 ~ "^"v"-" {print $NF; exit}')
    [[ -n $toolchain && -x $toolchain/bin/rustc ]] ||
        die "the host has no rustup toolchain $RUST_VERSION (rust-toolchain.toml); run cargo once in the repository"
    toolchain=$(readlink -f "$toolchain")
    rustup=$(command -v rustup)
    digest=$(hash_of "$STANDIN"/rust/* <(current_hash debian:bookworm-slim) \
        <("$toolchain/bin/rustc" -vV) <("$toolchain/bin/cargo" -V) "$toolchain/lib/rustlib/components")
    up_to_date "$tag" "$digest" && return 0
    remember_previous "$tag"
    dir=$(mktemp -d "${TMPDIR:-/tmp}/prostream-rust.XXXXXX")
    services_at_exit "rm -rf '$dir'"
    cp "$STANDIN/rust/Dockerfile" "$dir/"
    local name="$RUST_VERSION-x86_64-unknown-linux-gnu"
    mkdir -p "$dir/rustup/toolchains" "$dir/cargo/bin"
    # Hard links where the file system allows (no copy of ~1 GB); the HTML docs stay out.
    cp -al "$toolchain" "$dir/rustup/toolchains/$name" 2>/dev/null || cp -a "$toolchain" "$dir/rustup/toolchains/$name"
    rm -rf "$dir/rustup/toolchains/$name/share/doc"
    printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\nauto_self_update = "disable"\n\n[overrides]\n' \
        "$name" >"$dir/rustup/settings.toml"
    cp "$(readlink -f "$rustup")" "$dir/cargo/bin/rustup"
    local proxy
    for proxy in cargo cargo-clippy cargo-fmt clippy-driver rustc rustdoc rustfmt; do
        ln -s rustup "$dir/cargo/bin/$proxy"
    done
    build_standin "$tag" "$dir" "$digest"
    rm -rf "$dir"
}

# --- postgres:15 and redis:7 -------------------------------------------------------------------------------
simple_standin() {
    local tag=$1 name=$2 digest
    digest=$(hash_of "$STANDIN/$name"/* <(current_hash debian:bookworm-slim))
    up_to_date "$tag" "$digest" && return 0
    remember_previous "$tag"
    build_standin "$tag" "$STANDIN/$name" "$digest"
}

debian_slim
rust_slim
simple_standin postgres:15 postgres
simple_standin redis:7 redis
log "stand-in base images ready"

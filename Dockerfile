# ProStream image: the API (`prostream`) and the worker (`prostream-worker`) in one image; Compose picks
# the command. Builds with the classic builder (no BuildKit-only syntax).
#
#   docker build -t prostream .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=... -e REDIS_URL=... prostream
#   docker run --rm -e DATABASE_URL=... -e REDIS_URL=... prostream prostream-worker

# --- build -----------------------------------------------------------------------------------------
# The exact toolchain of rust-toolchain.toml, so rustup has nothing to download.
FROM rust:1.95.0-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

# The recipe: only the manifests and the lock file, so it changes only when dependencies do.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# sqlx's query! macros read the committed .sqlx/ data; no database during the build.
ENV SQLX_OFFLINE=true
COPY --from=planner /app/recipe.json recipe.json
# Dependencies only: this layer stays cached until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked --workspace --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --workspace \
 && cp target/release/prostream target/release/prostream-worker /usr/local/bin/

# --- run -------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# ffmpeg/ffprobe for the worker (and probing in the API), tini as PID 1 to forward signals and reap
# children, CA certificates for TLS connections to managed Postgres/Redis.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed non-root UID, and the media directory owned by it: Docker copies this ownership into a new
# named volume mounted there, so the API and the workers can write to it.
RUN groupadd --system --gid 1001 prostream \
 && useradd --system --uid 1001 --gid prostream --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin prostream \
 && mkdir -p /data/media \
 && chown -R prostream:prostream /data
COPY --from=builder /usr/local/bin/prostream /usr/local/bin/prostream-worker /usr/local/bin/
ENV BIND_ADDR=0.0.0.0:8080 \
    MEDIA_ROOT=/data/media \
    WORKER_HEALTH_FILE=/tmp/prostream-worker.health
USER 1001:1001
WORKDIR /data
EXPOSE 8080
# The API's liveness; the worker service overrides it with `prostream-worker healthcheck`.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["prostream", "healthcheck"]
ENTRYPOINT ["tini", "--"]
CMD ["prostream", "serve"]

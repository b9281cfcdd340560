# ProStream image: the API (`prostream`) and the worker (`prostream-worker`) in one image, with a
# minimal ffmpeg/ffprobe built from Debian's source package. Compose picks the command.
#
#   docker build -t prostream:local .
#   docker run --rm -p 127.0.0.1:8080:8080 -e DATABASE_URL=... -e REDIS_URL=... prostream:local
#   docker run --rm -e DATABASE_URL=... -e REDIS_URL=... prostream:local prostream-worker
#
# Builds with the classic builder (DOCKER_BUILDKIT=0) as well as BuildKit: no BuildKit-only syntax.
# Stages: chef (cargo-chef) → planner (dependency recipe) → builder (dependencies, then our crates),
# ffmpeg (configure + make), runtime (debian:bookworm-slim with the binaries, tini and four small
# shared libraries).

# --- Rust build ------------------------------------------------------------------------------------
# The toolchain of rust-toolchain.toml (scripts/lint-deploy.sh checks they agree). That file itself
# stays out of the build, so rustup never tries to add its clippy/rustfmt components here.
FROM rust:1.95.0-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app
# The stages below copy what the build reads and nothing else, so edits to docs, scripts or tests
# never rebuild it. (Strip and SQLX_OFFLINE are set here, so the dependency and final builds share them.)
ENV SQLX_OFFLINE=true \
    CARGO_PROFILE_RELEASE_STRIP=symbols

# The recipe: the manifests and lock file boiled down, so it changes only when dependencies do.
FROM chef AS planner
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY worker worker
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Dependencies only: this layer stays cached until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked --workspace --recipe-path recipe.json
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
# sqlx's query! macros read the committed .sqlx/ data: no database during the build.
COPY .sqlx .sqlx
COPY migrations migrations
COPY src src
COPY worker worker
# The web page the API serves, compiled in with include_str!.
COPY web web
RUN cargo build --release --locked --workspace --bins \
 && cp target/release/prostream target/release/prostream-worker /usr/local/bin/

# --- ffmpeg ----------------------------------------------------------------------------------------
# Debian's full ffmpeg drags in ~470 MB of libraries. This one has only what the pipeline reads and
# writes: the demuxers of media::ACCEPTED_DEMUXERS (+ image2 for cover art and storyboard tiles, hls
# for the worker's own playlists, which the downloads and the storyboard read), their decoders
# (+ the text subtitle ones; configure names the mov_text decoder `movtext`), parsers and bitstream filters, libx264/aac/mjpeg/png/webvtt encoders,
# the hls/mp4/ipod (M4A)/mpegts/matroska/image2/webvtt/null muxers, the filters the worker's graphs
# use (tile: storyboard sheets), the file and pipe protocols. GPL because of libx264.
# The source is Debian's (security patches included), from the package archive.
FROM debian:bookworm-slim AS ffmpeg
RUN sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
      > /etc/apt/sources.list.d/debian-src.sources \
 && apt-get update \
 && apt-get install -y --no-install-recommends dpkg-dev gcc libc6-dev make nasm pkg-config \
      libx264-dev libdav1d-dev libzimg-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN chown _apt /src \
 && apt-get update \
 && apt-get source --only-source ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && mv ffmpeg-*/ ffmpeg
WORKDIR /src/ffmpeg
RUN ./configure --prefix=/opt/ffmpeg \
      --enable-gpl --disable-debug --disable-doc --disable-ffplay --disable-avdevice \
      --disable-postproc --disable-network --disable-autodetect \
      --enable-zlib --enable-libx264 --enable-libdav1d --enable-libzimg \
      --disable-everything \
      --enable-protocol=file,pipe \
      --enable-demuxer=mov,matroska,avi,flv,mpegts,mpegps,ogg,wav,mp3,aac,flac,asf,mxf,h264,hevc,m4v,image2,image_jpeg_pipe,image_png_pipe,hls \
      --enable-decoder=h264,hevc,vp8,vp9,libdav1d,mpeg4,mpeg2video,mpeg1video,prores,mjpeg,png,aac,aac_latm,mp3,mp3float,opus,vorbis,flac,ac3,eac3,'pcm_*',subrip,srt,ass,ssa,movtext,webvtt \
      --enable-encoder=libx264,aac,mjpeg,png,webvtt \
      --enable-muxer=hls,mp4,ipod,mov,image2,null,mpegts,matroska,webvtt \
      --enable-parser=h264,hevc,aac,aac_latm,mpegaudio,mpeg4video,mpegvideo,vp8,vp9,av1,opus,vorbis,flac,ac3,mjpeg,png \
      --enable-bsf=aac_adtstoasc,h264_mp4toannexb,hevc_mp4toannexb,extract_extradata,vp9_superframe,vp9_superframe_split \
      --enable-filter=scale,split,asplit,fps,format,aformat,setsar,setdar,setpts,asetpts,aresample,pan,volume,transpose,hflip,vflip,rotate,zscale,tonemap,colorspace,null,anull,trim,atrim,ssim,copy,acopy,crop,pad,tile \
 && make -j"$(nproc)" \
 && make install

# --- runtime ---------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# tini as PID 1 forwards signals and reaps children; the shared libraries the ffmpeg build links
# (zlib and libstdc++ are in the base). sqlx and redis are built without TLS; the one TLS client is
# reqwest with rustls, shared by object_store (STORAGE_BACKEND=s3 over https) and the API's URL
# ingest and webhooks, which reads the system's CA bundle (OUTBOUND_CA_BUNDLE adds private CAs):
# copied below as a file, rather than Debian's ca-certificates and the openssl it pulls in.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libx264-164 libdav1d6 libzimg2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 1001 prostream \
 && useradd --system --uid 1001 --gid prostream --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin prostream \
 && mkdir -p /data/media /data/keys \
 && chown -R prostream:prostream /data
COPY --from=ffmpeg /opt/ffmpeg/bin/ffmpeg /opt/ffmpeg/bin/ffprobe /usr/local/bin/
# Fails the build if a shared library is missing.
RUN ffmpeg -hide_banner -loglevel error -version >/dev/null && ffprobe -hide_banner -loglevel error -version >/dev/null
COPY --from=builder /usr/local/bin/prostream /usr/local/bin/prostream-worker /usr/local/bin/
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# A fixed non-root UID; the media directory above is owned by it, and Docker copies that ownership
# into a new named volume mounted there, so the API and the workers can write to it.
ENV BIND_ADDR=0.0.0.0:8080 \
    MEDIA_ROOT=/data/media \
    WORKER_HEALTH_FILE=/tmp/prostream-worker.health
USER 1001:1001
WORKDIR /data
EXPOSE 8080
# The API's liveness through the binary (no curl here); the worker service overrides it with
# `prostream-worker healthcheck`.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["prostream", "healthcheck"]
ENTRYPOINT ["tini", "--"]
CMD ["prostream", "serve"]

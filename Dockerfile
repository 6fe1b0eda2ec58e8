# syntax=docker/dockerfile:1.7
#
# allim container image: a static (musl) binary on distroless/static, running as non-root.
#
#   docker buildx build --platform linux/arm64 -t allim .      # Graviton Fargate (the default)
#   docker buildx build --platform linux/amd64 -t allim .
#
# The builder runs on the target platform (native on a Graviton builder, emulated by buildx
# elsewhere); dependencies are cooked in their own layer by cargo-chef, so a change to allim's
# own code rebuilds only allim.

ARG RUST_VERSION=1.95
ARG ALPINE_VERSION=3.22

FROM rust:${RUST_VERSION}-alpine${ALPINE_VERSION} AS chef
# C toolchain for aws-lc-sys and the bundled SQLite. Alpine's own versions are meant to move
# with the pinned Alpine release, so they are not pinned one by one.
# hadolint ignore=DL3018
RUN apk add --no-cache build-base cmake perl musl-dev \
 && cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin allim
COPY . .
RUN cargo build --release --locked --bin allim \
 && strip target/release/allim \
 && ./target/release/allim --version

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="allim" \
      org.opencontainers.image.description="allim (알림): notifications from SQS, HTTP and SNS to inbox, push, SMS and Slack"
# CA for RDS Proxy TLS (Amazon Root CA 1); the image's own bundle serves SENS, FCM, Slack, SNS.
COPY certs/AmazonRootCA1.pem /etc/allim/AmazonRootCA1.pem
COPY --from=builder /src/target/release/allim /usr/local/bin/allim
# MIMALLOC_ARENA_EAGER_COMMIT=0: mimalloc (the static build's allocator) otherwise commits its
# arenas up front, which made the idle process 30 MB resident instead of 19 (bench/README.md).
# MIMALLOC_PURGE_DELAY=0: freed pages go back to the OS at once instead of after 1 s: the SQS
# drain's peak RSS 20.3-21.6 -> 19.3-20.0 MB, for ~300 more madvise calls per 20,000 requests.
ENV ALLIM_LISTEN=0.0.0.0:8080 \
    ALLIM_LOG_FORMAT=json \
    ALLIM_DB_CA=/etc/allim/AmazonRootCA1.pem \
    MIMALLOC_ARENA_EAGER_COMMIT=0 \
    MIMALLOC_PURGE_DELAY=0
EXPOSE 8080
# distroless's nonroot user.
USER 65532:65532
# ECS uses the task definition's health check (the same command); this one serves `docker run`.
HEALTHCHECK --interval=15s --timeout=4s --start-period=10s --retries=3 CMD ["/usr/local/bin/allim", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/allim"]
CMD ["serve"]

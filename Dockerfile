# syntax=docker/dockerfile:1
# mcp-auth-edge as one static binary in an otherwise empty image, running as a non-root user.
#
#   docker build -t mcp-auth-edge:0.1.0 .
#   docker run --rm -p 8080:8080 -p 9090:9090 mcp-auth-edge:0.1.0 \
#       --resource https://mcp.example.com/mcp --auth-server https://auth.example.com \
#       --upstream http://mcp-server:3000
#
# Arguments after the image name are the edge's flags (see --help); the listen addresses come
# from the environment below, so they survive any arguments given.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
# The musl target links a fully static binary. ring (under rustls) compiles C and assembly,
# which for this target needs musl-gcc (musl-tools).
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
# .dockerignore lets in only what the build reads: the manifests, src/ and the bench sources
# the manifest names.
COPY . .
# The registry and target caches persist between builds (BuildKit, buildah); the binary is
# copied out of the cache mount and stripped (about 20 MB with line tables, 4 MB without).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl --bin mcp-auth-edge \
    && cp target/x86_64-unknown-linux-musl/release/mcp-auth-edge /mcp-auth-edge \
    && strip /mcp-auth-edge

# Nothing but the binary: no shell, no libc, no CA bundle. None is needed: https to the
# authorization server and an https upstream use the Mozilla roots compiled into the binary
# (webpki-roots, via hyper-rustls' with_webpki_roots in src/common/client.rs), and musl resolves
# names from the /etc/resolv.conf and /etc/hosts that the container runtime mounts.
FROM scratch
COPY --from=build /mcp-auth-edge /mcp-auth-edge
# Any non-root id works; 65532 is the "nonroot" id of the distroless images. Numeric, because
# there is no /etc/passwd to look a name up in (and Kubernetes' runAsNonRoot can only verify
# a numeric user).
USER 65532:65532
# Inside a container the default 127.0.0.1 cannot be reached from outside. Environment rather
# than CMD, so that `docker run IMAGE --resource ...` keeps them; a flag still overrides them.
# They also beat a --config file, so set listen addresses here or with flags, not in the file.
ENV MCP_AUTH_EDGE_LISTEN=0.0.0.0:8080 \
    MCP_AUTH_EDGE_ADMIN_LISTEN=0.0.0.0:9090
# 8080: discovery documents and the gate; 9090: /healthz, /readyz, /metrics (keep it private).
EXPOSE 8080 9090
# SIGTERM drains in-flight requests for at most --drain-timeout seconds, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/mcp-auth-edge"]

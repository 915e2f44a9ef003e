# PairDB storage node image: the node and its admin CLI, run as a non-root
# user, data on a volume, health through grpc.health.v1.
#
# Build:
#   docker build -t pairdb-storage .
# Run (one node; the exact flags io_uring needs are explained below):
#   docker run -d --name pairdb \
#     --security-opt seccomp=unconfined \
#     --ulimit memlock=-1:-1 \
#     -p 50051:50051 -p 50051:50051/udp -p 51051:51051 \
#     -v pairdb-data:/var/lib/pairdb \
#     pairdb-storage --node-id node-a
#
# What io_uring needs from the container runtime:
# - seccomp: Docker's default profile (Docker 25 and later) refuses the
#   io_uring_setup, io_uring_enter and io_uring_register system calls, and
#   the node cannot start without them. Either run with
#   `--security-opt seccomp=unconfined`, or keep a profile of your own: the
#   default profile (moby's profiles/seccomp/default.json) with those three
#   names added to the list of allowed syscalls, passed as
#   `--security-opt seccomp=/path/to/pairdb-seccomp.json`. Kubernetes:
#   `securityContext.seccompProfile` of type Localhost with that profile, or
#   Unconfined.
# - memlock: each core registers runtime.io_memory_bytes (2 MiB by default)
#   of locked memory with io_uring; `--ulimit memlock=-1:-1` (or at least
#   shards x 2 MiB plus a margin) lets it. With less the node still runs, on
#   unregistered buffers, and logs a warning.
# - a host kernel of 5.8 or later with io_uring enabled
#   (sysctl kernel.io_uring_disabled = 0 where that sysctl exists).
# - one shard per CPU the container may use: `--cpuset-cpus` sets them
#   (`--cpus` limits time, not placement, and leaves every core visible).
#
# Ports: gRPC on TCP 50051, gossip on UDP 50051, Prometheus metrics on TCP
# 51051 (GET /metrics).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p pairdb-storage \
        --bin pairdb-storage --bin pairdb-admin && \
    install -m 0755 target/release/pairdb-storage target/release/pairdb-admin \
        /usr/local/bin/

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/pairdb \
        --shell /usr/sbin/nologin pairdb && \
    install -d -o pairdb -g pairdb -m 0750 /var/lib/pairdb
COPY --from=build /usr/local/bin/pairdb-storage /usr/local/bin/pairdb-admin /usr/local/bin/
COPY shards.toml /etc/pairdb/shards.toml
USER pairdb
VOLUME /var/lib/pairdb
EXPOSE 50051/tcp 50051/udp 51051/tcp
# Liveness: grpc.health.v1 Check of service "" answers SERVING while the
# process serves at all, so a drained node is not restarted. (A readiness
# probe asks for service "storage.StorageNodeService" instead.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/pairdb-admin", "--node", "127.0.0.1:50051", "probe"]
# The listen address is a wildcard, so the node must be told the address
# other nodes reach it at: PAIRDB_ADVERTISE (HOST:PORT), by default this
# container's first IP address. Further flags (--node-id, --seeds, ...) are
# passed through.
ENV PAIRDB_ADVERTISE=""
ENTRYPOINT ["/bin/sh", "-c", "exec /usr/local/bin/pairdb-storage --config /etc/pairdb/shards.toml --listen 0.0.0.0:50051 --advertise \"${PAIRDB_ADVERTISE:-$(hostname -i | cut -d' ' -f1):50051}\" --data-dir /var/lib/pairdb \"$@\"", "pairdb-storage"]

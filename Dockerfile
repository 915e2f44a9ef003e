# PairDB storage node image.
# Build: docker build -t pairdb-storage .
# Run:   docker run --rm -p 50051:50051 --ulimit memlock=-1 \
#          -v pairdb-data:/var/lib/pairdb pairdb-storage
# io_uring needs a kernel >= 5.8 on the host; the memlock ulimit lets each core
# register its io_memory (see docs/operations.md).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p pairdb-storage && \
    cp target/release/pairdb-storage /usr/local/bin/pairdb-storage

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/pairdb pairdb && mkdir -p /var/lib/pairdb && chown pairdb /var/lib/pairdb
COPY --from=build /usr/local/bin/pairdb-storage /usr/local/bin/pairdb-storage
COPY shards.toml /etc/pairdb/shards.toml
USER pairdb
VOLUME /var/lib/pairdb
# gRPC on TCP, gossip membership on UDP, one port number.
EXPOSE 50051 50051/udp
# The listen address is a wildcard, so the node must be told the address
# other nodes reach it at: PAIRDB_ADVERTISE (HOST:PORT), by default this
# container's first IP address. Further flags (--node-id, --seeds, ...) are
# passed through.
ENV PAIRDB_ADVERTISE=""
ENTRYPOINT ["/bin/sh", "-c", "exec /usr/local/bin/pairdb-storage --config /etc/pairdb/shards.toml --listen 0.0.0.0:50051 --advertise \"${PAIRDB_ADVERTISE:-$(hostname -i | cut -d' ' -f1):50051}\" --data-dir /var/lib/pairdb \"$@\"", "pairdb-storage"]

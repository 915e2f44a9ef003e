#!/usr/bin/env bash
# scripts/cluster.sh — a three-node PairDB cluster on 127.0.0.1, for trying
# range moves and gossip by hand.
#
# Starts node-1, node-2 and node-3, each seeded with all three gossip
# addresses (UDP on the gRPC port), waits until every node sees the other two
# alive, prints each node's membership (HealthCheck's cluster.* metrics),
# then keeps running until Ctrl-C (or SIGTERM), which stops all three with
# SIGTERM (each leaves the cluster and flushes its memtables).
#
# Usage: scripts/cluster.sh [PORT1 PORT2 PORT3]     (default 50061 50062 50063)
# Environment:
#   CLUSTER_DIR     data folders and logs (default ./cluster-data; kept)
#   CLUSTER_SHARDS  --shards of each node (default 1)
#   CLUSTER_ONCE=1  print the membership and stop at once (a smoke test)
#   NODE_BIN, BENCH_BIN  use these binaries instead of building release ones
set -euo pipefail
cd "$(dirname "$0")/.."

ports=("${1:-50061}" "${2:-50062}" "${3:-50063}")
dir=${CLUSTER_DIR:-./cluster-data}
shards=${CLUSTER_SHARDS:-1}
log() { printf 'cluster: %s\n' "$*" >&2; }

if [[ -z "${NODE_BIN:-}" || -z "${BENCH_BIN:-}" ]]; then
    log "building release binaries (cargo build --release)"
    cargo build --release --quiet -p pairdb-storage --bin pairdb-storage -p pairdb-bench
    NODE_BIN=${NODE_BIN:-target/release/pairdb-storage}
    BENCH_BIN=${BENCH_BIN:-target/release/pairdb-bench}
fi
mkdir -p "$dir"

seeds=""
for p in "${ports[@]}"; do seeds+="${seeds:+,}127.0.0.1:$p"; done

pids=()
stop_all() {
    trap - INT TERM EXIT
    log "stopping the nodes (SIGTERM)"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    log "stopped; data and logs are in $dir"
}
trap stop_all INT TERM EXIT

for i in 0 1 2; do
    n=$((i + 1))
    "$NODE_BIN" --node-id "node-$n" --listen "127.0.0.1:${ports[$i]}" \
        --data-dir "$dir/node-$n" --shards "$shards" --seeds "$seeds" \
        >"$dir/node-$n.log" 2>&1 &
    pids+=("$!")
    log "node-$n: pid $!, grpc and gossip on 127.0.0.1:${ports[$i]}, log $dir/node-$n.log"
done

# The value of metric KEY in the HealthCheck JSON of the node on PORT.
metric() { # port key
    "$BENCH_BIN" --target "http://127.0.0.1:$1" --health 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$2"
}

deadline=$((SECONDS + 30))
for p in "${ports[@]}"; do
    until [[ "$(metric "$p" cluster.members_alive 2>/dev/null || true)" == 3 ]]; do
        if ((SECONDS > deadline)); then
            log "127.0.0.1:$p does not see three live members after 30 s; see the logs in $dir"
            exit 1
        fi
        sleep 0.5
    done
done

for i in 0 1 2; do
    printf 'node-%s (127.0.0.1:%s) sees:\n' $((i + 1)) "${ports[$i]}"
    "$BENCH_BIN" --target "http://127.0.0.1:${ports[$i]}" --health |
        python3 -c '
import json, sys
m = json.load(sys.stdin)
for k in sorted(m):
    if k.startswith("cluster."):
        print(f"  {k} = {m[k]}")'
done

if [[ "${CLUSTER_ONCE:-0}" == 1 ]]; then
    exit 0
fi
log "running; Ctrl-C stops all three"
wait

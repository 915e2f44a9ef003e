#!/usr/bin/env bash
# scripts/bench-streams.sh — how fast a range move copies, what it costs
# foreground writes, and how fast a killed member is seen as down.
#
# Two nodes on 127.0.0.1, each with its own data folder, seeded to each other:
#   1. preload the source with BENCH_KEYS values of BENCH_VALUE_BYTES (default
#      1048576 x 1 KiB = 1 GiB);
#   2. unthrottled copy: StartStreaming of the whole ring to the target with
#      cluster.stream_rate_mb_s = 0; the rate is bytes_copied (GetStreamStatus)
#      over the wall time, and the digests of both nodes are compared;
#   3. foreground writes on the source (BENCH_CONCURRENCY, BENCH_DURATION_S)
#      without a copy, then with a copy at the default rate limit running
#      (the source restarted with the default settings, the target emptied);
#      p50/p99 of both runs from pairdb-bench's HDR histograms;
#   4. kill -9 of the target; seconds until the source's HealthCheck lists it
#      as down.
#
# Environment: BENCH_KEYS, BENCH_VALUE_BYTES, BENCH_SHARDS (2),
# BENCH_CONCURRENCY (connections x streams, default 1x8), BENCH_DURATION_S
# (10), BENCH_OUT_DIR (logs and JSON, default a new folder under
# target/bench-streams), BENCH_SKIP_BUILD=1 with NODE_BIN/BENCH_BIN/
# STREAM_BENCH_BIN to use given binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${BENCH_KEYS:-1048576}
VALUE_BYTES=${BENCH_VALUE_BYTES:-1024}
SHARDS=${BENCH_SHARDS:-2}
CONC=${BENCH_CONCURRENCY:-1x8}
DURATION_S=${BENCH_DURATION_S:-10}
OUT=${BENCH_OUT_DIR:-target/bench-streams/$(date +%Y%m%d-%H%M%S)}
log() { printf 'bench-streams: %s\n' "$*" >&2; }

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    log "building release binaries"
    cargo build --release --quiet -p pairdb-storage --bin pairdb-storage -p pairdb-bench
fi
NODE_BIN=${NODE_BIN:-target/release/pairdb-storage}
BENCH_BIN=${BENCH_BIN:-target/release/pairdb-bench}
STREAM_BENCH_BIN=${STREAM_BENCH_BIN:-target/release/stream-bench}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DATA=$(mktemp -d "$PWD/target/bench-streams-data.XXXXXX")

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
SP=$(free_port)
TP=$(free_port)
SEEDS="127.0.0.1:$SP,127.0.0.1:$TP"
declare -A PID=()

cleanup() {
    for p in "${PID[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$DATA"
}
trap cleanup EXIT

# start NAME PORT RATE_MB_S: a node with its own config file.
start() {
    local name=$1 port=$2 rate=$3
    cat >"$DATA/$name.toml" <<EOF
[node]
node_id = "$name"
listen = "127.0.0.1:$port"
data_dir = "$DATA/$name"
shards = $SHARDS

[cluster]
seeds = ["127.0.0.1:$SP", "127.0.0.1:$TP"]
stream_rate_mb_s = $rate
EOF
    "$NODE_BIN" --config "$DATA/$name.toml" >>"$OUT/$name.log" 2>&1 &
    PID[$name]=$!
    "$BENCH_BIN" --target "http://127.0.0.1:$port" --ready-only --wait-ready-s 30 >/dev/null
}

stop() { # name
    kill -TERM "${PID[$1]}"
    wait "${PID[$1]}" 2>/dev/null || true
    unset "PID[$1]"
}

metric() { # port key
    "$BENCH_BIN" --target "http://127.0.0.1:$1" --health 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$2"
}

wait_member() { # port node_id state
    until [[ "$(metric "$1" "cluster.member.$2")" == "$3 "* ]]; do sleep 0.2; done
}

IFS=x read -r CONNS STREAMS <<<"$CONC"
writes() { # label
    "$BENCH_BIN" --target "http://127.0.0.1:$SP" --workload write --keys "$KEYS" \
        --value-bytes "$VALUE_BYTES" --connections "$CONNS" --streams "$STREAMS" \
        --duration-s "$DURATION_S" --warmup-s 1 --json --quiet --label "$1" >"$OUT/writes-$1.json"
}

start source "$SP" 0
start target "$TP" 0
wait_member "$SP" target alive
log "preloading $KEYS keys of $VALUE_BYTES bytes on the source"
"$BENCH_BIN" --target "http://127.0.0.1:$SP" --keys "$KEYS" --value-bytes "$VALUE_BYTES" \
    --connections 4 --streams 16 --preload-only --quiet

log "1. unthrottled copy of the whole ring"
"$STREAM_BENCH_BIN" --source "http://127.0.0.1:$SP" --source-id source \
    --target "http://127.0.0.1:$TP" --target-id target --target-port "$TP" \
    --verify --stop --json | tee "$OUT/copy-unthrottled.json"

log "2. foreground writes without a copy, then during one at the default rate"
stop source
stop target
rm -rf "$DATA/target"
start source "$SP" 64
start target "$TP" 64
wait_member "$SP" target alive
writes alone
"$STREAM_BENCH_BIN" --source "http://127.0.0.1:$SP" --source-id source \
    --target-id target --target-port "$TP" --json >"$OUT/copy-default-rate.json" &
COPY=$!
sleep 1
writes during-copy
wait "$COPY" || log "the copy at the default rate did not complete"

log "3. kill -9 of the target: time until the source sees it down"
kill -KILL "${PID[target]}"
KILLED=$(date +%s.%N)
unset "PID[target]"
wait_member "$SP" target down
DOWN_S=$(python3 -c "import time; print(round(time.time() - $KILLED, 2))")

python3 - "$OUT" "$DOWN_S" <<'PY'
import json, sys
out, down_s = sys.argv[1], sys.argv[2]
copy = json.load(open(f"{out}/copy-unthrottled.json"))
print(f"unthrottled copy: {copy['bytes_copied']/1e6:.0f} MB, {copy['keys_copied']} keys in "
      f"{copy['elapsed_s']:.1f} s = {copy['copy_mb_s']:.0f} MB/s; digests equal: {copy['digests_equal']}")
w = {}
for label in ("alone", "during-copy"):
    w[label] = json.load(open(f"{out}/writes-{label}.json"))["write"]
    o = w[label]
    print(f"writes {label}: {o['ops_per_s']:.0f} ops/s, p50 {o['p50_us']/1000:.2f} ms, "
          f"p99 {o['p99_us']/1000:.2f} ms, errors {o['errors']}")
ratio = w["during-copy"]["p99_us"] / max(w["alone"]["p99_us"], 1)
print(f"write p99 during a copy at the default rate / without: {ratio:.2f}x (aim <= 2x)")
print(f"kill -9 to down on the source: {down_s} s")
PY
log "results in $OUT"

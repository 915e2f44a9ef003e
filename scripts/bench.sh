#!/usr/bin/env bash
# scripts/bench.sh — side-by-side benchmark of the PairDB storage node
# (pairdb-storage) against the in-memory tonic reference server
# (reference-server, bench/). Builds release binaries, starts both servers on
# free 127.0.0.1 ports, waits until each answers HealthCheck, runs the same
# workloads against each (one server under load at a time), and prints
# throughput / p99 / server CPU per request for both, the ratios
# ours/reference, the share of requests our node forwarded between cores,
# and a line per request-path target: met or not. Each run's full latency
# distribution lands in BENCH_HDR_DIR (pairdb-bench --hdr-out: <op>.hgrm and
# <op>.svg per run), and after each workload and concurrency case one chart
# draws ours (single-port, and shard-aware when run) and the reference
# together (pairdb-bench plot): BENCH_HDR_DIR/<workload>-<CxS>.svg, for
# mixed one chart per operation (<workload>-<CxS>-<op>.svg); the chart
# paths are printed at the end. Server CPU is utime+stime
# of the server process (/proc/<pid>/stat) over each measured window,
# divided by the operations answered in it (pairdb-bench --server-pid).
# Last, hop-bench measures the hop between cores alone (process CPU per
# forwarded call minus per local call, at 1, 16 and 64 calls in flight).
#
# Everything talks to 127.0.0.1 only. Environment knobs (defaults):
#   BENCH_DURATION_S=10        measured seconds per run
#   BENCH_WARMUP_S=2           warm-up seconds per run
#   BENCH_KEYS=100000          key count
#   BENCH_VALUE_BYTES=1024     value size
#   BENCH_DISTRIBUTION=uniform uniform | zipfian
#   BENCH_WORKLOADS="write read"  any of write, read, mixed
#   BENCH_CONCURRENCY="1x1 4x16"  CONNECTIONSxSTREAMS cases
#   BENCH_SHARDS=              pass --shards N to pairdb-storage when set
#   BENCH_READY_S=60           seconds to wait for each server to answer
#   BENCH_OUT_DIR=             where logs and JSON go (default: a mktemp dir)
#   BENCH_HDR_DIR=             where .hgrm files and charts go
#                              (default: BENCH_OUT_DIR/hdr)
#   BENCH_SKIP_BUILD=0         1: use the binaries already built
#   BENCH_NODE_BIN / BENCH_REF_BIN / BENCH_BENCH_BIN  override binary paths
#   BENCH_VERBOSE=0            1: show the bench's per-second progress lines
#   BENCH_SHARD_AWARE=1        also run our node shard-aware (each request to
#                              its owning shard's port, node.shard_port_base);
#                              0: single-port runs only
#   BENCH_HOP_S=3              seconds per hop-bench run (the hop between
#                              cores alone, after the server runs); 0: skip it
#   BENCH_HOP_BIN              override the hop-bench binary path
# (set CARGO_NET_OFFLINE=true to keep cargo itself off the network)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION_S=${BENCH_DURATION_S:-10}
WARMUP_S=${BENCH_WARMUP_S:-2}
KEYS=${BENCH_KEYS:-100000}
VALUE_BYTES=${BENCH_VALUE_BYTES:-1024}
DISTRIBUTION=${BENCH_DISTRIBUTION:-uniform}
WORKLOADS=${BENCH_WORKLOADS:-"write read"}
CONCURRENCY=${BENCH_CONCURRENCY:-"1x1 4x16"}
SHARDS=${BENCH_SHARDS:-}
READY_S=${BENCH_READY_S:-60}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
VERBOSE=${BENCH_VERBOSE:-0}
SHARD_AWARE=${BENCH_SHARD_AWARE:-1}
HOP_S=${BENCH_HOP_S:-3}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
NODE_BIN=${BENCH_NODE_BIN:-$TARGET_DIR/release/pairdb-storage}
REF_BIN=${BENCH_REF_BIN:-$TARGET_DIR/release/reference-server}
BENCH_BIN=${BENCH_BENCH_BIN:-$TARGET_DIR/release/pairdb-bench}
HOP_BIN=${BENCH_HOP_BIN:-$TARGET_DIR/release/hop-bench}
OUT_DIR=${BENCH_OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pairdb-bench.XXXXXX")}
mkdir -p "$OUT_DIR"
HDR_DIR=${BENCH_HDR_DIR:-$OUT_DIR/hdr}
mkdir -p "$HDR_DIR"
DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pairdb-bench-data.XXXXXX")

log() { printf '%s\n' "bench.sh: $*" >&2; }

NODE_PID=""
REF_PID=""
cleanup() {
    local pid
    for pid in "$NODE_PID" "$REF_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
        fi
    done
    for pid in "$NODE_PID" "$REF_PID"; do
        if [[ -n "$pid" ]]; then
            # Give each server 5 s to exit on SIGTERM, then SIGKILL it.
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$DATA_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building release binaries"
    cargo build --release -p pairdb-storage -p pairdb-bench
fi
for bin in "$NODE_BIN" "$REF_BIN" "$BENCH_BIN"; do
    [[ -x "$bin" ]] || { log "missing binary $bin"; exit 1; }
done

# Two distinct free loopback ports, and a run of 64 free ports for the
# node's shard ports (all held open while choosing).
read -r NODE_PORT REF_PORT SHARD_PORT_BASE < <(python3 - <<'PY'
import random, socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
taken = {a.getsockname()[1], b.getsockname()[1]}
for _ in range(200):
    base = random.randrange(20000, 60000)
    held = []
    try:
        for p in range(base, base + 64):
            if p in taken:
                raise OSError
            s = socket.socket(); s.bind(("127.0.0.1", p)); held.append(s)
        break
    except OSError:
        for s in held:
            s.close()
else:
    base = 0
print(a.getsockname()[1], b.getsockname()[1], base)
PY
)
NODE_URL="http://127.0.0.1:$NODE_PORT"
REF_URL="http://127.0.0.1:$REF_PORT"

NODE_ARGS=(--listen "127.0.0.1:$NODE_PORT" --data-dir "$DATA_DIR/node")
if [[ "$SHARD_AWARE" == 1 && "$SHARD_PORT_BASE" != 0 ]]; then
    printf '[node]\nshard_port_base = %s\n' "$SHARD_PORT_BASE" >"$DATA_DIR/node.toml"
    NODE_ARGS+=(--config "$DATA_DIR/node.toml")
else
    [[ "$SHARD_AWARE" == 1 ]] && log "no run of 64 free ports for the shard ports: shard-aware runs skipped"
    SHARD_AWARE=0
fi
[[ -n "$SHARDS" ]] && NODE_ARGS+=(--shards "$SHARDS")
log "starting pairdb-storage on 127.0.0.1:$NODE_PORT (data $DATA_DIR/node)"
"$NODE_BIN" "${NODE_ARGS[@]}" >"$OUT_DIR/node.log" 2>&1 &
NODE_PID=$!
log "starting reference-server on 127.0.0.1:$REF_PORT"
"$REF_BIN" --listen "127.0.0.1:$REF_PORT" >"$OUT_DIR/reference.log" 2>&1 &
REF_PID=$!

wait_ready() { # name url pid logfile
    local deadline=$((SECONDS + READY_S))
    until "$BENCH_BIN" --target "$2" --wait-ready-s 1 --ready-only --quiet 2>"$OUT_DIR/ready.err"; do
        if ! kill -0 "$3" 2>/dev/null; then
            log "$1 exited before answering; last lines of $4:"
            tail -n 20 "$4" >&2 || true
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "$1 did not answer HealthCheck within $READY_S s: $(cat "$OUT_DIR/ready.err")"
            log "last lines of $4:"
            tail -n 20 "$4" >&2 || true
            exit 1
        fi
    done
    log "$1 is ready at $2"
}
wait_ready "pairdb-storage" "$NODE_URL" "$NODE_PID" "$OUT_DIR/node.log"
wait_ready "reference-server" "$REF_URL" "$REF_PID" "$OUT_DIR/reference.log"

COMMON=(--keys "$KEYS" --value-bytes "$VALUE_BYTES" --distribution "$DISTRIBUTION"
        --duration-s "$DURATION_S" --warmup-s "$WARMUP_S")

run_case() { # side url workload conns streams pid [extra pairdb-bench args]
    local side=$1 url=$2 workload=$3 conns=$4 streams=$5 pid=$6
    shift 6
    local name="${workload}_${conns}x${streams}_${side}"
    local progress=("--quiet")
    [[ "$VERBOSE" == 1 ]] && progress=()
    log "run $name"
    # A reused BENCH_HDR_DIR must not chart an earlier run's files.
    rm -f "$HDR_DIR/$name"/*.hgrm "$HDR_DIR/$name"/*.svg
    if ! "$BENCH_BIN" --target "$url" --workload "$workload" "${COMMON[@]}" \
        --connections "$conns" --streams "$streams" --label "$name" --json \
        --server-pid "$pid" --hdr-out "$HDR_DIR/$name" "$@" \
        "${progress[@]}" >"$OUT_DIR/$name.json" 2>"$OUT_DIR/$name.log"; then
        log "run $name failed:"
        tail -n 20 "$OUT_DIR/$name.log" >&2 || true
        rm -f "$OUT_DIR/$name.json"
    fi
    [[ "$VERBOSE" == 1 ]] && cat "$OUT_DIR/$name.log" >&2
    return 0
}

# One chart per operation of a workload and concurrency case: the runs'
# .hgrm files that exist, ours first.
CHARTS=()
draw_charts() { # workload conns streams
    local workload=$1 conc="$2x$3" op ops chart side label inputs
    case "$workload" in mixed) ops="read write" ;; *) ops=$workload ;; esac
    for op in $ops; do
        chart="$HDR_DIR/$workload-$conc.svg"
        [[ "$workload" == mixed ]] && chart="$HDR_DIR/$workload-$conc-$op.svg"
        inputs=()
        for side in ours ours-shard-aware reference; do
            case "$side" in
                ours) label=pairdb ;;
                ours-shard-aware) label=pairdb-shard-aware ;;
                *) label=reference ;;
            esac
            local hgrm="$HDR_DIR/${workload}_${conc}_$side/$op.hgrm"
            [[ -f "$hgrm" ]] && inputs+=("$label=$hgrm")
        done
        ((${#inputs[@]} > 0)) || continue
        if "$BENCH_BIN" plot --out "$chart" \
            --title "$op latency, $workload $conc (connections x streams), $KEYS keys $DISTRIBUTION, $VALUE_BYTES B values" \
            "${inputs[@]}" 2>"$OUT_DIR/plot.err"; then
            CHARTS+=("$chart")
        else
            log "chart $chart not drawn: $(cat "$OUT_DIR/plot.err")"
        fi
    done
}

preloaded=0
HIGH=${CONCURRENCY##* }
for workload in $WORKLOADS; do
    if [[ "$workload" != write && "$preloaded" == 0 ]]; then
        # Reads should hit: write every key once on both servers, at the
        # highest configured concurrency.
        for side in ours reference; do
            url=$NODE_URL; [[ "$side" == reference ]] && url=$REF_URL
            log "preloading $KEYS keys into $side"
            "$BENCH_BIN" --target "$url" "${COMMON[@]}" --preload-only --quiet \
                --connections "${HIGH%x*}" --streams "${HIGH#*x}" \
                2>"$OUT_DIR/preload_$side.log" || {
                log "preload of $side failed:"; tail -n 20 "$OUT_DIR/preload_$side.log" >&2; exit 1; }
        done
        preloaded=1
    fi
    for conc in $CONCURRENCY; do
        run_case ours "$NODE_URL" "$workload" "${conc%x*}" "${conc#*x}" "$NODE_PID"
        if [[ "$SHARD_AWARE" == 1 ]]; then
            run_case ours-shard-aware "$NODE_URL" "$workload" "${conc%x*}" "${conc#*x}" \
                "$NODE_PID" --shard-aware
        fi
        run_case reference "$REF_URL" "$workload" "${conc%x*}" "${conc#*x}" "$REF_PID"
        draw_charts "$workload" "${conc%x*}" "${conc#*x}"
    done
done

for side in node reference; do
    pid=$NODE_PID; [[ "$side" == reference ]] && pid=$REF_PID
    kill -0 "$pid" 2>/dev/null || log "warning: $side server exited during the runs (see $OUT_DIR/$side.log)"
done

# The hop between cores alone (no network, no h2), while the servers idle.
if [[ "$HOP_S" != 0 ]]; then
    if [[ -x "$HOP_BIN" ]]; then
        log "run hop-bench (the hop between cores alone)"
        "$HOP_BIN" --dir "$DATA_DIR/hop" --concurrency 1,16,64 --duration-s "$HOP_S" --json \
            >"$OUT_DIR/hop.json" 2>"$OUT_DIR/hop.err" || log "warning: hop-bench failed (see $OUT_DIR/hop.err)"
    else
        log "warning: no hop-bench binary at $HOP_BIN: the hop alone is not measured"
    fi
fi

python3 - "$OUT_DIR" "$WORKLOADS" "$CONCURRENCY" "$SHARD_AWARE" <<'PY'
import json, os, sys
out, workloads, concs = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
modes = [("ours", "")] + ([("ours-shard-aware", " sa")] if sys.argv[4] == "1" else [])

def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def op(run, workload):
    if run is None:
        return None
    server = run.get("server") or {}
    if workload == "mixed":
        # Whole-run throughput; p99 of the slower operation type.
        parts = [run.get(k) for k in ("read", "write") if run.get(k)]
        if not parts:
            return None
        o = {"ops_per_s": run["ops_per_s"], "p99_us": max(p["p99_us"] for p in parts),
             "errors": run["errors"]}
    elif run.get(workload) is None:
        return None
    else:
        o = dict(run[workload])
    o["cpu_us_per_op"] = server.get("cpu_us_per_op")
    o["forwarded_share"] = server.get("forwarded_share")
    return o

def fmt(v, spec):
    return "-" if v is None else format(v, spec)

def ratio(a, b):
    return a / b if a is not None and b else None

rows, summary, by_case = [], [], {}
for w, c, side, tag in [(w, c, side, tag) for side, tag in modes for w in workloads for c in concs]:
        ours = op(load(f"{w}_{c}_{side}"), w)
        ref = op(load(f"{w}_{c}_reference"), w)
        o_t = ours and ours["ops_per_s"]; r_t = ref and ref["ops_per_s"]
        o_p = ours and ours["p99_us"] / 1000; r_p = ref and ref["p99_us"] / 1000
        o_c = ours and ours["cpu_us_per_op"]; r_c = ref and ref["cpu_us_per_op"]
        fwd = ours and ours["forwarded_share"]
        t_ratio, p_ratio, c_ratio = ratio(o_t, r_t), ratio(o_p, r_p), ratio(o_c, r_c)
        errs = f"{ours['errors'] if ours else '-'}/{ref['errors'] if ref else '-'}"
        rows.append((w + tag, c, fmt(o_t, ".0f"), fmt(o_p, ".3f"), fmt(o_c, ".1f"), fmt(r_t, ".0f"),
                     fmt(r_p, ".3f"), fmt(r_c, ".1f"), fmt(t_ratio, ".2f"), fmt(p_ratio, ".2f"),
                     fmt(c_ratio, ".2f"), fmt(fwd and fwd * 100, ".0f"), errs))
        case = {"workload": w, "concurrency": c, "mode": side, "ours_ops_per_s": o_t, "ours_p99_ms": o_p,
                "ours_cpu_us_per_op": o_c, "reference_ops_per_s": r_t, "reference_p99_ms": r_p,
                "reference_cpu_us_per_op": r_c, "throughput_ratio": t_ratio, "p99_ratio": p_ratio,
                "cpu_ratio": c_ratio, "forwarded_share": fwd}
        summary.append(case)
        by_case[(w, c, side)] = case

head = ("workload", "conn x str", "ours ops/s", "ours p99 ms", "ours cpu us/op", "ref ops/s",
        "ref p99 ms", "ref cpu us/op", "tput o/r", "p99 o/r", "cpu o/r", "fwd %", "errors o/r")
widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
line = lambda r: "  ".join(str(v).rjust(wd) for v, wd in zip(r, widths))
print()
print("pairdb-storage vs reference-server (tput ratio > 1, p99 and cpu ratios < 1 favour ours;")
print("cpu = server utime+stime per answered request; fwd % = requests our node moved between cores;")
print("'sa' rows: shard-aware client, each request sent to its owning shard's port)")
print(line(head))
print("  ".join("-" * wd for wd in widths))
for r in rows:
    print(line(r))

# The request-path targets, each judged on the case it names (n/a when that
# case was not run). Durable writes: the node's default wal_sync "always".
TARGETS = [
    ("read", "4x16", "cpu_ratio", "<=", 0.6, "reads 4x16: server CPU per request <= 0.6x the reference's"),
    ("read", "4x16", "throughput_ratio", ">=", 1.25, "reads 4x16: throughput >= 1.25x the reference's"),
    ("read", "1x1", "p99_ratio", "<=", 1.0, "reads 1x1: p99 <= the reference's"),
    ("read", "1x1", "cpu_ratio", "<=", 1.5, "reads 1x1: server CPU per request <= 1.5x the reference's"),
    ("write", "4x16", "throughput_ratio", ">=", 0.9, "durable writes 4x16: throughput >= 0.9x the in-memory reference's"),
    ("write", "4x16", "p99_ratio", "<=", 1.0, "durable writes 4x16: p99 <= the in-memory reference's"),
]
# The cost of a hop between cores, from the same run: the CPU per request a
# single-port run spends over a shard-aware one (no forwards), divided by
# the share it forwarded. At 4x16 the peer core is busy; at 1x1 it is
# parked (each hop wakes it).
hops = []
if len(modes) > 1:
    print()
    print("cross-core hop: extra server CPU per forwarded request (single-port minus shard-aware, / fwd share;")
    print("the shard-aware run opens one connection per shard per connection, and runs second)")
    for w in workloads:
        for c in concs:
            one = by_case.get((w, c, "ours"), {})
            sa = by_case.get((w, c, "ours-shard-aware"), {})
            cpu1, cpu2, share = one.get("ours_cpu_us_per_op"), sa.get("ours_cpu_us_per_op"), one.get("forwarded_share")
            hop = (cpu1 - cpu2) / share if None not in (cpu1, cpu2, share) and share > 0 else None
            print(f"  {w:<6} {c:>5}: {fmt(hop, '.1f'):>7} us per forwarded request")
            hops.append({"workload": w, "concurrency": c, "hop_cpu_us": hop})
    busy = next((h["hop_cpu_us"] for h in hops if h["workload"] == "read" and h["concurrency"] == "4x16"), None)
    verdict = "n/a" if busy is None else ("met" if busy <= 2.0 else "NOT MET")
    print(f"  target: a forwarded read costs <= 2 us more CPU than a local one (peer busy, 4x16): {fmt(busy, '.1f')} us  {verdict}")

# hop-bench: the same hop measured alone, by calls in flight (1: the peer
# parks between calls; 64: both cores stay busy).
hop_alone = load("hop")
if hop_alone:
    print()
    print("cross-core hop alone (hop-bench: two cores, the node's router, no network; spin 0):")
    for r in hop_alone:
        print(f"  {r['concurrency']:>3} in flight: {r['hop_cpu_us']:7.2f} us CPU per hop, "
              f"{r['forwarded']['calls_per_s']:>10.0f} forwarded calls/s")

checks = []
print()
print("request-path targets (ratios ours/reference, this run)")
for side, tag in modes:
    for w, c, field, op_, limit, text in TARGETS:
        v = by_case.get((w, c, side), {}).get(field)
        met = None if v is None else (v <= limit if op_ == "<=" else v >= limit)
        verdict = "n/a" if met is None else ("met" if met else "NOT MET")
        label = text + (" (shard-aware)" if tag else "")
        print(f"  {label:<86} {fmt(v, '.2f'):>6}  {verdict}")
        checks.append({"target": label, "measured": v, "met": met})
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump({"cases": summary, "targets": checks, "hops": hops, "hop_alone": hop_alone}, f, indent=2)
PY
log "logs and JSON in $OUT_DIR"
log "latency distributions (.hgrm, .svg per run) in $HDR_DIR"
if ((${#CHARTS[@]} > 0)); then
    log "latency charts, ours and the reference per workload:"
    for chart in "${CHARTS[@]}"; do log "  $chart"; done
fi

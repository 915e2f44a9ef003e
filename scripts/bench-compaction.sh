#!/usr/bin/env bash
# scripts/bench-compaction.sh — leveled compaction and write flow control of
# the PairDB storage node (pairdb-storage) under a sustained mixed load.
#
# Main run: a fresh node with small LSM sizes (16 MiB memtables, 64 MiB L1,
# 16 MiB tables, multiplier 10) so flushes and compactions through L1 and L2
# happen within minutes, under a mixed read/write load over uniform keys for
# BENCH_DURATION_S seconds. pairdb-bench polls HealthCheck every 250 ms and
# records every operation by whether a compaction was running at its start
# (--split-by-compaction). Health snapshots before and after give write and
# space amplification, compaction's and flush's CPU share, compaction volume,
# write slowdowns / stalls and the final levels.
# Baseline run: the same load for BENCH_BASELINE_S seconds on another fresh
# node whose L0 trigger is too high for any compaction to start, as the
# no-compaction reference for the latency percentiles.
# Prints the figures side by side and saves them as JSON in BENCH_OUT_DIR.
#
# Everything talks to 127.0.0.1 only; one node runs at a time. Data
# directories are made under the cargo target directory (a disk file system:
# the node uses O_DIRECT, which tmpfs refuses) and removed at exit.
# Environment knobs (defaults):
#   BENCH_DURATION_S=300       measured seconds of the main run
#   BENCH_BASELINE_S=60        measured seconds of the baseline run (0: skip it)
#   BENCH_WARMUP_S=5           warm-up seconds of each run (load, not measured)
#   BENCH_KEYS=1000000         key count (uniform keys)
#   BENCH_VALUE_BYTES=1024     value size (distinct, incompressible values)
#   BENCH_READ_RATIO=0.5       fraction of reads in the mixed workload
#   BENCH_CONCURRENCY=4x16     CONNECTIONSxSTREAMS
#   BENCH_PRELOAD=0            1: write every key once before each run's
#                              snapshots, so reads hit from the start (on the
#                              baseline node that preload stays in L0)
#   BENCH_SHARDS=2             --shards of the node
#   BENCH_MEMTABLE_BYTES=16777216       storage.memtable_bytes_max
#   BENCH_L1_BYTES=67108864             storage.compaction.level1_target_bytes
#   BENCH_SSTABLE_BYTES=16777216        storage.compaction.sstable_target_bytes
#   BENCH_LEVEL_MULTIPLIER=10           storage.compaction.level_size_multiplier
#   BENCH_L0_TRIGGER=4                  storage.compaction.l0_trigger_tables
#   BENCH_RATE_MB_S=           storage.compaction.rate_mb_s (unset: node default)
#   BENCH_WAL_SYNC=            storage.wal_sync (unset: node default, "always")
#   BENCH_READY_S=60           seconds to wait for a node to answer
#   BENCH_STOP_S=300           seconds to wait for a node to exit on SIGTERM
#   BENCH_PROGRESS_S=10        seconds between the bench's progress lines
#   BENCH_OUT_DIR=             where logs and JSON go (default: a mktemp dir)
#   BENCH_SKIP_BUILD=0         1: use the binaries already built
#   BENCH_KEEP_DATA=0          1: keep the data directories
#   BENCH_NODE_BIN / BENCH_BENCH_BIN  override binary paths
#   BENCH_VERBOSE=0            1: echo the bench's progress lines
# (set CARGO_NET_OFFLINE=true to keep cargo itself off the network)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
LOG_NAME=bench-compaction.sh

DURATION_S=${BENCH_DURATION_S:-300}
BASELINE_S=${BENCH_BASELINE_S:-60}
WARMUP_S=${BENCH_WARMUP_S:-5}
KEYS=${BENCH_KEYS:-1000000}
VALUE_BYTES=${BENCH_VALUE_BYTES:-1024}
READ_RATIO=${BENCH_READ_RATIO:-0.5}
CONCURRENCY=${BENCH_CONCURRENCY:-4x16}
PRELOAD=${BENCH_PRELOAD:-0}
SHARDS=${BENCH_SHARDS:-2}
MEMTABLE_BYTES=${BENCH_MEMTABLE_BYTES:-16777216}
L1_BYTES=${BENCH_L1_BYTES:-67108864}
SSTABLE_BYTES=${BENCH_SSTABLE_BYTES:-16777216}
LEVEL_MULTIPLIER=${BENCH_LEVEL_MULTIPLIER:-10}
L0_TRIGGER=${BENCH_L0_TRIGGER:-4}
RATE_MB_S=${BENCH_RATE_MB_S:-}
WAL_SYNC=${BENCH_WAL_SYNC:-}
READY_S=${BENCH_READY_S:-60}
STOP_S=${BENCH_STOP_S:-300}
PROGRESS_S=${BENCH_PROGRESS_S:-10}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
VERBOSE=${BENCH_VERBOSE:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
NODE_BIN=${BENCH_NODE_BIN:-$TARGET_DIR/release/pairdb-storage}
BENCH_BIN=${BENCH_BENCH_BIN:-$TARGET_DIR/release/pairdb-bench}
OUT_DIR=${BENCH_OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pairdb-bench-compaction.XXXXXX")}
mkdir -p "$OUT_DIR"
OUT_DIR=$(abs_dir "$OUT_DIR")

bench_install_trap

bench_prepare_binaries

bench_make_dir "$TARGET_DIR" bench-compaction
WORK=$BENCH_DIR
bench_check_fs "$WORK"

# The node config of a run: L0_TRIGGER SLOWDOWN STOP.
write_config() { # file l0_trigger l0_slowdown l0_stop
    {
        echo "[storage]"
        echo "memtable_bytes_max = $MEMTABLE_BYTES"
        [[ -n "$WAL_SYNC" ]] && echo "wal_sync = \"$WAL_SYNC\""
        echo "[storage.compaction]"
        echo "l0_trigger_tables = $2"
        echo "level1_target_bytes = $L1_BYTES"
        echo "level_size_multiplier = $LEVEL_MULTIPLIER"
        echo "sstable_target_bytes = $SSTABLE_BYTES"
        [[ -n "$RATE_MB_S" ]] && echo "rate_mb_s = $RATE_MB_S"
        echo "[storage.flow_control]"
        echo "l0_slowdown_tables = $3"
        echo "l0_stop_tables = $4"
    } >"$1"
}

# Bytes on disk (allocated blocks) of DIR by file kind, as JSON.
disk_usage() { # dir
    python3 - "$1" <<'PY'
import json, os, sys
kinds = {"sst": 0, "wal": 0, "other": 0}
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        try:
            st = os.stat(os.path.join(root, f))
        except OSError:
            continue
        kind = "sst" if f.endswith(".sst") else "wal" if f.startswith("wal-") else "other"
        kinds[kind] += st.st_blocks * 512
kinds["total"] = sum(kinds.values())
print(json.dumps(kinds))
PY
}

# One run: NAME DURATION_S L0_TRIGGER SLOWDOWN STOP.
run() {
    local name=$1 secs=$2 data="$WORK/$1"
    local config="$OUT_DIR/$name.toml"
    write_config "$config" "$3" "$4" "$5"
    start_node "$name" "$config" "$data"
    if [[ "$PRELOAD" == 1 ]]; then
        # The run's bench process preloads, then snapshots could not be
        # taken in between: preload in a separate process first.
        log "preloading $KEYS keys into $name"
        "$BENCH_BIN" --target "$NODE_URL" --keys "$KEYS" --value-bytes "$VALUE_BYTES" \
            --connections "${CONCURRENCY%x*}" --streams "${CONCURRENCY#*x}" \
            --preload-only --progress-interval-s "$PROGRESS_S" 2>"$OUT_DIR/$name-preload.log" || {
            log "preload of $name failed:"; tail -n 20 "$OUT_DIR/$name-preload.log" >&2; exit 1; }
    fi
    health_snapshot "$OUT_DIR/$name-before.json"
    local cpu0 cpu1 start_s=$SECONDS
    cpu0=$(node_cpu_s)
    contention_start
    local args=(--target "$NODE_URL" --workload mixed --read-ratio "$READ_RATIO"
        --keys "$KEYS" --value-bytes "$VALUE_BYTES" --distribution uniform
        --connections "${CONCURRENCY%x*}" --streams "${CONCURRENCY#*x}"
        --duration-s "$secs" --warmup-s "$WARMUP_S" --split-by-compaction
        --progress-interval-s "$PROGRESS_S" --label "$name" --json)
    log "run $name: mixed ${READ_RATIO} reads, $KEYS keys x $VALUE_BYTES B, $CONCURRENCY, ${WARMUP_S}+${secs} s (progress in $OUT_DIR/$name.log)"
    local ok=1
    if [[ "$VERBOSE" == 1 ]]; then
        "$BENCH_BIN" "${args[@]}" 2>&1 >"$OUT_DIR/$name.json" | tee "$OUT_DIR/$name.log" >&2 || ok=0
    else
        "$BENCH_BIN" "${args[@]}" >"$OUT_DIR/$name.json" 2>"$OUT_DIR/$name.log" || ok=0
    fi
    if [[ "$ok" != 1 ]]; then
        log "run $name failed:"
        tail -n 20 "$OUT_DIR/$name.log" >&2 || true
        exit 1
    fi
    cpu1=$(node_cpu_s)
    contention_end "$OUT_DIR/$name-cpu.json"
    health_snapshot "$OUT_DIR/$name-after.json"
    local during stopped
    during=$(disk_usage "$data")
    log "stopping node ($name); a clean shutdown flushes the memtables"
    local stop_start=$SECONDS clean=true
    stop_node || clean=false
    stopped=$(disk_usage "$data")
    printf '{"node_cpu_s": %s, "wall_s": %s, "disk_end_of_load": %s, "disk_after_shutdown": %s, "shutdown_s": %s, "clean_shutdown": %s}\n' \
        "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')" "$((SECONDS - start_s))" \
        "$during" "$stopped" "$((SECONDS - stop_start))" "$clean" >"$OUT_DIR/$name-extra.json"
    # Free the disk before the next run (unless the data is to be kept).
    [[ "$KEEP_DATA" == 1 ]] || rm -rf "$data"
}

run main "$DURATION_S" "$L0_TRIGGER" 12 20
if [[ "$BASELINE_S" != 0 ]]; then
    # No compaction can start: the trigger is far above the L0 tables a
    # minute of load produces (the validator wants trigger < slowdown < stop).
    run baseline "$BASELINE_S" 1000 1001 1002
fi

python3 - "$OUT_DIR" "$KEYS" "$VALUE_BYTES" "$PRELOAD" <<'PY'
import json, os, re, sys

out, n_keys, value_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
preloaded = sys.argv[4] == "1"
KEY_BYTES = len("key%012d" % 0)

def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def shards(m):
    return sorted({int(k.split(".")[1]) for k in m if re.match(r"shard\.\d+\.", k)})

def num(m, k):
    try:
        return float(m.get(k, 0))
    except ValueError:
        return 0.0

def total(m, name):
    return sum(num(m, f"shard.{s}.{name}") for s in shards(m))

def delta(before, after, name):
    return total(after, name) - total(before, name)

def cpu_totals(bench, before, after):
    """CPU microseconds of the compaction queue, the flush queue and the
    executor over the run, summed over shards. This node's *_cpu_us figures
    come from glommio's task queue and executor stats, which restart from
    zero each time they are read; the bench's poller read them every 250 ms.
    When any polled series fell (reset on read), the run total is the sum of
    every poll plus the final snapshot (the snapshot before the run reset
    them); when none fell they are cumulative and the total is after - before."""
    polled = (bench.get("split") or {}).get("polled", {})
    cpu = {k: v for k, v in polled.items() if k.endswith("_cpu_us")}
    reset_on_read = any(v["decreased"] for v in cpu.values())
    res = {"mode": "reset_on_read" if reset_on_read else "cumulative"}
    for name in ("compaction_cpu_us", "flush_cpu_us", "executor_cpu_us"):
        if reset_on_read:
            res[name] = sum(cpu.get(f"shard.{s}.{name}", {}).get("sum", 0) for s in shards(after)) \
                + total(after, name)
        else:
            res[name] = delta(before, after, name)
    return res

def analyse(name):
    bench, before, after, extra = load(name), load(name + "-before"), load(name + "-after"), load(name + "-extra")
    if not all((bench, before, after, extra)):
        return None
    d = lambda k: delta(before, after, k)
    r = {"bench": bench, "extra": extra, "host_cpu": load(name + "-cpu")}
    r["flush_bytes"] = d("flush_bytes")
    r["flushes"] = d("flushes")
    r["compaction_bytes_written"] = d("compaction_bytes_written")
    r["compaction_bytes_read"] = d("compaction_bytes_read")
    r["compactions"] = d("compactions")
    r["trivial_moves"] = d("compaction_trivial_moves")
    r["compaction_us"] = d("compaction_us")
    r["compaction_throttled_us"] = d("compaction_throttled_us")
    r["compaction_keys_purged"] = d("compaction_keys_purged")
    r["compaction_failures"] = d("compaction_failures")
    r["wal_bytes_written"] = d("wal_bytes_written")
    r["wal_records"] = d("wal_records")
    for k in ("write_slowdowns", "write_slowdown_us", "write_stalls", "write_stall_us"):
        r[k] = d(k)
    r["cpu"] = cpu_totals(bench, before, after)
    cpu = r["cpu"]
    ex = cpu["executor_cpu_us"]
    r["compaction_cpu_share"] = cpu["compaction_cpu_us"] / ex if ex else None
    r["flush_cpu_share"] = cpu["flush_cpu_us"] / ex if ex else None
    f, c, w = r["flush_bytes"], r["compaction_bytes_written"], r["wal_bytes_written"]
    r["write_amp_lsm"] = (f + c) / f if f else None
    r["write_amp_with_wal"] = (w + f + c) / w if w else None
    user = r["wal_records"] * (KEY_BYTES + value_bytes)
    r["user_write_bytes"] = user
    r["write_amp_per_user_byte"] = (w + f + c) / user if user else None
    # A preload (separate process) wrote every key before the run.
    distinct = n_keys if preloaded else bench.get("distinct_keys_written")
    r["distinct_keys"] = distinct
    logical = distinct * (KEY_BYTES + value_bytes) if distinct is not None else None
    r["logical_bytes"] = logical
    r["sstable_bytes_end"] = total(after, "sstable_bytes")
    r["memtable_bytes_end"] = total(after, "memtable_bytes")
    r["space_amp_sstables"] = r["sstable_bytes_end"] / logical if logical else None
    disk = extra["disk_after_shutdown"]
    r["space_amp_disk_after_shutdown"] = disk["total"] / logical if logical else None
    r["space_amp_sst_files_after_shutdown"] = disk["sst"] / logical if logical else None
    r["levels"] = {s: [(int(num(after, f"shard.{s}.level.{l}.tables")), int(num(after, f"shard.{s}.level.{l}.bytes")),
                        int(num(after, f"shard.{s}.level.{l}.target_bytes"))) for l in range(5)]
                   for s in shards(after)}
    polled = (bench.get("split") or {}).get("polled", {})
    r["max_l0_tables"] = max((v["max"] for k, v in polled.items() if k.endswith(".level.0.tables")), default=None)
    r["max_pending_bytes"] = max((v["max"] for k, v in polled.items() if k.endswith(".compaction_pending_bytes")), default=None)
    r["max_immutable_memtables"] = max((v["max"] for k, v in polled.items() if k.endswith(".immutable_memtables")), default=None)
    return r

main, base = analyse("main"), analyse("baseline")
if main is None:
    sys.exit("bench-compaction.sh: the main run left no results")

MiB = 1024 * 1024
def ms(us):
    return "-" if us is None else f"{us / 1000:.3f}"
def fx(v, spec=".2f"):
    return "-" if v is None else format(v, spec)
def pct(v):
    return "-" if v is None else f"{v * 100:.1f}%"
def mib(b):
    return "-" if b is None else f"{b / MiB:.1f} MiB"

def op(phase, kind):
    return (phase or {}).get(kind)

split = main["bench"]["split"]
rows = [("main, compaction running", split["compacting"]),
        ("main, compaction idle", split["idle"]),
        ("main, whole run", {"write": main["bench"].get("write"), "read": main["bench"].get("read")})]
if base:
    rows.append(("baseline, no compaction", {"write": base["bench"].get("write"), "read": base["bench"].get("read")}))

print()
b = main["bench"]
print(f"== compaction benchmark: mixed {b['read_ratio']:.0%} reads, {b['keys']} uniform keys x {b['value_bytes']} B "
      f"(distinct random values), {b['connections']}x{b['streams']} streams ==")
print(f"main run {b['measured_s']:.0f} s (+{b['warmup_s']:.0f} s warm-up); "
      + (f"baseline {base['bench']['measured_s']:.0f} s on a fresh node with l0_trigger_tables = 1000" if base else "no baseline"))
print(f"compaction running (any shard) in {split['compacting_fraction'] * 100:.1f}% of {split['polls']} polls (every {split['poll_interval_ms']} ms)")
print()
head = ("phase", "writes", "w p50 ms", "w p95 ms", "w p99 ms", "w p99.9", "reads", "r miss", "r p50 ms", "r p95 ms", "r p99 ms", "r p99.9", "mem-press", "errors")
table = []
for label, ph in rows:
    w, r = op(ph, "write"), op(ph, "read")
    table.append((label,
                  w["ops"] if w else 0, ms(w and w["p50_us"]), ms(w and w["p95_us"]), ms(w and w["p99_us"]), ms(w and w["p999_us"]),
                  r["ops"] if r else 0, pct(r["misses"] / r["ops"]) if r and r["ops"] else "-", ms(r and r["p50_us"]), ms(r and r["p95_us"]), ms(r and r["p99_us"]), ms(r and r["p999_us"]),
                  (w["memory_pressure"] if w else 0) + (r["memory_pressure"] if r else 0),
                  (w["errors"] if w else 0) + (r["errors"] if r else 0)))
widths = [max(len(str(x[i])) for x in table + [head]) for i in range(len(head))]
line = lambda x: "  ".join(str(v).ljust(wd) if i == 0 else str(v).rjust(wd) for i, (v, wd) in enumerate(zip(x, widths)))
print("latency (hdrhistogram, answered operations; MEMORY_PRESSURE answers counted apart;")
print("r miss = reads answered KEY_NOT_FOUND, which skip the data block read: compare phases with similar miss rates)")
print(line(head))
print("  ".join("-" * wd for wd in widths))
for x in table:
    print(line(x))

def ratio(a, b, kind, q):
    a, b = op(a, kind), op(b, kind)
    if not a or not b or not b[q]:
        return None
    return a[q] / b[q]
main_all = {"write": b.get("write"), "read": b.get("read")}
base_all = {"write": base["bench"].get("write"), "read": base["bench"].get("read")} if base else None
print()
print("ratios                                write p95  write p99  read p95  read p99")
ratios = {}
for label, a, c in (("compacting / idle (main run)", split["compacting"], split["idle"]),
                    ("compacting / baseline", split["compacting"], base_all),
                    ("idle / baseline", split["idle"], base_all),
                    ("main whole run / baseline", main_all, base_all)):
    vals = [ratio(a, c, k, q) if c else None for k, q in (("write", "p95_us"), ("write", "p99_us"), ("read", "p95_us"), ("read", "p99_us"))]
    ratios[label] = vals
    print(f"{label:<36} {fx(vals[0]):>10} {fx(vals[1]):>10} {fx(vals[2]):>9} {fx(vals[3]):>9}")

def report(r, title):
    cpu = r["cpu"]
    print()
    print(f"-- {title} --")
    print(f"throughput: {r['bench']['ops_per_s']:.0f} ops/s ({fx((r['bench'].get('write') or {}).get('ops_per_s'), '.0f')} writes/s); "
          f"distinct keys stored {r['distinct_keys']} of {r['bench']['keys']}" + (" (preloaded)" if preloaded else ""))
    print(f"flushes {r['flushes']:.0f} ({mib(r['flush_bytes'])}); compactions {r['compactions']:.0f}, "
          f"trivial moves {r['trivial_moves']:.0f}, failures {r['compaction_failures']:.0f}, keys purged {r['compaction_keys_purged']:.0f}")
    print(f"compaction bytes read {mib(r['compaction_bytes_read'])}, written {mib(r['compaction_bytes_written'])}; "
          f"compaction wall time {r['compaction_us'] / 1e6:.1f} s (shard-seconds, of which rate-limit sleeps {r['compaction_throttled_us'] / 1e6:.1f} s)")
    print(f"CPU (task-queue runtime, {cpu['mode'].replace('_', '-')} figures): executor {cpu['executor_cpu_us'] / 1e6:.1f} s, "
          f"compaction {cpu['compaction_cpu_us'] / 1e6:.2f} s, flush {cpu['flush_cpu_us'] / 1e6:.2f} s; "
          f"node process CPU from /proc {r['extra']['node_cpu_s']:.1f} s over {r['extra']['wall_s']} s")
    print(f"  compaction CPU share = compaction_cpu_us / executor_cpu_us = {pct(r['compaction_cpu_share'])}; "
          f"flush CPU share = {pct(r['flush_cpu_share'])}")
    hc = r["host_cpu"]
    if hc:
        print(f"machine CPU over the run: {hc['host_busy_cpu_s']:.0f} of {hc['wall_s'] * hc['cpus']:.0f} CPU-s busy "
              f"(node {hc['node_cpu_s']:.0f}, load generator {hc['bench_cpu_s']:.0f}, other processes {hc['other_cpu_s']:.0f}"
              + ("; other work competed for the CPUs, figures are disturbed" if hc["other_cpu_s"] > 0.05 * hc["wall_s"] * hc["cpus"] else "") + ")")
    print(f"write amplification:")
    print(f"  LSM      (flush_bytes + compaction_bytes_written) / flush_bytes = {fx(r['write_amp_lsm'])}"
          f"  (bytes written to SSTables per byte flushed from memtables)")
    print(f"  with WAL (wal_bytes_written + flush_bytes + compaction_bytes_written) / wal_bytes_written = {fx(r['write_amp_with_wal'])}"
          f"  (device bytes per WAL byte; WAL {mib(r['wal_bytes_written'])}, {r['wal_records']:.0f} records)")
    print(f"  per user byte (WAL + flush + compaction) / (wal_records x (key + value bytes)) = {fx(r['write_amp_per_user_byte'])}")
    print(f"space amplification (logical live data = distinct keys x (key {KEY_BYTES} B + value {value_bytes} B) = {mib(r['logical_bytes'])}):")
    print(f"  sum(sstable_bytes) at the end of the load / logical = {fx(r['space_amp_sstables'])}"
          f"  ({mib(r['sstable_bytes_end'])}; {mib(r['memtable_bytes_end'])} still in memtables)")
    du = r["extra"]["disk_after_shutdown"]
    dl = r["extra"]["disk_end_of_load"]
    print(f"  data dir (du) at the end of the load {mib(dl['total'])} (sst {mib(dl['sst'])}, wal {mib(dl['wal'])}, other {mib(dl['other'])}); "
          f"after clean shutdown {mib(du['total'])} (sst {mib(du['sst'])}, wal {mib(du['wal'])})")
    print(f"  after clean shutdown: whole data dir / logical = {fx(r['space_amp_disk_after_shutdown'])}; "
          f"SSTable files only / logical = {fx(r['space_amp_sst_files_after_shutdown'])} "
          f"(the WAL keeps its preallocated segments)")
    print(f"flow control: write slowdowns {r['write_slowdowns']:.0f} ({r['write_slowdown_us'] / 1e6:.2f} s), "
          f"stalls {r['write_stalls']:.0f} ({r['write_stall_us'] / 1e6:.2f} s); MEMORY_PRESSURE answers {r['bench']['memory_pressure']}; "
          f"errors {r['bench']['errors']}")
    print(f"max seen by the poller: L0 tables {r['max_l0_tables']}, immutable memtables {r['max_immutable_memtables']}, "
          f"compaction pending {mib(r['max_pending_bytes'])}; shutdown took {r['extra']['shutdown_s']} s (clean: {r['extra']['clean_shutdown']})")
    print("final levels (tables / bytes / target):")
    for s, levels in r["levels"].items():
        cells = [f"L{l}: {t} / {mib(by)}" + (f" / {mib(tg)}" if tg else "") for l, (t, by, tg) in enumerate(levels)]
        print(f"  shard {s}: " + ";  ".join(cells))

report(main, "main run")
if base:
    report(base, "baseline run (no compaction)")

def slim(r):
    if r is None:
        return None
    keep = {k: v for k, v in r.items() if k not in ("bench", "extra")}
    keep["extra"] = r["extra"]
    keep["host_cpu"] = r["host_cpu"]
    keep["latency"] = {"write": r["bench"].get("write"), "read": r["bench"].get("read")}
    if r["bench"].get("split"):
        sp = r["bench"]["split"]
        keep["split"] = {k: sp[k] for k in ("compacting_fraction", "polls", "compacting", "idle")}
    keep["memory_pressure"] = r["bench"]["memory_pressure"]
    keep["errors"] = r["bench"]["errors"]
    keep["preloaded"] = preloaded
    return keep

with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump({"main": slim(main), "baseline": slim(base),
               "ratios": {k: dict(zip(("write_p95", "write_p99", "read_p95", "read_p99"), v)) for k, v in ratios.items()}},
              f, indent=2)
PY
log "logs and JSON in $OUT_DIR"

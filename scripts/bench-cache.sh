#!/usr/bin/env bash
# scripts/bench-cache.sh — the adaptive read cache of the PairDB storage node
# (pairdb-storage): read latency from SSTables vs from the cache, and the hit
# ratio of a small cache under a skewed load.
#
# 1. Loads BENCH_KEYS keys (distinct random values) into a fresh node and
#    stops it with SIGTERM: a clean shutdown flushes every memtable, so every
#    later read is served by SSTables or the cache (checked: no memtable
#    bytes after the restart).
# 2. (a) Restarts the node with storage.cache.capacity_bytes_total = 0 and
#    measures uniform reads at each BENCH_CONCURRENCY: every read goes to the
#    SSTables.
#    (b) Restarts it with a cache larger than the data set, reads every key
#    once to fill it, then measures the same reads: served from the cache.
#    Prints p50 / p95 / p99 side by side with the ratios and each run's hit
#    ratio (from the cache_hits / cache_misses deltas).
# 3. Restarts it with a cache of BENCH_CACHE_FRACTION of the data set's cache
#    charge (keys x (value + key + 96 B per entry)), warms it with Zipf reads
#    for BENCH_ZIPF_WARMUP_S, then measures BENCH_ZIPF_DURATION_S of Zipf reads:
#    hit ratio = delta(cache_hits) / delta(cache_hits + cache_misses) over all
#    shards, next to the best any cache of that many entries can do (the
#    probability mass of the most popular keys).
# Results are also saved as JSON in BENCH_OUT_DIR.
#
# Everything talks to 127.0.0.1 only; one node runs at a time. The data
# directory is made under the cargo target directory (a disk file system: the
# node uses O_DIRECT, which tmpfs refuses) and removed at exit.
# Environment knobs (defaults):
#   BENCH_KEYS=200000          key count
#   BENCH_VALUE_BYTES=1024     value size
#   BENCH_DURATION_S=20        measured seconds per latency run
#   BENCH_WARMUP_S=2           warm-up seconds per latency run
#   BENCH_CONCURRENCY="1x1 4x16"  CONNECTIONSxSTREAMS cases of the latency runs
#   BENCH_ZIPF_THETA=0.99      Zipf skew of the hit-ratio run
#   BENCH_CACHE_FRACTION=0.10  cache budget of the hit-ratio run, share of the data set
#   BENCH_ZIPF_WARMUP_S=30     Zipf reads before the hit-ratio window
#   BENCH_ZIPF_DURATION_S=60   hit-ratio window
#   BENCH_ZIPF_CONCURRENCY=4x16  CONNECTIONSxSTREAMS of the hit-ratio run
#   BENCH_SHARDS=2             --shards of the node
#   BENCH_READY_S=60           seconds to wait for the node to answer
#   BENCH_STOP_S=300           seconds to wait for the node to exit on SIGTERM
#   BENCH_OUT_DIR=             where logs and JSON go (default: a mktemp dir)
#   BENCH_SKIP_BUILD=0         1: use the binaries already built
#   BENCH_KEEP_DATA=0          1: keep the data directory
#   BENCH_NODE_BIN / BENCH_BENCH_BIN  override binary paths
#   BENCH_VERBOSE=0            1: echo the bench's progress lines
# (set CARGO_NET_OFFLINE=true to keep cargo itself off the network)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
LOG_NAME=bench-cache.sh

KEYS=${BENCH_KEYS:-200000}
VALUE_BYTES=${BENCH_VALUE_BYTES:-1024}
DURATION_S=${BENCH_DURATION_S:-20}
WARMUP_S=${BENCH_WARMUP_S:-2}
CONCURRENCY=${BENCH_CONCURRENCY:-"1x1 4x16"}
ZIPF_THETA=${BENCH_ZIPF_THETA:-0.99}
CACHE_FRACTION=${BENCH_CACHE_FRACTION:-0.10}
ZIPF_WARMUP_S=${BENCH_ZIPF_WARMUP_S:-30}
ZIPF_DURATION_S=${BENCH_ZIPF_DURATION_S:-60}
ZIPF_CONCURRENCY=${BENCH_ZIPF_CONCURRENCY:-4x16}
SHARDS=${BENCH_SHARDS:-2}
READY_S=${BENCH_READY_S:-60}
STOP_S=${BENCH_STOP_S:-300}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
VERBOSE=${BENCH_VERBOSE:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
NODE_BIN=${BENCH_NODE_BIN:-$TARGET_DIR/release/pairdb-storage}
BENCH_BIN=${BENCH_BENCH_BIN:-$TARGET_DIR/release/pairdb-bench}
OUT_DIR=${BENCH_OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pairdb-bench-cache.XXXXXX")}
mkdir -p "$OUT_DIR"
OUT_DIR=$(abs_dir "$OUT_DIR")

# Cache charge per entry as the node counts it: key + versions + 96 B.
KEY_BYTES=15       # "key" + 12 digits, see bench/src/keys.rs
ENTRY_OVERHEAD=96
ENTRY_BYTES=$((VALUE_BYTES + KEY_BYTES + ENTRY_OVERHEAD))
SMALL_CACHE=$(awk -v k="$KEYS" -v e="$ENTRY_BYTES" -v f="$CACHE_FRACTION" 'BEGIN { printf "%d", k * e * f }')
# "Larger than the data set": twice the charge estimate, which leaves room
# for each version's fixed size and clock.
BIG_CACHE=$((2 * KEYS * ENTRY_BYTES))

bench_install_trap

bench_prepare_binaries

bench_make_dir "$TARGET_DIR" bench-cache
WORK=$BENCH_DIR
bench_check_fs "$WORK"
DATA="$WORK/node"

write_config() { # file capacity_bytes_total
    printf '[storage.cache]\ncapacity_bytes_total = %s\n' "$2" >"$1"
}

# The bench with progress to LOG (and stderr when verbose): LOG ARGS...
bench() {
    local logf=$1
    shift
    if [[ "$VERBOSE" == 1 ]]; then
        "$BENCH_BIN" --target "$NODE_URL" "$@" 2> >(tee "$logf" >&2)
    else
        "$BENCH_BIN" --target "$NODE_URL" "$@" 2>"$logf"
    fi || {
        log "pairdb-bench failed ($*):"
        tail -n 20 "$logf" >&2 || true
        exit 1
    }
}

COMMON=(--keys "$KEYS" --value-bytes "$VALUE_BYTES" --workload read --progress-interval-s 5)

# 1. Load, then a clean shutdown flushes everything to SSTables.
write_config "$OUT_DIR/load.toml" 268435456
start_node load "$OUT_DIR/load.toml" "$DATA"
HIGH=${CONCURRENCY##* }
log "preloading $KEYS keys x $VALUE_BYTES B"
bench "$OUT_DIR/preload.log" "${COMMON[@]}" --preload-only \
    --connections "${HIGH%x*}" --streams "${HIGH#*x}"
stop_node || { log "the node did not shut down cleanly after the preload"; exit 1; }

# Restarts the node with a cache of CAPACITY bytes and checks that nothing
# is left in memtables: NAME CAPACITY.
restart() {
    write_config "$OUT_DIR/$1.toml" "$2"
    start_node "$1" "$OUT_DIR/$1.toml" "$DATA"
    health_snapshot "$OUT_DIR/$1-start.json"
    python3 - "$OUT_DIR/$1-start.json" <<'PY' || exit 1
import json, re, sys
m = json.load(open(sys.argv[1]))
shards = sorted({k.split(".")[1] for k in m if re.match(r"shard\.\d+\.", k)})
mem = sum(int(m[f"shard.{s}.memtable_bytes"]) for s in shards)
imm = sum(int(m[f"shard.{s}.immutable_memtables"]) for s in shards)
tables = sum(int(m[f"shard.{s}.sstables"]) for s in shards)
if mem or imm:
    sys.exit(f"bench-cache.sh: {mem} memtable bytes / {imm} immutable memtables after a restart; reads would not all come from SSTables")
print(f"bench-cache.sh: restarted: {tables} SSTables, memtables empty, cache capacity {m.get('shard.0.cache_capacity_bytes')} B per shard", file=sys.stderr)
PY
}

# A measured read run with snapshots around it: NAME CONCURRENCY ARGS...
read_run() {
    local name=$1 conc=$2
    shift 2
    health_snapshot "$OUT_DIR/$name-before.json"
    log "run $name ($conc)"
    contention_start
    bench "$OUT_DIR/$name.log" "${COMMON[@]}" --connections "${conc%x*}" --streams "${conc#*x}" \
        --label "$name" --json "$@" >"$OUT_DIR/$name.json"
    contention_end "$OUT_DIR/$name-cpu.json"
    health_snapshot "$OUT_DIR/$name-after.json"
}

# 2a. Cache disabled: every read from SSTables.
restart nocache 0
for conc in $CONCURRENCY; do
    read_run "sstable_$conc" "$conc" --distribution uniform \
        --duration-s "$DURATION_S" --warmup-s "$WARMUP_S"
done
stop_node || log "warning: unclean shutdown (nocache)"

# 2b. Cache larger than the data set, filled by one pass over every key.
restart bigcache "$BIG_CACHE"
log "warm pass: reading every key once"
bench "$OUT_DIR/warm-read.log" "${COMMON[@]}" --warm-read-only \
    --connections "${HIGH%x*}" --streams "${HIGH#*x}"
health_snapshot "$OUT_DIR/bigcache-warm.json"
for conc in $CONCURRENCY; do
    read_run "cache_$conc" "$conc" --distribution uniform \
        --duration-s "$DURATION_S" --warmup-s "$WARMUP_S"
done
stop_node || log "warning: unclean shutdown (bigcache)"

# 3. Zipf hit ratio with a cache of CACHE_FRACTION of the data set.
restart zipfcache "$SMALL_CACHE"
log "zipf warm-up: ${ZIPF_WARMUP_S} s"
bench "$OUT_DIR/zipf-warmup.log" "${COMMON[@]}" --distribution zipfian --zipf-theta "$ZIPF_THETA" \
    --connections "${ZIPF_CONCURRENCY%x*}" --streams "${ZIPF_CONCURRENCY#*x}" \
    --duration-s "$ZIPF_WARMUP_S" --warmup-s 0 --quiet --json >"$OUT_DIR/zipf-warmup.json"
read_run zipf "$ZIPF_CONCURRENCY" --distribution zipfian --zipf-theta "$ZIPF_THETA" \
    --duration-s "$ZIPF_DURATION_S" --warmup-s 0
stop_node || log "warning: unclean shutdown (zipfcache)"

python3 - "$OUT_DIR" "$KEYS" "$VALUE_BYTES" "$ZIPF_THETA" "$CACHE_FRACTION" "$SMALL_CACHE" "$BIG_CACHE" "$ENTRY_BYTES" "$CONCURRENCY" <<'PY'
import json, os, re, sys

out = sys.argv[1]
keys, value_bytes, theta, fraction = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
small_cache, big_cache, entry_bytes = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
concs = sys.argv[9].split()

def load(name):
    with open(os.path.join(out, name + ".json")) as f:
        return json.load(f)

def shards(m):
    return sorted({k.split(".")[1] for k in m if re.match(r"shard\.\d+\.", k)})

def total(m, k):
    return sum(float(m.get(f"shard.{s}.{k}", 0)) for s in shards(m))

def hit_ratio(before, after):
    h = total(after, "cache_hits") - total(before, "cache_hits")
    mi = total(after, "cache_misses") - total(before, "cache_misses")
    return (h / (h + mi) if h + mi else None), int(h), int(mi)

def ms(us):
    return us / 1000.0

def other_cpu(name):
    """Share of the machine's CPU time other processes (neither the node nor
    the bench) used during a run: a high share means disturbed figures."""
    try:
        c = load(name + "-cpu")
    except (OSError, ValueError):
        return "-"
    return f"{c['other_cpu_s'] / (c['wall_s'] * c['cpus']) * 100:.0f}%"


def fx(v, spec=".3f"):
    return "-" if v is None else format(v, spec)

SSTABLE_P95_TARGET, SSTABLE_P95_AIM = 20.0, 1.0
CACHE_P95_TARGET, CACHE_P95_AIM = 5.0, 0.3
HIT_TARGET = 0.85

summary = {"keys": keys, "value_bytes": value_bytes, "latency": [], "zipf": None}
print()
print(f"== read cache benchmark: {keys} keys x {value_bytes} B, all in SSTables (memtables empty after a clean restart) ==")
warm = load("bigcache-warm")
print(f"(b) cache {big_cache / 2**20:.0f} MiB total; after the warm pass it holds {int(total(warm, 'cache_entries'))} entries, "
      f"{total(warm, 'cache_bytes') / 2**20:.1f} MiB")
print()
head = ("reads (uniform)", "conn x str", "source", "reads/s", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "hit ratio", "misses", "errors", "other CPU")
rows = []
for conc in concs:
    pair = {}
    for src, name in (("SSTables (cache off)", f"sstable_{conc}"), ("cache (warm)", f"cache_{conc}")):
        r = load(name)["read"]
        hr, h, mi = hit_ratio(load(name + "-before"), load(name + "-after"))
        pair[src] = (r, hr)
        rows.append(("", conc, src, f"{r['ops_per_s']:.0f}", fx(ms(r["p50_us"])), fx(ms(r["p95_us"])), fx(ms(r["p99_us"])),
                     fx(ms(r["p999_us"])), "-" if hr is None else f"{hr * 100:.1f}%", r["misses"], r["errors"], other_cpu(name)))
    (s, _), (c, chr_) = pair["SSTables (cache off)"], pair["cache (warm)"]
    ratio = lambda q: s[q] / c[q] if c[q] else None
    rows.append(("", conc, "ratio SSTables/cache", f"{s['ops_per_s'] / c['ops_per_s']:.2f}" if c["ops_per_s"] else "-",
                 fx(ratio("p50_us"), ".1f"), fx(ratio("p95_us"), ".1f"), fx(ratio("p99_us"), ".1f"), fx(ratio("p999_us"), ".1f"), "", "", "", ""))
    summary["latency"].append({
        "concurrency": conc,
        "sstable": {k: s[k] for k in ("ops_per_s", "p50_us", "p95_us", "p99_us", "p999_us", "misses", "errors")},
        "cache": {k: c[k] for k in ("ops_per_s", "p50_us", "p95_us", "p99_us", "p999_us", "misses", "errors")},
        "cache_hit_ratio": chr_,
        "p95_ratio_sstable_over_cache": ratio("p95_us"),
        "sstable_p95_target_20ms_met": ms(s["p95_us"]) < SSTABLE_P95_TARGET,
        "sstable_p95_aim_1ms_met": ms(s["p95_us"]) < SSTABLE_P95_AIM,
        "cache_p95_target_5ms_met": ms(c["p95_us"]) < CACHE_P95_TARGET,
        "cache_p95_aim_0_3ms_met": ms(c["p95_us"]) < CACHE_P95_AIM,
    })
widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
line = lambda r: "  ".join(str(v).ljust(w) if i in (0, 2) else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
print(line(head))
print("  ".join("-" * w for w in widths))
for r in rows:
    print(line(r))
print("(other CPU: share of the machine's CPU time used by processes other than the node and the bench during the run)")
print()
print("targets (read p95)                     threshold  aim       measured  verdict (threshold / aim)")
for l in summary["latency"]:
    for label, key, thr, aim in (("from SSTables", "sstable", SSTABLE_P95_TARGET, SSTABLE_P95_AIM),
                                 ("from cache", "cache", CACHE_P95_TARGET, CACHE_P95_AIM)):
        p95 = ms(l[key]["p95_us"])
        v = lambda ok: "met" if ok else "NOT MET"
        print(f"{label + ' (' + l['concurrency'] + ')':<38} < {thr:<7} < {aim:<6} {p95:>8.3f} ms  {v(p95 < thr)} / {v(p95 < aim)}")

# Zipf hit ratio.
z = load("zipf")
hr, h, mi = hit_ratio(load("zipf-before"), load("zipf-after"))
after = load("zipf-after")
entries = int(total(after, "cache_entries"))
cache_bytes = total(after, "cache_bytes")
evictions = int(total(after, "cache_evictions") - total(load("zipf-before"), "cache_evictions"))

def harmonic(n, t):
    return sum(1.0 / (i ** t) for i in range(1, n + 1))
zn = harmonic(keys, theta)
budget_entries = int(keys * fraction)
optimum = harmonic(budget_entries, theta) / zn
optimum_held = harmonic(min(entries, keys), theta) / zn if entries else 0.0
r = z["read"]
print()
print(f"== hit ratio: Zipf(theta={theta}) reads over {keys} keys, cache budget {fraction:.0%} of the data set ==")
print(f"cache capacity_bytes_total = {fraction:.2f} x {keys} keys x ({value_bytes} + {entry_bytes - value_bytes - 96} + 96) B = {small_cache} B "
      f"({small_cache / 2**20:.1f} MiB, split over {len(shards(after))} shards)")
print(f"window {z['measured_s']:.0f} s after a {load('zipf-warmup')['measured_s']:.0f} s warm-up, {z['connections']}x{z['streams']} streams: "
      f"{r['ops_per_s']:.0f} reads/s, p50 {ms(r['p50_us']):.3f} ms, p95 {ms(r['p95_us']):.3f} ms, p99 {ms(r['p99_us']):.3f} ms")
print(f"cache at the end: {entries} entries ({entries / keys:.1%} of the keys), {cache_bytes / 2**20:.1f} MiB, "
      f"{cache_bytes / entries if entries else 0:.0f} B charged per entry; {evictions} evictions in the window")
print(f"hit ratio = delta(cache_hits) / delta(cache_hits + cache_misses) = {h} / {h + mi} = {fx(hr and hr * 100, '.2f')}%")
print(f"optimum (a cache holding exactly the most popular keys): top {budget_entries} keys = {optimum * 100:.2f}% of Zipf({theta}) mass; "
      f"top {entries} keys (entries actually held) = {optimum_held * 100:.2f}%")
print(f"machine CPU used by other processes during the window: {other_cpu('zipf')}")
print(f"seed target > {HIT_TARGET:.0%}: {'met' if hr is not None and hr > HIT_TARGET else 'NOT MET'}; "
      f"measured / optimum for the held entries = {fx(hr / optimum_held if hr is not None and optimum_held else None, '.3f')}")
summary["zipf"] = {"theta": theta, "cache_fraction": fraction, "capacity_bytes_total": small_cache, "hit_ratio": hr,
                   "hits": h, "misses": mi, "entries": entries, "cache_bytes": cache_bytes, "evictions": evictions,
                   "optimum_budget_entries": optimum, "optimum_held_entries": optimum_held,
                   "read": {k: r[k] for k in ("ops_per_s", "p50_us", "p95_us", "p99_us", "p999_us")},
                   "target_85pct_met": hr is not None and hr > HIT_TARGET}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
PY
log "logs and JSON in $OUT_DIR"

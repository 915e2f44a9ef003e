# scripts/bench-lib.sh — shell helpers shared by the storage benchmarks
# (bench-compaction.sh, bench-cache.sh); sourced, not run. Owns starting one
# pairdb-storage node at a time on a free 127.0.0.1 port with a given config
# and data directory, waiting until it answers HealthCheck, health snapshots,
# the node's CPU time from /proc, stopping it with SIGTERM (a clean shutdown
# flushes every memtable), the machine's CPU use around a measured stretch
# (to spot other work competing for the CPUs), and the exit trap that stops
# a node left running and removes the data directories.
#
# The sourcing script sets, before calling anything here:
#   LOG_NAME   prefix of log lines
#   OUT_DIR    where node logs go
#   NODE_BIN, BENCH_BIN  binaries
#   READY_S    seconds to wait for a node to answer
#   STOP_S     seconds to wait for a node to exit on SIGTERM
#   SHARDS     --shards of every node
# and makes its data directories with `bench_make_dir` (removed at exit
# unless BENCH_KEEP_DATA=1).

NODE_PID=""
NODE_URL=""
NODE_LOG=""
BENCH_DIRS=()
KEEP_DATA=${BENCH_KEEP_DATA:-0}

log() { printf '%s\n' "$LOG_NAME: $*" >&2; }

# The absolute path of a directory that exists.
abs_dir() { (cd "$1" && pwd); }

# A free loopback port (the socket is closed before the node binds it).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Makes a fresh directory under PARENT, removed at exit, in BENCH_DIR.
bench_make_dir() { # parent prefix
    mkdir -p "$1"
    BENCH_DIR=$(mktemp -d "$(abs_dir "$1")/$2.XXXXXX")
    BENCH_DIRS+=("$BENCH_DIR")
}

# Refuses a data directory on tmpfs: the node opens SSTables with O_DIRECT.
bench_check_fs() { # dir
    local fs
    fs=$(stat -f -c %T "$1" 2>/dev/null || echo unknown)
    if [[ "$fs" == tmpfs || "$fs" == ramfs ]]; then
        log "$1 is on $fs; the node needs a disk file system (O_DIRECT). Set CARGO_TARGET_DIR elsewhere."
        exit 1
    fi
}

# Starts a node: NAME CONFIG DATA_DIR. Sets NODE_PID, NODE_URL, NODE_LOG and
# returns once it answers HealthCheck (exits the script if it does not).
start_node() {
    local name=$1 config=$2 data=$3 port
    port=$(free_port)
    NODE_URL="http://127.0.0.1:$port"
    NODE_LOG="$OUT_DIR/node-$name.log"
    log "starting pairdb-storage ($name) on 127.0.0.1:$port, data $data"
    "$NODE_BIN" --config "$config" --listen "127.0.0.1:$port" --data-dir "$data" \
        --shards "$SHARDS" >>"$NODE_LOG" 2>&1 &
    NODE_PID=$!
    local deadline=$((SECONDS + READY_S))
    until "$BENCH_BIN" --target "$NODE_URL" --wait-ready-s 1 --ready-only --quiet \
        2>"$OUT_DIR/ready.err"; do
        if ! kill -0 "$NODE_PID" 2>/dev/null; then
            log "node ($name) exited before answering; last lines of $NODE_LOG:"
            tail -n 20 "$NODE_LOG" >&2 || true
            NODE_PID=""
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "node ($name) did not answer HealthCheck within $READY_S s: $(cat "$OUT_DIR/ready.err")"
            tail -n 20 "$NODE_LOG" >&2 || true
            exit 1
        fi
    done
    log "node ($name) is ready at $NODE_URL (pid $NODE_PID)"
}

# Stops the running node with SIGTERM and waits up to STOP_S for a clean
# exit; SIGKILL after that (then the memtables were not all flushed).
# Returns 0 only on a clean exit with status 0.
stop_node() {
    local pid=$NODE_PID rc=0
    [[ -n "$pid" ]] || return 0
    NODE_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_S))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "node (pid $pid) still running $STOP_S s after SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            return 1
        fi
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || rc=$?
    if ((rc != 0)); then
        log "node (pid $pid) exited with status $rc; last lines of $NODE_LOG:"
        tail -n 20 "$NODE_LOG" >&2 || true
        return 1
    fi
    return 0
}

# Writes the node's HealthCheck metrics as JSON to FILE.
health_snapshot() { # file
    "$BENCH_BIN" --target "$NODE_URL" --health >"$1" 2>"$1.err" || {
        log "HealthCheck snapshot failed: $(cat "$1.err")"
        exit 1
    }
    rm -f "$1.err"
}

# CPU seconds (user + system) the running node has used so far.
node_cpu_s() {
    local ticks
    ticks=$(getconf CLK_TCK)
    awk -v t="$ticks" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$NODE_PID/stat"
}

# Sets CHILD_CPU to the CPU seconds of this shell's finished children (the
# bench runs, once waited for). `times` must run in this shell, not a
# subshell, whose counts start from zero.
read_children_cpu() {
    times >"$OUT_DIR/.times"
    CHILD_CPU=$(awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } print s }' "$OUT_DIR/.times")
}

# Busy CPU seconds of the whole machine (all CPUs, not idle or iowait).
host_busy_s() {
    awk -v t="$(getconf CLK_TCK)" '/^cpu / { print ($2 + $3 + $4 + $7 + $8 + $9) / t; exit }' /proc/stat
}

# Brackets a measured stretch to see whether anything else used the CPUs:
# contention_start, then contention_end FILE writes the machine's busy CPU
# seconds, the node's, the benches' (children of this shell finished in
# between) and the rest ("other") as JSON.
contention_start() {
    read_children_cpu
    C_CHILD0=$CHILD_CPU
    C_HOST0=$(host_busy_s)
    C_NODE0=$(node_cpu_s)
    C_WALL0=$(date +%s.%N)
}
contention_end() { # file
    read_children_cpu
    local host node wall
    host=$(host_busy_s)
    node=$(node_cpu_s)
    wall=$(date +%s.%N)
    awk -v h0="$C_HOST0" -v h1="$host" -v n0="$C_NODE0" -v n1="$node" -v c0="$C_CHILD0" \
        -v c1="$CHILD_CPU" -v w0="$C_WALL0" -v w1="$wall" -v cpus="$(nproc)" 'BEGIN {
        h = h1 - h0; n = n1 - n0; c = c1 - c0; o = h - n - c; if (o < 0) o = 0
        printf "{\"wall_s\": %.2f, \"cpus\": %d, \"host_busy_cpu_s\": %.2f, \"node_cpu_s\": %.2f, \"bench_cpu_s\": %.2f, \"other_cpu_s\": %.2f}\n", w1 - w0, cpus, h, n, c, o
    }' >"$1"
}

bench_cleanup() {
    if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    local d
    if [[ "$KEEP_DATA" == 1 ]]; then
        ((${#BENCH_DIRS[@]} == 0)) || log "kept data directories: ${BENCH_DIRS[*]}"
    else
        for d in "${BENCH_DIRS[@]}"; do rm -rf "$d"; done
    fi
}

# Installs the exit trap (call once, early).
# Builds the release binaries unless SKIP_BUILD=1, then checks that
# NODE_BIN and BENCH_BIN exist and python3 (the reports) is present.
bench_prepare_binaries() {
    if [[ "$SKIP_BUILD" != 1 ]]; then
        log "building release binaries"
        cargo build --release -p pairdb-storage -p pairdb-bench
    fi
    local bin
    for bin in "$NODE_BIN" "$BENCH_BIN"; do
        [[ -x "$bin" ]] || { log "missing binary $bin"; exit 1; }
    done
    command -v python3 >/dev/null || { log "python3 is needed for the report"; exit 1; }
}

bench_install_trap() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

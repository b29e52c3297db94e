#!/usr/bin/env bash
# The load benchmark: the same ~1.3 KB authorization-server metadata document served by
# mcp-auth-edge, by nginx (`return 200` with the same headers) and by a bare hyper floor, each
# pinned to one core with wrk on the other, keep-alive. Prints requests/s, p99 latency and the
# server's CPU time per request (user+system from /proc/PID/stat over the requests wrk
# completed), medians of alternating rounds, with the edge's ratios to the other two.
#
#   bash benches/load.sh                      # 3 rounds of 6 s per server
#   ROUNDS=5 DURATION=10 bash benches/load.sh
#
# Settings (environment): ROUNDS (3), DURATION seconds per run (6), CONNECTIONS (50),
# WARMUP seconds per server before the rounds (2), BASE_PORT (18080; uses the next five ports
# too), SERVER_CPU (0), LOAD_CPU (1), EDGE_BIN (the release build; set it to compare another
# build of the edge against the same floor and nginx).
#
# Everything listens on 127.0.0.1; every process started here is stopped by PID on exit.
# On a shared machine absolute figures drift; compare the ratios of one run.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}
CONNECTIONS=${CONNECTIONS:-50}
WARMUP=${WARMUP:-2}
BASE_PORT=${BASE_PORT:-18080}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

EDGE_PORT=$((BASE_PORT + 1))
UPSTREAM_PORT=$((BASE_PORT + 2))
NGINX_PORT=$((BASE_PORT + 3))
FLOOR_PORT=$((BASE_PORT + 4))
ADMIN_PORT=$((BASE_PORT + 5))
ISSUER="http://127.0.0.1:$UPSTREAM_PORT"
DOC_PATH=/.well-known/oauth-authorization-server

cd "$(dirname "$0")/.."
ROOT=$PWD

die() {
    echo "load.sh: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is not installed; $2"
}
need wrk "install it with: sudo apt-get install wrk"
need nginx "install it with: sudo apt-get install nginx-light"
need taskset "install it with: sudo apt-get install util-linux"
need curl "install it with: sudo apt-get install curl"
need cargo "install Rust from https://rustup.rs"
[ "$(nproc)" -ge 2 ] || echo "load.sh: warning: fewer than 2 CPUs; server and wrk will share one" >&2

echo "== building release binaries" >&2
cargo build --release --quiet
cargo build --release --quiet --features floor --bin hyper-floor
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
EDGE_BIN=${EDGE_BIN:-$TARGET/release/mcp-auth-edge}
FLOOR_BIN=$TARGET/release/hyper-floor
[ -x "$EDGE_BIN" ] && [ -x "$FLOOR_BIN" ] || die "release binaries not found under $TARGET/release"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcp-auth-edge-load.XXXXXX")
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # Give each a moment to exit (nginx takes its worker with it), then insist.
    for _ in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a background process, logging to $WORK/NAME.log, and records its PID in $STARTED.
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
}

port_free() {
    ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null
}

# Waits up to 15 s for URL to answer 200.
wait_ok() {
    local url=$1 pid=$2 name=$3
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || die "$name exited; its log:$(printf '\n')$(cat "$WORK/$name.log")"
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)" = 200 ] && return 0
        sleep 0.1
    done
    die "$name did not answer 200 on $url within 15 s; its log:$(printf '\n')$(cat "$WORK/$name.log")"
}

for port in "$EDGE_PORT" "$UPSTREAM_PORT" "$NGINX_PORT" "$FLOOR_PORT" "$ADMIN_PORT"; do
    port_free "$port" || die "127.0.0.1:$port is in use; set BASE_PORT to another range"
done

# The document, its issuer the loopback upstream the edge relays it from.
sed "s|@ISSUER@|$ISSUER|g" "$ROOT/benches/fixtures/as-metadata.json.in" >"$WORK/metadata.json"
echo "== document: $(wc -c <"$WORK/metadata.json") bytes, issuer $ISSUER" >&2

# The edge's upstream: idle while the edge is under load, and kept off the server's core.
start upstream taskset -c "$LOAD_CPU" "$FLOOR_BIN" "127.0.0.1:$UPSTREAM_PORT" "$WORK/metadata.json"
wait_ok "$ISSUER$DOC_PATH" "$STARTED" upstream

start edge taskset -c "$SERVER_CPU" "$EDGE_BIN" --threads 1 \
    --listen "127.0.0.1:$EDGE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --resource "http://127.0.0.1:$EDGE_PORT/mcp" --auth-server "$ISSUER"
EDGE_PIDS=("$STARTED")
wait_ok "http://127.0.0.1:$ADMIN_PORT/readyz" "$STARTED" edge

start floor taskset -c "$SERVER_CPU" "$FLOOR_BIN" "127.0.0.1:$FLOOR_PORT" "$WORK/metadata.json"
FLOOR_PIDS=("$STARTED")
wait_ok "http://127.0.0.1:$FLOOR_PORT$DOC_PATH" "$STARTED" floor

# nginx gets the edge's entity tag so that all three send the same header bytes.
ETAG=$(curl -s -D - -o /dev/null "http://127.0.0.1:$EDGE_PORT$DOC_PATH" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "etag" { print $2 }')
[ -n "$ETAG" ] || die "the edge sent no ETag"
shopt -u patsub_replacement 2>/dev/null || true
CONF=$(<"$ROOT/benches/nginx/nginx.conf.in")
CONF=${CONF//@PREFIX@/$WORK/nginx}
CONF=${CONF//@PORT@/$NGINX_PORT}
CONF=${CONF//@ETAG@/$ETAG}
CONF=${CONF//@BODY@/$(<"$WORK/metadata.json")}
mkdir -p "$WORK/nginx"
printf '%s\n' "$CONF" >"$WORK/nginx/nginx.conf"
start nginx taskset -c "$SERVER_CPU" nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf"
NGINX_MASTER=$STARTED
wait_ok "http://127.0.0.1:$NGINX_PORT$DOC_PATH" "$STARTED" nginx
children_of() {
    local stat f
    for stat in /proc/[0-9]*/stat; do
        f=$(<"$stat") 2>/dev/null || continue
        read -r -a f <<<"${f##*) }"
        [ "${f[1]}" = "$1" ] && basename "$(dirname "$stat")"
    done
    return 0
}
# The worker may take a moment to appear after the master answers.
NGINX_WORKERS=
for _ in $(seq 50); do
    NGINX_WORKERS=$(children_of "$NGINX_MASTER")
    [ -n "$NGINX_WORKERS" ] && break
    sleep 0.1
done
[ -n "$NGINX_WORKERS" ] || die "nginx has no worker process"
# Recorded so that cleanup stops them even if the master is gone first.
for pid in $NGINX_WORKERS; do PIDS+=("$pid"); done
# shellcheck disable=SC2206
NGINX_PIDS=("$NGINX_MASTER" $NGINX_WORKERS)

SERVERS=(edge nginx floor)
declare -A URL=(
    [edge]="http://127.0.0.1:$EDGE_PORT$DOC_PATH"
    [nginx]="http://127.0.0.1:$NGINX_PORT$DOC_PATH"
    [floor]="http://127.0.0.1:$FLOOR_PORT$DOC_PATH"
)
declare -A LABEL=(
    [edge]="mcp-auth-edge (--threads 1)"
    [nginx]="nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), 1 worker, return 200"
    [floor]="bare hyper floor (current_thread)"
)
pids_of() {
    case $1 in
    edge) echo "${EDGE_PIDS[@]}" ;;
    nginx) echo "${NGINX_PIDS[@]}" ;;
    floor) echo "${FLOOR_PIDS[@]}" ;;
    esac
}

# Same status, body and discovery headers from each before anything is measured.
for s in "${SERVERS[@]}"; do
    status=$(curl -s -D "$WORK/$s.headers" -o "$WORK/$s.body" -w '%{http_code}' --max-time 5 "${URL[$s]}")
    [ "$status" = 200 ] || die "$s answered $status, not 200"
    cmp -s "$WORK/$s.body" "$WORK/metadata.json" || die "$s served a different body"
    for h in "etag: $ETAG" "cache-control: public, max-age=300" "access-control-allow-origin: *" \
        "content-type: application/json" "content-length: $(wc -c <"$WORK/metadata.json")"; do
        tr -d '\r' <"$WORK/$s.headers" | grep -qixF "$h" || die "$s lacks the header '$h'"
    done
done
echo "== all three answer 200 with the same body and headers" >&2

CLK_TCK=$(getconf CLK_TCK)

# utime + stime, in clock ticks, summed over the given processes (each figure already covers
# all of a process's threads).
cpu_ticks() {
    local total=0 pid stat
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat") || die "process $pid is gone"
        # Fields after the command name: state is the 3rd field of the line, utime the 14th.
        read -r -a f <<<"${stat##*) }"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# wrk latency like 812.00us, 1.23ms or 1.02s, in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

# Runs wrk against server $1 for $2 seconds; appends "server rps p99_ms cpu_us_per_req" to
# $WORK/results unless $3 is "warmup".
measure() {
    local s=$1 secs=$2 kind=${3:-round}
    local -a pids
    read -r -a pids <<<"$(pids_of "$s")"
    local before after out
    before=$(cpu_ticks "${pids[@]}")
    out=$WORK/wrk-$s.out
    timeout $((secs + 30)) taskset -c "$LOAD_CPU" \
        wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --latency "${URL[$s]}" >"$out" 2>&1 ||
        die "wrk against $s failed:$(printf '\n')$(cat "$out")"
    after=$(cpu_ticks "${pids[@]}")
    if grep -q 'Non-2xx\|Socket errors' "$out"; then
        die "wrk against $s saw errors or non-2xx answers:$(printf '\n')$(cat "$out")"
    fi
    local requests rps p99
    requests=$(awk '/requests in/ { print $1 }' "$out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p99=$(awk '$1 == "99%" { print $2 }' "$out")
    [ -n "$requests" ] && [ "$requests" -gt 0 ] && [ -n "$rps" ] && [ -n "$p99" ] ||
        die "could not read wrk's output for $s:$(printf '\n')$(cat "$out")"
    local cpu_us
    cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
    if [ "$kind" != warmup ]; then
        echo "$s $rps $(to_ms "$p99") $cpu_us $ROUND" >>"$WORK/results"
        printf '   %-6s %10.0f req/s  p99 %7.3f ms  %7.3f CPU us/req\n' "$s" "$rps" "$(to_ms "$p99")" "$cpu_us" >&2
    fi
}

echo "== warm-up: ${WARMUP}s each" >&2
for s in "${SERVERS[@]}"; do measure "$s" "$WARMUP" warmup; done

# The order rotates each round so that drift in the machine's load falls on each in turn.
: >"$WORK/results"
for r in $(seq "$ROUNDS"); do
    ROUND=$r
    echo "== round $r of $ROUNDS: wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency, server on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU" >&2
    for i in 0 1 2; do
        measure "${SERVERS[$(((i + r - 1) % 3))]}" "$DURATION"
    done
done

# Median of column $2 for server $1.
median() {
    awk -v s="$1" -v c="$2" '$1 == s { print $c }' "$WORK/results" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A RPS P99 CPU
for s in "${SERVERS[@]}"; do
    RPS[$s]=$(median "$s" 2)
    P99[$s]=$(median "$s" 3)
    CPU[$s]=$(median "$s" 4)
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# Median over rounds of the edge's CPU/req divided by server $1's in the same round: pairs
# measured seconds apart, so it is steadier than a ratio of medians when the machine's load
# drifts.
paired() {
    awk -v o="$1" '$1 == "edge" { e[$5] = $4 } $1 == o { x[$5] = $4 }
        END { for (r in e) if (r in x) print e[r] / x[r] }' "$WORK/results" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
echo "Document: $(wc -c <"$WORK/metadata.json") bytes. Server on CPU $SERVER_CPU (taskset), \`wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency\` on CPU $LOAD_CPU, keep-alive."
echo "Medians of $ROUNDS alternating rounds. CPU µs/req: the server's user+system time (/proc/PID/stat, all threads; nginx master and worker) over the requests wrk completed."
echo
echo "| server | requests/s | p99 | CPU µs/req | CPU/req ÷ floor | CPU/req ÷ nginx |"
echo "|---|---|---|---|---|---|"
for s in "${SERVERS[@]}"; do
    printf '| %s | %.0f | %.2f ms | %.2f | %s | %s |\n' "${LABEL[$s]}" "${RPS[$s]}" "${P99[$s]}" "${CPU[$s]}" \
        "$(ratio "${CPU[$s]}" "${CPU[floor]}")" "$(ratio "${CPU[$s]}" "${CPU[nginx]}")"
done
echo
vs_floor=$(paired floor)
vs_nginx=$(paired nginx)
echo "Edge CPU/req over the others, median of per-round ratios: ÷ floor $vs_floor, ÷ nginx $vs_nginx."
echo
floor_ok=$(awk -v r="$vs_floor" 'BEGIN { print (r <= 1.05) ? "met" : "missed" }')
nginx_ok=$(awk -v r="$vs_nginx" 'BEGIN { print (r <= 1.00) ? "met" : "missed" }')
echo "Bar (on the per-round ratios): edge CPU/req within 5% of the floor: $floor_ok ($vs_floor); at or below nginx: $nginx_ok ($vs_nginx)."

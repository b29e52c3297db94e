#!/usr/bin/env bash
# The load benchmark: whole processes under wrk, each pinned to one core with wrk on the other,
# keep-alive. Prints requests/s, p99 latency and the server's CPU time per request
# (user+system from /proc/PID/stat over the requests wrk completed), medians of alternating
# rounds, with ratios and the bars they are held to. Three scenarios:
#
#   discovery  the same ~1.3 KB authorization-server metadata document served by mcp-auth-edge,
#              by nginx (`return 200` with the same headers) and by a bare hyper floor;
#   challenge  the edge with --upstream answering `POST /mcp` without a token with its 401
#              challenge, beside a discovery GET on the same process;
#   forward    a JSON-RPC POST with a valid JWT through the edge (jwt mode, token cache warm)
#              and through nginx `proxy_pass`, both to the same echo MCP server.
#
#   bash benches/load.sh                      # all three, 3 rounds of 6 s per server
#   ROUNDS=5 DURATION=10 bash benches/load.sh
#   SCENARIOS=forward bash benches/load.sh
#
# Settings (environment): SCENARIOS ("discovery challenge forward"), ROUNDS (3), DURATION
# seconds per run (6), CONNECTIONS (50), WARMUP seconds per server before the rounds (2),
# BASE_PORT (18080; uses the next eleven ports too), SERVER_CPU (0), LOAD_CPU (1), EDGE_BIN
# (the release build; set it to compare another build of the edge against the same floor and
# nginx).
#
# Everything listens on 127.0.0.1; every process started here is stopped by PID on exit.
# On a shared machine absolute figures drift; compare the ratios of one run.
set -euo pipefail

SCENARIOS=${SCENARIOS:-discovery challenge forward}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}
CONNECTIONS=${CONNECTIONS:-50}
WARMUP=${WARMUP:-2}
BASE_PORT=${BASE_PORT:-18080}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

# discovery
EDGE_PORT=$((BASE_PORT + 1))
UPSTREAM_PORT=$((BASE_PORT + 2))
NGINX_PORT=$((BASE_PORT + 3))
FLOOR_PORT=$((BASE_PORT + 4))
ADMIN_PORT=$((BASE_PORT + 5))
# challenge and forward
AS_PORT=$((BASE_PORT + 6))
ECHO_PORT=$((BASE_PORT + 7))
GATE_PORT=$((BASE_PORT + 8))
GATE_ADMIN_PORT=$((BASE_PORT + 9))
PROXY_PORT=$((BASE_PORT + 10))
PRESENCE_PORT=$((BASE_PORT + 11))
ISSUER="http://127.0.0.1:$UPSTREAM_PORT"
DOC_PATH=/.well-known/oauth-authorization-server
# What an MCP client posts first after initialising; small, like most MCP calls.
RPC_BODY='{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

cd "$(dirname "$0")/.."
ROOT=$PWD

die() {
    echo "load.sh: $*" >&2
    exit 1
}

for s in $SCENARIOS; do
    case $s in
    discovery | challenge | forward) ;;
    *) die "unknown scenario '$s' in SCENARIOS; known: discovery challenge forward" ;;
    esac
done
wants() { [[ " $SCENARIOS " == *" $1 "* ]]; }

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

children_of() {
    local stat f
    for stat in /proc/[0-9]*/stat; do
        # A process may exit between the glob and the read.
        { f=$(<"$stat"); } 2>/dev/null || continue
        read -r -a f <<<"${f##*) }"
        [ "${f[1]}" = "$1" ] && basename "$(dirname "$stat")"
    done
    return 0
}

# Starts nginx NAME from the filled-in configuration $WORK/NAME/nginx.conf on SERVER_CPU,
# waits for URL to answer 200, and sets $NGINX_STARTED to its master and worker PIDs.
start_nginx() {
    local name=$1 url=$2 master workers=
    start "$name" taskset -c "$SERVER_CPU" nginx -p "$WORK/$name" -e "$WORK/$name/error.log" -c "$WORK/$name/nginx.conf"
    master=$STARTED
    wait_ok "$url" "$master" "$name"
    # The worker may take a moment to appear after the master answers.
    for _ in $(seq 50); do
        workers=$(children_of "$master")
        [ -n "$workers" ] && break
        sleep 0.1
    done
    [ -n "$workers" ] || die "$name has no worker process"
    # Recorded so that cleanup stops them even if the master is gone first.
    for pid in $workers; do PIDS+=("$pid"); done
    NGINX_STARTED="$master $workers"
}

for port in $(seq $((BASE_PORT + 1)) $((BASE_PORT + 11))); do
    port_free "$port" || die "127.0.0.1:$port is in use; set BASE_PORT to another range"
done

# What each measured target is: the URL wrk loads, the processes whose CPU time counts, a
# label for the tables, and, for POSTs, the wrk script and the status every answer must have.
declare -A URL LABEL TARGET_PIDS SCRIPT EXPECT AUX_PIDS
NGINX_VERSION=$(nginx -v 2>&1 | sed 's|.*nginx/||')
shopt -u patsub_replacement 2>/dev/null || true

# A wrk script for `POST $RPC_BODY` with the headers an MCP client sends, and an Authorization
# header when $2 is given. wrk builds the request once, as it does for a plain GET (no
# per-request Lua).
post_script() {
    local file=$1 auth=${2:-}
    {
        echo 'wrk.method = "POST"'
        echo "wrk.body = '$RPC_BODY'"
        echo 'wrk.headers["Content-Type"] = "application/json"'
        echo 'wrk.headers["Accept"] = "application/json, text/event-stream"'
        echo 'wrk.headers["MCP-Protocol-Version"] = "2025-06-18"'
        [ -z "$auth" ] || echo "wrk.headers[\"Authorization\"] = \"$auth\""
    } >"$file"
}

# Same status from curl as wrk will get; the body in $WORK/NAME.body, headers in NAME.headers.
probe() {
    local name=$1 expect=$2 url=$3
    shift 3
    local status
    status=$(curl -s -D "$WORK/$name.headers" -o "$WORK/$name.body" -w '%{http_code}' --max-time 5 "$@" "$url")
    [ "$status" = "$expect" ] || die "$name answered $status, not $expect:$(printf '\n')$(cat "$WORK/$name.body")"
}

if wants discovery; then
    # The document, its issuer the loopback upstream the edge relays it from.
    sed "s|@ISSUER@|$ISSUER|g" "$ROOT/benches/fixtures/as-metadata.json.in" >"$WORK/metadata.json"
    echo "== document: $(wc -c <"$WORK/metadata.json") bytes, issuer $ISSUER" >&2

    # The edge's upstream: idle while the edge is under load, and kept off the server's core.
    start upstream taskset -c "$LOAD_CPU" "$FLOOR_BIN" "127.0.0.1:$UPSTREAM_PORT" "$WORK/metadata.json"
    wait_ok "$ISSUER$DOC_PATH" "$STARTED" upstream

    start edge taskset -c "$SERVER_CPU" "$EDGE_BIN" --threads 1 \
        --listen "127.0.0.1:$EDGE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
        --resource "http://127.0.0.1:$EDGE_PORT/mcp" --auth-server "$ISSUER"
    TARGET_PIDS[edge]=$STARTED
    wait_ok "http://127.0.0.1:$ADMIN_PORT/readyz" "$STARTED" edge

    start floor taskset -c "$SERVER_CPU" "$FLOOR_BIN" "127.0.0.1:$FLOOR_PORT" "$WORK/metadata.json"
    TARGET_PIDS[floor]=$STARTED
    wait_ok "http://127.0.0.1:$FLOOR_PORT$DOC_PATH" "$STARTED" floor

    # nginx gets the edge's entity tag so that all three send the same header bytes.
    ETAG=$(curl -s -D - -o /dev/null "http://127.0.0.1:$EDGE_PORT$DOC_PATH" | tr -d '\r' |
        awk -F': ' 'tolower($1) == "etag" { print $2 }')
    [ -n "$ETAG" ] || die "the edge sent no ETag"
    CONF=$(<"$ROOT/benches/nginx/nginx.conf.in")
    CONF=${CONF//@PREFIX@/$WORK/nginx}
    CONF=${CONF//@PORT@/$NGINX_PORT}
    CONF=${CONF//@ETAG@/$ETAG}
    CONF=${CONF//@BODY@/$(<"$WORK/metadata.json")}
    mkdir -p "$WORK/nginx"
    printf '%s\n' "$CONF" >"$WORK/nginx/nginx.conf"
    start_nginx nginx "http://127.0.0.1:$NGINX_PORT$DOC_PATH"
    TARGET_PIDS[nginx]=$NGINX_STARTED

    URL[edge]="http://127.0.0.1:$EDGE_PORT$DOC_PATH"
    URL[nginx]="http://127.0.0.1:$NGINX_PORT$DOC_PATH"
    URL[floor]="http://127.0.0.1:$FLOOR_PORT$DOC_PATH"
    LABEL[edge]="mcp-auth-edge (--threads 1)"
    LABEL[nginx]="nginx $NGINX_VERSION, 1 worker, return 200"
    LABEL[floor]="bare hyper floor (current_thread)"

    # Same status, body and discovery headers from each before anything is measured.
    for s in edge nginx floor; do
        probe "$s" 200 "${URL[$s]}"
        cmp -s "$WORK/$s.body" "$WORK/metadata.json" || die "$s served a different body"
        for h in "etag: $ETAG" "cache-control: public, max-age=300" "access-control-allow-origin: *" \
            "content-type: application/json" "content-length: $(wc -c <"$WORK/metadata.json")"; do
            tr -d '\r' <"$WORK/$s.headers" | grep -qixF "$h" || die "$s lacks the header '$h'"
        done
    done
    echo "== discovery: all three answer 200 with the same body and headers" >&2
fi

if wants challenge || wants forward; then
    # The demo authorization server issues the tokens (EdDSA JWTs for the gated edge's
    # resource) and the demo echo MCP server answers what passes the gate. Both sit on the
    # load core: the authorization server is idle during the rounds, and the echo server must
    # not take CPU from the proxy being measured.
    GATE_RESOURCE="http://127.0.0.1:$GATE_PORT/mcp"
    AS_ISSUER="http://127.0.0.1:$AS_PORT"
    start demo-as taskset -c "$LOAD_CPU" "$FLOOR_BIN" demo-as "127.0.0.1:$AS_PORT" "$GATE_RESOURCE"
    wait_ok "$AS_ISSUER$DOC_PATH" "$STARTED" demo-as
    start echo taskset -c "$LOAD_CPU" "$FLOOR_BIN" echo "127.0.0.1:$ECHO_PORT"
    ECHO_PID=$STARTED
    # The echo server answers any request; wait_ok's GET is answered with a JSON-RPC null id.
    wait_ok "http://127.0.0.1:$ECHO_PORT/mcp" "$STARTED" echo

    # The gated edge: --upstream, tokens verified at the edge (jwt, the default).
    start gate taskset -c "$SERVER_CPU" "$EDGE_BIN" --threads 1 \
        --listen "127.0.0.1:$GATE_PORT" --admin-listen "127.0.0.1:$GATE_ADMIN_PORT" \
        --resource "$GATE_RESOURCE" --auth-server "$AS_ISSUER" --upstream "http://127.0.0.1:$ECHO_PORT"
    GATE_PID=$STARTED
    # Ready means the metadata and the JWKS are both loaded.
    wait_ok "http://127.0.0.1:$GATE_ADMIN_PORT/readyz" "$STARTED" gate
fi

if wants challenge; then
    post_script "$WORK/challenge.lua"
    # The discovery GET carries the headers an MCP client sends with it, as the POST does, so
    # that the two differ by what the paths do rather than by how many headers wrk sends.
    printf '%s\n' 'wrk.headers["Accept"] = "application/json"' 'wrk.headers["MCP-Protocol-Version"] = "2025-06-18"' \
        >"$WORK/discovery.lua"
    SCRIPT[gate-doc]=$WORK/discovery.lua
    URL[gate-doc]="http://127.0.0.1:$GATE_PORT$DOC_PATH"
    URL[gate-401]="$GATE_RESOURCE"
    TARGET_PIDS[gate-doc]=$GATE_PID
    TARGET_PIDS[gate-401]=$GATE_PID
    SCRIPT[gate-401]=$WORK/challenge.lua
    EXPECT[gate-401]=401
    probe gate-doc 200 "${URL[gate-doc]}" -H 'Accept: application/json' -H 'MCP-Protocol-Version: 2025-06-18'
    GATE_DOC_BYTES=$(wc -c <"$WORK/gate-doc.body")
    LABEL[gate-doc]="GET $DOC_PATH ($GATE_DOC_BYTES-byte document)"
    probe gate-401 401 "${URL[gate-401]}" -X POST -H 'Content-Type: application/json' --data-raw "$RPC_BODY"
    tr -d '\r' <"$WORK/gate-401.headers" | grep -qi '^www-authenticate: Bearer resource_metadata=' ||
        die "the edge's 401 carries no resource_metadata challenge"
    LABEL[gate-401]="POST /mcp without a token: 401 challenge"
    echo "== challenge: the gated edge answers the discovery GET 200 and POST /mcp without a token 401" >&2
fi

if wants forward; then
    TOKEN=$(curl -s --max-time 5 -d grant_type=client_credentials "$AS_ISSUER/token" |
        sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    [[ "$TOKEN" == *.*.* ]] || die "no token from the demo authorization server; its log:$(printf '\n')$(cat "$WORK/demo-as.log")"

    # The same edge binary in presence mode: the forwarding path without the token check, to
    # show what the check (a cache hit, once warm) adds.
    start presence taskset -c "$SERVER_CPU" "$EDGE_BIN" --threads 1 --listen "127.0.0.1:$PRESENCE_PORT" \
        --resource "http://127.0.0.1:$PRESENCE_PORT/mcp" --auth-server "$AS_ISSUER" \
        --upstream "http://127.0.0.1:$ECHO_PORT" --token-check presence
    TARGET_PIDS[presence-fwd]=$STARTED
    wait_ok "http://127.0.0.1:$PRESENCE_PORT$DOC_PATH" "$STARTED" presence

    CONF=$(<"$ROOT/benches/nginx/proxy.conf.in")
    CONF=${CONF//@PREFIX@/$WORK/nginx-proxy}
    CONF=${CONF//@PORT@/$PROXY_PORT}
    CONF=${CONF//@UPSTREAM_PORT@/$ECHO_PORT}
    mkdir -p "$WORK/nginx-proxy"
    printf '%s\n' "$CONF" >"$WORK/nginx-proxy/nginx.conf"
    start_nginx nginx-proxy "http://127.0.0.1:$PROXY_PORT/mcp"
    TARGET_PIDS[nginx-fwd]=$NGINX_STARTED

    post_script "$WORK/forward.lua" "Bearer $TOKEN"
    URL[edge-fwd]="$GATE_RESOURCE"
    URL[presence-fwd]="http://127.0.0.1:$PRESENCE_PORT/mcp"
    URL[nginx-fwd]="http://127.0.0.1:$PROXY_PORT/mcp"
    TARGET_PIDS[edge-fwd]=$GATE_PID
    LABEL[edge-fwd]="mcp-auth-edge (--threads 1), jwt: token verified, cached"
    LABEL[presence-fwd]="mcp-auth-edge (--threads 1), presence: token unchecked"
    LABEL[nginx-fwd]="nginx $NGINX_VERSION, 1 worker, proxy_pass, keepalive upstream"
    for s in edge-fwd presence-fwd nginx-fwd; do
        SCRIPT[$s]=$WORK/forward.lua
        AUX_PIDS[$s]=$ECHO_PID
        # The token travels the same way in each, and each gets the echo server's answer.
        probe "$s" 200 "${URL[$s]}" -X POST -H 'Content-Type: application/json' \
            -H "Authorization: Bearer $TOKEN" --data-raw "$RPC_BODY"
        grep -qF '"bearer_token_forwarded":true' "$WORK/$s.body" ||
            die "$s did not reach the echo server with the token:$(printf '\n')$(cat "$WORK/$s.body")"
        cmp -s "$WORK/$s.body" "$WORK/edge-fwd.body" || die "$s and the edge got different answers"
    done
    # The edge checks the token; nginx does not (it is the proxy floor, not a verifier).
    probe edge-forged 401 "$GATE_RESOURCE" -X POST -H 'Authorization: Bearer forged.not.signed' --data-raw "$RPC_BODY"
    probe nginx-forged 200 "${URL[nginx-fwd]}" -X POST -H 'Authorization: Bearer forged.not.signed' --data-raw "$RPC_BODY"
    echo "== forward: the token reaches the echo server through each proxy; the edge refuses a forged one, nginx passes it" >&2
fi

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

# Runs wrk against target $1 for $2 seconds; unless $3 is "warmup", appends
# "target rps p99_ms cpu_us_per_req round aux_cpu_us_per_req busy_percent" to $WORK/results.
measure() {
    local s=$1 secs=$2 kind=${3:-round}
    local -a pids aux=() script=()
    read -r -a pids <<<"${TARGET_PIDS[$s]}"
    [ -z "${AUX_PIDS[$s]:-}" ] || read -r -a aux <<<"${AUX_PIDS[$s]}"
    [ -z "${SCRIPT[$s]:-}" ] || script=(-s "${SCRIPT[$s]}")
    local before after aux_before=0 aux_after=0 out
    before=$(cpu_ticks "${pids[@]}")
    [ ${#aux[@]} = 0 ] || aux_before=$(cpu_ticks "${aux[@]}")
    out=$WORK/wrk-$s.out
    timeout $((secs + 30)) taskset -c "$LOAD_CPU" \
        wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --latency "${script[@]}" "${URL[$s]}" >"$out" 2>&1 ||
        die "wrk against $s failed:$(printf '\n')$(cat "$out")"
    after=$(cpu_ticks "${pids[@]}")
    [ ${#aux[@]} = 0 ] || aux_after=$(cpu_ticks "${aux[@]}")
    local requests rps p99 non2xx
    requests=$(awk '/requests in/ { print $1 }' "$out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p99=$(awk '$1 == "99%" { print $2 }' "$out")
    [ -n "$requests" ] && [ "$requests" -gt 0 ] && [ -n "$rps" ] && [ -n "$p99" ] ||
        die "could not read wrk's output for $s:$(printf '\n')$(cat "$out")"
    grep -q 'Socket errors' "$out" && die "wrk against $s saw socket errors:$(printf '\n')$(cat "$out")"
    # wrk counts any status outside 2xx as "Non-2xx or 3xx"; where 401 is expected (checked
    # with curl above), every answer must be one and none may be missing.
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    if [ "${EXPECT[$s]:-200}" = 200 ]; then
        [ -z "$non2xx" ] || die "wrk against $s saw non-2xx answers:$(printf '\n')$(cat "$out")"
    else
        [ "$non2xx" = "$requests" ] ||
            die "wrk against $s saw ${non2xx:-no} non-2xx answers of $requests, expected all ${EXPECT[$s]}:$(printf '\n')$(cat "$out")"
    fi
    local cpu_us aux_us=- busy
    cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
    [ ${#aux[@]} = 0 ] ||
        aux_us=$(awk -v t=$((aux_after - aux_before)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
    # The share of one core the server used: near 100 it was the bottleneck, well below it
    # waited on wrk (or, forwarding, on the upstream) on the other core.
    busy=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v s="$secs" 'BEGIN { printf "%.0f", t * 100 / hz / s }')
    if [ "$kind" != warmup ]; then
        echo "$s $rps $(to_ms "$p99") $cpu_us $ROUND $aux_us $busy" >>"$WORK/results"
        printf '   %-12s %10.0f req/s  p99 %7.3f ms  %7.3f CPU us/req  %3s%% busy\n' \
            "$s" "$rps" "$(to_ms "$p99")" "$cpu_us" "$busy" >&2
    fi
}

# Warms up each target, then measures them in ROUNDS rounds. The order rotates each round so
# that drift in the machine's load falls on each in turn.
run_scenario() {
    local name=$1
    shift
    local -a targets=("$@")
    local n=${#targets[@]} r i
    echo "== $name: warm-up, ${WARMUP}s each" >&2
    for s in "${targets[@]}"; do measure "$s" "$WARMUP" warmup; done
    for r in $(seq "$ROUNDS"); do
        ROUND=$r
        echo "== $name: round $r of $ROUNDS: wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency, server on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU" >&2
        for i in $(seq 0 $((n - 1))); do
            measure "${targets[$(((i + r - 1) % n))]}" "$DURATION"
        done
    done
}

: >"$WORK/results"
wants discovery && run_scenario discovery edge nginx floor
wants challenge && run_scenario challenge gate-doc gate-401
wants forward && run_scenario forward edge-fwd presence-fwd nginx-fwd

# Median of column $2 for target $1.
median() {
    awk -v s="$1" -v c="$2" '$1 == s { print $c }' "$WORK/results" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A RPS P99 CPU AUX BUSY
for s in "${!URL[@]}"; do
    RPS[$s]=$(median "$s" 2)
    P99[$s]=$(median "$s" 3)
    CPU[$s]=$(median "$s" 4)
    AUX[$s]=$(median "$s" 6)
    BUSY[$s]=$(median "$s" 7)
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
at_most() { awk -v r="$1" -v bar="$2" 'BEGIN { print (r <= bar) ? "met" : "missed" }'; }

# Median over rounds of target $1's CPU/req divided by target $2's in the same round: pairs
# measured seconds apart, so it is steadier than a ratio of medians when the machine's load
# drifts.
paired() {
    awk -v a="$1" -v b="$2" '$1 == a { x[$5] = $4 } $1 == b { y[$5] = $4 }
        END { for (r in x) if (r in y) print x[r] / y[r] }' "$WORK/results" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

SETUP="Server on CPU $SERVER_CPU (taskset), \`wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency\` on CPU $LOAD_CPU, keep-alive."

if wants discovery; then
    echo
    echo "### Discovery"
    echo
    echo "Document: $(wc -c <"$WORK/metadata.json") bytes. $SETUP"
    echo "Medians of $ROUNDS alternating rounds. CPU µs/req: the server's user+system time (/proc/PID/stat, all threads; nginx master and worker) over the requests wrk completed."
    echo
    echo "| server | requests/s | p99 | CPU µs/req | CPU/req ÷ floor | CPU/req ÷ nginx |"
    echo "|---|---|---|---|---|---|"
    for s in edge nginx floor; do
        printf '| %s | %.0f | %.2f ms | %.2f | %s | %s |\n' "${LABEL[$s]}" "${RPS[$s]}" "${P99[$s]}" "${CPU[$s]}" \
            "$(ratio "${CPU[$s]}" "${CPU[floor]}")" "$(ratio "${CPU[$s]}" "${CPU[nginx]}")"
    done
    echo
    vs_floor=$(paired edge floor)
    vs_nginx=$(paired edge nginx)
    echo "Edge CPU/req over the others, median of per-round ratios: ÷ floor $vs_floor, ÷ nginx $vs_nginx."
    echo
    echo "Bar (on the per-round ratios): edge CPU/req within 5% of the floor: $(at_most "$vs_floor" 1.05) ($vs_floor); at or below nginx: $(at_most "$vs_nginx" 1.00) ($vs_nginx)."
fi

if wants challenge; then
    echo
    echo "### The 401 challenge"
    echo
    echo "mcp-auth-edge --threads 1 with --upstream (jwt mode): \`POST /mcp\` with a ${#RPC_BODY}-byte JSON-RPC body and no Authorization, answered with the 401 challenge, beside a discovery GET on the same process. Both carry an MCP client's headers (\`Accept\`, \`MCP-Protocol-Version\`; the POST also \`Content-Type\`). $SETUP"
    echo "Medians of $ROUNDS alternating rounds; CPU µs/req as above."
    echo
    echo "| request | status | requests/s | p99 | CPU µs/req | CPU/req ÷ discovery |"
    echo "|---|---|---|---|---|---|"
    for s in gate-doc gate-401; do
        printf '| %s | %s | %.0f | %.2f ms | %.2f | %s |\n' "${LABEL[$s]}" "${EXPECT[$s]:-200}" "${RPS[$s]}" \
            "${P99[$s]}" "${CPU[$s]}" "$(ratio "${CPU[$s]}" "${CPU[gate-doc]}")"
    done
    echo
    vs_doc=$(paired gate-401 gate-doc)
    echo "Bar (on the per-round ratios): 401 CPU/req within 5% of the discovery GET's: $(at_most "$vs_doc" 1.05) ($vs_doc)."
fi

if wants forward; then
    echo
    echo "### Forwarding"
    echo
    echo "\`POST /mcp\` with a ${#RPC_BODY}-byte JSON-RPC body and a valid bearer JWT (EdDSA, ${#TOKEN} characters, from the demo authorization server), forwarded to the demo echo MCP server (one process, current_thread, on CPU $LOAD_CPU beside wrk; the same process behind every proxy). $SETUP"
    echo "The edge in jwt mode verifies the token (signature once, then from its cache); nginx passes it unchecked: it is the plain proxy floor, not a verifier. CPU µs/req and busy: the proxy's only; upstream: the echo server's. Medians of $ROUNDS alternating rounds."
    echo
    echo "| proxy | requests/s | p99 | proxy CPU µs/req | proxy busy | upstream CPU µs/req | CPU/req ÷ nginx |"
    echo "|---|---|---|---|---|---|---|"
    for s in edge-fwd presence-fwd nginx-fwd; do
        printf '| %s | %.0f | %.2f ms | %.2f | %s%% | %.2f | %s |\n' "${LABEL[$s]}" "${RPS[$s]}" "${P99[$s]}" \
            "${CPU[$s]}" "${BUSY[$s]}" "${AUX[$s]}" "$(ratio "${CPU[$s]}" "${CPU[nginx-fwd]}")"
    done
    echo
    fwd_nginx=$(paired edge-fwd nginx-fwd)
    fwd_presence=$(paired edge-fwd presence-fwd)
    echo "Edge (jwt) CPU/req, median of per-round ratios: ÷ nginx $fwd_nginx, ÷ presence mode $fwd_presence."
    echo
    echo "Bar (on the per-round ratios): edge CPU/req, token checked, at or below nginx's: $(at_most "$fwd_nginx" 1.00) ($fwd_nginx)."
fi

#!/usr/bin/env bash
# The held-streams benchmark: how much memory one held MCP event stream costs a proxy.
#
# STREAMS event streams (GET /mcp, Accept: text/event-stream, a valid bearer JWT) are opened
# through mcp-auth-edge (jwt mode, --threads 1) and through nginx (one worker,
# `proxy_buffering off`, benches/nginx/streams.conf.in), both to the same loopback stand-in
# (`hyper-floor sse`), which sends one event at once and one more when released. Once every
# stream has its first event, the holder (`hyper-floor hold`) waits QUIET seconds, reads the
# proxy's memory (VmRSS from /proc/PID/status, and Pss from smaps_rollup; nginx's master and
# worker summed), releases the late event and checks that every stream delivers it. Each proxy
# is started afresh for each row, so "before" is a proxy that has held nothing.
#
# Rows (ROWS, all by default):
#   h1      HTTP/1.1, one stream per connection, cleartext
#   h2      HTTP/2 with prior knowledge (h2c), H2_PER_CONN streams on each connection
#   h1-tls  HTTP/1.1 over TLS 1.3 (a throwaway self-signed P-256 certificate, ALPN http/1.1)
#   h2-tls  HTTP/2 over TLS 1.3 (ALPN h2), H2_PER_CONN streams on each connection
#
#   bash benches/streams.sh
#   STREAMS=1000 QUIET=5 ROWS="h1 h2" bash benches/streams.sh
#
# Settings (environment): STREAMS (4000), H2_PER_CONN (100; both servers allow 128), QUIET
# seconds (10), ROWS, PROXIES ("edge nginx"; one alone, to iterate on it), BASE_PORT (18180; uses the next four too), SERVER_CPU (0), LOAD_CPU (1),
# EDGE_BIN (the release build). The edge runs with --max-connections STREAMS + 64 so that its
# limit never pauses the benchmark's own connections.
#
# Printed: KiB per held stream ((held - before) / STREAMS) for each proxy and row, and the
# edge's over nginx's, with the bar it is held to (at most 0.8). Everything listens on
# 127.0.0.1; every process started here is stopped by PID on exit.
set -euo pipefail

STREAMS=${STREAMS:-4000}
H2_PER_CONN=${H2_PER_CONN:-100}
QUIET=${QUIET:-10}
ROWS=${ROWS:-h1 h2 h1-tls h2-tls}
PROXIES=${PROXIES:-edge nginx}
BASE_PORT=${BASE_PORT:-18180}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BAR=0.8

EDGE_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))
NGINX_PORT=$((BASE_PORT + 3))
AS_PORT=$((BASE_PORT + 4))
SSE_PORT=$((BASE_PORT + 5))
DOC_PATH=/.well-known/oauth-authorization-server

cd "$(dirname "$0")/.."
ROOT=$PWD
SCRIPT=streams.sh
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"

for r in $ROWS; do
    case $r in
    h1 | h2 | h1-tls | h2-tls) ;;
    *) die "unknown row '$r' in ROWS; known: h1 h2 h1-tls h2-tls" ;;
    esac
done
need nginx "install it with: sudo apt-get install nginx-light"
need taskset "install it with: sudo apt-get install util-linux"
need curl "install it with: sudo apt-get install curl"
need openssl "install it with: sudo apt-get install openssl"
need cargo "install Rust from https://rustup.rs"
# Each stream is a socket in the holder, in the proxy and in the stand-in (two in the proxy on
# HTTP/1.1).
files=$(ulimit -n)
[ "$files" = unlimited ] || [ "$files" -ge $((3 * STREAMS + 2048)) ] ||
    die "ulimit -n is $files; $((3 * STREAMS + 2048)) open files are needed for $STREAMS streams (raise it, or lower STREAMS)"

build_binaries
make_work streams
for port in $(seq $((BASE_PORT + 1)) $((BASE_PORT + 5))); do
    port_free "$port" || die "127.0.0.1:$port is in use; set BASE_PORT to another range"
done

# A throwaway certificate for both proxies' TLS rows, as in load.sh, marked as no CA: the
# holder's rustls refuses a CA certificate as a server's own, but trusts this one directly.
mkdir -p "$WORK/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" \
    >"$WORK/openssl.log" 2>&1 || die "openssl could not make a certificate:$(printf '\n')$(cat "$WORK/openssl.log")"

# The token issuer and the MCP stand-in sit on the load core with the holder.
RESOURCE="http://127.0.0.1:$EDGE_PORT/mcp"
AS_ISSUER="http://127.0.0.1:$AS_PORT"
start demo-as taskset -c "$LOAD_CPU" "$FLOOR_BIN" demo-as "127.0.0.1:$AS_PORT" "$RESOURCE"
wait_ok "$AS_ISSUER$DOC_PATH" "$STARTED" demo-as
start sse taskset -c "$LOAD_CPU" "$FLOOR_BIN" sse "127.0.0.1:$SSE_PORT"
for _ in $(seq 50); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$SSE_PORT/" -X OPTIONS && break
    sleep 0.1
done
TOKEN=$(curl -s --max-time 5 -d grant_type=client_credentials "$AS_ISSUER/token" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ "$TOKEN" == *.*.* ]] || die "no token from the demo authorization server; its log:$(printf '\n')$(cat "$WORK/demo-as.log")"

# Stops the processes given by PID and waits for them to go.
stop() {
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 100); do
        local alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && return 0
        sleep 0.1
    done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
}

children_of() {
    local stat f
    for stat in /proc/[0-9]*/stat; do
        { f=$(<"$stat"); } 2>/dev/null || continue
        read -r -a f <<<"${f##*) }"
        [ "${f[1]}" = "$1" ] && basename "$(dirname "$stat")"
    done
    return 0
}

# Runs the holder against URL for row $1, proxy $2, measuring PIDS ($3, comma-separated);
# appends "row proxy figures..." to $WORK/results.
hold() {
    local row=$1 proxy=$2 pids=$3 url=$4 per_conn=1 ca=- out
    [[ $row == h2* ]] && per_conn=$H2_PER_CONN
    [[ $row == *-tls ]] && ca=$WORK/tls/cert.pem
    out=$(timeout $((QUIET + 300)) taskset -c "$LOAD_CPU" "$FLOOR_BIN" hold "url=$url" "streams=$STREAMS" \
        "per-conn=$per_conn" "token=$TOKEN" "ca=$ca" "quiet=$QUIET" "pids=$pids" \
        "release=http://127.0.0.1:$SSE_PORT/release" 2>"$WORK/hold.err") ||
        die "holding streams through $proxy ($row) failed: $(cat "$WORK/hold.err")$(printf '\n')$(tail -n 5 "$WORK/$proxy-$row.log" "$WORK/nginx-$row/error.log" 2>/dev/null)"
    echo "== $row $proxy: $out" >&2
    echo "$row $proxy $out" >>"$WORK/results"
    # Memory is only worth comparing for streams that still work.
    [[ " $out " == *" delivered=$STREAMS "* ]] || die "not every stream through $proxy ($row) delivered its late event: $out"
}

: >"$WORK/results"
for row in $ROWS; do
    scheme=http
    tls_flags=()
    listen=""
    if [[ $row == *-tls ]]; then
        scheme=https
        tls_flags=(--tls-cert "$WORK/tls/cert.pem" --tls-key "$WORK/tls/key.pem")
        listen="ssl"
    fi
    [[ $row == h2* ]] && listen="$listen http2"

    if [[ " $PROXIES " == *" edge "* ]]; then
        start "edge-$row" taskset -c "$SERVER_CPU" "$EDGE_BIN" --threads 1 \
            --listen "127.0.0.1:$EDGE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
            --resource "$RESOURCE" --auth-server "$AS_ISSUER" --upstream "http://127.0.0.1:$SSE_PORT" \
            --max-connections $((STREAMS + 64)) "${tls_flags[@]}"
        edge=$STARTED
        wait_ok "http://127.0.0.1:$ADMIN_PORT/readyz" "$edge" "edge-$row"
        hold "$row" edge "$edge" "$scheme://127.0.0.1:$EDGE_PORT/mcp"
        stop "$edge"
    fi
    [[ " $PROXIES " == *" nginx "* ]] || continue

    conf=$(<"$ROOT/benches/nginx/streams.conf.in")
    conf=${conf//@PREFIX@/$WORK/nginx-$row}
    conf=${conf//@PORT@/$NGINX_PORT}
    conf=${conf//@LISTEN@/$listen}
    conf=${conf//@UPSTREAM_PORT@/$SSE_PORT}
    conf=${conf//@CONNECTIONS@/$((3 * STREAMS + 1024))}
    conf=${conf//@FILES@/$((3 * STREAMS + 2048))}
    conf=${conf//@CERT@/$WORK/tls/cert.pem}
    conf=${conf//@KEY@/$WORK/tls/key.pem}
    mkdir -p "$WORK/nginx-$row"
    printf '%s\n' "$conf" >"$WORK/nginx-$row/nginx.conf"
    start "nginx-$row" taskset -c "$SERVER_CPU" nginx -p "$WORK/nginx-$row" -e "$WORK/nginx-$row/error.log" \
        -c "$WORK/nginx-$row/nginx.conf"
    master=$STARTED
    workers=
    for _ in $(seq 50); do
        kill -0 "$master" 2>/dev/null || die "nginx exited; its log:$(printf '\n')$(cat "$WORK/nginx-$row.log" "$WORK/nginx-$row/error.log" 2>/dev/null)"
        workers=$(children_of "$master")
        [ -n "$workers" ] && break
        sleep 0.1
    done
    [ -n "$workers" ] || die "nginx has no worker process"
    for pid in $workers; do PIDS+=("$pid"); done
    # shellcheck disable=SC2086 # one PID per word
    hold "$row" nginx "$(echo "$master" $workers | tr ' ' ',')" "$scheme://127.0.0.1:$NGINX_PORT/mcp"
    # shellcheck disable=SC2086
    stop "$master" $workers
done

# Figure $3 (a key of the holder's line) for row $1, proxy $2.
figure() {
    awk -v r="$1" -v p="$2" -v k="$3" '$1 == r && $2 == p {
        for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$WORK/results"
}
per_stream() {
    [ -n "$(figure "$1" "$2" "${3}_held_kib")" ] || { echo "-"; return; }
    awk -v a="$(figure "$1" "$2" "${3}_held_kib")" -v b="$(figure "$1" "$2" "${3}_before_kib")" -v n="$STREAMS" \
        'BEGIN { printf "%.1f", (a - b) / n }'
}
describe() {
    case $1 in
    h1) echo "HTTP/1.1, one stream per connection" ;;
    h2) echo "HTTP/2 (h2c), $H2_PER_CONN streams per connection" ;;
    h1-tls) echo "HTTP/1.1 over TLS 1.3" ;;
    h2-tls) echo "HTTP/2 over TLS 1.3, $H2_PER_CONN streams per connection" ;;
    esac
}

NGINX_VERSION=$(nginx -v 2>&1 | sed 's|.*nginx/||')
echo
echo "### Held event streams"
echo
echo "$STREAMS event streams held through each proxy to the same loopback stand-in, quiet for ${QUIET}s, then one more event released and delivered on every stream. mcp-auth-edge: \`--threads 1\`, jwt mode (EdDSA token verified); nginx $NGINX_VERSION: one worker, \`proxy_buffering off\`. Proxy on CPU $SERVER_CPU, holder and stand-in on CPU $LOAD_CPU. KiB per stream: (memory held - memory before) / streams; RSS from /proc/PID/status VmRSS, PSS from smaps_rollup (nginx: master and worker)."
echo
echo "| row | edge KiB/stream (RSS) | nginx KiB/stream (RSS) | edge ÷ nginx (RSS) | edge ÷ nginx (PSS) | late event delivered (edge, nginx) | bar ≤ $BAR |"
echo "|---|---|---|---|---|---|---|"
for row in $ROWS; do
    e=$(per_stream "$row" edge rss)
    n=$(per_stream "$row" nginx rss)
    ep=$(per_stream "$row" edge pss)
    np=$(per_stream "$row" nginx pss)
    ratio=$(awk -v a="$e" -v b="$n" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "-" }')
    pratio=$(awk -v a="$ep" -v b="$np" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "-" }')
    met=$(awk -v r="$ratio" -v bar="$BAR" 'BEGIN { print (r == "-") ? "-" : (r <= bar) ? "met" : "missed" }')
    printf '| %s | %s | %s | %s | %s | %s, %s of %s | %s |\n' "$(describe "$row")" "$e" "$n" "$ratio" "$pratio" \
        "$(figure "$row" edge delivered)" "$(figure "$row" nginx delivered)" "$STREAMS" "$met"
done

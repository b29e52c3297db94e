#!/usr/bin/env bash
# The soak benchmark (not a test): the edge in gate mode under steady load for a minute or
# more, watching for errors and for memory that keeps growing. The edge (--threads 1, jwt
# token check, --upstream the demo echo MCP server) is pinned to one core, wrk and the echo and
# authorization servers to the other, as in benches/load.sh's forward scenario. wrk (keep-alive)
# cycles through four requests:
#
#   GET  /.well-known/oauth-authorization-server       the relayed document, answered at the edge
#   POST /mcp with a valid JWT                         verified (cached), forwarded to the echo server
#   GET  /.well-known/oauth-protected-resource/mcp     the RFC 9728 document
#   POST /mcp with a valid JWT                         again: half of all requests are forwarded
#
# and every CLOSE_EVERY-th request is a forwarded POST with `Connection: close`, so that
# connections are also opened and closed throughout (wrk reconnects after it).
#
# After WARMUP seconds of the same load, the edge's resident memory (VmRSS from
# /proc/PID/status) is the start figure; it is sampled every SAMPLE_SECS during the SOAK_SECS
# run and once more after it. The script prints the total requests, wrk's socket errors and
# non-2xx answers, requests/s, latency, RSS at rest, at start, at its maximum and at the end,
# the growth, the open file descriptors, and the edge's /metrics counters of interest. It
# exits non-zero if wrk saw any socket error or non-2xx answer, if the edge counted upstream
# errors or timeouts, or if RSS rose more than RSS_BOUND_MIB above its start figure at any
# sample.
#
#   bash benches/soak.sh                      # 60 s
#   SOAK_SECS=600 bash benches/soak.sh
#   EDGE_ARGS="--access-log /tmp/soak-access.log" bash benches/soak.sh
#
# Settings (environment): SOAK_SECS (60; with WARMUP at most 3000: the token lives an hour),
# WARMUP seconds (5), SAMPLE_SECS (5), CONNECTIONS (50), CLOSE_EVERY (100; 0: never close),
# RSS_BOUND_MIB (10), BASE_PORT (18180; uses the next four ports too), SERVER_CPU (0), LOAD_CPU
# (1), EDGE_BIN (the release build), EDGE_ARGS (more flags for the edge, split on spaces).
#
# Everything listens on 127.0.0.1; every process started here is stopped by PID on exit.
set -euo pipefail

SOAK_SECS=${SOAK_SECS:-60}
WARMUP=${WARMUP:-5}
SAMPLE_SECS=${SAMPLE_SECS:-5}
CONNECTIONS=${CONNECTIONS:-50}
CLOSE_EVERY=${CLOSE_EVERY:-100}
RSS_BOUND_MIB=${RSS_BOUND_MIB:-10}
BASE_PORT=${BASE_PORT:-18180}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
read -r -a EDGE_EXTRA <<<"${EDGE_ARGS:-}"

AS_PORT=$((BASE_PORT + 1))
ECHO_PORT=$((BASE_PORT + 2))
EDGE_PORT=$((BASE_PORT + 3))
ADMIN_PORT=$((BASE_PORT + 4))
RESOURCE="http://127.0.0.1:$EDGE_PORT/mcp"
AS_ISSUER="http://127.0.0.1:$AS_PORT"
DOC_PATH=/.well-known/oauth-authorization-server
PRM_PATH=/.well-known/oauth-protected-resource/mcp
# What an MCP client posts first after initialising; small, like most MCP calls.
RPC_BODY='{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

cd "$(dirname "$0")/.."
ROOT=$PWD
SCRIPT=soak.sh
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"

for v in SOAK_SECS WARMUP SAMPLE_SECS CONNECTIONS CLOSE_EVERY RSS_BOUND_MIB; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
[ "$SOAK_SECS" -ge 1 ] && [ "$SAMPLE_SECS" -ge 1 ] && [ "$CONNECTIONS" -ge 1 ] ||
    die "SOAK_SECS, SAMPLE_SECS and CONNECTIONS must be at least 1"
# The demo authorization server's tokens are valid for an hour; past that, answers are 401.
[ $((WARMUP + SOAK_SECS)) -le 3000 ] || die "WARMUP + SOAK_SECS must stay under 3000 s (the token lives an hour)"

need wrk "install it with: sudo apt-get install wrk"
need taskset "install it with: sudo apt-get install util-linux"
need curl "install it with: sudo apt-get install curl"
need cargo "install Rust from https://rustup.rs"
[ "$(nproc)" -ge 2 ] || echo "soak.sh: warning: fewer than 2 CPUs; the edge and wrk will share one" >&2

build_binaries
make_work soak

for port in $(seq $((BASE_PORT + 1)) $((BASE_PORT + 4))); do
    port_free "$port" || die "127.0.0.1:$port is in use; set BASE_PORT to another range"
done

# The demo authorization server (EdDSA JWTs for the edge's resource) and the echo MCP server,
# both on the load core so that they take no CPU from the edge.
start demo-as taskset -c "$LOAD_CPU" "$FLOOR_BIN" demo-as "127.0.0.1:$AS_PORT" "$RESOURCE"
wait_ok "$AS_ISSUER$DOC_PATH" "$STARTED" demo-as
start echo taskset -c "$LOAD_CPU" "$FLOOR_BIN" echo "127.0.0.1:$ECHO_PORT"
wait_ok "http://127.0.0.1:$ECHO_PORT/mcp" "$STARTED" echo

start edge taskset -c "$SERVER_CPU" "$EDGE_BIN" --threads 1 \
    --listen "127.0.0.1:$EDGE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --resource "$RESOURCE" --auth-server "$AS_ISSUER" --upstream "http://127.0.0.1:$ECHO_PORT" "${EDGE_EXTRA[@]}"
EDGE_PID=$STARTED
# Ready means the metadata and the JWKS are both loaded.
wait_ok "http://127.0.0.1:$ADMIN_PORT/readyz" "$EDGE_PID" edge

TOKEN=$(curl -s --max-time 5 -d grant_type=client_credentials "$AS_ISSUER/token" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ "$TOKEN" == *.*.* ]] || die "no token from the demo authorization server; its log:$(printf '\n')$(cat "$WORK/demo-as.log")"

# Each request of the mix answers 200 before any load; a forged token does not pass.
probe doc 200 "http://127.0.0.1:$EDGE_PORT$DOC_PATH"
probe prm 200 "http://127.0.0.1:$EDGE_PORT$PRM_PATH"
probe forward 200 "$RESOURCE" -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" --data-raw "$RPC_BODY"
grep -qF '"bearer_token_forwarded":true' "$WORK/forward.body" ||
    die "the POST did not reach the echo server with the token:$(printf '\n')$(cat "$WORK/forward.body")"
probe forged 401 "$RESOURCE" -X POST -H 'Authorization: Bearer forged.not.signed' --data-raw "$RPC_BODY"

# The request mix. Requests are formatted once, in init; request() only picks one.
cat >"$WORK/soak.lua" <<EOF
local close_every = $CLOSE_EVERY
local requests = {}
local closing
local n = 0

function init(args)
    local get = { ["Accept"] = "application/json", ["MCP-Protocol-Version"] = "2025-06-18" }
    local post = {
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/json, text/event-stream",
        ["MCP-Protocol-Version"] = "2025-06-18",
        ["Authorization"] = "Bearer $TOKEN",
    }
    local body = '$RPC_BODY'
    requests[1] = wrk.format("GET", "$DOC_PATH", get)
    requests[2] = wrk.format("POST", "/mcp", post, body)
    requests[3] = wrk.format("GET", "$PRM_PATH", get)
    requests[4] = requests[2]
    post["Connection"] = "close"
    closing = wrk.format("POST", "/mcp", post, body)
end

function request()
    n = n + 1
    if close_every > 0 and n % close_every == 0 then
        return closing
    end
    return requests[n % 4 + 1]
end
EOF

# Runs wrk with the mix for $1 seconds in the background, its output in $WORK/wrk-$2.log;
# sets $WRK_PID.
run_wrk() {
    start "wrk-$2" timeout $(($1 + 30)) taskset -c "$LOAD_CPU" \
        wrk -t1 -c"$CONNECTIONS" -d"$1s" --latency -s "$WORK/soak.lua" "http://127.0.0.1:$EDGE_PORT"
    WRK_PID=$STARTED
}

# wrk's figures from $WORK/NAME.log: "requests rps p99 socket_errors non2xx".
wrk_figures() {
    local out=$WORK/$1.log
    awk '/requests in/ { r = $1 } /^Requests\/sec:/ { rps = $2 } $1 == "99%" { p99 = $2 }
        /Socket errors:/ { gsub(/,/, ""); e = $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { x = $NF }
        END { if (r == "" || rps == "") exit 1; print r, rps, p99, e + 0, x + 0 }' "$out" ||
        die "could not read wrk's output:$(printf '\n')$(cat "$out")"
}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$EDGE_PID/status" || die "the edge (PID $EDGE_PID) is gone"
}
fds() {
    local n
    n=$(find "/proc/$EDGE_PID/fd" -mindepth 1 -maxdepth 1 | wc -l) || die "the edge (PID $EDGE_PID) is gone"
    echo "$n"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

RSS_REST=$(rss_kib)
FDS_REST=$(fds)
echo "== edge at rest: RSS $(mib "$RSS_REST") MiB, $FDS_REST file descriptors" >&2

echo "== warm-up: ${WARMUP}s of the mix, wrk -t1 -c$CONNECTIONS on CPU $LOAD_CPU, the edge on CPU $SERVER_CPU" >&2
if [ "$WARMUP" -gt 0 ]; then
    run_wrk "$WARMUP" warmup
    wait "$WRK_PID" || die "wrk's warm-up failed:$(printf '\n')$(cat "$WORK/wrk-warmup.log")"
    figures=$(wrk_figures wrk-warmup)
    read -r W_REQ _ _ W_ERR W_NON2XX <<<"$figures"
else
    W_REQ=0 W_ERR=0 W_NON2XX=0
fi

RSS_START=$(rss_kib)
RSS_MAX=$RSS_START
echo "== soak: ${SOAK_SECS}s; RSS sampled every ${SAMPLE_SECS}s" >&2
printf '   %6s  %9s\n' "t (s)" "RSS (MiB)" >&2
printf '   %6d  %9s\n' 0 "$(mib "$RSS_START")" >&2
SAMPLES="0:$RSS_START"
SOAK_T0=$SECONDS
run_wrk "$SOAK_SECS" soak
# Samples on the SAMPLE_SECS grid while wrk runs (bounded by wrk's own timeout).
next=$SAMPLE_SECS
while kill -0 "$WRK_PID" 2>/dev/null; do
    sleep 0.2
    elapsed=$((SECONDS - SOAK_T0))
    [ "$elapsed" -ge "$next" ] && [ "$elapsed" -le "$SOAK_SECS" ] || continue
    rss=$(rss_kib)
    [ "$rss" -le "$RSS_MAX" ] || RSS_MAX=$rss
    SAMPLES+=" $elapsed:$rss"
    printf '   %6d  %9s\n' "$elapsed" "$(mib "$rss")" >&2
    next=$((next + SAMPLE_SECS))
done
wait "$WRK_PID" || die "wrk failed:$(printf '\n')$(cat "$WORK/wrk-soak.log")"
RSS_END=$(rss_kib)
[ "$RSS_END" -le "$RSS_MAX" ] || RSS_MAX=$RSS_END
printf '   %6s  %9s\n' end "$(mib "$RSS_END")" >&2
figures=$(wrk_figures wrk-soak)
read -r S_REQ S_RPS S_P99 S_ERR S_NON2XX <<<"$figures"

# The edge closes a connection when wrk's side closes; give it a moment before counting.
sleep 1
FDS_END=$(fds)
# Connections to the MCP server still open (the pool keeps them for the next requests).
POOLED="?"
! command -v ss >/dev/null 2>&1 || POOLED=$(ss -Htn state established "( dport = :$ECHO_PORT )" | wc -l)
METRICS=$(curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics") || die "no /metrics from the admin listener"
metric_sum() {
    awk -v re="$1" '$0 ~ re { n += $NF } END { printf "%d", n }' <<<"$METRICS"
}
UPSTREAM_ERRORS=$(metric_sum '^mcp_auth_edge_upstream_(errors|timeouts)_total ')
COUNTED=$(metric_sum '^mcp_auth_edge_requests_total[{]')

GROWTH=$((RSS_END - RSS_START))
PEAK_GROWTH=$((RSS_MAX - RSS_START))
BOUND_KIB=$((RSS_BOUND_MIB * 1024))
ERRORS=$((W_ERR + W_NON2XX + S_ERR + S_NON2XX))

echo
echo "### Soak"
echo
echo "mcp-auth-edge --threads 1 with --upstream (jwt mode)${EDGE_ARGS:+ and $EDGE_ARGS} on CPU $SERVER_CPU; \`wrk -t1 -c$CONNECTIONS -d${SOAK_SECS}s\` on CPU $LOAD_CPU (with the echo MCP server and the authorization server) cycling a discovery GET, a forwarded POST /mcp with a valid JWT, the RFC 9728 GET and the POST again$([ "$CLOSE_EVERY" = 0 ] || echo ", every ${CLOSE_EVERY}th request closing its connection"), after ${WARMUP}s of warm-up."
echo
echo "| figure | value |"
echo "|---|---|"
echo "| requests (soak) | $S_REQ |"
echo "| requests/s | $(printf '%.0f' "$S_RPS") |"
echo "| p99 | $S_P99 |"
echo "| socket errors (warm-up + soak) | $((W_ERR + S_ERR)) |"
echo "| non-2xx answers (warm-up + soak) | $((W_NON2XX + S_NON2XX)) |"
echo "| upstream errors + timeouts (/metrics) | $UPSTREAM_ERRORS |"
echo "| RSS at rest, before any load | $(mib "$RSS_REST") MiB |"
echo "| RSS at start, after ${WARMUP}s warm-up ($W_REQ requests) | $(mib "$RSS_START") MiB |"
echo "| RSS max (samples every ${SAMPLE_SECS}s) | $(mib "$RSS_MAX") MiB |"
echo "| RSS at end | $(mib "$RSS_END") MiB |"
echo "| growth, end − start | $GROWTH KiB |"
echo "| growth, max − start | $PEAK_GROWTH KiB (bound: $RSS_BOUND_MIB MiB) |"
echo "| file descriptors at rest / after the soak | $FDS_REST / $FDS_END ($POOLED of them connections to the MCP server, kept by the pool) |"
echo
echo "RSS samples (s:KiB): $SAMPLES end:$RSS_END"
echo
echo "Requests the edge counted, all routes: $COUNTED (wrk: $((W_REQ + S_REQ)); the edge also counts the probes and the requests in flight when each wrk run stopped). From /metrics:"
echo
echo '```'
# Counters and gauges of interest, and the histograms' sums and counts (not their buckets).
grep -E '^mcp_auth_edge_(requests_total|request_duration_seconds_(sum|count)|upstream_[a-z_]+|token_[a-z_]+|jwks_[a-z_]+|access_log_[a-z_]+|limit_hits_total|connections_open)[{ ]' <<<"$METRICS" |
    grep -v '_bucket[{ ]' || true
echo '```'
echo
# Mean time to the response head by route and class, from the histograms, where present.
MEANS=$(awk '/^mcp_auth_edge_(request|upstream)_duration_seconds_(sum|count)[{ ]/ {
        key = $1; sub(/_(sum|count)[{]/, "{", key); sub(/_(sum|count)$/, "", key)
        if ($1 ~ /_sum/) sum[key] = $NF; else count[key] = $NF
    }
    END { for (k in count) if (count[k] > 0) printf "%s %.3f ms\n", k, sum[k] * 1000 / count[k] }' <<<"$METRICS" | sort)
if [ -n "$MEANS" ]; then
    echo "Mean time to the response head (histogram sum ÷ count, warm-up and soak together):"
    echo
    echo '```'
    echo "$MEANS"
    echo '```'
    echo
fi

status=0
if [ "$ERRORS" != 0 ] || [ "$UPSTREAM_ERRORS" != 0 ]; then
    echo "FAILED: $((W_ERR + S_ERR)) socket errors, $((W_NON2XX + S_NON2XX)) non-2xx answers, $UPSTREAM_ERRORS upstream errors or timeouts (all must be 0)"
    status=1
fi
if [ "$PEAK_GROWTH" -gt "$BOUND_KIB" ]; then
    echo "FAILED: RSS rose $PEAK_GROWTH KiB above its start figure, more than the bound of $RSS_BOUND_MIB MiB"
    status=1
fi
[ "$status" != 0 ] || echo "Passed: no errors; RSS stayed within $RSS_BOUND_MIB MiB of its start figure (max − start $PEAK_GROWTH KiB, end − start $GROWTH KiB)."
exit "$status"

#!/usr/bin/env bash
# The load benchmark: whole processes under wrk, each pinned to one core with wrk on the other,
# keep-alive. Prints requests/s, p99 latency and the server's CPU time per request
# (user+system from /proc/PID/stat over the requests wrk completed), medians of alternating
# rounds, with ratios and the bars they are held to. Three scenarios by default:
#
#   discovery  the same ~1.3 KB authorization-server metadata document served by mcp-auth-edge,
#              by nginx (`return 200` with the same headers) and by a bare hyper floor;
#   challenge  the edge with --upstream answering `POST /mcp` without a token with its 401
#              challenge, beside a discovery GET on the same process;
#   forward    a JSON-RPC POST with a valid JWT through the edge (jwt mode, token cache warm)
#              and through nginx `proxy_pass`, both to the same echo MCP server.
#
# and two more on request, over TLS 1.3 (a throwaway self-signed P-256 ECDSA certificate made
# with openssl in the temporary directory at each run, the same one for both servers):
#
#   https      the discovery document from the edge (--tls-cert/--tls-key) and from nginx
#              (`return 200`, the same headers, benches/nginx/tls.conf.in) over HTTP/1.1 on
#              TLS, loaded by wrk (keep-alive, no ALPN offered, as wrk does);
#   h2         the same two servers over HTTP/2 (ALPN h2), loaded by h2load with
#              H2_CONNECTIONS connections of H2_STREAMS concurrent streams each. h2load reports
#              no percentiles: its table shows the mean request time instead of p99.
#
#   bash benches/load.sh                      # the first three, 3 rounds of 6 s per server
#   ROUNDS=5 DURATION=10 bash benches/load.sh
#   SCENARIOS=forward bash benches/load.sh
#   SCENARIOS="https h2" bash benches/load.sh # the TLS scenarios (need openssl; h2 needs h2load)
#
# Settings (environment): SCENARIOS ("discovery challenge forward"; known: those and https h2),
# ROUNDS (3), DURATION seconds per run (6), CONNECTIONS (50, wrk's), H2_CONNECTIONS (50) and
# H2_STREAMS (10, h2load's -c and -m), WARMUP seconds per server before the rounds (2),
# BASE_PORT (18080; uses the next fourteen ports too), SERVER_CPU (0), LOAD_CPU (1), EDGE_BIN
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
H2_CONNECTIONS=${H2_CONNECTIONS:-50}
H2_STREAMS=${H2_STREAMS:-10}
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
# https and h2
TLS_EDGE_PORT=$((BASE_PORT + 12))
TLS_ADMIN_PORT=$((BASE_PORT + 13))
TLS_NGINX_PORT=$((BASE_PORT + 14))
ISSUER="http://127.0.0.1:$UPSTREAM_PORT"
DOC_PATH=/.well-known/oauth-authorization-server
# What an MCP client posts first after initialising; small, like most MCP calls.
RPC_BODY='{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

cd "$(dirname "$0")/.."
ROOT=$PWD
SCRIPT=load.sh
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"

for s in $SCENARIOS; do
    case $s in
    discovery | challenge | forward | https | h2) ;;
    *) die "unknown scenario '$s' in SCENARIOS; known: discovery challenge forward https h2" ;;
    esac
done
wants() { [[ " $SCENARIOS " == *" $1 "* ]]; }

need wrk "install it with: sudo apt-get install wrk"
need nginx "install it with: sudo apt-get install nginx-light"
need taskset "install it with: sudo apt-get install util-linux"
need curl "install it with: sudo apt-get install curl"
need cargo "install Rust from https://rustup.rs"
if wants https || wants h2; then
    need openssl "install it with: sudo apt-get install openssl"
fi
wants h2 && need h2load "install it with: sudo apt-get install nghttp2-client"
[ "$(nproc)" -ge 2 ] || echo "load.sh: warning: fewer than 2 CPUs; server and wrk will share one" >&2

build_binaries
make_work load

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

for port in $(seq $((BASE_PORT + 1)) $((BASE_PORT + 14))); do
    port_free "$port" || die "127.0.0.1:$port is in use; set BASE_PORT to another range"
done

# What each measured target is: the URL wrk loads, the processes whose CPU time counts, a
# label for the tables, and, for POSTs, the wrk script and the status every answer must have.
# TOOL is the load generator, wrk unless set to h2load.
declare -A URL LABEL TARGET_PIDS SCRIPT EXPECT AUX_PIDS TOOL
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

if wants discovery || wants https || wants h2; then
    # The document, its issuer the loopback upstream the edge relays it from.
    sed "s|@ISSUER@|$ISSUER|g" "$ROOT/benches/fixtures/as-metadata.json.in" >"$WORK/metadata.json"
    echo "== document: $(wc -c <"$WORK/metadata.json") bytes, issuer $ISSUER" >&2

    # The edge's upstream: idle while the edge is under load, and kept off the server's core.
    start upstream taskset -c "$LOAD_CPU" "$FLOOR_BIN" "127.0.0.1:$UPSTREAM_PORT" "$WORK/metadata.json"
    wait_ok "$ISSUER$DOC_PATH" "$STARTED" upstream
fi

# Writes $WORK/NAME/nginx.conf from benches/nginx/TEMPLATE serving the document on PORT with
# the edge's entity tag $ETAG, so that both send the same header bytes.
nginx_doc_conf() {
    local template=$1 name=$2 port=$3 conf
    conf=$(<"$ROOT/benches/nginx/$template")
    conf=${conf//@PREFIX@/$WORK/$name}
    conf=${conf//@PORT@/$port}
    conf=${conf//@ETAG@/$ETAG}
    conf=${conf//@CERT@/$WORK/tls/cert.pem}
    conf=${conf//@KEY@/$WORK/tls/key.pem}
    conf=${conf//@BODY@/$(<"$WORK/metadata.json")}
    mkdir -p "$WORK/$name"
    printf '%s\n' "$conf" >"$WORK/$name/nginx.conf"
}

# The entity tag the edge at URL sends for the document (curl options before the URL).
edge_etag() {
    curl -s -D - -o /dev/null --max-time 5 "$@" | tr -d '\r' | awk -F': ' 'tolower($1) == "etag" { print $2 }'
}

# Target NAME's answer, fetched by probe, is the document with the discovery headers.
check_doc() {
    local s=$1 h
    cmp -s "$WORK/$s.body" "$WORK/metadata.json" || die "$s served a different body"
    for h in "etag: $ETAG" "cache-control: public, max-age=300" "access-control-allow-origin: *" \
        "content-type: application/json" "content-length: $(wc -c <"$WORK/metadata.json")"; do
        tr -d '\r' <"$WORK/$s.headers" | grep -qixF "$h" || die "$s lacks the header '$h'"
    done
}

if wants discovery; then
    start edge taskset -c "$SERVER_CPU" "$EDGE_BIN" --threads 1 \
        --listen "127.0.0.1:$EDGE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
        --resource "http://127.0.0.1:$EDGE_PORT/mcp" --auth-server "$ISSUER"
    TARGET_PIDS[edge]=$STARTED
    wait_ok "http://127.0.0.1:$ADMIN_PORT/readyz" "$STARTED" edge

    start floor taskset -c "$SERVER_CPU" "$FLOOR_BIN" "127.0.0.1:$FLOOR_PORT" "$WORK/metadata.json"
    TARGET_PIDS[floor]=$STARTED
    wait_ok "http://127.0.0.1:$FLOOR_PORT$DOC_PATH" "$STARTED" floor

    # nginx gets the edge's entity tag so that all three send the same header bytes.
    ETAG=$(edge_etag "http://127.0.0.1:$EDGE_PORT$DOC_PATH")
    [ -n "$ETAG" ] || die "the edge sent no ETag"
    nginx_doc_conf nginx.conf.in nginx "$NGINX_PORT"
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
        check_doc "$s"
    done
    echo "== discovery: all three answer 200 with the same body and headers" >&2
fi

# What openssl negotiates with the TLS server on PORT, offering ALPN h2 if $2 is "h2" and no
# ALPN otherwise (as wrk): "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519 h2". wrk and h2load use the
# same OpenSSL library with its default client settings, so they negotiate the same.
tls_params() {
    local port=$1 alpn=${2:-} out
    local -a offer=()
    [ -z "$alpn" ] || offer=(-alpn "$alpn")
    # An h2 server's first frames come after the session summary; their NUL bytes are dropped.
    out=$(timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$WORK/tls/cert.pem" \
        -verify_return_error "${offer[@]}" </dev/null 2>/dev/null | tr -d '\000') ||
        die "no verified TLS handshake with 127.0.0.1:$port"
    awk '/^New, TLS/ { sub(/,$/, "", $2); v = $2; c = $NF }
        /^Server Temp Key:/ { sub(/,$/, "", $4); k = $4 }
        /^ALPN protocol:/ { a = $3 } /^No ALPN negotiated/ { a = "no-ALPN" }
        END { print v, c, k, a }' <<<"$out"
}

if wants https || wants h2; then
    # A throwaway certificate for both servers: self-signed P-256 ECDSA, valid for a day, for
    # the loopback address, made afresh at each run and removed with the temporary directory.
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=127.0.0.1" \
        -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" \
        >"$WORK/openssl.log" 2>&1 || die "openssl could not make a certificate:$(printf '\n')$(cat "$WORK/openssl.log")"

    start edge-tls taskset -c "$SERVER_CPU" "$EDGE_BIN" --threads 1 \
        --listen "127.0.0.1:$TLS_EDGE_PORT" --admin-listen "127.0.0.1:$TLS_ADMIN_PORT" \
        --resource "https://127.0.0.1:$TLS_EDGE_PORT/mcp" --auth-server "$ISSUER" \
        --tls-cert "$WORK/tls/cert.pem" --tls-key "$WORK/tls/key.pem"
    EDGE_TLS_PID=$STARTED
    wait_ok "http://127.0.0.1:$TLS_ADMIN_PORT/readyz" "$STARTED" edge-tls

    # The ETag derives from the bytes: the same as the cleartext edge's, if that one runs.
    TLS_ETAG=$(edge_etag --cacert "$WORK/tls/cert.pem" "https://127.0.0.1:$TLS_EDGE_PORT$DOC_PATH")
    [ -n "$TLS_ETAG" ] || die "the TLS edge sent no ETag"
    [ -z "${ETAG:-}" ] || [ "$ETAG" = "$TLS_ETAG" ] || die "the TLS edge's ETag $TLS_ETAG is not the cleartext edge's $ETAG"
    ETAG=$TLS_ETAG
    nginx_doc_conf tls.conf.in nginx-tls "$TLS_NGINX_PORT"
    start_nginx nginx-tls "https://127.0.0.1:$TLS_NGINX_PORT$DOC_PATH"
    NGINX_TLS_PIDS=$NGINX_STARTED

    # Both servers negotiate the same protocol version, cipher suite and key exchange with
    # the clients' OpenSSL, without ALPN (wrk) and offering h2 (h2load).
    for alpn in "" h2; do
        edge_tls=$(tls_params "$TLS_EDGE_PORT" "$alpn")
        nginx_tls=$(tls_params "$TLS_NGINX_PORT" "$alpn")
        [ "$edge_tls" = "$nginx_tls" ] ||
            die "the edge negotiates '$edge_tls' and nginx '$nginx_tls' (ALPN offered: ${alpn:-none})"
        case $alpn in
        "") TLS_H1=$edge_tls ;;
        h2) TLS_H2=$edge_tls ;;
        esac
    done
    [[ "$TLS_H1" == TLSv1.3\ * ]] || die "TLS 1.3 was not negotiated: $TLS_H1"
    [[ "$TLS_H2" == *\ h2 ]] || die "ALPN h2 was not negotiated: $TLS_H2"
    echo "== TLS: both servers negotiate $TLS_H1 without ALPN and $TLS_H2 offering h2" >&2

    # The edge and nginx over TLS as targets NAME-edge and NAME-nginx, checked to answer 200
    # with the document when curl speaks HTTP version VERSION (1.1 or 2) to them.
    tls_targets() {
        local name=$1 version=$2 s
        URL[$name-edge]="https://127.0.0.1:$TLS_EDGE_PORT$DOC_PATH"
        URL[$name-nginx]="https://127.0.0.1:$TLS_NGINX_PORT$DOC_PATH"
        TARGET_PIDS[$name-edge]=$EDGE_TLS_PID
        TARGET_PIDS[$name-nginx]=$NGINX_TLS_PIDS
        LABEL[$name-edge]="mcp-auth-edge (--threads 1), rustls"
        LABEL[$name-nginx]="nginx $NGINX_VERSION, 1 worker, return 200, OpenSSL"
        for s in "$name-edge" "$name-nginx"; do
            if [ "$version" = 2 ]; then TOOL[$s]=h2load; fi
            probe "$s" 200 "${URL[$s]}" --cacert "$WORK/tls/cert.pem" "--http$version"
            check_doc "$s"
            head -n1 "$WORK/$s.headers" | grep -q "^HTTP/${version//./\\.} 200" ||
                die "$s did not answer over HTTP/$version"
        done
        echo "== $name: both answer 200 over HTTP/$version on TLS with the same body and headers" >&2
    }
    if wants https; then tls_targets https 1.1; fi
    if wants h2; then tls_targets h2 2; fi
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

# Reads h2load's output $2 for target $1 and sets requests, rps and p99 (measure's locals; for
# h2load p99 holds the mean request time, as it gives no percentiles); dies unless every
# request was answered 2xx over h2, with no failure, error or timeout.
read_h2load() {
    local s=$1 out=$2 counts
    grep -q '^Application protocol: h2$' "$out" || die "h2load against $s did not negotiate h2:$(printf '\n')$(cat "$out")"
    # done succeeded failed errored timeout 2xx 3xx 4xx 5xx
    counts=$(awk '/^requests:/ { r = $6 " " $8 " " $10 " " $12 " " $14 }
        /^status codes:/ { c = $3 " " $5 " " $7 " " $9 } END { print r, c }' "$out")
    read -r requests succeeded failed errored timedout s2xx s3xx s4xx s5xx <<<"$counts"
    [ -n "$s5xx" ] || die "could not read h2load's output for $s:$(printf '\n')$(cat "$out")"
    [ "$failed" = 0 ] && [ "$errored" = 0 ] && [ "$timedout" = 0 ] && [ "$succeeded" = "$requests" ] &&
        [ "$s3xx" = 0 ] && [ "$s4xx" = 0 ] && [ "$s5xx" = 0 ] && [ "$s2xx" -ge "$requests" ] ||
        die "h2load against $s saw failed requests or answers other than 2xx:$(printf '\n')$(cat "$out")"
    rps=$(awk '/^finished in/ { sub(/,$/, "", $4); print $4 }' "$out")
    p99=$(awk '/^time for request:/ { print $6 }' "$out")
    [ -n "$requests" ] && [ "$requests" -gt 0 ] && [ -n "$rps" ] && [ -n "$p99" ] ||
        die "could not read h2load's output for $s:$(printf '\n')$(cat "$out")"
}

# Runs wrk (or h2load, for targets whose TOOL says so) against target $1 for $2 seconds; unless
# $3 is "warmup", appends "target rps p99_ms cpu_us_per_req round aux_cpu_us_per_req
# busy_percent" to $WORK/results (for h2load the third column is the mean request time).
measure() {
    local s=$1 secs=$2 kind=${3:-round}
    local -a pids aux=() script=()
    read -r -a pids <<<"${TARGET_PIDS[$s]}"
    [ -z "${AUX_PIDS[$s]:-}" ] || read -r -a aux <<<"${AUX_PIDS[$s]}"
    [ -z "${SCRIPT[$s]:-}" ] || script=(-s "${SCRIPT[$s]}")
    local before after aux_before=0 aux_after=0 out tool=${TOOL[$s]:-wrk}
    local requests rps p99 non2xx succeeded failed errored timedout s2xx s3xx s4xx s5xx
    before=$(cpu_ticks "${pids[@]}")
    [ ${#aux[@]} = 0 ] || aux_before=$(cpu_ticks "${aux[@]}")
    out=$WORK/$tool-$s.out
    if [ "$tool" = h2load ]; then
        timeout $((secs + 30)) taskset -c "$LOAD_CPU" \
            h2load -t1 -c"$H2_CONNECTIONS" -m"$H2_STREAMS" -D"$secs" "${URL[$s]}" >"$out" 2>&1 ||
            die "h2load against $s failed:$(printf '\n')$(cat "$out")"
        after=$(cpu_ticks "${pids[@]}")
        [ ${#aux[@]} = 0 ] || aux_after=$(cpu_ticks "${aux[@]}")
        read_h2load "$s" "$out"
    else
        timeout $((secs + 30)) taskset -c "$LOAD_CPU" \
            wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --latency "${script[@]}" "${URL[$s]}" >"$out" 2>&1 ||
            die "wrk against $s failed:$(printf '\n')$(cat "$out")"
        after=$(cpu_ticks "${pids[@]}")
        [ ${#aux[@]} = 0 ] || aux_after=$(cpu_ticks "${aux[@]}")
        read_wrk "$s" "$out"
    fi
    local cpu_us aux_us=- busy
    cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
    [ ${#aux[@]} = 0 ] ||
        aux_us=$(awk -v t=$((aux_after - aux_before)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.3f", t * 1e6 / hz / n }')
    # The share of one core the server used: near 100 it was the bottleneck, well below it
    # waited on the load generator (or, forwarding, on the upstream) on the other core.
    busy=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v s="$secs" 'BEGIN { printf "%.0f", t * 100 / hz / s }')
    if [ "$kind" != warmup ]; then
        local lat=p99
        [ "$tool" = wrk ] || lat=mean
        echo "$s $rps $(to_ms "$p99") $cpu_us $ROUND $aux_us $busy" >>"$WORK/results"
        printf '   %-12s %10.0f req/s  %-4s %7.3f ms  %7.3f CPU us/req  %3s%% busy\n' \
            "$s" "$rps" "$lat" "$(to_ms "$p99")" "$cpu_us" "$busy" >&2
    fi
}

# Reads wrk's output $2 for target $1 and sets requests, rps and p99 (measure's locals); dies
# on socket errors or answers of another status than expected.
read_wrk() {
    local s=$1 out=$2
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
}

# The load generator's command line for scenario $1, as the rounds run it.
loadgen() {
    if [ "$1" = h2 ]; then
        echo "h2load -t1 -c$H2_CONNECTIONS -m$H2_STREAMS -D$DURATION"
    else
        echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency"
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
        echo "== $name: round $r of $ROUNDS: $(loadgen "$name"), server on CPU $SERVER_CPU, load on CPU $LOAD_CPU" >&2
        for i in $(seq 0 $((n - 1))); do
            measure "${targets[$(((i + r - 1) % n))]}" "$DURATION"
        done
    done
}

: >"$WORK/results"
wants discovery && run_scenario discovery edge nginx floor
wants challenge && run_scenario challenge gate-doc gate-401
wants forward && run_scenario forward edge-fwd presence-fwd nginx-fwd
wants https && run_scenario https https-edge https-nginx
wants h2 && run_scenario h2 h2-edge h2-nginx

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
    ratios "$1" "$2" |
        awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Target $1's CPU/req over target $2's, one line per round, smallest first.
ratios() {
    awk -v a="$1" -v b="$2" '$1 == a { x[$5] = $4 } $1 == b { y[$5] = $4 }
        END { for (r in x) if (r in y) print x[r] / y[r] }' "$WORK/results" | sort -g
}

# "median; rounds lowest-highest" of those ratios: how far single rounds strayed says how much
# the machine's load moved the median.
verdict() {
    printf '%s; rounds %s' "$(paired "$1" "$2")" \
        "$(ratios "$1" "$2" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }')"
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
    echo "Bar (on the per-round ratios): edge CPU/req within 5% of the floor: $(at_most "$vs_floor" 1.05) ($(verdict edge floor)); at or below nginx: $(at_most "$vs_nginx" 1.00) ($(verdict edge nginx))."
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
    echo "Bar (on the per-round ratios): 401 CPU/req within 5% of the discovery GET's: $(at_most "$vs_doc" 1.05) ($(verdict gate-401 gate-doc))."
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
    echo "Bar (on the per-round ratios): edge CPU/req, token checked, at or below nginx's: $(at_most "$fwd_nginx" 1.00) ($(verdict edge-fwd nginx-fwd))."
fi

if wants https || wants h2; then
    TLS_SETUP="The document ($(wc -c <"$WORK/metadata.json") bytes) over TLS: a self-signed P-256 ECDSA certificate made for the run, the same for both servers; the edge with \`--tls-cert\`/\`--tls-key\` (rustls, ring provider), nginx with \`ssl_certificate\` (OpenSSL $(openssl version | awk '{ print $2 }')), both offering TLS 1.3 and 1.2. Server on CPU $SERVER_CPU (taskset), the load generator on CPU $LOAD_CPU."
    TLS_NOTE="Medians of $ROUNDS alternating rounds. CPU µs/req: the server's user+system time (/proc/PID/stat, all threads; nginx master and worker) over the requests completed; connections are opened once per run, so handshakes weigh next to nothing."
fi

# The table and bar line of TLS scenario NAME (https or h2); LATENCY names its latency column.
tls_table() {
    local name=$1 latency=$2 s bar
    echo "| server | requests/s | $latency | CPU µs/req | CPU/req ÷ nginx |"
    echo "|---|---|---|---|---|"
    for s in "$name-edge" "$name-nginx"; do
        printf '| %s | %.0f | %.2f ms | %.2f | %s |\n' "${LABEL[$s]}" "${RPS[$s]}" "${P99[$s]}" "${CPU[$s]}" \
            "$(ratio "${CPU[$s]}" "${CPU[$name-nginx]}")"
    done
    echo
    bar=$(paired "$name-edge" "$name-nginx")
    echo "Bar (on the per-round ratios): edge CPU/req at or below nginx's: $(at_most "$bar" 1.00) ($(verdict "$name-edge" "$name-nginx"))."
}

if wants https; then
    echo
    echo "### HTTPS (HTTP/1.1 over TLS)"
    echo
    echo "$TLS_SETUP \`$(loadgen https)\` (OpenSSL, no ALPN), keep-alive. Negotiated: $TLS_H1."
    echo "$TLS_NOTE"
    echo
    tls_table https "p99"
fi

if wants h2; then
    echo
    echo "### HTTP/2 over TLS"
    echo
    echo "$TLS_SETUP \`$(loadgen h2)\` ($H2_CONNECTIONS connections, up to $H2_STREAMS requests in flight on each), ALPN h2. Negotiated: $TLS_H2."
    echo "$TLS_NOTE h2load gives no percentiles: the latency column is its mean request time."
    echo
    tls_table h2 "mean latency"
fi

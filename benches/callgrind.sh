#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind, which a busy machine does not
# move (unlike the CPU time benches/load.sh measures). The edge runs under valgrind with
# --upstream (jwt mode) in front of the demo echo server; h2load sends N and then 2N
# keep-alive requests over one HTTP/1.1 connection, and the figure is the slope
# (I(2N) - I(N)) / N, so start-up and shutdown cancel out. Three kinds of request:
#
#   doc   GET of the relayed authorization server metadata
#   401   POST /mcp with a JSON-RPC body and no token: the challenge
#   fwd   the same POST with a valid JWT, forwarded (token cache warm)
#   ngx   that forwarded POST through nginx proxy_pass instead (benches/nginx/proxy.conf.in, one
#         process), for the user-space side of the load benchmark's forwarding comparison
#
#   bash benches/callgrind.sh                          # all three, this tree's release build
#   KINDS=fwd N=2000 bash benches/callgrind.sh
#   BASE_BIN=/tmp/old/release/mcp-auth-edge bash benches/callgrind.sh   # and another build beside it
#
# Settings (environment): KINDS ("doc 401 fwd"), N (2000), BASE_PORT (18280; uses the next
# four ports too), EDGE_BIN (the release build), BASE_BIN (none), KEEP (a directory to keep
# the callgrind profiles in, for callgrind_annotate; none). Needs valgrind and h2load.
# Everything listens on 127.0.0.1; every process started here is stopped by PID on exit.
set -euo pipefail

KINDS=${KINDS:-doc 401 fwd}
N=${N:-2000}
BASE_PORT=${BASE_PORT:-18280}
AS_PORT=$((BASE_PORT + 1))
ECHO_PORT=$((BASE_PORT + 2))
EDGE_PORT=$((BASE_PORT + 3))
ADMIN_PORT=$((BASE_PORT + 4))
RESOURCE="http://127.0.0.1:$EDGE_PORT/mcp"

cd "$(dirname "$0")/.."
ROOT=$PWD
SCRIPT=callgrind.sh
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"

need valgrind "install it with: sudo apt-get install valgrind"
need h2load "install it with: sudo apt-get install nghttp2-client"
need curl "install it with: sudo apt-get install curl"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "N must be a whole number above 0, not '$N'"
for kind in $KINDS; do
    case $kind in
    doc | 401 | fwd) ;;
    ngx) need nginx "install it with: sudo apt-get install nginx-light" ;;
    *) die "unknown kind '$kind' in KINDS; known: doc 401 fwd ngx" ;;
    esac
done
build_binaries
make_work callgrind
for port in $(seq "$AS_PORT" "$ADMIN_PORT"); do
    port_free "$port" || die "127.0.0.1:$port is in use; set BASE_PORT to another range"
done

start demo-as "$FLOOR_BIN" demo-as "127.0.0.1:$AS_PORT" "$RESOURCE"
wait_ok "http://127.0.0.1:$AS_PORT/.well-known/oauth-authorization-server" "$STARTED" demo-as
start echo "$FLOOR_BIN" echo "127.0.0.1:$ECHO_PORT"
wait_ok "http://127.0.0.1:$ECHO_PORT/mcp" "$STARTED" echo
TOKEN=$(curl -s --max-time 5 -d grant_type=client_credentials "http://127.0.0.1:$AS_PORT/token" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ "$TOKEN" == *.*.* ]] || die "no token from the demo authorization server"
printf '%s' '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' >"$WORK/body.json"

# Total instructions of one edge (or, for ngx, nginx) run under callgrind serving COUNT
# requests of KIND.
instructions() {
    local bin=$1 count=$2 kind=$3 out pid
    out="$WORK/callgrind.out"
    if [ "$kind" = ngx ]; then
        # One process (no master), so that callgrind sees the worker's requests.
        mkdir -p "$WORK/nginx"
        sed -e "s|@PREFIX@|$WORK/nginx|g" -e "s|@PORT@|$EDGE_PORT|" -e "s|@UPSTREAM_PORT@|$ECHO_PORT|" \
            -e 's|^master_process on;|master_process off;|' "$ROOT/benches/nginx/proxy.conf.in" >"$WORK/nginx/nginx.conf"
        start nginx valgrind --tool=callgrind --callgrind-out-file="$out" nginx -p "$WORK/nginx" \
            -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf"
        pid=$STARTED
        wait_ok "http://127.0.0.1:$EDGE_PORT/mcp" "$pid" nginx
    else
        start edge valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --threads 1 \
            --listen "127.0.0.1:$EDGE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" --resource "$RESOURCE" \
            --auth-server "http://127.0.0.1:$AS_PORT" --upstream "http://127.0.0.1:$ECHO_PORT"
        pid=$STARTED
        wait_ok "http://127.0.0.1:$ADMIN_PORT/readyz" "$pid" edge
    fi
    local -a request
    case $kind in
    doc) request=(-H 'accept: application/json' "http://127.0.0.1:$EDGE_PORT/.well-known/oauth-authorization-server") ;;
    401) request=(-d "$WORK/body.json" -H 'content-type: application/json' "$RESOURCE") ;;
    fwd | ngx) request=(-d "$WORK/body.json" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" "$RESOURCE") ;;
    esac
    h2load --h1 -n "$count" -c 1 -m 1 "${request[@]}" >"$WORK/h2load.out" 2>&1
    local expect=succeeded
    [ "$kind" = 401 ] && expect=failed # h2load counts any non-2xx as failed
    grep -q "$count $expect" "$WORK/h2load.out" || die "h2load: $(grep 'requests:' "$WORK/h2load.out")"
    # nginx stops gracefully on QUIT (INT is its fast stop, which may skip the profile's end).
    if [ "$kind" = ngx ]; then kill -QUIT "$pid"; else kill -INT "$pid"; fi
    wait "$pid" 2>/dev/null || true
    awk '/^summary:/ {print $2}' "$out"
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP"
        mv "$out" "$KEEP/callgrind.$(basename "$bin").$kind.$count.out"
    else
        rm -f "$out"
    fi
}

echo "| build | request | instructions per request |"
echo "|---|---|---|"
for kind in $KINDS; do
    builds="${BASE_BIN:+base} edge"
    [ "$kind" = ngx ] && builds=nginx
    for build in $builds; do
        bin=$EDGE_BIN
        [ "$build" = base ] && bin=$BASE_BIN
        a=$(instructions "$bin" "$N" "$kind")
        b=$(instructions "$bin" $((2 * N)) "$kind")
        echo "| $build | $kind | $(((b - a) / N)) |"
    done
done

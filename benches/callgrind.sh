#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind, which a busy machine does not
# move (unlike the CPU time benches/load.sh measures), and system calls per request, counted
# by strace. The edge runs with --upstream (jwt mode) in front of the demo echo server; h2load
# sends N and then 2N keep-alive requests over one HTTP/1.1 connection, and each figure is the
# slope (X(2N) - X(N)) / N, so start-up and shutdown cancel out. The kinds of request:
#
#   doc   GET of the relayed authorization server metadata
#   401   POST /mcp with a JSON-RPC body and no token: the challenge
#   fwd   the same POST with a valid JWT, forwarded (token cache warm)
#   dpop  that forwarded POST with a DPoP-bound JWT (token cache warm) and a fresh ES256 proof
#         each, the edge at --dpop require: h2load cannot make proofs, so `hyper-floor
#         dpop-requests` makes the run's N or 2N requests just before it (the same token, signed
#         by the bench's fixed Ed25519 key, whose JWKS a static server publishes; each proof its
#         own jti, iat = the moment it is made), and `hyper-floor dpop-send` sends them over one
#         keep-alive connection; the default --dpop-iat-window (300 s) covers a run by far
#   ngx   that forwarded POST through nginx proxy_pass instead (benches/nginx/proxy.conf.in, one
#         process), the floor the forwarding bar is set against
#   hfwd  that forwarded POST through the bare hyper forwarding floor instead (`hyper-floor
#         proxy`, benches/floor_proxy.rs: hyper's server and client connection and nothing else),
#         what hyper itself costs to forward, below which the edge cannot go while it stays on
#         hyper
#   hdoc  the doc kind's GET to the bare hyper floor (`hyper-floor ADDR FILE`, benches/floor_service.rs:
#         a static body with the discovery headers, built the plain hyper way)
#   h401  the 401 kind's POST (JSON body, no token) to that same floor, answered the same way:
#         h401 ÷ hdoc is what hyper alone costs for the 401's request shape (a body to read and
#         drain, one more header) beside the doc's, with the answer held equal
#   call  a tools/call at MCP 2026-07-28 (Mcp-Method, Mcp-Name, a larger body), forwarded with no
#         policy: what the pol kind costs without its policy
#   call25 the same tools/call at 2025-11-25 (no method headers), forwarded with no policy
#   pol   a tools/call at MCP 2026-07-28 (Mcp-Method, Mcp-Name) to an edge with an MCP policy
#         (benches/fixtures/policy.json): decided from the headers, the body checked against them
#   pol25 the same call at 2025-11-25 (no method headers): decided from the buffered body
#
#   bash benches/callgrind.sh                          # all four, this tree's release build
#   KINDS=fwd N=2000 bash benches/callgrind.sh
#   BASE_BIN=/tmp/old/release/mcp-auth-edge bash benches/callgrind.sh   # and another build beside it
#   CHECK=1 KINDS="doc 401 fwd dpop pol pol25" bash benches/callgrind.sh   # the regression guard .ci/run runs
#   UPDATE=1 bash benches/callgrind.sh                 # rewrite benches/callgrind.baseline
#
# After the table it prints the ratios the forwarding issue sets as bars (fwd ÷ ngx
# instructions at most 0.90, fwd system calls at most nginx's, 401 ÷ doc at most 1.05, doc no
# worse than its baseline) and the policy issue's (pol ÷ call at most 1.03, pol25 ÷ call25 at
# most 1.15), each with "met" or "not met"; bars are reported, not enforced; and,
# with dpop and fwd both measured, what the proof adds to a forwarded request (dpop ÷ fwd).
# CHECK=1 enforces the regression guard instead: the run fails when a kind's instructions per
# request are more than 2% above benches/callgrind.baseline. A change meant to cost more
# updates the baseline in the same commit (UPDATE=1, then commit the file with the reason).
#
# Settings (environment): KINDS ("doc 401 fwd ngx"), N (2000), BASE_PORT (18280; uses the next
# four ports too, and two more for dpop), EDGE_BIN (the release build), BASE_BIN (none), SYSCALLS (1: count system
# calls too, with strace; 0: skip), CHECK, UPDATE, KEEP (a directory to keep the callgrind
# profiles in, for callgrind_annotate; none). Needs valgrind, h2load, and strace for SYSCALLS.
# Everything listens on 127.0.0.1; every process started here is stopped by PID on exit.
set -euo pipefail

KINDS=${KINDS:-doc 401 fwd ngx}
SYSCALLS=${SYSCALLS:-1}
CHECK=${CHECK:-0}
UPDATE=${UPDATE:-0}
BASELINE=benches/callgrind.baseline
N=${N:-2000}
BASE_PORT=${BASE_PORT:-18280}
AS_PORT=$((BASE_PORT + 1))
ECHO_PORT=$((BASE_PORT + 2))
EDGE_PORT=$((BASE_PORT + 3))
ADMIN_PORT=$((BASE_PORT + 4))
DPOP_AS_PORT=$((BASE_PORT + 5))
DPOP_JWKS_PORT=$((BASE_PORT + 6))
RESOURCE="http://127.0.0.1:$EDGE_PORT/mcp"

cd "$(dirname "$0")/.."
ROOT=$PWD
SCRIPT=callgrind.sh
# shellcheck source=benches/common.sh
. "$ROOT/benches/common.sh"

need valgrind "install it with: sudo apt-get install valgrind"
need h2load "install it with: sudo apt-get install nghttp2-client"
need curl "install it with: sudo apt-get install curl"
[ "$SYSCALLS" = 0 ] || need strace "install it with: sudo apt-get install strace (or set SYSCALLS=0)"
[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "N must be a whole number above 0, not '$N'"
for kind in $KINDS; do
    case $kind in
    doc | 401 | fwd | dpop | call | call25 | pol | pol25 | hfwd | hdoc | h401) ;;
    ngx) need nginx "install it with: sudo apt-get install nginx-light" ;;
    *) die "unknown kind '$kind' in KINDS; known: doc 401 fwd dpop ngx hfwd hdoc h401 call call25 pol pol25" ;;
    esac
done
build_binaries
make_work callgrind
last_port=$ADMIN_PORT
[[ " $KINDS " != *" dpop "* ]] || last_port=$DPOP_JWKS_PORT
for port in $(seq "$AS_PORT" "$last_port"); do
    port_free "$port" || die "127.0.0.1:$port is in use; set BASE_PORT to another range"
done

start demo-as "$FLOOR_BIN" demo-as "127.0.0.1:$AS_PORT" "$RESOURCE"
wait_ok "http://127.0.0.1:$AS_PORT/.well-known/oauth-authorization-server" "$STARTED" demo-as
start echo "$FLOOR_BIN" echo "127.0.0.1:$ECHO_PORT"
wait_ok "http://127.0.0.1:$ECHO_PORT/mcp" "$STARTED" echo
TOKEN=$(curl -s --max-time 5 -d grant_type=client_credentials "http://127.0.0.1:$AS_PORT/token" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ "$TOKEN" == *.*.* ]] || die "no token from the demo authorization server"
# The floor's document for hdoc and h401: the metadata the edge relays for doc.
curl -s --max-time 5 -o "$WORK/floor-doc.json" "http://127.0.0.1:$AS_PORT/.well-known/oauth-authorization-server"
printf '%s' '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' >"$WORK/body.json"
# A tools/call as the SDKs send it, at each revision (2026-07-28 carries its version in _meta).
printf '%s' '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/srv/notes.txt"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}' >"$WORK/call.json"
printf '%s' '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/srv/notes.txt"}}}' >"$WORK/call25.json"

# The dpop kind's authorization server: its metadata and the JWKS of the bench's signing key,
# each served by a static hyper-floor (the JWKS never changes: the key is fixed).
DPOP_ISSUER="http://127.0.0.1:$DPOP_AS_PORT"
if [[ " $KINDS " == *" dpop "* ]]; then
    mkdir -p "$WORK/dpop"
    "$FLOOR_BIN" dpop-requests "$WORK/dpop" "$DPOP_ISSUER" "$RESOURCE" 1
    sed -e "s|@ISSUER@|$DPOP_ISSUER|g" -e "s|\"jwks_uri\":\"[^\"]*\"|\"jwks_uri\":\"http://127.0.0.1:$DPOP_JWKS_PORT/jwks\"|" \
        "$ROOT/benches/fixtures/as-metadata.json.in" >"$WORK/dpop/metadata.json"
    start dpop-as "$FLOOR_BIN" "127.0.0.1:$DPOP_AS_PORT" "$WORK/dpop/metadata.json"
    wait_ok "$DPOP_ISSUER/.well-known/oauth-authorization-server" "$STARTED" dpop-as
    start dpop-jwks "$FLOOR_BIN" "127.0.0.1:$DPOP_JWKS_PORT" "$WORK/dpop/jwks.json"
    wait_ok "http://127.0.0.1:$DPOP_JWKS_PORT/jwks" "$STARTED" dpop-jwks
fi

# One edge (or, for ngx, nginx) run serving COUNT requests of KIND, under TOOL: callgrind
# prints the run's total instructions, strace its total system calls (every thread).
measure() {
    local tool=$1 bin=$2 count=$3 kind=$4 out pid
    local -a under
    if [ "$tool" = callgrind ]; then
        out="$WORK/callgrind.out"
        under=(valgrind --tool=callgrind --callgrind-out-file="$out")
    else
        out="$WORK/strace.out"
        under=(strace -f -qq -c -o "$out")
    fi
    if [ "$kind" = ngx ]; then
        # One process (no master), so that the tool sees the worker's requests.
        mkdir -p "$WORK/nginx"
        sed -e "s|@PREFIX@|$WORK/nginx|g" -e "s|@PORT@|$EDGE_PORT|" -e "s|@UPSTREAM_PORT@|$ECHO_PORT|" \
            -e 's|^master_process on;|master_process off;|' "$ROOT/benches/nginx/proxy.conf.in" >"$WORK/nginx/nginx.conf"
        start nginx "${under[@]}" nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf"
        pid=$STARTED
        wait_ok "http://127.0.0.1:$EDGE_PORT/mcp" "$pid" nginx
    elif [ "$kind" = hdoc ] || [ "$kind" = h401 ]; then
        start hyper-floor "${under[@]}" "$bin" "127.0.0.1:$EDGE_PORT" "$WORK/floor-doc.json"
        pid=$STARTED
        wait_ok "http://127.0.0.1:$EDGE_PORT/" "$pid" hyper-floor
    elif [ "$kind" = hfwd ]; then
        start hyper-floor "${under[@]}" "$bin" proxy "127.0.0.1:$EDGE_PORT" "127.0.0.1:$ECHO_PORT"
        pid=$STARTED
        wait_ok "http://127.0.0.1:$EDGE_PORT/mcp" "$pid" hyper-floor
    else
        local -a policy=() auth=(--auth-server "http://127.0.0.1:$AS_PORT")
        case $kind in pol | pol25) policy=(--config "$ROOT/benches/fixtures/policy.json") ;; esac
        [ "$kind" = dpop ] && auth=(--auth-server "$DPOP_ISSUER" --dpop require)
        start edge "${under[@]}" "$bin" --threads 1 "${policy[@]}" \
            --listen "127.0.0.1:$EDGE_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" --resource "$RESOURCE" \
            "${auth[@]}" --upstream "http://127.0.0.1:$ECHO_PORT"
        pid=$STARTED
        wait_ok "http://127.0.0.1:$ADMIN_PORT/readyz" "$pid" edge
    fi
    local -a request
    case $kind in
    doc | hdoc) request=(-H 'accept: application/json' "http://127.0.0.1:$EDGE_PORT/.well-known/oauth-authorization-server") ;;
    401 | h401) request=(-d "$WORK/body.json" -H 'content-type: application/json' "$RESOURCE") ;;
    fwd | ngx | hfwd) request=(-d "$WORK/body.json" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" "$RESOURCE") ;;
    call | pol) request=(-d "$WORK/call.json" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN"
        -H 'mcp-protocol-version: 2026-07-28' -H 'mcp-method: tools/call' -H 'mcp-name: read_file' "$RESOURCE") ;;
    call25 | pol25) request=(-d "$WORK/call25.json" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN"
        -H 'mcp-protocol-version: 2025-11-25' "$RESOURCE") ;;
    esac
    if [ "$kind" = dpop ]; then
        # Proofs made now (iat = now), then sent; dpop-send fails on any answer but 200.
        "$FLOOR_BIN" dpop-requests "$WORK/dpop" "$DPOP_ISSUER" "$RESOURCE" "$count"
        "$FLOOR_BIN" dpop-send "127.0.0.1:$EDGE_PORT" "$WORK/dpop/requests" "$count" ||
            die "dpop-send failed; the edge's log:$(printf '\n')$(cat "$WORK/edge.log")"
    else
        h2load --h1 -n "$count" -c 1 -m 1 "${request[@]}" >"$WORK/h2load.out" 2>&1
        local expect=succeeded
        [ "$kind" = 401 ] && expect=failed # h2load counts any non-2xx as failed
        grep -q "$count $expect" "$WORK/h2load.out" || die "h2load: $(grep 'requests:' "$WORK/h2load.out")"
    fi
    # nginx stops gracefully on QUIT (INT is its fast stop, which may skip the profile's end).
    # strace ignores the INT a background job inherits as ignored, so its child is told.
    local target=$pid
    if [ "$tool" = strace ]; then
        target=$(pgrep -P "$pid" | head -n 1)
        [ -n "$target" ] || die "strace's child is gone"
    fi
    if [ "$kind" = ngx ]; then kill -QUIT "$target"; else kill -INT "$target"; fi
    wait "$pid" 2>/dev/null || true
    if [ "$tool" = callgrind ]; then
        awk '/^summary:/ {print $2}' "$out"
        if [ -n "${KEEP:-}" ]; then
            mkdir -p "$KEEP"
            mv "$out" "$KEEP/callgrind.$(basename "$bin").$kind.$count.out"
        fi
    else
        # The summary's last line: "100.00 seconds usecs/call CALLS [errors] total".
        awk '$NF == "total" {print $4}' "$out"
    fi
    rm -f "$out"
}

# Per-request slope of TOOL's count for BIN and KIND.
slope() {
    local a b
    a=$(measure "$1" "$2" "$N" "$3")
    b=$(measure "$1" "$2" $((2 * N)) "$3")
    awk -v a="$a" -v b="$b" -v n="$N" 'BEGIN {printf "%.1f", (b - a) / n}'
}

declare -A INSTR CALLS
if [ "$SYSCALLS" = 0 ]; then
    echo "| build | request | instructions per request |"
    echo "|---|---|---|"
else
    echo "| build | request | instructions per request | system calls per request |"
    echo "|---|---|---|---|"
fi
for kind in $KINDS; do
    builds="${BASE_BIN:+base} edge"
    [ "$kind" = ngx ] && builds=nginx
    case $kind in hfwd | hdoc | h401) builds=hyper ;; esac
    for build in $builds; do
        bin=$EDGE_BIN
        [ "$build" = base ] && bin=$BASE_BIN
        [ "$build" = hyper ] && bin=$FLOOR_BIN
        i=$(slope callgrind "$bin" "$kind")
        i=${i%.*}
        if [ "$SYSCALLS" = 0 ]; then
            echo "| $build | $kind | $i |"
        else
            c=$(slope strace "$bin" "$kind")
            echo "| $build | $kind | $i | $c |"
            [ "$build" = base ] || CALLS[$kind]=$c
        fi
        [ "$build" = base ] || INSTR[$kind]=$i
    done
done

# The bars, where both sides of one were measured.
bar() {
    local what=$1 value=$2 limit=$3
    if awk -v v="$value" -v l="$limit" 'BEGIN {exit !(v <= l)}'; then
        echo "bar: $what: met"
    else
        echo "bar: $what: not met"
    fi
}
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
if [ -n "${INSTR[fwd]:-}" ] && [ -n "${INSTR[ngx]:-}" ]; then
    r=$(ratio "${INSTR[fwd]}" "${INSTR[ngx]}")
    bar "fwd ÷ ngx instructions per request $r (at most 0.90)" "$r" 0.90
fi
# hyper's own floor: what forwarding costs on hyper with nothing of the edge's, against nginx,
# and what the edge adds above it.
if [ -n "${INSTR[hfwd]:-}" ] && [ -n "${INSTR[ngx]:-}" ]; then
    echo "hyper's floor: hfwd ÷ ngx instructions per request $(ratio "${INSTR[hfwd]}" "${INSTR[ngx]}")"
fi
if [ -n "${INSTR[hfwd]:-}" ] && [ -n "${INSTR[fwd]:-}" ]; then
    echo "the edge above hyper's floor: fwd ÷ hfwd $(ratio "${INSTR[fwd]}" "${INSTR[hfwd]}") (the edge adds $((INSTR[fwd] - INSTR[hfwd])))"
fi
if [ -n "${CALLS[fwd]:-}" ] && [ -n "${CALLS[ngx]:-}" ]; then
    bar "fwd system calls per request ${CALLS[fwd]} against nginx's ${CALLS[ngx]} (at most nginx's)" "${CALLS[fwd]}" "${CALLS[ngx]}"
fi
# The policy bars compare each policy kind with the same request forwarded without a policy
# (call, call25): the policy's own cost. Without those kinds measured, with fwd, a smaller call.
policy_bar() {
    local kind=$1 plain=$2 limit=$3
    [ -n "${INSTR[$kind]:-}" ] || return 0
    if [ -n "${INSTR[$plain]:-}" ]; then
        r=$(ratio "${INSTR[$kind]}" "${INSTR[$plain]}")
        bar "$kind ÷ $plain (the same request without a policy) instructions per request $r (at most $limit)" "$r" "$limit"
    elif [ -n "${INSTR[fwd]:-}" ]; then
        r=$(ratio "${INSTR[$kind]}" "${INSTR[fwd]}")
        bar "$kind ÷ fwd instructions per request $r (at most $limit; measure $plain for the same request)" "$r" "$limit"
    fi
}
policy_bar pol call 1.03
policy_bar pol25 call25 1.15
if [ -n "${INSTR[401]:-}" ] && [ -n "${INSTR[doc]:-}" ]; then
    r=$(ratio "${INSTR[401]}" "${INSTR[doc]}")
    bar "401 ÷ doc instructions per request $r (at most 1.05)" "$r" 1.05
fi
if [ -n "${INSTR[h401]:-}" ] && [ -n "${INSTR[hdoc]:-}" ]; then
    echo "hyper's floor for the 401's request shape: h401 ÷ hdoc $(ratio "${INSTR[h401]}" "${INSTR[hdoc]}") (the same answer; hyper adds $((INSTR[h401] - INSTR[hdoc])) for the POST and its body)"
fi
if [ -n "${INSTR[dpop]:-}" ] && [ -n "${INSTR[fwd]:-}" ]; then
    echo "dpop ÷ fwd instructions per request: $(ratio "${INSTR[dpop]}" "${INSTR[fwd]}") (the proof adds $((INSTR[dpop] - INSTR[fwd])))"
fi
baseline() { awk -v k="$1" '$1 == k {print $2}' "$ROOT/$BASELINE" 2>/dev/null; }
if [ -n "${INSTR[doc]:-}" ] && [ -n "$(baseline doc)" ]; then
    bar "doc ${INSTR[doc]} against its baseline $(baseline doc) (no worse)" "${INSTR[doc]}" "$(baseline doc)"
fi

# The regression guard: no kind more than 2% above its committed baseline.
if [ "$CHECK" = 1 ]; then
    failed=0
    for kind in "${!INSTR[@]}"; do
        base=$(baseline "$kind")
        [ -n "$base" ] || die "no baseline for $kind in $BASELINE"
        change=$(awk -v v="${INSTR[$kind]}" -v b="$base" 'BEGIN {printf "%+.1f", (v - b) * 100 / b}')
        if awk -v v="${INSTR[$kind]}" -v b="$base" 'BEGIN {exit !(v <= b * 1.02)}'; then
            echo "guard: $kind ${INSTR[$kind]} against baseline $base ($change%, limit +2%): ok"
        else
            echo "guard: $kind ${INSTR[$kind]} against baseline $base ($change%, limit +2%): WORSE"
            failed=1
        fi
    done
    [ "$failed" = 0 ] || die "instructions per request went up by more than 2%; if that is meant, UPDATE=1 and commit $BASELINE with the reason"
fi
if [ "$UPDATE" = 1 ]; then
    {
        echo "# Instructions per request (callgrind slope, one HTTP/1.1 client), written by"
        echo "# UPDATE=1 bash benches/callgrind.sh; CHECK=1 fails when a kind goes 2% above its line."
        for kind in doc 401 fwd dpop ngx call call25 pol pol25; do
            [ -n "${INSTR[$kind]:-}" ] && echo "$kind ${INSTR[$kind]}"
        done
    } >"$ROOT/$BASELINE"
    echo "wrote $BASELINE"
fi

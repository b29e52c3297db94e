# shellcheck shell=bash
# Helpers shared by benches/load.sh and benches/soak.sh; sourced, not run. The caller sets
# SCRIPT (its name, for messages) and ROOT (the repository) first.

die() {
    echo "$SCRIPT: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is not installed; $2"
}

# Builds the release edge and hyper-floor (the bare floor, the demo authorization and echo
# servers) and sets EDGE_BIN (unless given) and FLOOR_BIN.
build_binaries() {
    echo "== building release binaries" >&2
    cargo build --release --quiet
    cargo build --release --quiet --features floor --bin hyper-floor
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    EDGE_BIN=${EDGE_BIN:-$target/release/mcp-auth-edge}
    FLOOR_BIN=$target/release/hyper-floor
    [ -x "$EDGE_BIN" ] && [ -x "$FLOOR_BIN" ] || die "release binaries not found under $target/release"
}

# Makes the run's temporary directory WORK and arranges for every process started with
# `start` to be stopped, by PID, and WORK removed, however the script ends.
make_work() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcp-auth-edge-$1.XXXXXX")
    PIDS=()
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

# shellcheck disable=SC2317 # called by the EXIT trap
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

# Waits up to 15 s for URL to answer 200 (an https URL: with the run's certificate,
# $WORK/tls/cert.pem, verified).
wait_ok() {
    local url=$1 pid=$2 name=$3
    local -a ca=()
    [[ "$url" != https:* ]] || ca=(--cacert "$WORK/tls/cert.pem")
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || die "$name exited; its log:$(printf '\n')$(cat "$WORK/$name.log")"
        [ "$(curl -s "${ca[@]}" -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)" = 200 ] && return 0
        sleep 0.1
    done
    die "$name did not answer 200 on $url within 15 s; its log:$(printf '\n')$(cat "$WORK/$name.log")"
}

# Same status from curl as wrk will get; the body in $WORK/NAME.body, headers in NAME.headers.
probe() {
    local name=$1 expect=$2 url=$3
    shift 3
    local status
    status=$(curl -s -D "$WORK/$name.headers" -o "$WORK/$name.body" -w '%{http_code}' --max-time 5 "$@" "$url")
    [ "$status" = "$expect" ] || die "$name answered $status, not $expect:$(printf '\n')$(cat "$WORK/$name.body")"
}

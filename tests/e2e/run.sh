#!/usr/bin/env bash
# End-to-end discovery checks: a real OpenID provider (oidc-provider), mcp-auth-edge in front of
# it, and the clients people run (MCP TypeScript SDK, MCP Python SDK, a browser's CORS view)
# discovering through the edge. Everything listens on 127.0.0.1; every wait is bounded.
#
#   bash tests/e2e/run.sh          # debug build of the edge (E2E_PROFILE=release for release)
#
# Ends with `N passed, M failed` and exits non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PROFILE=${E2E_PROFILE:-debug}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcp-auth-edge-e2e.XXXXXX")
PIDS=()

say() { printf '== %s\n' "$*"; }

# Stops what this script started, by PID: SIGTERM, then SIGKILL after 5 s.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
SUMMARY_PRINTED=0
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$WORK"
  # A step that died under `set -e` still ends the run with the closing line, as a failure.
  if ((SUMMARY_PRINTED == 0)); then
    echo "run.sh stopped early (status $rc)"
    echo "${passed:-0} passed, $((${failed:-0} + 1)) failed"
    exit $((rc == 0 ? 1 : rc))
  fi
}
trap cleanup EXIT

stamp_of() { sha256sum "$1" | cut -d' ' -f1; }

# --- what the checks need, installed only when its lock file changed --------------------------
command -v node >/dev/null || { echo "node (20 or later) is required" >&2; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 20)) || { echo "node 20 or later is required, found $(node --version)" >&2; exit 1; }
if [[ ! -f "$HERE/node_modules/.e2e-stamp" || $(cat "$HERE/node_modules/.e2e-stamp") != $(stamp_of "$HERE/package-lock.json") ]]; then
  say "npm ci (tests/e2e)"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
  stamp_of "$HERE/package-lock.json" >"$HERE/node_modules/.e2e-stamp"
fi
PY=${PYTHON:-python3}
if [[ ! -x "$HERE/.venv/bin/python" ]]; then
  say "python venv (tests/e2e/.venv)"
  "$PY" -m venv "$HERE/.venv"
fi
if [[ ! -f "$HERE/.venv/.e2e-stamp" || $(cat "$HERE/.venv/.e2e-stamp") != $(stamp_of "$HERE/requirements.txt") ]]; then
  say "pip install -r requirements.txt"
  "$HERE/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  stamp_of "$HERE/requirements.txt" >"$HERE/.venv/.e2e-stamp"
fi

# --- the edge ------------------------------------------------------------------------------------
say "cargo build ($PROFILE)"
build_start=$SECONDS
if [[ $PROFILE == release ]]; then
  (cd "$ROOT" && cargo build --release --bin mcp-auth-edge)
else
  (cd "$ROOT" && cargo build --bin mcp-auth-edge)
fi
say "built in $((SECONDS - build_start)) s"
EDGE_BIN="$ROOT/target/$PROFILE/mcp-auth-edge"

# Polls `$1` (a command) every 0.1 s for at most `$2` tenths of a second.
wait_for() {
  local i
  for ((i = 0; i < $2; i++)); do
    if eval "$1"; then return 0; fi
    sleep 0.1
  done
  return 1
}
http_status() { # prints the status of GET $1, or 000
  node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(1000) }).then((r) => console.log(r.status), () => console.log("000"))' "$1"
}
free_ports() { # two distinct free loopback ports, asked of the kernel (bind to 0, read, release)
  node -e '
    const net = require("node:net");
    const one = () => new Promise((ok) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); }); });
    (async () => { const a = await one(); let b = await one(); while (b === a) b = await one(); console.log(a, b); })();'
}

passed=0
failed=0
LOGS=()
fail_line() {
  failed=$((failed + 1))
  echo "  FAIL $*"
}

# Runs one client script (bounded), adds its `RESULT name passed=N failed=M` line to the totals;
# a script that fails without reporting a failed check counts as one failure.
run_client() {
  local name=$1 rc=0 line p f out="$WORK/$ROUND-$1"
  shift
  say "$ROUND: $name"
  (cd "$HERE" && timeout 120 "$@") >"$out.out" 2>"$out.err" || rc=$?
  cat "$out.out"
  line=$(grep -E "^RESULT $name passed=[0-9]+ failed=[0-9]+$" "$out.out" | tail -n1 || true)
  if [[ -n $line ]]; then
    p=${line#*passed=}
    p=${p%% *}
    f=${line##*failed=}
  else
    p=0
    f=0
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  if ((rc != 0 && f == 0)); then
    fail_line "$name exited $rc without reporting a failed check; its stderr:"
    sed 's/^/       /' "$out.err"
  elif ((rc != 0)) && [[ -s "$out.err" ]]; then
    sed 's/^/  stderr: /' "$out.err" | tail -n 20
  fi
}

# One round: a fresh provider (issuer path $2, empty for none) and a fresh edge in front of it,
# every client, then a graceful stop of both.
round() {
  ROUND=$1
  local issuer_path=$2 oidc_pid edge_pid edge_rc=0
  local edge_port admin_port
  read -r edge_port admin_port < <(free_ports)
  EDGE_URL="http://127.0.0.1:$edge_port"
  RESOURCE_URL="$EDGE_URL/mcp"
  SCOPES="mcp:tools mcp:resources"
  RESOURCE_NAME="mcp-auth-edge e2e"
  RESOURCE_DOC="$EDGE_URL/docs"

  say "$ROUND: oidc-provider${issuer_path:+ mounted at $issuer_path}"
  E2E_RESOURCE="$RESOURCE_URL" E2E_SCOPES="$SCOPES" E2E_ISSUER_PATH="$issuer_path" \
    node "$HERE/oidc.mjs" >"$WORK/$ROUND-oidc.out" 2>"$WORK/$ROUND-oidc.err" &
  oidc_pid=$!
  PIDS+=("$oidc_pid")
  if ! wait_for 'grep -qs "^OIDC_READY " "$WORK/$ROUND-oidc.out"' 150; then
    fail_line "$ROUND: oidc-provider did not start in 15 s:"
    sed 's/^/       /' "$WORK/$ROUND-oidc.err"
    return 0
  fi
  ISSUER=$(sed -n 's/^OIDC_READY .*issuer=\([^ ]*\).*/\1/p' "$WORK/$ROUND-oidc.out")
  say "$ROUND: issuer $ISSUER"

  say "$ROUND: mcp-auth-edge on $EDGE_URL (admin 127.0.0.1:$admin_port)"
  LOGS+=("$WORK/$ROUND-edge.log")
  "$EDGE_BIN" --listen "127.0.0.1:$edge_port" --resource "$RESOURCE_URL" --auth-server "$ISSUER" \
    --admin-listen "127.0.0.1:$admin_port" --scope mcp:tools --scope mcp:resources \
    --resource-name "$RESOURCE_NAME" --resource-documentation "$RESOURCE_DOC" >"$WORK/$ROUND-edge.log" 2>&1 &
  edge_pid=$!
  PIDS+=("$edge_pid")
  if ! wait_for '[[ $(http_status "http://127.0.0.1:$admin_port/readyz") == 200 ]]' 150; then
    fail_line "$ROUND: the edge was not ready in 15 s"
    stop_pid "$edge_pid"
    stop_pid "$oidc_pid"
    return 0
  fi
  say "$ROUND: edge ready"

  export EDGE_URL RESOURCE_URL ISSUER SCOPES RESOURCE_NAME RESOURCE_DOC
  run_client cors node cors.mjs
  run_client ts_client node ts_client.mjs
  run_client py_client "$HERE/.venv/bin/python" py_client.py

  # Graceful shutdown: SIGTERM ends the edge with status 0.
  say "$ROUND: edge shutdown"
  kill -TERM "$edge_pid"
  if wait_for '! kill -0 "$edge_pid" 2>/dev/null' 100; then
    wait "$edge_pid" || edge_rc=$?
    if ((edge_rc == 0)); then
      passed=$((passed + 1))
      echo "  ok   the edge exits 0 on SIGTERM"
    else
      fail_line "the edge exited $edge_rc on SIGTERM"
    fi
  else
    fail_line "the edge was still running 10 s after SIGTERM"
    stop_pid "$edge_pid"
  fi
  stop_pid "$oidc_pid"
}

# The gate round: a real MCP server (mcp_server.mjs, the TypeScript SDK's server, validating
# JWT access tokens itself) behind the edge's gate (`--upstream … --token-check presence`), and
# the clients going through it: the browser's CORS view, the TypeScript SDK, the Python SDK.
gate_round() {
  ROUND=gate
  local oidc_pid mcp_pid edge_pid edge_rc=0 edge_port admin_port mcp_port
  read -r edge_port admin_port < <(free_ports)
  EDGE_URL="http://127.0.0.1:$edge_port"
  RESOURCE_URL="$EDGE_URL/mcp"
  SCOPES="mcp:tools mcp:resources"
  E2E_CLIENT_ID=e2e-service
  E2E_CLIENT_SECRET=e2e-service-secret-not-a-secret

  say "$ROUND: oidc-provider"
  E2E_RESOURCE="$RESOURCE_URL" E2E_SCOPES="$SCOPES" E2E_ISSUER_PATH="" \
    E2E_CLIENT_ID="$E2E_CLIENT_ID" E2E_CLIENT_SECRET="$E2E_CLIENT_SECRET" \
    node "$HERE/oidc.mjs" >"$WORK/$ROUND-oidc.out" 2>"$WORK/$ROUND-oidc.err" &
  oidc_pid=$!
  PIDS+=("$oidc_pid")
  if ! wait_for 'grep -qs "^OIDC_READY " "$WORK/$ROUND-oidc.out"' 150; then
    fail_line "$ROUND: oidc-provider did not start in 15 s:"
    sed 's/^/       /' "$WORK/$ROUND-oidc.err"
    return 0
  fi
  ISSUER=$(sed -n 's/^OIDC_READY .*issuer=\([^ ]*\).*/\1/p' "$WORK/$ROUND-oidc.out")
  say "$ROUND: issuer $ISSUER"

  say "$ROUND: MCP server (TypeScript SDK, validates the provider's JWTs itself)"
  LOGS+=("$WORK/$ROUND-mcp.err")
  ISSUER="$ISSUER" RESOURCE_URL="$RESOURCE_URL" EDGE_URL="$EDGE_URL" \
    node "$HERE/mcp_server.mjs" >"$WORK/$ROUND-mcp.out" 2>"$WORK/$ROUND-mcp.err" &
  mcp_pid=$!
  PIDS+=("$mcp_pid")
  if ! wait_for 'grep -qs "^MCP_READY " "$WORK/$ROUND-mcp.out"' 150; then
    fail_line "$ROUND: the MCP server did not start in 15 s:"
    sed 's/^/       /' "$WORK/$ROUND-mcp.err"
    stop_pid "$oidc_pid"
    return 0
  fi
  mcp_port=$(sed -n 's/^MCP_READY port=\([0-9]*\).*/\1/p' "$WORK/$ROUND-mcp.out")
  MCP_URL="http://127.0.0.1:$mcp_port"

  say "$ROUND: mcp-auth-edge on $EDGE_URL, gate in front of $MCP_URL (admin 127.0.0.1:$admin_port)"
  LOGS+=("$WORK/$ROUND-edge.log")
  "$EDGE_BIN" --listen "127.0.0.1:$edge_port" --resource "$RESOURCE_URL" --auth-server "$ISSUER" \
    --admin-listen "127.0.0.1:$admin_port" --scope mcp:tools --scope mcp:resources \
    --upstream "$MCP_URL" --token-check presence >"$WORK/$ROUND-edge.log" 2>&1 &
  edge_pid=$!
  PIDS+=("$edge_pid")
  if ! wait_for '[[ $(http_status "http://127.0.0.1:$admin_port/readyz") == 200 ]]' 150; then
    fail_line "$ROUND: the edge was not ready in 15 s"
    stop_pid "$edge_pid"
    stop_pid "$mcp_pid"
    stop_pid "$oidc_pid"
    return 0
  fi
  say "$ROUND: edge ready"

  ADMIN_URL="http://127.0.0.1:$admin_port"
  export EDGE_URL RESOURCE_URL ISSUER SCOPES MCP_URL ADMIN_URL E2E_CLIENT_ID E2E_CLIENT_SECRET
  run_client gate_cors node gate_cors.mjs
  run_client ts_gate node ts_gate.mjs
  run_client py_gate "$HERE/.venv/bin/python" py_gate.py

  say "$ROUND: edge shutdown"
  kill -TERM "$edge_pid"
  if wait_for '! kill -0 "$edge_pid" 2>/dev/null' 100; then
    wait "$edge_pid" || edge_rc=$?
    if ((edge_rc == 0)); then
      passed=$((passed + 1))
      echo "  ok   the edge (gate mode) exits 0 on SIGTERM"
    else
      fail_line "the edge (gate mode) exited $edge_rc on SIGTERM"
    fi
  else
    fail_line "the edge (gate mode) was still running 10 s after SIGTERM"
    stop_pid "$edge_pid"
  fi
  stop_pid "$mcp_pid"
  stop_pid "$oidc_pid"
}

round root-issuer ""
round issuer-path /oidc
gate_round

if ((failed > 0)); then
  for log in "${LOGS[@]}"; do
    say "$(basename "$log")"
    cat "$log"
  done
fi
SUMMARY_PRINTED=1
echo "$passed passed, $failed failed"
((failed == 0))

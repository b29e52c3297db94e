#!/usr/bin/env bash
# End-to-end discovery checks: a real OpenID provider (oidc-provider), mcp-auth-edge in front of
# it, and the clients people run (MCP TypeScript SDK, MCP Python SDK, a browser's CORS view)
# discovering through the edge. Everything listens on 127.0.0.1; every wait is bounded.
#
#   bash tests/e2e/run.sh          # debug build of the edge (E2E_PROFILE=release for release)
#   E2E_ROUNDS="jwt introspect dpop" bash tests/e2e/run.sh   # only some rounds
#
# Ends with `N passed, M failed` and exits non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PROFILE=${E2E_PROFILE:-debug}
ROUNDS=${E2E_ROUNDS:-root-issuer issuer-path gate jwt introspect dpop policy}
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
EDGE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/mcp-auth-edge"

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
free_ports() { # $1 (default 2) distinct free loopback ports, asked of the kernel (bind to 0, read, release)
  node -e '
    const net = require("node:net");
    const one = () => new Promise((ok) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); }); });
    (async () => {
      const ports = new Set();
      while (ports.size < Number(process.argv[1])) ports.add(await one());
      console.log([...ports].join(" "));
    })();' "${1:-2}"
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
    --upstream "$MCP_URL" --token-check presence --cors-origin https://app.example >"$WORK/$ROUND-edge.log" 2>&1 &
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

# --- the rounds where the edge checks tokens itself ----------------------------------------------

# Starts oidc.mjs for $ROUND with the given NAME=value settings; sets OIDC_PID and ISSUER.
start_oidc() {
  say "$ROUND: oidc-provider (${*%%=*})"
  env E2E_ISSUER_PATH="" "$@" node "$HERE/oidc.mjs" >"$WORK/$ROUND-oidc.out" 2>"$WORK/$ROUND-oidc.err" &
  OIDC_PID=$!
  PIDS+=("$OIDC_PID")
  if ! wait_for 'grep -qs "^OIDC_READY " "$WORK/$ROUND-oidc.out"' 150; then
    fail_line "$ROUND: oidc-provider did not start in 15 s:"
    sed 's/^/       /' "$WORK/$ROUND-oidc.err"
    return 1
  fi
  ISSUER=$(sed -n 's/^OIDC_READY .*issuer=\([^ ]*\).*/\1/p' "$WORK/$ROUND-oidc.out")
  say "$ROUND: issuer $ISSUER"
}

# Starts mcp_server.mjs for $ROUND with the given NAME=value settings; sets MCP_PID and MCP_URL.
start_mcp() {
  say "$ROUND: MCP server ($*)"
  LOGS+=("$WORK/$ROUND-mcp.err")
  env ISSUER="$ISSUER" RESOURCE_URL="$RESOURCE_URL" EDGE_URL="$EDGE_URL" "$@" \
    node "$HERE/mcp_server.mjs" >"$WORK/$ROUND-mcp.out" 2>"$WORK/$ROUND-mcp.err" &
  MCP_PID=$!
  PIDS+=("$MCP_PID")
  if ! wait_for 'grep -qs "^MCP_READY " "$WORK/$ROUND-mcp.out"' 150; then
    fail_line "$ROUND: the MCP server did not start in 15 s:"
    sed 's/^/       /' "$WORK/$ROUND-mcp.err"
    return 1
  fi
  MCP_URL="http://127.0.0.1:$(sed -n 's/^MCP_READY port=\([0-9]*\).*/\1/p' "$WORK/$ROUND-mcp.out")"
}

# Starts an edge named $1 (for its log) whose admin listener is on port $2, with the flags that
# follow and the NAME=value settings of EDGE_ENV in its environment, and waits for /readyz; sets
# EDGE_PID.
EDGE_ENV=()
start_edge() {
  local name=$1 admin_port=$2
  shift 2
  say "$ROUND: mcp-auth-edge $name: $*"
  LOGS+=("$WORK/$ROUND-$name.log")
  env "${EDGE_ENV[@]}" "$EDGE_BIN" --admin-listen "127.0.0.1:$admin_port" "$@" >"$WORK/$ROUND-$name.log" 2>&1 &
  EDGE_PID=$!
  PIDS+=("$EDGE_PID")
  if ! wait_for '[[ $(http_status "http://127.0.0.1:$admin_port/readyz") == 200 ]]' 150; then
    fail_line "$ROUND: the edge $name was not ready in 15 s"
    sed 's/^/       /' "$WORK/$ROUND-$name.log"
    return 1
  fi
}

# SIGTERM to the edge $2 (named $1) and a check that it exits 0.
stop_edge() {
  local name=$1 pid=$2 rc=0
  kill -TERM "$pid" 2>/dev/null || true
  if wait_for '! kill -0 "$pid" 2>/dev/null' 100; then
    wait "$pid" || rc=$?
    if ((rc == 0)); then
      passed=$((passed + 1))
      echo "  ok   the edge ($name) exits 0 on SIGTERM"
    else
      fail_line "the edge ($name) exited $rc on SIGTERM"
    fi
  else
    fail_line "the edge ($name) was still running 10 s after SIGTERM"
    stop_pid "$pid"
  fi
}

# A round with the edge checking tokens itself, $1 = jwt or introspect: a provider issuing JWT
# access tokens (ES256, beside an RSA key in its JWKS) or opaque ones (with introspection and
# revocation), the MCP server trusting the edge (E2E_MCP_AUTH=edge), and two edges in front of
# it for the same resource: "edge" (--required-scope mcp:tools --strip-authorization) and
# "replica" (jwt: the defaults, forwarding the token; introspect: --introspection-cache 0).
# The clients: the TypeScript and Python SDKs through "edge", then edge_tokens.mjs with the
# tokens either edge must refuse; in the introspect round, as_down.mjs after the provider stops.
verify_round() {
  ROUND=$1
  local mode=$1 edge_port admin_port replica_port replica_admin edge_pid replica_pid mcp_pid oidc_pid
  read -r edge_port admin_port replica_port replica_admin < <(free_ports 4)
  EDGE_URL="http://127.0.0.1:$edge_port"
  RESOURCE_URL="$EDGE_URL/mcp"
  REPLICA_URL="http://127.0.0.1:$replica_port"
  OTHER_RESOURCE="https://other-mcp.example/mcp"
  SCOPES="mcp:tools mcp:resources"
  E2E_CLIENT_ID=e2e-service
  E2E_CLIENT_SECRET=e2e-service-secret-not-a-secret
  E2E_EDGE_CLIENT_ID=e2e-edge
  E2E_EDGE_CLIENT_SECRET=e2e-edge-secret-not-a-secret
  E2E_STATE="$WORK/$ROUND-state.json"

  local provider=(E2E_RESOURCE="$RESOURCE_URL" E2E_SCOPES="$SCOPES" E2E_OTHER_RESOURCE="$OTHER_RESOURCE"
    E2E_CLIENT_ID="$E2E_CLIENT_ID" E2E_CLIENT_SECRET="$E2E_CLIENT_SECRET")
  if [[ $mode == jwt ]]; then
    provider+=(E2E_JWT_ALG=ES256)
  else
    provider+=(E2E_TOKEN_FORMAT=opaque E2E_EDGE_CLIENT_ID="$E2E_EDGE_CLIENT_ID" E2E_EDGE_CLIENT_SECRET="$E2E_EDGE_CLIENT_SECRET")
  fi
  start_oidc "${provider[@]}" || return 0
  oidc_pid=$OIDC_PID
  start_mcp E2E_MCP_AUTH=edge || { stop_pid "$oidc_pid"; return 0; }
  mcp_pid=$MCP_PID

  # The browser checks come from https://app.example; the replica answers on its own port, so
  # the loopback address at any port is an alias of the resource. Both bind the MCP server's
  # session ids to their caller with the same key, so the SDK clients' sessions run on wrapped
  # ids and either edge accepts them.
  local common=(--resource "$RESOURCE_URL" --auth-server "$ISSUER" --scope mcp:tools --scope mcp:resources
    --upstream "$MCP_URL" --token-check "$mode" --cors-origin https://app.example --host-alias 127.0.0.1
    --session-key e2e-session-key-not-a-secret-0123456789)
  local edge_flags=(--listen "127.0.0.1:$edge_port" "${common[@]}" --required-scope mcp:tools --strip-authorization)
  local replica_flags=(--listen "127.0.0.1:$replica_port" "${common[@]}")
  EDGE_ENV=()
  if [[ $mode == introspect ]]; then
    # The edge's secret from the environment (as the README advises), the replica's as a flag.
    EDGE_ENV=(MCP_AUTH_EDGE_INTROSPECTION_CLIENT_SECRET="$E2E_EDGE_CLIENT_SECRET")
    edge_flags+=(--introspection-client-id "$E2E_EDGE_CLIENT_ID")
    replica_flags+=(--introspection-client-id "$E2E_EDGE_CLIENT_ID" --introspection-client-secret "$E2E_EDGE_CLIENT_SECRET"
      --introspection-cache 0)
  fi
  if ! start_edge edge "$admin_port" "${edge_flags[@]}"; then
    stop_pid "$mcp_pid"
    stop_pid "$oidc_pid"
    return 0
  fi
  edge_pid=$EDGE_PID
  EDGE_ENV=()
  if ! start_edge replica "$replica_admin" "${replica_flags[@]}"; then
    stop_pid "$edge_pid"
    stop_pid "$mcp_pid"
    stop_pid "$oidc_pid"
    return 0
  fi
  replica_pid=$EDGE_PID
  say "$ROUND: edges ready"

  export EDGE_URL RESOURCE_URL REPLICA_URL OTHER_RESOURCE ISSUER SCOPES MCP_URL E2E_CLIENT_ID E2E_CLIENT_SECRET \
    E2E_EDGE_CLIENT_ID E2E_EDGE_CLIENT_SECRET E2E_STATE
  export TOKEN_CHECK=$mode
  run_client ts_verify node ts_verify.mjs
  run_client py_verify "$HERE/.venv/bin/python" py_verify.py
  run_client edge_tokens node edge_tokens.mjs

  if [[ $mode == jwt ]]; then
    # Introspect mode needs an introspection_endpoint; this provider publishes none.
    say "$ROUND: an introspect-mode edge against a provider without introspection"
    local out="$WORK/$ROUND-no-introspection.log" rc=0 pid
    "$EDGE_BIN" --listen 127.0.0.1:0 --resource "$RESOURCE_URL" --auth-server "$ISSUER" --upstream "$MCP_URL" \
      --token-check introspect --introspection-client-id x --introspection-client-secret y >"$out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    if wait_for '! kill -0 "$pid" 2>/dev/null' 100; then
      wait "$pid" || rc=$?
      if ((rc != 0)) && grep -q "names no introspection_endpoint" "$out"; then
        passed=$((passed + 1))
        echo "  ok   it stops at start-up (status $rc): $(grep -o 'the authorization server metadata names no introspection_endpoint[^;]*' "$out" | head -n1)"
      else
        fail_line "it exited $rc without naming the missing introspection_endpoint:"
        sed 's/^/       /' "$out"
      fi
    else
      fail_line "it was still running 10 s after start"
      stop_pid "$pid"
    fi
  else
    # The provider goes away: new tokens cannot be checked (503), verdicts in the cache still hold.
    say "$ROUND: the provider stops"
    stop_pid "$oidc_pid"
    run_client as_down node as_down.mjs
  fi

  say "$ROUND: edge shutdown"
  stop_edge "$mode, edge" "$edge_pid"
  stop_edge "$mode, replica" "$replica_pid"
  stop_pid "$mcp_pid"
  stop_pid "$oidc_pid"
}

# --- the policy rounds (issue 12): MCP SDK clients and servers of both revisions -----------------

# A policy round, $1 = the MCP server's SDK (ts1: @modelcontextprotocol/sdk 1.32.2, ts2:
# @modelcontextprotocol/server 2.4.0, py: mcp 2.3.0), all from policy_server.{mjs,py}: tools
# read_notes and admin_reset. A provider whose service client may hold mcp:tools and mcp:admin,
# and two edges in front of the MCP server, each its own resource (the provider accepts both as
# resource indicators), both with --token-check jwt --strip-authorization --scope mcp:tools and the
# policy of policy.json below: "forbidden" (the step-up 403) and "tool_error" (--policy-denial
# tool_error). Every client runs against both: the TypeScript SDK 1.32.2, the TypeScript SDK v2 at
# its default (2025-11-25) and with versionNegotiation auto (2026-07-28 where the server speaks
# it), the Python SDK (auto).
policy_round() {
  local server=$1
  ROUND=policy-$server
  local edge_port admin_port te_port te_admin forbidden_pid tool_error_pid
  read -r edge_port admin_port te_port te_admin < <(free_ports 4)
  EDGE_URL="http://127.0.0.1:$edge_port"
  RESOURCE_URL="$EDGE_URL/mcp"
  TOOL_ERROR_URL="http://127.0.0.1:$te_port"
  TOOL_ERROR_RESOURCE="$TOOL_ERROR_URL/mcp"
  SCOPES="mcp:tools mcp:admin"
  E2E_CLIENT_ID=e2e-service
  E2E_CLIENT_SECRET=e2e-service-secret-not-a-secret
  POLICY_SERVER=$server

  start_oidc E2E_RESOURCE="$RESOURCE_URL" E2E_SCOPES="$SCOPES" E2E_OTHER_RESOURCE="$TOOL_ERROR_RESOURCE" \
    E2E_CLIENT_ID="$E2E_CLIENT_ID" E2E_CLIENT_SECRET="$E2E_CLIENT_SECRET" || return 0
  local oidc_pid=$OIDC_PID

  say "$ROUND: MCP server ($server)"
  LOGS+=("$WORK/$ROUND-mcp.err")
  local server_cmd=(node "$HERE/policy_server.mjs")
  [[ $server == py ]] && server_cmd=("$HERE/.venv/bin/python" "$HERE/policy_server.py")
  E2E_SDK=${server/ts/v} "${server_cmd[@]}" >"$WORK/$ROUND-mcp.out" 2>"$WORK/$ROUND-mcp.err" &
  local mcp_pid=$!
  PIDS+=("$mcp_pid")
  if ! wait_for 'grep -qs "^MCP_READY " "$WORK/$ROUND-mcp.out"' 150; then
    fail_line "$ROUND: the MCP server did not start in 15 s:"
    sed 's/^/       /' "$WORK/$ROUND-mcp.err"
    stop_pid "$oidc_pid"
    return 0
  fi
  MCP_URL="http://127.0.0.1:$(sed -n 's/^MCP_READY port=\([0-9]*\).*/\1/p' "$WORK/$ROUND-mcp.out")"

  # The base scope reaches tools/list and every tool but admin_*, which needs mcp:admin; what
  # no rule names is denied, so the protocol's own methods are listed: initialize and the
  # notifications (2025-11-25), server/discover (the probe of 2026-07-28 clients), ping.
  cat >"$WORK/$ROUND-policy.json" <<'JSON'
{"policy": {"default": "deny", "rules": [
  {"method": "initialize"},
  {"method": "notifications/*"},
  {"method": "server/discover"},
  {"method": "ping"},
  {"method": "tools/list", "scopes": ["mcp:tools"]},
  {"method": "tools/call", "name": "admin_*", "scopes": ["mcp:admin"]},
  {"method": "tools/call", "scopes": ["mcp:tools"]}]}}
JSON
  local common=(--auth-server "$ISSUER" --scope mcp:tools --upstream "$MCP_URL" --token-check jwt
    --strip-authorization --config "$WORK/$ROUND-policy.json")
  start_edge forbidden "$admin_port" --listen "127.0.0.1:$edge_port" --resource "$RESOURCE_URL" "${common[@]}" || {
    stop_pid "$mcp_pid"
    stop_pid "$oidc_pid"
    return 0
  }
  forbidden_pid=$EDGE_PID
  start_edge tool_error "$te_admin" --listen "127.0.0.1:$te_port" --resource "$TOOL_ERROR_RESOURCE" "${common[@]}" \
    --policy-denial tool_error || {
    stop_pid "$forbidden_pid"
    stop_pid "$mcp_pid"
    stop_pid "$oidc_pid"
    return 0
  }
  tool_error_pid=$EDGE_PID
  say "$ROUND: edges ready"

  # tools/list drops the tools a token cannot call, so the clients check that only the allowed
  # tool is listed (POLICY_LISTS_FILTERED=0 checks only its presence).
  POLICY_LISTS_FILTERED=${POLICY_LISTS_FILTERED:-1}
  export EDGE_URL RESOURCE_URL TOOL_ERROR_URL TOOL_ERROR_RESOURCE ISSUER SCOPES MCP_URL E2E_CLIENT_ID \
    E2E_CLIENT_SECRET POLICY_SERVER POLICY_LISTS_FILTERED
  run_client policy_ts1 env E2E_CLIENT_SDK=v1 node policy_ts.mjs
  run_client policy_ts2 env E2E_CLIENT_SDK=v2 E2E_NEGOTIATION=legacy node policy_ts.mjs
  run_client policy_ts2_auto env E2E_CLIENT_SDK=v2 E2E_NEGOTIATION=auto node policy_ts.mjs
  run_client policy_py "$HERE/.venv/bin/python" policy_py.py

  say "$ROUND: edge shutdown"
  stop_edge "$server, forbidden" "$forbidden_pid"
  stop_edge "$server, tool_error" "$tool_error_pid"
  stop_pid "$mcp_pid"
  stop_pid "$oidc_pid"
}
# --- end of the policy rounds --------------------------------------------------------------------
# The DPoP round (RFC 9449): the provider binds the resource's JWT access tokens to the client's
# key (`cnf.jkt`, oidc-provider's DPoP feature), the MCP server trusts the edge, and three edges
# stand for the same public resource (RESOURCE_URL, on the port of "edge"), all `--token-check jwt
# --dpop require`: "edge" without nonces, and "nonce-a" and "nonce-b", two replicas with one
# `--dpop-nonce-key` (from the environment), which dpop_client.mjs reaches through a small load
# balancer of its own that alternates between them. All three bind the MCP server's session ids
# to their caller with one --session-key, so one session runs through both replicas. The client is openid-client (over
# oauth4webapi) driving the MCP TypeScript SDK's transport.
dpop_round() {
  ROUND=dpop
  local edge_port admin_port nonce_a_port nonce_a_admin nonce_b_port nonce_b_admin pids=() pid oidc_pid mcp_pid
  read -r edge_port admin_port nonce_a_port nonce_a_admin nonce_b_port nonce_b_admin < <(free_ports 6)
  EDGE_URL="http://127.0.0.1:$edge_port"
  RESOURCE_URL="$EDGE_URL/mcp"
  NONCE_A_URL="http://127.0.0.1:$nonce_a_port"
  NONCE_B_URL="http://127.0.0.1:$nonce_b_port"
  SCOPES="mcp:tools mcp:resources"
  E2E_CLIENT_ID=e2e-service
  E2E_CLIENT_SECRET=e2e-service-secret-not-a-secret

  start_oidc E2E_RESOURCE="$RESOURCE_URL" E2E_SCOPES="$SCOPES" E2E_JWT_ALG=ES256 \
    E2E_CLIENT_ID="$E2E_CLIENT_ID" E2E_CLIENT_SECRET="$E2E_CLIENT_SECRET" || return 0
  oidc_pid=$OIDC_PID
  start_mcp E2E_MCP_AUTH=edge || { stop_pid "$oidc_pid"; return 0; }
  mcp_pid=$MCP_PID

  # The replicas answer on ports of their own for the one public resource: the loopback address
  # at any port is an alias of it, and proofs name RESOURCE_URL, as behind a load balancer.
  local common=(--resource "$RESOURCE_URL" --auth-server "$ISSUER" --scope mcp:tools --scope mcp:resources
    --upstream "$MCP_URL" --token-check jwt --dpop require --host-alias 127.0.0.1)
  local session_key=MCP_AUTH_EDGE_SESSION_KEY=e2e-session-key-not-a-secret-0123456789
  EDGE_ENV=("$session_key")
  start_edge edge "$admin_port" --listen "127.0.0.1:$edge_port" "${common[@]}" && pids+=("$EDGE_PID")
  EDGE_ENV=("$session_key" MCP_AUTH_EDGE_DPOP_NONCE_KEY=e2e-dpop-nonce-key-not-a-secret-0123456789)
  start_edge nonce-a "$nonce_a_admin" --listen "127.0.0.1:$nonce_a_port" "${common[@]}" && pids+=("$EDGE_PID")
  start_edge nonce-b "$nonce_b_admin" --listen "127.0.0.1:$nonce_b_port" "${common[@]}" && pids+=("$EDGE_PID")
  EDGE_ENV=()
  if ((${#pids[@]} == 3)); then
    say "$ROUND: edges ready"
    EDGE_ADMIN_URL="http://127.0.0.1:$admin_port"
    export EDGE_URL EDGE_ADMIN_URL RESOURCE_URL NONCE_A_URL NONCE_B_URL ISSUER SCOPES MCP_URL E2E_CLIENT_ID E2E_CLIENT_SECRET
    run_client dpop_client node dpop_client.mjs
    say "$ROUND: edge shutdown"
    stop_edge "dpop, edge" "${pids[0]}"
    stop_edge "dpop, nonce-a" "${pids[1]}"
    stop_edge "dpop, nonce-b" "${pids[2]}"
  else
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
  fi
  stop_pid "$mcp_pid"
  stop_pid "$oidc_pid"
}

for name in $ROUNDS; do
  case $name in
    root-issuer) round root-issuer "" ;;
    issuer-path) round issuer-path /oidc ;;
    gate) gate_round ;;
    jwt | introspect) verify_round "$name" ;;
    policy-ts1 | policy-ts2 | policy-py) policy_round "${name#policy-}" ;;
    policy) for server in ts1 ts2 py; do policy_round "$server"; done ;;
    dpop) dpop_round ;;
    *) fail_line "unknown round $name in E2E_ROUNDS" ;;
  esac
done

if ((failed > 0)); then
  for log in "${LOGS[@]}"; do
    say "$(basename "$log")"
    cat "$log"
  done
fi
SUMMARY_PRINTED=1
echo "$passed passed, $failed failed"
((failed == 0))

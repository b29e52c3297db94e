#!/usr/bin/env bash
# Checks deploy/kubernetes offline, failing on the first problem:
#   1. every manifest against the Kubernetes API schemas, strictly (an unknown or misspelt field
#      is an error), with kubernetes-validate from PyPI, which bundles the schemas;
#   2. kustomization.yaml lists exactly the manifests in the directory;
#   3. the ConfigMap's config.json gets the edge past configuration: the edge is started on it
#      and must bind its listeners (bad keys or values exit 2 before that).
#
#   bash deploy/validate.sh
#
# Settings (environment): KUBERNETES_VERSIONS ("1.30.0 1.37.0": the oldest version the
# manifests need, for the preStop sleep action, and the newest the validator bundles),
# VALIDATE_VENV (where the validator is installed; a cache directory by default), EDGE_BIN (the
# edge binary; by default the debug build, built if out of date).
#
# The edge listens on 127.0.0.1 ports of its choosing and is pointed at a closed loopback port
# for the metadata, so nothing leaves the machine; it is stopped by PID.
set -euo pipefail
exec </dev/null
cd "$(dirname "$0")/.."

VALIDATOR=kubernetes-validate==1.37.0
KUBERNETES_VERSIONS=${KUBERNETES_VERSIONS:-1.30.0 1.37.0}
VALIDATE_VENV=${VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-auth-edge/venv-${VALIDATOR/==/-}}
MANIFESTS=deploy/kubernetes

die() {
    echo "validate.sh: $*" >&2
    exit 1
}

# A virtual environment, because Debian's Python refuses `pip install` outside one (PEP 668).
if ! "$VALIDATE_VENV/bin/pip" show --quiet "${VALIDATOR%%=*}" >/dev/null 2>&1; then
    echo "installing $VALIDATOR in $VALIDATE_VENV"
    if ! python3 -m venv "$VALIDATE_VENV" 2>/dev/null; then
        # Debian ships the venv module separately.
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
        python3 -m venv "$VALIDATE_VENV"
    fi
    "$VALIDATE_VENV/bin/pip" install --quiet --disable-pip-version-check "$VALIDATOR"
fi
python=$VALIDATE_VENV/bin/python

shopt -s nullglob
manifests=()
for f in "$MANIFESTS"/*.yaml "$MANIFESTS"/*.yml; do
    # Kustomize's own file is no Kubernetes resource; the validator has no schema for it.
    [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
[ ${#manifests[@]} -gt 0 ] || die "no manifests in $MANIFESTS"

for version in $KUBERNETES_VERSIONS; do
    echo "== schemas of Kubernetes $version (strict)"
    # Exits non-zero on any invalid resource; warnings (a kind without a schema) fail too.
    out=$("$VALIDATE_VENV/bin/kubernetes-validate" --strict --kubernetes-version "$version" "${manifests[@]}" 2>&1) ||
        { echo "$out"; die "schema validation failed against Kubernetes $version"; }
    echo "$out"
    if grep -q WARN <<<"$out"; then
        die "a manifest could not be checked against Kubernetes $version"
    fi
done

echo "== kustomization.yaml lists every manifest"
"$python" - "$MANIFESTS" "${manifests[@]}" <<'EOF'
import os, sys, yaml
directory, files = sys.argv[1], sys.argv[2:]
with open(os.path.join(directory, "kustomization.yaml")) as f:
    listed = set(yaml.safe_load(f).get("resources", []))
present = {os.path.basename(p) for p in files}
if listed != present:
    sys.exit(f"kustomization.yaml resources {sorted(listed)} differ from the files {sorted(present)}")
print(f"{len(present)} manifests, all listed")
EOF

echo "== the ConfigMap's config.json gets the edge past configuration"
work=$(mktemp -d)
edge_pid=""
cleanup() {
    if [ -n "$edge_pid" ]; then
        kill "$edge_pid" 2>/dev/null || true
        wait "$edge_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
# Writes config.json, and prints the token check it asks for.
token_check=$("$python" - "$MANIFESTS/configmap.yaml" "$work/config.json" <<'EOF'
import json, sys, yaml
with open(sys.argv[1]) as f:
    text = yaml.safe_load(f)["data"]["config.json"]
with open(sys.argv[2], "w") as f:
    f.write(text)
print(json.loads(text).get("token_check", "jwt"))
EOF
)
if [ -z "${EDGE_BIN:-}" ]; then
    cargo build --quiet --bin mcp-auth-edge
    EDGE_BIN=${CARGO_TARGET_DIR:-target}/debug/mcp-auth-edge
fi
secret=()
if [ "$token_check" = introspect ]; then
    # In the cluster it comes from the Secret.
    secret=(MCP_AUTH_EDGE_INTROSPECTION_CLIENT_SECRET=placeholder)
fi
# Only the file and these flags: the Deployment's listen addresses are replaced by loopback
# ones, and the metadata URL by a closed loopback port (so an auth_server_metadata in the file
# goes unchecked).
env -i "${secret[@]}" "$EDGE_BIN" --config "$work/config.json" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --auth-server-metadata http://127.0.0.1:9/.well-known/oauth-authorization-server \
    2>"$work/edge.log" &
edge_pid=$!
for _ in $(seq 100); do
    grep -q "listening on" "$work/edge.log" && break
    kill -0 "$edge_pid" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q "listening on" "$work/edge.log"; then
    cat "$work/edge.log" >&2
    die "the edge did not start on $MANIFESTS/configmap.yaml's config.json"
fi
sed -n '1,4p' "$work/edge.log"

echo "== deploy/kubernetes is valid"

#!/usr/bin/env bash
# Schemathesis gate: property-based testing of a Conclave server against the
# OpenAPI document it serves.
#
#   .ci/schemathesis.sh /path/to/conclave
#
# Starts the given binary on a fresh data directory and a free loopback port
# and runs Schemathesis (all checks, all phases including stateful, a fixed
# seed, bounded examples) twice: over the client, discovery and federation
# routes (a client session that a hook renews on 401) and over /v1/admin/...
# and /metrics (the administrator token). Exits non-zero on any failure or error. The
# server is always stopped by its PID. Per-operation expectations live in
# .ci/schemathesis.toml beside this script.
#
# Environment knobs (all optional):
#   MAX_EXAMPLES   test cases per operation and phase          (default 10)
#   SEED           Hypothesis seed                             (default 1)
#   WORKERS        schemathesis workers                        (default 2)
#   OUT_DIR        reports and logs                            (default: a temp dir, kept)
#   SCHEMATHESIS   schemathesis executable; if unset, schemathesis==$ST_VERSION
#                  is installed into a venv in the temp dir
#   PYTHON         the Python for that venv                    (default python3; 3.12+
#                  is better: CPython 3.11's ast.parse is not thread-safe, which
#                  Hypothesis can hit with 2 workers as a rare "AST constructor
#                  recursion depth mismatch" error)
#   ST_VERSION     the pinned version                          (default 4.32.5)
#   ST_SCHEMA      test against this document (a file) instead of the served
#                  /openapi.json, e.g. to try a document change without a rebuild
#   ST_CONFIG      the schemathesis.toml                       (default: beside this script)
#   ST_EXTRA_ARGS  extra arguments for both runs
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:?usage: .ci/schemathesis.sh /path/to/conclave}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
[ -x "$BIN" ] || { echo "not executable: $BIN" >&2; exit 2; }

MAX_EXAMPLES=${MAX_EXAMPLES:-10}
SEED=${SEED:-1}
WORKERS=${WORKERS:-2}
ST_VERSION=${ST_VERSION:-4.32.5}
ST_CONFIG=${ST_CONFIG:-$HERE/schemathesis.toml}
[ -f "$ST_CONFIG" ] || { echo "missing $ST_CONFIG" >&2; exit 2; }
TMP=$(mktemp -d /tmp/conclave-st.XXXXXX)
OUT_DIR=${OUT_DIR:-$TMP/out}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
DATA=$TMP/data   # `server init` wants a directory that does not exist yet
SERVER_PID=""
START=$(date +%s)

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- schemathesis -----------------------------------------------------------------
if [ -z "${SCHEMATHESIS:-}" ]; then
    echo "installing schemathesis==$ST_VERSION into $TMP/venv"
    "${PYTHON:-python3}" -m venv "$TMP/venv" && "$TMP/venv/bin/pip" install -q "schemathesis==$ST_VERSION" || {
        echo "cannot install schemathesis" >&2; exit 2; }
    SCHEMATHESIS=$TMP/venv/bin/schemathesis
fi
echo "using $("$SCHEMATHESIS" --version)"

# --- server -------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
"$BIN" server init --data "$DATA" --network acme.example --listen "127.0.0.1:$PORT" >"$OUT_DIR/init.log" 2>&1 || {
    cat "$OUT_DIR/init.log"; exit 2; }
# The fuzzer sends many wrong sign-ins from 127.0.0.1; with the default A1 limits
# (10 per address per 5 minutes) the hook's own sign-ins would get 429.
python3 - "$DATA/conclave.json" <<'EOF'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config.setdefault("limits", {}).update(
    {"sign_in_failures_per_address": 1000000, "sign_in_failures_per_name": 1000000})
json.dump(config, open(path, "w"), indent=2)
EOF
ADMIN_TOKEN=$(tr -d '\n' <"$DATA/admin.token")

# CONCLAVE_* variables of the CI environment must not reach the server (e.g.
# CONCLAVE_METRICS_LISTEN would move /metrics off this listener).
unset_conclave=()
for var in $(compgen -e | grep '^CONCLAVE_'); do unset_conclave+=(-u "$var"); done
env "${unset_conclave[@]}" "$BIN" server run --data "$DATA" --listen "127.0.0.1:$PORT" >"$OUT_DIR/server.log" 2>&1 &
SERVER_PID=$!
echo "server pid $SERVER_PID on $URL"
deadline=$(( $(date +%s) + 60 ))
until curl -sf "$URL/readyz" >/dev/null 2>&1; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "server exited:" >&2; cat "$OUT_DIR/server.log" >&2; exit 2; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "server not ready after 60 s" >&2; exit 2; fi
    sleep 0.2
done
SCHEMA=${ST_SCHEMA:-$URL/openapi.json}

# --- auth hook ----------------------------------------------------------------------
HOOKS_DIR=$TMP/hooks
mkdir -p "$HOOKS_DIR"
cat >"$HOOKS_DIR/conclave_st_hooks.py" <<'EOF'
"""Client session tokens for Schemathesis, renewed on 401.

The client run exercises /v1/logout, DELETE /v1/devices/{id} and PUT /v1/identity,
which end the session in use or make the user's next devices pending (A14).
ClientSession.get (called at start, on every 401 and every 5 minutes) creates a
fresh user through the admin API and signs it in with a random 32-byte key.
"""
import base64, json, os, secrets, urllib.request
import schemathesis

BASE = os.environ["CONCLAVE_URL"]
ADMIN_TOKEN = os.environ["CONCLAVE_ADMIN_TOKEN"]


def _post(path, body, token=None):
    req = urllib.request.Request(BASE + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def new_client_token():
    name, password = "st-" + secrets.token_hex(4), "schemathesis-" + secrets.token_hex(8)
    _post("/v1/admin/users", {"name": name, "password": password}, ADMIN_TOKEN)
    return _post("/v1/login", {
        "user": name, "password": password, "device_name": "schemathesis",
        "signature_key": base64.b64encode(secrets.token_bytes(32)).decode(), "cipher_suite": 1,
    })["token"]


if os.environ.get("CONCLAVE_CLIENT_AUTH") == "1":
    # Client routes only: not admin, not federation, not the two sign-in routes
    # (whose 401 invalid_credentials must not trigger a re-login).
    @schemathesis.auth(retry_on=[401]).apply_to(path_regex=r"^/v1/(?!admin/|federation/|login$|sessions$)")
    class ClientSession:
        def get(self, case, ctx):
            return new_client_token()

        def set(self, case, data, ctx):
            case.headers = case.headers or {}
            case.headers["Authorization"] = "Bearer " + data
EOF

# --- runs -----------------------------------------------------------------------------
# Request bodies are I-JSON (RFC 7493): lone surrogates are refused by design, so
# strings are generated as UTF-8.
COMMON=(--url "$URL" --checks all --seed "$SEED" --max-examples "$MAX_EXAMPLES" --workers "$WORKERS"
        --phases examples,coverage,fuzzing,stateful --generation-database none --generation-codec utf-8
        --request-timeout 10 --no-color --report junit,ndjson --suppress-health-check filter_too_much)
# shellcheck disable=SC2206
EXTRA=(${ST_EXTRA_ARGS:-})

declare -A SUMMARY
run() {  # name, then schemathesis arguments
    local name=$1; shift
    echo
    echo "=== schemathesis: $name ==="
    local t0 rc
    t0=$(date +%s)
    CONCLAVE_URL=$URL CONCLAVE_ADMIN_TOKEN=$ADMIN_TOKEN PYTHONPATH=$HOOKS_DIR SCHEMATHESIS_HOOKS=conclave_st_hooks \
        "$SCHEMATHESIS" --config-file "$ST_CONFIG" run "$SCHEMA" "${COMMON[@]}" "${EXTRA[@]}" \
        --report-dir "$OUT_DIR/$name" "$@" >"$OUT_DIR/$name.log" 2>&1
    rc=$?
    echo "exit $rc after $(( $(date +%s) - t0 )) s; full log: $OUT_DIR/$name.log"
    # Schemathesis's closing part: failures, warnings and its SUMMARY.
    sed -n '/FAILURES\|ERRORS\|WARNINGS\|SUMMARY/,$p' "$OUT_DIR/$name.log" | tail -n 120
    SUMMARY[$name]="exit $rc, $(( $(date +%s) - t0 )) s; $(grep -A1 -E '^Test cases:' "$OUT_DIR/$name.log" | tail -n 1 | sed 's/^ *//')"
    return $rc
}

# Client first: the admin run suspends, deletes and resets users.
ADMIN_PATHS='^/(v1/admin/|metrics$)'   # the routes that take the administrator token
CONCLAVE_CLIENT_AUTH=1 run client --exclude-path-regex "$ADMIN_PATHS"
client_rc=$?
CONCLAVE_CLIENT_AUTH=0 run admin --include-path-regex "$ADMIN_PATHS" -H "Authorization: Bearer $ADMIN_TOKEN"
admin_rc=$?

server_died=""
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the server died during the runs; see $OUT_DIR/server.log" >&2
    server_died=1
fi

echo
echo "=== summary ($(( $(date +%s) - START )) s) ==="
for name in client admin; do
    echo "$name: ${SUMMARY[$name]:-not run}"
    for xml in "$OUT_DIR/$name"/junit*.xml; do
        [ -f "$xml" ] || continue
        python3 - "$name" "$xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
name, path = sys.argv[1], sys.argv[2]
root = ET.parse(path).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
count = lambda key: sum(int(s.get(key, 0)) for s in suites)
print(f"  {count('tests')} operations, {count('failures')} failed, {count('errors')} errors, "
      f"{count('skipped')} skipped (junit)")
EOF
    done
done
echo "reports in $OUT_DIR"
if [ "$client_rc" -ne 0 ] || [ "$admin_rc" -ne 0 ] || [ -n "$server_died" ]; then
    echo "schemathesis: FAILED"
    exit 1
fi
echo "schemathesis: passed"
exit 0

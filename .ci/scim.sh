#!/usr/bin/env bash
# SCIM 2.0 gate: scim2-tester (PyPI) checks a Conclave server's SCIM service
# (SERVER/scim/v2) against RFC 7643 and RFC 7644.
#
#   .ci/scim.sh /path/to/conclave
#
# Starts the given binary on a fresh data directory (SQLite) and a free
# loopback port, creates a SCIM bearer token with `conclave admin scim token
# create`, and runs .ci/scim_check.py (discovery, then create, read, replace,
# patch and delete of each resource type). Exits with the checker's status:
# 0 when no check failed, 1 when one did, 2 when the gate could not run. The
# server is always stopped by its PID.
#
# Environment knobs (all optional):
#   PYTHON         the Python for the venv, 3.11 or later      (default python3)
#   OUT_DIR        server log, checker output, HTTP trace      (default: a temp dir, kept)
#   SCIM_TESTER_VERSION   the pinned scim2-tester              (default 0.5.2)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:?usage: .ci/scim.sh /path/to/conclave}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
[ -x "$BIN" ] || { echo "not executable: $BIN" >&2; exit 2; }
PYTHON=${PYTHON:-python3}

# scim2-tester and the SCIM stack it runs on, pinned together: a newer
# scim2-client or scim2-models can change what is checked.
SCIM_TESTER_VERSION=${SCIM_TESTER_VERSION:-0.5.2}
PINS=("scim2-tester[httpx2]==$SCIM_TESTER_VERSION" scim2-client==0.13.2 scim2-models==0.12.3 httpx2==2.16.2)

TMP=$(mktemp -d /tmp/conclave-scim.XXXXXX)
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
    rm -rf "$DATA" "$TMP/venv"
    rmdir "$TMP" 2>/dev/null   # unless OUT_DIR is inside it
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- scim2-tester -----------------------------------------------------------------
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "scim2-tester needs Python 3.11 or later; PYTHON=$PYTHON is not" >&2; exit 2
fi
echo "installing ${PINS[*]} into $TMP/venv"
"$PYTHON" -m venv "$TMP/venv" && "$TMP/venv/bin/pip" install -q "${PINS[@]}" || {
    echo "cannot install scim2-tester" >&2; exit 2; }
VENV_PYTHON=$TMP/venv/bin/python

# --- server -------------------------------------------------------------------------
PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
"$BIN" server init --data "$DATA" --network acme.example --listen "127.0.0.1:$PORT" >"$OUT_DIR/init.log" 2>&1 || {
    cat "$OUT_DIR/init.log"; exit 2; }

# CONCLAVE_* variables of the CI environment must reach neither the server nor
# the admin CLI (e.g. CONCLAVE_METRICS_LISTEN, CONCLAVE_SERVER).
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

# --- SCIM token (kept out of the output and the logs) --------------------------------
created=$(env "${unset_conclave[@]}" "$BIN" admin scim token create --server "$URL" \
    --token-file "$DATA/admin.token" --json 2>"$OUT_DIR/token.err") || {
    echo "cannot create a SCIM token:" >&2; cat "$OUT_DIR/token.err" >&2; exit 2; }
SCIM_TOKEN=$(printf '%s' "$created" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["token"])') || {
    echo "the token command printed no JSON with a token" >&2; exit 2; }
unset created
echo "SCIM token $(printf '%s' "$SCIM_TOKEN" | wc -c) characters long created"

# --- check -----------------------------------------------------------------------------
echo
echo "=== scim2-tester $SCIM_TESTER_VERSION: $URL/scim/v2 ==="
t0=$(date +%s)
SCIM_TOKEN=$SCIM_TOKEN "$VENV_PYTHON" "$HERE/scim_check.py" "$URL/scim/v2" --trace "$OUT_DIR/http-trace.jsonl" 2>&1 |
    tee "$OUT_DIR/scim_check.log"
rc=${PIPESTATUS[0]}
echo "checker exit $rc after $(( $(date +%s) - t0 )) s"

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the server died during the checks; see $OUT_DIR/server.log" >&2
    [ "$rc" -eq 0 ] && rc=1
fi
echo "logs in $OUT_DIR (server.log, scim_check.log, http-trace.jsonl); $(( $(date +%s) - START )) s in all"
exit "$rc"

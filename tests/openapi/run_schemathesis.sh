#!/usr/bin/env bash
# Validates the served OpenAPI document (openapi-spec-validator) and runs Schemathesis'
# property-based checks against a live `agent-exec serve` (make test-openapi, issue 16).
#
# Usage: tests/openapi/run_schemathesis.sh BIN [VENV]   (VENV defaults to .venv)
#
# Schemathesis POSTs random commands, paths and notify sinks, so the server and the
# client run sandboxed: a new mount, PID and network namespace (only a loopback
# interface: nothing generated can reach another host), the whole root filesystem
# remounted read-only, a private tmpfs for the job root, the working directory and HOME,
# and `serve` itself as nobody without capabilities, so that no generated command can
# undo any of it. --max-wait-ms 300 bounds every generated wait. The seed is fixed and
# the run is bounded (--max-examples per operation); it fails on any failed check, on a
# 5xx, and if the server died.
set -euo pipefail

SEED=${SCHEMATHESIS_SEED:-20261129}
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-12}
PORT=8931
HERE=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" != --inside ]; then
  [ $# -ge 1 ] || { echo "usage: $0 BIN [VENV]" >&2; exit 2; }
  bin=$(realpath "$1")
  venv=$(realpath "${2:-$HERE/../../.venv}")
  sandbox=(--mount --pid --net --fork --mount-proc)
  # Root in CI; elsewhere a user namespace gives the same isolation where allowed.
  [ "$(id -u)" = 0 ] || sandbox=(--user --map-root-user "${sandbox[@]}")
  exec unshare "${sandbox[@]}" bash "$0" --inside "$bin" "$venv"
fi

# ---- inside the namespaces: PID 1 is this shell; everything it started dies with it.
bin=$2
venv=$3
mount --make-rprivate /
# A private tmpfs before everything goes read-only: the only writable place. Not on
# /tmp, which must stay visible: the clone under test (its target/ and .venv) may live
# there, as CI's does. /tmp goes read-only with the rest.
SB=/mnt
[ -d "$SB" ] || mkdir "$SB"
mount -t tmpfs -o size=256m,mode=1777 tmpfs "$SB"
for dir in "$SB/jobs" "$SB/home" "$SB/cwd" "$SB/client"; do mkdir -m 0700 "$dir"; done
export TMPDIR="$SB/client"
# Every other mount read-only (/proc is ours, /dev's nodes still work on a read-only
# mount). Deepest first is not needed: each remount changes only its own mount.
while read -r target; do
  case "$target" in /proc | /proc/* | "$SB") continue ;; esac
  mount -o remount,bind,ro "$target" 2>/dev/null || true
done < <(findmnt -rn -o TARGET | sed 's/\\x20/ /g')
for dir in / /tmp /dev/shm "$(dirname "$bin")" "$venv"; do
  if [ -d "$dir" ] && touch "$dir/.should-be-read-only" 2>/dev/null; then
    rm -f "$dir/.should-be-read-only"
    echo "run_schemathesis: $dir is still writable; refusing to run" >&2
    exit 1
  fi
done
ip link set lo up

token=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$token" >$SB/token
as_nobody=()
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && getent passwd nobody >/dev/null; then
  chown nobody $SB/jobs $SB/home $SB/cwd $SB/token
  chmod 0600 $SB/token
  as_nobody=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups --inh-caps=-all
    --bounding-set=-all --no-new-privs)
fi
cd $SB/cwd
HOME=$SB/home "${as_nobody[@]}" "$bin" --root $SB/jobs serve --port "$PORT" --max-wait-ms 300 \
  --token-file $SB/token 2>$SB/client/serve.log &
server=$!
url="http://127.0.0.1:$PORT"
up=false
for _ in $(seq 100); do
  if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('$url/health', timeout=1)" 2>/dev/null; then
    up=true
    break
  fi
  sleep 0.1
done
if [ "$up" != true ]; then
  echo "run_schemathesis: serve did not come up:" >&2
  cat $SB/client/serve.log >&2
  exit 1
fi

cd $SB/client
export HOME=$SB/client PYTHONDONTWRITEBYTECODE=1
"$venv/bin/python" - "$url" "$token" <<'EOF'
import json, sys, urllib.request
from openapi_spec_validator import validate
url, token = sys.argv[1], sys.argv[2]
for path in ("/openapi.json", "/v1/openapi.json"):
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Content-Type"] == "application/json", answer.headers["Content-Type"]
        document = json.load(answer)
    validate(document)
    print(f"openapi-spec-validator: {path} is a valid OpenAPI {document['openapi']} document")
EOF

status=0
"$venv/bin/schemathesis" --config-file "$HERE/schemathesis.toml" run "$url/openapi.json" \
  --header "Authorization: Bearer $token" --checks all --seed "$SEED" --max-examples "$EXAMPLES" \
  --generation-database none --workers 1 --request-timeout 10 \
  --no-color || status=$?

if ! kill -0 "$server" 2>/dev/null; then
  echo "run_schemathesis: serve died during the run:" >&2
  cat $SB/client/serve.log >&2
  status=1
fi
exit "$status"

#!/usr/bin/env bash
# Checks examples/Dockerfile without a container engine: builds the image's file tree
# from its COPY lines (with the static binary under test), then runs its ENTRYPOINT and
# CMD the way a runtime would: PID 1 of a new PID namespace, chrooted into that tree,
# with /proc mounted and /dev/null bound (what a runtime provides), its ENV and nothing
# else in the environment, the token file mounted at /run/secrets/token. Then it talks
# HTTP to it (bash's /dev/tcp: no client needed) and checks that PID 1 leaves no zombie
# and stops with 0 on SIGTERM. The CMD's port is replaced by a free one.
set -euo pipefail
bin=${1:?usage: test-container.sh STATIC_BINARY}
repo=$(cd "$(dirname "$0")/.." && pwd)
dockerfile=$repo/examples/Dockerfile
fail() { echo "FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ] || ! unshare -m -p -f true 2>/dev/null; then
  [ "${CI:-}" = true ] && fail "CI=true but PID and mount namespaces cannot be made (needs root)"
  echo "skipped: the container check needs root (PID and mount namespaces, chroot)"
  exit 0
fi
grep -qx 'FROM scratch' "$dockerfile" || fail "$dockerfile is not FROM scratch"

work=$(mktemp -d)
init=
cleanup() {
  [ -n "$init" ] && kill -KILL "$init" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
root=$work/rootfs
mkdir -p "$root/proc" "$root/dev" "$root/run/secrets"
: >"$root/dev/null"

# A JSON array of strings (exec form) as one word per line.
words() { sed -e 's/^[[:space:]]*\[[[:space:]]*"//' -e 's/"[[:space:]]*\][[:space:]]*$//' -e 's/"[[:space:]]*,[[:space:]]*"/\n/g' <<<"$1"; }
envs=() entry=() cmd=()
while read -r keyword rest; do
  case $keyword in
    COPY)
      read -r src dst <<<"$rest"
      # The image is built after `make static`: its binary is the one under test.
      [ "$src" = target/static/agent-exec ] && src=$bin || src=$repo/$src
      mkdir -p "$root$(dirname "$dst")"
      cp -a "$src" "$root$dst"
      ;;
    ENV) envs+=("$rest") ;;
    ENTRYPOINT) mapfile -t entry < <(words "$rest") ;;
    CMD) mapfile -t cmd < <(words "$rest") ;;
  esac
done <"$dockerfile"
[ ${#entry[@]} -gt 0 ] && [ ${#cmd[@]} -gt 0 ] || fail "no ENTRYPOINT or CMD in $dockerfile"

# The image has no shell; a job needs one (`sh -c`), so add what a user would add: a
# minimal static /bin/sh that runs `sh -c SCRIPT -- ARGS` as ARGS (the argv form).
if command -v gcc >/dev/null 2>&1; then
  mkdir -p "$root/bin"
  printf '%s\n' '#include <unistd.h>' \
    'int main(int c, char **v) { if (c > 4) { execv(v[4], v + 4); } return 127; }' >"$work/sh.c"
  gcc -static -O2 -o "$root/bin/sh" "$work/sh.c" || fail "gcc -static"
  expect_state=exited
else
  [ "${CI:-}" = true ] && fail "CI=true but gcc is missing (the job check needs a static helper)"
  expect_state=failed
fi

token=container-token-$RANDOM$RANDOM
echo "$token" >"$root/run/secrets/token"
echo "image tree: $(cd "$root" && find . -mindepth 1 -not -path './proc*' | sort | tr '\n' ' ')"

chroot_bin=$(command -v chroot || echo /usr/sbin/chroot)
# Runs the image with the CMD's port replaced by $port, in the background.
start() {
  local run_cmd=("${cmd[@]//19263/$port}")
  echo "running: ${entry[*]} ${run_cmd[*]} (env: ${envs[*]:-none})"
  # shellcheck disable=SC2016
  env -i "${envs[@]}" unshare -m -p -f /bin/sh -c \
    'r=$1 c=$2; shift 2; mount -t proc proc "$r/proc" && mount --bind /dev/null "$r/dev/null" && exec "$c" "$r" "$@"' \
    sh "$root" "$chroot_bin" "${entry[@]}" "${run_cmd[@]}" &
  unshare_pid=$!
}

http() { # METHOD PATH [BODY [TOKEN]] -> prints the response
  local body=${3:-} auth=
  [ -n "${4:-}" ] && auth="Authorization: Bearer $4"$'\r\n'
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf '%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Length: %d\r\n\r\n%s' \
    "$1" "$2" "$auth" "${#body}" "$body" >&3
  timeout 30 cat <&3
  exec 3<&-
}
# A port below the ephemeral range; another one if the bind fails anyway (serve exits).
up=
for attempt in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 12000))
  start
  for _ in $(seq 100); do
    if out=$(http GET /health 2>/dev/null) && [[ $out == "HTTP/1.1 200"* ]]; then up=1; break; fi
    kill -0 "$unshare_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$up" ] && break
  kill -KILL "$unshare_pid" 2>/dev/null; wait "$unshare_pid" 2>/dev/null || true
  echo "attempt $attempt: no answer on port $port"
done
[ -n "$up" ] || fail "serve did not answer /health in the container"
init=$(cat "/proc/$unshare_pid/task/$unshare_pid/children" | awk '{print $1}')
grep -q '^NSpid:.*[[:space:]]1$' "/proc/$init/status" || fail "serve is not PID 1 of its namespace"
echo "ok: /health answers; serve is PID 1 (host pid $init)"

out=$(http GET /status/01ABC)
[[ $out == "HTTP/1.1 401"* ]] || fail "no token, expected 401: $out"
out=$(http POST /exec '{"command":["/agent-exec","--version"],"wait":true}' "$token")
[[ $out == "HTTP/1.1 200"* && $out == *"\"state\":\"$expect_state\""* ]] || fail "exec: $out"
echo "ok: token required; a job ran in the image (state $expect_state)"
for _ in 1 2 3; do http POST /exec '{"command":["/agent-exec","--version"]}' "$token" >/dev/null; done

count_zombies() {
  local n=0 s
  for s in /proc/[0-9]*/stat; do
    read -r _ _ state ppid _ <"$s" 2>/dev/null || continue
    [ "$state" = Z ] && [ "$ppid" = "$init" ] && n=$((n + 1))
  done
  echo "$n"
}
clean=
for _ in $(seq 100); do
  if [ -z "$(cat "/proc/$init/task/$init/children" 2>/dev/null)" ] && [ "$(count_zombies)" = 0 ]; then clean=1; break; fi
  sleep 0.1
done
[ -n "$clean" ] || fail "PID 1 left zombies or processes: $(count_zombies) zombies, children: $(cat "/proc/$init/task/$init/children")"
echo "ok: every job's processes ended and were reaped by PID 1"

kill -TERM "$init"
rc=0
wait "$unshare_pid" || rc=$?
init=
[ "$rc" = 0 ] || fail "serve as PID 1 exited with $rc on SIGTERM"
echo "ok: SIGTERM stops PID 1 with status 0"

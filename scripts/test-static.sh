#!/usr/bin/env bash
# Checks the static binary: no ELF interpreter, ldd finds nothing to load, and it runs a
# job inside an empty root that holds only itself and a static helper program. The job
# is one command word (shell-string mode) and the helper is its "shell wrapper", so no
# shell is needed: the supervisor executes `/hello x` (CONTRACT 6.3).
set -euo pipefail
bin=${1:?usage: test-static.sh STATIC_BINARY}
echo "static binary: $bin, $(stat -c %s "$bin") bytes"

if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
  echo "FAIL: $bin has an ELF interpreter (dynamically linked)" >&2
  exit 1
fi
ldd_out=$(ldd "$bin" 2>&1 || true)
case $ldd_out in
  *"not a dynamic executable"* | *"statically linked"*) ;;
  *) echo "FAIL: ldd lists libraries for $bin:" >&2; echo "$ldd_out" >&2; exit 1 ;;
esac
echo "ok: no interpreter; ldd: $(echo "$ldd_out" | head -1 | sed 's/^[[:space:]]*//')"

# Besides the two programs, the empty root holds two mount points, filled in a private
# mount namespace: /proc (the front-end re-executes itself as the supervisor through
# /proc/self/exe, and liveness checks read process start times there) and /dev/null
# (the supervisor's stdio).
if [ "$(id -u)" = 0 ]; then
  ns=(-m -p -f)
elif unshare -r -m -p -f true 2>/dev/null; then
  ns=(-r -m -p -f)
else
  echo "skipped: the empty-root run needs root or user namespaces"
  exit 0
fi
chroot_bin=$(command -v chroot || echo /usr/sbin/chroot)
in_root() {
  env -i HOME=/ unshare "${ns[@]}" /bin/sh -c 'r=$1 c=$2; shift 2; mount -t proc proc "$r/proc" && mount --bind /dev/null "$r/dev/null" && exec "$c" "$r" "$@"' \
    sh "$root" "$chroot_bin" "$@"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/proc" "$root/dev"
: >"$root/dev/null"
cp "$bin" "$root/agent-exec"
if command -v gcc >/dev/null 2>&1 &&
  printf '#include <stdio.h>\nint main(int c, char **v) { for (int i = 1; i < c; i++) printf("hello %%s\\n", v[i]); return 0; }\n' >"$work/hello.c" &&
  gcc -static -O2 -o "$root/hello" "$work/hello.c" 2>/dev/null; then
  wrapper=/hello
  expect='hello x'
elif [ -x /bin/busybox ] && ! readelf -l /bin/busybox | grep -q interpreter; then
  cp /bin/busybox "$root/busybox"
  wrapper='/busybox echo hello'
  expect='hello x'
else
  echo "skipped: neither gcc -static nor a static busybox is available for the helper"
  exit 0
fi
echo "empty root holds: $(cd "$root" && find . -mindepth 1 | sort | tr '\n' ' ')"

out=$(in_root /agent-exec --root /jobs run --wait --until 20000 \
  --shell-wrapper "$wrapper" -- x) || true
echo "$out"
case $out in
  *'"ok":true'*'"state":"exited"'*'"exit_code":0'*) ;;
  *) echo "FAIL: the job did not exit 0 in the empty root" >&2; exit 1 ;;
esac
case $out in
  *"\"stdout_tail\":\"$expect\""*) ;;
  *) echo "FAIL: the job's output is not '$expect'" >&2; exit 1 ;;
esac
status=$(in_root /agent-exec --root /jobs list --all) || true
case $status in
  *'"state":"exited"'*) echo "ok: the static binary ran and supervised a job in an empty root" ;;
  *) echo "FAIL: list in the empty root: $status" >&2; exit 1 ;;
esac

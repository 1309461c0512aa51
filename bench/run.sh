#!/usr/bin/env bash
# bench/run.sh — time our agent-exec against agent-exec 0.1.18 on this machine.
#
# Measures (medians, ratio ours/theirs; details in bench/bench.py): run/status/list
# wall times, supervisor memory and threads per running job, binary size, and serve
# throughput/p99 latency. Prints a table and writes bench/RESULTS.md.
#
# Usage:   bench/run.sh            (or: make bench)
# Env:     OURS=path THEIRS=path   binaries to compare (default: target/release/agent-exec
#                                  built with `cargo build --release`, and 0.1.18 installed
#                                  once into bench/.peer by `cargo install`)
#          BENCH_N=15              iterations per side (alternating ours, theirs)
#          BENCH_QUICK=1           fewer iterations, smaller job counts (~1 minute)
#          OURS_STATIC=path        a static build of ours: its size, and a second full
#                                  timing report (BENCH_SKIP_STATIC=1 skips the timing)
#          BENCH_LIST_DIR=dir      where the cloned list roots go (default /dev/shm)
#          BENCH_KEEP=1            keep the scratch directory under bench/.work
#          BEFORE=path             another build of ours for bench/serve_attack.py to
#                                  attack too (e.g. the previous release)
# Timings never fail: the script exits 0 unless the harness itself is broken.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
PEER_VERSION=0.1.18
PEER_BIN="$REPO/bench/.peer/bin/agent-exec"

log() { echo "[bench] $*" >&2; }

install_peer() {
    [ -x "$PEER_BIN" ] && return 0
    log "installing agent-exec $PEER_VERSION into bench/.peer (one-time, several minutes)"
    mkdir -p bench/.work
    if ! timeout 1800 nice cargo install agent-exec --version "$PEER_VERSION" --locked \
            --root "$REPO/bench/.peer" >bench/.work/peer-install.log 2>&1; then
        log "peer install failed (see bench/.work/peer-install.log); theirs will be n/a"
    fi
}

# Ours is timed as `make install` installs it (the release build) and sized as
# `make static` builds it for containers. The static build links musl when its target
# is installed; musl's allocator makes the allocation-heavy paths (serve, list, gc)
# slower, so timing it would measure the allocator, not agent-exec.
build_ours() {
    log "cargo build --release"
    if ! timeout 1800 cargo build --release >bench/.work/build.log 2>&1; then
        log "cargo build --release failed (see bench/.work/build.log); ours will be n/a"
    fi
    OURS="$REPO/target/release/agent-exec"
    log "make static (for the size of the static binary)"
    if timeout 1800 make static >>bench/.work/build.log 2>&1; then
        OURS_STATIC=${OURS_STATIC:-$REPO/target/static/agent-exec}
        export OURS_STATIC
    else
        log "make static failed (see bench/.work/build.log); no static size"
    fi
}

ensure_wrk() {
    command -v wrk >/dev/null && return 0
    command -v apt-get >/dev/null || return 0
    log "installing wrk"
    timeout 300 apt-get install -y wrk >/dev/null 2>&1 && return 0
    timeout 300 apt-get update >/dev/null 2>&1
    timeout 300 apt-get install -y wrk >/dev/null 2>&1 ||
        log "wrk could not be installed; serve falls back to a python client"
}

main() {
    mkdir -p bench/.work
    install_peer
    if [ -z "${OURS:-}" ]; then
        build_ours
    fi
    THEIRS=${THEIRS:-$PEER_BIN}
    ensure_wrk

    WORK=$(mktemp -d "$REPO/bench/.work/run.XXXXXX") || exit 1
    trap 'kill -TERM "$PY" 2>/dev/null; wait "$PY" 2>/dev/null; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"' EXIT
    trap 'exit 130' INT TERM

    run_bench "$OURS" bench/RESULTS.md || return
    timeout -k 10 600 python3 bench/mcp.py --ours "$OURS" --theirs "$THEIRS" --out bench/RESULTS.md || log "bench/mcp.py failed"
    # The static build is the container artifact: time it too, as a second report
    # appended to the first, so the cost of its allocator is visible (see build_ours).
    if [ -n "${OURS_STATIC:-}" ] && [ "${OURS_STATIC}" != "$OURS" ] && [ -z "${BENCH_SKIP_STATIC:-}" ]; then
        log "timing the static build too"
        run_bench "$OURS_STATIC" bench/.work/static-report.md &&
            { printf '\n---\n\n## The static build, timed the same way\n\n'; sed "1d" bench/.work/static-report.md; } >>bench/RESULTS.md
    fi
    timeout -k 10 1200 python3 bench/serve_attack.py --ours "${OURS_STATIC:-$OURS}" --theirs "$THEIRS" ${BEFORE:+--before "$BEFORE"} --out bench/RESULTS.md
    timeout -k 10 600 python3 bench/launch_list.py --ours "$OURS" ${OURS_STATIC:+--static "$OURS_STATIC"} --theirs "$THEIRS" --out bench/RESULTS.md || log "bench/launch_list.py failed"
    timeout -k 10 900 python3 bench/rest.py --ours "$OURS" --static "${OURS_STATIC:-}" --theirs "$THEIRS" --out bench/RESULTS.md || log "bench/rest.py failed"
    timeout -k 10 600 python3 bench/wait_any.py --ours "$OURS" --theirs "$THEIRS" --out bench/RESULTS.md || log "bench/wait_any.py failed"
    timeout -k 10 3600 python3 bench/capture.py --ours "$OURS" --static "${OURS_STATIC:-}" --theirs "$THEIRS" --work "$WORK" --out bench/RESULTS.md || log "capture.py failed"
}

run_bench() {
    # Hard cap so the run can never hang; bench.py cleans up on SIGTERM.
    timeout -k 10 1800 python3 bench/bench.py --ours "$1" --theirs "$THEIRS" \
        --work "$WORK" --out "$2" &
    PY=$!
    wait "$PY"
    rc=$?
    PY=
    [ "$rc" -eq 0 ] || log "bench.py exited with $rc"
    return "$rc"
}

main "$@"

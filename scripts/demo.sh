#!/usr/bin/env bash
# A short tour: run a real job, watch it, read its output, list it. Uses a private jobs
# root under /tmp so it leaves nothing in your home directory.
set -euo pipefail
bin=${1:-target/release/agent-exec}
root=$(mktemp -d /tmp/agent-exec-demo.XXXXXX)
trap 'rm -rf "$root"' EXIT
export AGENT_EXEC_ROOT=$root
# Bold command lines on a terminal only: a log or a pipe gets plain text.
if [ -t 1 ]; then
    say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
else
    say() { printf '\n$ %s\n' "$*"; }
fi

say agent-exec run --snapshot-after 0 -- sh -c '"for i in 1 2 3; do echo step \$i; sleep 0.2; done; echo done >&2"'
out=$("$bin" run --snapshot-after 0 -- sh -c 'for i in 1 2 3; do echo step $i; sleep 0.2; done; echo done >&2')
echo "$out"
id=$(printf '%s' "$out" | sed -n 's/.*"job_id":"\([0-9A-Z]*\)".*/\1/p')

say agent-exec status "$id"
"$bin" status "$id"

say agent-exec wait "$id"
"$bin" wait "$id"

say agent-exec tail "$id"
"$bin" tail "$id"

say agent-exec run --wait -- sh -c "'echo out; exit 3'"
"$bin" run --wait -- sh -c 'echo out; exit 3'

say agent-exec list --yaml
"$bin" list --yaml

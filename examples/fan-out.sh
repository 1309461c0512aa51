#!/bin/sh
# Runs three jobs at once, waits for all of them, and fails if any failed: no jq.
# Usage: fan-out.sh [CMD1 CMD2 CMD3]   (each a shell command; default: lint, test, docs)
set -eu
AE=${AE:-agent-exec}
[ "$#" -gt 0 ] || set -- "make lint" "make test" "make docs"
tag="fan-out.$$"
for step in "$@"; do
	"$AE" run --snapshot-after 0 --tag "$tag" -- "$step" >/dev/null
done
# One answer for all of them; the exit status is the first failing job's code, or 0.
exec "$AE" wait --forever --exit-code --tag "$tag"

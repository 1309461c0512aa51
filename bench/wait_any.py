#!/usr/bin/env python3
"""How soon `wait --any` over 50 jobs returns after the first of them ends (issue 14).

49 jobs sleep; one blocks reading a FIFO. A waiter is started, then one byte written to
the FIFO ends that job; the time from the write to the waiter's exit is the latency
(job exit, supervisor record, inotify wake-up, answer). 0.1.18 has no many-job wait:
its column is its single-job `wait ID` on the same trigger, the closest it offers.
Prints a table and appends a "wait --any" section to the results file.

Usually started by bench/run.sh (`make bench`). Direct use:
  python3 bench/wait_any.py --ours PATH [--theirs PATH] [--out bench/RESULTS.md]
Environment: BENCH_QUICK=1 (fewer rounds). Python 3 standard library only. Timings
never fail the run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

JOBS = 50


def start(binary, env, command):
    out = subprocess.run([binary, "run", "--snapshot-after", "0", "--", "sh", "-c", command],
                         env=env, capture_output=True, timeout=30, check=True)
    return json.loads(out.stdout)["job_id"]


def one_round(binary, env, work, many):
    fifo = os.path.join(work, "trigger")
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    ids = [start(binary, env, f"read x < {fifo}")]
    if many:
        ids += [start(binary, env, "sleep 120") for _ in range(JOBS - 1)]
    args = [binary, "wait", "--any", "--forever", *ids] if many else [binary, "wait", "--forever", ids[0]]
    waiter = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)  # let the waiter settle into its wait: we time the wake-up, not the start
    began = time.perf_counter()
    with open(fifo, "w") as trigger:
        trigger.write("x\n")
    waiter.wait(timeout=60)
    elapsed = (time.perf_counter() - began) * 1000
    for job in ids[1:]:
        subprocess.run([binary, "kill", "--signal", "KILL", job], env=env, capture_output=True, timeout=30)
    return elapsed


def measure(binary, many, rounds):
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, AGENT_EXEC_ROOT=os.path.join(work, "jobs"))
        return [one_round(binary, env, work, many) for _ in range(rounds)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", required=True)
    parser.add_argument("--theirs")
    parser.add_argument("--out")
    options = parser.parse_args()
    rounds = 3 if os.environ.get("BENCH_QUICK") else 7
    ours = measure(options.ours, True, rounds)
    theirs = measure(options.theirs, False, rounds) if options.theirs and os.path.exists(options.theirs) else None
    mine, peer = statistics.median(ours), (statistics.median(theirs) if theirs else None)
    ratio = f"{mine / peer:.2f}" if peer else "n/a"
    rows = [
        "| measure | ours | 0.1.18 | ratio |",
        "|---|---|---|---|",
        f"| ms from the first end to the answer: ours `wait --any` over {JOBS} jobs, 0.1.18 `wait ID` | "
        f"{mine:.1f} (max {max(ours):.1f}) | {f'{peer:.1f}' if peer else 'n/a'} | {ratio} |",
    ]
    table = "\n".join(rows)
    print(table)
    if options.out:
        with open(options.out, "a", encoding="utf-8") as out:
            out.write(f"\n## wait --any (bench/wait_any.py, {rounds} rounds, medians)\n\n{table}\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as error:  # timings never fail the run
        print(f"wait_any.py: {error}", file=sys.stderr)
        sys.exit(0)

#!/usr/bin/env python3
"""REST v1 read path under load (issue 16), side by side with agent-exec 0.1.18.

For each binary (ours = the release build, static = `make static`, theirs = 0.1.18) a
`serve` on its own root with one finished job faces `wrk -t2 -c64 -d10s` on:
  * ours and static: GET /v1/jobs/{id} (a job's status, the v1 route) and GET /health;
  * theirs:          GET /status/{id} (0.1.18 has no /v1) and GET /health.
The sides alternate round by round (other work on the machine hits all of them alike).
Reported: requests/s, p99 and p99.9 latency (wrk's own histogram, read by a Lua
`done` hook), medians over the rounds. Goal: p99.9 under 50 ms. Each `serve` runs in a
session of its own, as a daemon does and as bench.py starts it: under the kernel's
autogroup scheduling that session's threads share one group's CPU time against wrk's.

Usually started by bench/run.sh. Direct use:
  python3 bench/rest.py --ours PATH [--static PATH] [--theirs PATH] [--out FILE]
Env: BENCH_QUICK=1 (one 3 s round). With --out the results section is appended to FILE
(bench/RESULTS.md). Python 3 standard library and wrk; measurements never fail the run.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Failure, free_port, stop_server, tail_file  # noqa: E402

GOAL_P999_MS = 50.0
CONNECTIONS = 64

# wrk's Lua `done` hook: its latency histogram in microseconds, and the non-2xx count.
LUA = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT p99_us=%d p999_us=%d requests=%d non2xx=%d errors=%d\\n",
    latency:percentile(99), latency:percentile(99.9), summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def cli(binary, root, *args):
    out = subprocess.run([binary, "--root", root, *args], capture_output=True, timeout=40,
                         stdin=subprocess.DEVNULL)
    text = out.stdout.decode("utf-8", "replace")
    match = re.search(r'"job_id"\s*:\s*"([0-9A-Z]+)"', text)
    if not match:
        raise Failure(f"{args[0]}: no job id in {text[:160]!r}")
    return match.group(1)


def start(binary, root, log_path):
    """`serve` on a free port; returns (process, base URL) once /health answers."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([binary, "--root", root, "serve", "--port", str(port)], stdout=log,
                                stderr=log, stdin=subprocess.DEVNULL, cwd=root, start_new_session=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Failure(f"serve exited with {proc.returncode}: {tail_file(log_path)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    stop_server(proc)
    raise Failure("GET /health did not answer within 10 s")


def load(url, secs, script):
    argv = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{secs}s", "--timeout", "5s", "-s", script, url]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 30)
    except subprocess.TimeoutExpired:
        raise Failure("wrk timed out")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    result = re.search(r"RESULT p99_us=(\d+) p999_us=(\d+) requests=(\d+) non2xx=(\d+) errors=(\d+)", out.stdout)
    if out.returncode != 0 or not rps or not result:
        raise Failure(f"wrk failed: {(out.stderr or out.stdout).strip()[:160]}")
    p99, p999, _, non2xx, errors = (int(v) for v in result.groups())
    if non2xx or errors:
        raise Failure(f"{non2xx} non-2xx answers, {errors} socket errors")
    return float(rps.group(1)), p99 / 1000.0, p999 / 1000.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", required=True)
    parser.add_argument("--static")
    parser.add_argument("--theirs")
    parser.add_argument("--out")
    options = parser.parse_args()
    quick = bool(os.environ.get("BENCH_QUICK"))
    rounds, secs = (1, 3) if quick else (3, 10)
    if not shutil.which("wrk"):
        print("bench/rest.py: wrk is not installed; skipped", file=sys.stderr)
        return 0
    for name in ("ours", "static", "theirs"):
        if getattr(options, name):
            setattr(options, name, os.path.abspath(getattr(options, name)))
    sides = [("ours (release)", options.ours, "/v1/jobs/{id}")]
    if options.static and os.path.exists(options.static):
        sides.append(("ours (static)", options.static, "/v1/jobs/{id}"))
    if options.theirs and os.path.exists(options.theirs):
        sides.append(("0.1.18", options.theirs, "/status/{id}"))
    began = time.time()
    work = tempfile.mkdtemp(prefix="rest-bench-")
    script = os.path.join(work, "latency.lua")
    with open(script, "w", encoding="utf-8") as f:
        f.write(LUA)
    servers, targets, samples, failures = [], {}, {}, {}
    try:
        for index, (name, binary, status_path) in enumerate(sides):
            root = os.path.join(work, f"root{index}")
            os.mkdir(root)
            try:
                job = cli(binary, root, "run", "--wait", "--", "true")
                proc, base = start(binary, root, os.path.join(work, f"serve{index}.log"))
            except (Failure, OSError, subprocess.SubprocessError) as e:
                failures[name] = str(e)
                continue
            servers.append(proc)
            targets[name] = [(status_path, base + status_path.format(id=job)), ("/health", base + "/health")]
        for _ in range(rounds):
            for name, endpoints in targets.items():
                for path, url in endpoints:
                    try:
                        measured = load(url, secs, script)
                        samples.setdefault((name, path), []).append(measured)
                    except Failure as e:
                        failures[f"{name} GET {path}"] = str(e)
    finally:
        for proc in servers:
            stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)
    baseline = {path: values for (name, path), values in samples.items() if name == "0.1.18"}
    rows = []
    for (name, path), values in samples.items():
        rps = statistics.median([v[0] for v in values])
        p99 = statistics.median([v[1] for v in values])
        p999 = statistics.median([v[2] for v in values])
        theirs_path = "/status/{id}" if path == "/v1/jobs/{id}" else path
        ratio = ""
        if theirs_path in baseline and name != "0.1.18":
            ratio = f"{rps / statistics.median([v[0] for v in baseline[theirs_path]]):.2f}"
        verdict = "PASS" if p999 < GOAL_P999_MS else "MISS"
        rows.append(f"| {name} | GET {path} | {rps:.0f} | {ratio} | {p99:.2f} | {p999:.2f} | {verdict} |")
    header = ("| side | endpoint | req/s | req/s vs 0.1.18 | p99 ms | p99.9 ms | p99.9 < 50 ms |\n"
              "|---|---|---:|---:|---:|---:|---|")
    notes = "".join(f"\n- {what}: {why}" for what, why in failures.items())
    section = (f"\n## REST v1 read path (bench/rest.py)\n\n`wrk -t2 -c{CONNECTIONS} -d{secs}s`, {rounds} "
               f"alternating round(s), medians; latency percentiles from wrk's histogram (Lua `done` "
               f"hook). 0.1.18 has no /v1 routes: its GET /status/{{id}} is the comparison for "
               f"GET /v1/jobs/{{id}}. Run took {time.time() - began:.0f} s.\n\n{header}\n" + "\n".join(rows) + "\n"
               + (f"\nNot measured:{notes}\n" if notes else ""))
    print(section)
    if options.out:
        with open(options.out, "a", encoding="utf-8") as out:
            out.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

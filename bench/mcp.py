#!/usr/bin/env python3
"""Round-trip latency of `status` through `agent-exec mcp`, next to the CLI's `status`.

One MCP session (raw JSON-RPC over the server's pipes, no SDK, so the client adds
almost nothing) answers N `tools/call status` requests one after another; the CLI
numbers are N process spawns of `agent-exec status ID` for ours and for 0.1.18 (which
has no MCP server). `ping` shows the protocol's floor. Prints a table and appends an
"MCP" section to the results file.

Usually started by bench/run.sh (`make bench`). Direct use:
  python3 bench/mcp.py --ours PATH [--theirs PATH] [--out bench/RESULTS.md]
Environment: BENCH_QUICK=1 (fewer iterations), BENCH_MCP_N (round trips, default 300).
Python 3 standard library only. Timings never fail the run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def job_in(binary, env):
    """A finished job in the root of `env`, made by `binary`."""
    out = subprocess.run([binary, "run", "--wait", "--", "true"], env=env, capture_output=True, timeout=30, check=True)
    return json.loads(out.stdout)["job_id"]


def cli_status(binary, env, job, n):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run([binary, "status", job], env=env, capture_output=True, timeout=20, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


class Session:
    def __init__(self, binary, env):
        self.proc = subprocess.Popen(
            [binary, "mcp"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.next_id = 0
        self.ask("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}})
        self.proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    def ask(self, method, params):
        self.next_id += 1
        line = json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}) + "\n"
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()
        while True:
            answer = json.loads(self.proc.stdout.readline())
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(answer["error"])
                return answer["result"]

    def timed(self, method, params, n):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            self.ask(method, params)
            times.append((time.perf_counter() - start) * 1000)
        return times

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", required=True)
    parser.add_argument("--theirs")
    parser.add_argument("--out")
    args = parser.parse_args()
    quick = bool(os.environ.get("BENCH_QUICK"))
    n = int(os.environ.get("BENCH_MCP_N", "60" if quick else "300"))
    n_cli = max(10, n // 5)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, AGENT_EXEC_ROOT=os.path.join(tmp, "ours"))
        job = job_in(args.ours, env)
        ours_cli = cli_status(args.ours, env, job, n_cli)
        rows.append(("CLI `status ID`, ours (one process per call)", ours_cli))
        if args.theirs and os.access(args.theirs, os.X_OK):
            theirs_env = dict(os.environ, AGENT_EXEC_ROOT=os.path.join(tmp, "theirs"))
            try:
                rows.append(("CLI `status ID`, 0.1.18", cli_status(args.theirs, theirs_env, job_in(args.theirs, theirs_env), n_cli)))
            except (subprocess.SubprocessError, ValueError, KeyError) as e:
                print(f"[bench mcp] 0.1.18 CLI status failed: {e}", file=sys.stderr)
        session = Session(args.ours, env)
        try:
            warm = session.ask("tools/call", {"name": "status", "arguments": {"job_id": job}})
            assert warm["structuredContent"]["state"] == "exited", warm  # a real answer is timed
            session.timed("tools/call", {"name": "status", "arguments": {"job_id": job}}, 10)  # warm-up
            rows.append(("MCP `tools/call status`, ours (one session)", session.timed("tools/call", {"name": "status", "arguments": {"job_id": job}}, n)))
            rows.append(("MCP `ping`, ours (protocol floor)", session.timed("ping", {}, n)))
        finally:
            session.close()
    base = statistics.median(ours_cli)
    lines = [
        "## MCP: `status` round trip",
        "",
        f"{n} MCP round trips in one `agent-exec mcp` session; {n_cli} CLI calls per side. "
        "Ratio: median against ours' CLI `status`.",
        "",
        "| measurement | median ms | p99 ms | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, times in rows:
        median = statistics.median(times)
        lines.append(f"| {label} | {median:.2f} | {percentile(times, 0.99):.2f} | {median / base:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as out:
            out.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

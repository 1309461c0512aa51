#!/usr/bin/env python3
"""Capture benchmark (issue 10): how fast and how small the supervisor's output path is.

Ratios are direct time / time under `run --wait` for the same command (1.0 = capturing
costs nothing; higher is better), medians of alternating runs:
  * `seq 1 5000000` (38.9 MB in 5M short lines), goal >= 0.4;
  * 300 MB in 1,000-byte lines (`yes` + `head -c`), goal >= 0.6;
  * both again with `--no-full-log` (ours only: 0.1.18 has no such flag).
"direct" is the same command redirected to a file in the same directory as the job
roots. Supervisor peak RSS (VmHWM of /proc/PID/status, read while the supervisor is
still alive: the job sleeps 1 s after its output) for a 1 GB single line and for 5M
short lines, goal < 8 MiB. 0.1.18 buffers a whole line in memory, so its single-line
case uses 100 MB instead of 1 GB.

Sides: ours (release), ours (static, when given), 0.1.18. A side that fails a
measurement shows n/a. Prints a table and appends a "Capture" section to --out.

Usage (normally from bench/run.sh):
  python3 bench/capture.py --ours PATH [--static PATH] --theirs PATH --work DIR --out FILE
Environment: BENCH_N (runs per side, default 5), BENCH_QUICK=1 (3 runs, smaller seq).
Python 3 standard library only; every subprocess has a timeout.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

TIMEOUT = 600


def quick():
    return os.environ.get("BENCH_QUICK") == "1"


def runs():
    return int(os.environ.get("BENCH_N", "3" if quick() else "5"))


SEQ = "seq 1 1000000" if quick() else "seq 1 5000000"
BIG = "yes \"$(printf '%0999d' 0)\" | head -c 300000000"


def timed(argv, env=None):
    t0 = time.monotonic()
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, timeout=TIMEOUT)
    elapsed = time.monotonic() - t0
    return elapsed, out


class Side:
    def __init__(self, name, binary, work, new_flags):
        self.name = name
        self.binary = binary
        self.root = os.path.join(work, "root-" + name.replace(" ", "-").replace("(", "").replace(")", ""))
        self.new_flags = new_flags

    def env(self):
        env = dict(os.environ)
        env["AGENT_EXEC_ROOT"] = self.root
        return env

    def clean(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def run_wait(self, command, extra=()):
        argv = [self.binary, "run", *extra, "--wait", "--until", str(TIMEOUT * 1000), "--", "sh", "-c", command]
        elapsed, out = timed(argv, self.env())
        answer = json.loads(out.stdout)
        if answer.get("state") != "exited":
            raise RuntimeError(f"{self.name}: {answer.get('state')}")
        self.settle(answer["job_id"])
        return elapsed

    def settle(self, job_id):
        """Waits for the supervisor to exit, then removes the job (disk space)."""
        state_path = os.path.join(self.root, job_id, "state.json")
        try:
            with open(state_path) as f:
                state = json.load(f)
            pid = state.get("supervisor_pid") or state.get("pid")
        except (OSError, ValueError):
            pid = None
        deadline = time.monotonic() + TIMEOUT
        while pid and alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.clean()

    def peak_rss(self, command, extra=()):
        """VmHWM of the supervisor in KiB, sampled until it exits."""
        argv = [self.binary, "run", *extra, "--snapshot-after", "0", "--", "sh", "-c", command + "; sleep 1"]
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env(), timeout=60)
        job_id = json.loads(out.stdout)["job_id"]
        state_path = os.path.join(self.root, job_id, "state.json")
        pid = None
        deadline = time.monotonic() + TIMEOUT
        while pid is None and time.monotonic() < deadline:
            try:
                with open(state_path) as f:
                    state = json.load(f)
                pid = state.get("supervisor_pid") or state.get("pid")
            except (OSError, ValueError):
                time.sleep(0.01)
        peak = 0
        while pid and time.monotonic() < deadline:
            hwm = vm_hwm(pid)
            if hwm is None:
                break
            peak = max(peak, hwm)
            time.sleep(0.05)
        self.clean()
        return peak


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def vm_hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def direct(work, command):
    target = os.path.join(work, "direct.out")
    elapsed, _ = timed(["sh", "-c", f"{command} > '{target}'"])
    os.unlink(target)
    return elapsed


def median_ratio(work, side, command, extra=(), n=None):
    """Alternates direct and captured runs; returns (direct median, ours median)."""
    directs, captured = [], []
    for _ in range(n or runs()):
        directs.append(direct(work, command))
        captured.append(side.run_wait(command, extra))
    return statistics.median(directs), statistics.median(captured)


def fmt_ratio(value):
    if value is None:
        return "n/a"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", required=True)
    parser.add_argument("--static", default="")
    parser.add_argument("--theirs", default="")
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    sides = [Side("ours (release)", args.ours, args.work, True)]
    if args.static and os.path.exists(args.static) and args.static != args.ours:
        sides.append(Side("ours (static)", args.static, args.work, True))
    if args.theirs and os.path.exists(args.theirs):
        sides.append(Side("0.1.18", args.theirs, args.work, False))

    cases = [
        (SEQ, "seq", (), "0.4"),
        (BIG, "300 MB / 1,000-byte lines", (), "0.6"),
        (SEQ, "seq, --no-full-log", ("--no-full-log",), "~1"),
        (BIG, "300 MB, --no-full-log", ("--no-full-log",), "~1"),
    ]
    rows = []
    for command, label, extra, goal in cases:
        row = [label, goal]
        for side in sides:
            if extra and not side.new_flags:
                row.append("n/a")
                continue
            # 0.1.18 takes tens of seconds per seq run: three runs are enough to show it.
            n = min(runs(), 3) if not side.new_flags else None
            try:
                d, c = median_ratio(args.work, side, command, extra, n)
                row.append(f"{fmt_ratio(d / c)} ({d:.2f} s / {c:.2f} s)")
            except (RuntimeError, ValueError, KeyError, subprocess.SubprocessError) as e:
                print(f"[capture] {side.name} {label}: {e}", file=sys.stderr)
                row.append("n/a")
            side.clean()
        rows.append(row)

    rss_rows = []
    line_gb = "head -c 1000000000 /dev/zero | tr '\\0' x"
    line_100mb = "head -c 100000000 /dev/zero | tr '\\0' x"
    for label, ours_cmd, theirs_cmd in [
        ("1 GB single line (0.1.18: 100 MB)", line_gb, line_100mb),
        ("5M short lines", "seq 1 5000000", "seq 1 5000000"),
    ]:
        row = [label, "< 8 MiB"]
        for side in sides:
            try:
                kib = side.peak_rss(ours_cmd if side.new_flags else theirs_cmd)
                row.append(f"{kib / 1024:.1f} MiB")
            except (RuntimeError, ValueError, KeyError, subprocess.SubprocessError) as e:
                print(f"[capture] {side.name} {label}: {e}", file=sys.stderr)
                row.append("n/a")
        rss_rows.append(row)

    header = ["case", "goal"] + [s.name for s in sides]
    lines = [
        "## Capture (bench/capture.py)",
        "",
        "Ratio = direct redirect time / time under `run --wait` (median of alternating runs;",
        f"{runs()} per side, 0.1.18 at most 3). Higher is better; 1.0 means capture is free.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "Supervisor peak RSS (VmHWM):", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rss_rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()

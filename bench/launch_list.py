#!/usr/bin/env python3
"""The two figures of the performance goals, with every build timed in one run.

  * `list --all` over 2,000 finished jobs (goal: static build <= 0.5x 0.1.18);
  * `run --snapshot-after 0 -- true` (goal: <= 1.0x 0.1.18), back to back and each on a
    quiet machine (the previous job ended).

Ours (release), ours (static) and 0.1.18 are called in turn, A B C A B C ..., many
times; medians and ratios to 0.1.18 are printed as a table, and `--out FILE` appends
them as a section. Other load on the machine shifts all three alike, so only ratios from
the same run are compared. On a machine busy with other work (CPU-bound builds), run it
under `chrt -f 10` so that every process of the three sides gets a CPU at once: the
launch figure is otherwise mostly scheduling delay (with a load of 8 on 2 cores its
medians move by 2x from one run to the next).

  python3 bench/launch_list.py --ours target/release/agent-exec \
      --static target/static/agent-exec --theirs bench/.peer/bin/agent-exec [--n 41] \
      [--only list|run]
Python 3 standard library only; reuses bench/bench.py's helpers.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def measure(sides, n, jobs, only):
    rows = []
    if only != "run":
        rows.append(measure_list(sides, n, jobs))
    if only != "list":
        per = bench.alternate(sides, n, lambda s: s.root("snap0"),
                              lambda s, root, i: s.ok(root, "run", "--snapshot-after", "0", "--", "true")[0])
        rows.append(("`run --snapshot-after 0 -- true`, back to back", per))
        per = bench.alternate(sides, n, lambda s: s.root("snap0-quiet"), quiet_launch)
        rows.append(("`run --snapshot-after 0 -- true`, each on a quiet machine", per))
    return rows


def quiet_launch(s, root, i):
    """One launch timed, then a wait (untimed) until its job has ended: back to back,
    each launch shares the two CPUs with the login shells of the jobs before it (`sh -l`
    runs /etc/profile: about 15 ms of CPU, three times a launch), which measures the
    machine's load more than the launch."""
    ms, obj = s.ok(root, "run", "--snapshot-after", "0", "--", "true")
    state_file = os.path.join(root, obj["job_id"], "state.json")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = bench.read_json_file(state_file) or {}
        if (state.get("job") or {}).get("status") not in (None, "running", "created"):
            break
        time.sleep(0.005)
    else:
        raise bench.Failure("job did not finish within 10 s")
    # The supervisor writes the end, then drains and exits: give that a moment too.
    time.sleep(0.02)
    return ms


def measure_list(sides, n, jobs):
    base = bench.list_base(tempfile.gettempdir())
    try:
        def setup(s):
            root = os.path.join(base, s.name)
            os.makedirs(root, exist_ok=True)
            template = bench.finished_job(s, root)
            bench.populate(root, template, jobs)
            bench.check_list(s, root, jobs)
            return root
        per = bench.alternate(sides, n, setup, lambda s, root, i: bench.check_list(s, root, jobs))
        return (f"`list --all`, {jobs:,} jobs", per)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def render(sides, rows):
    theirs = sides[-1].name
    head = "| figure | " + " | ".join(f"{s.name} ms" for s in sides) + " | " + \
        " | ".join(f"{s.name}/{theirs}" for s in sides[:-1]) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(sides) - 1)]
    for label, per in rows:
        med = {k: statistics.median(v) if isinstance(v, list) and v else None for k, v in per.items()}
        cells = [f"{med[s.name]:.2f}" if med[s.name] is not None else str(per[s.name]) for s in sides]
        ratios = [f"{med[s.name] / med[theirs]:.3f}" if med[s.name] and med[theirs] else "n/a"
                  for s in sides[:-1]]
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--static")
    ap.add_argument("--theirs", required=True)
    ap.add_argument("--n", type=int, default=41)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--only", choices=("list", "run"), help="measure one figure only")
    ap.add_argument("--out")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="agent-exec-launch-list-")
    try:
        sides = [bench.Side("release", a.ours, work)]
        if a.static:
            sides.append(bench.Side("static", a.static, work))
        sides.append(bench.Side("0.1.18", a.theirs, work))
        table = render(sides, measure(sides, a.n, a.jobs, a.only))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table)
    if a.out:
        with open(a.out, "a") as f:
            f.write(f"\n## Launch and list, every build in one run (n={a.n})\n\n{table}\n")


if __name__ == "__main__":
    main()

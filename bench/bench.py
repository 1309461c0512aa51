#!/usr/bin/env python3
"""Side-by-side benchmark of two agent-exec binaries ("ours" vs "theirs" = 0.1.18).

What it measures (medians per side, ratio ours/theirs):
  * wall time of `run --wait -- true`, `run -- echo hi` (and whether that response
    already shows the job ended), `run --snapshot-after 0 -- true`, `status ID`;
  * wall time of `list --all` over a small and a large number of jobs (job dirs are
    cloned from one real finished job under fresh ULIDs), plus the slope in ms per
    1,000 jobs;
  * supervisor memory per running job (Pss from /proc/PID/smaps_rollup, Threads from
    /proc/PID/status) over several `run --snapshot-after 0 -- sleep 30` jobs;
  * binary size;
  * `serve`: requests/s and p99 latency of GET /status/{id} and GET /health with 16
    concurrent connections (wrk, or a python threaded client as fallback).
CLI measurements alternate ours, theirs, ours, theirs ...; each side uses its own
fresh --root under the work directory (list: under BENCH_LIST_DIR). A measurement that fails for one side is
reported as n/a for that side and the run goes on. Every subprocess has a timeout;
every process started (directly or as a job) is killed at the end.

Usually started by bench/run.sh (`make bench`). Direct use:
  python3 bench/bench.py --ours PATH --theirs PATH --work DIR [--out bench/RESULTS.md]
Environment:
  BENCH_N=15        iterations per side (default 15, quick 9)
  BENCH_QUICK=1     fewer iterations and smaller job counts
  BENCH_LIST_DIR    parent of the cloned list roots (default /dev/shm: creating 40,000
                    job dirs on a slow disk takes minutes, and list timings come from
                    the page cache either way; falls back to the work directory)
  OURS_STATIC       path of a static build of ours (size only)
  BENCH_KEEP=1      keep the work directory
Python 3 standard library only. Timings never fail the run: goals are only reported.
"""

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CLI_TIMEOUT = 20  # seconds, for every short CLI call
SHORT_TIMEOUT = 3  # seconds, once a side has timed out twice (a hanging binary)


class Failure(Exception):
    """A measurement could not be taken for one side."""


# --------------------------------------------------------------------------- config

def config():
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    n_default = 9 if quick else 15
    return {
        "quick": quick,
        "n": int(os.environ.get("BENCH_N") or n_default),
        "list_sizes": (2000, 5000) if quick else (2000, 20000),
        "mem_jobs": 5 if quick else 20,
        "serve_secs": 2 if quick else 5,
        "serve_rounds": 1 if quick else 3,
    }


# --------------------------------------------------------------------------- sides

class Side:
    """One binary under test, with its own directory of roots."""

    def __init__(self, name, binary, work):
        self.name = name
        self.binary = os.path.abspath(binary) if binary else ""
        self.dir = os.path.join(work, name)
        self.jobcwd = os.path.join(work, f"cwd-{name}")  # cwd of every call and job
        os.makedirs(self.jobcwd, exist_ok=True)
        self.error = None
        self.timeouts = 0  # after 2 timeouts every later call gets a short timeout
        if not (self.binary and os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            self.error = f"binary missing: {binary or '(none)'}"
        self.exe = os.path.realpath(self.binary) if self.binary else ""
        self.version = self._version()

    def _version(self):
        if self.error:
            return "n/a"
        try:
            p = subprocess.run([self.binary, "--version"], capture_output=True, text=True,
                               timeout=CLI_TIMEOUT, cwd=self.jobcwd)
            return p.stdout.strip() or f"? (exit {p.returncode})"
        except (OSError, subprocess.SubprocessError) as e:
            return f"? ({e})"

    def root(self, label):
        path = os.path.join(self.dir, label)
        os.makedirs(path, exist_ok=True)
        return path

    def cli(self, root, *args, timeout=CLI_TIMEOUT):
        """Run one CLI call; return (wall ms, exit code, parsed JSON or None)."""
        argv = [self.binary, "--root", root, *args]
        if self.timeouts >= 2:
            timeout = min(timeout, SHORT_TIMEOUT)
        t0 = time.perf_counter()
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL, cwd=self.jobcwd,
                              process_group=0) as p:
            try:
                out, _ = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(p)
                self.timeouts += 1
                raise Failure(f"`{' '.join(args)}` timed out after {timeout}s")
            ms = (time.perf_counter() - t0) * 1000.0
        return ms, p.returncode, parse_json(out)

    def ok(self, root, *args, timeout=CLI_TIMEOUT):
        """Like cli() but raise Failure unless the call succeeded with ok:true."""
        ms, rc, obj = self.cli(root, *args, timeout=timeout)
        if rc != 0 or not isinstance(obj, dict) or obj.get("ok") is not True:
            raise Failure(f"`{' '.join(args)}` -> exit {rc}, {short(obj)}")
        return ms, obj


def kill_group(p):
    """SIGKILL a timed-out call and its process group; do not wait for its pipes."""
    for kill in (lambda: os.killpg(p.pid, signal.SIGKILL), p.kill):
        try:
            kill()
        except OSError:
            pass
    p.wait()


def parse_json(data):
    text = data.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        return json.loads(text.splitlines()[-1] if "\n" in text else text)
    except ValueError:
        return {"unparsed": text[:200]}


def short(obj, limit=160):
    s = json.dumps(obj) if not isinstance(obj, str) else obj
    return s if len(s) <= limit else s[:limit] + "..."


# --------------------------------------------------------------------------- results

class Results:
    """Ordered rows: label, unit, per-side value (number or error text), goal."""

    def __init__(self):
        self.rows = []
        self.notes = []
        self.missing = {}  # (side, reason) -> [labels]: why a value is n/a

    def add(self, label, unit, values, goal=None, higher_better=False, fmt="{:.2f}"):
        self.rows.append({"label": label, "unit": unit, "values": values, "goal": goal,
                          "higher": higher_better, "fmt": fmt})
        for side, v in values.items():
            if isinstance(v, str) and v.startswith("n/a"):
                reason = v[5:-1] if v.startswith("n/a (") else "n/a"
                self.missing.setdefault((side, reason), []).append(label)

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)


def na(reason):
    return f"n/a ({reason})"


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def ratio(row):
    a, b = row["values"].get("ours"), row["values"].get("theirs")
    if is_num(a) and is_num(b) and b:
        return a / b
    return None


def verdict(row):
    goal = row["goal"]
    if goal is None:
        return ""
    if "max" in goal:  # an absolute bound on ours, not a ratio
        v = row["values"].get("ours")
        return ("PASS" if v <= goal["max"] else "MISS") if is_num(v) else "n/a"
    r = ratio(row)
    if r is None:
        return "n/a"
    ok = r >= goal["ratio"] if row["higher"] else r <= goal["ratio"]
    extra = goal.get("check")
    if ok and extra:
        ok = extra()
    return "PASS" if ok else "MISS"


def goal_text(row):
    goal = row["goal"]
    if goal is None:
        return ""
    if "max" in goal:
        return goal["text"]
    op = "≥" if row["higher"] else "≤"
    return f"{op} {goal['ratio']:g}" + (f" {goal['text']}" if goal.get("text") else "")


def fmt_value(row, v):
    if is_num(v):
        return row["fmt"].format(v)
    if v is None:
        return "n/a"
    return "n/a" if str(v).startswith("n/a") else str(v)


def table(results):
    lines = ["| measurement | unit | ours | theirs (0.1.18) | ours/theirs | goal | result |",
             "|---|---|---:|---:|---:|---|---|"]
    for row in results.rows:
        r = ratio(row)
        lines.append("| {} | {} | {} | {} | {} | {} | {} |".format(
            row["label"], row["unit"], fmt_value(row, row["values"].get("ours")),
            fmt_value(row, row["values"].get("theirs")),
            f"{r:.3f}" if r is not None else ("" if row["fmt"] == "{}" else "n/a"),
            goal_text(row), verdict(row)))
    return "\n".join(lines)


# --------------------------------------------------------------------------- helpers

def alternate(sides, n, setup, step):
    """setup(side) -> ctx once per side, then step(side, ctx, i) -> sample, A B A B.

    Returns {side name: [samples]} or an 'n/a (...)' string for a failed side."""
    ctx, samples, errors = {}, {s.name: [] for s in sides}, {}
    for s in sides:
        if s.error:
            errors[s.name] = na(s.error)
            continue
        try:
            ctx[s.name] = setup(s)
        except Exception as e:  # noqa: BLE001 - any failure makes this side n/a
            errors[s.name] = na(describe(e))
    for i in range(n):
        for s in sides:
            if s.name in errors:
                continue
            try:
                samples[s.name].append(step(s, ctx[s.name], i))
            except Exception as e:  # noqa: BLE001
                errors[s.name] = na(describe(e))
    return {s.name: errors.get(s.name, samples[s.name]) for s in sides}


def describe(e):
    return str(e) if isinstance(e, Failure) else f"{type(e).__name__}: {e}"


def medians(per_side, key=lambda x: x):
    return {name: (statistics.median(key(x) for x in v) if isinstance(v, list) and v else
                   (v if isinstance(v, str) else na("no samples")))
            for name, v in per_side.items()}


def new_ulid():
    n = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(CROCKFORD[(n >> (5 * i)) & 31] for i in range(25, -1, -1))


def finished_job(side, root):
    """Launch `run --wait -- true`; return its job id once state.json is terminal."""
    _, obj = side.ok(root, "run", "--wait", "--", "true", timeout=35)
    job = obj.get("job_id")
    if not job:
        raise Failure(f"run response without job_id: {short(obj)}")
    deadline = time.time() + 10
    while time.time() < deadline:
        st = read_json_file(os.path.join(root, job, "state.json")) or {}
        if (st.get("job") or {}).get("status") not in (None, "running", "created"):
            return job
        time.sleep(0.05)
    raise Failure("job did not finish within 10 s")


def read_json_file(path):
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- CLI timings

def bench_run_wait(sides, cfg, res):
    def step(s, root, i):
        ms, obj = s.ok(root, "run", "--wait", "--", "true", timeout=35)
        if obj.get("state") in ("running", "created"):
            raise Failure(f"run --wait returned state {obj.get('state')}")
        return ms
    per = alternate(sides, cfg["n"], lambda s: s.root("run_wait"), step)
    res.add("`run --wait -- true`", "ms", medians(per), goal={"ratio": 0.05})


def bench_run_echo(sides, cfg, res):
    def step(s, root, i):
        ms, obj = s.ok(root, "run", "--", "echo", "hi")
        snap = obj.get("snapshot") or {}
        ended = obj.get("state") != "running" or "hi" in str(snap.get("stdout_tail", ""))
        return ms, ended, obj.get("state")
    per = alternate(sides, cfg["n"], lambda s: s.root("run_echo"), step)
    res.add("`run -- echo hi`", "ms", medians(per, key=lambda x: x[0]))
    ended = {}
    for name, v in per.items():
        if isinstance(v, list) and v:
            states = sorted({x[2] for x in v})
            ended[name] = f"{sum(1 for x in v if x[1])}/{len(v)} (state: {', '.join(states)})"
        else:
            ended[name] = v if isinstance(v, str) else na("no samples")
    res.add("`run -- echo hi` response shows job ended", "count", ended, fmt="{}")


def bench_snapshot0(sides, cfg, res):
    def step(s, root, i):
        return s.ok(root, "run", "--snapshot-after", "0", "--", "true")[0]
    per = alternate(sides, cfg["n"], lambda s: s.root("run_snap0"), step)
    res.add("`run --snapshot-after 0 -- true`", "ms", medians(per))


def bench_status(sides, cfg, res):
    def setup(s):
        root = s.root("status")
        job = finished_job(s, root)
        s.ok(root, "status", job)  # warm-up
        return root, job

    def step(s, ctx, i):
        ms, obj = s.ok(ctx[0], "status", ctx[1])
        if obj.get("job_id") != ctx[1]:
            raise Failure(f"status answered for {obj.get('job_id')}")
        return ms
    per = alternate(sides, cfg["n"], setup, step)
    res.add("`status ID` (finished job)", "ms", medians(per), goal={"ratio": 0.5})


# --------------------------------------------------------------------------- list

def populate(root, template, count):
    """Clone job dir `template` under fresh ULIDs until root holds `count` jobs."""
    have = sum(1 for e in os.scandir(root) if e.is_dir())
    src = os.path.join(root, template)
    files = []
    for e in os.scandir(src):
        if e.is_file() and not e.name.startswith(".tmp-"):
            with open(e.path, "rb") as f:
                files.append((e.name, f.read(), e.stat().st_mtime_ns))
    old = template.encode()
    for _ in range(count - have):
        jid = new_ulid()
        d = os.path.join(root, jid)
        os.mkdir(d, 0o700)
        for name, data, mtime_ns in files:
            fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data.replace(old, jid.encode()))
                # A clone keeps its template's times, as `cp -p` would: each job then
                # looks as if the binary under test had written it (ours checks
                # meta.json's size and time before trusting its copy in state.json).
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)


def list_base(work):
    """Scratch parent of the cloned list roots: BENCH_LIST_DIR, else tmpfs, else work."""
    parent = os.environ.get("BENCH_LIST_DIR")
    if not parent:
        try:
            st = os.statvfs("/dev/shm")
            roomy = st.f_bavail * st.f_frsize > 2 << 30 and os.access("/dev/shm", os.W_OK)
        except OSError:
            roomy = False
        parent = "/dev/shm" if roomy else work
    return tempfile.mkdtemp(prefix="agent-exec-bench-list-", dir=parent)


def bench_list(sides, cfg, res, work):
    small, big = cfg["list_sizes"]
    roots, per_size = {}, {}
    base = list_base(work)
    if base.startswith("/dev/shm/"):
        res.note("list roots live on tmpfs (/dev/shm): creating tens of thousands of files on "
                 "this disk can take minutes; list timings (page cache) were measured to be "
                 "the same on both. Set BENCH_LIST_DIR to choose another place.")
    res.note("list: each root is cloned from one finished job, and the clones keep its file "
             "times, as `cp -p` would: ours then reads one file per job, as for jobs it made "
             "itself (state.json carries a copy of meta.json's listed fields, trusted while "
             "meta.json keeps the size and time it records). A root copied without its times "
             "costs ours the read of meta.json too (two files per job, as 0.1.18 reads).")
    try:
        bench_list_sizes(sides, cfg, res, base, roots, per_size)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    slope = {}
    for s in sides:
        a, b = per_size[small].get(s.name), per_size[big].get(s.name)
        slope[s.name] = (b - a) / (big - small) * 1000 if is_num(a) and is_num(b) else na("no list timing")
    res.add("`list --all` slope", "ms / 1,000 jobs", slope)


def bench_list_sizes(sides, cfg, res, base, roots, per_size):
    for size in cfg["list_sizes"]:
        def setup(s, size=size):
            if s.name not in roots:
                root = os.path.join(base, s.name)
                os.makedirs(root, exist_ok=True)
                roots[s.name] = (root, finished_job(s, root))
            root, template = roots[s.name]
            t0 = time.time()
            populate(root, template, size)
            res.note(f"list: built {size} job dirs for {s.name} in {time.time() - t0:.1f} s")
            check_list(s, root, size)  # warm-up + validity
            return root

        def step(s, root, i, size=size):
            return check_list(s, root, size)
        per_size[size] = medians(alternate(sides, cfg["n"], setup, step))
        res.add(f"`list --all`, {size:,} jobs", "ms", per_size[size],
                goal={"ratio": 0.3} if size == 2000 else None)


def check_list(s, root, size):
    ms, obj = s.ok(root, "list", "--all", timeout=120)
    got = len(obj.get("jobs") or [])
    if got != size:
        raise Failure(f"list --all returned {got} jobs, expected {size} (skipped={obj.get('skipped')})")
    return ms


# --------------------------------------------------------------------------- supervisor memory

def proc_field(pid, fname, key):
    try:
        with open(f"/proc/{pid}/{fname}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def proc_exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return ""


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def find_supervisor(side, root, job):
    """Return (pid, how) of the supervisor of `job`, or (None, reason)."""
    st = read_json_file(os.path.join(root, job, "state.json")) or {}
    sp = st.get("supervisor_pid")
    if isinstance(sp, int) and os.path.exists(f"/proc/{sp}"):
        return sp, "state.json supervisor_pid"
    pid = st.get("pid")
    if isinstance(pid, int) and os.path.exists(f"/proc/{pid}"):
        if proc_exe(pid) == side.exe:
            return pid, "state.json pid (still the supervisor pid)"
        ppid = proc_field(pid, "status", "PPid")
        if ppid and proc_exe(ppid) == side.exe:
            return ppid, "parent of the job process"
    for p in all_pids():
        if proc_exe(p) != side.exe:
            continue
        argv = proc_cmdline(p)
        if any(job.encode() in a for a in argv):
            return p, "cmdline contains the job id"
    return None, f"no supervisor process found (state.json: {short(st)})"


MEM_FIELDS = (("pss", "smaps_rollup", ("Pss",)),
              ("private", "smaps_rollup", ("Private_Clean", "Private_Dirty")),
              ("threads", "status", ("Threads",)))


def bench_memory(sides, cfg, res):
    k = cfg["mem_jobs"]
    launched = {}  # side name -> (root, [job ids], error or None) or an n/a string
    try:
        for s in sides:
            launched[s.name] = launch_sleepers(s, k)
        time.sleep(0.5)
        per = {s.name: measure_supervisors(s, launched[s.name], res) for s in sides}
        get = lambda f: {n: (v if isinstance(v, str) else v[f]) for n, v in per.items()}
        thr_ours = get("threads").get("ours")
        res.add(f"supervisor PSS per running job ({k} jobs)", "kB", get("pss"), fmt="{:.0f}",
                goal={"ratio": 0.3, "text": "and 1 thread",
                      "check": lambda: is_num(thr_ours) and thr_ours == 1})
        res.add("supervisor private memory (USS)", "kB", get("private"), fmt="{:.0f}")
        res.add("supervisor threads", "count", get("threads"), fmt="{:.0f}")
    finally:
        for s in sides:
            kill_sleepers(s, launched.get(s.name), res)


def launch_sleepers(s, k):
    if s.error:
        return na(s.error)
    root, jobs = s.root("memory"), []
    try:
        for _ in range(k):
            _, obj = s.ok(root, "run", "--snapshot-after", "0", "--", "sleep", "30")
            jobs.append(obj["job_id"])
    except (Failure, KeyError) as e:
        return (root, jobs, na(describe(e)))
    return (root, jobs, None)


def supervisor_of(s, root, job, deadline):
    """find_supervisor, waiting while state.json still names the supervisor as `pid`."""
    while True:
        pid, how = find_supervisor(s, root, job)
        settled = pid is not None and not how.startswith("state.json pid")
        if settled or time.time() > deadline:
            return pid, how
        time.sleep(0.05)


def measure_supervisors(s, launched, res):
    """Median of each MEM_FIELDS metric over the side's supervisors, or an n/a string."""
    if isinstance(launched, str):
        return launched
    root, jobs, err = launched
    if err:
        return err
    samples, hows, deadline = {f: [] for f, _, _ in MEM_FIELDS}, set(), time.time() + 5
    for job in jobs:
        pid, how = supervisor_of(s, root, job, deadline)
        if pid is None:
            return na(how)
        for field, fname, keys in MEM_FIELDS:
            vals = [proc_field(pid, fname, key) for key in keys]
            if None in vals:
                return na(f"cannot read /proc/{pid}/{fname}")
            samples[field].append(sum(vals))
        hows.add(how)
    res.note(f"supervisor of {s.name} found via: {', '.join(sorted(hows))}")
    return {f: statistics.median(v) for f, v in samples.items()}


def kill_sleepers(s, launched, res):
    if not isinstance(launched, tuple):
        return
    root, jobs, _ = launched
    for job in jobs:
        try:
            s.ok(root, "kill", "--signal", "KILL", job)
        except (Failure, OSError, subprocess.SubprocessError) as e:
            res.note(f"kill of {s.name} job {job} failed: {e}")
    deadline = time.time() + 10
    alive = lambda: processes_under(root) + processes_under(s.jobcwd)
    while time.time() < deadline and alive():
        time.sleep(0.1)
    left = alive()
    if left:
        res.note(f"{s.name}: {len(left)} process(es) still alive 10 s after kill; SIGKILLed by the harness")
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# --------------------------------------------------------------------------- processes

def ancestors():
    """This process and its ancestors (e.g. run.sh's `timeout`): never to be killed."""
    pids, pid = set(), os.getpid()
    while pid and pid not in pids:
        pids.add(pid)
        pid = proc_field(pid, "status", "PPid")
    return pids


def processes_under(path):
    """Pids (not ours) whose cwd is under `path` or whose cmdline mentions it."""
    mine, found, key = ancestors(), [], path.encode()
    for pid in all_pids():
        if pid in mine:
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        if cwd == path or cwd.startswith(path + "/") or any(key in a for a in proc_cmdline(pid)):
            found.append(pid)
    return found


# --------------------------------------------------------------------------- serve

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(s, root, log_dir):
    port = free_port()
    log = open(os.path.join(log_dir, f"serve-{s.name}.log"), "wb")
    proc = subprocess.Popen([s.binary, "--root", root, "serve", "--port", str(port)],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            cwd=s.jobcwd, start_new_session=True)
    log.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Failure(f"serve exited with {proc.returncode}: {tail_file(log.name)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.05)
    stop_server(proc)
    raise Failure("GET /health did not answer within 10 s")


def tail_file(path, limit=160):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return " / ".join(text.splitlines())[-limit:]


def stop_server(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def load_wrk(url, secs):
    argv = ["wrk", "-t2", "-c16", f"-d{secs}s", "--latency", "--timeout", "5s", url]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 30)
    except subprocess.TimeoutExpired:
        raise Failure("wrk timed out")
    out = p.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    lat = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    if p.returncode != 0 or not m or not lat:
        raise Failure(f"wrk failed: {(p.stderr or out).strip()[:160]}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if bad:
        raise Failure(f"{bad.group(1)} non-2xx responses")
    errs = re.search(r"Socket errors: (.*)", out)
    if errs and re.search(r"[1-9]", errs.group(1)):
        raise Failure(f"socket errors: {errs.group(1)}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[lat.group(2)]
    return float(m.group(1)), float(lat.group(1)) * scale


def load_python(url, secs, conns=16):
    """Fallback load generator: `conns` keep-alive threads for `secs` seconds."""
    host, port, path = re.match(r"http://([^:/]+):(\d+)(/.*)", url).groups()
    lat, errors, lock = [], [], threading.Lock()
    stop_at = time.perf_counter() + secs

    def worker():
        mine = []
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    raise Failure(f"HTTP {r.status}")
                mine.append(time.perf_counter() - t0)
        except (OSError, http.client.HTTPException, Failure) as e:
            errors.append(str(e))
        finally:
            conn.close()
            with lock:
                lat.extend(mine)
    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(secs + 30)
    if errors or not lat:
        raise Failure(f"client errors: {errors[:1]}")
    lat.sort()
    return len(lat) / secs, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000


def bench_serve(sides, cfg, res, work):
    use_wrk = shutil.which("wrk") is not None
    load = load_wrk if use_wrk else load_python
    if not use_wrk:
        res.note("wrk not available: serve numbers come from the python threaded client "
                 "(16 threads, keep-alive; limited by the GIL, compare ratios only)")
    servers = {}
    try:
        def setup(s):
            root = s.root("serve")
            job = finished_job(s, root)
            proc, port = start_server(s, root, work)
            servers[s.name] = proc
            return f"http://127.0.0.1:{port}", job

        def step(s, ctx, i):
            base, job = ctx
            out = {}
            for ep, path in ENDPOINTS:
                try:
                    out[ep] = load(base + path.format(id=job), cfg["serve_secs"])
                except Failure as e:
                    out[ep] = na(str(e))
            return out
        per = alternate(sides, cfg["serve_rounds"], setup, step)
    finally:
        for proc in servers.values():
            stop_server(proc)
    tool = "wrk" if use_wrk else "python client"
    for ep, path in ENDPOINTS:
        rps, p99 = endpoint_medians(per, ep, 0), endpoint_medians(per, ep, 1)
        res.add(f"serve GET {path}, 16 conns ({tool})", "req/s", rps, higher_better=True,
                fmt="{:.0f}", goal={"ratio": 1.0} if ep == "status" else None)
        res.add(f"serve GET {path} p99 latency", "ms", p99, fmt="{:.2f}")


ENDPOINTS = (("status", "/status/{id}"), ("health", "/health"))


def endpoint_medians(per, ep, idx):
    """Median of field idx (0 = req/s, 1 = p99) over rounds; n/a if any round failed."""
    out = {}
    for name, rounds in per.items():
        if isinstance(rounds, str):
            out[name] = rounds
            continue
        vals = [r[ep] for r in rounds]
        bad = [v for v in vals if isinstance(v, str)]
        out[name] = bad[0] if bad else (statistics.median(v[idx] for v in vals)
                                         if vals else na("no samples"))
    return out


# --------------------------------------------------------------------------- size

def bench_size(sides, res):
    mib = lambda p: os.path.getsize(p) / 1048576.0
    vals = {s.name: (na(s.error) if s.error else mib(s.binary)) for s in sides}
    res.add("binary size (release)", "MiB", vals, goal={"ratio": 0.2}, fmt="{:.2f}")
    ours = next((s for s in sides if s.name == "ours"), None)
    static = os.environ.get("OURS_STATIC") or ""
    if not static and ours and not ours.error:
        cand = os.path.join(os.path.dirname(ours.binary), "..", "static", "agent-exec")
        static = cand if os.path.isfile(cand) else ""
    if static and os.path.isfile(static):
        # The container artifact is glibc crt-static (README: dependencies); its goal
        # is an absolute size.
        res.add("binary size (ours static)", "MiB",
                {"ours": mib(static), "theirs": vals.get("theirs")},
                goal={"max": 3e6 / 1048576, "text": "≤ 3 MB"})


# --------------------------------------------------------------------------- report

def spawn_floor(n=20):
    """Median wall ms of /bin/true launched the same way: the harness's floor."""
    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(["true"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=10)
        xs.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(xs)


def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def report(results, sides, cfg, info, elapsed):
    by = {s.name: s for s in sides}
    head = [
        "# agent-exec benchmark results",
        "",
        "Generated by `bench/run.sh` (`make bench`); overwritten on every run.",
        "",
        f"- date: {info['date']}",
        f"- machine: {info['nproc']} CPUs, {info['cpu']}, {info['kernel']}",
        f"- ours: `{by['ours'].binary}` — {by['ours'].version}",
        f"- theirs: `{by['theirs'].binary}` — {by['theirs'].version}",
        f"- mode: {'quick' if cfg['quick'] else 'full'}, {cfg['n']} iterations per side "
        f"(alternating), list sizes {cfg['list_sizes'][0]:,}/{cfg['list_sizes'][1]:,}, "
        f"{cfg['mem_jobs']} supervisor jobs, serve {cfg['serve_rounds']}×{cfg['serve_secs']} s "
        f"per endpoint; run took {elapsed:.0f} s",
        "",
        "Values are medians. Ratio = ours/theirs; goals are on the ratio (lower is better, "
        "except req/s). Wall times include process start-up, measured from python; "
        f"spawning `true` the same way takes {info['floor']:.2f} ms (the floor). "
        "PSS divides shared pages among all processes mapping them (both sides run the "
        "same number of supervisors); USS is the private part.",
        "",
    ]
    body = [table(results)]
    missing = [f"n/a for {side} in {', '.join(labels)}: {reason}"
               for (side, reason), labels in results.missing.items()]
    if results.notes or missing:
        body += ["", "Notes:", ""] + [f"- {n}" for n in missing + results.notes]
    return "\n".join(head + body) + "\n"


# --------------------------------------------------------------------------- main

def cleanup(work, servers_killed=True):
    for pid in processes_under(work):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if os.environ.get("BENCH_KEEP", "") in ("", "0"):
        shutil.rmtree(work, ignore_errors=True)


def run_step(name, fn, res):
    """Run one benchmark group; an unexpected crash only loses that group."""
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    t0 = time.time()
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - keep going, report it
        res.note(f"{name}: harness error: {type(e).__name__}: {e}")
    print(f"[bench] {name} done in {time.time() - t0:.1f} s", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ours", required=True)
    ap.add_argument("--theirs", required=True)
    ap.add_argument("--work", required=True, help="scratch directory (removed at the end)")
    ap.add_argument("--out", default="", help="write the markdown report here")
    args = ap.parse_args()
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cfg, res, t0 = config(), Results(), time.time()
    try:
        floor = spawn_floor()
        sides = [Side("ours", args.ours, work), Side("theirs", args.theirs, work)]
        steps = [
            ("run --wait", lambda: bench_run_wait(sides, cfg, res)),
            ("run echo", lambda: bench_run_echo(sides, cfg, res)),
            ("run --snapshot-after 0", lambda: bench_snapshot0(sides, cfg, res)),
            ("status", lambda: bench_status(sides, cfg, res)),
            ("list", lambda: bench_list(sides, cfg, res, work)),
            ("supervisor memory", lambda: bench_memory(sides, cfg, res)),
            ("binary size", lambda: bench_size(sides, res)),
            ("serve", lambda: bench_serve(sides, cfg, res, work)),
        ]
        for name, fn in steps:
            run_step(name, fn, res)
        info = machine_info()
        info["floor"] = floor
        text = report(res, sides, cfg, info, time.time() - t0)
    finally:
        cleanup(work)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`serve` as a container entrypoint under attack (issue 12), side by side.

For each binary (ours, theirs = 0.1.18, and optionally "before" = another build of ours)
a fresh `serve` faces, one attack at a time:
  * heads:   4 connections each sending a 150 MB request line without a newline;
  * http2:   1,000 `GET /health HTTP/2.0` requests, each on its own connection;
  * bigbody: 1,000 `POST /exec` declaring a 100 MB body and sending none;
  * polls:   300 `GET /wait/ID?until=20000` on a running job plus 70 chunked `/exec`
             bodies trickled one byte a second, while `/health` is probed 20 times;
  * pid1:    `serve` as PID 1 of a new PID namespace (root only): 5 CLI runs, 5
             `POST /exec` and one job that leaves a background child; zombies counted;
  * token:   `AGENT_EXEC_SERVE_TOKEN` set; does a `/exec` job's environment hold it?
Reported per attack: peak RSS of the server (VmHWM), its threads and descriptors once
settled (7 s after the attack: connection threads linger 5 s), zombies, and /health
latency (median and worst of the probes). Goals: peak RSS < 64 MiB, /health < 100 ms.

Usually started by bench/run.sh. Direct use:
  python3 bench/serve_attack.py --ours PATH --theirs PATH [--before PATH] [--out FILE]
With --out the results section is appended to FILE (bench/RESULTS.md). Python 3
standard library only; measurements never fail the run.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SETTLE = 7.0


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def count(pid, what):
    try:
        return len(os.listdir(f"/proc/{pid}/{what}"))
    except OSError:
        return None


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def zombies_of(pid):
    out = 0
    for child in children(pid):
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    out += 1
        except (OSError, IndexError):
            pass
    return out


def http(port, raw, timeout=30.0):
    """Sends raw bytes on a fresh connection; returns (status or None, seconds)."""
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(raw)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None
    except (OSError, ValueError, IndexError):
        status = None
    return status, time.perf_counter() - t0


def post_json(port, path, body, timeout=30.0):
    raw = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(raw)}\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(head.encode() + raw)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.split(b"\r\n\r\n", 1)[1])
    except (OSError, ValueError, IndexError):
        return {}


HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


class Serve:
    """One `serve` process with its own root; killed (with its session) on close."""

    def __init__(self, binary, work, env_extra=None, prefix=()):
        self.root = tempfile.mkdtemp(dir=work)
        self.port = free_port()
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": self.root,
               "AGENT_EXEC_ROOT": os.path.join(self.root, "jobs")}
        env.update(env_extra or {})
        self.env = env
        argv = list(prefix) + [binary, "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(argv, env=env, cwd=self.root, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.pid = self.proc.pid
        deadline = time.time() + 10
        while time.time() < deadline:
            if http(self.port, HEALTH, 1)[0] == 200:
                break
            time.sleep(0.05)
        if prefix:  # unshare: serve is its child
            kids = children(self.proc.pid)
            self.pid = kids[0] if kids else self.proc.pid

    def snapshot(self):
        return {"threads": count(self.pid, "task"), "fds": count(self.pid, "fd"),
                "peak_rss_mib": (proc_status(self.pid, "VmHWM") or 0) / 1024}

    def alive(self):
        return self.proc.poll() is None and http(self.port, HEALTH, 5)[0] == 200

    def close(self):
        for pid in (self.pid, self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def settled(server):
    time.sleep(SETTLE)
    out = server.snapshot()
    out["alive"] = server.alive()
    return out


def attack_heads(server):
    def client():
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
                s.sendall(b"GET /")
                chunk = b"a" * (1 << 20)
                for _ in range(150):
                    s.sendall(chunk)
        except OSError:
            pass
    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return settled(server)


def many(server, raw, n=1000, wait=0.05):
    """n connections, each sending `raw` and waiting briefly for an answer."""
    for _ in range(n):
        http(server.port, raw, wait)
    return settled(server)


def attack_polls(server):
    job = post_json(server.port, "/exec", {"command": ["sleep", "120"]}).get("job_id")
    if not job:
        return {"error": "no job"}
    wait = f"GET /wait/{job}?until=20000 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    socks = []
    for _ in range(300):
        try:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(wait)
            socks.append(s)
        except OSError:
            pass
    slow = []
    for _ in range(70):
        try:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"POST /exec HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{")
            slow.append(s)
        except OSError:
            pass
    stop = threading.Event()

    def trickle():
        while not stop.wait(1.0):
            for s in slow:
                try:
                    s.sendall(b" ")
                except OSError:
                    pass
    pacer = threading.Thread(target=trickle)
    pacer.start()
    time.sleep(2)
    latencies = []
    for _ in range(20):
        status, secs = http(server.port, HEALTH, 30)
        latencies.append(secs * 1000 if status == 200 else float("inf"))
        time.sleep(0.1)
    out = server.snapshot()
    stop.set()
    pacer.join()
    for s in socks + slow:
        s.close()
    post_json(server.port, f"/kill/{job}?signal=KILL", {})
    out["health_median_ms"] = statistics.median(latencies)
    out["health_max_ms"] = max(latencies)
    out["alive"] = server.alive()
    return out


def attack_pid1(binary, work):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        return {"error": "needs root, unshare and nsenter"}
    server = Serve(binary, work, prefix=("unshare", "--pid", "--fork", "--mount-proc"))
    try:
        for _ in range(5):
            subprocess.run(["nsenter", "-t", str(server.pid), "-m", "-p", "--", binary, "run",
                            "--snapshot-after", "0", "--", "true"], env=server.env, cwd=server.root,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        for _ in range(5):
            post_json(server.port, "/exec", {"command": ["true"]})
        post_json(server.port, "/exec", {"command": ["sh", "-c", "sleep 1 & echo started"]})
        time.sleep(5)
        out = server.snapshot()
        out["zombies"] = zombies_of(server.pid)
        return out
    finally:
        server.close()


def attack_token(binary, work):
    server = Serve(binary, work, env_extra={"AGENT_EXEC_SERVE_TOKEN": "sekrit"})
    try:
        raw = json.dumps({"command": ["sh", "-c", "env"], "wait": True}).encode()
        head = (f"POST /exec HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer sekrit\r\n"
                f"Content-Length: {len(raw)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(head + raw)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply = json.loads(data.split(b"\r\n\r\n", 1)[1])
        log = reply.get("stdout_log_path")
        text = open(log).read() if log and os.path.exists(log) else ""
        return {"token_in_job_env": "sekrit" in text}
    except (OSError, ValueError, IndexError) as e:
        return {"error": str(e)[:80]}
    finally:
        server.close()


ATTACKS = [
    ("heads", "4 × 150 MB request line", lambda s: attack_heads(s)),
    ("http2", "1,000 × HTTP/2.0 request line", lambda s: many(s, HEALTH.replace(b"HTTP/1.1", b"HTTP/2.0"))),
    ("bigbody", "1,000 × Content-Length 100 MB", lambda s: many(
        s, b"POST /exec HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")),
    ("polls", "300 long-polls + 70 slow bodies", lambda s: attack_polls(s)),
]


def measure(binary, work):
    results = {}
    for key, _, run in ATTACKS:
        server = Serve(binary, work)
        try:
            results[key] = run(server)
        except Exception as e:  # a measurement never fails the run
            results[key] = {"error": str(e)[:80]}
        finally:
            server.close()
    results["pid1"] = attack_pid1(binary, work)
    results["token"] = attack_token(binary, work)
    return results


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "∞" if v == float("inf") else f"{v:.1f}"
    return str(v)


def rows(all_results, names):
    labels = dict((k, label) for k, label, _ in ATTACKS)
    labels["pid1"] = "PID 1: 5 CLI runs, 5 /exec, 1 orphan"
    labels["token"] = "token set, job runs `env`"
    metrics = [("peak_rss_mib", "peak RSS (MiB)", "< 64"), ("threads", "threads after", ""),
               ("fds", "descriptors after", ""), ("alive", "still serving", "yes"),
               ("health_median_ms", "/health median (ms)", "< 100"),
               ("health_max_ms", "/health worst (ms)", ""), ("zombies", "zombies", "0"),
               ("token_in_job_env", "token in the job's env", "no"), ("error", "not measured", "")]
    out = []
    for key in [k for k, _, _ in ATTACKS] + ["pid1", "token"]:
        for metric, label, goal in metrics:
            values = [all_results[n].get(key, {}).get(metric) for n in names]
            if all(v is None for v in values):
                continue
            ours, theirs = all_results["ours"].get(key, {}).get(metric), all_results["theirs"].get(key, {}).get(metric)
            ratio = ""
            if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and not isinstance(ours, bool) \
                    and theirs not in (0, float("inf")) and ours != float("inf"):
                ratio = f"{ours / theirs:.2f}"
            out.append([labels[key], label] + [fmt(v) for v in values] + [ratio, goal])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--theirs", required=True)
    ap.add_argument("--before")
    ap.add_argument("--out")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="serve-attack-")
    names = ["ours", "theirs"] + (["before"] if args.before else [])
    binaries = {"ours": args.ours, "theirs": args.theirs, "before": args.before}
    results = {}
    t0 = time.time()
    try:
        for name in names:
            if binaries[name] and os.access(binaries[name], os.X_OK):
                print(f"[serve_attack] {name}: {binaries[name]}", file=sys.stderr)
                results[name] = measure(binaries[name], work)
            else:
                results[name] = {}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = ["attack", "measurement"] + names + ["ours/theirs", "goal"]
    table = [header, ["---"] * len(header)] + rows(results, names)
    lines = ["| " + " | ".join(r) + " |" for r in table]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n---\n\n## serve under attack (bench/serve_attack.py)\n\n")
            f.write(f"ours: `{args.ours}`; theirs: `{args.theirs}`"
                    + (f"; before: `{args.before}`" if args.before else "")
                    + f"; run took {time.time() - t0:.0f} s. Threads and descriptors are counted "
                    f"{SETTLE:.0f} s after each attack; peak RSS is VmHWM.\n\n")
            f.write(text + "\n")


if __name__ == "__main__":
    main()

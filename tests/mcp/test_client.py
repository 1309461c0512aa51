#!/usr/bin/env python3
"""`agent-exec mcp` driven by the official MCP Python SDK (the `mcp` package) as client.

Run by `make test` with the project virtualenv (.venv, made by .ci/deps):

    .venv/bin/python tests/mcp/test_client.py target/debug/agent-exec

Session 1 (the SDK's default `Client`, which probes `server/discover` and falls back to
`initialize`) is recorded message by message by a relay into target/mcp-transcript.jsonl:
initialize, tools/list, run, wait with progress, tail. Session 2 (a `ClientSession`)
checks every tool's structuredContent against its outputSchema, kills a long job,
cancels a wait, and session 3 sends raw malformed bytes. Waits are conditions (a gate
file the test creates), never sleeps; every session has a deadline. Exit 0 on success.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRANSCRIPT = REPO / "target" / "mcp-transcript.jsonl"
DEADLINE_S = 60


def relay(transcript: str, command: list) -> int:
    """Copies stdin to the server and the server's stdout back, logging every line."""
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    lock = threading.Lock()
    log = open(transcript, "w", encoding="utf-8")

    def record(source: str, line: bytes) -> None:
        with lock:
            log.write(json.dumps({"from": source, "message": json.loads(line)}) + "\n")
            log.flush()

    def upstream() -> None:
        for line in sys.stdin.buffer:
            record("client", line)
            child.stdin.write(line)
            child.stdin.flush()
        child.stdin.close()

    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    threading.Thread(target=upstream, daemon=True).start()
    for line in child.stdout:
        record("server", line)
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
    return child.wait()


if len(sys.argv) > 2 and sys.argv[1] == "--relay":
    sys.exit(relay(sys.argv[2], sys.argv[3:]))

import anyio  # noqa: E402  (the relay above must run without the SDK's imports)
import jsonschema  # noqa: E402
from mcp import Client, ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

BIN = str(Path(sys.argv[1]).resolve()) if len(sys.argv) > 1 else str(REPO / "target" / "debug" / "agent-exec")
TOOLS = {"run", "status", "tail", "wait", "kill", "list", "create", "start", "tag_set", "delete"}


class Sandbox:
    """A private jobs root, HOME and working directory, removed at the end."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        base = Path(self.tmp.name)
        self.cwd = base / "work"
        (base / "home").mkdir()
        self.cwd.mkdir()
        self.env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(base / "home"),
            "XDG_CONFIG_HOME": str(base / "home" / ".config"),
            "AGENT_EXEC_ROOT": str(base / "jobs"),
        }

    def params(self, args: list) -> StdioServerParameters:
        return StdioServerParameters(command=args[0], args=args[1:], env=self.env, cwd=str(self.cwd))

    def gate_job_command(self, gate: Path) -> str:
        # The job also ends when the test's directory is gone.
        return f"echo started; while [ ! -e {gate} ] && [ -d {gate.parent} ]; do sleep 0.02; done; echo done"

    def cli(self, *args: str) -> dict:
        out = subprocess.run([BIN, *args], env=self.env, cwd=self.cwd, capture_output=True, check=True)
        return json.loads(out.stdout)


class Checker:
    """Validates every structuredContent against the outputSchema of its tool."""

    def __init__(self, tools) -> None:
        names = {tool.name for tool in tools}
        assert names == TOOLS, f"tools/list gave {sorted(names)}"
        self.schemas = {}
        for tool in tools:
            assert tool.input_schema["type"] == "object", tool.name
            assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
            jsonschema.validators.validator_for(tool.output_schema).check_schema(tool.output_schema)
            self.schemas[tool.name] = tool.output_schema
        self.validated = set()

    async def call(self, client, name: str, arguments: dict, *, error: bool = False, **kwargs) -> dict:
        result = await client.call_tool(name, arguments, **kwargs)
        assert result.is_error == error, f"{name} {arguments}: is_error={result.is_error} {result.structured_content}"
        assert result.content and result.content[0].type == "text" and result.content[0].text, name
        structured = result.structured_content
        jsonschema.validate(structured, self.schemas[name])
        assert structured["ok"] is (not error), structured
        self.validated.add(name)
        return structured


async def transcript_session(box: Sandbox) -> None:
    """initialize, tools/list, run, wait with progress, tail; recorded by the relay."""
    gate = box.cwd / "gate-1"
    relay_cmd = [sys.executable, __file__, "--relay", str(TRANSCRIPT), BIN, "mcp"]
    with anyio.fail_after(DEADLINE_S):
        async with Client(box.params(relay_cmd)) as client:
            assert client.protocol_version == "2025-11-25", client.protocol_version
            assert client.server_info.name == "agent-exec"
            assert "wait" in (client.instructions or "")
            checker = Checker((await client.list_tools()).tools)
            run = await checker.call(client, "run", {"command": box.gate_job_command(gate), "snapshot_after_ms": 0})
            assert run["state"] == "running", run
            progress = []

            async def on_progress(value, total, message):
                progress.append((value, total, message))
                gate.touch()  # the job may end once progress was seen

            wait = await checker.call(client, "wait", {"job_id": run["job_id"]}, progress_callback=on_progress)
            assert wait["state"] == "exited" and wait["exit_code"] == 0, wait
            assert progress and "output bytes" in progress[0][2], progress
            tail = await checker.call(client, "tail", {"job_id": run["job_id"]})
            assert tail["stdout_tail"] == "started\ndone", tail
    lines = [json.loads(line) for line in TRANSCRIPT.read_text().splitlines()]
    methods = [m["message"].get("method") for m in lines if m["from"] == "client"]
    for wanted in ("initialize", "tools/list", "tools/call"):
        assert wanted in methods, methods
    assert any(m["message"].get("method") == "notifications/progress" for m in lines)


async def full_session(box: Sandbox, errlog) -> None:
    """Every tool, schema-checked; kill a long job; cancel a wait."""
    with anyio.fail_after(DEADLINE_S):
        async with stdio_client(box.params([BIN, "-v", "mcp"]), errlog=errlog) as (read, write):
            async with ClientSession(read, write) as client:
                init = await client.initialize()
                assert init.protocol_version == "2025-11-25"
                checker = Checker((await client.list_tools()).tools)

                run = await checker.call(
                    client,
                    "run",
                    {"command": ["sh", "-c", "echo out; echo err >&2"], "tags": ["mcp.client"], "wait": True},
                )
                assert run["state"] == "exited" and run["final_snapshot"]["stdout_tail"] == "out", run
                done = run["job_id"]
                assert (await checker.call(client, "status", {"job_id": done}))["exit_code"] == 0
                await checker.call(client, "tag_set", {"job_id": done, "tags": ["mcp.kept"]})
                listed = await checker.call(client, "list", {"tags": ["mcp.kept"]})
                assert [job["job_id"] for job in listed["jobs"]] == [done], listed

                created = await checker.call(client, "create", {"command": ["true"]})
                assert created["state"] == "created"
                started = await checker.call(client, "start", {"job_id": created["job_id"], "wait": True})
                assert started["state"] == "exited", started

                # Kill a long one.
                long = await checker.call(client, "run", {"command": "sleep 300", "snapshot_after_ms": 0})
                killed = await checker.call(client, "kill", {"job_id": long["job_id"], "signal": "KILL"})
                assert killed["job_id"] == long["job_id"]
                ended = await checker.call(client, "wait", {"job_id": long["job_id"]})
                assert ended["state"] == "killed", ended

                # Cancel a wait: the SDK sends notifications/cancelled when the caller
                # gives up; the server stops waiting, the job goes on.
                gate = box.cwd / "gate-2"
                blocked = await checker.call(client, "run", {"command": box.gate_job_command(gate), "snapshot_after_ms": 0})
                seen = anyio.Event()

                async def on_progress(value, total, message):
                    seen.set()

                async with anyio.create_task_group() as group:
                    scope = anyio.CancelScope()

                    async def waiter():
                        with scope:
                            await client.call_tool("wait", {"job_id": blocked["job_id"]}, progress_callback=on_progress)
                            raise AssertionError("the cancelled wait returned")

                    group.start_soon(waiter)
                    await seen.wait()
                    scope.cancel()
                await client.send_ping()
                assert (await checker.call(client, "status", {"job_id": blocked["job_id"]}))["state"] == "running"
                cancelled = False
                while not cancelled:  # the server logs the cancellation (-v) on stderr
                    errlog.flush()
                    cancelled = "cancelled" in Path(errlog.name).read_text()
                    await anyio.sleep(0.02)
                gate.touch()
                finished = await checker.call(client, "wait", {"job_id": blocked["job_id"]})
                assert finished["state"] == "exited", finished

                # Engine errors are tool results with isError and the CLI's error object.
                missing = await checker.call(client, "status", {"job_id": "01NOSUCHJOB"}, error=True)
                assert missing["error"]["code"] == "job_not_found"
                await checker.call(client, "tail", {"job_id": done, "lines": 1})
                deleted = await checker.call(client, "delete", {"job_id": done})
                assert deleted["deleted"] == 1, deleted
                assert checker.validated == TOOLS, TOOLS - checker.validated


def malformed_session(box: Sandbox) -> None:
    """Raw bytes: a malformed line gets -32700 and the server goes on; EOF exits 0."""
    server = subprocess.Popen(
        [BIN, "mcp"], env=box.env, cwd=box.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    requests = b'{"jsonrpc":"2.0","id":1,"method":\xff garbage\n{"jsonrpc":"2.0","id":2,"method":"ping"}\n'
    out, _ = server.communicate(requests, timeout=DEADLINE_S)
    answers = [json.loads(line) for line in out.decode().splitlines()]
    assert answers[0]["error"]["code"] == -32700 and answers[0]["id"] is None, answers
    assert answers[1] == {"jsonrpc": "2.0", "id": 2, "result": {}}, answers
    assert server.returncode == 0


def main() -> int:
    assert os.access(BIN, os.X_OK), f"no binary at {BIN}: build first"
    TRANSCRIPT.parent.mkdir(parents=True, exist_ok=True)
    box = Sandbox()
    try:
        anyio.run(transcript_session, box)
        with tempfile.NamedTemporaryFile("w+", suffix=".log") as errlog:
            anyio.run(full_session, box, errlog)
        malformed_session(box)
        jobs = box.cli("list", "--all")["jobs"]
        running = [job["job_id"] for job in jobs if job["state"] == "running"]
        assert not running, f"jobs left running: {running}"
    finally:
        # Whatever failed, no job may outlive the test.
        for gate in ("gate-1", "gate-2"):
            (box.cwd / gate).touch()
        for job in box.cli("list", "--all", "--state", "running")["jobs"]:
            subprocess.run([BIN, "kill", "--signal", "KILL", job["job_id"]], env=box.env, capture_output=True)
        box.tmp.cleanup()
    print(f"mcp client test: ok (transcript: {TRANSCRIPT.relative_to(REPO)})")
    return 0


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"mcp client test took {time.monotonic() - start:.1f} s", file=sys.stderr)
    sys.exit(code)

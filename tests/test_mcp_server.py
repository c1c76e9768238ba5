"""The runtime as a real MCP server: over stdio with the SDK client, and in-process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from agentskiller.runtime.loader import compare_tool_lists
from agentskiller.runtime.mcp_server import build_server
from agentskiller.runtime.sandbox import REPO_ROOT

FIX = Path(__file__).parent / "fixtures" / "runtime"
SERVER_DIR = FIX / "servers" / "ClinicDesk"
TOOL_LIST = json.loads((FIX / "tool_lists" / "ClinicDesk.json").read_text())


def _text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_stdio_server_lists_tools_and_answers_calls():
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "agentskiller.serve", str(SERVER_DIR)],
        env={"PYTHONPATH": str(REPO_ROOT)},
        cwd=str(REPO_ROOT),
    )

    async def scenario() -> None:
        with anyio.fail_after(60):
            async with Client(params) as client:
                tools = (await client.list_tools()).tools
                advertised = [
                    {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in tools
                ]
                assert compare_tool_lists(TOOL_LIST, advertised) == []
                by_name = {t.name: t for t in tools}
                assert by_name["cancel_appointment"].description.startswith("Cancel one of")

                # a read tool with an ID from the database returns that record
                r = await client.call_tool("get_dentist", {"dentist_id": "DEN-02"})
                assert not r.is_error
                assert json.loads(_text(r)) == {
                    "dentist_id": "DEN-02",
                    "name": "Dr. Sato",
                    "specialty": "orthodontics",
                    "accepting": False,
                }
                # an unknown ID is a tool error the model can read, not a crash
                r = await client.call_tool("get_dentist", {"dentist_id": "DEN-404"})
                assert r.is_error and "unknown dentist_id: DEN-404" in _text(r)
                # state lives in the server process for the episode
                assert not (await client.call_tool("authorize_patient", {"patient_id": "PAT-001"})).is_error
                r = await client.call_tool("cancel_appointment", {"appointment_id": "APT-0001"})
                assert not r.is_error and json.loads(_text(r))["status"] == "cancelled"
                r = await client.call_tool("cancel_appointment", {"appointment_id": "APT-0001"})
                assert r.is_error and "only scheduled" in _text(r)

    anyio.run(scenario)


def test_in_process_server_matches_the_fast_path():
    server = build_server(SERVER_DIR)
    session = server._agentskiller_session

    async def scenario() -> None:
        async with Client(server) as client:
            tools = (await client.list_tools()).tools
            assert [t.name for t in tools] == [t["function"]["name"] for t in TOOL_LIST]
            r = await client.call_tool("search_appointments", {"status": "scheduled"})
            assert r.is_error and "not authorized" in _text(r)
            await client.call_tool("authorize_patient", {"patient_id": "PAT-001"})
            h0 = session.state.hash()
            r = await client.call_tool("book_appointment", {"dentist_id": "DEN-01", "date": "2025-07-01"})
            assert not r.is_error
            assert json.loads(_text(r))["appointment_id"] == "appointment_n00001"
            assert session.state.hash() != h0
            # invalid arguments are rejected before the tool runs
            r = await client.call_tool("search_appointments", {"status": "lost"})
            assert r.is_error
            r = await client.call_tool("total_fees", {})
            assert json.loads(_text(r)) == {"value": 560.0, "count": 4}

    anyio.run(scenario)


def test_serve_reports_a_bad_path_on_stderr(tmp_path, capsys):
    from agentskiller.serve import main

    assert main([str(tmp_path), "--memory-mb", "0", "--cpu-s", "0"]) == 2
    assert "cannot load" in capsys.readouterr().err


# ------------------------------------------------------------------- sandboxed server
ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="the server is sandboxed only when started as root")

#: appended to a copy of the fixture's tools.py: reports what tool code can see and do
PROBE_TOOL = '''

@tool
def probe_environment(ctx: Context, port: int, secret_file: str, write_targets: list[str]) -> dict:
    """Report what the tool code can see and do (test only)."""
    import os as _os
    import socket as _socket
    facts = {"uid": _os.getuid(), "env": sorted(_os.environ), "pid": _os.getpid()}
    try:
        _socket.create_connection(("127.0.0.1", port), timeout=2).close()
        facts["network"] = "connected"
    except OSError as exc:
        facts["network"] = str(exc)
    try:
        facts["secret"] = open(secret_file).read()
    except OSError as exc:
        facts["secret"] = None
    facts["writes"] = {}
    for target in write_targets:
        try:
            with open(target, "w") as fh:
                fh.write("escaped")
            facts["writes"][target] = "written"
        except OSError as exc:
            facts["writes"][target] = str(exc)
    return facts
'''


def _server_copy(tmp_path: Path, extra_code: str = "", poison: tuple[str, str] | None = None) -> Path:
    """A copy of the fixture tree (server dir + database) with a modified tools.py."""
    root = tmp_path / "fixture"
    shutil.copytree(FIX, root)
    tools = root / "servers" / "ClinicDesk" / "tools.py"
    code = tools.read_text() + extra_code
    if poison:
        from adversarial_payloads import poison_tools_module

        code = poison_tools_module(code, poison[0], poison[1])
    tools.write_text(code)
    return root / "servers" / "ClinicDesk"


def _params(server: Path, *extra: str, env: dict | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "agentskiller.serve", str(server), *extra],
        env={"PYTHONPATH": str(REPO_ROOT), **(env or {})},
        cwd=str(REPO_ROOT),
    )


def _left(marker: str, seconds: float = 5.0) -> list:
    from adversarial_payloads import marker_processes

    deadline = time.monotonic() + seconds
    while (found := marker_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


@root_only
def test_sandboxed_server_runs_tool_code_unprivileged_without_network_secrets_or_host_files(tmp_path):
    server = _server_copy(tmp_path, PROBE_TOOL)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    targets = [
        str(tmp_path / "escaped"),
        "/root/agentskiller_escaped",
        str(REPO_ROOT / "escaped_from_server"),
        str(server / "escaped"),
    ]
    lst = socket.create_server(("127.0.0.1", 0))
    port = lst.getsockname()[1]
    socket.create_connection(("127.0.0.1", port), timeout=2).close()  # the control: reachable from here
    lst.settimeout(0.1)
    try:
        lst.accept()[0].close()
    except OSError:
        pass

    async def scenario():
        with anyio.fail_after(60):
            async with Client(_params(server, env={"OPENAI_API_KEY": "sk-must-not-leak"})) as client:
                r = await client.call_tool("get_dentist", {"dentist_id": "DEN-02"})  # the tools work
                assert not r.is_error and json.loads(_text(r))["name"] == "Dr. Sato"
                r = await client.call_tool(
                    "probe_environment", {"port": port, "secret_file": str(secret), "write_targets": targets}
                )
                assert not r.is_error, _text(r)
                return json.loads(_text(r))

    facts = anyio.run(scenario)
    try:
        lst.accept()
        connected = True
    except OSError:
        connected = False
    lst.close()
    assert facts["uid"] != 0
    assert not [k for k in facts["env"] if "KEY" in k or "OPENAI" in k], facts["env"]
    assert facts["network"] != "connected" and not connected
    assert facts["secret"] is None  # /tmp (and /root) are hidden
    assert all(v != "written" for v in facts["writes"].values()), facts["writes"]
    assert not any(Path(t).exists() for t in targets)


@root_only
def test_sandboxed_server_contains_a_fork_bomb_in_a_tool_call(tmp_path):
    from adversarial_payloads import new_marker

    marker = new_marker()
    server = _server_copy(tmp_path, poison=("fork", marker))
    t0 = time.monotonic()

    async def scenario():
        with anyio.fail_after(90):
            async with Client(_params(server)) as client:
                tools = (await client.list_tools()).tools
                r = await client.call_tool("get_dentist", {"dentist_id": "DEN-02"})
                # the server is still there and answers (the bomb hit the process limit)
                again = await client.list_tools()
                return len(tools), r, len(again.tools)

    n, result, n_again = anyio.run(scenario)
    assert n == n_again == len(TOOL_LIST)
    assert result.is_error, _text(result)
    assert "BlockingIOError" in _text(result) or "Resource temporarily unavailable" in _text(result), _text(result)
    assert time.monotonic() - t0 < 60
    assert _left(marker) == [], "processes of the fork bomb survived the server"


@root_only
def test_sandboxed_server_stops_a_tool_call_past_the_call_timeout(tmp_path):
    from adversarial_payloads import new_marker

    marker = new_marker()
    server = _server_copy(tmp_path, poison=("loop", marker))
    t0 = time.monotonic()

    async def scenario():
        with anyio.fail_after(60):
            async with Client(_params(server, "--call-timeout-s", "2")) as client:
                return await client.call_tool("get_dentist", {"dentist_id": "DEN-02"})

    result = anyio.run(scenario)
    assert result.is_error and "timed out after 2 s" in _text(result), _text(result)
    assert time.monotonic() - t0 < 30
    assert _left(marker) == []


def test_serve_cleans_up_and_no_sandbox_still_serves(tmp_path):
    """stdin closed: the (sandboxed) server ends, its private directory is gone; with
    --no-sandbox (or not root) it says on stderr that the tool code runs unconfined."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {"PYTHONPATH": str(REPO_ROOT), "TMPDIR": str(scratch), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "agentskiller.serve", str(SERVER_DIR)]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    assert list(scratch.iterdir()) == []
    if not ROOT:
        assert "rlimits only" in p.stderr
    p = subprocess.run(
        [*cmd, "--no-sandbox"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env
    )
    assert p.returncode == 0 and "--no-sandbox" in p.stderr, p.stderr


def test_no_sandbox_server_lists_tools_over_stdio():
    async def scenario():
        with anyio.fail_after(60):
            async with Client(_params(SERVER_DIR, "--no-sandbox")) as client:
                tools = (await client.list_tools()).tools
                r = await client.call_tool("get_dentist", {"dentist_id": "DEN-02"})
                return [t.name for t in tools], r

    names, r = anyio.run(scenario)
    assert names == [t["function"]["name"] for t in TOOL_LIST]
    assert not r.is_error

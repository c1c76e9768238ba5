"""Generated MCP servers, started the documented way and driven by real MCP clients.

Which servers: every server with ``status: passed`` under an outputs directory:

* ``AGENTSKILLER_OUTPUTS=/path/to/outputs``: an existing run (e.g. after ``snakemake --cores 2``);
* otherwise the shared default workflow run of the test session (``default_run`` in conftest).

For each server: ``python -m agentskiller.serve <server dir>`` over stdio with the MCP SDK
client lists exactly the tools of ``tool_lists/{domain}.json``, and a read tool called with
an ID from the database (after authorizing as its owner) returns that record. When ``npx``
is available, the official MCP Inspector CLI lists the same tools (skipped cleanly when the
package cannot be fetched).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from agentskiller import artifacts, io
from agentskiller.runtime.environment import load_environment
from agentskiller.runtime.loader import compare_tool_lists
from agentskiller.steps.domains import contract_tests as ct
from agentskiller.steps.domains import s09_server

REPO = Path(__file__).resolve().parents[1]
INSPECTOR = "@modelcontextprotocol/inspector@0.15"


def _server_env() -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": pythonpath, "LANG": "C.UTF-8"}


def _params(server: Path) -> StdioServerParameters:
    # exactly the documented command
    return StdioServerParameters(
        command=sys.executable, args=["-m", "agentskiller.serve", str(server)], env=_server_env(), cwd=str(server)
    )


def _expected_tools(outputs: Path, domain: str) -> list[dict]:
    data = io.read_json(outputs / "tool_lists" / f"{domain}.json")
    return data["tools"] if isinstance(data, dict) else data


def _read_call(outputs: Path, server: Path) -> tuple[list[dict], str, dict]:
    """(calls: authorize then read, primary key, expected record) from the contract plan."""
    domain = server.name
    bp = artifacts.require_blueprint(outputs / "blueprints" / f"{domain}.json")
    env = load_environment(server)
    data = s09_server.load_data(dict(env.table_paths))
    plan = ct.derive_tests(bp, data, {}, env.manifest.simulation_time)
    reads = [t for t in bp.tools if t.kind == "read"]
    # prefer a relationship table: that exercises authorization and ownership too
    reads.sort(key=lambda t: (bp.relationship(t.table) is None, t.name))
    for tool in reads:
        ep = next((e for e in plan.episodes if e.id == f"{tool.name}/valid"), None)
        if ep is None:
            continue
        pk = data.pk(tool.table)
        key = next(iter(ep.calls[-1]["arguments"].values()))
        return ep.calls, pk, data.get(tool.table, key)
    pytest.skip(f"{domain}: no read tool with a record to read")


def test_sdk_client_lists_tools_and_reads_a_record(outputs_dir, servers):
    for server in servers:
        expected = _expected_tools(outputs_dir, server.name)
        calls, pk, record = _read_call(outputs_dir, server)

        async def main(server=server, calls=calls):
            with anyio.fail_after(120):
                async with Client(_params(server)) as client:
                    listed = await client.list_tools()
                    tools = [{"name": t.name, "inputSchema": t.input_schema} for t in listed.tools]
                    results = [await client.call_tool(c["tool"], c["arguments"]) for c in calls]
                    unknown = await client.call_tool(
                        calls[-1]["tool"], {k: "no-such-id-0" for k in calls[-1]["arguments"]}
                    )
                    return tools, results, unknown

        tools, results, unknown = anyio.run(main)
        assert compare_tool_lists(expected, tools) == [], server.name
        assert sorted(t["name"] for t in tools) == sorted(t["function"]["name"] for t in expected)
        for r in results:
            assert not r.is_error, r.content
        got = json.loads(results[-1].content[0].text)
        assert got[pk] == record[pk]
        assert got == record, (server.name, got, record)
        assert unknown.is_error, "an unknown ID is a tool error over MCP too"


def test_mcp_inspector_cli_lists_the_tools(outputs_dir, servers, tmp_path):
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx is not installed")
    server = servers[0]
    expected = sorted(t["function"]["name"] for t in _expected_tools(outputs_dir, server.name))
    cmd = [
        npx,
        "-y",
        INSPECTOR,
        "--cli",
        sys.executable,
        "-m",
        "agentskiller.serve",
        str(server),
        "--method",
        "tools/list",
    ]
    env = {**os.environ, **_server_env()}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    except subprocess.TimeoutExpired:
        pytest.skip("the MCP Inspector could not be fetched/started in time")
    if proc.returncode != 0:
        text = proc.stderr + proc.stdout
        if any(
            s in text
            for s in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "E404", "network", "npm ERR!", "npm error")
        ):
            pytest.skip(f"the MCP Inspector package cannot be fetched: {text.strip()[-300:]}")
        pytest.fail(f"inspector failed ({proc.returncode}): {text[-2000:]}")
    start = proc.stdout.find("{")
    data = json.loads(proc.stdout[start:])
    assert sorted(t["name"] for t in data["tools"]) == expected

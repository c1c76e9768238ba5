"""The runtime as a real MCP server: over stdio with the SDK client, and in-process."""

from __future__ import annotations

import json
import sys
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
                advertised = [{"name": t.name, "description": t.description, "input_schema": t.input_schema}
                              for t in tools]
                assert compare_tool_lists(TOOL_LIST, advertised) == []
                by_name = {t.name: t for t in tools}
                assert by_name["cancel_appointment"].description.startswith("Cancel one of")

                # a read tool with an ID from the database returns that record
                r = await client.call_tool("get_dentist", {"dentist_id": "DEN-02"})
                assert not r.is_error
                assert json.loads(_text(r)) == {
                    "dentist_id": "DEN-02", "name": "Dr. Sato", "specialty": "orthodontics", "accepting": False,
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

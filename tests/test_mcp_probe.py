"""The plain JSON-RPC MCP probe (s09's and the pair server's live check): initialize, then every
page of tools/list; a server that dies or stays silent is a ProbeError naming its stderr."""

from __future__ import annotations

import sys
import textwrap

import pytest

from agentskiller.runtime.mcp_probe import ProbeError, ServerCommand, list_tools

SERVER = textwrap.dedent(
    """
    import json, sys
    mode = sys.argv[1]
    pages = [[{"name": "a", "description": "first", "inputSchema": {"type": "object"}}],
             [{"name": "b", "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}}}]]
    def send(o):
        sys.stdout.write(json.dumps(o) + "\\n"); sys.stdout.flush()
    for line in sys.stdin:
        msg = json.loads(line)
        if mode == "die":
            print("cannot load the tools module", file=sys.stderr); sys.exit(3)
        if mode == "silent":
            continue
        if msg.get("method") == "initialize":
            send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info"}})
            send({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": msg["params"]["protocolVersion"],
                  "capabilities": {"tools": {}}, "serverInfo": {"name": "fake", "version": "0"}}})
        elif msg.get("method") == "tools/list":
            cursor = (msg.get("params") or {}).get("cursor")
            page = 1 if cursor == "p2" else 0
            result = {"tools": pages[page]}
            if page == 0:
                result["nextCursor"] = "p2"
            send({"jsonrpc": "2.0", "id": msg["id"], "result": result})
    """
)


def _server(mode: str) -> ServerCommand:
    return ServerCommand(command=sys.executable, args=["-c", SERVER, mode])


def test_lists_every_page_and_skips_notifications():
    tools = list_tools(_server("ok"), timeout_s=30)
    assert tools == [
        {"name": "a", "description": "first", "inputSchema": {"type": "object"}},
        {"name": "b", "description": "", "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}}},
    ]


def test_a_dead_server_is_an_error_with_its_stderr():
    with pytest.raises(ProbeError, match="cannot load the tools module"):
        list_tools(_server("die"), timeout_s=30)


def test_a_silent_server_times_out():
    with pytest.raises(ProbeError, match="no answer to request 1"):
        list_tools(_server("silent"), timeout_s=1.0)


def test_a_missing_command_is_an_error():
    with pytest.raises(ProbeError, match="cannot start"):
        list_tools(ServerCommand(command="/nonexistent/python"), timeout_s=5)

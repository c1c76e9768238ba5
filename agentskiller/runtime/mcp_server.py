"""A real MCP server (mcp 2.x ``MCPServer``) over an environment's tool functions.

One MCP tool per ``@tool`` function, with the same (exposed) name, the description from
the docstring and the parameters from the signature: the ``ctx`` parameter is dropped by a
wrapper that carries the remaining signature, so the SDK derives the same input schema
the code declares. Every call goes through :meth:`Session.call`, exactly like the fast
path: same argument validation, same rollback on failure, same JSON check. A
``ToolError`` (or any failure) becomes an MCP tool error result (``is_error=True``).

The state lives in the server process: one server process is one episode.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError as MCPToolError

from .environment import Environment, Session, load_environment
from .loader import BoundTool, _tool_params

__all__ = ["build_server"]

log = logging.getLogger("agentskiller.serve")


def _wrapper(bound: BoundTool, session: Session, lock: threading.Lock):
    params, hints = _tool_params(bound.fn)

    def call(**kwargs: Any) -> str:
        # The SDK runs sync tools on worker threads; one episode's state needs one writer.
        with lock:
            rec = session.call(bound.name, kwargs)
        if not rec.ok:
            log.info("tool %s failed (%s): %s", bound.name, rec.error_type, rec.error)
            raise MCPToolError(rec.error or "tool error")
        # JSON text for the model; checked JSON-able by Session.call already.
        return json.dumps(rec.result, ensure_ascii=False)

    call.__name__ = bound.fn.__name__
    call.__qualname__ = bound.fn.__name__
    call.__doc__ = bound.description
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(annotation=hints[p.name]) for p in params], return_annotation=str
    )
    call.__annotations__ = {p.name: hints[p.name] for p in params} | {"return": str}
    return call


def build_server(environment: Environment | str | Path, session: Session | None = None) -> MCPServer:
    """An MCP server for ``environment`` (an Environment, server directory or manifest)."""
    env = environment if isinstance(environment, Environment) else load_environment(environment)
    session = session or env.new_session()
    server = MCPServer(
        env.name,
        version="1",
        instructions=f"Tools of the {env.name} environment. Authorize the user first.",
    )
    lock = threading.Lock()
    for bound in session.toolset:
        server.add_tool(
            _wrapper(bound, session, lock),
            name=bound.name,
            description=bound.description,
            structured_output=False,
        )
    server._agentskiller_session = session  # type: ignore[attr-defined]  # for tests/inspection
    return server

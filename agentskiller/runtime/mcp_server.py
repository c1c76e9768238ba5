"""A real MCP server (mcp 2.x ``MCPServer``) over an environment's tool functions.

One MCP tool per ``@tool`` function, with the same (exposed) name, the description from
the docstring and the parameters from the signature: the ``ctx`` parameter is dropped by a
wrapper that carries the remaining signature, so the SDK derives the same input schema
the code declares. Every call goes through :meth:`Session.call`, exactly like the fast
path: same argument validation, same rollback on failure, same JSON check. A
``ToolError`` (or any failure) becomes an MCP tool error result (``is_error=True``).

The state lives in the server process: one server process is one episode.

``call_timeout_s``: a call that runs longer fails with a tool error, and the process then
exits: Python cannot stop the stuck thread, the episode's state is half-written, and the
lock would block every later call (``python -m agentskiller.serve`` sets it; in-process
servers in tests leave it off).

Every result (success or tool error) carries the rest of the :class:`CallRecord` in its
``_meta`` under :data:`META_KEY` - ``{"ok", "error_type", "state_hash_after",
"changed_tables"}`` - so an MCP client (the rollout) knows the state hash after each call
exactly like the fast path does. Models never see ``_meta``: the content is unchanged.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError as MCPToolError
from mcp_types import CallToolResult, TextContent

from .environment import Environment, Session, load_environment
from .loader import BoundTool, _tool_params

__all__ = ["build_server", "META_KEY"]

#: the ``_meta`` key of every tool result: the call's record without the result itself
META_KEY = "agentskiller/call_record"

log = logging.getLogger("agentskiller.serve")


#: exit status of a server stopped by a timed-out call (as timeout(1))
TIMEOUT_EXIT = 124


def _call_with_deadline(fn, seconds: float | None):
    """``fn()``, or TimeoutError after ``seconds`` (then ``fn`` keeps running in its
    daemon thread: the caller must stop the process)."""
    if not seconds:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="agentskiller-tool-call", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError
    if "error" in box:
        raise box["error"]
    return box["value"]


def _stop_soon(delay_s: float = 0.5) -> None:
    """Exit the process shortly (the timed-out call's error reply is sent first)."""
    timer = threading.Timer(delay_s, os._exit, (TIMEOUT_EXIT,))
    timer.daemon = True
    timer.start()


def _wrapper(bound: BoundTool, session: Session, lock: threading.Lock, call_timeout_s: float | None = None):
    params, hints = _tool_params(bound.fn)

    def call(**kwargs: Any) -> CallToolResult:
        # The SDK runs sync tools on worker threads; one episode's state needs one writer.
        with lock:
            try:
                rec = _call_with_deadline(lambda: session.call(bound.name, kwargs), call_timeout_s)
            except TimeoutError:
                msg = (
                    f"tool call {bound.name} timed out after {call_timeout_s:g} s; "
                    "the server stops (its state can no longer be trusted)"
                )
                print(f"agentskiller.serve: {msg}", file=sys.stderr, flush=True)
                _stop_soon()
                raise MCPToolError(msg) from None
        meta = {
            META_KEY: {
                "ok": rec.ok,
                "error_type": rec.error_type,
                "state_hash_after": rec.state_hash_after,
                "changed_tables": list(rec.changed_tables),
            }
        }
        if not rec.ok:
            log.info("tool %s failed (%s): %s", bound.name, rec.error_type, rec.error)
            text = rec.error or "tool error"
            return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True, meta=meta)
        # JSON text for the model; checked JSON-able by Session.call already.
        text = json.dumps(rec.result, ensure_ascii=False)
        return CallToolResult(content=[TextContent(type="text", text=text)], meta=meta)

    call.__name__ = bound.fn.__name__
    call.__qualname__ = bound.fn.__name__
    call.__doc__ = bound.description
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(annotation=hints[p.name]) for p in params], return_annotation=str
    )
    call.__annotations__ = {p.name: hints[p.name] for p in params} | {"return": str}
    return call


def build_server(
    environment: Environment | str | Path, session: Session | None = None, call_timeout_s: float | None = None
) -> MCPServer:
    """An MCP server for ``environment`` (an Environment, server directory or manifest);
    ``call_timeout_s``: see the module docstring."""
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
            _wrapper(bound, session, lock, call_timeout_s),
            name=bound.name,
            description=bound.description,
            structured_output=False,
        )
    server._agentskiller_session = session  # type: ignore[attr-defined]  # for tests/inspection
    return server

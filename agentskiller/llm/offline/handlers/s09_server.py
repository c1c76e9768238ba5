"""Offline answers for step s09: the tool module of a domain's MCP server.

``s09.tools`` writes the module from the blueprint and policy in the request context;
``s09.repair`` gets the same context plus the failing contract tests and the current code
and answers with a corrected module: the writer regenerates it from the blueprint (it has
no reason to keep a broken line), which is what a competent model's repair converges to.
"""

from __future__ import annotations

from ..codegen_tools import write_tools_module
from ..provider import OfflineRequest, handler


def _module(req: OfflineRequest) -> str:
    ctx = req.context or {}
    if "blueprint" not in ctx:
        raise ValueError(f"{req.task}: the request context has no blueprint")
    keys = {
        name: t.get("primary_key")
        for name, t in (ctx.get("tables") or {}).items()
        if isinstance(t, dict) and t.get("primary_key")
    }
    code = write_tools_module(ctx["blueprint"], ctx.get("policy_sections") or {}, keys)
    return f"```python\n{code}```\n"


@handler("s09.tools")
def tools(req: OfflineRequest) -> str:
    return _module(req)


@handler("s09.repair")
def repair(req: OfflineRequest) -> str:
    return _module(req)

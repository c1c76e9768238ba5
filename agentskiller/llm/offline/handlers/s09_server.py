"""Offline answers for step s09: the tool module of a domain's MCP server.

``s09.tools`` writes the module from the blueprint, the policy's rules (``policy_rules``:
what the policy's ``<!-- RULE -->`` markers state, each of which the code keeps) and the
tables in the request context (primary keys, a sample key per table for the docstrings'
examples);
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
    tables = {name: t for name, t in (ctx.get("tables") or {}).items() if isinstance(t, dict) and t.get("primary_key")}
    keys = {name: t["primary_key"] for name, t in tables.items()}
    # one real key per table, for the docstrings' format examples (the writer zeroes its digits)
    examples = {
        name: rows[0].get(t["primary_key"])
        for name, t in tables.items()
        if (rows := t.get("sample_rows")) and isinstance(rows[0], dict)
    }
    rules = ctx.get("policy_rules")
    code = write_tools_module(ctx["blueprint"], table_keys=keys, id_examples=examples, rules=rules)
    return f"```python\n{code}```\n"


@handler("s09.tools")
def tools(req: OfflineRequest) -> str:
    return _module(req)


@handler("s09.repair")
def repair(req: OfflineRequest) -> str:
    return _module(req)

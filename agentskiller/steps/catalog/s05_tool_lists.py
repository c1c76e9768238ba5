"""s05 tool lists: a blueprint's tools in OpenAI tools format (deterministic).

Parameters get real JSON Schema types (date -> string with format date, datetime ->
string with format date-time), enums, ranges, ``items`` for arrays, descriptions, and a
``required`` list that honours optional parameters. A quarantined blueprint gives a tool
list with ``status: failed`` and no tools.
"""

from __future__ import annotations

from typing import Any

from agentskiller import artifacts
from agentskiller.artifacts import load_blueprint
from agentskiller.jobs import StepContext, Substep, run_steps
from agentskiller.models.blueprint import Blueprint, Tool, ToolParam

SCALAR = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
}


def param_schema(p: ToolParam) -> dict[str, Any]:
    if p.type == "array":
        schema: dict[str, Any] = {"type": "array", "items": dict(SCALAR[p.items or "string"])}
        if p.enum:
            schema["items"]["enum"] = list(p.enum)
    else:
        schema = dict(SCALAR[p.type])
        if p.enum:
            schema["enum"] = list(p.enum)
    if p.type in ("integer", "number"):
        if p.minimum is not None:
            schema["minimum"] = int(p.minimum) if p.type == "integer" else p.minimum
        if p.maximum is not None:
            schema["maximum"] = int(p.maximum) if p.type == "integer" else p.maximum
    schema["description"] = p.description
    return schema


def openai_tool(tool: Tool) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": {
                "type": "object",
                "properties": {p.name: param_schema(p) for p in tool.parameters},
                "required": [p.name for p in tool.parameters if p.required],
                "additionalProperties": False,
            },
        },
    }


def tool_list(bp: Blueprint) -> list[dict[str, Any]]:
    return [openai_tool(t) for t in bp.tools]


def run(ctx: StepContext) -> None:
    domain = ctx.wildcards.get("domain") or artifacts.read(ctx.inputs["blueprint"])["domain"]
    bp = load_blueprint(ctx.inputs["blueprint"])
    if bp is None:
        reason = artifacts.read(ctx.inputs["blueprint"]).get("reason", "")
        ctx.write_json(
            "tool_list", {"domain": domain, "status": "failed", "reason": f"s04: {reason}", "tools": []}, "tool_list"
        )
        return
    ctx.write_json("tool_list", {"domain": domain, "status": "ok", "tools": tool_list(bp)}, "tool_list")


def run_after_blueprint(ctx: StepContext) -> None:
    """The ``blueprint`` job: s04's detail for one domain, then s05 on the blueprint it just
    wrote, each as its own step (:func:`agentskiller.jobs.run_steps`: the same blueprint and
    tool list two jobs would write). One job instead of two: s05 is milliseconds of work, its
    own job was a whole interpreter start-up."""
    from agentskiller.steps.catalog.s04_blueprints import run_detail

    run_steps(
        ctx,
        (
            Substep("s04", run_detail, ("outlines", "entities"), ("blueprint",)),
            Substep("s05", run, ("blueprint",), ("tool_list",)),
        ),
    )

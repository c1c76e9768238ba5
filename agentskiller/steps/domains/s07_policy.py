"""s07 policy: the domain's service policy, written by the text model, checked in code.

The model gets the blueprint, the database summary (computed from the data in s06) and the
simulation time, and writes a markdown policy with structured markers: global rules, then
exactly one section per tool (purpose, preconditions, input validation, permitted and
rejected outcomes, effects). :mod:`.policy_markers` checks it: markers well formed, every
tool exactly one section, no section for an unknown tool, every part present, no table,
column or value that the schema lacks, and every rule of
:func:`agentskiller.models.policy_rules.derive_rules` stated on a line that ends with its
``<!-- RULE: id -->`` marker and says what the rule says (no rule stated unmarked). Problems go back to the model through the LLM
client's repair loop (``policy.max_repair_rounds``). Outputs: ``policies/{domain}.md`` and
the check report ``policies/{domain}.json``. A failed blueprint or database, or a policy
that never passes, quarantines the domain: an empty policy and a failed report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentskiller import artifacts, io
from agentskiller.artifacts import blueprint_or_reason, load_entities, upstream_reason
from agentskiller.jobs import StepContext
from agentskiller.llm import LLMError
from agentskiller.models.policy_rules import derive_rules, is_conduct
from agentskiller.prompts import render
from agentskiller.steps.domains.policy_markers import (
    PolicySchema,
    check_policy,
    parse_policy,
    stated_rules,
    strip_fence,
)
from agentskiller.steps.repair import checks_failed


def database_context(summary: dict) -> dict[str, Any]:
    """The summary as the prompt shows it: per table the key, count, and per column the
    type, enum values or range and references (samples only for identifiers)."""
    out: dict[str, Any] = {}
    for name, t in (summary.get("tables") or {}).items():
        cols = {}
        for cname, c in t.get("columns", {}).items():
            entry = {k: c[k] for k in ("type", "values", "min", "max", "references", "nulls") if k in c}
            if cname == t.get("primary_key"):
                entry["samples"] = c.get("samples", [])[:2]
            cols[cname] = entry
        out[name] = {
            "kind": t.get("kind"),
            "primary_key": t.get("primary_key"),
            "count": t.get("count"),
            "columns": cols,
        }
    return out


def _summary(db: Path) -> dict:
    p = Path(db) / "summary.json" if Path(db).is_dir() else Path(db)
    return artifacts.read(p)


def _fail(ctx: StepContext, domain: str, reason: str, tools: list[str], rounds: list[dict] | None = None) -> None:
    ctx.log.warning("policy for %s quarantined: %s", domain, reason)
    ctx.write_text("policy", "")
    last = (rounds or [{}])[-1].get("errors", []) if rounds else []
    ctx.write_json(
        "report",
        {
            "domain": domain,
            "status": "failed",
            "reason": reason,
            "tools": tools,
            "sections": [],
            "rounds": rounds or [],
            "rounds_used": len(rounds or []),
            "errors": last,
        },
        "policy_report",
    )


def run(ctx: StepContext) -> None:
    domain = ctx.wildcards.get("domain", "")
    bp, failed = blueprint_or_reason(ctx.inputs["blueprint"])
    if bp is None:
        return _fail(ctx, domain, failed or "s04: blueprint failed", [])
    tools = [t.name for t in bp.tools]
    summary = _summary(ctx.inputs["db"])
    if summary.get("status") == "failed":
        return _fail(ctx, domain, upstream_reason("s06", summary), tools)
    entities = load_entities(ctx.inputs["entities"])
    schema = PolicySchema.from_blueprint(bp, entities, summary)
    rules = derive_rules(bp, entities)
    sim_time = ctx.cfg.simulation_time
    context = {
        "blueprint": bp.model_dump(exclude_none=True),
        "database": database_context(summary),
        "simulation_time": sim_time,
        "tools": tools,
        # every rule the policy must state, each on a line ending with its marker
        "rules": [r.model_dump(exclude_defaults=True) for r in rules],
    }
    rounds: list[dict] = []

    def check(text: str) -> list[str]:
        errors = check_policy(strip_fence(text), schema, rules)
        rounds.append({"round": len(rounds), "errors": errors})
        return errors

    messages = render("s07", "policy", context, domain=bp.domain, tools=", ".join(tools), simulation_time=sim_time)
    max_rounds = ctx.cfg.policy.max_repair_rounds
    try:
        text = ctx.llm.generate(
            "s07.policy", messages, role="text", context=context, check=check, max_rounds=max_rounds
        )
    except LLMError as exc:
        return _fail(ctx, domain, checks_failed("s07", "the policy failed its checks", rounds, exc), tools, rounds)
    text = strip_fence(text).strip() + "\n"
    parsed = parse_policy(text)
    ctx.write_text("policy", text)
    ctx.write_json(
        "report",
        {
            "domain": domain,
            "status": "ok",
            "tools": tools,
            "sections": parsed.order,
            "global_rules": len(parsed.rules),
            # the rules as stated (the markers), which s09 turns into contract tests
            "rules": [r.model_dump(exclude_defaults=True) for r in rules],
            "conduct": sorted(rid for rid in stated_rules(parsed) if is_conduct(rid)),
            "sha256": io.sha256_text(text),
            "rounds": rounds,
            "rounds_used": len(rounds),
            "errors": [],
        },
        "policy_report",
    )

"""s04 blueprints: outlines per person (checkpoint), detail per domain, index.

``run_outlines`` asks for ``outlines_per_person`` outlines per person entity, validates
them in code (names, entities, peripheral bounds, uniqueness) and caps the domain list at
``max_domains`` deterministically, preferring core persons shared by several topics (they
make the cross-domain pairs). ``run_detail`` asks for the full blueprint and runs
:func:`blueprint_checks.check_blueprint` on every answer, feeding violations back; a
blueprint still invalid after its budget is quarantined (``status: failed`` + reason) and
the run goes on. ``run_index`` lists every domain with its status.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from agentskiller import artifacts
from agentskiller.artifacts import load_entities, load_entity_graph, load_outlines
from agentskiller.jobs import StepContext
from agentskiller.llm import LLMError
from agentskiller.models.blueprint import DOMAIN_NAME_RE, Blueprint, Outline
from agentskiller.models.catalog import Entity, pascal_case
from agentskiller.prompts import render
from agentskiller.steps.catalog.blueprint_checks import Limits, check_blueprint, failure_artifact


class OutlinesAnswer(BaseModel):
    outlines: list[Outline]


# ----------------------------------------------------------------------- outlines
def validate_outline(
    o: Outline, person: str, entities: dict[str, Entity], neighbours: list[str], limits: Limits
) -> tuple[Outline | None, str]:
    """(fixed outline, "") or (None, reason)."""
    name = o.domain if DOMAIN_NAME_RE.fullmatch(o.domain) else pascal_case(o.domain)
    if not DOMAIN_NAME_RE.fullmatch(name):
        # too short, too long (over 40 characters: not cut, a cut name is one nobody chose) or no letters
        return None, f"invalid server name {o.domain[:60]!r}"
    if o.core_entity != person:
        return None, f"core entity {o.core_entity!r} is not {person!r}"
    peri = list(dict.fromkeys(p for p in o.peripheral_entities if p != person))
    unknown = [p for p in peri if p not in entities or p not in neighbours]
    if unknown:
        return None, f"peripheral entities {unknown} are not related to {person}"
    if not 1 <= len(peri) <= limits.max_peripheral:
        return None, f"{len(peri)} peripheral entities (1-{limits.max_peripheral} allowed)"
    return o.model_copy(update={"domain": name, "peripheral_entities": peri}), ""


def select_domains(by_person: dict[str, list[Outline]], entities: dict[str, Entity], cap: int) -> list[Outline]:
    """Deterministic cap: persons shared by more topics first (then by name), all of a
    person's outlines together so each chosen person contributes a pair."""
    order = sorted(by_person, key=lambda p: (-len(entities[p].topics), p))
    chosen: list[Outline] = []
    for p in order:
        for o in by_person[p]:
            if len(chosen) < cap:
                chosen.append(o)
    return chosen


def run_outlines(ctx: StepContext) -> None:
    entities = load_entities(ctx.inputs["entities"])
    graph = load_entity_graph(ctx.inputs["graph"])
    cfg = ctx.cfg.blueprints
    limits = Limits.from_config(cfg)
    per_person, cap = cfg.outlines_per_person, cfg.max_domains
    persons = [p for p in graph.persons if p in entities and graph.neighbours(p)]

    def ask(person: str) -> list[Outline]:
        e = entities[person]
        context = {
            "person": {"name": person, "description": e.description, "topics": e.topics},
            "neighbours": [
                {"name": n, "description": entities[n].description, "topics": entities[n].topics}
                for n in graph.neighbours(person)
                if n in entities
            ],
            "count": per_person,
            "max_peripheral": limits.max_peripheral,
            "max_relationships": limits.max_relationships,
        }
        messages = render(
            "s04", "outlines", context, person=person, count=str(per_person), max_peripheral=str(limits.max_peripheral)
        )
        return ctx.llm.generate(task="s04.outlines", messages=messages, schema=OutlinesAnswer, context=context).outlines

    answers = ctx.llm.map(ask, persons)
    dropped: list[dict] = []
    names: dict[str, str] = {}  # lower-cased domain name -> the name the model gave
    combos: set[tuple] = set()
    by_person: dict[str, list[Outline]] = {}
    for person, outs in zip(persons, answers):
        for o in outs:
            fixed, reason = validate_outline(o, person, entities, graph.neighbours(person), limits)
            if fixed is not None:
                combo = (fixed.core_entity, tuple(sorted(fixed.peripheral_entities)), fixed.topic)
                # case-insensitive (file names on macOS): a second outline whose name normalizes
                # to a taken one is refused, not renamed to a name nobody chose
                if fixed.domain.lower() in names:
                    taken = names[fixed.domain.lower()]
                    fixed, reason = None, f"name {o.domain[:60]!r} collides with {taken!r} after normalization"
                elif combo in combos:
                    fixed, reason = None, "same core, peripherals and topic as another outline"
            if fixed is None:
                dropped.append({"domain": o.domain[:60], "core_entity": person, "reason": reason})
                continue
            combos.add(combo)
            names[fixed.domain.lower()] = o.domain[:60]
            by_person.setdefault(person, []).append(fixed)
    chosen = select_domains(by_person, entities, cap)
    kept = {o.domain for o in chosen}
    dropped += [
        {"domain": o.domain, "core_entity": o.core_entity, "reason": f"over max_domains={cap}"}
        for outs in by_person.values()
        for o in outs
        if o.domain not in kept
    ]
    if not chosen:
        raise RuntimeError("s04 produced no valid outline")
    ctx.log.info("s04 outlines: %d domain(s) kept, %d dropped", len(chosen), len(dropped))
    ctx.write_json("outlines", {"domains": [o.model_dump(mode="json") for o in chosen], "dropped": dropped}, "outlines")


# ------------------------------------------------------------------------- detail
def detail_context(outline: Outline, entities: dict[str, Entity], limits: Limits) -> dict:
    names = [outline.core_entity, *outline.peripheral_entities]
    return {
        "outline": outline.model_dump(mode="json"),
        "entities": {n: entities[n].model_dump(mode="json", exclude={"topics"}) for n in names if n in entities},
        "limits": limits.as_dict(),
    }


def generate_blueprint(
    client, outline: Outline, entities: dict[str, Entity], limits: Limits, max_rounds: int | None = None
) -> Blueprint:
    """Ask for the blueprint of ``outline`` until it passes the checks (LLMError if not)."""
    context = detail_context(outline, entities, limits)
    messages = render(
        "s04",
        "blueprint_detail",
        context,
        domain=outline.domain,
        core=outline.core_entity,
        min_tools=str(limits.min_tools),
        max_relationships=str(limits.max_relationships),
    )
    return client.generate(
        task="s04.blueprint_detail",
        messages=messages,
        schema=Blueprint,
        context=context,
        check=lambda bp: check_blueprint(bp, entities, limits, outline),
        max_rounds=max_rounds,
    )


def run_detail(ctx: StepContext) -> None:
    domain = ctx.wildcards["domain"]
    outline = next((o for o in load_outlines(ctx.inputs["outlines"]) if o.domain == domain), None)
    if outline is None:
        raise KeyError(f"domain {domain!r} is not in {ctx.inputs['outlines']}")
    entities = load_entities(ctx.inputs["entities"])
    limits = Limits.from_config(ctx.cfg.blueprints)
    try:
        bp = generate_blueprint(ctx.llm, outline, entities, limits)
    except LLMError as exc:
        ctx.log.error("s04 %s quarantined: %s", domain, exc)
        ctx.write_json("blueprint", failure_artifact(domain, str(exc)), "blueprint")
        return
    ctx.log.info("s04 %s: %d relationship(s), %d tool(s)", domain, len(bp.relationships), len(bp.tools))
    ctx.write_json("blueprint", {**bp.model_dump(mode="json", exclude_none=True), "status": "ok"}, "blueprint")


# -------------------------------------------------------------------------- index
def run_index(ctx: StepContext) -> None:
    outlines = {o.domain: o for o in load_outlines(ctx.inputs["outlines"])}
    rows = []
    for path in sorted(ctx.inputs["blueprints"], key=lambda p: Path(p).name):
        data = artifacts.read(path)
        domain = data["domain"]
        o = outlines.get(domain)
        row = {
            "domain": domain,
            "status": data.get("status", "ok"),
            "reason": data.get("reason"),
            "core_entity": o.core_entity if o else data.get("core_entity"),
            "topic": o.topic if o else "",
            "tools": len(data.get("tools", [])),
            "relationships": len(data.get("relationships", [])),
        }
        rows.append(row)
    missing = sorted(set(outlines) - {r["domain"] for r in rows})
    rows += [
        {
            "domain": d,
            "status": "failed",
            "reason": "no blueprint artifact",
            "core_entity": outlines[d].core_entity,
            "topic": outlines[d].topic,
            "tools": 0,
            "relationships": 0,
        }
        for d in missing
    ]
    ok = sum(r["status"] == "ok" for r in rows)
    ctx.write_json("index", {"domains": rows, "ok": ok, "failed": len(rows) - ok}, "blueprint_index")

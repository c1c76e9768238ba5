"""Offline answer for s03: which candidate entities relate to a person entity.

A candidate relates when it shares a topic with the person (the entity list carries each
entity's topics); the relationship word comes from the catalogue template that links them
when there is one ("books appointment with"), so the graph reads like a model's.
"""

from __future__ import annotations

from agentskiller.models.catalog import snake_case

from ..catalog import Catalog
from ..provider import OfflineRequest, handler


@handler("s03.relate_entities")
def relate_entities(req: OfflineRequest) -> dict:
    """Context: person {name, description, topics}, candidates [{name, description,
    topics}]. Answer: {"related": [{"entity", "relationship", "description"}]}."""
    cat: Catalog = req.catalog
    person = req.context["person"]
    ptopics = set(person.get("topics", []))
    out = []
    for cand in req.context.get("candidates", []):
        shared = sorted(ptopics & set(cand.get("topics", [])))
        if not shared or cand["name"] == person["name"]:
            continue
        link = next(
            ((t, r) for t, r in cat.templates_for(person["name"]) if cand["name"] in r.refs and t.name in shared), None
        )
        if link:
            rel = f"{link[1].create.verb}_{link[1].noun}".replace("__", "_")
            desc = f"{link[1].description} ({link[0].name.replace('_', ' ')})"
        else:
            rel = "uses"
            desc = (
                f"A {snake_case(person['name']).replace('_', ' ')} deals with a "
                f"{snake_case(cand['name']).replace('_', ' ')} in {shared[0].replace('_', ' ')}"
            )
        out.append({"entity": cand["name"], "relationship": rel, "description": desc})
    return {"related": out}

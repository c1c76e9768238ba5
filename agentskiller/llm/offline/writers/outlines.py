"""Domain outlines of one person: domain ideas of their topics from the catalogue, one per topic first."""

from __future__ import annotations

from typing import Any

from ..catalog import Catalog


def pick_outlines(ctx: dict[str, Any], cat: Catalog, rng: Any) -> list[dict]:
    """Outlines (dicts in the shape of ``Outline``) for ``ctx``: person {name, description,
    topics}, neighbours [{name, ...}], count, max_peripheral; ``rng`` orders the choice."""
    person = ctx["person"]["name"]
    neighbours = {n["name"] for n in ctx.get("neighbours", [])}
    count = int(ctx.get("count", 2))
    max_peripheral = int(ctx.get("max_peripheral", 3))
    by_topic: dict[str, list[dict]] = {}
    for tname in ctx["person"].get("topics", []):
        topic = cat.topics.get(tname)
        if topic is None or topic.person != person:
            continue
        for idea in topic.domains:
            peri = topic.peripherals_of(idea)
            if peri and set(peri) <= neighbours and len(peri) <= max_peripheral:
                by_topic.setdefault(tname, []).append(
                    {
                        "domain": idea.name,
                        "topic": tname,
                        "description": idea.description,
                        "core_entity": person,
                        "peripheral_entities": peri,
                    }
                )
    # Prefer one domain per topic (domains of one person in different topics make the
    # interesting cross-domain pairs), topics in a seeded order.
    topics = sorted(by_topic)
    rng.shuffle(topics)
    for t in topics:
        rng.shuffle(by_topic[t])
    chosen: list[dict] = []
    while len(chosen) < count and any(by_topic[t] for t in topics):
        for t in topics:
            if by_topic[t] and len(chosen) < count:
                chosen.append(by_topic[t].pop())
    return chosen

"""Offline answer for s02: the entities of a batch of topics, from the catalogue.

Each entity's attribute subset is drawn from an RNG seeded by (seed, entity) rather than by
the batch, so an entity that appears in several batches is described the same way each
time (as a model that knows the entity would), while different seeds give different
worlds. The primary key and the first three attributes are always kept.
"""

from __future__ import annotations

from ..catalog import Catalog
from ..provider import OfflineRequest, handler, request_rng


def entity_view(cat: Catalog, name: str, seed: int, topics: list[str]) -> dict:
    ent = cat.entities[name]
    rng = request_rng(seed, "s02.entity", name)
    keep = ent.attributes[:4]  # primary key + first three
    rest = [a for a in ent.attributes[4:] if rng.random() < 0.75]
    data = ent.model_dump(exclude_none=True)
    data["attributes"] = [
        a.model_dump(exclude_none=True, exclude_defaults=True) | {"type": a.type} for a in [*keep, *rest]
    ]
    data["topics"] = [t for t in ent.topics if t in topics]
    return data


@handler("s02.extract_entities")
def extract_entities(req: OfflineRequest) -> dict:
    """Context: topics [{name, description}]. Answer: {"entities": [Entity, ...]}."""
    cat: Catalog = req.catalog
    names = [t["name"] if isinstance(t, dict) else str(t) for t in req.context.get("topics", [])]
    known = [t for t in names if t in cat.topics]
    wanted: list[str] = []
    for t in known:
        topic = cat.topics[t]
        for e in [topic.person, *topic.entities]:
            if e not in wanted:
                wanted.append(e)
    return {"entities": [entity_view(cat, e, req.seed, known) for e in wanted]}

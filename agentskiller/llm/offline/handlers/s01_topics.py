"""Offline answer for s01: propose new topics related to the seeds and current topics.

Candidates come from the catalogue, tiered the way a model expands a list: first topics
of the seed areas, then of the areas already covered, then of related areas, then of areas
related to those (and so on), then of any area. Within a tier
the seeded RNG orders topics and interleaves areas. Like a real model it now and then
re-proposes a topic it already gave in another spelling ("Dental Clinics"); the step's
normalized-name dedup is what removes those.
"""

from __future__ import annotations

from ..catalog import Catalog
from ..provider import OfflineRequest, handler


def _key(name: str) -> str:
    return name.lower().replace("-", "_").replace(" ", "_")


def _respell(name: str, rng) -> str:
    words = name.split("_")
    style = rng.choice(["title_plural", "hyphen", "title"])
    if style == "title_plural":
        last = words[-1]
        words[-1] = last[:-1] + "ies" if last.endswith("y") else last + "s"
        return " ".join(w.capitalize() for w in words)
    if style == "hyphen":
        return "-".join(words)
    return " ".join(w.capitalize() for w in words)


def _reachable(cat: Catalog, start: list[str]) -> list[str]:
    """Every area reachable from ``start`` along ``related`` links, nearest first: a model
    widens to the neighbourhood of what it was asked about before anything else (the
    composed areas are linked only among themselves, so hand-listed seeds reach them last)."""
    seen = list(dict.fromkeys(a for a in start if a in cat.areas))
    for a in seen:  # grows while iterating: breadth first
        seen += [r for r in cat.areas[a].related if r in cat.areas and r not in seen]
    return seen


@handler("s01.expand_topics")
def expand_topics(req: OfflineRequest) -> dict:
    """Context: seeds [area or topic], topics [current names], count. Answer:
    {"topics": [{"name", "area", "description"}], "reasoning"}."""
    cat: Catalog = req.catalog
    ctx = req.context
    count = int(ctx.get("count", 4))
    have = {_key(t) for t in ctx.get("topics", [])}
    seeds = [_key(s) for s in ctx.get("seeds", [])]
    seed_areas = [s for s in seeds if s in cat.areas]
    seed_areas += [cat.topics[s].area for s in seeds if s in cat.topics and cat.topics[s].area not in seed_areas]
    covered = [cat.topics[t].area for t in sorted(have) if t in cat.topics]
    related = [r for a in seed_areas + covered for r in cat.areas[a].related]
    tiers = [seed_areas, covered, related, _reachable(cat, seed_areas + covered), sorted(cat.areas)]
    picked: list[str] = []
    reasons: list[str] = []
    for tier in tiers:
        areas = list(dict.fromkeys(a for a in tier if a in cat.areas))
        pools = {a: [t for t in cat.topics_in_area(a) if t not in have and t not in picked] for a in areas}
        for a in areas:
            req.rng.shuffle(pools[a])
        order = list(areas)
        req.rng.shuffle(order)
        while len(picked) < count and any(pools[a] for a in order):
            for a in order:
                if pools[a] and len(picked) < count:
                    picked.append(pools[a].pop())
                    reasons.append(a)
        if len(picked) >= count:
            break
    out = [{"name": t, "area": cat.topics[t].area, "description": cat.topics[t].description} for t in picked]
    known = [t for t in sorted(have) if t in cat.topics]
    if known and out and req.rng.random() < 0.35:
        dup = req.rng.choice(known)
        out.insert(
            req.rng.randrange(len(out) + 1),
            {"name": _respell(dup, req.rng), "area": cat.topics[dup].area, "description": cat.topics[dup].description},
        )
    areas_txt = ", ".join(dict.fromkeys(reasons)) or "the existing topics"
    return {
        "topics": out,
        "reasoning": f"Expanded around {areas_txt} with user-facing services that each hold "
        "their own records and workflows.",
    }

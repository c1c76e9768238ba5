"""s03 entity graph: for each person entity, which other entities relate to it.

Candidates are asked about in batches (``entity_graph.batch_size``); all (person, batch)
calls run concurrently through ``client.map``. Answers naming entities outside the batch
are ignored, so the model cannot invent nodes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from agentskiller.artifacts import load_entities
from agentskiller.jobs import StepContext
from agentskiller.models.catalog import EntityGraph, EntityLink
from agentskiller.prompts import render


class Related(BaseModel):
    model_config = ConfigDict(extra="ignore")
    entity: str
    relationship: str = "related_to"
    description: str = ""


class RelatedAnswer(BaseModel):
    related: list[Related]


def run(ctx: StepContext) -> None:
    entities = load_entities(ctx.inputs["entities"])
    size = ctx.cfg.entity_graph.batch_size
    persons = [n for n, e in entities.items() if e.is_person]
    jobs = []
    for p in persons:
        others = [n for n in entities if n != p]
        jobs += [(p, others[i : i + size]) for i in range(0, len(others), size)]

    def brief(name: str) -> dict:
        e = entities[name]
        return {"name": name, "description": e.description, "topics": e.topics}

    def ask(job: tuple[str, list[str]]) -> list[EntityLink]:
        person, batch = job
        context = {"person": brief(person), "candidates": [brief(n) for n in batch]}
        messages = render("s03", "relate_entities", context, person=person)
        answer: RelatedAnswer = ctx.llm.generate(
            task="s03.relate_entities", messages=messages, schema=RelatedAnswer, context=context
        )
        seen: set[str] = set()
        links = []
        for r in answer.related:
            if r.entity in batch and r.entity not in seen:
                seen.add(r.entity)
                links.append(
                    EntityLink(
                        source=person,
                        target=r.entity,
                        relationship=r.relationship or "related_to",
                        description=r.description,
                    )
                )
        return links

    links = [link for batch_links in ctx.llm.map(ask, jobs) for link in batch_links]
    graph = EntityGraph(nodes=sorted(entities), persons=sorted(persons), links=links)
    ctx.log.info("s03: %d persons, %d links", len(persons), len(links))
    ctx.write_json("graph", graph.model_dump(mode="json"), "entity_graph")

"""s01 topics: iterative expansion from the config seeds, with normalized-name dedup.

Each round asks the text model for ``batch_size`` new topics given the seeds and every
topic so far; answers are normalized to snake_case and deduplicated by a key that ignores
case, separators and plural endings ("Dental Clinics" == "dental_clinic"), so a model that
repeats itself in another spelling cannot inflate the list. Stops at ``target_count`` or
after ``max_rounds`` (or a round that adds nothing, which would repeat forever).
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from agentskiller.jobs import StepContext
from agentskiller.models.catalog import ascii_fold
from agentskiller.prompts import render

MAX_WORDS = 4


class TopicIdea(BaseModel):
    name: str
    area: str = ""
    description: str = ""


class TopicsAnswer(BaseModel):
    topics: list[TopicIdea]
    reasoning: str = ""


def normalize_name(name: str) -> str | None:
    """``"Dental-Clinic"`` -> ``dental_clinic``; None if it is not a usable topic name."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_fold(name.strip()))
    s = re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")
    if not s or not s[0].isalpha() or len(s) > 40 or len(s.split("_")) > MAX_WORDS:
        return None
    return s


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and re.search(r"(ches|shes|sses|xes)$", word):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not re.search(r"(ss|us|is)$", word):
        return word[:-1]
    return word


def dedup_key(name: str) -> str:
    """Key under which two spellings of one topic collide (case, separators, plurals)."""
    norm = normalize_name(name) or name.lower()
    return "_".join(_singular(w) for w in norm.split("_"))


def run(ctx: StepContext) -> None:
    cfg = ctx.cfg.topics
    seeds = list(cfg.seeds)
    target, batch, max_rounds = cfg.target_count, cfg.batch_size, cfg.max_rounds
    topics: list[dict] = []
    keys = {dedup_key(s) for s in seeds}  # a seed area itself is too broad to be a topic
    rejected: list[dict] = []
    rounds = 0
    for rnd in range(max_rounds):
        if len(topics) >= target:
            break
        rounds = rnd + 1
        context = {"seeds": seeds, "topics": [t["name"] for t in topics], "count": min(batch, target - len(topics))}
        messages = render(
            "s01",
            "expand_topics",
            context,
            count=str(context["count"]),
            seeds=", ".join(seeds),
            topics=", ".join(context["topics"]) or "(none yet)",
        )
        answer: TopicsAnswer = ctx.llm.generate(
            task="s01.expand_topics", messages=messages, schema=TopicsAnswer, context=context
        )
        added = 0
        for idea in answer.topics:
            name = normalize_name(idea.name)
            if name is None:
                rejected.append({"name": idea.name, "reason": "not a snake_case name of 1-4 words"})
                continue
            key = dedup_key(name)
            if key in keys:
                rejected.append({"name": idea.name, "reason": "duplicate of an existing topic or seed"})
                continue
            if len(topics) >= target:
                rejected.append({"name": idea.name, "reason": "over target_count"})
                continue
            keys.add(key)
            topics.append({"name": name, "area": idea.area, "description": idea.description, "round": rnd})
            added += 1
        ctx.log.info("s01 round %d: %d new topic(s), %d total", rnd, added, len(topics))
        if added == 0:
            ctx.log.warning("s01 round %d added nothing; stopping at %d topics", rnd, len(topics))
            break
    if not topics:
        raise RuntimeError("s01 produced no topics")
    ctx.write_json(
        "topics",
        {"seeds": seeds, "target_count": target, "rounds": rounds, "topics": topics, "rejected": rejected},
        "topics",
    )

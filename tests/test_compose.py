"""The composed offline catalogue (archetypes x subjects, agentskiller/llm/offline/compose.py):
deterministic, unique names, every composed blueprint passes the s04 checks and builds an s05
tool list, it stays out of the default run, and config/scale.yaml reaches >= 100 domains."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
import yaml

from agentskiller import io
from agentskiller.config import resolve
from agentskiller.jobs import StepContext
from agentskiller.llm import LLMClient
from agentskiller.llm.offline.catalog import load_catalog
from agentskiller.llm.offline.compose import _fill, compose, load_spec
from agentskiller.llm.offline.handlers.s01_topics import expand_topics
from agentskiller.llm.offline.handlers.s04_blueprints import blueprint_detail
from agentskiller.llm.offline.provider import OfflineRequest
from agentskiller.models.blueprint import OPENAI_NAME_RE, Blueprint, Outline
from agentskiller.steps.catalog import s01_topics, s02_entities, s03_entity_graph, s04_blueprints
from agentskiller.steps.catalog.blueprint_checks import Limits, check_blueprint
from agentskiller.steps.catalog.s05_tool_lists import tool_list

REPO = Path(__file__).resolve().parents[1]
CAT = load_catalog()
SPEC = load_spec()
COMPOSED = compose()
HAND = yaml.safe_load((REPO / "agentskiller/llm/offline/catalog/topics.yaml").read_text())


def test_composition_is_a_full_cross_and_deterministic():
    assert len(SPEC.archetypes) == 4 and len(SPEC.subjects) == 18
    assert len(COMPOSED["topics"]) == 72
    assert sum(len(t["domains"]) for t in COMPOSED["topics"].values()) == 144
    assert json.dumps(compose(), sort_keys=True) == json.dumps(COMPOSED, sort_keys=True)
    assert list(compose()["topics"]) == list(COMPOSED["topics"])  # file order, no RNG
    # with the hand-listed part: well over the 100 domain ideas scale.yaml needs
    assert sum(len(t.domains) for t in CAT.topics.values()) >= 190


def test_names_are_unique_and_valid():
    domains = [d.name for t in CAT.topics.values() for d in t.domains]
    assert len(domains) == len(set(domains)) and len({d.lower() for d in domains}) == len(domains)
    rels = [r.name for t in COMPOSED["topics"] for r in CAT.topics[t].relationships]
    assert len(rels) == len(set(rels))
    nouns = [r.noun for t in COMPOSED["topics"] for r in CAT.topics[t].relationships]
    assert len(nouns) == len(set(nouns))
    assert not set(COMPOSED["entities"]) & set(CAT.persons)
    assert not set(COMPOSED["areas"]) & set(HAND["areas"])
    # every person keeps being shared: each composed subject uses one of the hand-listed persons
    assert {s.person for s in SPEC.subjects.values()} == set(CAT.persons)


def test_composed_areas_are_not_reached_from_hand_areas():
    for name, area in HAND["areas"].items():
        assert not set(area["related"]) & set(COMPOSED["areas"]), name
    # the default seeds, asked for every hand-listed topic: none of the composed ones comes back
    hand_topics = [t for t in CAT.topics if t not in COMPOSED["topics"]]
    req = OfflineRequest(
        task="s01.expand_topics",
        messages=[],
        context={"seeds": ["healthcare", "travel", "finance", "education"], "topics": [], "count": len(hand_topics)},
        rng=random.Random(7),
    )
    names = {t["name"] for t in expand_topics(req)["topics"]}
    assert names == set(hand_topics)


def test_placeholders_are_filled_and_unknown_ones_refused():
    def strings(v):
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict | list):
            for x in v.values() if isinstance(v, dict) else v:
                yield from strings(x)

    assert not [s for s in strings(COMPOSED["topics"]) if "{" in s or "}" in s]
    with pytest.raises(ValueError, match="unknown placeholder"):
        _fill("book_{nope}", {"P": "X"})


def test_composed_tables_have_no_boolean_column():
    # a boolean create or edit parameter is one the offline user states ("auto renew True")
    # and the offline assistant does not read back, so such episodes would fail
    for name in COMPOSED["topics"]:
        for rel in CAT.topics[name].relationships:
            assert not [c.name for c in rel.columns if c.type == "boolean"], (name, rel.name)


def test_subject_words_reach_the_tables():
    topic = CAT.topics["bicycle_care_booking"]
    visit = topic.relationship("BikeVisit")
    assert visit.refs == ["BikeMechanic", "BikeShop"] and visit.noun == "bike_visit"
    assert visit.column("visit_reason").enum == SPEC.subjects["bicycle_care"].reasons
    quote = topic.relationship("BikeQuote")
    cost = quote.column("estimated_cost")
    assert (cost.minimum, cost.maximum) == tuple(SPEC.subjects["bicycle_care"].price)
    assert CAT.vocabulary_for("BikeService")[0] == {"service_name": "Basic Tune-Up", "category": "tune_up"}


@pytest.mark.parametrize("topic", sorted(COMPOSED["topics"]))
def test_every_composed_blueprint_passes_the_s04_checks_and_lists_its_tools(topic):
    t = CAT.topics[topic]
    limits = Limits()
    for idea in t.domains:
        outline = Outline(
            domain=idea.name,
            topic=topic,
            description=idea.description,
            core_entity=t.person,
            peripheral_entities=t.peripherals_of(idea),
        )
        ents = {n: CAT.entities[n] for n in [t.person, *outline.peripheral_entities]}
        for seed in (3, 11):
            req = OfflineRequest(
                task="s04.blueprint_detail",
                messages=[],
                rng=random.Random(seed),
                context={
                    "outline": outline.model_dump(),
                    "limits": limits.as_dict(),
                    "entities": {n: e.model_dump() for n, e in ents.items()},
                },
            )
            bp = Blueprint.model_validate(blueprint_detail(req))
            assert check_blueprint(bp, ents, limits, outline) == []
            kinds = Counter(tool.kind for tool in bp.tools)
            assert {"authorize", "read", "search", "create", "update"} <= set(kinds) and kinds["authorize"] == 1
            tools = tool_list(bp)
            assert [x["function"]["name"] for x in tools] == [x.name for x in bp.tools]
            assert all(OPENAI_NAME_RE.match(f"{bp.domain}__{x['function']['name']}") for x in tools)


def test_scale_config_yields_over_100_domains(tmp_path):
    # deep-merged over the defaults (which config/config.yaml spells out), as Snakemake merges it
    cfg = resolve(yaml.safe_load((REPO / "config" / "scale.yaml").read_text()))
    cfg["outputs_dir"], cfg["llm"]["cache_dir"] = str(tmp_path), str(tmp_path / ".llm_cache")
    client = LLMClient.from_config(cfg["llm"], seed=cfg["seed"])

    def ctx(step, inputs=None, outputs=None):
        return StepContext.from_paths(step, cfg, inputs, outputs, llm=client)

    out = tmp_path
    s01_topics.run(ctx("s01", outputs={"topics": out / "topics.json"}))
    s02_entities.run(ctx("s02", {"topics": out / "topics.json"}, {"entities": out / "entities.json"}))
    s03_entity_graph.run(ctx("s03", {"entities": out / "entities.json"}, {"graph": out / "entity_graph.json"}))
    outlines = out / "outlines.json"
    s04_blueprints.run_outlines(
        ctx("s04", {"entities": out / "entities.json", "graph": out / "entity_graph.json"}, {"outlines": outlines})
    )
    client.close()
    assert len(io.read_json(out / "topics.json")["topics"]) == 98
    got = io.read_json(outlines)
    assert len(got["domains"]) == cfg["blueprints"]["max_domains"] >= 100
    assert {d["reason"] for d in got["dropped"]} <= {f"over max_domains={cfg['blueprints']['max_domains']}"}
    assert sum(d["topic"] in COMPOSED["topics"] for d in got["domains"]) >= 60


def test_scale_config_is_valid_and_documented():
    scale = yaml.safe_load((REPO / "config" / "scale.yaml").read_text())
    resolved = resolve(scale)  # validated against schemas/config.schema.yaml
    assert resolved["blueprints"]["max_domains"] >= 100
    assert set(resolved["topics"]["seeds"]) == set(CAT.areas)

    def leaves(d: dict, prefix: str = "") -> list[str]:
        return [x for k, v in d.items() for x in (leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [prefix + k])]

    text = (REPO / "config" / "README.md").read_text()
    section = text.split("## A big offline world", 1)[1].split("\n## ", 1)[0]
    documented = {line.split("|")[1].strip().strip("`") for line in section.splitlines() if line.startswith("| `")}
    assert documented == set(leaves(scale))

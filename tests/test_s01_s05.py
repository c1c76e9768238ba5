"""Steps s01-s05 end to end on the offline provider (StepContext.from_paths on a tmp dir),
plus the step-level rules: name dedup, primary-key enforcement, tool-list shape."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agentskiller import io
from agentskiller.artifacts import load_blueprint, load_entities, load_entity_graph
from agentskiller.jobs import StepContext
from agentskiller.llm import LLMClient
from agentskiller.models.blueprint import OPENAI_NAME_RE, Blueprint
from agentskiller.models.catalog import primary_key_for
from agentskiller.steps.catalog import s01_topics, s02_entities, s03_entity_graph, s04_blueprints, s05_tool_lists
from agentskiller.steps.catalog.s02_entities import RawEntity, normalize_entity

REPO = Path(__file__).resolve().parents[1]


def run_chain(out: Path, seed: int) -> Path:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["seed"], cfg["outputs_dir"] = seed, str(out)
    cfg["llm"]["cache_dir"] = str(out / ".llm_cache")
    client = LLMClient.from_config(cfg["llm"], seed=seed)

    def ctx(step, inputs=None, outputs=None, wildcards=None):
        return StepContext.from_paths(step, cfg, inputs, outputs, wildcards=wildcards, llm=client)

    s01_topics.run(ctx("s01", outputs={"topics": out / "topics.json"}))
    s02_entities.run(ctx("s02", {"topics": out / "topics.json"}, {"entities": out / "entities.json"}))
    s03_entity_graph.run(ctx("s03", {"entities": out / "entities.json"}, {"graph": out / "entity_graph.json"}))
    outlines = out / "blueprints" / "outlines.json"
    s04_blueprints.run_outlines(
        ctx("s04", {"entities": out / "entities.json", "graph": out / "entity_graph.json"}, {"outlines": outlines})
    )
    domains = [d["domain"] for d in io.read_json(outlines)["domains"]]
    for d in domains:
        bp = out / "blueprints" / f"{d}.json"
        s04_blueprints.run_detail(
            ctx("s04", {"outlines": outlines, "entities": out / "entities.json"}, {"blueprint": bp}, {"domain": d})
        )
        s05_tool_lists.run(
            ctx("s05", {"blueprint": bp}, {"tool_list": out / "tool_lists" / f"{d}.json"}, {"domain": d})
        )
    s04_blueprints.run_index(
        ctx(
            "s04",
            {"outlines": outlines, "blueprints": [out / "blueprints" / f"{d}.json" for d in domains]},
            {"index": out / "blueprints" / "index.json"},
        )
    )
    client.close()
    return out


def artifacts(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.json")) if ".llm_cache" not in p.parts
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return run_chain(tmp_path_factory.mktemp("seed7"), 7)


def test_default_config_yields_valid_domains(world):
    topics = io.read_json(world / "topics.json")["topics"]
    assert len(topics) == 12 and len({t["name"] for t in topics}) == 12
    index = io.read_json(world / "blueprints" / "index.json")
    assert 6 <= index["ok"] <= 8 and index["failed"] == 0
    outlines = io.read_json(world / "blueprints" / "outlines.json")["domains"]
    cores = [o["core_entity"] for o in outlines]
    assert any(cores.count(c) >= 2 for c in cores), "no core person shared by two domains (no cross-domain pair)"
    for row in index["domains"]:
        bp = load_blueprint(world / "blueprints" / f"{row['domain']}.json")
        assert isinstance(bp, Blueprint) and len(bp.tools) >= 8
        assert sum(t.kind == "authorize" for t in bp.tools) == 1
        assert io.read_json(world / "blueprints" / f"{row['domain']}.json")["meta"]["seed"] == 7


def test_entities_and_graph(world):
    ents = load_entities(world / "entities.json")
    assert all(e.attributes[0].name == e.primary_key == primary_key_for(e.name) for e in ents.values())
    persons = [e for e in ents.values() if e.is_person]
    assert any(len(p.topics) >= 2 for p in persons)
    graph = load_entity_graph(world / "entity_graph.json")
    assert "Dentist" in graph.neighbours("Patient") or "Flight" in graph.neighbours("Traveler")
    assert all(link.source in graph.persons for link in graph.links)


def test_tool_lists_are_openai_tools(world):
    for path in sorted((world / "tool_lists").glob("*.json")):
        tl = io.read_json(path)
        assert tl["status"] == "ok" and tl["tools"]
        bp = load_blueprint(world / "blueprints" / path.name)
        assert [t["function"]["name"] for t in tl["tools"]] == [t.name for t in bp.tools]
        for tool, spec in zip(bp.tools, tl["tools"]):
            params = spec["function"]["parameters"]
            assert params["type"] == "object" and params["additionalProperties"] is False
            assert OPENAI_NAME_RE.match(f"{bp.domain}__{spec['function']['name']}")
            assert params["required"] == [p.name for p in tool.parameters if p.required]
            for p in tool.parameters:
                prop = params["properties"][p.name]
                assert prop["description"]
                if p.type == "date":
                    assert prop == {**prop, "type": "string", "format": "date"}
                elif p.type == "datetime":
                    assert prop == {**prop, "type": "string", "format": "date-time"}
                else:
                    assert prop["type"] == p.type
                if p.enum:
                    assert prop["enum"] == p.enum
                if p.minimum is not None:
                    assert prop["minimum"] == p.minimum


def test_same_seed_same_artifacts_different_seed_different_world(world, tmp_path):
    again = run_chain(tmp_path / "again", 7)
    assert artifacts(again) == artifacts(world)
    other = run_chain(tmp_path / "other", 1)
    t7 = {t["name"] for t in io.read_json(world / "topics.json")["topics"]}
    t1 = {t["name"] for t in io.read_json(other / "topics.json")["topics"]}
    assert t7 != t1
    assert io.read_json(other / "blueprints" / "index.json")["ok"] >= 6


def test_topic_name_dedup_normalizes_case_separators_and_plurals():
    key = s01_topics.dedup_key
    assert key("Dental Clinics") == key("dental-clinic") == key("dental_clinic") == key("DentalClinic")
    assert key("pharmacies") == key("pharmacy")
    assert key("bus_pass") == "bus_pass"  # "ss" is not a plural
    assert s01_topics.normalize_name("Online Courses") == "online_courses"
    assert s01_topics.normalize_name("a b c d e f") is None


def test_primary_key_is_enforced_in_code():
    raw = RawEntity(
        name="dental clinic",
        description="A clinic",
        attributes=[
            {"name": "clinic_name", "type": "str", "description": "Name"},
            {"name": "id", "type": "int", "description": "Identifier"},
            {"name": "patient_id", "type": "string", "description": "FK"},
        ],
    )
    ent, reason = normalize_entity(raw, {"DentalClinic", "Patient"})
    assert reason == "" and ent.name == "DentalClinic" and ent.primary_key == "dental_clinic_id"
    assert [a.name for a in ent.attributes] == ["dental_clinic_id", "clinic_name", "patient_id"]
    assert ent.attributes[0].type == "string" and ent.attributes[1].type == "string"
    # A foreign key to another entity is never taken as the primary key.
    raw2 = RawEntity(
        name="Visit", attributes=[{"name": "patient_id", "type": "string"}, {"name": "notes", "type": "text"}]
    )
    ent2, _ = normalize_entity(raw2, {"Visit", "Patient"})
    assert [a.name for a in ent2.attributes] == ["visit_id", "patient_id", "notes"]
    bad, why = normalize_entity(RawEntity(name="123", attributes=[]), set())
    assert bad is None and why


def test_tool_schema_arrays_and_ranges():
    from agentskiller.models.blueprint import ToolParam

    p = ToolParam(name="tags", type="array", items="date", description="Days", required=False, enum=None)
    assert s05_tool_lists.param_schema(p) == {
        "type": "array",
        "items": {"type": "string", "format": "date"},
        "description": "Days",
    }
    q = ToolParam(name="n", type="integer", description="N", minimum=1, maximum=5)
    assert s05_tool_lists.param_schema(q) == {"type": "integer", "minimum": 1, "maximum": 5, "description": "N"}

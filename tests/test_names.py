"""Names a model supplies are validated whole: a trailing newline, an over-long name and two
names that collide after normalization are refused (or cleaned) with a reason, and the run goes on."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from agentskiller import io
from agentskiller.jobs import StepContext
from agentskiller.llm import LLMClient, LLMConfig, ProviderResponse
from agentskiller.llm.offline import run_handler
from agentskiller.models.catalog import PASCAL_RE, SNAKE_RE, ascii_fold, pascal_case
from agentskiller.steps.catalog import s01_topics, s02_entities, s03_entity_graph, s04_blueprints
from agentskiller.steps.catalog.s02_entities import RawAttribute, RawEntity, normalize_entity

REPO = Path(__file__).resolve().parents[1]


def test_patterns_match_whole_names_only():
    assert PASCAL_RE.fullmatch("Patient") and not PASCAL_RE.fullmatch("Patient\n")
    assert not PASCAL_RE.fullmatch("P" + "a" * 199)
    assert SNAKE_RE.fullmatch("full_name") and not SNAKE_RE.fullmatch("full_name\n")


def test_accents_fold_instead_of_vanishing():
    assert ascii_fold("Café") == "Cafe" and pascal_case("café desk") == "CafeDesk"
    assert s01_topics.normalize_name("Café") == "cafe" != s01_topics.normalize_name("Caf")


def test_entity_names_with_a_newline_are_cleaned_and_long_ones_refused():
    attrs = [RawAttribute(name="patient_id", type="string"), RawAttribute(name="full_name\n", type="string")]
    ent, _ = normalize_entity(RawEntity(name="Patient\n", attributes=attrs), {"Patient"})
    assert ent is not None and ent.name == "Patient"
    assert [a.name for a in ent.attributes] == ["patient_id", "full_name"]
    ent, reason = normalize_entity(RawEntity(name="P" + "a" * 199, attributes=[]), set())
    assert ent is None and "invalid entity name" in reason


class RenamingOutlines:
    """The offline provider, except that the s04 outlines get hostile names: a trailing
    newline, 200 characters, and a name that collides with the first after normalization."""

    name = "fake"

    def cache_salt(self, req):
        return {}

    def complete(self, req):
        text = run_handler(7, req.task, req.messages, req.context, req.feedback, req.round)
        if req.task == "s04.outlines":
            data = json.loads(text)
            outs = data["outlines"]
            first = outs[0]["domain"]
            outs[0]["domain"] = first + "\n"
            if len(outs) > 1:
                outs[1]["domain"] = "D" + "x" * 199
            outs.append({**outs[0], "domain": f"{first[0].lower()}{first[1:]}", "topic": outs[0]["topic"] + "_2"})
            text = json.dumps(data)
        return ProviderResponse(text=text, model=req.model, prompt_tokens=1, completion_tokens=1)

    def close(self):
        pass


def test_hostile_domain_names_are_refused_and_the_run_goes_on(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["outputs_dir"] = str(tmp_path)
    client = LLMClient(LLMConfig(cache_mode="off"), RenamingOutlines(), seed=7)

    def ctx(step, inputs=None, outputs=None):
        return StepContext.from_paths(step, cfg, inputs, outputs, llm=client)

    s01_topics.run(ctx("s01", outputs={"topics": tmp_path / "topics.json"}))
    s02_entities.run(ctx("s02", {"topics": tmp_path / "topics.json"}, {"entities": tmp_path / "entities.json"}))
    s03_entity_graph.run(ctx("s03", {"entities": tmp_path / "entities.json"}, {"graph": tmp_path / "graph.json"}))
    out = tmp_path / "outlines.json"
    s04_blueprints.run_outlines(
        ctx("s04", {"entities": tmp_path / "entities.json", "graph": tmp_path / "graph.json"}, {"outlines": out})
    )
    doc = io.read_json(out)
    names = [d["domain"] for d in doc["domains"]]
    assert names, "the run goes on with the other outlines"
    assert all("\n" not in n and len(n) <= 40 for n in names)
    reasons = " | ".join(d["reason"] for d in doc["dropped"])
    assert "invalid server name" in reasons  # the 200-character name, refused, not cut
    assert "collides with" in reasons and "after normalization" in reasons
    # the newline name was cleaned to the valid name the model meant
    assert len({n.lower() for n in names}) == len(names)


def test_a_long_one_word_tool_name_gets_a_suffix_instead_of_looping():
    from agentskiller.llm.offline.writers.tool_names import MAX_TOOL_LEN, fit_name, unique

    domain = "D" * 30  # leaves 32 characters for the tool name
    word = fit_name("x" * 60, domain)  # one word: nothing to drop, so the old suffix was cut off
    taken: set[str] = set()
    names = [unique(word, taken, domain) for _ in range(3)]
    assert len(set(names)) == 3
    assert names[1].endswith("_2") and names[2].endswith("_3")
    assert all(len(n) <= min(MAX_TOOL_LEN, 62 - len(domain)) for n in names)

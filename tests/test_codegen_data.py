"""The offline s06 generator scripts: catalogue names, at_most bounds, business hours, status vs
time. The scripts run in-process (runpy), and their output goes through the real data checks."""

from __future__ import annotations

import json
import random
import runpy
import sys
from pathlib import Path

import pytest

from agentskiller.llm import offline
from agentskiller.llm.offline.catalog import load_catalog
from agentskiller.llm.offline.codegen_data import entity_script, strip_fence
from agentskiller.llm.offline.provider import OfflineRequest
from agentskiller.models.blueprint import Blueprint, Relationship
from agentskiller.models.catalog import Entity
from agentskiller.steps.domains import data_checks as dc
from agentskiller.steps.domains import data_rules
from agentskiller.steps.domains import s06_database as s06

CAT = load_catalog()
NOW = "2025-06-02T09:00:00Z"
#: the domains of the default offline run (config/config.yaml, seed 7)
DEFAULT_DOMAINS = (
    "AcademicAdvisingDesk",
    "BranchVisitPlanner",
    "CityRideDispatch",
    "DentalCareDesk",
    "LoanApplicationDesk",
    "MentorMatchLearning",
    "PharmacyCareLine",
    "StayReservationDesk",
)


def run_script(code: str, tmp: Path, name: str, tables: dict[str, Path] | None = None) -> list[dict]:
    """Run a generator script in this process, as ``python NAME.py OUT Entity=path ...``."""
    script, out = tmp / f"{name}.py", tmp / f"{name}.json"
    script.write_text(code)
    argv = [str(script), str(out), *(f"{e}={p}" for e, p in sorted((tables or {}).items()))]
    saved = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = saved
    return json.loads(out.read_text())


def handler_script(task: str, context: dict) -> str:
    offline.load_handlers()
    answer = offline.get_handler(task)(OfflineRequest(task=task, messages=[], context=context, rng=random.Random(1)))
    return strip_fence(answer)


def domain_tables(domain: str) -> tuple[str, list]:
    """The person and relationship templates of one catalogue domain idea."""
    for topic in CAT.topics.values():
        for idea in topic.domains:
            if idea.name == domain:
                return topic.person, [topic.relationship(n) for n in idea.relationships]
    raise KeyError(domain)


def make_entity(tmp: Path, name: str, seed: int = 11) -> tuple[Path, list[dict]]:
    ent = CAT.entities[name]
    context = {"entity": ent.model_dump(exclude_none=True), "records": 30, "seed": seed, "simulation_time": NOW}
    records = run_script(handler_script("s06.entity_script", context), tmp, name)
    assert dc.check_records(records, dc.spec_for_entity(ent), 30) == []
    path = tmp / f"{name}.table.json"
    path.write_text(json.dumps({"table": name, "primary_key": ent.primary_key, "records": records}))
    return path, records


def blueprint_of(domain: str) -> Blueprint:
    """A blueprint of a default domain as the offline s04 writer makes it."""
    topic = next(t for t in CAT.topics.values() if any(d.name == domain for d in t.domains))
    idea = next(d for d in topic.domains if d.name == domain)
    outline = {
        "domain": domain,
        "topic": topic.name,
        "description": idea.description,
        "core_entity": topic.person,
        "peripheral_entities": topic.peripherals_of(idea),
    }
    ents = {n: CAT.entities[n].model_dump() for n in [topic.person, *outline["peripheral_entities"]]}
    ctx = {
        "outline": outline,
        "limits": {"min_tools": 8, "max_peripheral": 3, "max_relationships": 3},
        "entities": ents,
    }
    offline.load_handlers()
    req = OfflineRequest(task="s04.blueprint_detail", messages=[], context=ctx, rng=random.Random(1))
    return Blueprint.model_validate(offline.get_handler("s04.blueprint_detail")(req))


# ------------------------------------------------------------------ names
def test_default_domains_draw_product_and_service_names_from_the_catalogue(tmp_path):
    """Every title-like name the default domains' scripts generate is a catalogue phrase."""
    checked, foreign = 0, []
    for domain in DEFAULT_DOMAINS:
        person, rels = domain_tables(domain)
        for name in sorted({person, *(e for r in rels for e in r.refs)}):
            ent = CAT.entities[name]
            titles = [a.name for a in ent.attributes if a.format == "title" and not a.enum]
            if not titles:
                continue
            _, records = make_entity(tmp_path, name)
            phrases = {row[a] for row in CAT.vocabulary_for(name) for a in titles}
            for rec in records:
                for a in titles:
                    checked += 1
                    if rec[a] not in phrases:
                        foreign.append(f"{name}.{a}={rec[a]!r}")
    assert checked >= 8 * 30 and foreign == []


def test_vocabulary_rows_keep_a_records_columns_together(tmp_path):
    _, meds = make_entity(tmp_path, "Medication")
    rows = {r["brand_name"]: r for r in CAT.vocabulary_for("Medication")}
    assert all(m["generic_name"] == rows[m["brand_name"]]["generic_name"] for m in meds)
    assert len({m["brand_name"] for m in meds}) == len(rows)  # every name used before any repeats


def test_a_name_column_without_vocabulary_is_not_word_salad():
    ent = Entity.model_validate(
        {
            "name": "GiftCard",
            "description": "A card",
            "is_person": False,
            "primary_key": "gift_card_id",
            "attributes": [
                {"name": "gift_card_id", "type": "string", "description": "id"},
                {"name": "card_name", "type": "string", "format": "title", "description": "name"},
            ],
        }
    )
    code = entity_script(ent, 5, 1, NOW)
    assert "fake.word()" not in code and "Gift Card" in code and "Premium" in code


# ---------------------------------------------- relationships: bounds, hours, status
@pytest.mark.parametrize("domain", [d.name for t in CAT.topics.values() for d in t.domains])
def test_relationship_scripts_pass_every_rule(tmp_path, domain):
    """Every catalogue domain's scripts: no check fails, and history and future rows both exist."""
    bp = blueprint_of(domain)
    entities = {n: CAT.entities[n] for n in bp.entities}
    tables = {n: make_entity(tmp_path, n, seed=i) for i, n in enumerate(bp.entities)}
    for rel in bp.relationships:
        ctx = s06.relationship_context(bp, rel, entities, 40, 5, NOW)
        code = handler_script("s06.relationship_script", ctx)
        assert code == handler_script("s06.relationship_script", ctx)  # deterministic
        refs = set(rel.foreign_keys().values())
        records = run_script(code, tmp_path, rel.name, {e: tables[e][0] for e in refs})
        spec = dc.spec_for_relationship(rel, data_rules.lifecycle_of(bp.tools, rel.name))
        by_key = {e: {r[entities[e].primary_key]: r for r in tables[e][1]} for e in refs}
        fk_values = {col: set(by_key[e]) for col, e in rel.foreign_keys().items()}
        assert dc.check_records(records, spec, 40, fk_values, NOW, by_key) == [], rel.name
        sched = data_rules.scheduled_column(spec.columns)
        if sched is not None:  # both history and rows still to come
            when = {r[sched.name] < NOW[: len(r[sched.name])] for r in records}
            assert when == {True, False}, rel.name


def test_the_bounded_catalogue_columns_reach_the_scripts():
    bp = blueprint_of("StayReservationDesk")
    rel = bp.relationship("HotelReservation")
    assert rel.column("guests").at_most == "RoomType.max_occupancy"
    ctx = s06.relationship_context(bp, rel, {n: CAT.entities[n] for n in bp.entities}, 40, 5, NOW)
    code = handler_script("s06.relationship_script", ctx)
    assert 'capped(1, 6, rows["RoomType"][room_type_id]["max_occupancy"])' in code
    assert ctx["scheduled"] == {
        "column": "check_in_date",
        "business_hours": False,
        "status_column": "status",
        "past_statuses": ["checked_in", "checked_out", "cancelled"],
        "future_statuses": ["reserved"],
    }


def test_appointment_times_are_business_hours(tmp_path):
    rel = Relationship.model_validate(
        {
            "name": "Visit",
            "description": "A visit",
            "primary_key": "visit_id",
            "columns": [
                {"name": "visit_id", "type": "string", "description": "id"},
                {"name": "patient_id", "type": "string", "description": "who", "references": "Patient"},
                {"name": "scheduled_at", "type": "datetime", "description": "when"},
                {"name": "created_at", "type": "datetime", "description": "booked"},
                {"name": "status", "type": "string", "enum": ["booked", "attended", "cancelled"], "description": "s"},
            ],
        }
    )
    patients, _ = make_entity(tmp_path, "Patient")
    ctx = {"relationship": rel.model_dump(exclude_none=True), "entities": {}, "records": 200, "seed": 3}
    ctx |= {"simulation_time": NOW, "usage": ""}
    records = run_script(handler_script("s06.relationship_script", ctx), tmp_path, "Visit", {"Patient": patients})
    times = [data_rules.parse_datetime(r["scheduled_at"]) for r in records]
    assert all(t.weekday() < 6 and 7 <= t.hour <= 19 and t.minute % 15 == 0 for t in times)
    assert {t.weekday() for t in times} == set(range(6)) and min(t.hour for t in times) == 7
    assert dc.check_records(records, dc.spec_for_relationship(rel), 200, None, NOW) == []

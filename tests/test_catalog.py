"""The offline catalogue: enough realistic topics, shared persons, sane enums and keys,
and every domain idea in it builds a blueprint that passes the s04 checks."""

from __future__ import annotations

import random

import pytest

from agentskiller.llm.offline.catalog import load_catalog
from agentskiller.llm.offline.handlers.s04_blueprints import blueprint_detail
from agentskiller.llm.offline.provider import OfflineRequest
from agentskiller.models.blueprint import Blueprint, Outline
from agentskiller.models.catalog import primary_key_for
from agentskiller.steps.catalog.blueprint_checks import Limits, check_blueprint

CAT = load_catalog()


def test_enough_topics_grouped_in_areas():
    assert len(CAT.topics) >= 24
    for seed_area in ("healthcare", "travel", "finance", "education"):
        assert len(CAT.topics_in_area(seed_area)) >= 3
    for name in (
        "dental_clinic",
        "pharmacy",
        "health_insurance",
        "airline",
        "hotel",
        "car_rental",
        "bank",
        "credit_card",
        "university_registrar",
        "library",
        "gym",
        "veterinary_clinic",
        "telecom",
        "utility_billing",
        "online_grocery",
        "food_delivery",
        "real_estate_rental",
        "event_ticketing",
        "restaurant_reservations",
        "ride_hailing",
        "online_courses",
        "streaming_service",
        "auto_repair",
        "municipal_services",
    ):
        assert name in CAT.topics


def test_every_person_is_shared_by_several_topics():
    assert len(CAT.persons) >= 6
    for p in CAT.persons:
        assert len(CAT.topics_of_entity(p)) >= 2, p
    assert {"dental_clinic", "pharmacy", "health_insurance"} <= set(CAT.entities["Patient"].topics)


def test_entities_have_keys_first_and_real_enums():
    for e in CAT.entities.values():
        assert e.primary_key == primary_key_for(e.name)
        assert e.attributes[0].name == e.primary_key and e.attributes[0].type == "string"
        assert len(e.attributes) >= 4
        for a in e.attributes:
            assert a.enum is None or len(a.enum) >= 2
            if a.minimum is not None and a.maximum is not None:
                assert a.minimum < a.maximum


def test_lifecycles_use_their_status_enum():
    appt = CAT.topics["dental_clinic"].relationship("DentalAppointment")
    assert set(appt.column("status").enum) == {"scheduled", "checked_in", "completed", "cancelled"}
    cancel = next(t for t in appt.lifecycle.transitions if t.action == "cancel")
    assert cancel.to == "cancelled" and cancel.from_ == ["scheduled"]


@pytest.mark.parametrize("topic", sorted(CAT.topics))
def test_every_domain_idea_builds_a_valid_blueprint(topic):
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
        req = OfflineRequest(
            task="s04.blueprint_detail",
            messages=[],
            rng=random.Random(3),
            context={
                "outline": outline.model_dump(),
                "limits": limits.as_dict(),
                "entities": {n: e.model_dump() for n, e in ents.items()},
            },
        )
        bp = Blueprint.model_validate(blueprint_detail(req))
        assert check_blueprint(bp, ents, limits, outline) == []
        kinds = {tool.kind for tool in bp.tools}
        assert {"authorize", "read", "search", "create", "update"} <= kinds
        assert not any("entity_1" in tool.name for tool in bp.tools)

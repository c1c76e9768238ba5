"""Each s04 rule catches its violation, and the offline provider's repair fixes it when
the violation is fed back (directly, and through the real LLM client's repair loop)."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable

import pytest

from agentskiller import artifacts, io
from agentskiller.jobs import StepContext
from agentskiller.llm import LLMClient, LLMConfig, ProviderResponse
from agentskiller.llm.offline.catalog import load_catalog
from agentskiller.llm.offline.handlers.s04_blueprints import blueprint_detail
from agentskiller.llm.offline.provider import OfflineRequest, run_handler
from agentskiller.models.blueprint import Blueprint, Outline
from agentskiller.models.catalog import Entity
from agentskiller.steps.catalog import s04_blueprints, s05_tool_lists
from agentskiller.steps.catalog.blueprint_checks import CODES, Limits, check_blueprint

CAT = load_catalog()
TOPIC = CAT.topics["dental_clinic"]
IDEA = next(d for d in TOPIC.domains if d.name == "SmileTreatmentPlanner")  # 2 relationships, 3 peripherals
OUTLINE = Outline(
    domain=IDEA.name,
    topic="dental_clinic",
    description=IDEA.description,
    core_entity="Patient",
    peripheral_entities=TOPIC.peripherals_of(IDEA),
)
ENTS = {n: CAT.entities[n] for n in ["Patient", *OUTLINE.peripheral_entities]}


def context(limits: Limits) -> dict:
    return {
        "outline": OUTLINE.model_dump(),
        "limits": limits.as_dict(),
        "entities": {n: e.model_dump() for n, e in ENTS.items()},
    }


def valid(limits: Limits = Limits()) -> dict:
    req = OfflineRequest(task="s04.blueprint_detail", messages=[], context=context(limits), rng=random.Random(1))
    return blueprint_detail(req)


def tool_of(bp: dict, kind: str, table: str | None = None) -> dict:
    return next(t for t in bp["tools"] if t["kind"] == kind and (table is None or t["table"] == table))


def errs(bp: dict, limits: Limits) -> list[str]:
    return check_blueprint(Blueprint.model_validate(bp), ENTS, limits, OUTLINE)


# ------------------------------------------------------------------ mutations
def m_too_few(bp):
    bp["tools"] = bp["tools"][:5]


def m_no_auth(bp):
    bp["tools"] = [t for t in bp["tools"] if t["kind"] != "authorize"]


def m_two_auth(bp):
    bp["tools"].append({**tool_of(bp, "authorize"), "name": "login_patient"})


def m_auth_shape(bp):
    tool_of(bp, "authorize")["requires_auth"] = True


def m_core_fk(bp):
    rel = bp["relationships"][0]
    rel["columns"] = [c for c in rel["columns"] if c.get("references") != "Patient"]


def m_unknown_entity(bp):
    bp["peripheral_entities"].append("Spaceship")


def m_unknown_table(bp):
    bp["tools"][3]["table"] = "Spaceship"


def m_unknown_ref(bp):
    bp["relationships"][0]["columns"].append(
        {"name": "spaceship_id", "type": "string", "references": "Spaceship", "description": "x"}
    )


def m_fk_name(bp):
    rel = bp["relationships"][0]
    col = next(c for c in rel["columns"] if c.get("references") == "Dentist")
    col["name"] = "treating_dentist"
    for t in bp["tools"]:
        for p in t["parameters"]:
            if t["table"] == rel["name"] and p["column"] == "dentist_id":
                p["column"] = p["name"] = "treating_dentist"


def m_rel_pk(bp):
    rel = bp["relationships"][0]
    rel["columns"][0]["name"] = "id"
    rel["primary_key"] = "id"


def m_tool_name(bp):
    bp["tools"][4]["name"] = "list_every_single_one_of_my_dental_treatment_plan"[:47]


def m_dup_tool(bp):
    bp["tools"][5]["name"] = bp["tools"][4]["name"]


def m_server_name(bp):
    bp["domain"] = "smile-treatment planner"


def m_reads_writes(bp):
    t = tool_of(bp, "search")
    t["writes"] = [t["table"]]


def m_unbound(bp):
    tool_of(bp, "search")["parameters"].append(
        {"name": "color", "type": "string", "description": "x", "required": False, "column": None}
    )


def m_param_type(bp):
    t = tool_of(bp, "create")
    p = next(p for p in t["parameters"] if p["type"] == "string" and "enum" not in p)
    p["type"] = "integer"


def m_enum(bp):
    t = next(t for t in bp["tools"] if t.get("preconditions"))
    t["preconditions"][0]["values"] = ["teleported"]


def m_pk_param(bp):
    tool_of(bp, "read", bp["relationships"][0]["name"])["parameters"] = []


def m_create(bp):
    t = tool_of(bp, "create")
    t["parameters"] = t["parameters"][:-1]  # a required own column is no longer set


def m_aggregate(bp):
    t = tool_of(bp, "compute")
    t["aggregate"], t["aggregate_column"] = "sum", "status"


def m_dup_table(bp):
    old = bp["relationships"][0]["name"]
    bp["relationships"][0]["name"] = "Dentist"
    for t in bp["tools"]:
        if t["table"] == old:
            t["table"] = "Dentist"
        t["reads"] = ["Dentist" if x == old else x for x in t["reads"]]
        t["writes"] = ["Dentist" if x == old else x for x in t["writes"]]


def m_outline(bp):
    bp["domain"] = "SomethingElse"


def _col(bp, table, name):
    rel = next(r for r in bp["relationships"] if r["name"] == table)
    return next(c for c in rel["columns"] if c["name"] == name)


def m_bound_unreferenced(bp):
    _col(bp, "TreatmentPlan", "tooth_number")["at_most"] = "DentalClinic.chairs"


def m_bound_not_numeric(bp):
    _col(bp, "TreatmentPlan", "estimated_cost")["at_most"] = "DentalProcedure.procedure_name"


def m_bound_on_text(bp):
    _col(bp, "TreatmentPlan", "status")["at_most"] = "DentalProcedure.base_price"


CASES: list[tuple[str, Callable, Limits]] = [
    ("too_few_tools", m_too_few, Limits()),
    ("too_few_tools", m_too_few, Limits(min_tools=14)),
    ("authorize_count", m_no_auth, Limits()),
    ("authorize_count", m_two_auth, Limits()),
    ("authorize_shape", m_auth_shape, Limits()),
    ("core_not_in_relationship", m_core_fk, Limits()),
    ("unknown_entity", m_unknown_entity, Limits(max_peripheral=5)),
    ("unknown_table", m_unknown_table, Limits()),
    ("unknown_reference", m_unknown_ref, Limits()),
    ("fk_name", m_fk_name, Limits()),
    ("relationship_pk", m_rel_pk, Limits()),
    ("tool_name", m_tool_name, Limits()),
    ("duplicate_tool", m_dup_tool, Limits()),
    ("server_name", m_server_name, Limits()),
    ("reads_writes", m_reads_writes, Limits()),
    ("unbound_param", m_unbound, Limits()),
    ("param_type", m_param_type, Limits()),
    ("enum_value", m_enum, Limits()),
    ("missing_pk_param", m_pk_param, Limits()),
    ("create_incomplete", m_create, Limits()),
    ("aggregate", m_aggregate, Limits()),
    ("too_many_peripherals", lambda bp: None, Limits(max_peripheral=2)),
    ("too_many_relationships", lambda bp: None, Limits(max_relationships=1)),
    ("duplicate_table", m_dup_table, Limits()),
    ("outline_mismatch", m_outline, Limits()),
    ("column_bound", m_bound_unreferenced, Limits()),
    ("column_bound", m_bound_not_numeric, Limits()),
    ("column_bound", m_bound_on_text, Limits()),
]


def test_every_code_has_a_case():
    assert {c for c, _, _ in CASES} == set(CODES)


def test_valid_blueprint_passes():
    assert errs(valid(), Limits()) == []


def test_column_bound_feedback_names_the_fix():
    bp = valid()
    _col(bp, "TreatmentPlan", "estimated_cost")["at_most"] = "DentalProcedure.base_price"
    assert errs(bp, Limits()) == []  # a numeric attribute of a referenced entity: accepted
    m_bound_unreferenced(bp)
    m_bound_not_numeric(bp)
    problems = [p for p in errs(bp, Limits()) if p.startswith("[column_bound]")]
    assert any("no foreign key to DentalClinic" in p and "'tooth_number'" in p for p in problems), problems
    assert any("'procedure_name' is of type string" in p and "'base_price'" in p for p in problems), problems


def test_offline_blueprints_carry_catalogue_bounds():
    """The catalogue's bounds reach the blueprint columns, only where the entities have the attribute."""
    hotel = CAT.topics["hotel"]
    idea = next(d for d in hotel.domains if d.name == "StayReservationDesk")
    outline = {
        "domain": idea.name,
        "topic": "hotel",
        "description": idea.description,
        "core_entity": "Traveler",
        "peripheral_entities": hotel.peripherals_of(idea),
    }
    ents = {n: CAT.entities[n].model_dump() for n in ["Traveler", *outline["peripheral_entities"]]}

    def guests_bound(entities: dict) -> str | None:
        ctx = {"outline": outline, "limits": Limits().as_dict(), "entities": entities}
        bp = blueprint_detail(
            OfflineRequest(task="s04.blueprint_detail", messages=[], context=ctx, rng=random.Random(1))
        )
        models = {n: Entity.model_validate(e) for n, e in entities.items()}
        assert check_blueprint(Blueprint.model_validate(bp), models, Limits()) == []
        return _col(bp, "HotelReservation", "guests").get("at_most")

    assert guests_bound(ents) == "RoomType.max_occupancy"
    dropped = copy.deepcopy(ents)
    dropped["RoomType"]["attributes"] = [a for a in dropped["RoomType"]["attributes"] if a["name"] != "max_occupancy"]
    assert guests_bound(dropped) is None


@pytest.mark.parametrize("code,mutate,limits", CASES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_check_catches_and_feedback_repairs(code, mutate, limits):
    bp = copy.deepcopy(valid())
    mutate(bp)
    problems = errs(bp, limits)
    assert any(p.startswith(f"[{code}]") for p in problems), problems
    # Feed back like the client does; the repair must remove this code in the first round
    # and converge within the default repair budget.
    for rnd in range(1, 4):
        req = OfflineRequest(
            task="s04.blueprint_detail",
            rng=random.Random(1),
            feedback=problems,
            round=rnd,
            context=context(limits),
            messages=[{"role": "user", "content": "design"}, {"role": "assistant", "content": json.dumps(bp)}],
        )
        bp = blueprint_detail(req)
        problems = errs(bp, limits)
        if rnd == 1:
            assert not any(p.startswith(f"[{code}]") for p in problems), problems
        if not problems:
            break
    assert problems == []


class BrokenFirst:
    """A provider that answers a broken blueprint first, then defers to the offline
    handler (which sees the feedback the client sent)."""

    name = "fake"

    def __init__(self, breaker: Callable | None, always: bool = False) -> None:
        self.breaker, self.always, self.rounds = breaker, always, []

    def cache_salt(self, req):
        return {}

    def complete(self, req):
        self.rounds.append(list(req.feedback))
        if req.round == 0 or self.always:
            bp = valid()
            self.breaker(bp)
            text = json.dumps(bp)
        else:
            text = run_handler(1, req.task, req.messages, req.context, req.feedback, req.round)
        return ProviderResponse(text=text, model=req.model, prompt_tokens=1, completion_tokens=1)

    def close(self):
        pass


def client(provider) -> LLMClient:
    return LLMClient(LLMConfig(cache_mode="off", max_repair_rounds=3), provider, seed=1)


def test_client_repair_loop_fixes_a_broken_blueprint():
    provider = BrokenFirst(lambda bp: (m_fk_name(bp), m_too_few(bp)))
    bp = s04_blueprints.generate_blueprint(client(provider), OUTLINE, ENTS, Limits())
    assert check_blueprint(bp, ENTS, Limits(), OUTLINE) == []
    assert any(f.startswith("[fk_name]") for f in provider.rounds[1])
    assert len(provider.rounds) >= 2


def test_still_invalid_blueprint_is_quarantined(tmp_path):
    cat_ents = {"entities": [CAT.entities[n].model_dump() for n in ENTS]}
    io.write_json(tmp_path / "entities.json", cat_ents)
    meta = {"step": "s04", "schema_version": 1, "provider": "offline", "seed": 1, "inputs": {}}
    io.write_json(tmp_path / "outlines.json", {"domains": [OUTLINE.model_dump()], "dropped": [], "meta": meta})
    cfg = {"seed": 1, "blueprints": {"min_tools": 8}, "llm": {"provider": "offline"}}
    ctx = StepContext.from_paths(
        "s04",
        cfg,
        {"outlines": tmp_path / "outlines.json", "entities": tmp_path / "entities.json"},
        {"blueprint": tmp_path / "bp.json"},
        wildcards={"domain": OUTLINE.domain},
        llm=client(BrokenFirst(m_no_auth, always=True)),
    )
    s04_blueprints.run_detail(ctx)
    art = io.read_json(tmp_path / "bp.json")
    assert art["status"] == "failed" and "authorize" in art["reason"] and art["domain"] == OUTLINE.domain
    assert artifacts.load_blueprint(tmp_path / "bp.json") is None
    ctx5 = StepContext.from_paths(
        "s05",
        cfg,
        {"blueprint": tmp_path / "bp.json"},
        {"tool_list": tmp_path / "tl.json"},
        wildcards={"domain": OUTLINE.domain},
    )
    s05_tool_lists.run(ctx5)
    tl = io.read_json(tmp_path / "tl.json")
    assert tl["status"] == "failed" and tl["tools"] == [] and tl["reason"].startswith("s04: ")
    ctxi = StepContext.from_paths(
        "s04",
        cfg,
        {"outlines": tmp_path / "outlines.json", "blueprints": [tmp_path / "bp.json"]},
        {"index": tmp_path / "ix.json"},
    )
    s04_blueprints.run_index(ctxi)
    ix = io.read_json(tmp_path / "ix.json")
    assert ix["failed"] == 1 and ix["domains"][0]["status"] == "failed" and ix["domains"][0]["reason"]

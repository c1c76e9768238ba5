"""Interlocked storylines (issue 11): s11's typed links, their checks, the evaluator's
``broken_link`` and the row-only ``unstated_links`` audit.

The s11 fixture (tests/fixtures/s11) holds DentalCareDesk and PharmacyCareLine from a
finished offline run.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml

from agentskiller import io
from agentskiller.artifacts import load_blueprint
from agentskiller.jobs import StepContext
from agentskiller.reporting.task_audit import unstated_links
from agentskiller.steps.cross import links as L
from agentskiller.steps.cross import s11_trajectory_fusion as s11
from evaluator.calls import AgentCall
from evaluator.replays import Step
from evaluator.verdicts import CATEGORY_ORDER, _category, broken_links

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "s11" / "outputs"
REPO = Path(__file__).resolve().parents[1]
A, B = "DentalCareDesk", "PharmacyCareLine"
PAIR = f"{A}+{B}"


@pytest.fixture
def root(tmp_path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "outputs")
    r = tmp_path / "outputs"
    (r / "cross").mkdir()
    io.write_json(
        r / "cross/combinations.json",
        {"status": "ok", "pairs": [{"pair": PAIR, "domains": [A, B], "core_entity": "Patient"}]},
    )
    return r


def paths(root: Path, sub: str, ext: str = ".json") -> list[Path]:
    return [root / sub / f"{d}{ext}" for d in (A, B)]


def run_s11(root: Path, llm=None) -> dict:
    cfg = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    cfg["outputs_dir"] = str(root)
    cfg["llm"]["cache_dir"] = str(root / ".llm_cache")
    ctx = StepContext.from_paths(
        "s11",
        cfg,
        inputs=dict(
            combos=root / "cross/combinations.json",
            blueprints=paths(root, "blueprints"),
            tool_graphs=paths(root, "tool_graphs"),
            tasks=paths(root, "tasks"),
            policies=paths(root, "policies", ".md"),
        ),
        outputs=dict(graph=root / "cross" / PAIR / "tool_graph.json"),
        wildcards={"pair": PAIR},
        llm=llm,
    )
    try:
        s11.run(ctx)
    finally:
        if ctx._llm is not None and hasattr(ctx._llm, "close"):
            ctx._llm.close()
    return io.read_json(root / "cross" / PAIR / "tool_graph.json")


def index(root: Path) -> dict:
    return L.link_index([(d, load_blueprint(p)) for d, p in zip((A, B), paths(root, "blueprints"))], {})


def link(src: str, field: str, dst: str, param: str, relation: str = "equal") -> L.Link:
    return L.Link.model_validate(
        {"from": {"call": src, "field": field}, "to": {"call": dst, "param": param}, "relation": relation}
    )


# ------------------------------------------------------------------ s11
def test_every_fused_trajectory_declares_checked_links(root):
    g = run_s11(root)
    assert g["status"] == "ok" and g["storylines"]
    idx = index(root)
    for st in g["storylines"]:
        tools = st["trajectory"]
        assert st["links"], st
        lks = [L.Link.model_validate(lk) for lk in st["links"]]
        assert L.check_links(lks, tools, idx) == []
        for lk in lks:
            src, dst = str(lk.source.call), str(lk.to.call)
            assert tools.index(src) < tools.index(dst)
            assert src.split("__")[0] != dst.split("__")[0]
        # the storyline says what is carried across
        assert "carried over" in st["storyline"] or "only learns" in st["storyline"]
    io.validate(g, "fused_trajectories")


def test_check_links_rejects_what_carries_nothing(root):
    idx = index(root)
    tools = [
        f"{A}__authorize_patient",
        f"{A}__book_appointment",
        f"{A}__get_appointment",
        f"{B}__authorize_patient",
        f"{B}__request_consultation",
    ]
    ok = link(tools[2], "scheduled_at", tools[4], "scheduled_at")
    # the user gave that time to the booking themselves: nothing is carried across
    assert any("states it there" in e for e in L.check_links([ok], tools, idx))
    plain = [tools[0], tools[2], tools[3], tools[4]]
    assert L.check_links([ok], plain, idx) == []
    assert any("declares no link" in e for e in L.check_links([], plain, idx))
    same = link(plain[2], "scheduled_at", plain[3], "scheduled_at")
    assert any("both calls must be" in e or "one service" in e for e in L.check_links([same], plain, idx))
    backwards = link(plain[3], "scheduled_at", plain[1], "scheduled_at")
    assert any("must come before" in e for e in L.check_links([backwards], plain, idx))
    assert any(
        "relation" in e
        for e in L.check_links([link(plain[1], "scheduled_at", plain[3], "scheduled_at", "within")], plain, idx)
    )
    assert any(
        "no linkable field" in e
        for e in L.check_links([link(plain[1], "status", plain[3], "scheduled_at")], plain, idx)
    )
    assert any(
        "no value parameter" in e
        for e in L.check_links([link(plain[1], "scheduled_at", plain[3], "medication_id")], plain, idx)
    )


def test_type_categories():
    assert L.category("scheduled_at", "datetime") == "datetime"
    assert L.category("copay_amount", "number") == "amount"
    assert L.category("quantity", "integer") is None
    assert L.category("dropoff_address", "string") == "address"
    assert L.category("pharmacy_id", "string") is None
    date = L.Endpoint("A__x", "check_in_date", "date", "date")
    when = L.Endpoint("B__y", "scheduled_at", "datetime", "datetime")
    assert not L.compatible(date, when, "equal")
    assert L.compatible(when, when, "after") and not L.compatible(when, when, "within")


def test_a_pair_with_no_linkable_value_is_pruned(root):
    for p in paths(root, "blueprints"):
        bp = io.read_json(p)
        for t in bp["tools"]:
            t["parameters"] = [x for x in t["parameters"] if x["name"] != "scheduled_at"]
        io.write_json(p, bp)

    class NoLLM:
        def generate(self, *a, **k):
            raise AssertionError("the LLM was called for a pair with nothing to link")

    g = run_s11(root, llm=NoLLM())
    assert g["status"] == "failed" and "no linkable value" in g["reason"]


# ------------------------------------------------------------------ evaluator
ROW = {
    "golden_calls": [
        {"function": {"name": f"{A}__authorize_patient"}},
        {"function": {"name": f"{A}__get_appointment"}},
        {"function": {"name": f"{B}__authorize_patient"}},
        {"function": {"name": f"{B}__request_consultation"}},
    ],
    "links": [
        {"from": {"call": 1, "field": "scheduled_at"}, "to": {"call": 3, "param": "scheduled_at"}, "relation": "equal"}
    ],
}


def steps(value: str, with_source: bool = True) -> list[Step]:
    out = [Step(AgentCall(0, 1, f"{A}__authorize_patient", {"patient_id": "PAT-1"}), True, False)]
    if with_source:
        out.append(
            Step(
                AgentCall(1, 3, f"{A}__get_appointment", {"dental_appointment_id": "DEA-1"}),
                True,
                False,
                result={"dental_appointment_id": "DEA-1", "scheduled_at": "2025-07-01T10:00:00Z"},
            )
        )
    out.append(Step(AgentCall(2, 5, f"{B}__authorize_patient", {"patient_id": "PAT-1"}), True, False))
    out.append(Step(AgentCall(3, 7, f"{B}__request_consultation", {"scheduled_at": value}), True, True))
    return out


def test_broken_link_is_its_own_category():
    assert broken_links(ROW, steps("2025-07-01T10:00:00Z")) == []
    bad = broken_links(ROW, steps("2025-07-02T10:00:00Z"))
    assert len(bad) == 1 and bad[0]["expected"] == "2025-07-01T10:00:00Z" and bad[0]["param"] == "scheduled_at"
    # no source result before the target call: nothing was carried across
    assert broken_links(ROW, steps("2025-07-01T10:00:00Z", with_source=False))
    assert "broken_link" in CATEGORY_ORDER
    flags = {
        "state_ok": False,
        "actions_ok": False,
        "answer_ok": None,
        "refusal_ok": None,
        "unauthorized": False,
        "unconfirmed": False,
        "forbidden": False,
        "simulator": False,
        "extra": False,
        "wrong": True,
        "missing": False,
        "broken": True,
        "cut_off": False,
    }
    assert _category("all", flags) == "broken_link"
    assert _category("all", {**flags, "broken": False}) == "wrong_write_args"


# ------------------------------------------------------------------ audit
def test_unstated_links_from_the_row_alone():
    when = "2025-07-01T10:00:00Z"
    row = {
        "cross_domain": True,
        "scenario": {"instruction": "Book a consultation for the time of my dental appointment.", "known_facts": []},
        "messages": [{"role": "system", "content": ""}, {"role": "user", "content": "Hi, I am PAT-1."}],
        "golden_calls": [
            {"function": {"name": f"{A}__authorize_patient", "arguments": '{"patient_id": "PAT-1"}'}, "resolve": "{}"},
            {
                "function": {"name": f"{A}__get_appointment", "arguments": '{"dental_appointment_id": "DEA-1"}'},
                "resolve": "{}",
            },
            {"function": {"name": f"{B}__authorize_patient", "arguments": '{"patient_id": "PAT-1"}'}, "resolve": "{}"},
            {
                "function": {"name": f"{B}__request_consultation", "arguments": '{"channel": "video"}'},
                "resolve": json.dumps({"scheduled_at": {"call": 1, "field": "scheduled_at"}}),
            },
        ],
    }
    outputs = [
        {"ok": True, "result": {"patient_id": "PAT-1"}},
        {"ok": True, "result": {"dental_appointment_id": "DEA-1", "scheduled_at": when}},
        {"ok": True, "result": {"patient_id": "PAT-1"}},
        {"ok": True, "result": {"scheduled_at": when, "channel": "video"}},
    ]
    found = unstated_links(row, outputs)
    assert [(f["from"], f["to"]) for f in found] == [
        ({"call": 1, "field": "scheduled_at"}, {"call": 3, "param": "scheduled_at"})
    ]
    # stated by the user: no longer a link the assistant must carry
    row["scenario"]["instruction"] = f"Book a consultation for {when}."
    assert unstated_links(row, outputs) == []
    assert unstated_links({**row, "cross_domain": False}, outputs) == []


# ------------------------------------------------------------------ offline assistant
def _tool(name: str, props: dict, required: list[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": "",
            "parameters": {"type": "object", "properties": props, "required": required},
        },
    }


def test_offline_assistant_carries_a_value_named_by_its_source():
    """ "the street address of that hotel": the value of an earlier result, read from the
    conversation (what a real model sees), never from the row."""
    from rollout.offline_assistant import Conversation, Planner

    s = {"type": "string"}
    tools = [
        _tool("Stay__authorize_traveler", {"traveler_id": s}, ["traveler_id"]),
        _tool("Stay__get_hotel_details", {"hotel_id": s}, ["hotel_id"]),
        _tool("Ride__authorize_traveler", {"traveler_id": s}, ["traveler_id"]),
        _tool(
            "Ride__request_ride",
            {"ride_type_id": s, "pickup_address": s, "dropoff_address": s},
            ["ride_type_id", "pickup_address", "dropoff_address"],
        ),
    ]
    hotel = {"hotel_id": "HOT-52811", "hotel_name": "Wyatt Ltd", "street_address": "729 Felicia Crest"}
    messages = [
        {"role": "system", "content": "Policy."},
        {"role": "user", "content": "Hi, my traveler ID is TRA-72010. Please go over the details of hotel HOT-52811."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "Stay__get_hotel_details", "arguments": '{"hotel_id": "HOT-52811"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": json.dumps(hotel)},
    ]
    conv = Conversation(messages, tools)
    planner = Planner(conv)
    tool = conv.by_name["Ride__request_ride"]
    clause = "request a ride of ride type RIT-13523 with the dropoff address set to the street address of that hotel"
    out = planner.resolve(tool, clause, "", len(conv.calls))
    assert out.args.get("dropoff_address") == "729 Felicia Crest"
    assert "pickup_address" not in out.args  # the link names one parameter, not every address


def test_a_skipped_source_write_is_a_missing_write_not_a_broken_link():
    """The source a golden write never made: the missing write is the failure (the mistake
    ground truth's skipped_step), so the link after it is not judged."""
    plain = steps("2025-07-01T10:00:00Z", with_source=False)
    assert broken_links(ROW, plain)  # a read never made: nothing was carried across
    assert broken_links(ROW, plain, frozenset({f"{A}__get_appointment"})) == []

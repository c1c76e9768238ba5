"""Task kinds, grounding and lookups (s15/s16) on the hand-written ClinicBooking fixture."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from fixtures.s14.pipeline import ENV, FIXTURE

from agentskiller import io
from agentskiller.models.tasks import ForbiddenCall, GoldenCall, Instance, Resolve
from agentskiller.runtime.environment import load_environment
from agentskiller.steps.tasks import s16_tasks
from agentskiller.steps.tasks.grounding_map import source
from agentskiller.steps.tasks.lookups import identifying_column, insert_calls
from agentskiller.steps.tasks.task_env import EnvView
from agentskiller.steps.tasks.task_kinds import choose_asks, plan_kinds, wrong_id

SHARES = {"action": 0.5, "lookup": 0.2, "refusal": 0.15, "auth_failure": 0.15}


@pytest.fixture(scope="module")
def view() -> EnvView:
    return EnvView.load(ENV, FIXTURE / f"blueprints/{ENV}.json", FIXTURE / f"servers/{ENV}/report.json")


@pytest.fixture(scope="module")
def data() -> dict:
    appts = io.read_json(FIXTURE / f"database/{ENV}/Appointment.json")["records"]
    return {"appointments": appts}


def _inst(iid: str, calls: list[GoldenCall], **kw) -> Instance:
    return Instance(instance_id=iid * 16, template_id="t", user_id="u", values={}, records={}, calls=calls, **kw)


def _validate(view, instances):
    server = FIXTURE / f"servers/{ENV}"
    h0 = load_environment(server).initial_state().hash()
    return h0, s16_tasks.validate(view, server, instances, h0, s16_tasks.inprocess_executor())


# ------------------------------------------------------------------ plan
def test_plan_deals_the_shares_over_write_templates():
    plan = plan_kinds(20, 2, SHARES)
    got = Counter(k for row in plan for k in row)
    # renormalised over the write kinds: 0.5 / 0.8, 0.15 / 0.8, 0.15 / 0.8 of 40 slots
    assert got == {"action": 25, "refusal": 8, "auth_failure": 7} or got == {
        "action": 25,
        "refusal": 7,
        "auth_failure": 8,
    }
    assert all(row.count("refusal") <= 1 and row.count("auth_failure") <= 1 for row in plan)
    assert Counter(
        k for row in plan_kinds(5, 2, {"action": 1, "lookup": 0, "refusal": 0, "auth_failure": 0}) for k in row
    ) == {"action": 10}


def test_wrong_id_is_a_near_miss_that_names_nobody():
    rng = random.Random(1)
    taken = {"PAT-12345", "PAT-21345"}
    for _ in range(20):
        w = wrong_id("PAT-12345", taken, rng)
        assert w is not None and w not in taken and len(w) == len("PAT-12345") and w.startswith("PAT-")
        assert sum(a != b for a, b in zip(w, "PAT-12345")) in (1, 2)


def test_asks_skip_what_the_user_states_and_free_text():
    cols = [("date", "date"), ("status", "string"), ("notes", "text"), ("fee", "number")]
    rng = random.Random(4)
    for _ in range(20):
        asks = choose_asks("read", cols, {"date"}, rng)
        assert asks and set(asks) <= {"status", "fee"}
        assert len(choose_asks("search", cols, set(), rng)) == 1
    assert choose_asks("compute", cols, set(), rng) == []


# ------------------------------------------------------------------ lookups
def test_identifying_column_prefers_a_date_that_tells_the_record_apart():
    target = {"id": 1, "date": "2025-07-01", "status": "scheduled"}
    other = {"id": 2, "date": "2025-07-09", "status": "scheduled"}
    cols = [("status", "string"), ("date", "date")]
    assert identifying_column(target, [target, other], cols, set()) == (False, "date")
    assert identifying_column(target, [target, other], cols, {"date"}) == (True, None)
    assert identifying_column(target, [target], cols, set()) == (True, None)
    twin = {**target, "id": 3}
    assert identifying_column(target, [target, twin], cols, set()) == (False, None)  # nothing tells them apart


def test_inserted_calls_keep_resolve_rules_pointing_at_their_call():
    calls = [
        GoldenCall(name="authorize_patient", arguments={"patient_id": "p"}),
        GoldenCall(name="book_appointment", arguments={}),
        GoldenCall(
            name="get_appointment", arguments={}, resolve={"appointment_id": Resolve(call=1, field="appointment_id")}
        ),
    ]
    out = insert_calls(calls, {1: [GoldenCall(name="get_clinician", arguments={"clinician_id": "c"})]})
    assert [c.name for c in out] == ["authorize_patient", "get_clinician", "book_appointment", "get_appointment"]
    assert out[3].resolve["appointment_id"].call == 2


# ------------------------------------------------------------------ grounding
def test_sources_in_order_user_call_schema_now():
    results = [{"authorized": True}, [{"appointment_id": "A-1", "date": "2025-07-01"}]]
    assert source("PAT-1", ["PAT-1"], results, None, "string", "2025-06-02T09:00:00Z") == "user"
    assert source("A-1", ["PAT-1"], results, None, "string", "") == "call:1.0.appointment_id"
    assert source("cancelled", [], results, ["scheduled", "cancelled"], "string", "") == "schema"
    assert source(True, [], results, None, "boolean", "") == "schema"
    assert source("2025-06-02", [], [], None, "date", "2025-06-02T09:00:00Z") == "now"
    assert source("A-9", ["PAT-1"], results, None, "string", "") is None


def test_an_id_from_nowhere_is_rejected_and_a_stated_one_is_grounded(view, data):
    appt = next(a for a in data["appointments"] if a["status"] == "scheduled")
    calls = [
        GoldenCall(name="authorize_patient", arguments={"patient_id": appt["patient_id"]}),
        GoldenCall(name="cancel_appointment", arguments={"appointment_id": appt["appointment_id"]}),
    ]
    values = {"patient_id": appt["patient_id"], "appointment_id": appt["appointment_id"]}
    blind = _inst("a", calls, states=["patient_id"])
    blind.values.update(values)
    told = _inst("b", calls, states=["appointment_id", "patient_id"])
    told.values.update(values)
    _, (t_blind, t_told) = _validate(view, [blind, told])
    assert t_blind.status == "invalid" and t_blind.reason.startswith("ungrounded_argument: appointment_id of call 1")
    assert t_told.status == "valid"
    assert t_told.grounding == [{"patient_id": "user"}, {"appointment_id": "user"}]
    assert t_told.difficulty.model_dump() == {"calls": 2, "writes": 1, "lookups": 0, "domains": 1}


def test_a_list_result_grounds_the_next_call_and_an_empty_list_is_rejected(view, data):
    appt = next(a for a in data["appointments"] if a["status"] == "scheduled")
    pid = appt["patient_id"]
    theirs = {a["status"] for a in data["appointments"] if a["patient_id"] == pid}
    none_of = next(s for s in ("scheduled", "cancelled", "completed") if s not in theirs)
    listed = _inst(
        "c",
        [
            GoldenCall(name="authorize_patient", arguments={"patient_id": pid}),
            GoldenCall(name="list_appointments", arguments={}),
            GoldenCall(name="get_appointment", arguments={"appointment_id": appt["appointment_id"]}),
        ],
        states=["patient_id"],
        task_kind="lookup",
        asks=["status"],
    )
    listed.values["patient_id"] = pid
    empty = _inst(
        "d",
        [
            GoldenCall(name="authorize_patient", arguments={"patient_id": pid}),
            GoldenCall(name="list_appointments", arguments={"status": none_of}),
        ],
        states=["patient_id"],
    )
    empty.values["patient_id"] = pid
    _, (ok, bad) = _validate(view, [listed, empty])
    assert ok.status == "valid", ok.reason
    assert ok.grounding[2]["appointment_id"].startswith("call:1.") and ok.grounding[2]["appointment_id"].endswith(
        ".appointment_id"
    )
    assert [a.model_dump() for a in ok.expected_answer] == [{"call": 2, "field": "status", "value": "scheduled"}]
    assert bad.status == "invalid" and bad.reason.startswith("empty_lookup: call 1")


# ------------------------------------------------------------------ refusal / auth failure
def test_refusal_is_valid_only_when_the_server_refuses_the_forbidden_write(view, data):
    done = next(a for a in data["appointments"] if a["status"] != "scheduled")
    open_ = next(a for a in data["appointments"] if a["status"] == "scheduled")

    def refusal(iid, appt):
        inst = _inst(
            iid,
            [GoldenCall(name="authorize_patient", arguments={"patient_id": appt["patient_id"]})],
            states=["patient_id", "appointment_id"],
            task_kind="refusal",
            refusal=ForbiddenCall(
                name="cancel_appointment",
                arguments={"appointment_id": appt["appointment_id"]},
                rule="cancel_appointment.precondition",
                domain=ENV,
                why="status is not scheduled",
            ),
        )
        inst.values.update(patient_id=appt["patient_id"], appointment_id=appt["appointment_id"])
        return inst

    h0, (refused, allowed) = _validate(view, [refusal("e", done), refusal("f", open_)])
    assert refused.status == "valid" and refused.final_state_hash == h0
    assert len(refused.expected_outputs) == len(refused.golden_calls) == 1
    assert allowed.status == "invalid" and "should have been refused" in allowed.reason


def test_auth_failure_needs_an_id_the_authorize_tool_refuses(view, data):
    real = data["appointments"][0]["patient_id"]

    def attempt(iid, pid):
        inst = _inst(
            iid,
            [GoldenCall(name="authorize_patient", arguments={"patient_id": pid}, expect="refused")],
            states=["patient_id"],
            task_kind="auth_failure",
        )
        inst.values["patient_id"] = pid
        return inst

    h0, (typo, works) = _validate(view, [attempt("g", real[:-2] + real[-1] + real[-2]), attempt("h", real)])
    if real[-1] != real[-2]:
        assert typo.status == "valid" and typo.final_state_hash == h0
    assert works.status == "invalid" and "should have been refused" in works.reason

"""Variety and known facts of the offline s17 user simulator, on the ClinicBooking fixture.

Twins (instances of one template) must read like different people wrote them while each
still passes the s17 checks; known facts are what a customer has, under the labels a
customer uses; a lookup asks for what it wants to be told; an auth failure still gives its
ID. And the framing the s14 writer puts around its clauses is what s17 takes apart again.
"""

from __future__ import annotations

import itertools
import json
import random
import re

import pytest
from fixtures.s14.pipeline import ENV, FIXTURE

from agentskiller.llm.offline.provider import run_handler
from agentskiller.llm.offline.writers.framing import compose, identification, split_steps
from agentskiller.llm.offline.writers.manner import STYLES
from agentskiller.llm.offline.writers.template import write_template
from agentskiller.models.tasks import Instance, QueryDraft, Slot, TaskTemplate
from agentskiller.reporting.task_audit import masked_tokens
from agentskiller.steps.tasks.s14_templates import base_context
from agentskiller.steps.tasks.s15_instances import make_instances
from agentskiller.steps.tasks.s17_queries import available_facts, check_query, query_context, relationship_pks
from agentskiller.steps.tasks.task_env import EnvView, trajectory_slots

TRAJECTORIES = [
    ["authorize_patient", "get_appointment", "reschedule_appointment"],
    ["authorize_patient", "get_clinician", "book_appointment"],
    ["authorize_patient", "list_appointments", "cancel_appointment"],
    ["authorize_patient", "book_appointment", "reschedule_appointment"],
]
#: a label a machine wrote: snake_case, a run-together table name, "of the <table>"
MACHINE_LABEL = re.compile(r"_|[a-z]+(appointment|clinician|patient)\b|\bof the [a-z]+$|\bid\b")


@pytest.fixture(scope="module")
def view() -> EnvView:
    return EnvView.load(ENV, FIXTURE / f"blueprints/{ENV}.json", FIXTURE / f"servers/{ENV}/report.json")


def _template(view: EnvView, traj: list[str], seed: int) -> TaskTemplate:
    slots = trajectory_slots(view, traj)
    ctx = base_context(view, traj, slots, (FIXTURE / f"policies/{ENV}.md").read_text())
    draft = write_template(ctx, random.Random(seed), repairing=True)
    return TaskTemplate(template_id=f"{seed:016d}", trajectory=traj, slots=slots, status="accepted", **draft)


def _query(view: EnvView, tpl: TaskTemplate, inst: Instance, seed: int = 7, **extra) -> tuple[QueryDraft, dict]:
    bp = view.blueprints[ENV]
    rel = relationship_pks([bp])
    kinds = {t.name: t.kind for t in bp.tools}
    ctx = {**query_context(ENV, [bp], tpl, inst, view.core_entity, rel, kinds), **extra}
    return QueryDraft.model_validate(json.loads(run_handler(seed, "s17.query", [], ctx))), ctx


def _cases(view: EnvView):
    tables = view.load_tables()
    for i, traj in enumerate(TRAJECTORIES):
        for seed in (1, 2, 3):
            tpl = _template(view, traj, 100 * i + seed)
            insts, _ = make_instances(view, tables, tpl, ["action"] * 3, random.Random(seed))
            if len(insts) >= 2:
                yield tpl, insts


def jaccard(a: str, b: str) -> float:
    x, y = masked_tokens(a), masked_tokens(b)
    return len(x & y) / len(x | y)


def test_twins_read_differently_and_each_passes_the_checks(view):
    rel = relationship_pks([view.blueprints[ENV]])
    pairs = 0
    for tpl, insts in _cases(view):
        queries = [_query(view, tpl, inst)[0] for inst in insts]
        for q, inst in zip(queries, insts):
            assert check_query(q, tpl, inst, rel) == [], (tpl.instruction, q.instruction)
        for (a, _), (b, _) in itertools.combinations(zip(queries, insts), 2):
            pairs += 1
            assert jaccard(a.instruction, b.instruction) < 0.8, (a.instruction, b.instruction)
    assert pairs >= 12


def test_known_facts_are_what_a_customer_has(view):
    checked = 0
    for tpl, insts in _cases(view):
        for inst in insts:
            q, ctx = _query(view, tpl, inst)
            facts = {f.fact: f.value for f in q.known_facts}
            patient = inst.records["Patient"]
            assert facts["your name"] == patient["full_name"]
            assert facts["your patient ID"] == patient["patient_id"]
            assert len(facts) <= 6, facts
            # no profile dump: the task never needs the email or the date of birth
            assert patient["email"] not in facts.values() and patient["date_of_birth"] not in facts.values()
            for label in facts:
                assert not MACHINE_LABEL.search(label), label
            held = {inst.values[n] for n in tpl.user_holds}
            for n, v in inst.values.items():
                if n == "appointment_id" and v not in held:
                    assert v not in facts.values()  # a reference the user does not hold
            checked += 1
    assert checked >= 12


def test_fact_labels_and_enum_values_on_a_hand_built_task():
    tpl = TaskTemplate(
        template_id="0" * 16,
        trajectory=["authorize_employee", "list_leave_requests", "get_leave_request", "update_leave_request"],
        status="accepted",
        user_holds=["leave_request_id"],
        slots=[
            Slot(name="employee_id", kind="record", table="Employee", column="employee_id", calls=[0]),
            Slot(name="status", kind="value", table="HrDesk_LeaveRequest", column="status", calls=[1]),
            Slot(
                name="leave_request_id",
                kind="record",
                table="HrDesk_LeaveRequest",
                column="leave_request_id",
                calls=[2, 3],
                internal_id=True,
            ),
            Slot(
                name="new_dropoff_address",
                kind="value",
                table="HrDesk_LeaveRequest",
                column="dropoff_address",
                calls=[3],
            ),
        ],
        instruction="I'm {Employee.full_name}, employee ID {employee_id}. List my {status} leave requests, check "
        "{leave_request_id} and set the drop-off address to {new_dropoff_address}.",
    )
    inst = Instance(
        instance_id="1" * 16,
        template_id=tpl.template_id,
        user_id="EMP-1",
        values={
            "employee_id": "EMP-1",
            "Employee.full_name": "Ada Park",
            "status": "on_leave",
            "leave_request_id": "LVR-7",
            "new_dropoff_address": "12 Harbour Road",
        },
        records={
            "Employee": {
                "employee_id": "EMP-1",
                "full_name": "Ada Park",
                "email": "ada@example.org",
                "phone": "+1-555-010-2000",
                "date_of_birth": "1980-01-01",
                "employment_status": "on_leave",
            }
        },
        calls=[],
    )
    kinds = {"list_leave_requests": "search", "get_leave_request": "read", "update_leave_request": "update"}
    facts = available_facts(tpl, inst, "Employee", {"HrDesk_LeaveRequest": "leave_request_id"}, kinds)
    assert facts == [
        {"fact": "your name", "value": "Ada Park"},
        {"fact": "your employee ID", "value": "EMP-1"},
        {"fact": "the status to search for", "value": "on leave"},
        {"fact": "your leave request reference", "value": "LVR-7"},
        {"fact": "the new drop-off address for your leave request", "value": "12 Harbour Road"},
    ]


def test_a_lookup_asks_for_each_label_and_an_auth_failure_still_gives_the_id(view):
    rel = relationship_pks([view.blueprints[ENV]])
    tpl, insts = next(_cases(view))
    asks = [{"field": "status", "label": "status"}, {"field": "date", "label": "appointment date"}]
    for seed in range(6):
        q, _ = _query(view, tpl, insts[0], seed=seed, task_kind="lookup", asks=asks)
        low = q.instruction.lower()
        assert "status" in low and "appointment date" in low, q.instruction
        assert check_query(q, tpl, insts[0], rel) == []
        q, _ = _query(view, tpl, insts[0], seed=seed, task_kind="auth_failure")
        assert insts[0].values["patient_id"] in q.instruction
        assert check_query(q, tpl, insts[0], rel) == []


def test_split_steps_recovers_what_compose_framed():
    steps = [
        "please look up my appointment {appointment_id}",
        "reschedule it to {new_date}",
        "cancel my appointment on {Appointment.date}",
    ]
    for seed, n in itertools.product(range(40), (1, 2, 3)):
        rng = random.Random(seed)
        style = STYLES[rng.choice(sorted(STYLES))] if seed % 2 else STYLES["plain"]
        ident = identification("{Patient.full_name}", "patient", "{patient_id}", rng, style)
        text = compose(ident, steps[:n], rng, style=style, goal="reschedule my appointment")
        got = split_steps(text, "patient_id", "Patient.full_name")
        assert got == [s.removeprefix("please ") for s in steps[:n]], text


def test_instruction_of_another_shape_is_kept_whole(view):
    """A template the splitter does not understand (a step before the identification) is
    framed, not rewritten: every value it states survives."""
    tpl, insts = next(_cases(view))
    odd = tpl.model_copy(
        update={
            "instruction": "Please reschedule {appointment_id} to {new_date}. I'm {Patient.full_name}, {patient_id}."
        }
    )
    assert split_steps(odd.instruction, "patient_id", "Patient.full_name") is None
    held = odd.model_copy(update={"user_holds": ["appointment_id"]})
    for inst in insts:
        if "new_date" not in inst.values:
            continue
        q, _ = _query(view, held, inst)
        assert "Please reschedule" in q.instruction and inst.values["appointment_id"] in q.instruction

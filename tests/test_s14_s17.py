"""s14-s17 on the hand-written ClinicBooking fixture (tests/fixtures/s14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.s14.pipeline import ENV, FIXTURE, config, copy_fixture, inputs, run_all, run_step

from agentskiller import io
from agentskiller.grounding import mentions, ungrounded
from agentskiller.jobs import StepContext
from agentskiller.llm.offline.writers.template_judge import judge_template
from agentskiller.models.tasks import CRITERIA, GoldenCall, Instance, TemplateDraft
from agentskiller.steps.tasks import s16_tasks, tasks_job
from agentskiller.steps.tasks.s14_templates import base_context, check_draft
from agentskiller.steps.tasks.task_env import EnvView, trajectory_slots

SIM = "2025-06-02T09:00:00Z"


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("s14")
    run_all(root)
    return root


@pytest.fixture(scope="module")
def view() -> EnvView:
    return EnvView.load(ENV, FIXTURE / f"blueprints/{ENV}.json", FIXTURE / f"servers/{ENV}/report.json")


def judge_ctx(view, traj, instruction, holds=()):
    slots = trajectory_slots(view, traj)
    ctx = base_context(view, traj, slots, (FIXTURE / f"policies/{ENV}.md").read_text())
    return {
        **ctx,
        "criteria": list(CRITERIA),
        "template": {"instruction": instruction, "reason_for_call": "Plans changed.", "user_holds": list(holds)},
    }


# ------------------------------------------------------------------ s14
def test_slots_follow_the_trajectory(view):
    slots = {
        s.name: s for s in trajectory_slots(view, ["authorize_patient", "book_appointment", "reschedule_appointment"])
    }
    assert slots["patient_id"].kind == "record"
    assert slots["clinician_id"].kind == "record" and not slots["clinician_id"].internal_id
    assert {"date", "reason", "new_date"} <= set(slots)
    # the created appointment's ID is resolved from the create, so it is no slot
    assert "appointment_id" not in slots


def test_judge_accepts_a_complete_template_and_rejects_a_missing_value(view):
    traj = ["authorize_patient", "get_appointment", "reschedule_appointment"]
    good = (
        "Hi, I'm {Patient.full_name}, patient ID {patient_id}. Please check my appointment on "
        "{Appointment.date} and move it to {new_date}."
    )
    v = judge_template(judge_ctx(view, traj, good))
    assert min(v[c] for c in CRITERIA) == 5, v["problems"]
    bad = "Hi, I'm {Patient.full_name}, patient ID {patient_id}. Please check my appointment on {Appointment.date} and move it."
    v = judge_template(judge_ctx(view, traj, bad))
    assert v["trajectory_faithful"] <= 2 and any("new_date" in p for p in v["problems"])


def test_judge_flags_unheld_internal_ids_and_missing_identity(view):
    traj = ["authorize_patient", "list_appointments", "cancel_appointment"]
    v = judge_template(
        judge_ctx(view, traj, "Please show my appointments and cancel appointment {appointment_id} for me.")
    )
    assert v["unambiguous"] < 5 and v["policy_compliant"] < 5
    v2 = judge_template(
        judge_ctx(
            view,
            traj,
            "I'm {Patient.full_name}, ID {patient_id}. Show my appointments and cancel my booking {appointment_id}.",
            holds=["appointment_id"],
        )
    )
    assert v2["unambiguous"] == 5 and v2["policy_compliant"] == 5


def test_check_draft_rejects_unknown_placeholders(view):
    slots = trajectory_slots(view, ["authorize_patient", "cancel_appointment"])
    errs = check_draft(
        TemplateDraft(
            instruction="I'm {patient_id}; cancel {booking_code}.", reason_for_call="x", user_holds=["patient_id"]
        ),
        slots,
    )
    assert any("booking_code" in e for e in errs) and any("user_holds" in e for e in errs)


def test_templates_artifact_keeps_rejections_and_is_reused(tmp_path, monkeypatch):
    from agentskiller.llm.offline.writers import template as writer

    # every draft terse: templates with a create/update lose a value and must be rejected
    monkeypatch.setattr(writer, "TERSE_PROBABILITY", 1.0)
    copy_fixture(tmp_path)
    cfg = config(tmp_path)
    cfg["llm"]["cache_mode"] = "off"
    run_step("s14", tmp_path, cfg)
    doc = io.read_json(tmp_path / f"task_templates/{ENV}.json")
    statuses = [t["status"] for t in doc["templates"]]
    assert "rejected" in statuses and "accepted" in statuses
    for t in doc["templates"]:
        if t["status"] == "rejected":
            assert t["reason"] and t["problems"] and t["scores"]
    before = (tmp_path / f"task_templates/{ENV}.json").read_bytes()
    ctx = run_step("s14", tmp_path, cfg)  # cache off: only reuse can avoid the LLM
    assert ctx._llm is None or ctx._llm.stats.provider_calls == 0
    assert (tmp_path / f"task_templates/{ENV}.json").read_bytes() == before


def test_max_templates_caps(tmp_path):
    copy_fixture(tmp_path)
    run_step("s14", tmp_path, config(tmp_path, max_templates=2))
    assert len(io.read_json(tmp_path / f"task_templates/{ENV}.json")["templates"]) == 2


# ------------------------------------------------------------------ s15
def test_instances_respect_ownership_preconditions_and_time(done):
    doc = io.read_json(done / f"instances/{ENV}.json")
    appts = {r["appointment_id"]: r for r in io.read_json(done / f"database/{ENV}/Appointment.json")["records"]}
    assert doc["instances"]
    per_template: dict[str, int] = {}
    patients = {r["patient_id"] for r in io.read_json(done / "database/entities/Patient.json")["records"]}
    kinds: dict[str, int] = {}
    for inst in doc["instances"]:
        per_template[inst["template_id"]] = per_template.get(inst["template_id"], 0) + 1
        kinds[inst["task_kind"]] = kinds.get(inst["task_kind"], 0) + 1
        v = inst["values"]
        if inst["task_kind"] == "auth_failure":
            # a mistyped ID: nobody's, refused, and the golden path stops there
            given = inst["calls"][0]["arguments"]["patient_id"]
            assert given != inst["user_id"] and given not in patients
            assert len(inst["calls"]) == 1 and inst["calls"][0]["expect"] == "refused"
            continue
        assert inst["calls"][0]["arguments"]["patient_id"] == inst["user_id"]
        if inst["task_kind"] == "refusal":
            forbidden = inst["refusal"]
            assert forbidden["rule"].startswith(forbidden["name"] + ".")
            assert not any(c["name"].split("_")[0] in ("book", "cancel", "reschedule") for c in inst["calls"])
            if forbidden["rule"].endswith(".precondition"):
                assert appts[forbidden["arguments"]["appointment_id"]]["status"] != "scheduled"
            continue
        if "appointment_id" in v:
            rec = appts[v["appointment_id"]]
            assert rec["patient_id"] == inst["user_id"]  # the user owns the record
            assert rec["status"] == "scheduled"  # cancel / reschedule precondition
        for k in ("date", "new_date"):
            if k in v:
                assert v[k] > SIM  # bookings after simulation time
        if "status" in v:
            assert v["status"] in ("scheduled", "cancelled", "completed")
    assert set(per_template.values()) <= {1, 2}  # tasks.samples_per_template (fewer: no second user)
    assert kinds.get("refusal") and kinds.get("auth_failure") and kinds.get("action")


def test_create_then_update_resolves_the_new_id_only_when_the_user_corrects_themselves(done, view):
    import random

    from agentskiller.models.tasks import TaskTemplate
    from agentskiller.steps.tasks.s15_instances import make_instances

    doc = io.read_json(done / f"instances/{ENV}.json")
    traj = ["authorize_patient", "book_appointment", "reschedule_appointment"]
    # without the template saying so, s15 rejects the user changing what they just booked
    assert not any([c["name"] for c in i["calls"]] == traj for i in doc["instances"])
    assert any(s["reason"].startswith("changes_created_record") for s in doc["skipped"])
    tpl = TaskTemplate(
        template_id="0" * 16,
        trajectory=traj,
        slots=trajectory_slots(view, traj),
        status="accepted",
        self_correction=True,
        instruction="I'm {patient_id}. Book {clinician_id} on {date} for {reason}. Actually, make that {new_date}.",
    )
    insts, _ = make_instances(view, view.load_tables(), tpl, ["action"], random.Random(3))
    assert insts
    for inst in insts:
        assert inst.calls[2].resolve["appointment_id"].model_dump() == {"call": 1, "field": "appointment_id"}
        assert "appointment_id" not in inst.calls[2].arguments


# ------------------------------------------------------------------ s16
def test_tasks_valid_with_hashes(done):
    doc = io.read_json(done / f"tasks/{ENV}.json")
    assert doc["counts"]["valid"] > 0
    for t in doc["tasks"]:
        if t["status"] != "valid":
            assert t["reason"]
            continue
        assert len(t["expected_outputs"]) == len(t["golden_calls"])
        writes = any(c["name"].split("_")[0] in ("book", "cancel", "reschedule") for c in t["golden_calls"])
        assert (t["final_state_hash"] != doc["initial_state_hash"]) == writes
        assert len(t["grounding"]) == len(t["golden_calls"]) and all(src for g in t["grounding"] for src in g.values())


def test_failing_and_no_op_writes_are_invalid(done, view):
    appts = io.read_json(done / f"database/{ENV}/Appointment.json")["records"]
    cancelled = next(a for a in appts if a["status"] == "cancelled")
    scheduled = next(a for a in appts if a["status"] == "scheduled")

    def inst(iid, calls):
        return Instance(
            instance_id=iid,
            template_id="t",
            user_id="u",
            values={},
            records={},
            calls=[GoldenCall(name=n, arguments=a) for n, a in calls],
        )

    bad = inst(
        "a" * 16,
        [
            ("authorize_patient", {"patient_id": cancelled["patient_id"]}),
            ("cancel_appointment", {"appointment_id": cancelled["appointment_id"]}),
        ],
    )
    noop = inst(
        "b" * 16,
        [
            ("authorize_patient", {"patient_id": scheduled["patient_id"]}),
            ("reschedule_appointment", {"appointment_id": scheduled["appointment_id"], "new_date": scheduled["date"]}),
        ],
    )
    from agentskiller.runtime.environment import load_environment

    server = done / f"servers/{ENV}"
    h0 = load_environment(server).initial_state().hash()
    tasks = s16_tasks.validate(view, server, [bad, noop], h0, s16_tasks.inprocess_executor())
    if scheduled["date"] <= SIM:  # a past date is refused by the tool: also invalid, for another reason
        assert tasks[1].status == "invalid"
    else:
        assert tasks[1].status == "invalid" and "did not change the state" in tasks[1].reason
    assert tasks[0].status == "invalid" and tasks[0].failing_call == 1 and "scheduled" in tasks[0].reason


# ------------------------------------------------------------------ s17
def test_queries_are_grounded_complete_and_keep_internal_ids_private(done):
    rows = io.read_jsonl(done / f"queries/{ENV}.jsonl")
    tasks = io.read_json(done / f"tasks/{ENV}.json")
    templates = {t["template_id"]: t for t in tasks["templates"]}
    by_task = {t["task_id"]: t for t in tasks["tasks"]}
    assert len(rows) == tasks["counts"]["valid"]
    for q in rows:
        tpl = templates[q["template_id"]]
        task = by_task[q["task_id"]]
        internal = {s["name"] for s in tpl["slots"] if s["kind"] == "record" and s["internal_id"]}
        for name in internal - set(tpl["user_holds"]):
            if name in task["values"]:
                assert all(task["values"][name] not in f["value"] for f in q["known_facts"])
                assert task["values"][name] not in q["instruction"]
        slot_kinds = {s["name"]: s["kind"] for s in tpl["slots"]}
        for name, v in task["values"].items():
            if "{" + name + "}" in tpl["instruction"]:
                # the value itself or a natural rendering of it ("June 6, 2025 at 10 AM UTC")
                assert mentions(q["instruction"], v), (name, v, q["instruction"])
                if slot_kinds.get(name) == "record":
                    assert str(v) in q["instruction"]  # IDs stay verbatim
        assert ungrounded(q["instruction"], [task["values"], task["records"]]) == []
        assert q["first_message"] and q["persona"]["name"]


def test_query_ids_are_stable(done, tmp_path):
    run_all(tmp_path)
    a = [q["query_id"] for q in io.read_jsonl(done / f"queries/{ENV}.jsonl")]
    b = [q["query_id"] for q in io.read_jsonl(tmp_path / f"queries/{ENV}.jsonl")]
    assert a == b and len(set(a)) == len(a)


def test_the_tasks_job_writes_what_s14_s15_and_s16_write_as_three_steps(done, tmp_path):
    """The ``tasks`` rule runs s14, s15 and s16 in one job: the same three artifacts, byte for
    byte, each with its own step and input files in meta (not the union the job was given)."""
    copy_fixture(tmp_path)
    cfg = config(tmp_path)
    steps = inputs(tmp_path)
    given = {**steps["s14"], **steps["s15"], **steps["s16"]}
    for made in ("templates", "instances"):  # the job's own outputs, not inputs
        del given[made]
    outs = {
        "templates": tmp_path / f"task_templates/{ENV}.json",
        "instances": tmp_path / f"instances/{ENV}.json",
        "tasks": tmp_path / f"tasks/{ENV}.json",
    }
    tasks_job.run(StepContext.from_paths("s14-s16", cfg, inputs=given, outputs=outs, wildcards={"env": ENV}))
    for name, path in outs.items():
        assert path.read_bytes() == (done / path.relative_to(tmp_path)).read_bytes(), name
    meta = {name: set(io.read_json(path)["meta"]["inputs"]) for name, path in outs.items()}
    assert meta == {
        "templates": {"blueprint", "tool_graph", "policy", "server_report"},
        "instances": {"templates", "blueprint", "server_report", "policy_report"},
        "tasks": {"instances", "blueprint", "server_report", "tools"},
    }


# -------------------------------------------------------------- quarantine
def test_failed_server_quarantines_every_step(tmp_path):
    copy_fixture(tmp_path)
    rep = tmp_path / f"servers/{ENV}/report.json"
    doc = json.loads(rep.read_text())
    doc.update(status="failed", reason="contract tests failed after 3 rounds")
    rep.write_text(json.dumps(doc))
    cfg = config(tmp_path)
    for step in ("s14", "s15", "s16", "s17"):
        run_step(step, tmp_path, cfg)
    for name in ("task_templates", "instances", "tasks"):
        d = io.read_json(tmp_path / f"{name}/{ENV}.json")
        assert d["status"] == "failed" and "contract tests failed" in d["reason"]
    q = io.read_jsonl(tmp_path / f"queries/{ENV}.jsonl")
    assert len(q) == 1 and q[0]["status"] == "failed" and "contract tests failed" in q[0]["reason"]


def test_two_writes_of_one_column_are_two_slots_with_different_values(tmp_path):
    copy_fixture(tmp_path)
    bp_path = tmp_path / f"blueprints/{ENV}.json"
    bp = json.loads(bp_path.read_text())
    for t in bp["tools"]:
        if t["name"] == "reschedule_appointment":
            t["parameters"][1]["name"] = "date"  # same name and column as book_appointment's date
    bp_path.write_text(json.dumps(bp))
    view = EnvView.load(ENV, bp_path, tmp_path / f"servers/{ENV}/report.json")
    traj = ["authorize_patient", "book_appointment", "reschedule_appointment"]
    slots = {s.name: s for s in trajectory_slots(view, traj)}
    assert slots["date"].calls == [1] and slots["new_date"].calls == [2]
    import random

    from agentskiller.models.tasks import TaskTemplate
    from agentskiller.steps.tasks.s15_instances import make_instances

    tpl = TaskTemplate(
        template_id="0" * 16,
        trajectory=traj,
        slots=list(slots.values()),
        status="accepted",
        instruction="I'm {patient_id}. Book {clinician_id} on {date} for {reason}, then move it to {new_date}.",
    )
    insts, _ = make_instances(view, view.load_tables(), tpl, ["action"] * 3, random.Random(1))
    assert insts
    for inst in insts:
        assert inst.values["date"] != inst.values["new_date"]
        assert inst.calls[2].arguments == {"date": inst.values["new_date"]}


# ------------------------------------------------------ regression: real-run defects
def _address_case():
    from agentskiller.models.tasks import KnownFact, Persona, QueryDraft, Slot, TaskTemplate

    tpl = TaskTemplate(
        template_id="0" * 16,
        trajectory=["authorize_patient", "get_appointment"],
        status="accepted",
        slots=[
            Slot(name="patient_id", kind="record", table="Patient", column="patient_id", calls=[0]),
            Slot(
                name="appointment_id",
                kind="record",
                table="Appointment",
                column="appointment_id",
                calls=[1],
                internal_id=True,
            ),
            Slot(name="Appointment.date", kind="descriptor", table="Appointment", column="date"),
        ],
        instruction="I'm {patient_id}. Check my appointment on {Appointment.date}.",
    )
    inst = Instance(
        instance_id="1" * 16,
        template_id=tpl.template_id,
        user_id="PAT-1",
        values={"patient_id": "PAT-1", "appointment_id": "APT-7", "Appointment.date": "2025-07-01"},
        records={
            "Patient": {
                "patient_id": "PAT-1",
                "full_name": "Maria Wilson",
                "home_address": "3246 Chad Village Apt. 172",
                "phone": "+1-902-181-0132",
            },
            "Appointment": {"appointment_id": "APT-7", "patient_id": "PAT-1", "date": "2025-07-01"},
        },
        calls=[],
    )

    def draft(facts):
        return QueryDraft(
            persona=Persona(name="Maria Wilson", manner="calm"),
            reason_for_call="Plans changed.",
            instruction="I'm PAT-1. Check my appointment on 2025-07-01.",
            known_facts=[KnownFact(fact=f, value=v) for f, v in facts],
            first_message="Hi there.",
        )

    return tpl, inst, draft


def test_query_may_state_the_users_own_address_but_not_an_invented_one():
    from agentskiller.steps.tasks.s17_queries import check_query

    tpl, inst, draft = _address_case()
    ok = draft([("your home address", "3246 Chad Village Apt. 172"), ("your phone", "+1-902-181-0132")])
    assert check_query(ok, tpl, inst) == []
    errors = check_query(draft([("your home address", "3247 Chad Village Apt. 172")]), tpl, inst)
    assert errors and "'3247' (number) is not a value of this task" in errors[0]


def test_relationship_key_of_a_touched_record_stays_private():
    from agentskiller.steps.tasks.s17_queries import check_query, forbidden_ids

    tpl, inst, draft = _address_case()
    rel = {"Appointment": "appointment_id"}
    assert forbidden_ids(tpl, inst, rel) == {"appointment_id": "APT-7"}
    tpl2 = tpl.model_copy(update={"slots": [s for s in tpl.slots if s.name != "appointment_id"]})
    assert forbidden_ids(tpl2, inst, rel) == {"Appointment.appointment_id": "APT-7"}
    assert any("internal" in e for e in check_query(draft([("reference", "APT-7")]), tpl2, inst, rel))
    held = tpl.model_copy(update={"user_holds": ["appointment_id"]})
    assert forbidden_ids(held, inst, rel) == {}


def test_update_with_only_optional_values_still_writes_one(tmp_path):
    """amend / modify tools whose new values are all optional: the template must give one
    (writer check + judge), and s15 fills one even when the wording does not."""
    import random

    from agentskiller.models.tasks import TaskTemplate
    from agentskiller.steps.tasks.s15_instances import make_instances
    from agentskiller.steps.tasks.s17_queries import required_values

    copy_fixture(tmp_path)
    bp_path = tmp_path / f"blueprints/{ENV}.json"
    bp = json.loads(bp_path.read_text())
    for t in bp["tools"]:
        if t["name"] == "reschedule_appointment":
            t["parameters"][1]["required"] = False
    bp_path.write_text(json.dumps(bp))
    view = EnvView.load(ENV, bp_path, tmp_path / f"servers/{ENV}/report.json")
    traj = ["authorize_patient", "get_appointment", "reschedule_appointment"]
    slots = trajectory_slots(view, traj)
    silent = (
        "Hi, I'm {Patient.full_name}, patient ID {patient_id}. Check my appointment on {Appointment.date} and move it."
    )
    kinds = ["authorize", "read", "update"]
    assert any(
        "gives no new value" in e
        for e in check_draft(TemplateDraft(instruction=silent, reason_for_call="x"), slots, kinds)
    )
    assert not check_draft(TemplateDraft(instruction=silent + " To {new_date}.", reason_for_call="x"), slots, kinds)
    ctx = base_context(view, traj, slots, "")
    v = judge_template(
        {
            **ctx,
            "criteria": list(CRITERIA),
            "template": {"instruction": silent, "reason_for_call": "Plans changed.", "user_holds": []},
        }
    )
    assert v["trajectory_faithful"] <= 2 and any("new value" in p for p in v["problems"])
    tpl = TaskTemplate(template_id="0" * 16, trajectory=traj, slots=slots, status="accepted", instruction=silent)
    insts, reasons = make_instances(view, view.load_tables(), tpl, ["action"] * 3, random.Random(3))
    assert insts, reasons
    for inst in insts:
        assert inst.values["new_date"] > SIM and inst.values["new_date"] != inst.values["Appointment.date"]
        # the user names the appointment by its date: a lookup lists it before the calls need its ID
        names = [c.name for c in inst.calls]
        assert names == ["authorize_patient", "list_appointments", "get_appointment", "reschedule_appointment"]
        assert inst.calls[3].arguments["new_date"] == inst.values["new_date"]
        assert required_values(tpl, inst)["new_date"] == inst.values["new_date"]  # s17 must state it
        # the records the touched appointment points at come along (s17 may quote them)
        assert inst.records["Clinician"]["clinician_id"] == inst.records["Appointment"]["clinician_id"]

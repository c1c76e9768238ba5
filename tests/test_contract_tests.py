"""Contract tests (s09): derived deterministically, pass on correct code, catch real bugs.

The tool code under test is the offline writer's output for the fixture domain, with one
bug injected per case (text edits of the generated module). Episodes run through the
runtime worker's in-process path here (our own trusted code, fast); the s09 tests cover the
sandboxed path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentskiller.llm.offline.codegen_tools import write_tools_module
from agentskiller.models.blueprint import Blueprint
from agentskiller.runtime.loader import compare_tool_lists, tool_specs_from_file
from agentskiller.runtime.worker import execute_episodes_inprocess
from agentskiller.steps.domains import contract_tests as ct
from agentskiller.steps.domains.s09_server import environment_manifest, policy_sections

FIXTURE = Path(__file__).parent / "fixtures" / "s09" / "outputs"
DOMAIN = "DentalCare"
SIM_TIME = "2025-06-02T09:00:00Z"


def _blueprint() -> Blueprint:
    data = json.loads((FIXTURE / "blueprints" / f"{DOMAIN}.json").read_text())
    return Blueprint.model_validate({k: v for k, v in data.items() if k not in ("status", "meta")})


def _files(bp: Blueprint) -> dict[str, Path]:
    files = {e: (FIXTURE / "database" / "entities" / f"{e}.json").resolve() for e in bp.entities}
    files.update({r.name: (FIXTURE / "database" / DOMAIN / f"{r.name}.json").resolve() for r in bp.relationships})
    return files


def _data(bp: Blueprint) -> ct.DomainData:
    tables = {}
    for name, path in _files(bp).items():
        d = json.loads(path.read_text())
        tables[name] = (d["primary_key"], d["records"])
    return ct.DomainData(tables)


@pytest.fixture(scope="module")
def setup():
    bp = _blueprint()
    policy = policy_sections((FIXTURE / "policies" / f"{DOMAIN}.md").read_text())
    plan = ct.derive_tests(bp, _data(bp), policy, SIM_TIME)
    expected = json.loads((FIXTURE / "tool_lists" / f"{DOMAIN}.json").read_text())["tools"]
    return bp, plan, write_tools_module(bp), expected


def run_plan(tmp_path: Path, bp: Blueprint, plan: ct.TestPlan, code: str, expected: list[dict]) -> dict[str, dict]:
    d = tmp_path / "server"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "tools.py").write_text(code)
    (d / "report.json").write_text(
        json.dumps({"status": "passed", "environment": environment_manifest(bp, _files(bp), d, SIM_TIME)})
    )
    eps = execute_episodes_inprocess(d, [e.as_json() for e in plan.episodes])
    outcome = {e.id: [c.model_dump() for c in e.calls] for e in eps}
    results = ct.evaluate(plan, outcome)
    specs = tool_specs_from_file(d / "tools.py")
    results.append(ct.tool_list_test(expected, specs, compare_tool_lists(expected, specs)))
    return {r["id"]: r for r in results}


def failing(results: dict[str, dict]) -> set[str]:
    return {k for k, r in results.items() if not r["passed"]}


def test_derivation_is_deterministic_and_covers_every_tool(setup):
    bp, plan, _, _ = setup
    again = ct.derive_tests(bp, _data(bp), {}, SIM_TIME)
    assert [t.id for t in plan.tests] == [t.id for t in again.tests]
    assert [e.as_json() for e in plan.episodes] == [e.as_json() for e in again.episodes]
    ids = {t.id for t in plan.tests}
    assert len(ids) == len(plan.tests), "test ids are unique"
    for tool in bp.tools:
        assert f"{tool.name}.valid" in ids, tool.name
        if tool.requires_auth:
            assert f"{tool.name}.requires_auth" in ids
        if tool.kind in ct.READ_ONLY_KINDS:
            assert f"{tool.name}.read_only" in ids
        else:
            assert f"{tool.name}.writes_declared" in ids
        if tool.kind in ("read", "update", "delete"):
            assert f"{tool.name}.unknown_id" in ids
            # ownership only where the user owns records (not for the Dentist catalogue)
            owned = tool.table in ("Patient", "Appointment", "Invoice")
            assert (f"{tool.name}.ownership" in ids) == owned, tool.name
        if tool.preconditions:
            assert f"{tool.name}.precondition" in ids
    assert "book_appointment.dentist_id.exists.refused_unknown" in ids
    assert "book_appointment.duration_minutes.range.refused_above_max" in ids
    assert "book_appointment.duration_minutes.range.accepted_at_max" in ids
    # valid calls authorize first as a user who owns a suitable record
    ep = next(e for e in plan.episodes if e.id == "cancel_appointment/valid")
    assert ep.calls[0]["tool"] == "authorize_patient"
    appts = {
        r["appointment_id"]: r
        for r in json.loads((FIXTURE / "database" / DOMAIN / "Appointment.json").read_text())["records"]
    }
    target = appts[ep.calls[1]["arguments"]["appointment_id"]]
    assert target["status"] == "scheduled"
    assert target["patient_id"] == ep.calls[0]["arguments"]["patient_id"]


def test_correct_code_passes_everything(tmp_path, setup):
    bp, plan, code, expected = setup
    results = run_plan(tmp_path, bp, plan, code, expected)
    assert failing(results) == set(), [results[k] for k in failing(results)]
    assert len(results) == len(plan.tests) + 1


def _mutate(code: str, old: str, new: str, count: int = 1) -> str:
    assert old in code, old
    return code.replace(old, new, count)


#: the Appointment lookup helper every Appointment tool calls: missing and not-yours alike
APPT_LOOKUP = """    if record is None or record.get("patient_id") != user:
        raise ToolError(f"unknown appointment_id: {appointment_id}")
"""

MUTATIONS = {
    # a read tool that writes: the read_only oracle must see it
    "read_mutates_state": (
        "    return _get_appointment(ctx, appointment_id, user)\n",
        "    record = _get_appointment(ctx, appointment_id, user)\n"
        "    ctx.table('Appointment').update(appointment_id, {'duration_minutes': 999})\n"
        "    return record\n",
        {"get_appointment.read_only"},
    ),
    # a crash (AttributeError on None) instead of a ToolError for an unknown ID
    "crash_on_unknown_id": (
        APPT_LOOKUP,
        APPT_LOOKUP.replace("record is None or ", ""),
        {"get_appointment.unknown_id"},
    ),
    "no_ownership_check": (
        APPT_LOOKUP,
        APPT_LOOKUP.replace(' or record.get("patient_id") != user', ""),
        {"get_appointment.ownership"},
    ),
    # the privacy rule: another person's appointment refused with a message that gives it away
    "leaks_existence": (
        APPT_LOOKUP,
        """    if record is None:
        raise ToolError(f"unknown appointment_id: {appointment_id}")
    if record.get("patient_id") != user:
        raise ToolError(f"appointment {appointment_id} belongs to another patient")
""",
        {"get_appointment.privacy", "cancel_appointment.privacy"},
    ),
    # a list filter that names a dentist: an unknown one must be refused, not answered with []
    "accepts_unknown_filter_id": (
        """    if dentist_id is not None:
        _get_dentist(ctx, dentist_id)
""",
        "",
        {"list_appointments.dentist_id.exists.refused_unknown"},
    ),
    "search_leaks_other_users": (
        '    rows = [r for r in rows if r.get("patient_id") == user]\n    if status is not None:',
        "    if status is not None:",
        {"list_appointments.valid"},
    ),
    "wrong_aggregate": (
        "value = round(sum(values), 6)",
        "value = round(sum(values) + 1, 6)",
        {"total_invoice_amount.valid", "total_invoice_amount.filtered"},
    ),
    "missing_precondition": (
        '    if record.get("status") != "open":',
        "    if False:",
        {"pay_invoice.precondition"},
    ),
    "writes_undeclared_table": (
        '    return ctx.table("Invoice").update(invoice_id, {"status": "paid"})',
        "    ctx.table('Appointment').update('APT-0001', {'status': 'cancelled'})\n"
        '    return ctx.table("Invoice").update(invoice_id, {"status": "paid"})',
        {"pay_invoice.writes_declared"},
    ),
    # get_dentist is the first tool with a bare session check (no ownership to test)
    "no_auth_check": ("    ctx.require_user()\n", "", {"get_dentist.requires_auth"}),
    # book_appointment is the first tool that checks a foreign key (with the Dentist lookup helper)
    "no_fk_check": (
        "    _get_dentist(ctx, dentist_id)\n    record = {",
        "    record = {",
        {"book_appointment.dentist_id.exists.refused_unknown"},
    ),
    "non_json_result": (
        '    return {"deleted": True, "appointment_id": appointment_id}',
        '    return {"deleted": {1, 2}}',
        {"delete_cancelled_appointment.valid"},
    ),
    "signature_drift": (
        "def cancel_appointment(ctx: Context, appointment_id: str)",
        "def cancel_appointment(ctx: Context, appointment: str)",
        {"tool_list.match"},
    ),
    "write_that_does_nothing": (
        '    return ctx.table("Appointment").update(appointment_id, {"date": date})',
        "    return record",
        {"reschedule_appointment.writes_declared"},
    ),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_injected_bug_is_caught(tmp_path, setup, name):
    bp, plan, code, expected = setup
    old, new, must_fail = MUTATIONS[name]
    results = run_plan(tmp_path, bp, plan, _mutate(code, old, new), expected)
    bad = failing(results)
    assert must_fail <= bad, (name, bad)
    for tid in must_fail:
        assert results[tid]["detail"], "a failure says why"


# ----------------------------------------------------------- rules a richer domain has
def _rich_blueprint() -> Blueprint:
    """The fixture with an appointment date that must lie ahead and a free-text note."""
    data = json.loads((FIXTURE / "blueprints" / f"{DOMAIN}.json").read_text())
    appt = next(r for r in data["relationships"] if r["name"] == "Appointment")
    next(c for c in appt["columns"] if c["name"] == "date")["format"] = "future_date"
    appt["columns"].append({"name": "note", "type": "string", "description": "What the visit is for", "nullable": True})
    book = next(t for t in data["tools"] if t["name"] == "book_appointment")
    book["parameters"].append(
        {"name": "note", "type": "string", "description": "What the visit is for.", "column": "note"}
    )
    return Blueprint.model_validate({k: v for k, v in data.items() if k not in ("status", "meta")})


@pytest.fixture(scope="module")
def rich():
    bp = _rich_blueprint()
    plan = ct.derive_tests(bp, _data(bp), {}, SIM_TIME)
    code = write_tools_module(bp)
    return bp, plan, code


RICH_MUTATIONS = {
    "skips_future_time_check": (
        "    if date <= ctx.now[:10]:",
        "    if False:",
        {"book_appointment.date.future.refused_today", "book_appointment.date.future.refused_past"},
    ),
    "accepts_empty_text": (
        "    if not note.strip():",
        "    if False:",
        {"book_appointment.note.not_empty.refused_empty", "book_appointment.note.not_empty.refused_blank"},
    ),
}


def _run_rich(tmp_path: Path, bp: Blueprint, plan: ct.TestPlan, code: str) -> dict[str, dict]:
    d = tmp_path / "rich"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / "tools.py").write_text(code)
    expected = tool_specs_from_file(d / "tools.py") or []
    return run_plan(tmp_path, bp, plan, code, expected)


def test_rich_domain_rules_each_have_refusing_and_accepting_tests(tmp_path, rich):
    from agentskiller.steps.domains.rule_tests import rule_table, untested_rules

    bp, plan, code = rich
    assert untested_rules(plan.rules, plan.tests, plan.skipped) == []
    kinds = {r.kind for r in plan.rules}
    assert {"time", "not_empty", "format", "range", "enum", "exists", "ownership", "privacy"} <= kinds
    results = _run_rich(tmp_path, bp, plan, code)
    assert failing(results) == set(), [results[k] for k in failing(results)]
    table = rule_table(plan.rules, plan.tests, list(results.values()))
    assert all(row["proven"] for row in table)


@pytest.mark.parametrize("name", sorted(RICH_MUTATIONS))
def test_injected_rule_bug_is_caught(tmp_path, rich, name):
    bp, plan, code = rich
    old, new, must_fail = RICH_MUTATIONS[name]
    results = _run_rich(tmp_path, bp, plan, _mutate(code, old, new))
    assert must_fail <= failing(results), (name, failing(results))


def test_missing_episode_results_fail_with_a_reason(setup):
    _, plan, _, _ = setup
    results = ct.evaluate(plan, {plan.episodes[0].id: "worker failed: exited with status 1"})
    assert not any(r["passed"] for r in results)
    assert "worker failed" in results[0]["detail"]
    assert all(r["detail"] for r in results)

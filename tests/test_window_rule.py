"""The check-in window rule (``kind: window``): derived from the blueprint, stated by the policy,
enforced by the generated tool code, proven both ways by the contract tests, and served by the
generated data (a share of the records can be checked in now)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_codegen_data import CAT, blueprint_of, handler_script, make_entity, run_script

from agentskiller.llm import offline
from agentskiller.llm.offline.codegen_relations import relationship_script
from agentskiller.llm.offline.codegen_tools import write_tools_module
from agentskiller.llm.offline.provider import OfflineRequest
from agentskiller.models.blueprint import Blueprint
from agentskiller.models.policy_rules import PolicyRule, derive_rules, is_check_in, rule_marker
from agentskiller.runtime.loader import tool_specs_from_file
from agentskiller.runtime.worker import execute_episodes_inprocess
from agentskiller.steps.domains import contract_tests as ct
from agentskiller.steps.domains import data_checks as dc
from agentskiller.steps.domains import data_rules
from agentskiller.steps.domains import policy_markers as pm
from agentskiller.steps.domains import s06_database as s06
from agentskiller.steps.domains.rule_tests import rule_table, untested_rules, window_side
from agentskiller.steps.domains.s09_server import environment_manifest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "s09" / "outputs"
DOMAIN = "DentalCare"
NOW = "2025-06-02T09:00:00Z"  # a Monday, 09:00
CHECK_IN = "check_in_for_appointment"
#: the fixture's scheduled appointments: APT-0003 (PAT-004) is moved inside the window, APT-0006 (June 7) stays far
INSIDE, FAR = "APT-0003", "APT-0006"


# ------------------------------------------------------------------ a check-in domain
def checkin_blueprint(kind: str) -> Blueprint:
    """The s09 fixture domain with a check-in tool; the appointment's ``date`` is a future
    date-time (``kind == "datetime"``) or a future date."""
    data = json.loads((FIXTURE / "blueprints" / f"{DOMAIN}.json").read_text())
    appt = next(r for r in data["relationships"] if r["name"] == "Appointment")
    date = next(c for c in appt["columns"] if c["name"] == "date")
    date["format"] = f"future_{kind}"
    date["type"] = kind
    next(c for c in appt["columns"] if c["name"] == "status")["enum"].append("checked_in")
    for t in data["tools"]:
        for p in t["parameters"]:
            if p.get("column") == "date":
                p["type"] = kind
    data["tools"].append(
        {
            "name": CHECK_IN,
            "kind": "update",
            "table": "Appointment",
            "description": "Check in for a scheduled appointment.",
            "parameters": [
                {
                    "name": "appointment_id",
                    "type": "string",
                    "description": "The appointment's ID.",
                    "column": "appointment_id",
                }
            ],
            "preconditions": [{"column": "status", "values": ["scheduled"]}],
            "effects": {"status": "checked_in"},
            "reads": ["Appointment"],
            "writes": ["Appointment"],
            "returns": "The checked-in appointment.",
        }
    )
    return Blueprint.model_validate({k: v for k, v in data.items() if k not in ("status", "meta")})


def checkin_tables(kind: str, tmp: Path, inside: bool = True) -> dict[str, Path]:
    """The fixture tables, the appointments' days as ``kind``; with ``inside``, APT-0003 lies
    inside the check-in window (this afternoon, or tomorrow for a date). No record that fails
    the check-in's status lies inside the window (APT-0001 and APT-0002 move to yesterday)."""
    bp = checkin_blueprint(kind)
    files = {e: (FIXTURE / "database" / "entities" / f"{e}.json").resolve() for e in bp.entities}
    files.update({r.name: (FIXTURE / "database" / DOMAIN / f"{r.name}.json").resolve() for r in bp.relationships})
    table = json.loads(files["Appointment"].read_text())
    for rec in table["records"]:
        if kind == "datetime":
            rec["date"] = f"{rec['date']}T10:00:00Z"
        if rec["status"] != "scheduled" and rec["date"][:10] in ("2025-06-02", "2025-06-03"):
            rec["date"] = "2025-06-01T10:00:00Z" if kind == "datetime" else "2025-06-01"  # yesterday
        if inside and rec["appointment_id"] == INSIDE:
            rec["date"] = "2025-06-02T15:00:00Z" if kind == "datetime" else "2025-06-03"
    tmp.mkdir(parents=True, exist_ok=True)
    files["Appointment"] = tmp / "Appointment.json"
    files["Appointment"].write_text(json.dumps(table))
    return files


def domain_data(files: dict[str, Path]) -> ct.DomainData:
    tables = {}
    for name, path in files.items():
        d = json.loads(path.read_text())
        tables[name] = (d["primary_key"], d["records"])
    return ct.DomainData(tables)


def run_plan(tmp: Path, bp: Blueprint, files: dict[str, Path], plan: ct.TestPlan, code: str) -> dict[str, dict]:
    d = tmp / "server"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / "tools.py").write_text(code)
    (d / "report.json").write_text(
        json.dumps({"status": "passed", "environment": environment_manifest(bp, files, d, NOW)})
    )
    assert tool_specs_from_file(d / "tools.py")
    eps = execute_episodes_inprocess(d, [e.as_json() for e in plan.episodes])
    results = ct.evaluate(plan, {e.id: [c.model_dump() for c in e.calls] for e in eps})
    return {r["id"]: r for r in results}


def failing(results: dict[str, dict]) -> set[str]:
    return {k for k, r in results.items() if not r["passed"]}


@pytest.fixture(scope="module", params=["datetime", "date"])
def checkin(request, tmp_path_factory):
    kind = request.param
    bp = checkin_blueprint(kind)
    files = checkin_tables(kind, tmp_path_factory.mktemp(f"tables-{kind}"))
    rules = derive_rules(bp, {})
    plan = ct.derive_tests(bp, domain_data(files), {}, NOW, rules)
    return kind, bp, files, rules, plan, write_tools_module(bp, rules=rules)


# ------------------------------------------------------------------ the rule
def test_check_in_names_are_matched_narrowly():
    for name in ("check_in_for_appointment", "check_in_to_reservation", "checkin_guest", "check_in"):
        assert is_check_in(name), name
    for name in ("check_insurance", "checkout_guest", "cancel_appointment", "recheck_invoice", "check_status_in"):
        assert not is_check_in(name), name


def test_a_check_in_tool_gets_a_window_rule_on_the_time_column(checkin):
    kind, bp, _, rules, _, _ = checkin
    window = [r for r in rules if r.kind == "window"]
    assert window == [
        PolicyRule(
            id=f"{CHECK_IN}.window", kind="window", tool=CHECK_IN, table="Appointment", column="date", within_hours=24.0
        )
    ]
    # only the check-in tool: cancel and reschedule act on the same table without a window
    assert not any(r.kind == "window" for r in rules if r.tool != CHECK_IN)


def test_window_rules_need_an_update_on_a_timed_relationship():
    data = json.loads((FIXTURE / "blueprints" / f"{DOMAIN}.json").read_text())
    # the fixture's Appointment.date has no future format and an unspecific name: no time column
    data["tools"].append({**next(t for t in data["tools"] if t["name"] == "cancel_appointment"), "name": CHECK_IN})
    bp = Blueprint.model_validate({k: v for k, v in data.items() if k not in ("status", "meta")})
    assert not any(r.kind == "window" for r in derive_rules(bp, {}))
    # the default domains: DentalCareDesk checks in for its appointments, by scheduled_at
    dental = derive_rules(blueprint_of("DentalCareDesk"), {})
    assert [(r.id, r.column, r.within_hours) for r in dental if r.kind == "window"] == [
        ("check_in_for_appointment.window", "scheduled_at", 24.0)
    ]
    # a hotel: a date-only check_in_date, through a check-in tool added to the blueprint
    stay = blueprint_of("StayReservationDesk").model_dump()
    cancel = next(t for t in stay["tools"] if t["name"] == "cancel_reservation")
    stay["tools"].append({**cancel, "name": "check_in_to_reservation", "effects": {"status": "checked_in"}})
    hotel = derive_rules(Blueprint.model_validate(stay), {})
    assert [(r.id, r.column) for r in hotel if r.kind == "window"] == [
        ("check_in_to_reservation.window", "check_in_date")
    ]


def test_window_sides_follow_the_rule():
    rule = PolicyRule(id="t.window", kind="window", tool="t", table="T", column="c", within_hours=24.0)
    assert window_side(rule, "datetime", NOW, NOW) is None  # the current time itself: the window's start
    assert window_side(rule, "datetime", "2025-06-03T09:00:00Z", NOW) is None  # its end
    assert window_side(rule, "datetime", "2025-06-03T09:00:01Z", NOW) == "too_early"
    assert window_side(rule, "datetime", "2025-06-02T08:59:59Z", NOW) == "passed"
    # a date counts as its whole day: today and tomorrow (24 hours from 09:00 ends tomorrow)
    assert [window_side(rule, "date", d, NOW) for d in ("2025-06-01", "2025-06-02", "2025-06-03", "2025-06-04")] == [
        "passed",
        None,
        None,
        "too_early",
    ]
    assert window_side(rule, "datetime", None, NOW) == window_side(rule, "date", "06/02/2025", NOW) == "no_time"


# ------------------------------------------------------------------ the policy
def _policy(bp: Blueprint, rules: list[PolicyRule], kind: str) -> str:
    offline.load_handlers()
    context = {
        "blueprint": bp.model_dump(exclude_none=True),
        "database": {},
        "simulation_time": NOW,
        "tools": [t.name for t in bp.tools],
        "rules": [r.model_dump(exclude_defaults=True) for r in rules],
    }
    req = OfflineRequest(
        task="s07.policy", messages=[{"role": "user", "content": "x"}], context=context, rng=random.Random(1)
    )
    return pm.strip_fence(offline.get_handler("s07.policy")(req))


def _schema(bp: Blueprint, files: dict[str, Path]) -> pm.PolicySchema:
    summary = {"tables": {}}
    for name, path in files.items():
        rec = json.loads(path.read_text())["records"][0]
        summary["tables"][name] = {"columns": {c: {} for c in rec}}
    return pm.PolicySchema.from_blueprint(bp, {}, summary)


def test_the_policy_states_the_window_on_a_marked_line(checkin):
    kind, bp, files, rules, _, _ = checkin
    text = _policy(bp, rules, kind)
    schema = _schema(bp, files)
    assert pm.check_policy(text, schema, rules) == []
    section, line = pm.stated_rules(text)[f"{CHECK_IN}.window"]
    assert section == CHECK_IN
    assert "Check-in opens 24 hours before" in line and "`Appointment.date`" in line and NOW in line
    if kind == "date":
        assert "the whole day counts" in line
    # the line sits among the preconditions, after the status it needs
    sec = pm.parse_policy(text).sections[CHECK_IN]
    assert sec.index("`Appointment.status` is `scheduled`") < sec.index("Check-in opens") < sec.index("**Input")
    assert "`Appointment.date` is more than 24 hours away or has already passed" in sec


def test_a_window_marker_on_a_line_that_says_something_else_is_caught(checkin):
    kind, bp, files, rules, _, _ = checkin
    text = _policy(bp, rules, kind)
    schema = _schema(bp, files)
    _, line = pm.stated_rules(text)[f"{CHECK_IN}.window"]
    marker = rule_marker(f"{CHECK_IN}.window")
    wrong = f"- `Appointment.date` must lie after the current time ({NOW}). {marker}"
    errors = pm.check_policy(text.replace(line, wrong), schema, rules)
    assert any(f"the line marked {marker} does not state its rule" in e and "24 hours before" in e for e in errors)
    other = "- Check-in opens 48 hours before `Appointment.date`, counted from the current time. " + marker
    errors = pm.check_policy(text.replace(line, other), schema, rules)
    assert any("check-in opens 24 hours before" in e for e in errors), errors
    # the statement without its marker: a window rule the policy states unmarked
    errors = pm.check_policy(text.replace(line, pm.strip_rule_markers(line)), schema, rules)
    assert any(f"rule {CHECK_IN}.window is not stated" in e for e in errors)
    assert any("states a window rule without its marker" in e for e in errors)


def test_the_policy_prompts_name_the_kind():
    s07 = (ROOT / "agentskiller" / "prompts" / "s07.yaml").read_text()
    s09 = (ROOT / "agentskiller" / "prompts" / "s09.yaml").read_text()
    s06y = (ROOT / "agentskiller" / "prompts" / "s06.yaml").read_text()
    assert "`window` rule" in s07 and "Check-in opens <within_hours> hours" in s07
    assert "check-in window" in s09 and "within_hours" in s09
    assert '"window" in the input data' in s06y and '"share"' in s06y


# ------------------------------------------------------------------ the tool code
def test_the_code_checks_the_window_after_loading_the_record(checkin, tmp_path):
    kind, _, _, _, _, code = checkin
    body = code[code.index(f"def {CHECK_IN}(") :]
    body = body[: body.index("\n@tool") if "\n@tool" in body else len(body)]
    helper = "_within_hours" if kind == "datetime" else "_day_within_hours"
    check = f'if not {helper}(record.get("date"), ctx.now, 24):'
    assert check in body
    assert body.index("record = _get_appointment(ctx, appointment_id, user)") < body.index('if record.get("status")')
    assert body.index('if record.get("status")') < body.index(check) < body.index(".update(appointment_id")
    assert "check-in opens 24 hours before the appointment's" in body
    assert f"def {helper}(value: object, now: str, hours: float) -> bool:" in code
    # the other tools of the table carry no window
    assert code.count(f"{helper}(record.get(") == 1
    # the module is still ruff-clean with the repo's settings
    ruff = pytest.importorskip("ruff.__main__").find_ruff_bin()
    path = tmp_path / "tools.py"
    path.write_text(code)
    config = str(ROOT / "pyproject.toml")
    for args in (["format", "--check", "--diff"], ["check", "--no-cache"]):
        res = subprocess.run([str(ruff), *args, "--config", config, str(path)], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr


# ------------------------------------------------------------------ the contract tests
def test_the_window_is_proven_both_ways(checkin, tmp_path):
    kind, bp, files, rules, plan, code = checkin
    ids = {t.id for t in plan.tests}
    assert {f"{CHECK_IN}.window.accepted_inside", f"{CHECK_IN}.window.refused_too_early"} <= ids
    assert untested_rules(plan.rules, plan.tests, plan.skipped) == []
    # the valid call takes the record inside the window; the refused one meets the status but lies far
    valid = next(e for e in plan.episodes if e.id == f"{CHECK_IN}/valid")
    far = next(e for e in plan.episodes if e.id == f"{CHECK_IN}.window/too_early")
    assert valid.calls[-1]["arguments"] == {"appointment_id": INSIDE}
    assert far.calls[-1]["arguments"] == {"appointment_id": FAR}
    assert far.calls[0]["arguments"] == {"patient_id": "PAT-001"}  # FAR's owner logs in
    results = run_plan(tmp_path, bp, files, plan, code)
    assert failing(results) == set(), [results[k] for k in failing(results)]
    row = next(r for r in rule_table(plan.rules, plan.tests, list(results.values())) if r["kind"] == "window")
    assert row["proven"] and row["refusing_tests"] and row["accepting_tests"]
    # the precondition test uses a record inside the window, so only the status check refuses it:
    # none fails the status there, so another write (a cancel) moves the one inside out of it
    pre = next(e for e in plan.episodes if e.id == f"{CHECK_IN}/precondition")
    assert pre.calls[-1]["arguments"] == {"appointment_id": INSIDE}
    assert pre.calls[1]["tool"] == "cancel_appointment"


WINDOW_BUGS = {
    "no_window_check": ("    if not {helper}(", "    if False and not {helper}(", {"window.refused_too_early"}),
    "window_inverted": (
        "    if not {helper}(",
        "    if {helper}(",
        {"window.refused_too_early", "window.accepted_inside", "valid"},
    ),
}


@pytest.mark.parametrize("name", sorted(WINDOW_BUGS))
def test_a_server_that_does_not_keep_the_window_fails(checkin, tmp_path, name):
    kind, bp, files, _, plan, code = checkin
    helper = "_within_hours" if kind == "datetime" else "_day_within_hours"
    old, new, must_fail = (x.format(helper=helper) if isinstance(x, str) else x for x in WINDOW_BUGS[name])
    assert code.count(old) == 1
    results = run_plan(tmp_path, bp, files, plan, code.replace(old, new))
    assert {f"{CHECK_IN}.{t}" for t in must_fail} <= failing(results)


def test_without_a_record_inside_the_window_the_rule_is_untested(tmp_path):
    bp = checkin_blueprint("datetime")
    files = checkin_tables("datetime", tmp_path, inside=False)
    plan = ct.derive_tests(bp, domain_data(files), {}, NOW, derive_rules(bp, {}))
    skipped = {s["id"]: s["reason"] for s in plan.skipped}
    assert "inside its check-in window" in skipped[f"{CHECK_IN}.valid"]
    assert any(
        f"rule {CHECK_IN}.window has no accepting test" in u
        for u in untested_rules(plan.rules, plan.tests, plan.skipped)
    )


# ------------------------------------------------------------------ the data
def _in_window(rows: list[dict], column: str, kind: str, now: str = NOW) -> list[dict]:
    t = data_rules.parse_datetime(now)
    return [r for r in rows if r["status"] == "scheduled" and data_rules.in_window(kind, r[column], t, 24)]


def test_s06_asks_for_records_inside_the_window(tmp_path):
    bp = blueprint_of("DentalCareDesk")
    entities = {n: CAT.entities[n] for n in bp.entities}
    rel = bp.relationship("DentalAppointment")
    ctx = s06.relationship_context(bp, rel, entities, 40, 5, NOW)
    assert ctx["window"] == {
        "tool": "check_in_for_appointment",
        "column": "scheduled_at",
        "within_hours": 24.0,
        "status_column": "status",
        "statuses": ["scheduled"],
        "share": data_rules.WINDOW_SHARE,
    }
    assert s06.relationship_spec(bp, rel, entities).window == ctx["window"]
    # tables without a check-in tool get no window
    other = blueprint_of("MentorMatchLearning")
    ents = {n: CAT.entities[n] for n in other.entities}
    assert "window" not in s06.relationship_context(other, other.relationship("MentorSession"), ents, 40, 5, NOW)


def _dental_records(tmp_path: Path, now: str, count: int = 40) -> tuple[list[dict], dc.TableSpec, dict]:
    bp = blueprint_of("DentalCareDesk")
    entities = {n: CAT.entities[n] for n in bp.entities}
    rel = bp.relationship("DentalAppointment")
    tables = {n: make_entity(tmp_path, n, seed=i) for i, n in enumerate(bp.entities)}
    ctx = s06.relationship_context(bp, rel, entities, count, 5, now)
    code = handler_script("s06.relationship_script", ctx)
    refs = set(rel.foreign_keys().values())
    records = run_script(code, tmp_path, rel.name, {e: tables[e][0] for e in refs})
    by_key = {e: {r[entities[e].primary_key]: r for r in tables[e][1]} for e in refs}
    fk_values = {col: set(by_key[e]) for col, e in rel.foreign_keys().items()}
    spec = s06.relationship_spec(bp, rel, entities)
    assert dc.check_records(records, spec, count, fk_values, now, by_key) == []
    return records, spec, ctx


def test_a_share_of_the_appointments_can_be_checked_in_now(tmp_path):
    records, spec, _ = _dental_records(tmp_path, NOW)
    ready = _in_window(records, "scheduled_at", "datetime")
    assert 0.15 * len(records) <= len(ready) <= 0.25 * len(records)
    for r in ready:  # inside the window, and still in business hours on a quarter hour
        t = data_rules.parse_datetime(r["scheduled_at"])
        assert t > data_rules.parse_datetime(NOW) and t.weekday() < 6 and 7 <= t.hour <= 19 and t.minute % 15 == 0
    # the rest stays as before: history and appointments further ahead
    rest = [r for r in records if r not in ready]
    assert {r["status"] for r in rest} >= {"scheduled", "completed"}
    assert any(r["scheduled_at"] > "2025-06-04" for r in rest if r["status"] == "scheduled")
    # the check counts them: without those rows the table fails
    problems = dc.check_records(rest, spec, None, None, NOW)
    assert len(problems) == 1 and "can be checked in now (check_in_for_appointment)" in problems[0]


def test_a_window_without_business_hours_has_no_ready_rows_and_no_check(tmp_path):
    late = "2025-06-07T21:00:00Z"  # Saturday evening: the next business hour is Monday 07:00
    assert not data_rules.window_open("datetime", data_rules.parse_datetime(late), 24)
    records, _, _ = _dental_records(tmp_path, late)
    assert _in_window(records, "scheduled_at", "datetime", late) == []
    friday = data_rules.parse_datetime("2025-06-06T21:00:00Z")
    assert data_rules.window_open("datetime", friday, 24)  # Saturday morning is open


def test_a_date_window_counts_whole_days(tmp_path):
    """A hotel's check_in_date: the ready rows arrive today or tomorrow, still reserved."""
    stay = blueprint_of("StayReservationDesk").model_dump()
    cancel = next(t for t in stay["tools"] if t["name"] == "cancel_reservation")
    stay["tools"].append({**cancel, "name": "check_in_to_reservation", "effects": {"status": "checked_in"}})
    bp = Blueprint.model_validate(stay)
    entities = {n: CAT.entities[n] for n in bp.entities}
    rel = bp.relationship("HotelReservation")
    ctx = s06.relationship_context(bp, rel, entities, 40, 5, NOW)
    assert ctx["window"]["column"] == "check_in_date" and ctx["window"]["statuses"] == ["reserved"]
    tables = {n: make_entity(tmp_path, n, seed=i) for i, n in enumerate(bp.entities)}
    refs = set(rel.foreign_keys().values())
    records = run_script(
        handler_script("s06.relationship_script", ctx), tmp_path, rel.name, {e: tables[e][0] for e in refs}
    )
    by_key = {e: {r[entities[e].primary_key]: r for r in tables[e][1]} for e in refs}
    spec = s06.relationship_spec(bp, rel, entities)
    assert dc.check_records(records, spec, 40, None, NOW, by_key) == []
    now = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
    ready = [
        r for r in records if r["status"] == "reserved" and data_rules.in_window("date", r["check_in_date"], now, 24)
    ]
    assert 0.15 * 40 <= len(ready) <= 0.25 * 40 + 2  # a few ordinary reservations may arrive tomorrow too
    assert {r["check_in_date"] for r in ready} <= {"2025-06-02", (now + timedelta(days=1)).date().isoformat()}


def test_the_generator_ignores_a_window_on_another_column():
    rel = blueprint_of("DentalCareDesk").relationship("DentalAppointment")
    window = {"column": "not_the_scheduled_column", "within_hours": 24, "statuses": ["scheduled"], "share": 0.2}
    code = relationship_script(rel, {}, 10, 1, NOW, window=window)
    assert "WINDOW_HOURS" not in code and code == relationship_script(rel, {}, 10, 1, NOW)

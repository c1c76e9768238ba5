"""The offline tool-code writer (s09): the generated tools.py reads like a hand-written toolkit.

It passes ``ruff format --check`` and ``ruff check`` with the repo's settings, keeps lines within
120 columns, writes each table's lookup (get, not found, not yours) once, and the shapes the
fixture domain lacks (a column enum the parameter does not carry, optional update values, an
array enum, a datetime, a parameter named like a body variable, a long signature) still pass
their contract tests.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from agentskiller.llm.offline.codegen_tools import example_id, py_str, write_tools_module
from agentskiller.models.blueprint import Blueprint
from agentskiller.runtime.loader import compare_tool_lists, tool_specs_from_file
from agentskiller.runtime.worker import execute_episodes_inprocess
from agentskiller.steps.catalog.s05_tool_lists import tool_list
from agentskiller.steps.domains import contract_tests as ct
from agentskiller.steps.domains.s09_server import environment_manifest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "s09" / "outputs"
CROSS = Path(__file__).parent / "fixtures" / "cross" / "outputs" / "blueprints"
DOMAIN = "DentalCare"
SIM_TIME = "2025-06-02T09:00:00Z"


def _raw_blueprint(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in ("status", "reason", "meta")}


def _param(name: str, type_: str, description: str, required: bool = False, **kw) -> dict:
    return {"name": name, "type": type_, "description": description, "required": required, **kw}


def variant_blueprint() -> Blueprint:
    """The fixture domain plus tools of the shapes it lacks."""
    bp = _raw_blueprint(FIXTURE / "blueprints" / f"{DOMAIN}.json")
    appt = next(r for r in bp["relationships"] if r["name"] == "Appointment")
    appt["columns"].append(
        {"name": "checked_in_at", "type": "datetime", "description": "Arrival time.", "nullable": True}
    )
    bp["tools"] += [
        {
            "name": "update_appointment",
            "description": "Change the status, length, dentist or arrival time of an appointment.",
            "kind": "update",
            "table": "Appointment",
            "reads": ["Appointment", "Dentist"],
            "writes": ["Appointment"],
            "parameters": [
                _param("appointment_id", "string", "The appointment's ID.", True, column="appointment_id"),
                # the column's enum, not carried by the parameter: the body checks it
                _param("status", "string", "The new status.", column="status"),
                _param("duration_minutes", "integer", "The new length.", column="duration_minutes"),
                _param("dentist_id", "string", "Another dentist.", column="dentist_id"),
                # named like the body's session variable
                _param("user", "datetime", "Arrival time (ISO 8601).", column="checked_in_at"),
            ],
            "returns": "The updated appointment.",
        },
        {
            "name": "average_appointment_length_by_many_filters",
            "description": "Average planned length of the authorized patient's appointments, optionally "
            "filtered by statuses, dentist, day and length; a long description that has to wrap onto a "
            "second line of the docstring.",
            "kind": "compute",
            "table": "Appointment",
            "reads": ["Appointment"],
            "writes": [],
            "parameters": [
                _param(
                    "statuses",
                    "array",
                    "Only these statuses.",
                    items="string",
                    enum=["scheduled", "completed", "cancelled"],
                    column="status",
                ),
                _param("dentist_id", "string", "Only this dentist.", column="dentist_id"),
                _param("date", "date", "Only this day (YYYY-MM-DD).", column="date"),
                _param("duration_minutes", "integer", "Only this length.", column="duration_minutes"),
                _param("rows", "string", "Only this status (a filter named like the body's list).", column="status"),
            ],
            "aggregate": "avg",
            "aggregate_column": "duration_minutes",
            "returns": "The average length and the number of appointments.",
        },
    ]
    return Blueprint.model_validate(bp)


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


def _modules() -> dict[str, str]:
    """Generated modules: the fixture domain, its variant and the cross fixture's blueprints."""
    out = {
        DOMAIN: write_tools_module(_raw_blueprint(FIXTURE / "blueprints" / f"{DOMAIN}.json")),
        "variant": write_tools_module(variant_blueprint(), id_examples={"Patient": "PAT-017", "Dentist": "D-3"}),
    }
    for path in sorted(CROSS.glob("*.json")):
        if path.name != "index.json":
            out[path.stem] = write_tools_module(_raw_blueprint(path))
    return out


def _ruff() -> str:
    pytest.importorskip("ruff")
    from ruff.__main__ import find_ruff_bin

    return str(find_ruff_bin())


def test_generated_modules_pass_ruff_with_the_repo_settings(tmp_path):
    ruff = _ruff()
    for name, code in _modules().items():
        (tmp_path / f"{name}.py").write_text(code)
    config = str(ROOT / "pyproject.toml")
    files = sorted(str(p) for p in tmp_path.glob("*.py"))
    fmt = subprocess.run(
        [ruff, "format", "--check", "--diff", "--config", config, *files], capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    lint = subprocess.run([ruff, "check", "--no-cache", "--config", config, *files], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_generated_modules_read_like_a_toolkit():
    for name, code in _modules().items():
        lines = code.splitlines()
        assert max(map(len, lines)) <= 120, name
        assert not any(ln.lstrip().startswith("# Policy") for ln in lines), name
        # the ownership refusal is written once per owned table that some tool looks up, and
        # says exactly what a missing record's refusal says (the privacy rule)
        helpers = re.findall(r"^def (_get_\w+)\(ctx: Context, \w+: \w+, user: ", code, flags=re.M)
        assert len(re.findall(r"if record is None or (user is not None and )?record\.get\(", code)) == len(helpers), (
            name
        )
        assert "does not belong" not in code, name
        assert not re.search(r"changes = \{\}\n +changes\[", code), name  # a dict literal says it at once
        # the writer's own English (tool docstrings are the blueprint's, frozen in the cross fixture)
        own = [ln for ln in lines if "ToolError(" in ln or re.match(r'\s*(f"|"[^"]|"""The )', ln)]
        assert own and not any(re.search(r"\ba [aeiou]", ln, flags=re.I) for ln in own), name
    variant = _modules()["variant"]
    # an enum parameter is typed with its alias; only the column enum it does not carry is checked in a body
    assert 'AppointmentStatus = Literal["scheduled", "completed", "cancelled"]' in variant
    assert "statuses: list[AppointmentStatus] | None = None" in variant
    assert "APPOINTMENT_STATUSES = get_args(AppointmentStatus)" in variant
    assert "if status is not None and status not in APPOINTMENT_STATUSES:" in variant
    assert variant.count("Literal[") == 3  # Dentist specialty, appointment and invoice status: one alias each
    # the body's variables step aside for parameters of the same name
    assert "session_user = ctx.require_user()" in variant and "matches = ctx.table(" in variant
    assert "such as 'PAT-000'" in variant and "such as 'D-0'" in variant


def test_unusual_shapes_pass_their_contract_tests(tmp_path):
    bp = variant_blueprint()
    code = write_tools_module(bp)
    server = tmp_path / "server"
    server.mkdir()
    (server / "tools.py").write_text(code)
    manifest = environment_manifest(bp, _files(bp), server, SIM_TIME)
    (server / "report.json").write_text(json.dumps({"status": "passed", "environment": manifest}))
    plan = ct.derive_tests(bp, _data(bp), {}, SIM_TIME)
    episodes = execute_episodes_inprocess(server, [e.as_json() for e in plan.episodes])
    results = ct.evaluate(plan, {e.id: [c.model_dump() for c in e.calls] for e in episodes})
    failed = [r for r in results if not r["passed"]]
    assert failed == [], failed
    ids = {r["id"] for r in results}
    assert {"update_appointment.status.enum.refused_invalid", "update_appointment.ownership"} <= ids
    expected = tool_list(bp)
    assert compare_tool_lists(expected, tool_specs_from_file(server / "tools.py")) == []
    # an update with nothing to change is refused, not a silent no-op
    owner_appt = next(r for r in _data(bp).records("Appointment") if r["status"] == "scheduled")
    calls = [
        {"tool": "authorize_patient", "arguments": {"patient_id": owner_appt["patient_id"]}},
        {"tool": "update_appointment", "arguments": {"appointment_id": owner_appt["appointment_id"]}},
        {"tool": "update_appointment", "arguments": {"appointment_id": owner_appt["appointment_id"], "user": "soon"}},
    ]
    (ep,) = execute_episodes_inprocess(server, [{"id": "nothing", "calls": calls}])
    assert [c.error_type for c in ep.calls] == [None, "tool_error", "tool_error"]
    assert "nothing to update" in ep.calls[1].error and "ISO 8601 date and time" in ep.calls[2].error


@pytest.mark.parametrize(
    ("text", "literal"),
    [("plain", '"plain"'), ("it's", '"it\'s"'), ('say "hi"', "'say \"hi\"'"), ("a\\b", '"a\\\\b"')],
)
def test_string_literals_are_quoted_like_ruff_format(text, literal):
    assert py_str(text) == literal
    assert eval(literal) == text


def test_example_ids_show_the_format_only():
    assert example_id("PAT-017") == "PAT-000"
    assert example_id("appointment_n00042") == "appointment_n00000"
    assert example_id("alice") is None and example_id(17) is None

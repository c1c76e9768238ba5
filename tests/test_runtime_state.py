"""State, Context/Table, environment loading, tool specs and the fast-path worker."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from agentskiller.io import sha256_json
from agentskiller.runtime.api import GENERATED_ID_RE, Context, ToolError, tool
from agentskiller.runtime.environment import load_environment
from agentskiller.runtime.loader import compare_tool_lists, tool_spec
from agentskiller.runtime.sandbox import SandboxSettings
from agentskiller.runtime.state import State, StateError
from agentskiller.runtime.worker import WorkerError, execute_episodes, execute_episodes_inprocess

FIX = Path(__file__).parent / "fixtures" / "runtime"
SERVER_DIR = FIX / "servers" / "ClinicDesk"
MANIFEST = FIX / "environment.json"
BAD = FIX / "bad_environment.json"


@pytest.fixture
def state() -> State:
    return load_environment(SERVER_DIR).initial_state()


def call(tool_name: str, **arguments) -> dict:
    return {"tool": tool_name, "arguments": arguments}


AUTH = call("authorize_patient", patient_id="PAT-001")


# --------------------------------------------------------------------------- state
def test_server_dir_and_manifest_load_the_same_environment():
    a, b = load_environment(SERVER_DIR), load_environment(MANIFEST)
    assert a.name == b.name == "ClinicDesk"
    assert a.table_paths == b.table_paths and a.module_paths == b.module_paths
    assert a.initial_state().hash() == b.initial_state().hash()
    assert State.from_files(load_environment(SERVER_DIR).table_paths).hash() == a.initial_state().hash()


def test_hash_is_sha256_of_canonical_json_and_ignores_the_user(state):
    canon = state.canonical()
    assert list(canon) == sorted(canon)
    assert [r["appointment_id"] for r in canon["Appointment"]] == ["APT-0001", "APT-0002", "APT-0003", "APT-0004"]
    assert state.hash() == sha256_json(canon)
    before = state.hash()
    Context(state, core_entity="Patient").authorize("PAT-002")
    assert state.user == "PAT-002" and state.hash() == before


def test_table_returns_copies_and_update_delete_semantics(state):
    ctx = Context(state, core_entity="Patient", now="2025-06-02T09:00:00Z")
    appt = ctx.table("Appointment")
    rec = appt.get("APT-0001")
    rec["status"] = "tampered"
    assert appt.get("APT-0001")["status"] == "scheduled"
    for r in appt.all():
        r["fee"] = -1
    assert all(r["fee"] > 0 for r in appt.all())

    updated = appt.update("APT-0001", {"status": "cancelled"})
    assert updated["status"] == "cancelled" and appt.get("APT-0001")["status"] == "cancelled"
    assert [r["appointment_id"] for r in appt.find(patient_id="PAT-001", status="scheduled")] == ["APT-0004"]
    assert "APT-0002" in appt and len(appt) == 4 and appt.len() == 4
    with pytest.raises(ToolError, match="unknown appointment_id"):
        appt.update("APT-9999", {"status": "x"})
    with pytest.raises(ToolError, match="unknown appointment_id"):
        appt.delete("APT-9999")
    with pytest.raises(ToolError, match="already exists"):
        appt.insert({"appointment_id": "APT-0002"})
    with pytest.raises(ToolError, match="cannot change"):
        appt.update("APT-0002", {"appointment_id": "APT-7"})
    assert appt.delete("APT-0002")["appointment_id"] == "APT-0002" and "APT-0002" not in appt
    with pytest.raises(ToolError, match="unknown table"):
        ctx.table("Nope")


def test_require_user_and_authorize(state):
    ctx = Context(state, core_entity="Patient")
    with pytest.raises(ToolError, match="not authorized"):
        ctx.require_user()
    with pytest.raises(ToolError, match="unknown patient_id"):
        ctx.authorize("PAT-404")
    assert ctx.authorize("PAT-003")["name"] == "Chen Li"
    assert ctx.require_user() == "PAT-003"


def test_new_id_is_deterministic_and_never_collides(state):
    # Pre-seed a record that looks like the next generated ID: it must be skipped.
    state.add_table("Visit", "visit_id", [{"visit_id": "visit_n00001"}])
    ctx = Context(state, core_entity="Patient")
    first = [ctx.new_id("Visit") for _ in range(3)]
    assert first == ["visit_n00002", "visit_n00003", "visit_n00004"]
    assert all(GENERATED_ID_RE.match(i) for i in first)
    replay = load_environment(SERVER_DIR).initial_state()
    replay.add_table("Visit", "visit_id", [{"visit_id": "visit_n00001"}])
    assert [Context(replay).new_id("Visit") for _ in range(3)] == first
    # The counter travels with copies, so a copy continues the sequence independently.
    c = state.copy()
    assert Context(c).new_id("Visit") == Context(state).new_id("Visit") == "visit_n00005"


def test_copy_is_independent_and_diff_reports_changes(state):
    base = state.copy()
    ctx = Context(state, core_entity="Patient")
    ctx.table("Appointment").update("APT-0001", {"status": "cancelled"})
    ctx.table("Appointment").delete("APT-0003")
    ctx.table("Dentist").insert({"dentist_id": "DEN-03", "name": "Dr. New"})
    assert base.tables["Appointment"]["APT-0001"]["status"] == "scheduled"
    assert state.hash() != base.hash()
    diff = state.diff(base)
    assert set(diff) == {"Appointment", "Dentist"}
    assert diff["Appointment"] == {"added": [], "removed": ["APT-0003"], "changed": ["APT-0001"]}
    assert diff["Dentist"] == {"added": ["DEN-03"], "removed": [], "changed": []}
    assert base.diff(base.copy()) == {}


def test_bad_table_files_are_rejected(tmp_path):
    dup = tmp_path / "Dup.json"
    dup.write_text(json.dumps({"table": "Dup", "primary_key": "id", "records": [{"id": 1}, {"id": 1}]}))
    nokey = tmp_path / "NoKey.json"
    nokey.write_text(json.dumps({"table": "NoKey", "primary_key": "id", "records": [{"x": 1}]}))
    with pytest.raises(StateError, match="duplicate"):
        State.from_files({"Dup": dup})
    with pytest.raises(StateError, match="no usable"):
        State.from_files({"NoKey": nokey})


# --------------------------------------------------------------------------- specs
def test_tool_specs_come_from_signatures_and_docstrings():
    specs = {s["function"]["name"]: s["function"] for s in load_environment(SERVER_DIR).toolset().specs()}
    assert list(specs)[:3] == ["authorize_patient", "get_patient", "get_dentist"]  # definition order
    book = specs["book_appointment"]
    assert book["parameters"]["required"] == ["dentist_id", "date"]
    fee = book["parameters"]["properties"]["fee"]
    assert fee["type"] == "number" and fee["minimum"] == 0 and fee["maximum"] == 5000
    assert book["parameters"]["properties"]["date"]["format"] == "date"
    search = specs["search_appointments"]["parameters"]
    assert search["required"] == []
    assert search["properties"]["status"] == {
        "type": "string",
        "enum": ["scheduled", "completed", "cancelled"],
        "description": "Only appointments with this status.",
    }
    assert specs["get_appointment"]["description"] == "Return one of the authorized patient's appointments."
    assert specs["get_appointment"]["parameters"]["properties"]["appointment_id"]["description"].startswith(
        "The appointment"
    )


def test_compare_tool_lists_finds_each_kind_of_difference():
    expected = json.loads((FIX / "tool_lists" / "ClinicDesk.json").read_text())
    actual = load_environment(SERVER_DIR).toolset().specs()
    assert compare_tool_lists(expected, actual) == []

    changed = copy.deepcopy(expected)
    for t in changed:
        t["function"]["description"] = "different prose is fine"
    by = {t["function"]["name"]: t["function"]["parameters"] for t in changed}
    by["book_appointment"]["properties"]["fee"]["type"] = "integer"
    by["book_appointment"]["required"].append("fee")
    by["search_appointments"]["properties"]["status"]["enum"] = ["scheduled"]
    by["get_dentist"]["properties"]["branch"] = {"type": "string"}
    changed = [t for t in changed if t["function"]["name"] != "total_fees"]
    problems = compare_tool_lists(changed, actual)
    assert "unexpected tool: total_fees" in problems
    assert "book_appointment.fee: should be required" in problems
    assert any(p.startswith("book_appointment.fee: type integer expected") for p in problems)
    assert any(p.startswith("search_appointments.status: type string enum") for p in problems)
    assert "get_dentist: missing parameter branch" in problems
    assert len(problems) == 5


def test_tool_spec_rejects_unsupported_signatures():
    from agentskiller.runtime.loader import ToolSignatureError

    @tool
    def no_ctx(x: str) -> dict:
        """x"""
        return {}

    @tool
    def weird(ctx: Context, x: set) -> dict:
        """x"""
        return {}

    for fn in (no_ctx, weird):
        with pytest.raises(ToolSignatureError):
            tool_spec(fn)


# --------------------------------------------------------------------------- sessions
def test_session_calls_record_results_errors_and_changed_tables():
    env = load_environment(SERVER_DIR)
    s = env.new_session()
    h0 = s.state.hash()
    r = s.call("get_appointment", {"appointment_id": "APT-0001"})
    assert (r.ok, r.error_type) == (False, "tool_error") and "not authorized" in r.error
    assert s.call("authorize_patient", {"patient_id": "PAT-001"}).ok
    r = s.call("book_appointment", {"dentist_id": "DEN-01", "date": "2025-07-01", "fee": "95"})
    assert r.ok and r.result["appointment_id"] == "appointment_n00001" and r.result["fee"] == 95.0
    assert r.changed_tables == ["Appointment"] and r.state_hash_after == s.state.hash() != h0
    r = s.call("search_appointments", {"status": "scheduled"})
    assert r.ok and r.changed_tables == [] and len(r.result) == 3
    r = s.call("search_appointments", {"status": "lost"})
    assert r.error_type == "bad_arguments" and "status" in r.error
    assert s.call("book_appointment", {"dentist_id": "DEN-01"}).error_type == "bad_arguments"
    assert s.call("no_such_tool", {}).error_type == "unknown_tool"


def test_failed_calls_roll_back_and_crashes_are_contained():
    s = load_environment(BAD).new_session()
    h0 = s.state.hash()
    r = s.call("write_then_refuse", {"appointment_id": "APT-0001"})
    assert r.error_type == "tool_error" and r.state_hash_after == h0 and r.changed_tables == []
    assert s.state.counters == {}  # the ID drawn inside the failed call is given back
    r = s.call("write_then_crash", {"appointment_id": "APT-0001"})
    assert r.error_type == "crash" and "ZeroDivisionError" in r.error and s.state.hash() == h0
    r = s.call("returns_non_json", {})
    assert r.error_type == "non_json"
    assert s.call("count", {"table": "Nope"}).error_type == "tool_error"


def test_fused_pair_namespace_and_prefix(tmp_path):
    """Two domains in one environment: logical names mapped to namespaced tables."""
    manifest = json.loads(MANIFEST.read_text())
    tables = {k: str((FIX / v).resolve()) for k, v in manifest["tables"].items()}
    tables["Clinic_Appointment"] = tables.pop("Appointment")
    tables["Other_Appointment"] = tables["Clinic_Appointment"]
    ns = {"Patient": "Patient", "Dentist": "Dentist"}
    fused = {
        "env": "ClinicDesk_Other",
        "domains": ["ClinicDesk", "Other"],
        "core_entity": "Patient",
        "tables": tables,
        "namespace": {
            "ClinicDesk": ns | {"Appointment": "Clinic_Appointment"},
            "Other": ns | {"Appointment": "Other_Appointment"},
        },
        "tools_modules": {"ClinicDesk": str(SERVER_DIR / "tools.py"), "Other": str(SERVER_DIR / "tools.py")},
        "simulation_time": "2025-06-02T09:00:00Z",
        "tool_prefix": {"ClinicDesk": "clinic", "Other": "other"},
    }
    path = tmp_path / "pair.json"
    path.write_text(json.dumps(fused))
    s = load_environment(path).new_session()
    assert "clinic__book_appointment" in s.toolset.names() and "other__book_appointment" in s.toolset.names()
    assert s.call("clinic__authorize_patient", {"patient_id": "PAT-001"}).ok
    # Each member has its own authorization: the other member's does not count ...
    r = s.call("other__cancel_appointment", {"appointment_id": "APT-0001"})
    assert not r.ok and "bridge.authorization.Other" in r.error and r.changed_tables == []
    # ... nor may the second member authorize another person (one person per conversation)
    r = s.call("other__authorize_patient", {"patient_id": "PAT-002"})
    assert not r.ok and "bridge.identity" in r.error and s.state.auth == {"ClinicDesk": "PAT-001"}
    assert s.call("other__authorize_patient", {"patient_id": "PAT-001"}).ok
    r = s.call("other__cancel_appointment", {"appointment_id": "APT-0001"})
    assert r.ok and r.changed_tables == ["Other_Appointment"]
    assert s.state.tables["Clinic_Appointment"]["APT-0001"]["status"] == "scheduled"
    r = s.call("clinic__book_appointment", {"dentist_id": "DEN-01", "date": "2025-08-01"})
    assert r.changed_tables == ["Clinic_Appointment"] and r.result["appointment_id"] == "appointment_n00001"


# --------------------------------------------------------------------------- worker
EPISODES = [
    [AUTH, call("book_appointment", dentist_id="DEN-01", date="2025-07-01"), call("total_fees")],
    {"id": "cancel", "calls": [AUTH, call("cancel_appointment", appointment_id="APT-0001")]},
    {"id": "noauth", "calls": [call("cancel_appointment", appointment_id="APT-0001")]},
    {"id": "shortcut", "authorize_as": "PAT-001", "calls": []},
]


def test_sandboxed_worker_matches_in_process_replay():
    settings = SandboxSettings(timeout_s=30, memory_mb=1024, cpu_s=30)
    sandboxed = execute_episodes(SERVER_DIR, EPISODES, settings, include_final_state=True)
    trusted = execute_episodes_inprocess(MANIFEST, EPISODES, include_final_state=True)
    assert sandboxed == trusted
    first, cancel, noauth, shortcut = sandboxed
    assert first.id == "episode_0000" and all(c.ok for c in first.calls)
    assert first.final_state_hash == first.calls[-1].state_hash_after != first.initial_state_hash
    assert sha256_json(first.final_state) == first.final_state_hash
    assert cancel.calls[1].changed_tables == ["Appointment"]
    # each episode starts fresh: "noauth" does not inherit the authorization of "cancel"
    assert noauth.calls[0].error_type == "tool_error" and noauth.final_state_hash == noauth.initial_state_hash
    assert shortcut.error and "authorize_as" in shortcut.error and shortcut.calls == []


def test_worker_contains_hangs_and_memory_hogs_per_call():
    episodes = [[call("spins_forever"), call("eats_memory"), call("count", table="Patient")]]
    settings = SandboxSettings(timeout_s=30, memory_mb=512, cpu_s=30)
    # 3 s a call, not 1: the hog's bytearrays are zeroed page by page, which on a loaded machine
    # took past 1 s, so the call ended as a timeout before its MemoryError (a flaky failure)
    (ep,) = execute_episodes(BAD, episodes, settings, per_call_timeout_s=3.0)
    assert [c.error_type for c in ep.calls] == ["timeout", "crash", None]
    assert "MemoryError" in ep.calls[1].error
    assert ep.calls[2].result == {"value": 3}


def test_worker_failure_raises_with_reason(tmp_path):
    broken = tmp_path / "tools.py"
    broken.write_text("import os\nos.kill(os.getpid(), 9)\n")  # dies while being imported
    manifest = json.loads(BAD.read_text())
    manifest["tables"] = {k: str((FIX / v).resolve()) for k, v in manifest["tables"].items()}
    manifest["tools_modules"] = {"BadTools": str(broken)}
    path = tmp_path / "env.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(WorkerError, match="signal 9") as info:
        execute_episodes(path, [[call("count", table="Patient")]], SandboxSettings(timeout_s=30))
    assert info.value.sandbox is not None and info.value.sandbox.reason == "crash"

"""s10 combinations, s12 database fusion and the pair server, on artifacts of a real offline
run (tests/fixtures/cross): two Patient domains with servers, databases and tasks, and two
Traveler domains (blueprints, reports, tasks) for the combination logic."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from agentskiller import io
from agentskiller.jobs import StepContext
from agentskiller.runtime.environment import load_environment
from agentskiller.steps.cross import pair_server, s10_combinations, s12_database_fusion, s13_policy_merge

FIXTURE = Path(__file__).parent / "fixtures" / "cross" / "outputs"
POLICIES = Path(__file__).parent / "fixtures" / "s11" / "outputs" / "policies"
PAIR = "DentalCareDesk+PharmacyCareLine"
MEMBERS = ["DentalCareDesk", "PharmacyCareLine"]
CONFIG = {
    "seed": 7,
    "simulation_time": "2025-06-02T09:00:00Z",
    "llm": {"provider": "offline"},
    "cross": {"enabled": True, "max_pairs": 4, "min_member_tasks": 2},
    "sandbox": {
        "timeout_s": 60,
        "memory_mb": 1024,
        "cpu_s": 60,
        "max_processes": 64,
        "max_output_mb": 20,
        "isolate_network": True,
    },
}


@pytest.fixture
def outputs(tmp_path) -> Path:
    out = tmp_path / "outputs"
    shutil.copytree(FIXTURE, out)
    return out


def _domains(out: Path) -> list[str]:
    return [d["domain"] for d in io.read_json(out / "blueprints/index.json")["domains"]]


def run_s10(out: Path, config: dict | None = None) -> dict:
    doms = _domains(out)
    ctx = StepContext.from_paths(
        "s10",
        config or CONFIG,
        inputs={
            "index": out / "blueprints/index.json",
            "blueprints": [out / f"blueprints/{d}.json" for d in doms],
            "server_reports": [out / f"servers/{d}/report.json" for d in doms],
            "tasks": [out / f"tasks/{d}.json" for d in doms],
        },
        outputs={"combinations": out / "cross/combinations.json"},
    )
    s10_combinations.run(ctx)
    return io.read_json(out / "cross/combinations.json")


def run_s12(out: Path, pair: str = PAIR) -> Path:
    m = pair.split("+")
    ctx = StepContext.from_paths(
        "s12",
        CONFIG,
        inputs={"blueprints": [out / f"blueprints/{d}.json" for d in m], "dbs": [out / f"database/{d}" for d in m]},
        outputs={"db": out / f"cross/{pair}/database"},
        wildcards={"pair": pair},
    )
    s12_database_fusion.run(ctx)
    return out / f"cross/{pair}/database"


def run_s13(out: Path, pair: str = PAIR) -> dict:
    """The merged policy (the pair server checks that it states the Bridge Rules); the member
    policies come from the s11 fixture, which holds the same two blueprints."""
    m = pair.split("+")
    for d in m:
        for ext in (".md", ".json"):
            if not (out / f"policies/{d}{ext}").is_file():
                (out / "policies").mkdir(exist_ok=True)
                shutil.copy(POLICIES / f"{d}{ext}", out / f"policies/{d}{ext}")
    cfg = {**CONFIG, "llm": {"provider": "offline", "cache_dir": str(out / ".llm_cache")}}
    graph = out / f"cross/{pair}/tool_graph.json"
    ctx = StepContext.from_paths(
        "s13",
        cfg,
        inputs={
            "blueprints": [out / f"blueprints/{d}.json" for d in m],
            "policies": [out / f"policies/{d}.md" for d in m],
            "policy_reports": [out / f"policies/{d}.json" for d in m],
            **({"graph": graph} if graph.is_file() else {}),
        },
        outputs={"policy": out / f"cross/{pair}/policy.md", "report": out / f"cross/{pair}/policy.json"},
        wildcards={"pair": pair},
    )
    s13_policy_merge.run(ctx)
    return io.read_json(out / f"cross/{pair}/policy.json")


def run_pair_server(out: Path, pair: str = PAIR) -> dict:
    m = pair.split("+")
    if not (out / f"cross/{pair}/policy.json").is_file():
        run_s13(out, pair)
    graph = out / f"cross/{pair}/tool_graph.json"
    ctx = StepContext.from_paths(
        "pair_server",
        CONFIG,
        inputs={
            "blueprints": [out / f"blueprints/{d}.json" for d in m],
            "server_reports": [out / f"servers/{d}/report.json" for d in m],
            "tools": [out / f"servers/{d}/tools.py" for d in m],
            "db": out / f"cross/{pair}/database",
            "tool_lists": [out / f"tool_lists/{d}.json" for d in m],
            "policy_report": out / f"cross/{pair}/policy.json",
            "tasks": [out / f"tasks/{d}.json" for d in m],
            **({"graph": graph} if graph.is_file() else {}),
        },
        outputs={"report": out / f"cross/{pair}/server/report.json", "tool_list": out / f"cross/{pair}/tool_list.json"},
        wildcards={"pair": pair},
    )
    pair_server.run(ctx)
    return io.read_json(out / f"cross/{pair}/server/report.json")


# ------------------------------------------------------------------------ s10
def test_s10_keeps_pairs_of_the_same_person_and_names_them_sorted(outputs):
    doc = run_s10(outputs)
    kept = {p["pair"]: p for p in doc["pairs"]}
    assert set(kept) == {PAIR, "CityRideDispatch+StayReservationDesk"}
    assert kept[PAIR]["core_entity"] == "Patient" and kept[PAIR]["domains"] == MEMBERS
    assert "Patient" in kept[PAIR]["shared_entities"]
    assert all(n >= 2 for n in kept[PAIR]["interlockable_tasks"].values())
    assert doc["counts"] == {"domains": 4, "candidates": 2, "feasible": 2, "kept": 2, "pruned": 0}


def test_s10_prunes_quarantined_servers_and_thin_members_with_reasons(outputs):
    rep = io.read_json(outputs / "servers/PharmacyCareLine/report.json")
    io.write_json(outputs / "servers/PharmacyCareLine/report.json", {**rep, "status": "failed", "reason": "boom"})
    tasks = io.read_json(outputs / "tasks/CityRideDispatch.json")
    for t in tasks["tasks"][1:]:
        t["status"] = "invalid"
    io.write_json(outputs / "tasks/CityRideDispatch.json", tasks)
    doc = run_s10(outputs)
    assert doc["pairs"] == []
    reasons = {p["pair"]: (p["stage"], p["reason"]) for p in doc["pruned"]["sample"]}
    assert reasons[PAIR][0] == "feasibility" and "PharmacyCareLine: server quarantined (boom)" in reasons[PAIR][1]
    stage, why = reasons["CityRideDispatch+StayReservationDesk"]
    assert stage == "feasibility" and "CityRideDispatch has 1 interlockable" in why and "needs 2" in why


def test_s10_cap_is_deterministic_and_prefers_different_persons():
    def entry(pair, core, n):
        return {"pair": pair, "core_entity": core, "interlockable_tasks": {"a": n, "b": n}}

    feasible = [
        entry("A+B", "Patient", 9),
        entry("A+C", "Patient", 8),
        entry("D+E", "Student", 1),
        entry("F+G", "Traveler", 2),
    ]
    kept, over = s10_combinations.select(copy.deepcopy(feasible), 3)
    assert [e["pair"] for e in kept] == ["A+B", "D+E", "F+G"]  # one per person before a second Patient pair
    assert [e["pair"] for e in over] == ["A+C"]
    assert s10_combinations.select(list(reversed(copy.deepcopy(feasible))), 3)[0] == kept


def test_s10_cap_reason_is_recorded(outputs):
    doc = run_s10(outputs, {**CONFIG, "cross": {"enabled": True, "max_pairs": 1, "min_member_tasks": 2}})
    assert len(doc["pairs"]) == 1
    [pruned] = doc["pruned"]["sample"]
    assert pruned["stage"] == "cap" and "cross.max_pairs=1" in pruned["reason"]


def test_s10_name_problems_catch_long_namespaced_tool_names():
    from agentskiller.models.blueprint import Blueprint

    data = io.read_json(FIXTURE / "blueprints/DentalCareDesk.json")
    bp = Blueprint.model_validate({k: v for k, v in data.items() if k in Blueprint.model_fields})
    long_dom = bp.model_copy(update={"domain": "D" * 60})
    problems = s10_combinations.name_problems(long_dom, bp)
    assert any("does not fit" in p for p in problems)
    assert s10_combinations.name_problems(bp, bp.model_copy(update={"domain": "Other"})) == []


# ------------------------------------------------------------------------ s12
def test_s12_namespaces_relationships_shares_entities_and_keeps_fks(outputs):
    db = run_s12(outputs)
    manifest = io.read_json(db / "tables.json")
    assert manifest["status"] == "ok" and manifest["domains"] == MEMBERS
    tables = manifest["tables"]
    assert tables["Patient"] == "../../../database/entities/Patient.json"
    assert (db / tables["Patient"]).resolve() == (outputs / "database/entities/Patient.json").resolve()
    assert manifest["namespace"]["DentalCareDesk"]["DentalAppointment"] == "DentalCareDesk_DentalAppointment"
    assert manifest["namespace"]["PharmacyCareLine"]["Patient"] == "Patient"
    patients = {r["patient_id"] for r in io.read_json(outputs / "database/entities/Patient.json")["records"]}
    checked = 0
    for d in MEMBERS:
        bp = io.read_json(outputs / f"blueprints/{d}.json")
        for rel in bp["relationships"]:
            t = io.read_json(db / f"{d}_{rel['name']}.json")
            src = io.read_json(outputs / f"database/{d}/{rel['name']}.json")
            assert t["table"] == f"{d}_{rel['name']}" and t["records"] == src["records"]
            for r in t["records"]:
                assert r["patient_id"] in patients
                checked += 1
    assert checked > 0
    phys = list(tables)
    assert len(phys) == len(set(phys))
    summary = io.read_json(db / "summary.json")
    assert summary["status"] == "ok" and set(summary["tables"]) == set(tables)


def test_s12_fails_the_pair_on_a_broken_foreign_key(outputs):
    path = outputs / "database/DentalCareDesk/DentalAppointment.json"
    t = io.read_json(path)
    t["records"][0]["patient_id"] = "PAT-NOBODY"
    io.write_json(path, t)
    db = run_s12(outputs)
    manifest = io.read_json(db / "tables.json")
    assert manifest["status"] == "failed" and manifest["tables"] == {}
    assert "PAT-NOBODY" in manifest["reason"] and "foreign-key" in manifest["reason"]
    assert io.read_json(db / "summary.json")["status"] == "failed"


def test_s12_fails_the_pair_when_a_member_database_failed(outputs):
    path = outputs / "database/PharmacyCareLine/tables.json"
    io.write_json(path, {**io.read_json(path), "status": "failed", "reason": "generator crashed", "tables": {}})
    manifest = io.read_json(run_s12(outputs) / "tables.json")
    assert manifest["status"] == "failed" and "generator crashed" in manifest["reason"]


def test_s12_is_byte_identical_on_rerun(outputs):
    db = run_s12(outputs)
    before = {p.name: p.read_bytes() for p in sorted(db.glob("*.json"))}
    run_s12(outputs)
    assert {p.name: p.read_bytes() for p in sorted(db.glob("*.json"))} == before


# ------------------------------------------------------------- the fuse job
def test_the_fuse_job_writes_what_s11_s12_and_s13_write_as_three_steps(outputs, tmp_path):
    """The ``fuse`` rule runs s11, s12 and s13 of a pair in one job: the same artifacts, byte for
    byte, as three separate steps, each with only its own inputs in meta."""
    from agentskiller.steps.cross import fuse_job, s11_trajectory_fusion

    s11_fixture = POLICIES.parent
    for sub in ("tool_graphs", "policies"):
        shutil.copytree(s11_fixture / sub, outputs / sub, dirs_exist_ok=True)
    io.write_json(
        outputs / "cross/combinations.json",
        {"status": "ok", "pairs": [{"pair": PAIR, "domains": MEMBERS, "core_entity": "Patient"}]},
    )
    alone = tmp_path / "alone"
    shutil.copytree(outputs, alone)
    cfg = {**CONFIG, "llm": {"provider": "offline", "cache_mode": "off"}}

    def members(root: Path, sub: str, ext: str = ".json") -> list[Path]:
        return [root / f"{sub}/{d}{ext}" for d in MEMBERS]

    def files(root: Path) -> dict:
        return {
            "inputs": {
                "combos": root / "cross/combinations.json",
                "blueprints": members(root, "blueprints"),
                "tool_graphs": members(root, "tool_graphs"),
                "tasks": members(root, "tasks"),
                "policies": members(root, "policies", ".md"),
                "dbs": members(root, "database", ""),
                "policy_reports": members(root, "policies"),
            },
            "outputs": {
                "graph": root / f"cross/{PAIR}/tool_graph.json",
                "db": root / f"cross/{PAIR}/database",
                "policy": root / f"cross/{PAIR}/policy.md",
                "report": root / f"cross/{PAIR}/policy.json",
            },
        }

    job = files(outputs)
    fuse_job.run(StepContext.from_paths("s11-s13", cfg, **job, wildcards={"pair": PAIR}))
    one = files(alone)
    ins, outs = one["inputs"], one["outputs"]
    for step, fn, names, made in (
        ("s11", s11_trajectory_fusion.run, ("combos", "blueprints", "tool_graphs", "tasks", "policies"), ("graph",)),
        ("s12", s12_database_fusion.run, ("blueprints", "dbs"), ("db",)),
        ("s13", s13_policy_merge.run, ("blueprints", "policies", "policy_reports"), ("policy", "report")),
    ):
        given = {k: ins[k] for k in names}
        if step == "s13":
            given["graph"] = outs["graph"]
        fn(
            StepContext.from_paths(
                step, cfg, inputs=given, outputs={k: outs[k] for k in made}, wildcards={"pair": PAIR}
            )
        )
    written = sorted(p.relative_to(outputs) for p in (outputs / "cross" / PAIR).rglob("*") if p.is_file())
    assert len(written) > 4, written
    for rel in written:
        assert (outputs / rel).read_bytes() == (alone / rel).read_bytes(), rel
    graph = io.read_json(job["outputs"]["graph"])
    assert graph["meta"]["step"] == "s11" and graph["status"] == "ok" and graph["trajectories"], graph.get("reason")
    assert io.read_json(job["outputs"]["report"])["status"] == "ok"
    assert set(io.read_json(job["outputs"]["report"])["meta"]["inputs"]) == {
        "blueprints",
        "policies",
        "policy_reports",
        "graph",
    }


# ---------------------------------------------------------------- pair server
def test_pair_server_serves_both_members_over_the_fused_database(outputs):
    run_s12(outputs)
    report = run_pair_server(outputs)
    assert report["status"] == "passed", report["reason"]
    ep = report["checks"]["episode"]
    assert ep["passed"] and ep["calls"][0] == "DentalCareDesk__authorize_patient"
    assert "PharmacyCareLine__authorize_patient" in ep["calls"]
    assert report["checks"]["mcp"]["tools_match"] is True
    tool_list = io.read_json(outputs / f"cross/{PAIR}/tool_list.json")
    names = [t["function"]["name"] for t in tool_list["tools"]]
    members = sum(len(io.read_json(outputs / f"tool_lists/{d}.json")["tools"]) for d in MEMBERS)
    assert len(names) == len(set(names)) == members == report["checks"]["mcp"]["tool_count"]
    assert all(n.split("__", 1)[0] in MEMBERS for n in names)
    env = report["environment"]
    assert env["tool_prefix"] == {d: d for d in MEMBERS}
    assert env["tools_modules"]["DentalCareDesk"] == "../../../servers/DentalCareDesk/tools.py"

    # the Bridge Rules: stated in the merged policy, in the manifest, each proven by its tests
    bridge = report["checks"]["bridge"]
    ids = [r["id"] for r in env["bridge"]]
    assert ids == [r["id"] for r in io.read_json(outputs / f"cross/{PAIR}/policy.json")["bridge_rules"]]
    assert bridge["passed"] and bridge["rules"] == len(ids) == 5 and bridge["tests_passed"] == bridge["tests"]
    for r in bridge["by_rule"]:
        assert r["violating"] >= 1 and r["conforming"] >= 1 and r["failures"] == [], r

    # the runtime: each member authorizes on its own, as one person, and sees its own tables
    session = load_environment(outputs / f"cross/{PAIR}/server").new_session()
    user = ep["user"]
    assert session.call("DentalCareDesk__authorize_patient", {"patient_id": user}).ok
    mine = [
        r
        for r in io.read_json(outputs / "database/PharmacyCareLine/PrescriptionFill.json")["records"]
        if r["patient_id"] == user
    ]
    if mine:
        args = {"prescription_fill_id": mine[0]["prescription_fill_id"]}
        rec = session.call("PharmacyCareLine__get_prescription_fill", args)
        assert not rec.ok and "bridge.authorization.PharmacyCareLine" in rec.error
        assert session.call("PharmacyCareLine__authorize_patient", {"patient_id": user}).ok
        rec = session.call("PharmacyCareLine__get_prescription_fill", args)
        assert rec.ok, rec.error
    tables = set(session.state.tables)
    assert "DentalCareDesk_DentalAppointment" in tables and "DentalAppointment" not in tables


def test_pair_server_quarantines_when_a_member_server_failed(outputs):
    run_s12(outputs)
    rep = io.read_json(outputs / "servers/DentalCareDesk/report.json")
    io.write_json(outputs / "servers/DentalCareDesk/report.json", {**rep, "status": "failed", "reason": "tests fail"})
    report = run_pair_server(outputs)
    assert report["status"] == "failed" and report["environment"] is None
    assert "DentalCareDesk" in report["reason"] and "tests fail" in report["reason"]
    assert io.read_json(outputs / f"cross/{PAIR}/tool_list.json")["tools"] == []


def test_pair_server_quarantines_a_pair_whose_read_breaks(outputs, tmp_path):
    """A member module that passes alone but whose read crashes inside the pair."""
    run_s12(outputs)
    tools = outputs / "servers/PharmacyCareLine/tools.py"
    code = tools.read_text().replace("def get_prescription_fill(", "def _old_get_prescription_fill(")
    code += (
        "\n\n@tool\n"
        "def get_prescription_fill(ctx: Context, prescription_fill_id: str) -> dict:\n"
        '    """Broken on purpose."""\n'
        "    raise RuntimeError('boom')\n"
    )
    tools.write_text(code)
    report = run_pair_server(outputs)
    assert report["status"] == "failed"
    assert "episode check failed" in report["reason"] and "boom" in report["reason"]


def test_namespaced_tool_list_rejects_overlong_names():
    tool = {"type": "function", "function": {"name": "x" * 60, "description": "", "parameters": {}}}
    with pytest.raises(pair_server.PairFailure):
        pair_server.namespaced_tool_list({"Dom": [tool]})
    ok = pair_server.namespaced_tool_list({"B": [json.loads(json.dumps(tool).replace("x" * 60, "t"))]})
    assert ok[0]["function"]["name"] == "B__t"

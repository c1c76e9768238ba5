"""s06: data checks, generator scripts in the sandbox, repair loop, quarantine, summary."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agentskiller import artifacts, io
from agentskiller.jobs import StepContext
from agentskiller.llm import offline
from agentskiller.llm.offline import codegen_data
from agentskiller.models.blueprint import Blueprint
from agentskiller.steps.domains import data_checks as dc
from agentskiller.steps.domains import s06_database as s06

FIX = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]
NOW = "2025-06-02T09:00:00Z"


def config(**db) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["llm"]["cache_mode"] = "off"
    cfg["database"].update({"entity_records": 12, "relationship_records": 15, **db})
    cfg["sandbox"].update({"timeout_s": 20, "cpu_s": 20})
    return cfg


def blueprint() -> Blueprint:
    data = io.read_json(FIX / "blueprint_dental.json")
    return Blueprint.model_validate({k: v for k, v in data.items() if k not in ("status", "meta")})


def entities():
    return artifacts.load_entities(FIX / "entities_small.json")


def entity_ctx(tmp: Path, name: str, cfg: dict) -> StepContext:
    return StepContext.from_paths(
        "s06",
        cfg,
        inputs={"entities": FIX / "entities_small.json"},
        outputs={
            "table": tmp / f"database/entities/{name}.json",
            "script": tmp / f"database/scripts/entities/{name}.py",
        },
        wildcards={"entity": name},
    )


def build_entities(tmp: Path, cfg: dict) -> list[Path]:
    paths = []
    for name in ("Patient", "Dentist", "DentalProcedure"):
        s06.run_entity(entity_ctx(tmp, name, cfg))
        paths.append(tmp / f"database/entities/{name}.json")
    return paths


def domain_ctx(tmp: Path, cfg: dict, paths: list[Path], bp_path: Path | None = None) -> StepContext:
    return StepContext.from_paths(
        "s06",
        cfg,
        inputs={
            "blueprint": bp_path or FIX / "blueprint_dental.json",
            "entities": FIX / "entities_small.json",
            "entity_tables": paths,
        },
        outputs={"db": tmp / "database/DentalCare"},
        wildcards={"domain": "DentalCare"},
    )


# ------------------------------------------------------------------ data checks
def good_patients(n: int = 5) -> list[dict]:
    return [
        {
            "patient_id": f"PAT-{10000 + i}",
            "full_name": "Ann Lee",
            "date_of_birth": f"1980-01-0{i + 1}",
            "email": "a@b.c",
            "phone": "+1",
            "preferred_language": "english",
            "has_allergies": False,
        }
        for i in range(n)
    ]


def test_check_records_accepts_good_data():
    spec = dc.spec_for_entity(entities()["Patient"])
    assert dc.check_records(good_patients(), spec, 5) == []


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda rs: rs.pop(), "expected exactly 5 records, got 4"),
        (lambda rs: rs[1].update(has_allergies="no"), "not true/false"),
        (lambda rs: rs[2].update(date_of_birth="2020-13-40"), "ISO date"),
        (lambda rs: rs[0].update(preferred_language="klingon"), "not in enum"),
        (lambda rs: rs[3].update(patient_id="PAT-10000"), "is not unique"),
        (lambda rs: rs[4].pop("email"), "missing"),
        (lambda rs: rs[4].update(email=None), "null in a non-nullable column"),
        (lambda rs: rs[0].update(shoe_size=42), "unknown column 'shoe_size'"),
    ],
)
def test_check_records_catches_each_defect(mutate, expected):
    recs = good_patients()
    mutate(recs)
    errors = dc.check_records(recs, dc.spec_for_entity(entities()["Patient"]), 5)
    assert any(expected in e for e in errors), errors


def test_range_and_fk_and_implied_rules():
    bp = blueprint()
    inv = dc.spec_for_relationship(bp.relationship("Invoice"))
    rec = {
        "invoice_id": "INV-1",
        "patient_id": "PAT-1",
        "dental_procedure_id": "DEP-1",
        "quantity": 2,
        "unit_price": 100.0,
        "total_amount": 200.0,
        "status": "open",
        "issued_date": "2025-05-01",
        "paid_at": None,
    }
    fk = {"patient_id": {"PAT-1"}, "dental_procedure_id": {"DEP-1"}}
    assert dc.check_records([rec], inv, 1, fk, NOW) == []
    bad = dict(rec, quantity=9, invoice_id="INV-2")
    errs = dc.check_records([bad], inv, 1, fk, NOW)
    assert any("above maximum 4" in e for e in errs) and any("total_amount != unit_price * quantity" in e for e in errs)
    errs = dc.check_records([dict(rec, patient_id="PAT-404")], inv, 1, fk, NOW)
    assert any("foreign key is not a Patient primary key" in e and "PAT-404" in e for e in errs)
    appt = dc.spec_for_relationship(bp.relationship("Appointment"))
    a = {
        "appointment_id": "APP-1",
        "patient_id": "PAT-1",
        "dentist_id": "DEN-1",
        "dental_procedure_id": "DEP-1",
        "scheduled_at": "2025-05-01T10:00:00Z",
        "created_at": "2025-05-03T10:00:00Z",
        "status": "scheduled",
        "notes": None,
    }
    errs = dc.check_records([a], appt, 1, None, NOW)
    assert any("created_at later than scheduled_at" in e for e in errs)
    assert any("status 'scheduled' but scheduled_at in the past" in e for e in errs)


def test_summary_is_computed_from_data():
    recs = good_patients(4)
    recs[0]["preferred_language"] = "french"
    cols = dc.summarize_columns(recs, dc.spec_for_entity(entities()["Patient"]))
    assert cols["preferred_language"]["values"] == ["english", "french"]
    assert cols["date_of_birth"]["min"] == "1980-01-01" and cols["date_of_birth"]["max"] == "1980-01-04"
    assert cols["patient_id"]["distinct"] == 4 and cols["patient_id"]["samples"] == [
        "PAT-10000",
        "PAT-10001",
        "PAT-10002",
    ]
    assert cols["full_name"]["distinct"] == 1 and cols["email"]["nulls"] == 0


# ------------------------------------------------------------- offline scripts
def test_offline_scripts_are_deterministic_and_seeded():
    ent = entities()["Patient"]
    a = codegen_data.entity_script(ent, 10, 5, NOW)
    assert a == codegen_data.entity_script(ent, 10, 5, NOW)
    assert a != codegen_data.entity_script(ent, 10, 6, NOW)
    assert "uuid4" not in a and "datetime.now" not in a and "SEED = 5" in a
    compile(a, "Patient.py", "exec")


def test_entity_and_domain_jobs_end_to_end(tmp_path):
    cfg = config()
    paths = build_entities(tmp_path, cfg)
    pat = io.read_json(paths[0])
    assert pat["status"] == "ok" and len(pat["records"]) == 12 and pat["primary_key"] == "patient_id"
    assert pat["records"][0]["patient_id"].startswith("PAT-")
    assert (tmp_path / "database/scripts/entities/Patient.py").read_text().startswith('"""Generate 12 Patient')
    s06.run_domain(domain_ctx(tmp_path, cfg, paths))
    db = tmp_path / "database/DentalCare"
    summary = io.read_json(db / "summary.json")
    assert summary["status"] == "ok"
    appt = io.read_json(db / "Appointment.json")
    assert len(appt["records"]) == 15 and (db / "scripts/Appointment.py").is_file()
    patients = {r["patient_id"] for r in pat["records"]}
    assert all(r["patient_id"] in patients for r in appt["records"])
    # the summary matches the data and the files
    s = summary["tables"]["Appointment"]
    assert s["count"] == 15 and s["sha256"] == io.sha256_file(db / "Appointment.json")
    assert s["columns"]["status"]["values"] == sorted({r["status"] for r in appt["records"]})
    assert summary["tables"]["Patient"]["file"] == "../entities/Patient.json"
    assert io.read_json(db / "tables.json")["tables"]["Invoice"] == "Invoice.json"
    inv = io.read_json(db / "Invoice.json")["records"]
    assert all(abs(r["total_amount"] - r["unit_price"] * r["quantity"]) < 0.011 for r in inv)
    # same seed -> identical tables
    other = tmp_path / "again"
    paths2 = build_entities(other, cfg)
    s06.run_domain(domain_ctx(other, cfg, paths2))
    for rel in ("Appointment.json", "Invoice.json"):
        assert io.read_json(db / rel)["records"] == io.read_json(other / "database/DentalCare" / rel)["records"]
    assert io.read_json(paths[0])["records"] == io.read_json(paths2[0])["records"]


def test_the_domain_job_writes_what_s06_s07_and_s08_write_as_three_steps(tmp_path):
    """The ``domain`` rule runs s06 (the domain's tables), s07 and s08 in one job: the same
    database, policy and graph, byte for byte, each with only its own inputs in meta."""
    from agentskiller.steps.domains import domain_job, s07_policy, s08_tool_graph

    cfg = config()
    paths = build_entities(tmp_path, cfg)
    bp, ents = FIX / "blueprint_dental.json", FIX / "entities_small.json"

    def outs(root: Path) -> dict[str, Path]:
        return {
            "db": root / "database/DentalCare",
            "policy": root / "policies/DentalCare.md",
            "report": root / "policies/DentalCare.json",
            "graph": root / "tool_graphs/DentalCare.json",
        }

    job, alone = outs(tmp_path / "job"), outs(tmp_path / "alone")
    given = {"blueprint": bp, "entities": ents, "entity_tables": paths}
    domain_job.run(
        StepContext.from_paths("s06-s08", cfg, inputs=given, outputs=job, wildcards={"domain": "DentalCare"})
    )
    for step, fn, inputs, made in (
        ("s06", s06.run_domain, given, ("db",)),
        ("s07", s07_policy.run, {"blueprint": bp, "entities": ents, "db": alone["db"]}, ("policy", "report")),
        (
            "s08",
            s08_tool_graph.run,
            {"blueprint": bp, "policy": alone["policy"], "policy_report": alone["report"]},
            ("graph",),
        ),
    ):
        outputs = {k: alone[k] for k in made}
        fn(StepContext.from_paths(step, cfg, inputs=inputs, outputs=outputs, wildcards={"domain": "DentalCare"}))
    written = sorted(p.relative_to(tmp_path / "job") for p in (tmp_path / "job").rglob("*") if p.is_file())
    assert len(written) > 6, written
    for rel in written:
        assert (tmp_path / "job" / rel).read_bytes() == (tmp_path / "alone" / rel).read_bytes(), rel
    graph = io.read_json(job["graph"])
    assert graph["status"] == "ok" and graph["trajectories"]
    assert graph["meta"]["step"] == "s08" and set(graph["meta"]["inputs"]) == {"blueprint", "policy", "policy_report"}
    assert io.read_json(job["report"])["status"] == "ok"


@pytest.fixture
def swap_handler():
    """Replace an offline handler for the test, restore the real one afterwards."""
    offline.load_handlers()
    saved = {}

    def swap(task, fn):
        saved.setdefault(task, offline.get_handler(task))
        offline.unregister(task)
        offline.handler(task)(fn)

    yield swap
    for task, fn in saved.items():
        offline.unregister(task)
        offline.handler(task)(fn)


BROKEN = """```python
import json, sys
json.dump([{"patient_id": "PAT-1", "full_name": "X"}] * 3, open(sys.argv[1], "w"))
```"""


def test_repair_loop_fixes_a_broken_script(tmp_path, swap_handler):
    real = offline.get_handler("s06.entity_script")
    seen = []

    def first_broken(req):
        seen.append(list(req.feedback))
        return BROKEN if req.round == 0 else real(req)

    swap_handler("s06.entity_script", first_broken)
    s06.run_entity(entity_ctx(tmp_path, "Patient", config()))
    table = io.read_json(tmp_path / "database/entities/Patient.json")
    assert table["status"] == "ok" and len(table["records"]) == 12
    rounds = table["generation"]["rounds"]
    assert len(rounds) == 2 and rounds[1]["errors"] == []
    assert any("expected exactly 12 records" in e for e in rounds[0]["errors"])
    assert any("not unique" in e for e in rounds[0]["errors"])
    assert seen[1] == rounds[0]["errors"]  # the model was told exactly what was wrong


@pytest.mark.parametrize(
    "script, reason",
    [
        ("```python\nwhile True:\n    pass\n```", "timeout"),
        ("```python\nraise SystemExit(3)\n```", "exited with status 3"),
    ],
)
def test_hanging_or_crashing_script_is_quarantined(tmp_path, swap_handler, script, reason):
    swap_handler("s06.entity_script", lambda req: script)
    cfg = config(max_repair_rounds=1)
    # CPU limit well above the wall-clock limit, so the loop always ends by the timeout
    cfg["sandbox"].update({"timeout_s": 2, "cpu_s": 30})
    s06.run_entity(entity_ctx(tmp_path, "Dentist", cfg))
    table = io.read_json(tmp_path / "database/entities/Dentist.json")
    assert table["status"] == "failed" and table["records"] == []
    assert table["reason"].startswith("s06: table Dentist: no generator passed the checks after 2 round(s)")
    assert reason in table["reason"]
    # the script that failed is kept for a person to debug
    assert (tmp_path / "database/scripts/entities/Dentist.py").read_text().strip() in script


def test_failed_blueprint_or_entity_quarantines_domain(tmp_path):
    cfg = config()
    bp = io.read_json(FIX / "blueprint_dental.json")
    failed = tmp_path / "bp_failed.json"
    io.write_json(failed, {"domain": "DentalCare", "status": "failed", "reason": "too few tools", "meta": bp["meta"]})
    s06.run_domain(domain_ctx(tmp_path, cfg, [], failed))
    summary = io.read_json(tmp_path / "database/DentalCare/summary.json")
    assert summary["status"] == "failed" and summary["tables"] == {}
    assert summary["reason"] == "fixture: too few tools"
    # a failed entity table
    ent = tmp_path / "ents"
    ent.mkdir()
    p = ent / "Patient.json"
    io.write_json(
        p,
        {
            "table": "Patient",
            "primary_key": "patient_id",
            "records": [],
            "status": "failed",
            "reason": "s06: table Patient: boom",
            "meta": {},
        },
    )
    out = tmp_path / "o2"
    s06.run_domain(domain_ctx(out, cfg, [p]))
    summary = io.read_json(out / "database/DentalCare/summary.json")
    assert summary["status"] == "failed" and not list((out / "database/DentalCare").glob("Appointment.json"))


def test_broken_fk_in_relationship_script_is_repaired(tmp_path, swap_handler):
    cfg = config()
    paths = build_entities(tmp_path, cfg)
    real = offline.get_handler("s06.relationship_script")

    def invent_ids(req):
        if req.round > 0:
            return real(req)
        code = codegen_data.strip_fence(real(req))
        return codegen_data.fenced(code.replace('rng.choice(pools["Patient"])', '"PAT-00000"'))

    swap_handler("s06.relationship_script", invent_ids)
    s06.run_domain(domain_ctx(tmp_path, cfg, paths))
    appt = io.read_json(tmp_path / "database/DentalCare/Appointment.json")
    first = appt["generation"]["rounds"][0]["errors"]
    assert any("foreign key is not a Patient primary key" in e for e in first)
    assert appt["status"] == "ok" and appt["generation"]["rounds_used"] == 2

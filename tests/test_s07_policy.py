"""s07: marker parser, policy checks, repair, quarantine, determinism."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from agentskiller import artifacts, io
from agentskiller.jobs import StepContext
from agentskiller.llm import offline
from agentskiller.llm.offline.provider import OfflineRequest
from agentskiller.models.blueprint import Blueprint
from agentskiller.models.policy_rules import derive_rules, rule_marker
from agentskiller.steps.domains import policy_markers as pm
from agentskiller.steps.domains import s07_policy

FIX = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]


def blueprint() -> Blueprint:
    data = io.read_json(FIX / "blueprint_dental.json")
    return Blueprint.model_validate({k: v for k, v in data.items() if k not in ("status", "meta")})


def schema() -> pm.PolicySchema:
    return pm.PolicySchema.from_blueprint(blueprint(), artifacts.load_entities(FIX / "entities_small.json"))


def rules():
    return derive_rules(blueprint(), artifacts.load_entities(FIX / "entities_small.json"))


def context() -> dict:
    return {
        "blueprint": blueprint().model_dump(exclude_none=True),
        "database": {},
        "simulation_time": "2025-06-02T09:00:00Z",
        "tools": [t.name for t in blueprint().tools],
        "rules": [r.model_dump(exclude_defaults=True) for r in rules()],
    }


def offline_policy(feedback=None, previous: str = "") -> str:
    fn = offline.get_handler("s07.policy")
    msgs = [{"role": "user", "content": "x"}] + ([{"role": "assistant", "content": previous}] if previous else [])
    return fn(
        OfflineRequest(
            task="s07.policy",
            messages=msgs,
            context=context(),
            rng=random.Random(1),
            feedback=list(feedback or []),
            round=1 if feedback else 0,
        )
    )


def test_offline_policy_passes_checks_and_parses():
    text = offline_policy()
    assert pm.check_policy(text, schema()) == []
    p = pm.parse_policy(text)
    assert p.order == [t.name for t in blueprint().tools]
    assert len(p.rules) >= 5 and "authorize_patient" in p.global_rules
    assert "`Appointment.status` is `scheduled`" in p.sections["cancel_appointment"]
    assert "confirmed" in p.sections["pay_invoice"]
    excerpt = pm.policy_for_tools(text, ["authorize_patient", "pay_invoice"])
    assert pm.parse_policy(excerpt).order == ["authorize_patient", "pay_invoice"]


def _section(name: str) -> str:
    return pm.parse_policy(offline_policy()).sections[name]


def test_missing_duplicate_and_unknown_sections():
    text = offline_policy()
    sec = _section("pay_invoice")
    dup = text.replace(
        pm.POLICY_END,
        f"{pm.tool_start('pay_invoice')}\n{sec}\n{pm.tool_end('pay_invoice')}\n"
        f"{pm.tool_start('fly_to_moon')}\n{sec}\n{pm.tool_end('fly_to_moon')}\n{pm.POLICY_END}",
    )
    errs = pm.check_policy(dup, schema())
    assert any("`pay_invoice` has 2 sections" in e for e in errs)
    assert any("unknown tool `fly_to_moon`" in e for e in errs)
    start = text.index(pm.tool_start("get_dentist"))
    end = text.index(pm.tool_end("get_dentist")) + len(pm.tool_end("get_dentist"))
    missing = text[:start] + text[end:]
    assert any("missing section for tool `get_dentist`" in e for e in pm.check_policy(missing, schema()))


def test_structural_problems_and_missing_parts():
    text = offline_policy()
    assert any("POLICY_START" in e for e in pm.check_policy(text.replace(pm.POLICY_START, ""), schema()))
    unclosed = text.replace(pm.tool_end("get_dentist"), "", 1)
    assert any("section get_dentist is not closed" in e for e in pm.parse_policy(unclosed).problems)
    no_effects = text.replace(
        "**Effects:**\n- None: the tool only reads data.\n<!-- TOOL_END: get_dentist -->",
        "<!-- TOOL_END: get_dentist -->",
    )
    assert any("`get_dentist` lacks the part(s) ['effects']" in e for e in pm.check_policy(no_effects, schema()))


@pytest.mark.parametrize(
    "snippet, bad",
    [
        ("`Appointment.room_number`", "unknown column `Appointment.room_number`"),
        ("Appointment.room_number in plain text", "unknown column `Appointment.room_number`"),
        ("`Insurance`", "unknown table `Insurance`"),
        ("`loyalty_points`", "unknown column or value `loyalty_points`"),
        ("`pending`", "unknown column or value `pending`"),
    ],
)
def test_unknown_mentions(snippet, bad):
    text = offline_policy().replace("- Call one tool at a time", f"- Check {snippet}.\n- Call one tool at a time")
    text = text.replace("- Make one tool call at a time", f"- Check {snippet}.\n- Make one tool call at a time")
    errs = pm.check_policy(text, schema())
    assert any(bad in e for e in errs), errs


def test_values_and_prose_are_not_mentions():
    s = schema()
    ok = "Use `PAT-10023`, `2025-06-02`, `42`, `true`, `scheduled`, `Invoice.total_amount`, Node.js and e.g. this."
    assert pm.find_mentions(ok, s) == []


def test_offline_repair_fixes_what_feedback_names():
    text = offline_policy()
    sec = _section("pay_invoice")
    broken = text.replace(
        "- Call one tool at a time", "- Always check `loyalty_points` first.\n- Call one tool at a time"
    )
    broken = broken.replace(
        "- Make one tool call at a time", "- Always check `loyalty_points` first.\n- Make one tool call at a time"
    )
    start = broken.index(pm.tool_start("get_dentist"))
    end = broken.index(pm.tool_end("get_dentist")) + len(pm.tool_end("get_dentist"))
    broken = broken[:start] + broken[end:]
    broken = broken.replace(
        pm.POLICY_END, f"{pm.tool_start('fly_to_moon')}\n{sec}\n{pm.tool_end('fly_to_moon')}\n{pm.POLICY_END}"
    )
    errs = pm.check_policy(broken, schema())
    assert len(errs) == 3
    fixed = offline_policy(errs, broken)
    assert pm.check_policy(fixed, schema()) == []
    assert "loyalty_points" not in fixed and "fly_to_moon" not in fixed


# ------------------------------------------------------------------ the step
def config() -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["llm"]["cache_mode"] = "off"
    return cfg


def make_db(tmp: Path, status: str = "ok") -> Path:
    db = tmp / "database/DentalCare"
    body = {"domain": "DentalCare", "status": status, "tables": {}, "meta": {"step": "s06"}}
    if status == "failed":
        body["reason"] = "s06: table Invoice: boom"
    io.write_json(db / "summary.json", body)
    return db


def step_ctx(tmp: Path, db: Path, bp: Path | None = None) -> StepContext:
    return StepContext.from_paths(
        "s07",
        config(),
        inputs={"blueprint": bp or FIX / "blueprint_dental.json", "entities": FIX / "entities_small.json", "db": db},
        outputs={"policy": tmp / "policies/DentalCare.md", "report": tmp / "policies/DentalCare.json"},
        wildcards={"domain": "DentalCare"},
    )


def test_step_writes_policy_and_report_deterministically(tmp_path):
    db = make_db(tmp_path)
    s07_policy.run(step_ctx(tmp_path, db))
    rep = io.read_json(tmp_path / "policies/DentalCare.json")
    assert rep["status"] == "ok" and rep["rounds_used"] == 1 and rep["errors"] == []
    assert rep["sections"] == [t.name for t in blueprint().tools]
    text = (tmp_path / "policies/DentalCare.md").read_text()
    assert rep["sha256"] == io.sha256_text(text)
    other = tmp_path / "again"
    s07_policy.run(step_ctx(other, db))
    assert (other / "policies/DentalCare.md").read_text() == text


def test_step_repairs_a_broken_first_draft(tmp_path):
    offline.load_handlers()
    real = offline.get_handler("s07.policy")

    def first_without_sections(req):
        text = real(req)
        if req.round == 0:
            return text.split(pm.GLOBAL_RULES_END)[0] + pm.GLOBAL_RULES_END + "\n" + pm.POLICY_END + "\n"
        return text

    offline.unregister("s07.policy")
    offline.handler("s07.policy")(first_without_sections)
    try:
        s07_policy.run(step_ctx(tmp_path, make_db(tmp_path)))
    finally:
        offline.unregister("s07.policy")
        offline.handler("s07.policy")(real)
    rep = io.read_json(tmp_path / "policies/DentalCare.json")
    assert rep["status"] == "ok" and rep["rounds_used"] == 2
    assert len(rep["rounds"][0]["errors"]) == len(blueprint().tools)


def test_failed_database_quarantines_policy(tmp_path):
    s07_policy.run(step_ctx(tmp_path, make_db(tmp_path, "failed")))
    rep = io.read_json(tmp_path / "policies/DentalCare.json")
    assert rep["status"] == "failed" and rep["reason"] == "s06: table Invoice: boom"
    assert (tmp_path / "policies/DentalCare.md").read_text() == ""


# ----------------------------------------------------------------------- rule markers
def test_offline_policy_states_every_rule_with_its_marker():
    text = offline_policy()
    assert pm.check_policy(text, schema(), rules()) == []
    stated = pm.stated_rules(text)
    for r in rules():
        assert r.id in stated, r.id
        assert stated[r.id][0] == r.tool, r.id
    # the assistant is shown the rules without their markers
    assert "RULE:" not in pm.policy_for_tools(text, [t.name for t in blueprint().tools])
    assert not any("RULE:" in line for line in pm.parse_policy(text).rules)


def _first(kind: str):
    return next(r for r in rules() if r.kind == kind)


def test_a_rule_without_its_marker_is_reported():
    rule = _first("precondition")
    text = offline_policy().replace(" " + rule_marker(rule.id), "")
    errs = pm.check_policy(text, schema(), rules())
    assert any(f"rule {rule.id} is not stated" in e for e in errs), errs


def test_a_marker_whose_line_does_not_state_the_rule_is_reported():
    rule = _first("precondition")
    text = offline_policy()
    line = pm.stated_rules(text)[rule.id][1]
    text = text.replace(line, f"- Be nice to the patient. {rule_marker(rule.id)}")
    errs = pm.check_policy(text, schema(), rules())
    assert any(f"the line marked {rule_marker(rule.id)} does not state its rule" in e for e in errs), errs


def test_unknown_misplaced_and_unmarked_rules_are_reported():
    text = offline_policy()
    sec = pm.parse_policy(text).sections["pay_invoice"]
    bad = text.replace(sec, sec + "\n- Anything goes. <!-- RULE: pay_invoice.magic -->")
    assert any("names no rule of this domain" in e for e in pm.check_policy(bad, schema(), rules()))
    auth = _first("authorization")
    line = pm.stated_rules(text)[auth.id][1]
    other = next(t for t in pm.parse_policy(text).order if t != auth.tool)
    moved = text.replace(line, "").replace(pm.tool_end(other), f"- {line[2:]}\n{pm.tool_end(other)}")
    assert any("stands in the section of" in e for e in pm.check_policy(moved, schema(), rules()))
    unmarked = text.replace(sec, sec + "\n- `notes` must lie after the current time.")
    errs = pm.check_policy(unmarked, schema(), rules())
    assert any("states a time rule without its marker" in e for e in errs), errs
    glob = text.replace(pm.GLOBAL_RULES_END, "- Always smile.\n" + pm.GLOBAL_RULES_END)
    assert any("has no marker" in e for e in pm.check_policy(glob, schema(), rules()))


def test_repair_rewrites_a_section_whose_rule_marker_is_wrong():
    rule = _first("precondition")
    broken = offline_policy().replace(" " + rule_marker(rule.id), "")
    feedback = pm.check_policy(broken, schema(), rules())
    fixed = offline_policy(feedback=feedback, previous=broken)
    assert pm.check_policy(fixed, schema(), rules()) == []

"""Step s09 on the fixture domain: generate, test in the sandbox, repair, quarantine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentskiller import io
from agentskiller.jobs import StepContext
from agentskiller.llm import LLMClient, LLMConfig
from agentskiller.llm.base import ProviderResponse
from agentskiller.llm.offline.provider import OfflineProvider
from agentskiller.runtime.environment import load_environment
from agentskiller.steps.domains import s09_server

FIXTURE = Path(__file__).parent / "fixtures" / "s09" / "outputs"
DOMAIN = "DentalCare"
ENTITIES = ("Patient", "Dentist", "Treatment")

#: a read tool that writes (the contract's read_only oracle must catch it)
BUG_OLD = "    return _get_appointment(ctx, appointment_id, user)\n"
BUG_NEW = (
    "    record = _get_appointment(ctx, appointment_id, user)\n"
    "    ctx.table('Appointment').update(appointment_id, {'duration_minutes': 999})\n"
    "    return record\n"
)


class BuggyProvider:
    """Wraps the offline provider; injects a bug into the code answers it is told to."""

    name = "buggy-offline"

    def __init__(self, buggy_tasks: set[str]) -> None:
        self.inner = OfflineProvider(seed=7)
        self.buggy_tasks = buggy_tasks
        self.calls: list[str] = []

    def cache_salt(self, request) -> dict:
        return {}

    def complete(self, request) -> ProviderResponse:
        self.calls.append(request.task)
        resp = self.inner.complete(request)
        if request.task in self.buggy_tasks:
            assert BUG_OLD in resp.text
            resp = ProviderResponse(
                text=resp.text.replace(BUG_OLD, BUG_NEW),
                model=resp.model,
                prompt_tokens=resp.prompt_tokens,
                completion_tokens=resp.completion_tokens,
            )
        return resp

    def close(self) -> None:
        pass


class ForbiddenProvider(BuggyProvider):
    def complete(self, request) -> ProviderResponse:
        raise AssertionError("a quarantined domain must not call the LLM")


def _config(out: Path, repairs: int = 2) -> dict:
    return {
        "seed": 7,
        "simulation_time": "2025-06-02T09:00:00Z",
        "outputs_dir": str(out),
        "llm": {
            "provider": "offline",
            "models": {"text": "offline-text", "code": "offline-code"},
            "cache_mode": "off",
            "cache_dir": str(out / ".llm_cache"),
            "max_repair_rounds": 2,
        },
        "server": {"max_repair_rounds": repairs},
        "sandbox": {
            "timeout_s": 60,
            "memory_mb": 1024,
            "cpu_s": 60,
            "max_processes": 64,
            "max_output_mb": 20,
            "isolate_network": True,
        },
    }


def make_ctx(tmp_path: Path, provider=None, repairs: int = 2) -> tuple[StepContext, Path]:
    out = tmp_path / "outputs"
    if not out.exists():
        shutil.copytree(FIXTURE, out)
    cfg = _config(out, repairs)
    llm = None
    if provider is not None:
        llm = LLMClient(LLMConfig.model_validate(cfg["llm"]), provider, seed=7)
    ctx = StepContext.from_paths(
        "s09",
        cfg,
        inputs={
            "blueprint": out / f"blueprints/{DOMAIN}.json",
            "tool_list": out / f"tool_lists/{DOMAIN}.json",
            "policy": out / f"policies/{DOMAIN}.md",
            "policy_report": out / f"policies/{DOMAIN}.json",
            "db": out / f"database/{DOMAIN}",
            "entity_tables": [out / f"database/entities/{e}.json" for e in ENTITIES],
        },
        outputs={"tools": out / f"servers/{DOMAIN}/tools.py", "report": out / f"servers/{DOMAIN}/report.json"},
        wildcards={"domain": DOMAIN},
        llm=llm,
    )
    return ctx, out / "servers" / DOMAIN


def report_of(server_dir: Path) -> dict:
    rep = io.read_json(server_dir / "report.json")
    assert io.validation_errors(rep, "server_report") == []
    return rep


def test_offline_run_passes_and_installs_a_real_server(tmp_path):
    ctx, server = make_ctx(tmp_path)
    s09_server.run(ctx)
    rep = report_of(server)
    assert rep["status"] == "passed", rep["reason"]
    assert rep["tests_run"] == rep["tests_passed"] >= 50
    assert rep["repair_rounds"] == 0 and len(rep["rounds"]) == 1
    assert rep["mcp_tools_match"] is True and rep["mcp_check"]["tool_count"] == 12
    ids = {t["id"] for t in rep["tests"]}
    assert {"tool_list.match", "cancel_appointment.precondition", "get_appointment.read_only"} <= ids
    # real tool code, not an interpreter of the blueprint
    code = (server / "tools.py").read_text()
    assert "def cancel_appointment(ctx: Context, appointment_id: str) -> dict:" in code
    assert "open(" not in code and "json" not in code and "blueprint" not in code.lower()
    # the manifest points into the database with paths relative to the server directory
    env = rep["environment"]
    assert env["tables"]["Appointment"] == "../../database/DentalCare/Appointment.json"
    assert env["tables"]["Patient"] == "../../database/entities/Patient.json"
    assert env["namespace"][DOMAIN]["Invoice"] == "Invoice"
    loaded = load_environment(server)
    assert sorted(loaded.toolset().names()) == sorted(
        t["function"]["name"] for t in io.read_json(ctx.inputs["tool_list"])["tools"]
    )


def test_buggy_first_answer_is_repaired(tmp_path):
    provider = BuggyProvider({"s09.tools"})
    ctx, server = make_ctx(tmp_path, provider)
    s09_server.run(ctx)
    rep = report_of(server)
    assert rep["status"] == "passed", rep["reason"]
    assert rep["repair_rounds"] == 1
    first = rep["rounds"][0]
    assert [f["id"] for f in first["failures"]] == ["get_appointment.read_only"]
    assert "changed tables ['Appointment']" in first["failures"][0]["detail"]
    assert rep["rounds"][1]["failures"] == []
    assert provider.calls == ["s09.tools", "s09.repair"]
    assert "duration_minutes': 999" not in (server / "tools.py").read_text()


def test_never_fixed_is_quarantined_with_a_clear_report(tmp_path):
    provider = BuggyProvider({"s09.tools", "s09.repair"})
    ctx, server = make_ctx(tmp_path, provider, repairs=1)
    s09_server.run(ctx)
    rep = report_of(server)
    assert rep["status"] == "failed"
    assert "get_appointment.read_only" in rep["reason"] and "1 repair round" in rep["reason"]
    assert rep["repair_rounds"] == 1 and len(rep["rounds"]) == 2
    assert all(r["failures"] for r in rep["rounds"])
    assert rep["environment"] is None and rep["mcp_tools_match"] is False
    text = (server / "tools.py").read_text()
    assert all(line.startswith("#") for line in text.splitlines()), text
    assert "Quarantined" in text
    with pytest.raises(Exception):
        load_environment(server)


def test_upstream_failure_quarantines_without_llm_calls(tmp_path):
    ctx, server = make_ctx(tmp_path, ForbiddenProvider(set()))
    report = ctx.inputs["policy_report"]
    data = io.read_json(report)
    data.update(status="failed", reason="policy never covered cancel_appointment")
    report.write_text(json.dumps(data))
    s09_server.run(ctx)
    rep = report_of(server)
    assert rep["status"] == "failed"
    assert rep["reason"] == "upstream failed: s07 policy: policy never covered cancel_appointment"
    assert rep["rounds"] == [] and rep["tests_run"] == 0
    assert (server / "tools.py").read_text().startswith("# Quarantined")


def test_policy_sections_stop_at_the_next_marker_or_heading():
    text = (
        "# P\n\nGlobal rule.\n\n<!-- TOOL: a -->\n### a\nrule a\n\n<!-- TOOL: b -->\n### b\nrule b\n\n"
        "## Bridge Rules\n- x\n"
    )
    assert s09_server.policy_sections(text) == {"a": "### a\nrule a", "b": "### b\nrule b"}
    assert s09_server.global_policy(text) == "# P\n\nGlobal rule."


def test_syntax_problems():
    assert s09_server.syntax_problems("def f(:\n") and not s09_server.syntax_problems("x = 1\n")

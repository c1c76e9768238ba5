"""Adversarial acceptance tests: hostile generated code is stopped, quarantined, cleaned up.

Acceptance (DESIGN.md, sandbox): "a generated script or tool module that loops forever,
allocates memory without bound, forks without bound, writes outside its directory, opens a
socket, or prints gigabytes. Each is stopped within its limits, the unit is quarantined with
a clear reason, the rest of the run completes, and the machine is left clean."

* s06: the code model's generator script for one entity table does the bad thing;
  ``s06_database.run_entity`` must return, write a failed table naming the limit, in
  bounded time, with nothing of the script left running.
* s09: the same six behaviours inside a generated tools.py (every tool runs the payload
  first); ``s09_server.run`` must quarantine the domain (failed report, clear reason), in
  bounded time, leave no process, and nothing may be written outside the sandbox.
* The workflow (slow): the real Snakemake run against the fake OpenAI server, one domain's
  tools module hostile: the run exits 0, that domain is quarantined downstream, the other
  domains pass.

The payloads (tests/adversarial_payloads.py) rename their processes to a unique marker, so
"nothing left running" is a /proc scan for *that* marker; while a step runs, a watcher
thread scans too, which shows the scan does see the payload's processes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml
from adversarial_payloads import BEHAVIOURS, entity_script, marker_processes, new_marker, poison_tools_module

from agentskiller import io
from agentskiller.jobs import StepContext
from agentskiller.llm import LLMClient, LLMConfig
from agentskiller.llm.base import ProviderResponse
from agentskiller.llm.offline.provider import OfflineProvider
from agentskiller.runtime.sandbox import REPO_ROOT
from agentskiller.steps.domains import s06_database as s06
from agentskiller.steps.domains import s09_server

TESTS = Path(__file__).resolve().parent
FIX = TESTS / "fixtures"
ROOT = os.geteuid() == 0

#: Small limits: each payload is stopped within a few seconds.
SANDBOX = {
    "timeout_s": 3,
    "memory_mb": 256,
    "cpu_s": 10,
    "max_processes": 32,
    "max_output_mb": 2,
    "isolate_network": True,
}
#: The s09 worker imports pydantic and the runtime before any tool runs; 256 MB of address
#: space is too little for that, so s09 gets a (still small) 768 MB. And 10 s: one worker runs
#: all 83 contract episodes, and the memory hog's bytearrays are zeroed page by page, so filling
#: 768 MB took the whole worker past 3 s on a loaded CI machine (a timeout, not the MemoryError).
S09_SANDBOX = {**SANDBOX, "memory_mb": 768, "timeout_s": 10}
#: No payload may take longer than this to be stopped and quarantined (seconds).
BOUND_S = 30

#: What the quarantine reason must say for each behaviour (SandboxResult.describe() or the
#: OS error the payload ran into).
S06_REASONS = {
    "loop": "wall-clock timeout",
    "memory": "memory limit exceeded",
    "fork": "process limit reached",
    # the first target is in the repo: read-only in the run's mount namespace (EROFS; under
    # the private /tmp tmpfs it would be EACCES)
    "write_outside": "Read-only file system",
    "socket": "Network is unreachable",
    "flood": "output size limit exceeded",
}
#: Behaviours whose containment is only guaranteed as root (uid drop, mount and network
#: namespaces, a per-run RLIMIT_NPROC). CI runs as root.
NEEDS_ROOT = {"fork", "write_outside", "socket"}


def _skip_unless_root(kind: str) -> None:
    if kind in NEEDS_ROOT and not ROOT:
        pytest.skip(f"{kind}: containment needs root (privilege drop, mount/network namespaces)")


# ---------------------------------------------------------------------------- helpers
class Listener:
    """A TCP server on 127.0.0.1 the socket payload tries to reach; reachable from here."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def connections(self) -> int:
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener():
    lst = Listener()
    # the control: the port is reachable from outside the sandbox
    socket.create_connection(("127.0.0.1", lst.port), timeout=2).close()
    time.sleep(0.05)
    assert lst.connections() == 1
    yield lst
    lst.close()


def escape_targets(tmp_path: Path, marker: str) -> list[Path]:
    """Files the write_outside payload tries to create: in the repo, in the run's outputs
    directory and in /tmp. None may exist afterwards."""
    return [
        REPO_ROOT / "tests" / f".{marker}_escape",
        tmp_path / "outputs" / f".{marker}_escape",
        Path("/tmp") / f".{marker}_escape",
    ]


def payload_kwargs(kind: str, tmp_path: Path, marker: str, listener: Listener) -> dict:
    if kind == "write_outside":
        return {"targets": escape_targets(tmp_path, marker)}
    if kind == "socket":
        return {"port": listener.port}
    return {}


class Watched:
    """Run ``fn`` in a thread while this thread scans /proc for the marker: how long it
    took, how many marked processes were seen at once, and what is left afterwards."""

    def __init__(self, fn, marker: str) -> None:
        self.marker = marker
        self.peak = 0
        self.error: BaseException | None = None
        t0 = time.monotonic()
        thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        thread.start()
        while thread.is_alive() and time.monotonic() - t0 < BOUND_S + 30:
            self.peak = max(self.peak, len(marker_processes(marker)))
            thread.join(0.05)
        self.seconds = time.monotonic() - t0
        self.finished = not thread.is_alive()
        self.left = marker_processes(marker)

    def _run(self, fn) -> None:
        try:
            fn()
        except BaseException as exc:  # reported by the test, not swallowed
            self.error = exc


class PayloadProvider:
    """The offline provider, except that the chosen tasks get ``rewrite(offline answer)``."""

    name = "adversarial-offline"

    def __init__(self, tasks: set[str], rewrite) -> None:
        self.inner = OfflineProvider(seed=7)
        self.tasks = tasks
        self.rewrite = rewrite
        self.calls: list[str] = []

    def cache_salt(self, request) -> dict:
        return {}

    def complete(self, request) -> ProviderResponse:
        self.calls.append(request.task)
        resp = self.inner.complete(request)
        if request.task in self.tasks:
            resp = ProviderResponse(
                text=self.rewrite(resp.text),
                model=resp.model,
                prompt_tokens=resp.prompt_tokens,
                completion_tokens=resp.completion_tokens,
            )
        return resp

    def close(self) -> None:
        pass


def client(cfg: dict, provider) -> LLMClient:
    return LLMClient(LLMConfig.model_validate(cfg["llm"]), provider, seed=cfg["seed"])


def _report_line(step: str, kind: str, w: Watched, reason: str) -> None:
    # Visible with -s / in the captured output of a failure: the figures the acceptance asks for.
    print(
        f"\n[{step} {kind}] stopped and quarantined in {w.seconds:.2f} s "
        f"(peak {w.peak} marked processes): {reason[:300]}"
    )


# -------------------------------------------------------------------------------- s06
def s06_config(tmp_path: Path) -> dict:
    cfg = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    cfg["outputs_dir"] = str(tmp_path / "outputs")
    cfg["llm"].update(cache_mode="off", cache_dir=str(tmp_path / ".llm_cache"))
    cfg["database"].update(entity_records=12, relationship_records=15, max_repair_rounds=0)
    cfg["sandbox"] = dict(SANDBOX)
    return cfg


def s06_entity_ctx(tmp_path: Path, cfg: dict, provider, name: str) -> StepContext:
    out = tmp_path / "outputs"
    return StepContext.from_paths(
        "s06",
        cfg,
        inputs={"entities": FIX / "entities_small.json"},
        outputs={
            "table": out / f"database/entities/{name}.json",
            "script": out / f"database/scripts/entities/{name}.py",
        },
        wildcards={"entity": name},
        llm=client(cfg, provider),
    )


@pytest.mark.parametrize("kind", BEHAVIOURS)
def test_s06_hostile_generator_script_is_stopped_and_quarantined(kind, tmp_path, listener):
    _skip_unless_root(kind)
    marker = new_marker()
    (tmp_path / "outputs").mkdir()
    script = entity_script(kind, marker, **payload_kwargs(kind, tmp_path, marker, listener))
    provider = PayloadProvider({"s06.entity_script"}, lambda _text: script)
    cfg = s06_config(tmp_path)

    w = Watched(lambda: s06.run_entity(s06_entity_ctx(tmp_path, cfg, provider, "Dentist")), marker)

    assert w.finished and w.error is None, w.error
    assert w.seconds < BOUND_S
    table = io.read_json(tmp_path / "outputs/database/entities/Dentist.json")
    assert io.validation_errors(table, "table") == []
    assert table["status"] == "failed" and table["records"] == []
    assert table["reason"].startswith("s06: table Dentist: no generator passed the checks after 1 round(s)")
    assert S06_REASONS[kind] in table["reason"], table["reason"]
    # the hostile script is kept for a person to read, next to the failed table
    assert marker in (tmp_path / "outputs/database/scripts/entities/Dentist.py").read_text()
    assert provider.calls == ["s06.entity_script"]  # max_repair_rounds 0: one answer
    assert w.left == [], f"processes of the payload survived: {w.left}"
    if kind in ("loop", "fork"):
        assert w.peak >= 1  # the scan does see the payload while it runs
    if kind == "write_outside":
        assert not any(t.exists() for t in escape_targets(tmp_path, marker))
    if kind == "socket":
        assert listener.connections() == 0
    _report_line("s06", kind, w, table["reason"])


#: What the quarantine reason says for the escapes past rlimits that stop a generator script.
S06_ESCAPE_REASONS = {"fifo": "is a FIFO", "disk_fill": "No space left on device"}


@pytest.mark.skipif(not ROOT, reason="the tmpfs quota and the launcher's output reader need root")
@pytest.mark.parametrize("kind", sorted(S06_ESCAPE_REASONS))
def test_s06_generator_script_escaping_past_rlimits_is_stopped(kind, tmp_path):
    """A FIFO as the output file (the reader must not hang) and a disk fill (the quota)."""
    marker = new_marker()
    (tmp_path / "outputs").mkdir()
    provider = PayloadProvider({"s06.entity_script"}, lambda _text: entity_script(kind, marker))
    cfg = s06_config(tmp_path)
    cfg["sandbox"]["disk_mb"] = 16
    w = Watched(lambda: s06.run_entity(s06_entity_ctx(tmp_path, cfg, provider, "Dentist")), marker)
    assert w.finished and w.error is None, w.error
    assert w.seconds < BOUND_S
    table = io.read_json(tmp_path / "outputs/database/entities/Dentist.json")
    assert table["status"] == "failed" and table["records"] == []
    assert S06_ESCAPE_REASONS[kind] in table["reason"], table["reason"]
    assert w.left == []
    _report_line("s06", kind, w, table["reason"])


def test_s06_a_hostile_table_does_not_stop_the_others(tmp_path):
    """The rest of the run completes: the next entity, with an honest script, still gets its
    table while the poisoned one is quarantined."""
    marker = new_marker()
    (tmp_path / "outputs").mkdir()
    cfg = s06_config(tmp_path)
    provider = PayloadProvider({"s06.entity_script"}, lambda _text: entity_script("loop", marker))
    s06.run_entity(s06_entity_ctx(tmp_path, cfg, provider, "Dentist"))
    honest = PayloadProvider(set(), lambda text: text)
    s06.run_entity(s06_entity_ctx(tmp_path, cfg, honest, "Patient"))
    assert io.read_json(tmp_path / "outputs/database/entities/Dentist.json")["status"] == "failed"
    patient = io.read_json(tmp_path / "outputs/database/entities/Patient.json")
    assert patient["status"] == "ok" and len(patient["records"]) == 12
    assert marker_processes(marker) == []


# -------------------------------------------------------------------------------- s09
S09_FIXTURE = FIX / "s09" / "outputs"
S09_DOMAIN = "DentalCare"
S09_ENTITIES = ("Patient", "Dentist", "Treatment")


def s09_ctx(tmp_path: Path, provider, sandbox: dict | None = None) -> tuple[StepContext, Path]:
    out = tmp_path / "outputs"
    if not out.exists():
        shutil.copytree(S09_FIXTURE, out)
    cfg = {
        "seed": 7,
        "simulation_time": "2025-06-02T09:00:00Z",
        "outputs_dir": str(out),
        "llm": {
            "provider": "offline",
            "models": {"text": "offline-text", "code": "offline-code"},
            "cache_mode": "off",
            "cache_dir": str(tmp_path / ".llm_cache"),
            "max_repair_rounds": 0,
        },
        "server": {"max_repair_rounds": 0},
        "sandbox": dict(sandbox or S09_SANDBOX),
    }
    ctx = StepContext.from_paths(
        "s09",
        cfg,
        inputs={
            "blueprint": out / f"blueprints/{S09_DOMAIN}.json",
            "tool_list": out / f"tool_lists/{S09_DOMAIN}.json",
            "policy": out / f"policies/{S09_DOMAIN}.md",
            "policy_report": out / f"policies/{S09_DOMAIN}.json",
            "db": out / f"database/{S09_DOMAIN}",
            "entity_tables": [out / f"database/entities/{e}.json" for e in S09_ENTITIES],
        },
        outputs={"tools": out / f"servers/{S09_DOMAIN}/tools.py", "report": out / f"servers/{S09_DOMAIN}/report.json"},
        wildcards={"domain": S09_DOMAIN},
        llm=client(cfg, provider),
    )
    return ctx, out / "servers" / S09_DOMAIN


def _code_of(answer: str) -> str:
    """The module inside the offline answer's fenced block."""
    body = answer.split("```python\n", 1)[1] if "```python\n" in answer else answer
    return body.rsplit("```", 1)[0]


def poisoning(kind: str, marker: str, at_import: bool = False, **kw):
    def rewrite(text: str) -> str:
        return "```python\n" + poison_tools_module(_code_of(text), kind, marker, at_import=at_import, **kw) + "```"

    return rewrite


def test_s09_control_the_honest_module_passes_under_the_small_limits(tmp_path):
    """Without it the s09 cases could pass for the wrong reason (limits too small for any
    module); the poisoned modules are this module plus the payload."""
    provider = PayloadProvider(set(), lambda text: text)
    ctx, server = s09_ctx(tmp_path, provider)
    s09_server.run(ctx)
    rep = io.read_json(server / "report.json")
    assert rep["status"] == "passed", rep["reason"]


#: What the s09 quarantine reason must name for each behaviour (its most common failure).
#: A fork bomb inside a long-running worker ends either way: the worker's own fork fails
#: (BlockingIOError) and it finishes, or its forked copies keep it busy until the timeout.
S09_SIGNS = {
    "loop": ("wall-clock timeout",),
    "memory": ("MemoryError",),
    "fork": ("BlockingIOError", "process limit reached", "wall-clock timeout"),
    "write_outside": ("Read-only file system", "Permission denied"),
    "socket": ("Network is unreachable",),
    "flood": ("output size limit exceeded",),
}


@pytest.mark.parametrize("kind", BEHAVIOURS)
def test_s09_hostile_tools_module_is_stopped_and_quarantined(kind, tmp_path, listener):
    _skip_unless_root(kind)
    marker = new_marker()
    provider = PayloadProvider(
        {"s09.tools", "s09.repair"}, poisoning(kind, marker, **payload_kwargs(kind, tmp_path, marker, listener))
    )
    ctx, server = s09_ctx(tmp_path, provider)

    w = Watched(lambda: s09_server.run(ctx), marker)

    assert w.finished and w.error is None, w.error
    assert w.seconds < BOUND_S
    rep = io.read_json(server / "report.json")
    assert io.validation_errors(rep, "server_report") == []
    assert rep["status"] == "failed", rep
    assert rep["environment"] is None and rep["mcp_check"]["ran"] is False  # never served
    assert rep["reason"].startswith("contract tests still failing after 0 repair round(s)")
    assert "most common failure" in rep["reason"]
    assert any(sign in rep["reason"] for sign in S09_SIGNS[kind]), rep["reason"]
    # the hostile code is not installed: tools.py is only the quarantine comment
    text = (server / "tools.py").read_text()
    assert all(line.startswith("#") for line in text.splitlines()) and "Quarantined" in text
    assert provider.calls == ["s09.tools"]
    assert w.left == [], f"processes of the payload survived: {w.left}"
    if kind in ("loop", "fork"):
        assert w.peak >= 1
    if kind == "write_outside":
        assert not any(t.exists() for t in escape_targets(tmp_path, marker))
    if kind == "socket":
        assert listener.connections() == 0
    _report_line("s09", kind, w, rep["reason"].split("; most common failure")[-1])


@pytest.mark.skipif(not ROOT, reason="the process limit is per run only as root")
def test_s09_fork_bomb_at_import_time_is_stopped(tmp_path):
    """The payload runs when the module is imported (worker and signature check), not in a tool."""
    marker = new_marker()
    provider = PayloadProvider({"s09.tools", "s09.repair"}, poisoning("fork", marker, at_import=True))
    ctx, server = s09_ctx(tmp_path, provider)
    w = Watched(lambda: s09_server.run(ctx), marker)
    assert w.finished and w.error is None and w.seconds < BOUND_S
    rep = io.read_json(server / "report.json")
    assert rep["status"] == "failed"
    assert "worker failed: stopped: process limit reached" in rep["reason"], rep["reason"]
    assert w.left == []
    _report_line("s09", "fork@import", w, rep["reason"].split("; most common failure")[-1])


@pytest.mark.skipif(not ROOT, reason="the sandbox drops root; without root there is no difference to detect")
def test_s09_module_that_behaves_only_in_the_sandbox_cannot_escape_in_the_mcp_check(tmp_path):
    """A module that passes every contract test (in the sandbox it is harmless) but writes a
    file when it finds itself running as root: the live MCP check imports it too."""
    escaped = tmp_path / "escaped_from_mcp_check"
    sneaky = (
        "import os as _os\n"
        "if _os.getuid() == 0:  # the sandbox always runs code as an unprivileged uid\n"
        f"    open({str(escaped)!r}, 'w').write('escaped')\n"
    )
    provider = PayloadProvider(
        {"s09.tools", "s09.repair"}, lambda text: "```python\n" + _code_of(text) + "\n" + sneaky + "```"
    )
    ctx, server = s09_ctx(tmp_path, provider)
    s09_server.run(ctx)
    rep = io.read_json(server / "report.json")
    assert rep["rounds"][0]["failures"] == []  # in the sandbox the module is well-behaved
    assert not escaped.exists(), f"generated code ran outside the sandbox (report: {rep['status']})"
    # and the live check did import it (sandboxed, like every run): the server passed
    assert rep["status"] == "passed" and rep["mcp_check"]["tools_match"] is True, rep["mcp_check"]


# --------------------------------------------------------------------------- workflow
WF_SEED = 7  # config/config.yaml's seed: the bridge answers with the workflow's seed
WF_KEY_ENV = "AGENTSKILLER_TEST_ADVERSARIAL_KEY"
#: the victim's tools module forks without bound in every tool
WF_KIND = "fork"


def hostile_bridge(victim: str, kind: str, marker: str):
    """offline_bridge, except that the victim domain's tools modules (first answer and
    every repair) are hostile."""
    from fake_openai import offline_bridge

    from agentskiller.prompts import extract_context

    honest = offline_bridge(WF_SEED)
    served: list[str] = []

    def respond(body: dict, headers: dict) -> str:
        text = honest(body, headers)
        task = headers.get("x-agentskiller-task")
        if task in ("s09.tools", "s09.repair") and extract_context(body.get("messages") or []).get("domain") == victim:
            served.append(task)
            return poisoning(kind, marker)(text)
        return text

    respond.served = served  # type: ignore[attr-defined]
    return respond


@pytest.mark.slow
@pytest.mark.skipif(not ROOT, reason="the fork bomb is contained per run only as root")
def test_workflow_completes_with_one_hostile_domain_quarantined(tmp_path):
    """The real workflow (openai provider against the fake server), two domains, one of
    them with a fork-bombing tools module: snakemake exits 0, the victim is quarantined at
    s09 and downstream (dataset stats name it), the other domain passes, nothing is left."""
    from fake_openai import FakeOpenAI, offline_bridge
    from workflow_helpers import snakemake, write_config

    work = tmp_path / "run"
    work.mkdir()
    marker = new_marker()
    # The victim is known only once the outlines exist: the server's responder is swapped
    # between the two snakemake calls.
    victim_box = {"respond": offline_bridge(WF_SEED)}

    def responder(body: dict, headers: dict) -> str:
        return victim_box["respond"](body, headers)

    with FakeOpenAI(responder) as srv:
        cfg = write_config(
            work,
            **{
                "llm.provider": "openai",
                "llm.base_url": srv.base_url,
                "llm.api_key_env": WF_KEY_ENV,
                "llm.models.text": "fake-text-model",
                "llm.models.code": "fake-code-model",
                "llm.timeout_s": 30,
                "llm.backoff_initial_s": 0.01,
                "llm.backoff_max_s": 0.05,
                "llm.cache_dir": str(work / ".llm_cache"),
                "blueprints.max_domains": 2,
                "server.max_repair_rounds": 1,
                "sandbox.timeout_s": 5,
                "sandbox.cpu_s": 10,
                "sandbox.max_processes": 32,
                "sandbox.max_output_mb": 2,
                # the fake answers the generation steps; the rollouts use the offline simulators
                "rollout.user": "offline",
                "rollout.assistant": "offline",
            },
        )
        env = {WF_KEY_ENV: "sk-test-adversarial-not-a-secret"}
        first = snakemake(work, "--cores", "2", "outputs/blueprints/outlines.json", config=cfg, env=env)
        assert first.returncode == 0, first.output[-4000:]
        domains = sorted(d["domain"] for d in io.read_json(work / "outputs/blueprints/outlines.json")["domains"])
        assert len(domains) == 2, domains
        victim, other = domains
        hostile = hostile_bridge(victim, WF_KIND, marker)
        victim_box["respond"] = hostile
        t0 = time.monotonic()
        res = snakemake(work, "--cores", "2", config=cfg, env=env, timeout=600)
        seconds = time.monotonic() - t0
    assert res.returncode == 0, res.output[-6000:]
    assert hostile.served == ["s09.tools", "s09.repair"]  # the hostile module, then its "repair"

    out = work / "outputs"
    rep = io.read_json(out / f"servers/{victim}/report.json")
    assert rep["status"] == "failed" and rep["environment"] is None
    assert rep["reason"].startswith("contract tests still failing after 1 repair round(s)"), rep["reason"]
    assert any(sign in rep["reason"] for sign in S09_SIGNS[WF_KIND]), rep["reason"]
    assert (out / f"servers/{victim}/tools.py").read_text().startswith("# Quarantined")
    good = io.read_json(out / f"servers/{other}/report.json")
    assert good["status"] == "passed" and good["mcp_tools_match"], good["reason"]
    # s08 ran before the server existed: both tool graphs are fine
    for d in domains:
        assert io.read_json(out / f"tool_graphs/{d}.json").get("status", "ok") != "failed"
    # downstream: the victim carries the quarantine, the other domain produced data
    assert io.read_json(out / f"task_templates/{victim}.json")["status"] == "failed"
    stats = io.read_json(out / "dataset/stats.json")
    assert stats["per_env"][victim]["status"] == "failed"
    assert "contract tests still failing" in stats["per_env"][victim]["reason"], stats["per_env"][victim]
    assert stats["per_env"][other]["status"] == "ok" and stats["per_env"][other]["queries"] > 0
    envs = {json.loads(line)["env"] for line in (out / "dataset/train.jsonl").read_text().splitlines() if line.strip()}
    assert envs == {other}  # the training set holds the other domain's rows only
    # the machine is clean: nothing of the payload runs, nothing was left in the repo
    assert marker_processes(marker) == []
    print(
        f"\n[workflow] {len(domains)} domains, victim {victim}: whole workflow in {seconds:.1f} s; "
        f"reason: {rep['reason'][:200]}"
    )

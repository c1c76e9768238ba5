"""s01-s05 through real ``snakemake`` runs with ``llm.provider: openai`` against a local fake.

The fake (tests/fake_openai.py) runs in this test process on 127.0.0.1 and answers every
request like the offline provider (``offline_bridge``), so the openai code path (HTTP, SDK,
retries, response formats, repair rounds) is exercised by the real workflow while the
expected artifacts stay known. Four runs, each in a fresh directory with its own cache:

* clean: no faults;
* faulty: 30 % of chat requests fail (every fault kind): same bytes under outputs/;
* dead: every request fails with a transport fault: the workflow fails cleanly;
* offline: ``provider: offline``: same artifacts as clean, up to the ``meta`` block.

Runs are memoised per session (:func:`shared_run`) so test_secrets.py inspects the very same
directories and server recordings without paying for the runs again.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fake_openai import ALL_FAULTS, TRANSPORT_FAULTS, FakeOpenAI, Faults, Recorded, offline_bridge
from workflow_helpers import RunResult, artifact_files, snakemake, usage_rows, write_config

from agentskiller import io

SEED = 7  # config/config.yaml's seed: the bridge must answer with the workflow's seed
KEY_ENV = "AGENTSKILLER_TEST_OPENAI_KEY"
#: A fake secret, fresh per session: any hit of it on disk is a leak, never a coincidence.
SECRET = f"sk-test-SECRET-{secrets.token_hex(16)}"

# Timeouts (fault runs): the fake's "slow" fault answers after SLOW_S, past the client's
# TIMEOUT_S, so it is a real client-side timeout; an ordinary answer takes well under 0.5 s
# (and one that does not is merely retried).
TIMEOUT_S = 1.0
SLOW_S = 2.0

# Fault-RNG seed for the 30 % run. Which request gets a fault depends on arrival order, but
# the sequence of draws is fixed by this seed. 32 puts every kind in the first 60 draws
# (about 23 faults, 7 of them malformed/schema) while its first truncations are 13+ draws
# apart: a request truncated three times running (which the provider gives up on after
# doubling max_tokens twice) cannot happen with at most 8 requests in flight.
FAULT_SEED = 32


@dataclass
class OpenAIRun:
    work: Path
    base_url: str
    results: list[RunResult]
    requests: list[Recorded] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.returncode == 0 for r in self.results)

    @property
    def output(self) -> str:
        return "\n".join(r.output for r in self.results)

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.rstrip("/") == "/v1/chat/completions"]


def openai_config(work: Path, base_url: str, **overrides) -> Path:
    return write_config(
        work,
        **{
            "llm.provider": "openai",
            "llm.base_url": base_url,
            "llm.api_key_env": KEY_ENV,
            "llm.models.text": "fake-text-model",
            "llm.models.code": "fake-code-model",
            "llm.timeout_s": TIMEOUT_S,
            "llm.backoff_initial_s": 0.01,
            "llm.backoff_max_s": 0.05,
            # A malformed or schema-breaking answer costs one repair round on top of the
            # rounds the offline answers themselves may need (s04 blueprints are repaired by
            # design), so the default of 3 could run out under 30 % faults; 6 cannot in practice.
            "llm.max_repair_rounds": 6,
            **overrides,
        },
    )


def run_s01_s05(work: Path, config: Path, env: dict | None = None) -> list[RunResult]:
    """s01-s05 as a user would ask for them: the blueprint index, then (once the outlines
    checkpoint has named the domains) every domain's tool list. The rules stay untouched:
    these are plain file targets."""
    first = snakemake(work, "--cores", "2", "outputs/blueprints/index.json", config=config, env=env)
    if first.returncode != 0:
        return [first]
    outlines = io.read_json(work / "outputs/blueprints/outlines.json")
    targets = [
        "outputs/blueprints/index.json",
        *(f"outputs/tool_lists/{d['domain']}.json" for d in outlines["domains"]),
    ]
    second = snakemake(work, "--cores", "2", *targets, config=config, env=env)
    return [first, second]


def _warm_up_bridge() -> None:
    """Load the offline handlers and catalogue in this process before the server answers:
    done lazily on the first request they can take longer than a short client timeout."""
    from agentskiller.llm.offline.catalog import load_catalog
    from agentskiller.llm.offline.provider import load_handlers

    load_handlers()
    load_catalog()


def _run_openai(work: Path, faults: Faults, **overrides) -> OpenAIRun:
    work.mkdir(parents=True, exist_ok=True)
    _warm_up_bridge()
    with FakeOpenAI(offline_bridge(SEED), faults=faults) as srv:
        cfg = openai_config(work, srv.base_url, **overrides)
        results = run_s01_s05(work, cfg, env={KEY_ENV: SECRET})
        return OpenAIRun(work, srv.base_url, results, list(srv.requests))


def _run_offline(work: Path) -> OpenAIRun:
    work.mkdir(parents=True, exist_ok=True)
    return OpenAIRun(work, "", run_s01_s05(work, write_config(work)))


_RUNS: dict[str, OpenAIRun] = {}
_RUNS_LOCK = threading.Lock()
_KINDS = {
    # No slow faults here, so no short timeout either: on a busy machine an ordinary answer
    # could exceed 1 s, and the clean run must send each request exactly once.
    "clean": lambda w: _run_openai(w, Faults(rate=0.0), **{"llm.timeout_s": 60}),
    "faulty": lambda w: _run_openai(w, Faults(rate=0.3, kinds=ALL_FAULTS, seed=FAULT_SEED, slow_s=SLOW_S)),
    # Only transport faults: every attempt fails before an answer exists. Few retries keep
    # the failing run short; it must fail either way.
    "dead": lambda w: _run_openai(
        w, Faults(rate=1.0, kinds=TRANSPORT_FAULTS, seed=3, slow_s=SLOW_S), **{"llm.max_retries": 3}
    ),
    "offline": _run_offline,
}


def shared_run(kind: str, tmp_path_factory: pytest.TempPathFactory) -> OpenAIRun:
    """The session's one run of ``kind`` (clean | faulty | dead | offline), made on first use."""
    with _RUNS_LOCK:
        if kind not in _RUNS:
            _RUNS[kind] = _KINDS[kind](tmp_path_factory.mktemp(f"openai_{kind}"))
        return _RUNS[kind]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> OpenAIRun:
    run = shared_run("clean", tmp_path_factory)
    assert run.ok, run.output[-6000:]
    return run


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory) -> OpenAIRun:
    run = shared_run("faulty", tmp_path_factory)
    assert run.ok, run.output[-6000:]
    return run


@pytest.fixture(scope="module")
def dead_run(tmp_path_factory) -> OpenAIRun:
    return shared_run("dead", tmp_path_factory)


def strip_meta(value):
    """A JSON value without any ``meta`` block (provider, models, input hashes)."""
    if isinstance(value, dict):
        return {k: strip_meta(v) for k, v in value.items() if k != "meta"}
    if isinstance(value, list):
        return [strip_meta(v) for v in value]
    return value


# --------------------------------------------------------------------------- clean
def test_clean_run_produces_s01_s05_through_the_openai_provider(clean_run):
    files = artifact_files(clean_run.work)
    outlines = io.read_json(clean_run.work / "outputs/blueprints/outlines.json")
    domains = [d["domain"] for d in outlines["domains"]]
    assert domains
    expected = {
        "topics.json",
        "entities.json",
        "entity_graph.json",
        "blueprints/outlines.json",
        "blueprints/index.json",
        *(f"blueprints/{d}.json" for d in domains),
        *(f"tool_lists/{d}.json" for d in domains),
    }
    assert set(files) == expected, sorted(set(files) ^ expected)
    for name in ("topics.json", "entities.json", "blueprints/index.json", f"blueprints/{domains[0]}.json"):
        meta = io.read_json(clean_run.work / "outputs" / name)["meta"]
        assert meta["provider"] == "openai"
        assert meta["models"] == {"text": "fake-text-model", "code": "fake-code-model"}

    chats = clean_run.chat_requests()
    tasks = {r.headers.get("x-agentskiller-task") for r in chats}
    assert {
        "s01.expand_topics",
        "s02.extract_entities",
        "s03.relate_entities",
        "s04.outlines",
        "s04.blueprint_detail",
    } <= tasks, tasks
    assert all(r.status == 200 and r.fault is None for r in chats)
    assert {r.body["model"] for r in chats} == {"fake-text-model"}
    # every provider call is accounted for in the job logs, one usage line per request
    rows = [r for r in usage_rows(clean_run.work) if not r["cache_hit"]]
    assert len(rows) == len(chats), (len(rows), len(chats))
    assert {r["provider"] for r in rows} == {"openai"}


def test_clean_rerun_is_a_no_op(clean_run):
    cfg = clean_run.work / "config.yaml"
    # The fake server is gone: anything that still wanted to call it would fail.
    res = snakemake(
        clean_run.work, "--cores", "2", "-n", "outputs/blueprints/index.json", config=cfg, env={KEY_ENV: SECRET}
    )
    assert res.returncode == 0, res.output[-3000:]
    assert "Nothing to be done" in res.output, res.output[-3000:]


# -------------------------------------------------------------------------- faulty
def test_30_percent_faults_give_byte_identical_artifacts(clean_run, faulty_run):
    chats = faulty_run.chat_requests()
    faults = [r.fault for r in chats if r.fault]
    # the faults really happened, of both families: transport and content
    assert len(faults) >= 0.15 * len(chats), (len(faults), len(chats))
    assert set(faults) & set(TRANSPORT_FAULTS), faults
    assert set(faults) & {"truncate", "malformed", "schema"}, faults
    assert len(chats) > len(clean_run.chat_requests())

    a, b = artifact_files(clean_run.work), artifact_files(faulty_run.work)
    assert sorted(a) == sorted(b)
    differing = [k for k in a if a[k] != b[k]]
    assert not differing, differing


def test_content_faults_cost_repair_rounds_not_results(faulty_run):
    rows = usage_rows(faulty_run.work)
    chats = faulty_run.chat_requests()
    broken = [r for r in chats if r.fault in ("malformed", "schema")]
    if not broken:
        pytest.skip("no malformed/schema fault was drawn in this run")
    # a broken answer is seen by the client and answered with a repair round
    assert any(r["round"] > 0 for r in rows), "a broken answer must lead to a repair round"
    repair_msgs = [r for r in chats if any(m.get("role") == "assistant" for m in r.body.get("messages", []))]
    assert repair_msgs, "repair requests carry the previous answer"


# ---------------------------------------------------------------------------- dead
def test_all_requests_failing_fails_cleanly(dead_run):
    assert not dead_run.ok
    res = dead_run.results[-1]
    assert res.returncode != 0
    chats = dead_run.chat_requests()
    assert chats and all(r.fault in TRANSPORT_FAULTS for r in chats)
    # 1 + llm.max_retries attempts for the one request of the first step, then it gave up
    assert len(chats) == 4, [r.fault for r in chats]

    log = (dead_run.work / "logs/topics/topics.log").read_text()
    for text, where in ((log, "job log"), (res.stderr, "snakemake stderr")):
        assert dead_run.base_url in text, where
        assert "last error:" in text, where
    last_error = log.split("last error:", 1)[1].splitlines()[0]
    expected = {"429": "HTTP 429", "500": "HTTP 500", "slow": "APITimeoutError"}[chats[-1].fault]
    assert expected in last_error, (chats[-1].fault, last_error)

    # no partial artifact: the failing step's output is absent, nothing half-written remains
    outputs = dead_run.work / "outputs"
    assert not (outputs / "topics.json").exists()
    leftovers = [p for p in outputs.rglob("*") if p.is_file()] if outputs.exists() else []
    assert not leftovers, leftovers
    tmp_files = [p for p in dead_run.work.rglob("*.tmp")]
    assert not tmp_files, tmp_files


# ------------------------------------------------------------------------- offline
def test_openai_and_offline_artifacts_differ_only_in_meta(clean_run, tmp_path_factory):
    offline = shared_run("offline", tmp_path_factory)
    assert offline.ok, offline.output[-6000:]
    a, b = artifact_files(clean_run.work), artifact_files(offline.work)
    assert sorted(a) == sorted(b)
    differing = []
    for name in a:
        ja, jb = json.loads(a[name]), json.loads(b[name])
        assert ja["meta"]["provider"] == "openai" and jb["meta"]["provider"] == "offline"
        if strip_meta(ja) != strip_meta(jb):
            differing.append(name)
    assert not differing, differing

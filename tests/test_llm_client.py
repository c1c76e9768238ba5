"""LLM client on the offline provider: cache, self-correction loop, usage lines, map."""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from agentskiller.llm import (
    LLMClient,
    LLMConfig,
    LLMError,
    LLMRequestError,
    LLMTransportError,
    extract_code,
    extract_json,
)
from agentskiller.llm.base import ProviderResponse, format_feedback, parse_feedback
from agentskiller.llm.cache import STALE_TMP_S, ResponseCache, cache_key
from agentskiller.llm.extract import split_reasoning
from agentskiller.llm.offline import OfflineRequest, handler, run_handler
from agentskiller.llm.usage import parse_usage_lines, summarize


# ------------------------------------------------------------ test handlers
class Person(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    age: int


@handler("test.person")
def _person(req: OfflineRequest) -> dict:
    return {"name": req.context["name"], "age": req.rng.randint(18, 90)}


@handler("test.flaky_json")
def _flaky_json(req: OfflineRequest) -> str:
    # Round 0: prose + broken JSON; round 1: fenced JSON inside prose (must be extracted).
    if req.round == 0:
        return 'Sure! Here it is: {"name": "Ada", "age": '
    return 'Here you go:\n```json\n{"name": "Ada", "age": 36}\n```\nAnything else?'


@handler("test.wrong_type")
def _wrong_type(req: OfflineRequest) -> dict:
    # Always invalid for Person: the bound must end the loop.
    return {"name": "Bob", "age": "old"}


@handler("test.counter")
def _counter(req: OfflineRequest) -> dict:
    # Answers with what it was told: the number of feedback items and the round.
    return {"round": req.round, "feedback": req.feedback}


class CounterAnswer(BaseModel):
    round: int
    feedback: list[str]


@handler("test.code")
def _code(req: OfflineRequest) -> str:
    return (
        "Plan first.\n```text\nnot code\n```\n```python\ndef f(x):\n    return x + 1\n```\n"
        "```python\nprint('second')\n```"
    )


@handler("test.text")
def _text(req: OfflineRequest) -> str:
    return f"hello {req.context['who']}"


def _msgs(text: str = "question") -> list[dict]:
    return [{"role": "system", "content": "You are a test."}, {"role": "user", "content": text}]


def _client(cfg: dict, usage=None, **over) -> LLMClient:
    return LLMClient.from_config({**cfg, **over}, seed=7, usage_log=usage.logger if usage else None)


def _cache_files(cfg: dict) -> list[Path]:
    return sorted(Path(cfg["cache_dir"]).rglob("*.json"))


# ------------------------------------------------------------ basic answers
def test_structured_answer_is_deterministic_per_seed_and_context(offline_llm_config):
    c1 = _client(offline_llm_config, cache_mode="off")
    a = c1.generate("test.person", _msgs(), schema=Person, context={"name": "Ada"})
    b = c1.generate("test.person", _msgs(), schema=Person, context={"name": "Ada"})
    assert isinstance(a, Person) and a == b and a.name == "Ada" and 18 <= a.age <= 90
    other_seed = LLMClient.from_config({**offline_llm_config, "cache_mode": "off"}, seed=8)
    ages = {
        other_seed.generate("test.person", _msgs(), schema=Person, context={"name": n}).age
        for n in ("a", "b", "c", "d", "e", "f")
    }
    assert len(ages) > 1  # the context reaches the RNG


def test_unknown_task_is_a_clear_error(offline_llm_config):
    with pytest.raises(LLMError, match="offline provider has no handler for task test.nope"):
        _client(offline_llm_config).generate("test.nope", _msgs())


def test_code_role_returns_first_python_block(offline_llm_config):
    code = _client(offline_llm_config).generate("test.code", _msgs(), role="code")
    assert code == "def f(x):\n    return x + 1\n"


def test_text_answer_and_check_on_text(offline_llm_config):
    c = _client(offline_llm_config)
    assert c.generate("test.text", _msgs(), context={"who": "you"}) == "hello you"
    with pytest.raises(LLMError, match="must mention world"):
        c.generate(
            "test.text",
            _msgs(),
            context={"who": "you"},
            check=lambda t: [] if "world" in t else ["must mention world"],
            max_rounds=1,
        )


# ------------------------------------------------------------ self-correction
def test_invalid_json_then_valid(offline_llm_config, usage_log):
    c = _client(offline_llm_config, usage_log)
    p = c.generate("test.flaky_json", _msgs(), schema=Person)
    assert p == Person(name="Ada", age=36)
    assert c.stats.provider_calls == 2 and c.stats.repair_rounds == 1
    rows = parse_usage_lines(usage_log.text)
    assert [r["round"] for r in rows] == [0, 1]


def test_check_feedback_reaches_the_next_round(offline_llm_config):
    c = _client(offline_llm_config)

    def check(ans: CounterAnswer) -> list[str]:
        return [] if ans.round >= 2 else [f"round {ans.round} is too early", "second\nline"]

    ans = c.generate("test.counter", _msgs(), schema=CounterAnswer, check=check)
    assert ans.round == 2
    assert ans.feedback == ["round 1 is too early", "second\nline"]  # multi-line errors survive


def test_bound_reached_raises_naming_task_and_errors(offline_llm_config):
    c = _client(offline_llm_config)
    with pytest.raises(LLMError) as ei:
        c.generate("test.wrong_type", _msgs(), schema=Person, max_rounds=2)
    msg = str(ei.value)
    assert "test.wrong_type" in msg and "3 round(s)" in msg and "age" in msg
    assert c.stats.provider_calls == 3


def test_check_crash_is_reported_as_problem(offline_llm_config):
    def bad_check(p: Person) -> list[str]:
        raise KeyError("boom")

    with pytest.raises(LLMError, match="could not be checked: KeyError"):
        _client(offline_llm_config).generate(
            "test.person", _msgs(), schema=Person, context={"name": "x"}, check=bad_check, max_rounds=0
        )


def test_feedback_message_roundtrip():
    errs = ["a: missing", "multi\nline\n  indented", ""]
    text = format_feedback(errs)
    assert text.startswith("Your previous answer had these problems:")
    assert parse_feedback(text) == errs
    assert parse_feedback("just a question") is None


# --------------------------------------------------------------------- cache
def test_rerun_costs_zero_provider_calls_including_repairs(offline_llm_config, usage_log):
    c1 = _client(offline_llm_config)
    first = c1.generate("test.flaky_json", _msgs(), schema=Person)
    second = c1.generate("test.person", _msgs(), schema=Person, context={"name": "Eve"})
    assert c1.stats.provider_calls == 3 and len(_cache_files(offline_llm_config)) == 3

    c2 = _client(offline_llm_config, usage_log)
    assert c2.generate("test.flaky_json", _msgs(), schema=Person) == first
    assert c2.generate("test.person", _msgs(), schema=Person, context={"name": "Eve"}) == second
    assert c2.stats.provider_calls == 0 and c2.stats.cache_hits == 3
    rows = parse_usage_lines(usage_log.text)
    assert len(rows) == 3 and all(r["cache_hit"] for r in rows)


def test_cache_key_depends_on_inputs(offline_llm_config):
    c = _client(offline_llm_config)
    c.generate("test.person", _msgs("q1"), schema=Person, context={"name": "A"})
    c.generate("test.person", _msgs("q2"), schema=Person, context={"name": "A"})  # messages
    c.generate("test.person", _msgs("q1"), schema=Person, context={"name": "B"})  # context (offline)
    _client(offline_llm_config, temperature=0.5).generate(
        "test.person", _msgs("q1"), schema=Person, context={"name": "A"}
    )
    LLMClient.from_config(offline_llm_config, seed=99).generate(
        "test.person", _msgs("q1"), schema=Person, context={"name": "A"}
    )
    assert len(_cache_files(offline_llm_config)) == 5
    c.generate("test.person", _msgs("q1"), schema=Person, context={"name": "A"})
    assert c.stats.cache_hits == 1


def test_read_only_mode(offline_llm_config):
    _client(offline_llm_config).generate("test.person", _msgs(), schema=Person, context={"name": "A"})
    before = _cache_files(offline_llm_config)
    ro = _client(offline_llm_config, cache_mode="read_only")
    assert ro.generate("test.person", _msgs(), schema=Person, context={"name": "A"}).name == "A"
    with pytest.raises(LLMRequestError, match="cache miss in read_only mode for task test.person"):
        ro.generate("test.person", _msgs(), schema=Person, context={"name": "Z"})
    assert ro.stats.provider_calls == 0 and _cache_files(offline_llm_config) == before


def test_off_mode_writes_nothing(offline_llm_config):
    c = _client(offline_llm_config, cache_mode="off")
    c.generate("test.person", _msgs(), schema=Person, context={"name": "A"})
    c.generate("test.person", _msgs(), schema=Person, context={"name": "A"})
    assert c.stats.provider_calls == 2 and c.stats.cache_hits == 0
    assert not Path(offline_llm_config["cache_dir"]).exists()


def test_cache_layout_and_corrupt_entry_is_a_miss(offline_llm_config):
    c = _client(offline_llm_config)
    c.generate("test.person", _msgs(), schema=Person, context={"name": "A"})
    (f,) = _cache_files(offline_llm_config)
    assert f.parent.name == f.stem[:2] and len(f.stem) == 64
    entry = json.loads(f.read_text())
    assert entry["key"] == f.stem and entry["task"] == "test.person" and "text" in entry["response"]
    f.write_text('{"key": "trunc')  # a foreign, non-atomic writer
    c2 = _client(offline_llm_config)
    assert c2.generate("test.person", _msgs(), schema=Person, context={"name": "A"}).name == "A"
    assert c2.stats.provider_calls == 1 and json.loads(f.read_text())["key"] == f.stem  # rewritten whole


def test_failed_write_leaves_no_partial_entry(tmp_path, monkeypatch):
    cache = ResponseCache(tmp_path / "c", "read_write")
    key = cache_key({"x": 1})

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        cache.put(key, {"response": {"text": "x" * 100000}})
    monkeypatch.undo()
    assert cache.get(key) is None
    assert list((tmp_path / "c").rglob("*")) == [tmp_path / "c" / key[:2]]  # no temp file left


def _writer(root: str, worker: int, keys: list[str]) -> None:
    cache = ResponseCache(root, "read_write")
    for i, key in enumerate(keys):
        # Large bodies make torn writes likely if writes were not atomic.
        cache.put(key, {"response": {"text": f"{key}:" + "y" * 200_000}, "worker": worker})
        got = cache.get(keys[(i * 7) % len(keys)])
        assert got is None or got["response"]["text"].startswith(keys[(i * 7) % len(keys)])


def test_concurrent_writers_in_processes(tmp_path):
    keys = [cache_key({"i": i}) for i in range(20)]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, keys)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    cache = ResponseCache(tmp_path, "read_only")
    for key in keys:
        entry = cache.get(key)
        assert entry is not None and entry["response"]["text"] == f"{key}:" + "y" * 200_000
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".json")]


def test_tampered_entry_is_a_miss_with_a_warning_naming_the_file(offline_llm_config, caplog):
    c = _client(offline_llm_config)
    first = c.generate("test.person", _msgs(), schema=Person, context={"name": "A"})
    (f,) = _cache_files(offline_llm_config)
    entry = json.loads(f.read_text())
    assert len(entry["checksum"]) == 64
    # valid JSON, right key, plausible answer: only the checksum can tell
    entry["response"]["text"] = json.dumps({"name": "A", "age": 1})
    f.write_text(json.dumps(entry))
    c2 = _client(offline_llm_config)
    with caplog.at_level("WARNING", logger="agentskiller.llm.cache"):
        again = c2.generate("test.person", _msgs(), schema=Person, context={"name": "A"})
    assert again == first and again.age != 1
    assert c2.stats.provider_calls == 1 and c2.stats.cache_hits == 0
    assert any(str(f) in r.getMessage() and "checksum" in r.getMessage() for r in caplog.records), caplog.text
    rewritten = json.loads(f.read_text())
    assert rewritten["response"]["text"] != entry["response"]["text"]
    c3 = _client(offline_llm_config)
    assert c3.generate("test.person", _msgs(), schema=Person, context={"name": "A"}) == first
    assert c3.stats.cache_hits == 1


def test_entry_without_checksum_is_still_read(offline_llm_config):
    c = _client(offline_llm_config)
    c.generate("test.person", _msgs(), schema=Person, context={"name": "A"})
    (f,) = _cache_files(offline_llm_config)
    entry = json.loads(f.read_text())
    del entry["checksum"]  # written before checksums existed
    f.write_text(json.dumps(entry))
    c2 = _client(offline_llm_config)
    c2.generate("test.person", _msgs(), schema=Person, context={"name": "A"})
    assert c2.stats.cache_hits == 1


def test_stale_temp_files_are_swept_fresh_ones_kept(tmp_path):
    root = tmp_path / "c"
    (root / "ab").mkdir(parents=True)
    stale = root / "ab" / ".abcd.json.x1y2.tmp"
    fresh = root / "ab" / ".abce.json.z3w4.tmp"
    stale_top = root / ".endpoints.json.q9.tmp"
    keep = root / "ab" / "notes.tmp"  # not one of our temp names
    for p in (stale, fresh, stale_top, keep):
        p.write_text("half an entry")
    old = time.time() - STALE_TMP_S - 60
    for p in (stale, stale_top, keep):
        os.utime(p, (old, old))
    ResponseCache(root, "read_only")  # only a writer sweeps
    assert stale.exists()
    ResponseCache(root, "read_write")
    assert not stale.exists() and not stale_top.exists()
    assert fresh.exists() and keep.exists()  # a concurrent writer's file survives


def test_repair_rounds_step_the_temperature():
    cfg = LLMConfig(temperature=0.0, repair_temperature_step=0.2, repair_temperature_max=0.5)
    assert [cfg.round_temperature(r) for r in range(5)] == [0.0, 0.2, 0.4, 0.5, 0.5]
    assert LLMConfig(temperature=0.7, repair_temperature_max=0.5).round_temperature(2) == 0.7  # never lower
    assert LLMConfig(repair_temperature_step=0).round_temperature(3) == 0.0


class _RecordingProvider:
    name = "recording"

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.temperatures: list[float] = []

    def cache_salt(self, request):
        return {}

    def complete(self, request):
        self.temperatures.append(request.temperature)
        return ProviderResponse(self.answers[request.round], request.model, 1, 1)

    def close(self):
        pass


def test_repair_round_requests_carry_the_stepped_temperature(offline_llm_config):
    bad, good = '{"name": "x", "age": "old"}', '{"name": "x", "age": 3}'
    prov = _RecordingProvider([bad, bad, good])
    c = LLMClient(LLMConfig.model_validate({**offline_llm_config, "cache_mode": "off"}), prov)
    assert c.generate("test.any", _msgs(), schema=Person).age == 3
    assert prov.temperatures == [0.0, 0.2, 0.4]


def test_map_propagates_a_transport_error_and_stops_the_rest(offline_llm_config):
    c = _client(offline_llm_config, max_concurrency=2)
    started: list[int] = []
    lock = threading.Lock()

    def fn(i: int) -> int:
        with lock:
            started.append(i)
        if i == 1:
            raise LLMTransportError("http://127.0.0.1:9/v1 failed after 3 attempt(s); last error: boom")
        time.sleep(0.05)
        return i

    with pytest.raises(LLMTransportError, match="last error: boom"):
        c.map(fn, range(40))
    assert len(started) < 40  # items not started yet were cancelled
    assert not issubclass(LLMTransportError, LLMError)


# --------------------------------------------------------------------- usage
def test_usage_lines_and_summary(offline_llm_config, usage_log):
    cfg = {**offline_llm_config, "prices": {"offline-text": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}}}
    c = _client(cfg, usage_log)
    c.generate("test.flaky_json", _msgs(), schema=Person)
    c2 = _client(cfg, usage_log)
    c2.generate("test.flaky_json", _msgs(), schema=Person)
    rows = parse_usage_lines("garbage line\n" + usage_log.text + 'LLM_USAGE {"task": "trunc')
    assert len(rows) == 4
    assert set(rows[0]) == {
        "task",
        "role",
        "model",
        "provider",
        "prompt_tokens",
        "completion_tokens",
        "latency_s",
        "cache_hit",
        "round",
        "cost_usd",
        "outcome",
    }
    assert {r["outcome"] for r in rows} == {"ok"}
    assert [r["cache_hit"] for r in rows] == [False, False, True, True]
    assert rows[0]["cost_usd"] > 0 and rows[2]["cost_usd"] == 0
    s = summarize(rows)
    assert s["total"]["calls"] == 4 and s["total"]["provider_calls"] == 2 and s["total"]["cache_hits"] == 2
    assert s["total"]["prompt_tokens"] == c.stats.prompt_tokens
    assert s["by_step"]["test"]["repair_rounds"] == 2
    assert abs(s["total"]["cost_usd"] - round(c.stats.cost_usd, 6)) < 1e-6


# ----------------------------------------------------------------------- map
def test_map_keeps_order_and_bounds_concurrency(offline_llm_config):
    c = _client(offline_llm_config, max_concurrency=3)
    active, peak, lock = [0], [0], threading.Lock()

    def work(i: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02 * ((i * 7) % 5))
        with lock:
            active[0] -= 1
        return i * i

    assert c.map(work, range(20)) == [i * i for i in range(20)]
    assert 1 < peak[0] <= 3


def test_map_generate_is_same_as_sequential(offline_llm_config):
    names = [f"n{i}" for i in range(12)]
    par = _client(offline_llm_config, cache_mode="off").map(
        lambda n: _client(offline_llm_config, cache_mode="off").generate(
            "test.person", _msgs(), schema=Person, context={"name": n}
        ),
        names,
    )
    seq = [
        _client(offline_llm_config, cache_mode="off").generate(
            "test.person", _msgs(), schema=Person, context={"name": n}
        )
        for n in names
    ]
    assert par == seq


def test_map_raises_first_error(offline_llm_config):
    c = _client(offline_llm_config)

    def fn(i: int) -> int:
        if i in (3, 5):
            raise ValueError(f"bad {i}")
        return i

    with pytest.raises(ValueError, match="bad 3"):
        c.map(fn, range(8))


# ------------------------------------------------------------------ extract
@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"a": 1}', {"a": 1}),
        ('Here:\n```json\n{"a": 1}\n```\nDone.', {"a": 1}),
        ("```\n[1, 2]\n```", [1, 2]),
        ('<think>maybe {"a": 0}?</think>\nThe answer is {"a": 2} as requested.', {"a": 2}),
        # R1/QwQ: the template opened <think>, only the closing tag is in the text
        ('draft {"a": 0}\nno wait\n</think>\n\n{"a": 2}', {"a": 2}),
        ('<think>one {"a": 0}</think><think>two {"a": 1}</think>{"a": 2}', {"a": 2}),
        ('prefix {not json} then {"b": [1, {"c": 2}]} suffix', {"b": [1, {"c": 2}]}),
        ('```json\n{"a": 3}', {"a": 3}),  # unclosed fence (cut off)
    ],
)
def test_extract_json(text, expected):
    assert extract_json(text) == expected


def test_extract_json_error_is_readable():
    with pytest.raises(ValueError, match="not valid JSON"):
        extract_json('{"a": ')
    with pytest.raises(ValueError, match="empty"):
        extract_json("  ")
    # reasoning that was cut off, or that holds the only JSON: never parsed as the answer
    with pytest.raises(ValueError, match="reasoning but no answer"):
        extract_json('<think>draft {"a": 0} and then the budget ran out')
    with pytest.raises(ValueError, match="reasoning but no answer"):
        extract_json('draft {"a": 0}</think>\n')


def test_split_reasoning():
    assert split_reasoning("plain answer") == ("", "plain answer")
    assert split_reasoning("<think>r1</think> a") == ("r1", "a")
    assert split_reasoning("r1 </think> a") == ("r1", "a")
    assert split_reasoning("<think>cut") == ("cut", "")
    assert extract_code("<think>```python\nbad()\n```</think>\n```python\ngood()\n```") == "good()\n"


def test_extract_code():
    assert extract_code("```py\nx = 1\n```") == "x = 1\n"
    assert extract_code("```bash\nls\n```") == "ls\n"
    assert extract_code("x = 2") == "x = 2\n"


# ----------------------------------------------------------------- registry
def test_duplicate_handler_registration_is_rejected():
    with pytest.raises(ValueError, match="already registered"):

        @handler("test.person")
        def other(req):  # pragma: no cover - never called
            return {}


def test_run_handler_matches_provider(offline_llm_config):
    direct = run_handler(7, "test.person", _msgs(), {"name": "Q"})
    via_client = _client(offline_llm_config).generate("test.person", _msgs(), schema=Person, context={"name": "Q"})
    assert Person.model_validate_json(direct) == via_client


def test_handlers_package_loads_one_step_or_every_module(tmp_path, monkeypatch):
    # The package init is generic: copy it into a scratch package with two modules.
    pkg = tmp_path / "scratch_handlers"
    pkg.mkdir()
    src = Path(importlib.import_module("agentskiller.llm.offline.handlers").__file__)
    (pkg / "__init__.py").write_text(src.read_text())
    (pkg / "s98_a.py").write_text("LOADED = True\n")
    (pkg / "s99_b.py").write_text("LOADED = True\n")
    (pkg / "_private.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    scratch = importlib.import_module("scratch_handlers")
    assert "scratch_handlers.s98_a" not in sys.modules  # importing the package loads nothing
    scratch.load("s98")
    assert "scratch_handlers.s98_a" in sys.modules and "scratch_handlers.s99_b" not in sys.modules
    scratch.load()
    assert "scratch_handlers.s99_b" in sys.modules and "scratch_handlers._private" not in sys.modules


def test_a_job_imports_only_its_steps_handlers():
    import subprocess

    code = (
        "import sys\n"
        "from agentskiller.llm.offline import get_handler\n"
        "get_handler('s07.policy')\n"
        "mods = sorted(m for m in sys.modules if m.startswith('agentskiller.llm.offline.handlers.'))\n"
        "print(' '.join(mods))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["agentskiller.llm.offline.handlers.s07_policy"]


def test_offline_run_does_not_import_openai(tmp_path):
    import subprocess

    code = (
        "import sys\n"
        "from agentskiller.llm import LLMClient\n"
        "from agentskiller.llm.offline import handler\n"
        "handler('t.x')(lambda req: {'ok': True})\n"
        f"c = LLMClient.from_config({{'cache_dir': {str(tmp_path)!r}}}, seed=1)\n"
        "assert c.generate('t.x', [{'role': 'user', 'content': 'q'}]) == '{\\n  \"ok\": true\\n}'\n"
        "assert 'openai' not in sys.modules, 'openai imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr

"""benchmarks/llm_throughput.py's figures that a closing note relies on: the waves of a task,
the best mean in flight a DAG allows, and the record of answers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lt():
    spec = importlib.util.spec_from_file_location("llm_throughput", ROOT / "benchmarks" / "llm_throughput.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["llm_throughput"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_waves_count_requests_that_start_after_the_task_had_none_out(lt):
    assert lt.waves([]) == 0
    assert lt.waves([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]) == 3  # s01's serial rounds
    assert lt.waves([(0.0, 1.0), (0.2, 1.1), (0.5, 1.5)]) == 1  # one map()
    assert lt.waves([(0.0, 1.0), (0.5, 2.0), (1.5, 2.5), (2.5, 3.0)]) == 2


def test_best_possible_charges_a_latency_per_prefix_round_and_fills_the_rest(lt):
    s01 = [("s01.expand_topics", float(i), i + 1.0) for i in range(3)]
    s03 = [("s03.relate_entities", 3.0 + i * 0.01, 4.0 + i * 0.01) for i in range(10)]
    rest = [("s14.template", 5.0, 6.0)] * 32
    best = lt.best_possible(s01 + s03 + rest, slots=16, latency=1.0)
    assert best["prefix_requests"] == 13 and best["prefix_rounds"] == 4
    # 4 rounds + 32 / 16 = 6 s busy at least; 45 requests x 1 s in it
    assert best["min_busy_s"] == pytest.approx(6.0)
    assert best["best_mean_in_flight"] == pytest.approx(45 / 6)


def test_best_possible_refuses_when_another_task_overlapped_the_prefix(lt):
    spans = [("s01.expand_topics", 0.0, 1.0), ("s14.template", 0.5, 1.5)]
    assert lt.best_possible(spans, slots=16, latency=1.0) is None
    assert lt.best_possible([("s14.template", 0.0, 1.0)], slots=16, latency=1.0) is None


def test_answers_compute_once_per_request_and_then_replay(lt, monkeypatch):
    calls = []
    answers = lt.Answers(seed=7)
    monkeypatch.setattr(answers, "bridge", lambda body, headers: calls.append(body) or f"answer {len(calls)}")
    body = {"messages": [{"role": "user", "content": "hi"}]}
    head = {"x-agentskiller-task": "s01.expand_topics"}
    assert answers(body, head) == "answer 1"
    assert answers(dict(reversed(list(body.items()))), head) == "answer 1"  # key order is not the request
    assert answers(body, {"x-agentskiller-task": "s02.extract_entities"}) == "answer 2"
    assert (answers.hits, answers.misses, len(calls)) == (1, 2, 2)

"""llm.max_in_flight: lock-file slots bound the requests in flight across threads and processes,
and a slot is never leaked (an exception, a killed holder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from agentskiller.llm.client import LLMClient
from agentskiller.llm.slots import SlotPool
from tests.fake_openai import FakeOpenAI

REPO = Path(__file__).resolve().parents[1]

HOLDER = textwrap.dedent(
    """
    import sys, threading, time
    from agentskiller.llm.slots import SlotPool
    directory, size, threads, rounds, log = sys.argv[1:6]
    pool = SlotPool(directory, int(size))
    lines = []
    lock = threading.Lock()
    def work():
        for _ in range(int(rounds)):
            with pool.slot():
                t0 = time.monotonic()
                time.sleep(0.03)
                t1 = time.monotonic()
            with lock:
                lines.append(f"{t0} {t1}")
    ts = [threading.Thread(target=work) for _ in range(int(threads))]
    [t.start() for t in ts]
    [t.join() for t in ts]
    with open(log, "w") as fh:
        fh.write("\\n".join(lines))
    """
)


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def test_slots_bound_concurrency_across_processes(tmp_path):
    size, procs = 3, 3
    logs = [tmp_path / f"p{i}.log" for i in range(procs)]
    ps = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(tmp_path / "slots"), str(size), "3", "4", str(log)], env=_env()
        )
        for log in logs
    ]
    for p in ps:
        assert p.wait(timeout=120) == 0
    intervals = []
    for log in logs:
        for line in log.read_text().splitlines():
            a, b = line.split()
            intervals.append((float(a), float(b)))
    assert len(intervals) == procs * 3 * 4  # every request got its slot
    overlap = _max_overlap(intervals)
    assert overlap <= size  # the bound holds across the 3 processes of 3 threads each
    assert overlap >= 2  # and slots are used concurrently (not one global lock)
    assert SlotPool(tmp_path / "slots", size).held() == 0


def test_no_slot_leak_on_exception(tmp_path):
    pool = SlotPool(tmp_path, 2)
    for _ in range(5):  # more failures than slots: a leak would block the third acquire
        with pytest.raises(RuntimeError):
            with pool.slot(timeout_s=2):
                assert pool.held() == 1
                raise RuntimeError("request failed")
    assert pool.held() == 0
    with pool.slot(timeout_s=2), pool.slot(timeout_s=2):
        assert pool.held() == 2
        with pytest.raises(TimeoutError):
            pool.acquire(timeout_s=0.05)
    assert pool.held() == 0


def test_killed_holder_frees_its_slot(tmp_path):
    code = (
        "import sys, time\nfrom agentskiller.llm.slots import SlotPool\n"
        "SlotPool(sys.argv[1], 1).acquire(); print('held', flush=True); time.sleep(60)"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert p.stdout.readline().strip() == "held"
        pool = SlotPool(tmp_path, 1)
        assert pool.held() == 1
        with pytest.raises(TimeoutError):
            pool.acquire(timeout_s=0.05)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        with pool.slot(timeout_s=5):  # the kernel dropped the dead holder's lock
            assert pool.held() == 1
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_unbounded_pool_takes_no_slot(tmp_path):
    pool = SlotPool(tmp_path / "none", 0)
    with pool.slot():
        assert pool.held() == 0
    assert not (tmp_path / "none").exists()


def test_openai_provider_requests_in_flight_bounded_across_clients(tmp_path):
    """Two clients (two jobs' worth of pools, 4 threads each) against one endpoint with
    max_in_flight 3: the server never sees more than 3 requests at once, and sees 3."""
    state = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow(body, headers):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
        return "answer"

    with FakeOpenAI(slow) as srv:
        cfg = {
            "provider": "openai",
            "base_url": srv.base_url,
            "api_key_env": None,
            "cache_dir": str(tmp_path / "cache"),
            "cache_mode": "read_write",
            "max_concurrency": 4,
            "max_in_flight": 3,
            "models": {"text": "fake-model", "code": "fake-model"},
        }
        clients = [LLMClient.from_config(cfg, seed=i) for i in range(2)]

        def run(client, tag):
            client.map(lambda i: client.generate("t.slots", [{"role": "user", "content": f"{tag} {i}"}]), range(8))

        threads = [threading.Thread(target=run, args=(c, f"c{i}")) for i, c in enumerate(clients)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        for c in clients:
            assert c.stats.provider_calls == 8
            c.close()
        assert state["max"] == 3
        # a rerun is all cache hits: no slot, no request
        again = LLMClient.from_config(cfg, seed=0)
        before = len(srv.chat_requests())
        again.map(lambda i: again.generate("t.slots", [{"role": "user", "content": f"c0 {i}"}]), range(8))
        assert again.stats.cache_hits == 8 and len(srv.chat_requests()) == before
        again.close()
    assert SlotPool.for_cache(tmp_path / "cache", 3).held() == 0

"""Does the workflow keep an endpoint busy? The default run against a fake endpoint with S slots.

    python benchmarks/llm_throughput.py [--slots 16] [--latency 1.0] [--cores 2] [--cpu-s X] [--keep DIR]

Starts ``tests/fake_openai.py`` answering like the offline provider, wrapped so that it serves
at most ``S`` requests at once (more wait in its queue) and every request takes ``L`` seconds
(the answer is computed, then the rest of ``L`` is slept). Runs the default workflow
(``snakemake --cores C``, ``llm.provider: openai`` against it, ``llm.max_in_flight: S``,
``--resources llm=S``, a fresh LLM cache; the rollouts use the offline simulators, as in
tests/test_adversarial.py) in a fresh clone of this repository's committed HEAD, and counts
the requests being served at every moment. Prints:

* requests, wall, and the mean number served / S over the LLM phases: the time between the
  first request and the last answer in which at least one request is served (also over that
  whole span, gaps included, and the share of the span with all S slots busy);
* the busy seconds by how many requests were in flight (quarters of S), and per LLM task its
  requests and the span from its first start to its last end: which phases leave slots empty;
* the ideal wall: ``requests x L / S`` plus the CPU-bound time, and wall / ideal. The CPU-bound
  time is ``--cpu-s`` when given (e.g. the wall of the default offline run on the same
  machine); otherwise the part of the wall in which the endpoint served nothing.

Figures are for one run on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fake_openai import FakeOpenAI, offline_bridge  # noqa: E402


class Meter:
    """Requests being served over time (exact: a step function of start and end events)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[float, int]] = []
        self.now = 0
        self.tasks: dict[str, int] = {}
        self.served_s = 0.0  # sum of the requests' time in a slot (latency as served)
        self.spans: list[tuple[str, float, float]] = []  # (task, start, end) of every request

    def change(self, d: int, task: str | None = None) -> None:
        with self.lock:
            self.now += d
            self.events.append((time.monotonic(), self.now))
            if task and d > 0:
                self.tasks[task] = self.tasks.get(task, 0) + 1

    def summary(self, slots: int) -> dict:
        ev = self.events
        if not ev:
            return {"requests": 0}
        span = busy = area = full = 0.0
        for (t0, n), (t1, _) in zip(ev, ev[1:], strict=False):
            dt = t1 - t0
            span += dt
            area += n * dt
            if n > 0:
                busy += dt
            if n >= slots:
                full += dt
        # busy seconds by how many requests were in flight: where the endpoint was half empty
        # (the gate never lets more than `slots` in)
        width = max(1, slots // 4)
        bands = [(lo, min(lo + width - 1, slots)) for lo in range(1, slots + 1, width)]
        by_band = {f"{lo}-{hi}": 0.0 for lo, hi in bands}
        for (t0, n), (t1, _) in zip(ev, ev[1:], strict=False):
            for lo, hi in bands:
                if lo <= n <= hi:
                    by_band[f"{lo}-{hi}"] += t1 - t0
        return {
            "busy_s_by_in_flight": by_band,
            "requests": sum(self.tasks.values()),
            "first_request_s": ev[0][0],
            "span_s": span,
            "busy_s": busy,
            "mean_in_flight_busy": area / busy if busy else 0.0,
            "mean_in_flight_span": area / span if span else 0.0,
            "full_share_span": full / span if span else 0.0,
            "max_in_flight": max(n for _, n in ev),
        }


def throttled(slots: int, latency: float, meter: Meter, seed: int):
    bridge = offline_bridge(seed)
    gate = threading.BoundedSemaphore(slots)

    def respond(body: dict, headers: dict) -> str:
        with gate:
            meter.change(+1, headers.get("x-agentskiller-task"))
            t0 = time.monotonic()
            try:
                text = bridge(body, headers)
                time.sleep(max(0.0, latency - (time.monotonic() - t0)))
            finally:
                with meter.lock:
                    meter.served_s += time.monotonic() - t0
                    meter.spans.append((headers.get("x-agentskiller-task") or "?", t0, time.monotonic()))
                meter.change(-1)
        return text

    return respond


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7, help="the config's seed (the fake answers with it)")
    ap.add_argument(
        "--cpu-s", type=float, default=None, help="CPU-bound time for the ideal (default: endpoint-idle time)"
    )
    ap.add_argument("--keep", type=Path, default=None, help="clone and run here, and keep it")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="agentskiller-throughput-"))
    if work.exists():
        shutil.rmtree(work)
    subprocess.run(["git", "clone", "-q", str(REPO), str(work)], check=True)

    from agentskiller.llm.offline.catalog import load_catalog
    from agentskiller.llm.offline.provider import load_handlers

    load_handlers()  # warm: the first answer must not pay for the imports
    load_catalog()
    meter = Meter()
    with FakeOpenAI(throttled(args.slots, args.latency, meter, args.seed)) as srv:
        llm = (
            f"{{provider: openai, base_url: '{srv.base_url}', api_key_env: null, "
            f"models: {{text: fake-text-model, code: fake-code-model}}, max_in_flight: {args.slots}, "
            f"timeout_s: {max(120.0, 20 * args.latency)}}}"
        )
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            str(args.cores),
            "--resources",
            f"llm={args.slots}",
            "--config",
            f"llm={llm}",
            "rollout={user: offline, assistant: offline}",
        ]
        env = {**os.environ, "PYTHONPATH": str(work)}
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        t0 = time.monotonic()
        failed = None
        try:
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-6000:])
                failed = f"the workflow failed (kept in {work})"
        except KeyboardInterrupt:  # stopped from outside: the figures so far
            failed = f"stopped before the workflow finished (kept in {work}): PARTIAL figures"
        wall = time.monotonic() - t0
    if failed:
        print(failed)
    s = meter.summary(args.slots)
    if not s["requests"]:
        raise SystemExit("no request reached the endpoint")
    idle = wall - s["busy_s"]
    cpu = args.cpu_s if args.cpu_s is not None else idle
    ideal = s["requests"] * args.latency / args.slots + cpu
    print(f"slots {args.slots}, latency {args.latency:g} s, --cores {args.cores}: {s['requests']} requests")
    print(
        f"wall {wall:.1f} s; endpoint busy {s['busy_s']:.1f} s, idle {idle:.1f} s; "
        f"mean time in a slot {meter.served_s / s['requests']:.2f} s (the answer is computed in this "
        f"process: above {args.latency:g} s when the machine is short of CPU)"
    )
    print(
        f"mean in flight during the LLM phases {s['mean_in_flight_busy']:.2f} / {args.slots} "
        f"= {s['mean_in_flight_busy'] / args.slots:.1%}  (first request to last answer, gaps included: "
        f"{s['mean_in_flight_span'] / args.slots:.1%}; all slots busy {s['full_share_span']:.1%} of it; "
        f"max {s['max_in_flight']})"
    )
    print(
        f"ideal {ideal:.1f} s = {s['requests']} x {args.latency:g} / {args.slots} + CPU-bound {cpu:.1f} s "
        f"({'given' if args.cpu_s is not None else 'endpoint idle'}); wall / ideal {wall / ideal:.2f}"
    )
    print(
        "busy seconds by requests in flight: "
        + ", ".join(f"{band}: {sec:.1f} s" for band, sec in s["busy_s_by_in_flight"].items())
    )
    first = s["first_request_s"]
    spans: dict[str, list[float]] = {}
    for task, t0, t1 in meter.spans:
        lo, hi, n = spans.get(task, [t0, t1, 0])
        spans[task] = [min(lo, t0), max(hi, t1), n + 1]
    print("requests by task (count, from first start to last end, seconds after the first request):")
    for task, (lo, hi, n) in sorted(spans.items(), key=lambda kv: kv[1][0]):
        print(f"  {task:<26} {n:4d}  {lo - first:6.1f} -> {hi - first:6.1f}")
    if args.json:
        print(json.dumps({**s, "wall_s": wall, "ideal_s": ideal, "cpu_s": cpu, "slots": args.slots}))
    print(f"(run kept in {work})" if args.keep else f"(run in {work}; remove it when done)")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

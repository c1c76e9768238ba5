"""Does the workflow keep an endpoint busy? The default run against a fake endpoint with S slots.

    python benchmarks/llm_throughput.py [--slots 16] [--latency 1.0] [--cores 2] [--cpu-s X] [--no-memo] [--keep DIR]

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
  time is the wall of the same workflow against the endpoint with latency 0, measured first
  (``--cpu-s`` gives it instead; with ``--no-memo``, the part of the wall in which the endpoint
  served nothing).

A real endpoint computes its answers on another machine. So, unless ``--no-memo``, a warm-up
run (latency 0) records the bridge's answer to every request, and the two measured runs (latency
0 for the CPU-bound time, then latency ``L``) are answered from that record: the workflow has
the machine's CPUs to itself, as it would with a real model. A request the record lacks is
answered by the bridge and counted (the workflow is deterministic, so there should be none).

Figures are for one run on this machine.
"""

from __future__ import annotations

import argparse
import hashlib
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

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fake_openai import FakeOpenAI, offline_bridge  # noqa: E402

#: The catalogue's chain of LLM tasks: every other request depends on outlines.json (s04's
#: checkpoint), so nothing else can be in flight while they run, and s01's rounds follow one
#: another (each prompt holds the topics so far). They bound the mean in flight of any schedule.
SERIAL_PREFIX = ("s01.expand_topics", "s02.extract_entities", "s03.relate_entities", "s04.outlines")


#: The run's LLM phases, by the steps whose requests they hold (in DAG order).
PHASES = {
    "catalogue (s01-s04 outlines)": ("s01.", "s02.", "s03.", "s04.outlines"),
    "blueprints and domains (s04 details-s09)": ("s04.blueprint_detail", "s05.", "s06.", "s07.", "s08.", "s09."),
    "tasks and queries (s11-s17)": ("s10.", "s11.", "s12.", "s13.", "s14.", "s15.", "s16.", "s17."),
}


def by_phase(meter: Meter) -> dict[str, dict]:
    """Per phase: its requests, its window (its first start to its last end) and the mean in
    flight (all requests) over the part of the window in which any was served."""
    out = {}
    for name, prefixes in PHASES.items():
        mine = [(t0, t1) for task, t0, t1 in meter.spans if task.startswith(prefixes)]
        if not mine:
            continue
        lo, hi = min(t0 for t0, _ in mine), max(t1 for _, t1 in mine)
        area = busy = 0.0
        for n, dt in meter.intervals(lo, hi):
            if n:
                area += n * dt
                busy += dt
        out[name] = {
            "requests": len(mine),
            "from_s": lo,
            "to_s": hi,
            "mean_in_flight_busy": area / busy if busy else 0.0,
        }
    return out


def waves(spans: list[tuple[float, float]]) -> int:
    """How many times a task's requests started with none of the task's earlier ones still out."""
    n, out_until = 0, float("-inf")
    for t0, t1 in sorted(spans):
        if t0 >= out_until:
            n += 1
        out_until = max(out_until, t1)
    return n


def best_possible(spans: list[tuple[str, float, float]], slots: int, latency: float) -> dict | None:
    """The highest mean in flight any schedule of these requests could reach: the serial
    prefix takes a latency per wave however few its requests, the rest at best fills every
    slot. None when a request outside the prefix overlapped it (the premise does not hold)."""
    prefix = [(t0, t1) for task, t0, t1 in spans if task in SERIAL_PREFIX]
    if not prefix:
        return None
    end = max(t1 for _, t1 in prefix)
    if any(task not in SERIAL_PREFIX and t0 < end for task, t0, _ in spans):
        return None
    rounds = sum(waves([(t0, t1) for task, t0, t1 in spans if task == name]) for name in SERIAL_PREFIX)
    rest = len(spans) - len(prefix)
    min_busy = rounds * latency + rest * latency / slots
    return {
        "prefix_requests": len(prefix),
        "prefix_rounds": rounds,
        "min_busy_s": min_busy,
        "best_mean_in_flight": len(spans) * latency / min_busy,
    }


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

    def intervals(self, lo: float = float("-inf"), hi: float = float("inf")):
        """``(requests in flight, seconds)`` for each step of the function, clipped to [lo, hi]."""
        for (t0, n), (t1, _) in zip(self.events, self.events[1:], strict=False):
            dt = min(t1, hi) - max(t0, lo)
            if dt > 0:
                yield n, dt

    def summary(self, slots: int) -> dict:
        ev = self.events
        if not ev:
            return {"requests": 0}
        span = busy = area = full = 0.0
        for n, dt in self.intervals():
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
        for n, dt in self.intervals():
            for lo, hi in bands:
                if lo <= n <= hi:
                    by_band[f"{lo}-{hi}"] += dt
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


class Answers:
    """The offline bridge's answers, kept by request (task header and body): a real endpoint
    computes its answers on its own machine, so a run answered from here leaves all the CPU to
    the workflow. A request not seen before is answered by the bridge (and counted)."""

    def __init__(self, seed: int) -> None:
        self.bridge = offline_bridge(seed)
        self.known: dict[str, str] = {}
        self.hits = self.misses = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict, headers: dict) -> str:
        key = hashlib.sha256(
            json.dumps([headers.get("x-agentskiller-task"), body], sort_keys=True).encode()
        ).hexdigest()
        with self.lock:
            text = self.known.get(key)
            if text is not None:
                self.hits += 1
                return text
            self.misses += 1
        text = self.bridge(body, headers)
        with self.lock:
            self.known[key] = text
        return text


def throttled(slots: int, latency: float, meter: Meter, answer):
    gate = threading.BoundedSemaphore(slots)

    def respond(body: dict, headers: dict) -> str:
        with gate:
            meter.change(+1, headers.get("x-agentskiller-task"))
            t0 = time.monotonic()
            try:
                text = answer(body, headers)
                time.sleep(max(0.0, latency - (time.monotonic() - t0)))
            finally:
                with meter.lock:
                    meter.served_s += time.monotonic() - t0
                    meter.spans.append((headers.get("x-agentskiller-task") or "?", t0, time.monotonic()))
                meter.change(-1)
        return text

    return respond


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listen queue was full (Linux): a
    dropped SYN comes back a second later, which would read as a request that started late."""
    try:
        head, values = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()[:2]]
        return int(dict(zip(head, values, strict=True))["ListenOverflows"])
    except (OSError, KeyError, ValueError):
        return None


def run_workflow(
    work: Path, slots: int, latency: float, cores: int, llm_jobs: int, answer
) -> tuple[float, Meter, str | None]:
    """The default workflow in a fresh clone at ``work`` against a fake endpoint: (wall, meter,
    why it failed or None)."""
    if work.exists():
        shutil.rmtree(work)
    subprocess.run(["git", "clone", "-q", str(REPO), str(work)], check=True)
    meter = Meter()
    with FakeOpenAI(throttled(slots, latency, meter, answer)) as srv:
        llm = (
            f"{{provider: openai, base_url: '{srv.base_url}', api_key_env: null, "
            f"models: {{text: fake-text-model, code: fake-code-model}}, max_in_flight: {slots}, "
            f"timeout_s: {max(120.0, 20 * latency)}}}"
        )
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            str(cores),
            "--resources",
            f"llm={llm_jobs}",
            "--config",
            f"llm={llm}",
            "rollout={user: offline, assistant: offline}",
        ]
        env = {**os.environ, "PYTHONPATH": str(work)}
        t0 = time.monotonic()
        failed = None
        try:
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-6000:])
                failed = f"the workflow failed (kept in {work})"
        except KeyboardInterrupt:  # stopped from outside: the figures so far
            failed = f"stopped before the workflow finished (kept in {work}): PARTIAL figures"
        return time.monotonic() - t0, meter, failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument(
        "--llm-jobs",
        type=int,
        default=None,
        help="--resources llm=N: LLM jobs at once (default: the workflow profile's)",
    )
    ap.add_argument("--seed", type=int, default=7, help="the config's seed (the fake answers with it)")
    ap.add_argument(
        "--cpu-s",
        type=float,
        default=None,
        help="CPU-bound time for the ideal (default: the wall of a run with latency 0, measured first)",
    )
    ap.add_argument(
        "--no-memo",
        action="store_true",
        help="one run, its answers computed while it runs, on this machine's CPUs (default: a "
        "warm-up run records the answers and the measured runs are answered from them)",
    )
    ap.add_argument(
        "--answers",
        type=Path,
        default=None,
        help="keep the record of answers in this JSON file: read it instead of a warm-up run when it exists",
    )
    ap.add_argument(
        "--keep", type=Path, default=None, help="clone and run under here (one clone per run), and keep them"
    )
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    ap.add_argument(
        "--spans",
        type=Path,
        default=None,
        help="write every request's (task, start, end) here, as JSON (seconds after the first request)",
    )
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="agentskiller-throughput-"))
    from agentskiller.llm.offline.catalog import load_catalog
    from agentskiller.llm.offline.provider import load_handlers

    load_handlers()  # warm: the first answer must not pay for the imports
    load_catalog()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    answers = Answers(args.seed)
    llm_jobs = args.llm_jobs or int(
        yaml.safe_load((REPO / "profiles/default/profile.yaml").read_text())["resources"]["llm"]
    )
    cpu_what = "given" if args.cpu_s is not None else "endpoint idle" if args.no_memo else "the latency-0 run"
    if not args.no_memo:
        if args.answers and args.answers.exists():
            answers.known = json.loads(args.answers.read_text())
            print(f"{len(answers.known)} answers read from {args.answers}")
        else:
            wall0, _, failed = run_workflow(work / "warm-up", args.slots, 0.0, args.cores, llm_jobs, answers)
            if failed:
                raise SystemExit(f"warm-up run: {failed}")
            print(f"warm-up run (latency 0, answers computed here): {wall0:.1f} s, {answers.misses} answers recorded")
            if args.answers:
                args.answers.write_text(json.dumps(answers.known))
        if args.cpu_s is None:
            misses = answers.misses
            args.cpu_s, _, failed = run_workflow(work / "cpu-bound", args.slots, 0.0, args.cores, llm_jobs, answers)
            if failed:
                raise SystemExit(f"latency-0 run: {failed}")
            print(
                f"CPU-bound run (latency 0, answered from the record): {args.cpu_s:.1f} s "
                f"({answers.misses - misses} requests not in the record)"
            )
    misses = answers.misses
    overflows = listen_overflows()
    wall, meter, failed = run_workflow(work / "measured", args.slots, args.latency, args.cores, llm_jobs, answers)
    if not args.no_memo:
        print(f"measured run: {answers.misses - misses} requests not in the record (computed while it ran)")
    if overflows is not None:
        print(f"connections the endpoint's listen queue dropped during it: {listen_overflows() - overflows}")
    if failed:
        print(failed)
    s = meter.summary(args.slots)
    if not s["requests"]:
        raise SystemExit("no request reached the endpoint")
    idle = wall - s["busy_s"]
    cpu = args.cpu_s if args.cpu_s is not None else idle
    ideal = s["requests"] * args.latency / args.slots + cpu
    print(
        f"slots {args.slots}, latency {args.latency:g} s, --cores {args.cores}, --resources llm={llm_jobs}: "
        f"{s['requests']} requests"
    )
    print(
        f"wall {wall:.1f} s; endpoint busy {s['busy_s']:.1f} s, idle {idle:.1f} s; "
        f"mean time in a slot {meter.served_s / s['requests']:.2f} s (above {args.latency:g} s when "
        f"an answer computed in this process took longer)"
    )
    print(
        f"mean in flight during the LLM phases {s['mean_in_flight_busy']:.2f} / {args.slots} "
        f"= {s['mean_in_flight_busy'] / args.slots:.1%}  (first request to last answer, gaps included: "
        f"{s['mean_in_flight_span'] / args.slots:.1%}; all slots busy {s['full_share_span']:.1%} of it; "
        f"max {s['max_in_flight']})"
    )
    print(
        f"ideal {ideal:.1f} s = {s['requests']} x {args.latency:g} / {args.slots} + CPU-bound {cpu:.1f} s "
        f"({cpu_what}); wall / ideal {wall / ideal:.2f}"
    )
    best = best_possible(meter.spans, args.slots, args.latency)
    if best:
        print(
            f"best possible with this DAG: {best['best_mean_in_flight']:.2f} / {args.slots} = "
            f"{best['best_mean_in_flight'] / args.slots:.1%} ({best['prefix_requests']} requests of the catalogue's "
            f"serial chain in {best['prefix_rounds']} rounds of at least {args.latency:g} s, the rest with every slot "
            f"busy: at least {best['min_busy_s']:.1f} s busy); this run reached "
            f"{s['mean_in_flight_busy'] / best['best_mean_in_flight']:.1%} of it"
        )
    first = s["first_request_s"]
    print("mean in flight by LLM phase (its first request to its last answer, while any was served):")
    for name, ph in by_phase(meter).items():
        print(
            f"  {name:<42} {ph['requests']:4d} requests, {ph['from_s'] - first:6.1f} -> {ph['to_s'] - first:6.1f} s: "
            f"{ph['mean_in_flight_busy']:.2f} / {args.slots} = {ph['mean_in_flight_busy'] / args.slots:.1%}"
        )
    print(
        "busy seconds by requests in flight: "
        + ", ".join(f"{band}: {sec:.1f} s" for band, sec in s["busy_s_by_in_flight"].items())
    )
    spans: dict[str, list[float]] = {}
    for task, t0, t1 in meter.spans:
        lo, hi, n = spans.get(task, [t0, t1, 0])
        spans[task] = [min(lo, t0), max(hi, t1), n + 1]
    print("requests by task (count, from first start to last end, seconds after the first request):")
    for task, (lo, hi, n) in sorted(spans.items(), key=lambda kv: kv[1][0]):
        print(f"  {task:<26} {n:4d}  {lo - first:6.1f} -> {hi - first:6.1f}")
    if args.spans:
        args.spans.write_text(json.dumps([(task, t0 - first, t1 - first) for task, t0, t1 in meter.spans]))
    if args.json:
        print(json.dumps({**s, "best": best, "wall_s": wall, "ideal_s": ideal, "cpu_s": cpu, "slots": args.slots}))
    print(f"(run kept in {work})" if args.keep else f"(run in {work}; remove it when done)")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""Mistake-rate agreement: does the evaluator say what the injected mistakes imply?

    python benchmarks/mistakes.py --outputs outputs/ [--rate 0.3] [--seed 7] [--workers 2] [--json]

Plays every dataset row with the offline simulators, the assistant making one injected
mistake per episode with probability ``--rate`` (``rollout.mistake_rate``), scores the
episodes with ``evaluator.evaluate_episodes`` and compares each verdict with the ground truth
of :mod:`rollout.mistakes`: an episode without a mistake, or whose mistake had no observable
effect (decided by replaying its calls against the golden ones, not by the verdict), must
pass; one with an observable mistake must get the category its kind implies. Prints the
episodes, how many have a mistake and how many of those an observable one, the agreement
(count and share) and every disagreement.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rollout import RolloutSettings, load_rows, read_episodes, run_rollouts  # noqa: E402
from rollout.mistakes import agreement  # noqa: E402


def measure(outputs: Path, rate: float, seed: int, workers: int = 1, limit: int | None = None) -> dict:
    import evaluator

    rows = load_rows(outputs)
    if limit:
        rows = rows[:limit]
    with tempfile.TemporaryDirectory(prefix="mistakes-") as tmp:
        out = Path(tmp) / "episodes.jsonl"
        t0 = time.perf_counter()
        run_rollouts(rows, outputs, out, RolloutSettings(mistake_rate=rate, seed=seed, workers=workers))
        played = time.perf_counter() - t0
        eps = read_episodes(out)
    t1 = time.perf_counter()
    verdicts = evaluator.evaluate_episodes(eps, rows, outputs, outputs_dir=outputs)
    report = agreement(eps, verdicts, rows, outputs)
    report.update(
        rate=rate, seed=seed, seconds={"rollout": round(played, 2), "judge": round(time.perf_counter() - t1, 2)}
    )
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outputs", type=Path, default=Path("outputs"), help="a finished run's outputs")
    ap.add_argument("--rate", type=float, default=0.3, help="per-episode probability of an injected mistake")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=1, help="episodes played at once")
    ap.add_argument("--limit", type=int, help="only the first N rows")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    r = measure(args.outputs.resolve(), args.rate, args.seed, args.workers, args.limit)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    n = r["episodes"]
    print(f"mistake rate {r['rate']}, seed {r['seed']}")
    print(f"episodes                 {n}")
    print(f"with mistakes            {r['with_mistakes']}")
    print(f"  observable             {r['observable']}")
    print(f"  no observable effect   {r['unobservable']}")
    print(f"agreement                {r['agree']}/{n} ({100 * (r['agreement'] or 0):.1f}%)")
    for kind, c in r["by_kind"].items():
        obs = f", observable {c.get('observable', 0)}" if kind != "none" else ""
        print(f"  {kind:<20} {c['agree']}/{c['episodes']} agree{obs}")
    print(f"disagreements            {len(r['disagreements'])}")
    for d in r["disagreements"]:
        print(
            f"  {d['query_id']} ({d['task_kind']}) mistake {d['mistake']}, observable {d['observable']}: "
            f"expected {d['expected']}, verdict {d['verdict']}; {'; '.join(d['effect']) or 'same outcome'}"
        )
    print(f"seconds: rollout {r['seconds']['rollout']}, judge {r['seconds']['judge']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluator throughput: score N scripted episodes of a built dataset and print episodes/s.

    python benchmarks/evaluate.py --outputs outputs/ [--episodes 1000] [--in-process]

Builds the episodes from the rows of ``dataset/train.jsonl`` (evaluator.play): each row's
golden play, and perturbed plays with a known verdict - an extra read (passes), writes
without the user's confirmation (``unconfirmed_write``), the last write skipped
(``missing_write``) and the last write with a changed argument (``wrong_write_args``) -
cycled until there are N. Then times :func:`evaluator.evaluate_episodes` over all of them
(sandboxed workers, one per env, unless ``--in-process``) and prints the time, the
episodes per second and how many verdicts got the expected category. Target: 1,000
episodes in under 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentskiller.reporting.task_audit import server_dir  # noqa: E402
from agentskiller.runtime.environment import load_environment  # noqa: E402
from evaluator import build_summary, evaluate_episodes, format_table, load_rows  # noqa: E402
from evaluator.calls import ToolCatalog  # noqa: E402
from evaluator.play import episode, golden_steps  # noqa: E402


def _last_write(steps: list, is_write) -> int | None:
    idx = [i for i, s in enumerate(steps) if s[0] == "call" and is_write(s[1])]
    return idx[-1] if idx else None


def _changed(value):
    if isinstance(value, str):
        return value[:-1] + ("X" if value[-1:] != "X" else "Y") if value else "X"
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return "X"


def variants(row: dict, cat: ToolCatalog) -> list[tuple[str, str | None, list]]:
    """(variant, expected category or None for a pass, steps)."""
    base = golden_steps(row, cat.is_write)
    out = [("golden", None, base)]
    reads = [s for s in base if s[0] == "call" and not cat.is_write(s[1]) and not cat.is_authorize(s[1])]
    if reads:
        extra = list(base)
        extra.insert(base.index(reads[-1]) + 1, reads[-1])
        out.append(("extra_read", None, extra))
    w = _last_write(base, cat.is_write)
    if w is not None:
        out.append(("unconfirmed", "unconfirmed_write", golden_steps(row, cat.is_write, confirm=False)))
        out.append(("skip_write", "missing_write", base[: w - 2] + base[w + 1 :]))
        name, args = base[w][1], dict(base[w][2])
        if args:
            key = sorted(args)[-1]
            args[key] = _changed(args[key])
            out.append(("wrong_arg", "wrong_write_args", base[:w] + [("call", name, args)] + base[w + 1 :]))
    return out


def build(rows: dict[str, dict], outputs: Path, n: int) -> tuple[list, list[tuple[str, str | None]]]:
    cats: dict[str, ToolCatalog] = {}
    pool = []
    for row in sorted(rows.values(), key=lambda r: r["id"]):
        if row["env"] not in cats:
            env = load_environment(server_dir(outputs, row["env"]))
            names = [t["function"]["name"] for t in json.loads(row["tools"])]
            cats[row["env"]] = ToolCatalog.for_env(env.manifest, [outputs / "blueprints"], names)
        for name, want, steps in variants(row, cats[row["env"]]):
            pool.append((row, name, want, steps))
    pool.sort(key=lambda p: (p[1] != "golden", p[1]))  # every golden play first, then the perturbations
    episodes, expected = [], []
    for i in range(n):
        row, name, want, steps = pool[i % len(pool)]
        results = row["expected_outputs"] if name == "golden" else None
        episodes.append(episode(row, steps, episode=i // len(pool), results=results))
        expected.append((name, want))
    return episodes, expected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outputs", type=Path, default=Path("outputs"))
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--in-process", action="store_true", help="replay in this process instead of sandboxed workers")
    ap.add_argument("--table", action="store_true", help="also print the summary table")
    a = ap.parse_args()
    rows = load_rows(a.outputs)
    episodes, expected = build(rows, a.outputs, a.episodes)
    t0 = time.perf_counter()
    verdicts = evaluate_episodes(episodes, rows, a.outputs, in_process=a.in_process)
    dt = time.perf_counter() - t0
    agree = Counter()
    for v, (name, want) in zip(verdicts, expected):
        agree[(name, v.category == want)] += 1
    print(f"{len(verdicts)} episodes of {len(rows)} rows in {dt:.2f} s: {len(verdicts) / dt:.0f} episodes/s")
    for name in sorted({n for n, _ in expected}):
        ok, bad = agree[(name, True)], agree[(name, False)]
        print(f"  {name:12} {ok + bad:5} episodes, expected verdict {ok:5}, other {bad}")
    if a.table:
        print(format_table(build_summary(verdicts)))


if __name__ == "__main__":
    main()

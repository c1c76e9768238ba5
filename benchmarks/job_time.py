"""Total job time of two finished runs, and whether they made the same artifacts.

    python benchmarks/job_time.py BEFORE_DIR AFTER_DIR [--outputs outputs]

Each DIR is a workflow directory after a run (its ``logs/benchmarks/<rule>/*.tsv``, the
``benchmark:`` files Snakemake writes, and ``outputs/``). Prints per rule the jobs and the
seconds (the ``s`` column: each job's wall time) of both runs, the totals and the ratio,
twice: over every benchmarked job, and over the rules that both runs benchmark (a rule that
only one run benchmarks, or that was merged into another, is listed). Then compares the
artifacts byte for byte (every file under ``outputs/``; the logs and benchmarks are outside
it) and exits 1 when they differ. Figures are for one run on one machine: run both close in
time on the same machine and compare the ratio.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from collections import defaultdict
from pathlib import Path


def job_times(work: Path) -> dict[str, list[float]]:
    """rule -> the ``s`` of each of its jobs."""
    times: dict[str, list[float]] = defaultdict(list)
    root = work / "logs" / "benchmarks"
    for path in sorted(root.glob("*/*.tsv")):
        with path.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if rows:
            times[path.parent.name].append(float(rows[-1]["s"]))
    return dict(times)


def artifacts(work: Path, outputs: str) -> dict[str, str]:
    root = work / outputs
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _table(before: dict[str, list[float]], after: dict[str, list[float]], rules: list[str]) -> tuple[float, float]:
    tb = ta = 0.0
    print(f"{'rule':<20} {'jobs':>5} {'before s':>9} {'jobs':>5} {'after s':>9}")
    for r in rules:
        b, a = before.get(r, []), after.get(r, [])
        tb += sum(b)
        ta += sum(a)
        print(f"{r:<20} {len(b):>5} {sum(b):>9.1f} {len(a):>5} {sum(a):>9.1f}")
    return tb, ta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--outputs", default="outputs", help="artifact folder inside each run directory")
    args = ap.parse_args(argv)
    before, after = job_times(args.before), job_times(args.after)
    if not before or not after:
        print("no benchmark files in one of the runs", file=sys.stderr)
        return 2
    rules = sorted(set(before) | set(after), key=lambda r: -sum(before.get(r, []) + after.get(r, [])))
    tb, ta = _table(before, after, rules)
    nb, na = sum(map(len, before.values())), sum(map(len, after.values()))
    print(f"\nall benchmarked jobs: before {tb:.1f} s ({nb} jobs), after {ta:.1f} s ({na} jobs), ratio {ta / tb:.3f}")
    common = [r for r in rules if r in before and r in after]
    cb = sum(sum(before[r]) for r in common)
    ca = sum(sum(after[r]) for r in common)
    only_b = sorted(set(before) - set(after))
    only_a = sorted(set(after) - set(before))
    print(
        f"rules benchmarked in both: before {cb:.1f} s, after {ca:.1f} s, ratio {ca / cb:.3f} ({1 - ca / cb:+.1%} less)"
    )
    if only_b or only_a:
        print(f"benchmarked only before: {only_b or '-'}; only after: {only_a or '-'}")
    a, b = artifacts(args.before, args.outputs), artifacts(args.after, args.outputs)
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    print(f"artifacts: {len(a)} before, {len(b)} after, {len(differing)} differ")
    for k in differing[:40]:
        print(f"  differs: {k}" + ("" if k in a and k in b else " (only one side)"))
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())

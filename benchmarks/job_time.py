"""Total job time of two finished runs, and whether they made the same artifacts.

    python benchmarks/job_time.py BEFORE_DIR AFTER_DIR [--outputs outputs]

Each DIR is a workflow directory after a run (its ``logs/benchmarks/<rule>/*.tsv``, the
``benchmark:`` files Snakemake writes, ``.snakemake/log/``, and ``outputs/``). Prints per rule
the jobs and the seconds (the ``s`` column: each job's wall time) of both runs, the totals and
the ratio, over every benchmarked job and over the rules that both runs benchmark (a rule that
only one run benchmarks, or that was merged into another, is listed), and the CPU seconds (the
``cpu_time`` column, less sensitive to a loaded machine). A rule without ``benchmark:`` has no
file, so the totals are also taken from Snakemake's own log of the run (the one under
``.snakemake/log`` that finished the most jobs): every job from the line that starts it to its "Finished jobid" (whole
seconds, so +-1 s per job), and exactly from Snakemake's metadata records of every output
(``.snakemake/metadata``: each job's start and end, every job counted once). Then compares the
artifacts byte for byte (every file under ``outputs/``; the logs and benchmarks are outside
it) and exits 1 when they differ. Figures are for one run on one machine: run both close in
time on the same machine and compare the ratio.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path


def job_times(work: Path, only: set[str] | None = None) -> dict[str, list[float]]:
    """rule -> the ``s`` of each of its jobs (``only``: just these ``rule/job`` names)."""
    times: dict[str, list[float]] = defaultdict(list)
    root = work / "logs" / "benchmarks"
    for path in sorted(root.glob("*/*.tsv")):
        if only is not None and f"{path.parent.name}/{path.stem}" not in only:
            continue
        with path.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if rows:
            times[path.parent.name].append(float(rows[-1]["s"]))
    return dict(times)


def cpu_times(work: Path, only: set[str] | None = None) -> float:
    total = 0.0
    for path in sorted((work / "logs" / "benchmarks").glob("*/*.tsv")):
        if only is not None and f"{path.parent.name}/{path.stem}" not in only:
            continue
        with path.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if rows and rows[-1].get("cpu_time") not in (None, "", "NA"):
            total += float(rows[-1]["cpu_time"])
    return total


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_END = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)")


def scheduler_times(work: Path, log: Path | None = None) -> dict[str, list[float]]:
    """rule -> seconds from start to finish of each job, from the Snakemake log of the run (the
    one that finished the most jobs: later dry runs and reruns write logs too)."""
    logs = (
        [log]
        if log
        else sorted(
            (work / ".snakemake" / "log").glob("*.snakemake.log"),
            key=lambda p: p.read_text(encoding="utf-8", errors="replace").count("\nFinished jobid"),
        )
    )
    if not logs:
        return {}
    stamp = None
    rule = None
    started: dict[str, tuple[str, datetime]] = {}
    times: dict[str, list[float]] = defaultdict(list)
    for line in logs[-1].read_text(encoding="utf-8", errors="replace").splitlines():
        if m := _STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := _START.match(line):
            rule = m.group(1)
        elif (m := _JOBID.match(line)) and rule and stamp:
            started[m.group(1)] = (rule, stamp)
            rule = None
        elif (m := _END.match(line)) and stamp and m.group(1) in started:
            name, t0 = started.pop(m.group(1))
            if name != "all":
                times[name].append((stamp - t0).total_seconds())
    return dict(times)


def metadata_times(work: Path) -> dict[str, list[float]]:
    """rule -> seconds from start to end of each job, from the records Snakemake keeps of every
    output (``.snakemake/metadata``, grouped by job). Exact to the millisecond and covering every
    job, benchmarked or not."""
    spans: dict[tuple[str, object], tuple[float, float]] = {}
    for path in (work / ".snakemake" / "metadata").glob("*"):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if rec.get("starttime") is None or rec.get("endtime") is None or rec.get("incomplete"):
            continue
        # each output's record has its own end (written as the job finishes it): one span per job
        key = (rec["rule"], rec.get("job_hash"))
        t0, t1 = spans.get(key, (rec["starttime"], rec["endtime"]))
        spans[key] = (min(t0, rec["starttime"]), max(t1, rec["endtime"]))
    times: dict[str, list[float]] = defaultdict(list)
    for (rule, _), (t0, t1) in spans.items():
        times[rule].append(t1 - t0)
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
    ap.add_argument(
        "--common-jobs",
        action="store_true",
        help="only the jobs (rule/wildcards) benchmarked in both runs, and only the artifacts both have: "
        "for comparing two runs that are still going, or one that stopped early",
    )
    ap.add_argument(
        "--logs",
        nargs=2,
        type=Path,
        metavar=("BEFORE_LOG", "AFTER_LOG"),
        help="Snakemake's output of each run (its stderr), instead of the logs under .snakemake/log",
    )
    args = ap.parse_args(argv)
    only = None
    if args.common_jobs:

        def names(w: Path) -> set[str]:
            return {f"{p.parent.name}/{p.stem}" for p in (w / "logs" / "benchmarks").glob("*/*.tsv")}

        only = names(args.before) & names(args.after)
    before, after = job_times(args.before, only), job_times(args.after, only)
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
    cpub, cpua = cpu_times(args.before, only), cpu_times(args.after, only)
    if cpub:
        print(f"CPU of benchmarked jobs: before {cpub:.1f} s, after {cpua:.1f} s, ratio {cpua / cpub:.3f}")
    logs = args.logs or (None, None)
    sb, sa = scheduler_times(args.before, logs[0]), scheduler_times(args.after, logs[1])
    if sb and sa and not args.common_jobs:
        print("\nevery job, from Snakemake's log (start to finish):")
        tb, ta = _table(sb, sa, sorted(set(sb) | set(sa), key=lambda r: -sum(sb.get(r, []) + sa.get(r, []))))
        nb, na = sum(map(len, sb.values())), sum(map(len, sa.values()))
        print(f"all jobs: before {tb:.0f} s ({nb} jobs), after {ta:.0f} s ({na} jobs), ratio {ta / tb:.3f}")
    mb, ma = metadata_times(args.before), metadata_times(args.after)
    if mb and ma and not args.common_jobs:
        print("\nevery job, from Snakemake's metadata records (start to end):")
        tb, ta = _table(mb, ma, sorted(set(mb) | set(ma), key=lambda r: -sum(mb.get(r, []) + ma.get(r, []))))
        nb, na = sum(map(len, mb.values())), sum(map(len, ma.values()))
        print(
            f"every job: before {tb:.1f} s ({nb} jobs), after {ta:.1f} s ({na} jobs), ratio {ta / tb:.3f} "
            f"({1 - ta / tb:+.1%} less)"
        )
    a, b = artifacts(args.before, args.outputs), artifacts(args.after, args.outputs)
    keys = set(a) & set(b) if args.common_jobs else set(a) | set(b)
    differing = sorted(k for k in keys if a.get(k) != b.get(k))
    print(f"artifacts: {len(a)} before, {len(b)} after, {len(differing)} differ")
    for k in differing[:40]:
        print(f"  differs: {k}" + ("" if k in a and k in b else " (only one side)"))
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())

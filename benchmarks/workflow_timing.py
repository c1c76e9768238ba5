"""Wall-clock of the default offline workflow, phase by phase, on this machine.

    python benchmarks/workflow_timing.py [--cores 2] [--keep DIR]

Runs three fresh builds into a scratch directory, each extending the last:
s01-s05 (blueprints and tool lists), then s06-s09 (environments), then s14-s17 + dataset,
and prints the seconds of each phase and the cumulative figure, the number of jobs, and a
no-op rerun. Figures are for one run: compare ratios, not absolute seconds, across machines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def smk(work: Path, cores: int, *targets: str) -> tuple[float, str]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(REPO / "config/config.yaml"),
        "--cores",
        str(cores),
        *targets,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"snakemake failed: {' '.join(targets) or 'all'}")
    return dt, proc.stderr


def domain_targets(work: Path, patterns: list[str]) -> list[str]:
    index = json.loads((work / "outputs/blueprints/outlines.json").read_text())
    return [p.format(d=d["domain"]) for d in index["domains"] for p in patterns]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="build here and keep it")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="agentskiller-bench-"))
    if work.exists() and args.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)

    t1, _ = smk(work, args.cores, "outputs/blueprints/outlines.json")
    targets = ["outputs/blueprints/index.json"] + domain_targets(work, ["outputs/tool_lists/{d}.json"])
    t1b, _ = smk(work, args.cores, *targets)
    s05 = t1 + t1b
    t2, _ = smk(
        work, args.cores, *domain_targets(work, ["outputs/servers/{d}/report.json", "outputs/tool_graphs/{d}.json"])
    )
    t3, _ = smk(work, args.cores)
    t4, log = smk(work, args.cores)
    rows = [
        ("s01-s05 (topics .. tool lists)", s05, s05),
        ("s06-s09 (databases .. servers)", t2, s05 + t2),
        ("s14-s17 + dataset", t3, s05 + t2 + t3),
        ("no-op rerun", t4, None),
    ]
    print(f"cores={args.cores} workdir={work}")
    print(f"{'phase':34s} {'seconds':>8s} {'cumulative':>11s}")
    for name, dt, cum in rows:
        print(f"{name:34s} {dt:8.1f} {'' if cum is None else f'{cum:11.1f}'}")
    print("no-op rerun says:", "Nothing to be done" if "Nothing to be done" in log else "JOBS RAN")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Kill the default workflow at random moments, resume each time, compare with a clean run.

    python benchmarks/chaos.py [--kills 20] [--seed 1] [--cores 2] [--keep DIR]
    python benchmarks/chaos.py --outage 120 [--keep DIR]

Kills: a reference run builds ``ref/``; then ``chaos/`` is built by ``snakemake`` started in
its own process group (``setsid``) and SIGKILLed with the whole group at a random moment, then
resumed, again and again, ``--kills`` times, and finally resumed to the end. A resume is
exactly what the README says: ``snakemake --cores N`` again, preceded by ``snakemake --unlock``
when Snakemake reports the directory locked (a SIGKILLed Snakemake cannot release its lock).
Nothing else is done by hand. The kill moments are drawn so that they spread over the whole
run: kill ``k`` comes a random 0-2 s after ``chaos/outputs`` holds ``(k + 0.5) / N`` of the
reference run's output files (outputs are written whole, so their number tracks progress).
Prints, per kill, the jobs that were running, and at the end the number of resumes that needed
an unlock, leftover temporary files, and whether ``diff -r ref/outputs chaos/outputs`` is empty.

Outage: a run with ``llm.provider: openai`` against ``tests/fake_openai.py`` (answers as the
offline provider would), whose endpoint goes down for ``--outage`` seconds in the middle of
the run; the run must fail naming the endpoint, quarantine nothing for a transport reason, and
the resume after the endpoint is back must give a dataset byte-identical to a fault-free run.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def smk_cmd(work: Path, cores: int, *extra: str, config: Path | None = None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(config or REPO / "config" / "config.yaml"),
        "--cores",
        str(cores),
        *extra,
    ]


def run(work: Path, cores: int, config: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        smk_cmd(work, cores, config=config), capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def resume(work: Path, cores: int, log: Path, config: Path | None = None, env: dict | None = None):
    """Start a resume in its own process group; unlock first when Snakemake says the directory is locked.

    No dry-run probe: the resume itself is started, and only when it stops at once with
    Snakemake's lock error is ``--unlock`` run and the resume started again, as the README says.
    Returns once the resume is past its lock check (or has ended), so a kill's clock starts then.
    """
    full_env = {**os.environ, **(env or {})}
    unlocked = False
    while True:
        fh = open(log, "w")  # noqa: SIM115 (closed by the caller once the process ends)
        proc = subprocess.Popen(
            smk_cmd(work, cores, config=config),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=full_env,
        )
        while proc.poll() is None:
            text = log.read_text(errors="replace")
            if "Select jobs to execute" in text or "Nothing to be done" in text:
                return proc, fh, unlocked
            time.sleep(0.1)
        fh.close()
        text = log.read_text(errors="replace")
        if unlocked or not ("cannot be locked" in text or "LockException" in text):
            fh = open(log, "a")  # noqa: SIM115
            return proc, fh, unlocked
        subprocess.run(smk_cmd(work, cores, "--unlock", config=config), capture_output=True, text=True, check=True)
        unlocked = True


def running_jobs(log: Path) -> list[str]:
    """Rules started and not finished, from the resume's log."""
    text = log.read_text(errors="replace") if log.exists() else ""
    started = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):\n(?:.*\n)*?\s+jobid: (\d+)", text, re.M)
    done = set(re.findall(r"Finished jobid: (\d+)", text))
    return sorted({rule for rule, jid in started if jid not in done})


def files_under(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def wait_for_progress(proc: subprocess.Popen, outputs: Path, target: int, timeout: float) -> bool:
    """Until ``outputs`` holds ``target`` files (True), or the resume ends (False). Outputs are
    written whole, so their number follows the run's progress through every phase (a job
    count does not: before the checkpoint Snakemake's DAG holds only a handful of jobs)."""
    end = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < end:
        if files_under(outputs) >= target:
            return True
        time.sleep(0.2)
    return False


def leftovers(work: Path) -> list[str]:
    found = []
    for p in (work / "outputs").rglob("*"):
        if p.name.endswith(".tmp") or ".staging" in p.name:
            found.append(str(p.relative_to(work)))
    return found


def tree_diff(a: Path, b: Path) -> list[str]:
    out: list[str] = []

    def walk(cmp: filecmp.dircmp, rel: str) -> None:
        out.extend(f"only in ref: {rel}{n}" for n in cmp.left_only)
        out.extend(f"only in chaos: {rel}{n}" for n in cmp.right_only)
        out.extend(f"differs: {rel}{n}" for n in cmp.diff_files)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{rel}{name}/")

    walk(filecmp.dircmp(a, b, ignore=[]), "")
    return out


def kills(args: argparse.Namespace, root: Path) -> int:
    rng = random.Random(args.seed)
    ref = root / "ref"
    t0 = time.perf_counter()
    res = run(ref, args.cores)
    ref_s = time.perf_counter() - t0
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-3000:])
        return 1
    print(f"reference run: {ref_s:.1f} s", flush=True)
    total = files_under(ref / "outputs")
    # kill k once the run has (k + 0.5) / N of the reference run's output files
    targets = [round((k + 0.5) * total / args.kills) for k in range(args.kills)]
    print(f"kill points (output files of {total}): {targets}", flush=True)
    chaos = root / "chaos"
    unlocks, killed, finished_early = 0, 0, 0
    t1 = time.perf_counter()
    for i in range(args.kills):
        log = root / f"resume-{i:02d}.log"
        proc, fh, unlocked = resume(chaos, args.cores, log)
        unlocks += unlocked
        # The kill comes a random 0-2 s after the run reaches its kill point (at once when a
        # resume starts past it): the kills follow the run's phases to its end.
        reached = wait_for_progress(proc, chaos / "outputs", targets[i], timeout=4 * ref_s)
        wait = rng.uniform(0.0, 2.0) if reached else 0.0
        try:
            proc.wait(timeout=wait)
            finished_early += 1
            print(f"kill {i + 1:2d}: run finished before the kill (rc {proc.returncode})")
        except subprocess.TimeoutExpired:
            jobs = running_jobs(log)
            steps = re.findall(r"^(\d+ of \d+) steps", log.read_text(errors="replace"), re.M)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed += 1
            print(
                f"kill {i + 1:2d} after {wait:5.1f} s ({steps[-1] if steps else 'no'} steps of this resume done):"
                f" running {', '.join(jobs) or '(between jobs)'}",
                flush=True,
            )
        fh.close()
    log = root / "resume-final.log"
    proc, fh, unlocked = resume(chaos, args.cores, log)
    unlocks += unlocked
    rc = proc.wait()
    fh.close()
    chaos_s = time.perf_counter() - t1
    second = run(chaos, args.cores)
    diffs = tree_diff(ref / "outputs", chaos / "outputs")
    left = leftovers(chaos)
    print(f"kills: {killed} (+{finished_early} attempts that finished first); resumes that needed --unlock: {unlocks}")
    print(f"final resume: rc {rc}; chaos wall {chaos_s:.1f} s vs reference {ref_s:.1f} s")
    print(f"rerun after the final resume: {'nothing to do' if 'Nothing to be done' in second.stderr else 'ran jobs'}")
    print(f"temporary leftovers under outputs/: {len(left)} {left[:5]}")
    print(f"diff -r ref/outputs chaos/outputs: {'identical' if not diffs else f'{len(diffs)} differences'}")
    for d in diffs[:20]:
        print("  ", d)
    return 0 if rc == 0 and not diffs and not left else 1


def outage(args: argparse.Namespace, root: Path) -> int:
    from fake_openai import FakeOpenAI, offline_bridge
    from workflow_helpers import write_config

    def cfg_for(work: Path, base_url: str) -> Path:
        work.mkdir(parents=True, exist_ok=True)
        return write_config(
            work,
            **{
                "llm.provider": "openai",
                "llm.base_url": base_url,
                "llm.api_key_env": "CHAOS_FAKE_KEY",
                "llm.retry_window_s": args.retry_window,
            },
        )

    env = {"CHAOS_FAKE_KEY": "sk-chaos-not-a-secret"}
    with FakeOpenAI(responder=offline_bridge(7)) as clean:
        ref = root / "ref"
        res = run(ref, args.cores, cfg_for(ref, clean.base_url), env)
        if res.returncode != 0:
            sys.stderr.write(res.stderr[-3000:])
            return 1
    print("fault-free openai run: done")
    fake = FakeOpenAI(responder=offline_bridge(7)).start()
    work = root / "outage"
    cfg = cfg_for(work, fake.base_url)

    def down_later() -> None:
        time.sleep(args.outage_after)
        fake.down = True
        print(f"endpoint down at +{args.outage_after:.0f} s for {args.outage} s")
        time.sleep(args.outage)
        fake.down = False
        print("endpoint back")

    threading.Thread(target=down_later, daemon=True).start()
    t0 = time.perf_counter()
    first = run(work, args.cores, cfg, env)
    print(f"run during the outage: rc {first.returncode} after {time.perf_counter() - t0:.0f} s")
    named = fake.base_url.split("//")[1].split("/")[0] in first.stderr
    print(f"failure names the endpoint: {named}")
    transport = subprocess.run(
        ["grep", "-rlE", "(APIConnectionError|Timeout|endpoint|429|503)", str(work / "outputs")],
        capture_output=True,
        text=True,
    ).stdout.split()
    quarantined = [p for p in transport if '"status": "failed"' in Path(p).read_text()]
    print(f"units quarantined for a transport reason: {len(quarantined)} {quarantined[:3]}")
    while fake.down:
        time.sleep(1)
    second = run(work, args.cores, cfg, env)
    fake.stop()
    print(f"resume after recovery: rc {second.returncode}")
    same = filecmp.cmp(ref / "outputs/dataset/train.jsonl", work / "outputs/dataset/train.jsonl", shallow=False)
    print(f"dataset byte-identical to the fault-free run: {same}")
    return 0 if first.returncode != 0 and named and not quarantined and second.returncode == 0 and same else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--outage", type=float, default=0, help="seconds of endpoint outage (openai provider run)")
    ap.add_argument("--outage-after", type=float, default=20, help="when the outage starts, seconds into the run")
    ap.add_argument("--retry-window", type=float, default=30, help="llm.retry_window_s for the outage run")
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="agentskiller-chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        rc = outage(args, root) if args.outage else kills(args, root)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    raise SystemExit(rc)


if __name__ == "__main__":
    main()

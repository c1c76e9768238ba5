"""Scale figures of the workflow at many synthetic domains, before/after in one run.

    python benchmarks/scale.py [--domains 1008] [--rows 100000] [--base-ref 26b473e]
                               [--old-domains N] [--old-rows N] [--skip dag,s10,dataset] [--work DIR]

Prints, for this checkout ("new") and, where ``--base-ref`` is given, for that git ref checked
out in a scratch worktree ("old", the same inputs):

* **DAG**: CPU seconds of ``snakemake -n`` and of a no-op ``snakemake --cores 1`` on a complete
  synthetic outputs tree of N domains (real checkpoint files ``blueprints/outlines.json`` and
  ``cross/combinations.json``, every other artifact an empty placeholder with its mtime in DAG
  order), so both runs have nothing to do and measure the DAG alone;
* **s10**: seconds and peak memory of the combinations step on N synthetic domains of *one*
  person (the worst case: N (N - 1) / 2 candidates), from real blueprint JSON renamed, with
  passing servers, a few quarantined ones and task counts that leave some members thin;
* **dataset**: seconds and peak memory of the dataset step on synthetic envs of 1,000 rows each
  (real row shapes: policy, tool list, golden calls, expected outputs).

Each measured step runs in its own process; peak memory is that process's ``ru_maxrss`` (from
``wait4``), CPU its user + system time. Figures are for one run on one machine: compare ratios.
The old code of s10 and the dataset holds everything in memory (2.5 GB at 1,008 domains, about
10-20 GB at 100k rows): ``--old-domains`` / ``--old-rows`` run it on a smaller input, and the new
code is measured on that input too, so the ratio compares like with like.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "cross" / "outputs"
ROWS_PER_ENV = 1000


# ---------------------------------------------------------------------------- processes
def measure(cmd: list[str], pythonpath: Path, cwd: Path) -> dict:
    """Run ``cmd``; its wall and CPU seconds and peak RSS (MB); its stdout's last JSON line, if any.

    ``cwd`` must be outside both checkouts: ``python -c`` / ``-m`` put the working directory
    first on ``sys.path``, before PYTHONPATH, so a run from a checkout imports that checkout."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(c[:60] for c in cmd[:6])} ...")
    result = {
        "wall_s": wall,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "peak_mb": ru.ru_maxrss / 1024,
        "stderr": stderr,
        "log": stdout + stderr,  # snakemake prints its dry-run summary on stdout
    }
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if lines:
        result.update(json.loads(lines[-1]))
    return result


def old_tree(ref: str, work: Path) -> Path:
    """The files of ``ref`` (``git archive``) in the scratch directory: the old code of the same
    workflow, importable with PYTHONPATH pointing at it."""
    path = work / f"base-{ref}"
    if not (path / "Snakefile").is_file():
        path.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(path)], input=archive, check=True)
    return path


def snakemake(tree: Path, work: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(tree / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(REPO / "config" / "config.yaml"),
        *args,
    ]


# ------------------------------------------------------------------------------- s10
def _blueprint_json() -> dict:
    return json.loads((FIXTURE / "blueprints" / "DentalCareDesk.json").read_text())


def make_s10_world(out: Path, n: int) -> None:
    """n domains of one person: every 50th server quarantined, every 4th member thin (one
    interlockable task where two are needed), the others with 2-4 interlockable tasks."""
    bp = _blueprint_json()
    auth = next(t["name"] for t in bp["tools"] if t["kind"] == "authorize")
    other = next(t["name"] for t in bp["tools"] if t["kind"] != "authorize")
    index = []
    for i in range(n):
        d = f"Desk{i:04d}"
        index.append({"domain": d, "core_entity": bp["core_entity"], "status": "ok"})
        _write(out / f"blueprints/{d}.json", {**bp, "domain": d})
        passed = i % 50 != 49
        _write(out / f"servers/{d}/report.json", {"status": "passed" if passed else "failed", "reason": "synthetic"})
        k = 1 if i % 4 == 3 else 2 + i % 3
        tasks = [{"status": "valid", "golden_calls": [{"name": auth}, {"name": other}]} for _ in range(k)]
        _write(out / f"tasks/{d}.json", {"env": d, "status": "ok", "tasks": tasks})
    _write(out / "blueprints/index.json", {"domains": index})


S10_CODE = """
import json, sys, time
from pathlib import Path
from agentskiller.jobs import StepContext
from agentskiller.steps.cross import s10_combinations
out = Path(sys.argv[1])
doms = [d["domain"] for d in json.loads((out / "blueprints/index.json").read_text())["domains"]]
cfg = {"seed": 7, "llm": {"provider": "offline"}, "cross": {"enabled": True, "max_pairs": 4, "min_member_tasks": 2}}
ctx = StepContext.from_paths("s10", cfg, inputs={
    "index": out / "blueprints/index.json",
    "blueprints": [out / f"blueprints/{d}.json" for d in doms],
    "server_reports": [out / f"servers/{d}/report.json" for d in doms],
    "tasks": [out / f"tasks/{d}.json" for d in doms],
}, outputs={"combinations": out / sys.argv[2]})
t0, c0 = time.perf_counter(), time.process_time()
s10_combinations.run(ctx)
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
doc = json.loads((out / sys.argv[2]).read_text())
print(json.dumps({"step_s": dt, "step_cpu_s": cpu, "counts": doc["counts"], "pairs": [p["pair"] for p in doc["pairs"]],
                  "artifact_mb": (out / sys.argv[2]).stat().st_size / 1e6}))
"""


def bench_s10(args: argparse.Namespace, work: Path, old: Path | None) -> None:
    print(f"\n## s10 combinations: {args.domains} domains of one person")
    world = work / f"s10-{args.domains}"
    if not (world / "blueprints/index.json").is_file():
        make_s10_world(world, args.domains)
    new = measure([sys.executable, "-c", S10_CODE, str(world), "cross/new.json"], REPO, work)
    _row("new", new, f"{new['counts']}")
    if old is None:
        return
    n_old = args.old_domains or args.domains
    old_world = world if n_old == args.domains else work / f"s10-{n_old}"
    if not (old_world / "blueprints/index.json").is_file():
        make_s10_world(old_world, n_old)
    same = (
        new
        if old_world == world
        else measure([sys.executable, "-c", S10_CODE, str(old_world), "cross/new.json"], REPO, work)
    )
    before = measure([sys.executable, "-c", S10_CODE, str(old_world), "cross/old.json"], old, work)
    if old_world != world:
        _row(f"new @{n_old}", same, "")
    _row(f"old @{n_old}", before, f"artifact {before['artifact_mb']:.1f} MB")
    agree = before["pairs"] == same["pairs"] and before["counts"] == same["counts"]
    print(
        f"ratio old/new @{n_old}: step CPU {before['step_cpu_s'] / max(same['step_cpu_s'], 1e-9):.1f}x, "
        f"peak memory {before['peak_mb'] / same['peak_mb']:.1f}x; same kept pairs and counts: {agree}"
    )


# --------------------------------------------------------------------------- dataset
POLICY_PARAGRAPH = (
    "Customers must be authorized with their ID before any request. Staff never disclose another "
    "customer's records. Appointments can be booked up to 60 days ahead, moved at most twice, and "
    "cancelled until 24 hours before the start; a cancelled appointment cannot be reopened. "
)


def make_dataset_world(out: Path, n_envs: int) -> list[str]:
    """n_envs envs of ROWS_PER_ENV queries each, with their tasks, policies, tool lists and servers."""
    tools = json.loads((FIXTURE / "tool_lists" / "DentalCareDesk.json").read_text())
    envs = [f"Env{i:03d}" for i in range(n_envs)]
    # every env is served by the fixture's DentalCareDesk server (its env_version reads the
    # server's code and database): one database, a copy of the server directory per env
    shutil.copytree(FIXTURE / "database", out / "database", dirs_exist_ok=True)
    for e, env in enumerate(envs):
        if not (out / f"servers/{env}/report.json").is_file():
            shutil.copytree(FIXTURE / "servers" / "DentalCareDesk", out / f"servers/{env}", dirs_exist_ok=True)
        if (out / f"queries/{env}.jsonl").is_file():
            continue
        _write(out / f"tool_lists/{env}.json", tools)
        (out / "policies").mkdir(parents=True, exist_ok=True)
        (out / f"policies/{env}.md").write_text(f"# {env} policy\n\n" + POLICY_PARAGRAPH * 60)
        tasks, queries = [], []
        for i in range(ROWS_PER_ENV):
            tid, pid = _hex(1, e, i), f"PAT-{e:03d}{i:05d}"
            record = {"patient_id": pid, "appointment_id": f"APT-{i:05d}", "status": "scheduled", "note": "x" * 200}
            calls = [
                {"name": "authorize_patient", "arguments": {"patient_id": pid}, "resolve": {}, "expect": "ok"},
                {
                    "name": "get_appointment",
                    "arguments": {"appointment_id": f"APT-{i:05d}"},
                    "resolve": {},
                    "expect": "ok",
                },
                {
                    "name": "cancel_appointment",
                    "arguments": {"appointment_id": f"APT-{i:05d}"},
                    "resolve": {},
                    "expect": "ok",
                },
            ]
            tasks.append(
                {
                    "task_id": tid,
                    "template_id": _hex(2, e, i % 10),
                    "instance_id": _hex(3, e, i),
                    "status": "valid",
                    "task_kind": "action",
                    "golden_calls": calls,
                    "expected_outputs": [
                        {"authorized": True, "patient_id": pid},
                        record,
                        {**record, "status": "cancelled"},
                    ],
                    "grounding": [{"patient_id": "user"}, {"appointment_id": "user"}, {"appointment_id": "user"}],
                    "expected_answer": [],
                    "refusal": None,
                    "difficulty": {"calls": 3, "writes": 1, "lookups": 0, "domains": 1},
                    "records": {
                        "Patient": {"patient_id": pid, "full_name": f"Customer {i}", "email": f"c{i}@example.com"},
                        "Appointment": record,
                        "Clinic": {
                            "clinic_id": f"CLI-{i % 40:03d}",
                            "name": "Main Street Clinic",
                            "city": "Springfield",
                        },
                    },
                    "values": {"patient_id": pid, "appointment_id": f"APT-{i:05d}", "status": "scheduled"},
                    "states": ["patient_id", "appointment_id", "status"],
                    "user_id": pid,
                    "initial_state_hash": "0" * 64,
                    "final_state_hash": f"{e:03d}{i:05d}".rjust(64, "f"),
                }
            )
            queries.append(
                {
                    "query_id": _hex(4, e, i),
                    "env": env,
                    "domains": [env],
                    "cross_domain": False,
                    "status": "ok",
                    "task_id": tid,
                    "first_message": f"Hi, this is customer {pid}; I would like to cancel appointment APT-{i:05d}.",
                    "instruction": "You want to cancel your appointment. Give your ID when asked. " * 4,
                    "reason_for_call": "Plans changed, so the appointment is no longer needed.",
                    "persona": {"name": f"Customer {i}", "manner": "brief and polite"},
                    "known_facts": [
                        {"fact": "your patient ID", "value": pid},
                        {"fact": "your appointment", "value": f"APT-{i:05d}"},
                    ],
                    "trajectory": [c["name"] for c in calls],
                }
            )
        _write(
            out / f"tasks/{env}.json",
            {"env": env, "status": "ok", "tasks": tasks, "history": {"s16": {"counts": {"valid": ROWS_PER_ENV}}}},
        )
        (out / "queries").mkdir(parents=True, exist_ok=True)
        with open(out / f"queries/{env}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(q) + "\n" for q in queries)
    return envs


DATASET_CODE = """
import json, sys, time
from pathlib import Path
from agentskiller.jobs import StepContext
from agentskiller.steps.tasks import dataset
out, n_envs, name = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
envs = [f"Env{i:03d}" for i in range(n_envs)]
ctx = StepContext.from_paths("dataset", {"seed": 7, "llm": {"provider": "offline"}}, inputs={
    "queries": [out / f"queries/{e}.jsonl" for e in envs],
    "tasks": [out / f"tasks/{e}.json" for e in envs],
    "policies": [out / f"policies/{e}.md" for e in envs],
    "tool_lists": [out / f"tool_lists/{e}.json" for e in envs],
    "servers": [out / f"servers/{e}/report.json" for e in envs],
}, outputs={"train": out / f"dataset/{name}.jsonl", "stats": out / f"dataset/{name}_stats.json"})
t0, c0 = time.perf_counter(), time.process_time()
dataset.run(ctx)
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
path = out / f"dataset/{name}.jsonl"
print(json.dumps({"step_s": dt, "step_cpu_s": cpu, "rows": sum(1 for _ in open(path, encoding="utf-8")), "file_mb": path.stat().st_size / 1e6}))
"""


def bench_dataset(args: argparse.Namespace, work: Path, old: Path | None) -> None:
    n_envs = max(1, args.rows // ROWS_PER_ENV)
    print(f"\n## dataset: {n_envs * ROWS_PER_ENV} synthetic rows ({n_envs} envs)")
    world = work / "dataset"
    make_dataset_world(world, n_envs)
    new = measure([sys.executable, "-c", DATASET_CODE, str(world), str(n_envs), "new"], REPO, work)
    _row("new", new, f"{new['rows']} rows, {new['file_mb']:.0f} MB file")
    if old is None:
        return
    n_old = max(1, (args.old_rows or args.rows) // ROWS_PER_ENV)
    same = new
    if n_old != n_envs:
        same = measure([sys.executable, "-c", DATASET_CODE, str(world), str(n_old), "new_small"], REPO, work)
        _row(f"new @{n_old * ROWS_PER_ENV}", same, "")
    before = measure([sys.executable, "-c", DATASET_CODE, str(world), str(n_old), "old"], old, work)
    _row(f"old @{n_old * ROWS_PER_ENV}", before, "")
    a = world / f"dataset/{'new' if n_old == n_envs else 'new_small'}.jsonl"
    identical = a.read_bytes() == (world / "dataset/old.jsonl").read_bytes()
    print(
        f"ratio old/new @{n_old * ROWS_PER_ENV} rows: step CPU {before['step_cpu_s'] / same['step_cpu_s']:.2f}x, "
        f"peak memory {before['peak_mb'] / same['peak_mb']:.1f}x; byte-identical train.jsonl: {identical}"
    )


# -------------------------------------------------------------------------------- DAG
DIRECTORY_RULES = {"domain", "fuse"}


def make_dag_world(work: Path, n: int, tree: Path = REPO) -> None:
    """A complete outputs tree for n domains: the two checkpoint files are real, everything
    else is an empty placeholder, dated one second later than the deepest of its inputs that
    the workflow makes. Built in rounds: ``--detailed-summary`` lists the outputs (and their
    inputs) of the DAG known so far and the missing ones are created, which completes the next
    checkpoint and reveals the jobs after it. (``snakemake --touch`` did the same job by job:
    about 6 jobs a second, nearly half an hour for one round at a thousand domains.) ``tree``'s
    rules decide the files: two trees whose rules differ each need their own world."""
    out = work / "outputs"
    persons = ["Patient", "Traveler", "Student", "AccountHolder"]
    outlines = [
        {
            "domain": f"Desk{i:04d}",
            "core_entity": persons[i % len(persons)],
            "peripheral_entities": [f"Thing{i % 40}", f"Place{i % 25}"],
            "topic": "synthetic",
            "description": "synthetic",
        }
        for i in range(n)
    ]
    _write(out / "blueprints/outlines.json", {"domains": outlines, "dropped": []})
    pairs = [f"Desk{i:04d}+Desk{i + len(persons):04d}" for i in range(4)]
    _write(out / "cross/combinations.json", {"pairs": [{"pair": p} for p in pairs]})
    # newer than the config and every other input outside outputs/, and than every script
    # (Snakemake reruns a job whose output is older than its script: a fresh checkout's are new)
    sources = [tree / "Snakefile", *(tree / "rules").glob("*.smk"), *(tree / "scripts").glob("*.py")]
    base = max(time.time() - 3600, max(f.stat().st_mtime for f in sources) + 1)
    for _ in range(6):
        summary = _summary(work, tree)
        missing = [(path, rule) for path, rule, status, _inputs in summary if status.startswith("missing")]
        for path, rule in missing:
            p = work / path
            if rule in DIRECTORY_RULES:
                p.mkdir(parents=True, exist_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.touch()
        for path, level in _levels({path: ins for path, _rule, _status, ins in summary}).items():
            stamp = base + level
            p = work / path
            if p.is_dir():  # Snakemake dates a directory() output by its marker file
                (p / ".snakemake_timestamp").touch()
                os.utime(p / ".snakemake_timestamp", (stamp, stamp))
            if p.exists():
                os.utime(p, (stamp, stamp))
        if not missing:
            break
    res = measure(snakemake(tree, work, "-n"), tree, cwd=work)
    if "Nothing to be done" not in res["log"]:
        raise SystemExit("the synthetic tree is not complete:\n" + res["log"][-3000:])


def _levels(inputs: dict[str, list[str]]) -> dict[str, int]:
    """output file -> 1 + the level of its deepest input that the workflow makes."""
    levels: dict[str, int] = {}

    def level(path: str) -> int:
        if path not in levels:
            levels[path] = 1 + max((level(i) for i in inputs[path] if i in inputs), default=0)
        return levels[path]

    for path in inputs:
        level(path)
    return levels


def _summary(work: Path, tree: Path) -> list[tuple[str, str, str, list[str]]]:
    """(output file, rule, status, input files) of every output of the DAG known so far."""
    cmd = snakemake(tree, work, "--detailed-summary")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env={**os.environ, "PYTHONPATH": str(tree)})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit("snakemake --detailed-summary failed")
    rows = []
    for line in proc.stdout.splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) >= 7:
            ins = [] if cols[4] in ("", "-") else cols[4].split(",")
            rows.append((cols[0], cols[2], cols[6], ins))
    return rows


def bench_dag(args: argparse.Namespace, work: Path, old: Path | None) -> None:
    n = args.domains
    print(f"\n## DAG: {n} synthetic domains, complete outputs tree (CPU seconds; nothing to do)")
    trees = [("new", REPO)] + ([("old", old)] if old is not None else [])
    cpu: dict[str, dict[str, float]] = {}
    for name, tree in trees:
        # a world per tree: rules that differ (a merged job, a new output) make different files,
        # and a no-op run of one tree in the other's world would run jobs, not measure the DAG
        world = work / f"dag-{n}-{name}-{_rules_key(tree)}"
        if not (world / ".complete").exists():
            shutil.rmtree(world, ignore_errors=True)
            make_dag_world(world, n, tree)
            (world / ".complete").touch()
        dry = measure(snakemake(tree, world, "-n"), tree, cwd=world)
        if "Nothing to be done" not in dry["log"]:
            raise SystemExit(f"{name}: the dry run had something to do:\n" + dry["log"][-3000:])
        noop = measure(snakemake(tree, world, "--cores", "1"), tree, cwd=world)
        if "Nothing to be done" not in noop["log"]:
            raise SystemExit(f"{name}: the no-op run had something to do:\n" + noop["log"][-3000:])
        cpu[name] = {"dry": dry["cpu_s"], "noop": noop["cpu_s"]}
        print(f"{name:<12} snakemake -n {dry['cpu_s']:6.1f} s CPU   no-op run {noop['cpu_s']:6.1f} s CPU")
    if old is not None:
        print(
            f"ratio old/new: snakemake -n {cpu['old']['dry'] / cpu['new']['dry']:.2f}x, "
            f"no-op {cpu['old']['noop'] / cpu['new']['noop']:.2f}x"
        )


# ------------------------------------------------------------------------------ misc
def _rules_key(tree: Path) -> str:
    """A short hash of a tree's Snakefile and rule files: its world is reused while they are
    unchanged (building one takes minutes)."""
    files = [tree / "Snakefile", *sorted((tree / "rules").glob("*.smk"))]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:10]


def _hex(kind: int, e: int, i: int) -> str:
    """A 16-hex-digit ID, like the workflow's content-derived ones."""
    return f"{kind:04x}{e:04x}{i:08x}"


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def _row(name: str, r: dict, note: str) -> None:
    step = f"step {r['step_s']:6.2f} s wall {r['step_cpu_s']:6.2f} s CPU;" if "step_s" in r else ""
    print(
        f"{name:<12} {step}  process {r['wall_s']:6.1f} s wall, {r['cpu_s']:6.1f} s CPU, peak {r['peak_mb']:7.0f} MB  {note}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", type=int, default=1008)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--base-ref", default=None, help="git ref of the old code to compare with (e.g. main)")
    ap.add_argument("--old-domains", type=int, default=None, help="s10 of the old code on this many domains")
    ap.add_argument("--old-rows", type=int, default=None, help="dataset of the old code on this many rows")
    ap.add_argument("--skip", default="", help="comma-separated: dag, s10, dataset")
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (kept; reused when rerun)")
    args = ap.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="agentskiller-scale-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    old = old_tree(args.base_ref, work) if args.base_ref else None
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    print(f"# scale benchmark: work dir {work}; new = {REPO}; old = {old or '-'}")
    try:
        if "s10" not in skip:
            bench_s10(args, work, old)
        if "dataset" not in skip:
            bench_dataset(args, work, old)
        if "dag" not in skip:
            bench_dag(args, work, old)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""s01-s05 of the default config submitted to a real SLURM cluster.

Skipped unless ``sinfo`` answers with a partition that has a usable node. CI brings up a
single-node cluster for this (``.ci/run`` calls ``../shared/slurm/start-local-slurm.sh``
when it runs as root); by hand::

    sudo bash /work/shared/slurm/start-local-slurm.sh
    pytest -m slurm tests/test_slurm.py
    sudo bash /work/shared/slurm/stop-local-slurm.sh

Jobs go through the repository's own ``profiles/slurm`` (resources, retries, latency
wait), with what a single-node test cluster needs on top: no account, few jobs, an early
first status check, and ``squeue`` for status when accounting (``sacct``) is off.
The artifacts must equal a local run's byte for byte.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest
from test_workflow_openai import shared_run
from workflow_helpers import REPO, artifact_files, snakemake, write_config

from agentskiller import io

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _cluster_up() -> str | None:
    """None when a cluster answers; otherwise why the test is skipped."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client (sinfo/sbatch) on PATH"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%a %T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo did not answer: {exc}"
    if out.returncode != 0:
        return f"sinfo failed: {out.stderr.strip()[:200]}"
    states = [line.split() for line in out.stdout.splitlines() if line.strip()]
    if not any(
        avail == "up" and state.rstrip("*~#") in ("idle", "mixed", "allocated", "completing") for avail, state in states
    ):
        return f"no usable SLURM node: {out.stdout.strip()[:200]}"
    return None


def _sacct_works() -> bool:
    try:
        res = subprocess.run(
            ["sacct", "-n", "-X", "--starttime", "now-1minutes"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


_why_not = _cluster_up()
if _why_not:
    pytestmark.append(pytest.mark.skip(reason=f"no SLURM cluster: {_why_not}"))


def slurm_args() -> list[str]:
    args = [
        # as the README says: the workflow profile, so that profiles/default does not override it
        "--workflow-profile",
        str(REPO / "profiles" / "slurm"),
        "--executor",
        "slurm",
        "--jobs",
        "4",
        "--slurm-init-seconds-before-status-checks",
        "1",
        # a test cluster has no accounts to charge; its default partition is used
        "--slurm-no-account",
    ]
    if not _sacct_works():  # LOCAL_SLURM_ACCOUNTING=none: sacct cannot see jobs
        args += ["--slurm-status-command", "squeue"]
    return args


def _snakemake_slurm(work, *targets: str, config=None):
    # snakemake() puts --configfile (nargs="+") just before these arguments, and
    # --default-resources in a profile-less call would be greedy too: the targets come
    # last, after an option that takes exactly one value.
    return snakemake(work, *slurm_args(), *targets, config=config, timeout=1200)


def _local_rules(res) -> list[str]:
    return re.findall(r"^localrule (\w+):", res.stderr, re.M)


def test_s01_s05_on_slurm_equal_a_local_run(tmp_path, tmp_path_factory):
    work = tmp_path / "slurm"
    t0 = time.perf_counter()
    first = _snakemake_slurm(work, "outputs/blueprints/index.json")
    assert first.returncode == 0, first.output[-6000:]
    domains = [d["domain"] for d in io.read_json(work / "outputs/blueprints/outlines.json")["domains"]]
    second = _snakemake_slurm(work, "outputs/blueprints/index.json", *(f"outputs/tool_lists/{d}.json" for d in domains))
    assert second.returncode == 0, second.output[-6000:]
    print(f"\ns01-s05 on SLURM: {time.perf_counter() - t0:.1f} s")

    # every job but the sub-second local rules really went through sbatch
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", first.output + second.output)
    expected_jobs = 4 + len(domains)  # topics, entities, entity_graph, outlines + a blueprint per domain
    assert len(set(submitted)) == expected_jobs, (len(set(submitted)), expected_jobs)
    assert sorted(set(_local_rules(first) + _local_rules(second))) == ["blueprint_index"]

    local = shared_run("offline", tmp_path_factory)  # the same default config, run locally
    assert local.ok, local.output[-6000:]
    a, b = artifact_files(work), artifact_files(local.work)
    assert sorted(a) == sorted(b)
    differing = [k for k in a if a[k] != b[k]]
    assert not differing, differing


def test_llm_rules_stay_on_the_submit_host_when_asked(tmp_path):
    """cluster.llm_on_submit_host: the LLM-calling rules run where snakemake runs, none is an
    sbatch job, and the artifacts are those of the default run."""
    work = tmp_path / "submit_host"
    cfg = write_config(tmp_path, **{"cluster.llm_on_submit_host": True})
    targets = ("outputs/topics.json", "outputs/entities.json", "outputs/entity_graph.json")
    res = _snakemake_slurm(work, *targets, config=cfg)
    assert res.returncode == 0, res.output[-6000:]
    assert re.findall(r"submitted with SLURM jobid (\d+)", res.output) == []
    assert sorted(_local_rules(res)) == ["entities", "entity_graph", "topics"]
    # the same bytes as with every job submitted (the switch is not part of any artifact)
    off = _snakemake_slurm(tmp_path / "submitted", "outputs/topics.json")
    assert off.returncode == 0, off.output[-6000:]
    assert len(re.findall(r"submitted with SLURM jobid (\d+)", off.output)) == 1
    assert (work / "outputs/topics.json").read_bytes() == (tmp_path / "submitted/outputs/topics.json").read_bytes()

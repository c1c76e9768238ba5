"""Stale means rebuilt: each rule's ``cfg`` param carries the config its step reads
(rules/common.smk ``config_for``), so a changed seed, provider or step setting reruns exactly
the jobs that read it, and through their outputs what follows.

One finished run on a tiny config is shared; every other test is a dry run (``-n``) after it:
Snakemake lists the jobs that would rerun and why, without running them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from workflow_helpers import REPO, snakemake, write_config

from agentskiller import io

#: small enough to run in about a minute, large enough for every rule to run
TINY = {
    "topics.target_count": 6,
    "blueprints.max_domains": 2,
    "database.entity_records": 6,
    "database.relationship_records": 6,
    "tool_graph.max_trajectories": 3,
    "tasks.max_templates": 2,
    "tasks.samples_per_template": 1,
    "cross.max_pairs": 1,
}
#: Snakemake shows one reason per job: a job whose inputs are rebuilt shows that one
PARAMS_CHANGED = "Params have changed since last execution"
#: the outlines checkpoint and the rules before it
BEFORE_OUTLINES = {"topics", "entities", "entity_graph", "outlines"}
#: rules of the phases before s14 (catalog and per-domain): nothing of tasks reruns them
BEFORE_S14 = {
    "topics",
    "entities",
    "entity_graph",
    "outlines",
    "blueprint",
    "blueprint_index",
    "entity_table",
    "domain",
    "server",
}


def rule_blocks() -> dict[str, str]:
    """rule name -> its text, from rules/*.smk."""
    blocks: dict[str, str] = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        for m in re.finditer(r"^(?:rule|checkpoint) (\w+):\n((?:    .*\n|\n(?=    ))*)", path.read_text(), re.M):
            blocks[m.group(1)] = m.group(2)
    return blocks


def llm_rules() -> set[str]:
    return {name for name, body in rule_blocks().items() if re.search(r"^\s+llm=1,", body, re.M)}


def _job_key(rule: str, wildcards: str | None) -> tuple[str, str]:
    """(rule, wildcard value): every rule here has at most one wildcard."""
    return rule, (wildcards.split("=", 1)[1] if wildcards else "")


def planned(res) -> dict[tuple[str, str], str]:
    """(rule, wildcard value) -> reason of every job a dry run lists."""
    jobs: dict[tuple[str, str], str] = {}
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", "\n" + res.output):
        m = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block.strip())
        if not m or m.group(1) == "all":
            continue
        wc = re.search(r"wildcards: (.*)", block)
        reason = re.search(r"reason: (.*)", block)
        jobs[_job_key(m.group(1), wc.group(1) if wc else None)] = reason.group(1) if reason else ""
    return jobs


def finished_jobs(work: Path) -> set[tuple[str, str]]:
    """Every job of the finished run, from its log files (logs/<rule>/<wildcard>.log)."""
    jobs = set()
    for name, body in rule_blocks().items():
        log = re.search(r"log:\n\s+\"([^\"]+)\"", body)
        if name == "all" or log is None:
            continue
        for path in (work / "logs" / name).glob("*.log"):
            jobs.add((name, path.stem if "{" in log.group(1) else ""))
    return jobs


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path, set]:
    """(workdir, config, every job) after one finished tiny run.
    AGENTSKILLER_TINY_RUN_DIR reuses (or makes) a run there (developer convenience)."""
    given = os.environ.get("AGENTSKILLER_TINY_RUN_DIR")
    work = Path(given) if given else tmp_path_factory.mktemp("tiny_run")
    work.mkdir(parents=True, exist_ok=True)
    cfg = write_config(work, **TINY)
    again = snakemake(work, "-n", config=cfg)
    if "Nothing to be done" not in again.output:
        res = snakemake(work, "--cores", "2", config=cfg)
        assert res.returncode == 0, res.output[-6000:]
        again = snakemake(work, "-n", config=cfg)
    assert again.returncode == 0 and "Nothing to be done" in again.output, again.output[-3000:]
    everything = finished_jobs(work)
    expected = set(rule_blocks()) - {"all"}
    if not io.read_json(work / "outputs/cross/combinations.json")["pairs"]:
        expected -= {"fuse", "pair_server"}
    assert {r for r, _ in everything} >= expected, sorted(everything)
    return work, cfg, everything


#: Jobs no dry run or change listing can see while the combinations checkpoint would rerun
#: (their wildcards, or the targets that request them, come from its output): the pair
#: rules, and queries and the dataset, which only the final target asks for. The static test
#: covers their params.
AFTER_COMBINATIONS = {"fuse", "pair_server", "queries", "dataset"}


def visible(jobs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(r, w) for r, w in jobs if r not in AFTER_COMBINATIONS and "+" not in w}


def past_outlines() -> list[str]:
    """--allowed-rules that treat the outlines checkpoint and the rules before it as done: a
    checkpoint that would rerun hides the jobs after it from a dry run or change listing."""
    return ["--allowed-rules", *sorted(set(rule_blocks()) - BEFORE_OUTLINES)]


def dry(work: Path, cfg: Path, *args: str) -> dict[tuple[str, str], str]:
    """Every job that would rerun and why (plain dry run, then past the outlines checkpoint)."""
    jobs: dict[tuple[str, str], str] = {}
    for allowed in ([], past_outlines()):
        res = snakemake(work, "-n", *args, *allowed, config=cfg)
        assert res.returncode == 0, res.output[-3000:]
        jobs.update(planned(res))
    return jobs


# ------------------------------------------------------------------- static
def test_every_rule_carries_its_config_and_llm_rules_the_model_identity():
    blocks = rule_blocks()
    assert len(blocks) >= 20, sorted(blocks)
    missing = sorted(n for n, body in blocks.items() if n != "all" and "cfg=config_for(" not in body)
    assert not missing, f"rules without a cfg=config_for(...) param: {missing}"
    llm = llm_rules()
    assert {"topics", "blueprint", "tasks", "queries"} <= llm
    for name, body in blocks.items():
        call = re.search(r"cfg=config_for\((.*?)\),\n", body, re.S)
        if call is None:
            continue
        assert ("llm=True" in call.group(1)) == (name in llm), f"rule {name}: llm=True iff resources llm=1"


# ------------------------------------------------------------- dry runs
@pytest.mark.slow
def test_new_seed_reruns_every_job(tiny_run):
    work, cfg, everything = tiny_run
    jobs = dry(work, cfg, "--config", "seed=11")
    assert set(jobs) >= visible(everything), sorted(visible(everything) - set(jobs))
    # not only by cascade: the first job, and the first past the checkpoint, read the seed
    for job in [("topics", ""), *(k for k in everything if k[0] in ("blueprint", "entity_table"))]:
        assert PARAMS_CHANGED in jobs[job], (job, jobs[job])


@pytest.mark.slow
def test_judge_threshold_reruns_s14_and_what_follows_only(tiny_run, tmp_path):
    work, _, everything = tiny_run
    cfg = write_config(tmp_path, **TINY, **{"tasks.judge_threshold": 4.0})
    jobs = dry(work, cfg)
    assert not {r for r, _ in jobs} & BEFORE_S14, sorted(jobs)
    templates = visible({k for k in everything if k[0] == "tasks"})
    assert templates, everything
    assert all(PARAMS_CHANGED in jobs.get(k, "") for k in templates), {k: jobs.get(k) for k in templates}
    # what follows: by their inputs, not by their own params
    assert {"queries", "combinations"} <= {r for r, _ in jobs}, sorted(jobs)
    assert all(PARAMS_CHANGED not in reason for k, reason in jobs.items() if k[0] != "tasks"), jobs


@pytest.mark.slow
def test_switching_provider_reruns_every_llm_rule(tiny_run, tmp_path):
    work, _, everything = tiny_run
    # a dry run never calls the model: no server, no key needed
    cfg = write_config(
        tmp_path,
        **TINY,
        **{"llm.provider": "openai", "llm.base_url": "http://127.0.0.1:9/v1", "llm.api_key_env": None},
    )
    jobs = dry(work, cfg)
    llm_jobs = visible({k for k in everything if k[0] in llm_rules()})
    assert {r for r, _ in llm_jobs} >= llm_rules() - AFTER_COMBINATIONS, llm_jobs
    assert set(jobs) >= llm_jobs, sorted(llm_jobs - set(jobs))
    for job in [("topics", ""), *(k for k in everything if k[0] in ("blueprint", "entity_table"))]:
        assert PARAMS_CHANGED in jobs[job], (job, jobs[job])


@pytest.mark.slow
def test_operational_llm_settings_rerun_nothing(tiny_run, tmp_path):
    """Timeouts, retries and concurrency do not change an answer: nothing is stale."""
    work, _, _ = tiny_run
    cfg = write_config(tmp_path, **TINY, **{"llm.timeout_s": 30, "llm.max_retries": 1, "llm.max_concurrency": 2})
    res = snakemake(work, "-n", config=cfg)
    assert res.returncode == 0 and "Nothing to be done" in res.output, res.output[-3000:]

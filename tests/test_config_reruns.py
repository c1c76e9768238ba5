"""Stale means rebuilt: each rule's ``cfg`` param carries the config its step reads
(rules/common.smk ``config_for``), so a changed seed, provider or step setting reruns exactly
the jobs that read it, and through their outputs what follows.

One finished run on a tiny config is shared; every other test is a dry run (``-n``) after it:
Snakemake lists the jobs that would rerun and why, without running them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from workflow_helpers import REPO, snakemake, write_config

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
PARAMS_CHANGED = "Params have changed since last execution"
#: rules of the phases before s14 (catalog and per-domain): nothing of tasks reruns them
BEFORE_S14 = {
    "topics",
    "entities",
    "entity_graph",
    "outlines",
    "blueprint",
    "blueprint_index",
    "tool_list",
    "entity_table",
    "domain_database",
    "policy",
    "tool_graph",
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


def planned(res) -> dict[tuple[str, tuple], str]:
    """(rule, wildcards) -> reason of every job a dry run lists."""
    jobs: dict[tuple[str, tuple], str] = {}
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", "\n" + res.output):
        m = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block.strip())
        if not m or m.group(1) == "all":
            continue
        wc = re.search(r"wildcards: (.*)", block)
        reason = re.search(r"reason: (.*)", block)
        jobs[(m.group(1), tuple(sorted(wc.group(1).split(", "))) if wc else ())] = reason.group(1) if reason else ""
    return jobs


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(workdir, config, every job of a full build) after one finished tiny run."""
    work = tmp_path_factory.mktemp("tiny_run")
    cfg = write_config(work, **TINY)
    res = snakemake(work, "--cores", "2", config=cfg)
    assert res.returncode == 0, res.output[-6000:]
    again = snakemake(work, "-n", config=cfg)
    assert again.returncode == 0 and "Nothing to be done" in again.output, again.output[-3000:]
    everything = planned(snakemake(work, "-n", "--forceall", config=cfg))
    assert {r for r, _ in everything} >= llm_rules() | {"combinations", "instances", "tasks", "dataset"}, everything
    return work, cfg, everything


def dry(work: Path, cfg: Path, *args: str) -> dict[tuple[str, tuple], str]:
    res = snakemake(work, "-n", *args, config=cfg)
    assert res.returncode == 0, res.output[-3000:]
    return planned(res)


# ------------------------------------------------------------------- static
def test_every_rule_carries_its_config_and_llm_rules_the_model_identity():
    blocks = rule_blocks()
    assert len(blocks) >= 20, sorted(blocks)
    missing = sorted(n for n, body in blocks.items() if n != "all" and "cfg=config_for(" not in body)
    assert not missing, f"rules without a cfg=config_for(...) param: {missing}"
    llm = llm_rules()
    assert {"topics", "blueprint", "task_templates", "queries"} <= llm
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
    assert set(jobs) == set(everything), sorted(set(everything) ^ set(jobs))
    # not only by cascade: every job's own params carry the seed
    assert all(PARAMS_CHANGED in reason for reason in jobs.values()), jobs


@pytest.mark.slow
def test_judge_threshold_reruns_s14_and_what_follows_only(tiny_run, tmp_path):
    work, _, everything = tiny_run
    cfg = write_config(tmp_path, **TINY, **{"tasks.judge_threshold": 4.0})
    jobs = dry(work, cfg)
    templates = {k for k in everything if k[0] == "task_templates"}
    assert templates and templates <= set(jobs), sorted(jobs)
    assert not {r for r, _ in jobs} & BEFORE_S14, sorted(jobs)
    own = {k for k, reason in jobs.items() if PARAMS_CHANGED in reason}
    assert own == templates, sorted(own)
    assert {"instances", "tasks", "queries", "dataset"} <= {r for r, _ in jobs}


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
    llm_jobs = {k for k in everything if k[0] in llm_rules()}
    assert llm_jobs, everything
    not_marked = sorted(k for k in llm_jobs if PARAMS_CHANGED not in jobs.get(k, ""))
    assert not not_marked, not_marked


@pytest.mark.slow
def test_operational_llm_settings_rerun_nothing(tiny_run, tmp_path):
    """Timeouts, retries and concurrency do not change an answer: nothing is stale."""
    work, _, _ = tiny_run
    cfg = write_config(tmp_path, **TINY, **{"llm.timeout_s": 30, "llm.max_retries": 1, "llm.max_concurrency": 2})
    res = snakemake(work, "-n", config=cfg)
    assert res.returncode == 0 and "Nothing to be done" in res.output, res.output[-3000:]

"""The whole workflow on the default offline config, end to end, as a user runs it.

One full run is shared (module fixture ``default_run``); the other tests look at its
artifacts, rerun it, or compare it with a second run in a fresh directory.
"""

from __future__ import annotations

import shutil

import pytest
from workflow_helpers import artifact_files, snakemake, usage_rows, write_config

from agentskiller import io

pytestmark = pytest.mark.slow


def _load(work, rel):
    return io.read_json(work / "outputs" / rel)


def test_default_run_yields_domains_and_valid_artifacts(default_run):
    work, _, _ = default_run
    index = _load(work, "blueprints/index.json")
    ok = [d for d in index["domains"] if d["status"] == "ok"]
    assert len(ok) >= 6, index
    for rel, schema in [
        ("topics.json", "topics"),
        ("entities.json", "entities"),
        ("entity_graph.json", "entity_graph"),
        ("blueprints/outlines.json", "outlines"),
        ("blueprints/index.json", "blueprint_index"),
    ]:
        io.validate(_load(work, rel), schema)
    for d in ok:
        io.validate(_load(work, f"blueprints/{d['domain']}.json"), "blueprint")
        io.validate(_load(work, f"tool_lists/{d['domain']}.json"), "tool_list")
    for meta_holder in ["topics.json", "entities.json", f"blueprints/{ok[0]['domain']}.json"]:
        meta = _load(work, meta_holder)["meta"]
        assert meta["provider"] == "offline" and meta["seed"] == 7 and meta["step"]


def test_second_run_has_nothing_to_do(default_run):
    work, _, _ = default_run
    res = snakemake(work, "--cores", "2", "-n")
    assert res.returncode == 0, res.output[-3000:]
    assert "Nothing to be done" in res.output, res.output[-3000:]


def test_deleting_one_blueprint_reruns_only_that_domain_from_cache(default_run, tmp_path):
    work, _, _ = default_run
    # work on a copy so the shared run stays intact for the other tests
    copy = tmp_path / "copy"
    shutil.copytree(work, copy, symlinks=True)
    index = io.read_json(copy / "outputs/blueprints/index.json")
    victim = next(d["domain"] for d in index["domains"] if d["status"] == "ok")
    (copy / f"outputs/blueprints/{victim}.json").unlink()
    before = io.read_json(work / f"outputs/blueprints/{victim}.json")
    for log in (copy / "logs").rglob("*.log"):
        log.unlink()
    res = snakemake(copy, "--cores", "2")
    assert res.returncode == 0, res.output[-5000:]
    jobs = res.jobs()
    assert jobs, res.output[-3000:]
    aggregates = {
        "blueprint_index",
        "combinations",
        "dataset",
        "evaluate",
        "trajectories",
        "dataset_card",
        "report_plots",
        "all",
    }
    for rule, wc in jobs:
        if rule in aggregates:
            continue
        unit = wc.get("domain") or wc.get("env") or wc.get("pair") or ""
        # the victim's own jobs, and those of the cross-domain pairs it belongs to
        assert victim in unit.split("+"), (rule, wc, jobs)
    assert io.read_json(copy / f"outputs/blueprints/{victim}.json") == before
    rows = usage_rows(copy)
    assert rows, "the rerun blueprint job must log its (cached) LLM calls"
    assert all(r["cache_hit"] for r in rows), [r for r in rows if not r["cache_hit"]][:3]


def test_same_seed_fresh_directory_is_byte_identical(default_run, tmp_path):
    work, _, _ = default_run
    res = snakemake(tmp_path / "again", "--cores", "2")
    assert res.returncode == 0, res.output[-5000:]
    a, b = artifact_files(work), artifact_files(tmp_path / "again")
    assert sorted(a) == sorted(b)
    differing = [k for k in a if a[k] != b[k]]
    assert not differing, differing[:10]


def test_dry_run_and_rulegraph(tmp_path):
    res = snakemake(tmp_path, "-n")
    assert res.returncode == 0, res.output[-3000:]
    assert "outlines" in res.output
    graph = snakemake(tmp_path, "--rulegraph")
    assert graph.returncode == 0 and graph.stdout.lstrip().startswith("digraph"), graph.output[-2000:]
    dot = shutil.which("dot")
    if dot:
        import subprocess

        svg = subprocess.run([dot, "-Tsvg"], input=graph.stdout, capture_output=True, text=True)
        assert svg.returncode == 0 and "<svg" in svg.stdout


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"bogus_key": 1}, "bogus_key"),
        ({"seed": "seven"}, "seed"),
        ({"llm.cache_mode": "sometimes"}, "cache_mode"),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, overrides, needle):
    cfg = write_config(tmp_path, **overrides)
    res = snakemake(tmp_path, "--cores", "1", config=cfg)
    assert res.returncode != 0
    assert needle in res.output
    assert not (tmp_path / "outputs").exists()


def test_openai_provider_without_key_fails_before_any_job(tmp_path):
    cfg = write_config(tmp_path, **{"llm.provider": "openai", "llm.api_key_env": "AGENTSKILLER_TEST_UNSET_KEY"})
    res = snakemake(tmp_path, "--cores", "1", config=cfg, env={"AGENTSKILLER_TEST_UNSET_KEY": ""})
    assert res.returncode != 0
    assert "llm.api_key_env" in res.output and "AGENTSKILLER_TEST_UNSET_KEY" in res.output
    assert not (tmp_path / "outputs").exists()

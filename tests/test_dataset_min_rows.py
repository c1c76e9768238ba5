"""``dataset.min_rows``: a run whose every env was quarantined fails in the dataset step and says why.

The quarantine is made the way a run makes it: a failed s09 server report, then the real s14
to s17 steps, which pass the reason on without calling a model, then the dataset step.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.s14.pipeline import ENV, config, copy_fixture, run_dataset, run_step

from agentskiller import io
from agentskiller.steps.tasks.dataset import TooFewRows

SERVER_REASON = "3 contract tests still fail after 3 round(s): cancel_appointment.valid: KeyError"


@pytest.fixture
def quarantined(tmp_path: Path) -> tuple[Path, dict]:
    root = copy_fixture(tmp_path / "out")
    report_path = root / f"servers/{ENV}/report.json"
    report = io.read_json(report_path)
    report_path.write_text(json.dumps({**report, "status": "failed", "reason": SERVER_REASON}))
    cfg = config(root)
    for step in ("s14", "s15", "s16", "s17"):
        run_step(step, root, cfg)
    assert io.read_jsonl(root / f"queries/{ENV}.jsonl")[0]["status"] == "failed"
    return root, cfg


def test_a_run_with_every_env_quarantined_fails_and_names_the_reasons(quarantined):
    root, cfg = quarantined
    with pytest.raises(TooFewRows) as err:
        run_dataset(root, cfg)
    message = str(err.value)
    assert "0 row(s), fewer than dataset.min_rows = 1" in message
    assert f"env {ENV}: " in message and SERVER_REASON in message
    assert not (root / "dataset/train.jsonl").exists()  # nothing half-written for Snakemake to keep


def test_min_rows_zero_accepts_an_empty_dataset(quarantined):
    root, cfg = quarantined
    cfg["dataset"] = {"min_rows": 0}
    run_dataset(root, cfg)
    assert io.read_jsonl(root / "dataset/train.jsonl") == []
    stats = io.read_json(root / "dataset/stats.json")
    assert stats["per_env"][ENV]["status"] == "failed" and SERVER_REASON in stats["per_env"][ENV]["reason"]


def test_min_rows_above_what_a_healthy_run_made(tmp_path):
    from fixtures.s14.pipeline import run_all

    root = tmp_path / "out"
    cfg = run_all(root)
    rows = len(io.read_jsonl(root / "dataset/train.jsonl"))
    cfg["dataset"] = {"min_rows": rows + 1}
    with pytest.raises(TooFewRows, match=rf"{rows} row\(s\), fewer than dataset.min_rows = {rows + 1}") as err:
        run_dataset(root, cfg)
    assert f"none quarantined: the 1 env(s) gave {rows} row(s) in all" in str(err.value)

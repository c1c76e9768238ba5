"""The report (plots, card HTML, summary.json) and ``agentskiller status``, on a synthetic run
(tests/report_tree.py) that has a quarantined domain, a dropped outline and a pruned pair, on
the same run with artifacts deleted or half-written, and (slow) on the default workflow run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image
from report_tree import FAILED, PAIR, SERVER_REASON, make_run

from agentskiller import io
from agentskiller.jobs import StepContext
from agentskiller.reporting import build
from agentskiller.reporting.card_html import card_page, render_markdown
from agentskiller.reporting.collect import collect, summary_schema
from agentskiller.reporting.status import format_summary, run_status

REPO = Path(__file__).resolve().parents[1]
PLOTS = ("funnel", "rejections", "tokens", "trajectory_lengths", "evaluation")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    make_run(tmp_path)
    return tmp_path


def status_cli(work: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m agentskiller status`` in ``work`` (the console script runs the same main)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "agentskiller", "status", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def table_rows(text: str) -> dict[str, list[str]]:
    """The env table's rows by env name, cells split on runs of 2+ spaces."""
    import re

    rows = {}
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("env "))
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells
    return rows


# ------------------------------------------------------------------ collect / status
def test_collect_reads_stages_counts_and_reasons(run_dir):
    summary = collect(run_dir / "outputs", {"AlphaDesk": 123})
    envs = {e.env: e for e in summary.envs}
    assert set(envs) == {"AlphaDesk", "BetaDesk", "GammaDesk", "DeltaDesk", PAIR, "AlphaDesk+GammaDesk"}
    alpha = envs["AlphaDesk"]
    assert (alpha.stage, alpha.status, alpha.tables, alpha.tests_passed, alpha.tests_run) == (
        "dataset",
        "ok",
        2,
        40,
        40,
    )
    assert (alpha.templates, alpha.templates_rejected, alpha.tasks, alpha.tasks_invalid, alpha.queries, alpha.rows) == (
        3,
        1,
        5,
        1,
        5,
        5,
    )
    assert alpha.tokens == 123
    gamma = envs[FAILED]
    assert (gamma.status, gamma.failed_at, gamma.reason) == ("quarantined", "s09", SERVER_REASON)
    assert gamma.rows == 0
    assert (envs["DeltaDesk"].status, envs["AlphaDesk+GammaDesk"].status) == ("dropped", "pruned")
    assert envs[PAIR].tables == 3 and (envs[PAIR].tests_passed, envs[PAIR].tests_run) == (2, 2)
    funnel = {f.label: (f.count, f.lost) for f in summary.funnel}
    assert funnel["topics"] == (5, 0) and funnel["entities"] == (7, 1)
    assert funnel["domains (blueprints)"] == (3, 1)
    assert funnel["servers passed"] == (2, 1)
    assert funnel["pairs kept"] == (1, 1)
    assert funnel["task templates"] == (7, 3)
    assert funnel["tasks (verified)"] == (13, 1)
    assert funnel["queries"] == (12, 1)
    assert funnel["dataset rows"] == (12, 0)
    assert summary.rejections["s14"] == {"criterion below <n>: realistic": 3}
    assert summary.rejections["s16"] == {"call <n> failed: tool_error: no seat <value>": 1}
    assert summary.trajectory_lengths == {"2": 3, "3": 5, "5": 4}


def test_status_command_on_a_finished_run(run_dir):
    res = status_cli(run_dir)
    assert res.returncode == 0, res.stderr
    rows = table_rows(res.stdout)
    assert rows["AlphaDesk"][:10] == ["AlphaDesk", "dataset", "ok", "2", "40/40", "3 (-1)", "5 (-1)", "5", "5", "8,300"]
    gamma = rows[FAILED]
    assert gamma[1:3] == ["s17", "quarantined"]
    assert gamma[-1] == f"s09: {SERVER_REASON}"[:60]
    assert rows["DeltaDesk"][2] == "dropped" and rows["AlphaDesk+GammaDesk"][2] == "pruned"
    assert rows[PAIR][1] == "dataset" and rows[PAIR][-1] == "1,300"
    assert res.stdout.startswith("funnel: topics 5 -> entities 7 (-1) -> domains (blueprints) 3 (-1)")
    assert "LLM: 6 calls (1 cache hits), 17,300 tokens, $0.1280" in res.stdout


def test_status_command_on_a_partial_tree(run_dir):
    out = run_dir / "outputs"
    shutil.rmtree(out / "dataset")
    (out / "queries/AlphaDesk.jsonl").unlink()
    for rel in ("tasks/BetaDesk.json", "instances/BetaDesk.json", "queries/BetaDesk.jsonl"):
        (out / rel).unlink()
    shutil.rmtree(out / f"cross/{PAIR}/server")
    (out / "task_templates/BetaDesk.json").write_text('{"env": "BetaDesk", "status": "o')  # cut off mid-write
    with (out / f"queries/{PAIR}.jsonl").open("a") as fh:
        fh.write('{"env": "half a line')
    shutil.rmtree(run_dir / "logs/server")
    res = status_cli(run_dir, "--outputs", "outputs", "--logs", "logs")
    assert res.returncode == 0, res.stderr
    rows = table_rows(res.stdout)
    assert rows["AlphaDesk"][1] == "s16"
    assert rows["AlphaDesk"][7:9] == ["-", "-"]  # no queries, no dataset yet
    assert rows["BetaDesk"][1] == "s09"  # its s14 file is unreadable, s15 and later are missing
    assert rows[PAIR][1] == "s17" and rows[PAIR][7] == "4"  # the half line is skipped
    assert rows["AlphaDesk"][9] == "2,800"  # its server log is gone
    assert "dataset rows" not in res.stdout.splitlines()[0]
    assert "unreadable (2)" in res.stdout and "task_templates/BetaDesk.json" in res.stdout


def test_status_before_anything_ran(tmp_path):
    res = status_cli(tmp_path)
    assert res.returncode == 0, res.stderr
    assert "nothing under outputs yet" in res.stdout and "no env yet" in res.stdout


def test_console_script_is_declared():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["agentskiller"] == "agentskiller.cli:main"


# ------------------------------------------------------------------ report plots
def _report_ctx(work: Path, out: Path, evaluation: Path | None = None) -> StepContext:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["outputs_dir"] = str(work / "outputs")
    inputs = {"train": work / "outputs/dataset/train.jsonl", "card": work / "outputs/dataset/card.md"}
    inputs["evaluation"] = [] if evaluation is None else [evaluation]  # the rule's optional input: a list
    outputs = {**{n: out / f"{n}.png" for n in PLOTS}, "card_html": out / "card.html", "summary": out / "summary.json"}
    return StepContext.from_paths("report", cfg, inputs=inputs, outputs=outputs, params={"logs": str(work / "logs")})


def assert_real_plot(path: Path, blank_ok: bool = False) -> None:
    """A PNG of a plot: big enough, many colours (bars, anti-aliased text), not one colour all
    over (``blank_ok``: a figure that only says there is nothing to show yet)."""
    assert path.stat().st_size > (4_000 if blank_ok else 8_000), path
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width >= 600 and img.height >= 300
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50, path  # axes, bars, anti-aliased text
    if not blank_ok:
        assert max(n for n, _ in colours) < 0.9 * img.width * img.height, path


def test_report_plots_on_a_small_run(run_dir, tmp_path):
    out = tmp_path / "report"
    build.run(_report_ctx(run_dir, out))
    for name in PLOTS:
        assert_real_plot(out / f"{name}.png", blank_ok=name == "evaluation")  # no evaluation/summary.json
    summary = io.read_json(out / "summary.json")
    assert summary["usage"]["calls"] == 6 and summary["meta"]["step"] == "report"
    assert {e["env"] for e in summary["envs"] if e["status"] == "quarantined"} == {FAILED}
    html = (out / "card.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html and "<h1>" in html
    assert f"<td>{FAILED}</td>" in html


def test_report_plots_are_deterministic(run_dir, tmp_path):
    build.run(_report_ctx(run_dir, tmp_path / "a"))
    build.run(_report_ctx(run_dir, tmp_path / "b"))
    for name in PLOTS:
        assert (tmp_path / f"a/{name}.png").read_bytes() == (tmp_path / f"b/{name}.png").read_bytes(), name


def test_evaluation_plot_reads_the_documented_shape(run_dir, tmp_path):
    build.run(_report_ctx(run_dir, tmp_path / "none"))
    summary = tmp_path / "evaluation.json"
    summary.write_text(
        json.dumps(
            {"by_env": {"AlphaDesk": {"pass_rate": 0.8}, PAIR: {"pass_rate": 0.35}}, "by_category": {"wrong_tool": 4}}
        )
    )
    build.run(_report_ctx(run_dir, tmp_path / "some", evaluation=summary))
    assert_real_plot(tmp_path / "some/evaluation.png")
    assert (tmp_path / "some/evaluation.png").read_bytes() != (tmp_path / "none/evaluation.png").read_bytes()


def test_summary_schema_file_is_the_models_schema():
    stored = io.read_json(REPO / "schemas/report_summary.schema.json")
    assert stored == json.loads(json.dumps(summary_schema())), "regenerate schemas/report_summary.schema.json"


def test_card_html_lets_no_markup_through():
    html = render_markdown(
        "# Card\n\n| env | reason |\n|---|---|\n| A | <script>alert(1)</script> [x](javascript:alert(1)) |\n\n"
        "<iframe src='http://example.invalid'></iframe>\n"
    )
    assert "<table>" in html and "<h1>Card</h1>" in html
    assert "<script>" not in html and "<iframe" not in html and "href" not in html
    assert "&lt;script&gt;" in html
    assert card_page("x", title="<b>").count("<b>") == 0


def test_run_summary_never_raises(tmp_path, capsys):
    from agentskiller.reporting.status import print_run_summary

    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs/topics.json").write_text("[1, 2")  # not JSON
    print_run_summary(tmp_path / "outputs", tmp_path / "logs", "t")
    text = capsys.readouterr().out
    assert f"{'=' * 30} t {'=' * 30}" in text and "unreadable (1)" in text


# ------------------------------------------------------------------ the default run
@pytest.mark.slow
def test_status_and_report_on_the_default_run(default_run):
    work, _, _ = default_run
    summary, usage = run_status(work / "outputs", work / "logs")
    ok = [e for e in summary.envs if e.status == "ok"]
    assert ok and all(e.stage == "dataset" for e in ok)
    assert sum(e.rows or 0 for e in summary.envs) == len(io.read_jsonl(work / "outputs/dataset/train.jsonl"))
    assert usage["total"]["calls"] > 0 and all(e.tokens > 0 for e in ok)
    res = status_cli(work)
    assert res.returncode == 0, res.stderr
    assert set(table_rows(res.stdout)) == {e.env for e in summary.envs}
    assert format_summary(summary, usage).splitlines()[0] in res.stdout
    for name in PLOTS:
        assert_real_plot(work / f"outputs/report/{name}.png", blank_ok=name == "evaluation")


def test_work_view_is_the_same_whether_answers_came_from_the_cache():
    """report/summary.json carries what the outputs took: a resumed run whose answers partly
    came from the cache (and which saw a failed attempt) gives the same figures."""
    from agentskiller.llm.usage import summarize, work_view

    fresh = [
        {"task": "s07.policy", "model": "m", "prompt_tokens": 100, "completion_tokens": 40, "outcome": "ok"},
        {"task": "s09.tools", "model": "m", "prompt_tokens": 300, "completion_tokens": 90, "outcome": "ok", "round": 1},
    ]
    resumed = [
        {**fresh[0], "cache_hit": True, "cost_usd": 0.0},
        {"task": "s09.tools", "model": "m", "prompt_tokens": 300, "completion_tokens": 0, "outcome": "transport"},
        fresh[1],
    ]
    a, b = summarize(fresh)["total"], summarize(resumed)["total"]
    assert a["cache_hits"] == 0 and b["cache_hits"] == 1 and b["failed_attempts"] == 1
    assert (
        work_view(a)
        == work_view(b)
        == {
            "calls": 2,
            "prompt_tokens": 400,
            "completion_tokens": 130,
            "repair_rounds": 1,
        }
    )

"""The ``report_plots`` rule: the report's PNG plots, the dataset card as HTML and ``report/summary.json``.

Named inputs only declare what the report waits for; the run's state is read back from the
whole ``outputs_dir`` tree (:func:`.collect.collect`) and LLM usage from the job logs under
``params.logs`` (a folder, not a file input: logs are not outputs Snakemake tracks, so a
changed log alone does not rerun the report). Optional inputs ``evaluation`` and
``trajectories`` are given by the rule only when those files exist.
"""

from __future__ import annotations

from pathlib import Path

from .. import io
from ..artifacts import as_paths
from ..jobs import StepContext
from ..llm.usage import work_view
from . import plots
from .card_html import card_page
from .collect import collect
from .tokens import read_log_rows, tokens_by_unit, usage_summary

SUMMARY_SCHEMA = "report_summary"


def _optional_json(value: object) -> dict | None:
    """An optional input: the rule gives an empty list when the file does not exist."""
    paths = [p for p in as_paths(value) if p.is_file()]
    if not paths:
        return None
    data = io.read_json(paths[0])
    return data if isinstance(data, dict) else None


def run(ctx: StepContext) -> None:
    logs = Path(ctx.params.get("logs") or "logs")
    rows = read_log_rows(logs)
    usage = usage_summary(rows)
    summary = collect(ctx.outputs_dir, tokens_by_unit(rows))
    train = io.read_jsonl(ctx.inputs["train"]) if "train" in ctx.inputs else []
    evaluation = _optional_json(ctx.inputs.get("evaluation"))

    figures = {
        "funnel": plots.funnel_figure(summary),
        "rejections": plots.rejections_figure(summary),
        "tokens": plots.tokens_figure(usage),
        "trajectory_lengths": plots.trajectory_lengths_figure(train),
        "evaluation": plots.evaluation_figure(evaluation),
    }
    for name, fig in figures.items():
        plots.save(fig, ctx.output(name))
        ctx.log.info("report: wrote %s", ctx.output(name))
    if "card_html" in ctx.outputs:
        ctx.write_text("card_html", card_page(io.read_text(ctx.inputs["card"])))
    # The artifact carries what the outputs took (work_view); this run's history (cache
    # hits, cost, latency, failed attempts) goes to the job log: a run killed and resumed
    # gives the same bytes as one that never stopped.
    ctx.log.info("report: this run's LLM history: %s", {k: v for k, v in usage["total"].items()})
    ctx.write_json("summary", {**summary.model_dump(), "usage": work_view(usage["total"])}, SUMMARY_SCHEMA)
    ctx.log.info(
        "report: %d envs, %d quarantined, %d LLM calls from %d logs",
        len(summary.envs),
        len(summary.quarantined),
        usage["total"]["calls"],
        len(rows),
    )

"""The report's plots (PNG, matplotlib's Agg canvas: no display, no pyplot global state).

Each function takes already-collected data (:mod:`.collect`, :mod:`.tokens`) and returns a
``matplotlib.figure.Figure``; :func:`save` writes it atomically and without the matplotlib
version in the PNG metadata, so the same data gives the same bytes.

Evaluation (:func:`evaluation_figure`) reads ``outputs/evaluation/summary.json``, which no
rule writes yet. It is coded against the shape the evaluation step will write:
``{"by_env": {env: {"pass_rate": float in [0, 1]}}, "by_category": {failure_category: count}}``;
without the file the figure says "no evaluation yet".
"""

from __future__ import annotations

import io as _bytes_io
import textwrap
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import io
from ..llm.usage import work_view
from .collect import RunSummary

OK, LOST, EXTRA = "#3b75af", "#d1495b", "#edae49"


def _figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> None:
    """PNG, written atomically; no ``Software`` tag, so the bytes depend only on the data."""
    buf = _bytes_io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    io.atomic_write_bytes(path, buf.getvalue())


def _note(ax: Any, text: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=13, color="#555555", wrap=True)


def _short(env: str, width: int = 34) -> str:
    return env if len(env) <= width else env[: width - 1] + "…"


# ------------------------------------------------------------------ funnel
def funnel_figure(summary: RunSummary) -> Figure:
    """Left: the whole run, topics to dataset rows, with what each stage lost. Right: per env,
    templates -> instances -> tasks -> queries, quarantined envs named with their stage."""
    envs = [e for e in summary.envs if e.status not in ("dropped", "pruned")]
    fig = _figure(15, max(5.0, 0.45 * len(envs) + 2.0))
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.4])
    if summary.funnel:
        stages = list(reversed(summary.funnel))
        y = range(len(stages))
        left.barh(y, [s.count for s in stages], color=OK, label="kept")
        left.barh(y, [s.lost for s in stages], left=[s.count for s in stages], color=LOST, label="lost here")
        left.set_yticks(list(y), [f"{s.label} ({s.stage})" for s in stages])
        for i, s in enumerate(stages):
            label = f"{s.count}" + (f"  (-{s.lost})" if s.lost else "")
            left.text(s.count + s.lost, i, " " + label, va="center", fontsize=9)
        left.set_xscale("symlog", linthresh=10)
        left.set_xlim(0, max(s.count + s.lost for s in stages) * 4)  # room for the labels
        left.set_xlabel("count (symlog)")
        left.legend(loc="lower right", fontsize=8)
        left.set_title("Run funnel")
    else:
        _note(left, "no artifacts yet")
    if envs:
        names = [_short(e.env) for e in reversed(envs)]
        series = [
            ("templates", [e.templates or 0 for e in reversed(envs)], "#7fa6cc"),
            ("instances", [e.instances or 0 for e in reversed(envs)], "#5a8dbf"),
            ("tasks", [e.tasks or 0 for e in reversed(envs)], OK),
            ("queries", [e.queries or 0 for e in reversed(envs)], "#1d3f66"),
        ]
        h = 0.2
        for k, (label, values, color) in enumerate(series):
            right.barh([i + (1.5 - k) * h for i in range(len(names))], values, height=h, color=color, label=label)
        right.set_yticks(range(len(names)), names, fontsize=8)
        for i, e in enumerate(reversed(envs)):
            if e.status != "ok":
                right.text(
                    0.5, i, f" quarantined at {e.failed_at}: {e.reason[:60]}", va="center", color=LOST, fontsize=8
                )
        right.set_xlabel("count")
        right.legend(loc="lower right", fontsize=8)
        right.set_title("Per env (domains, then pairs)")
    else:
        _note(right, "no env yet (the s04 outlines checkpoint has not run)")
    return fig


def rejections_figure(summary: RunSummary) -> Figure:
    """Rejections per step and reason kind (bars) and every quarantined, dropped or pruned unit."""
    items = [(f"{step}: {kind}", n) for step, kinds in summary.rejections.items() for kind, n in kinds.items()]
    items = sorted(items, key=lambda kv: -kv[1])[:15]
    n_quarantined = min(len(summary.quarantined), 20)
    fig = _figure(14, max(4.0, 1.5 + 0.45 * max(1, len(items)) + 0.5 + 0.18 * max(1, n_quarantined)))
    top_fig, bottom_fig = fig.subfigures(
        2, 1, height_ratios=[1.5 + 0.45 * max(1, len(items)), 0.5 + 0.18 * max(1, n_quarantined)]
    )
    top = top_fig.subplots()
    if items:
        labels = ["\n".join(textwrap.wrap(k, 70)[:2]) for k, _ in reversed(items)]
        top.barh(range(len(items)), [n for _, n in reversed(items)], color=EXTRA)
        top.set_yticks(range(len(items)), labels, fontsize=8)
        top.set_xlabel("rejected units")
        top.set_title("Rejections by step and reason")
    else:
        _note(top, "nothing rejected")
    bottom = bottom_fig.subplots()
    if summary.quarantined:
        bottom.set_axis_off()
        lines = [f"{q.stage:>6}  {_short(q.unit, 40):40}  {q.reason[:110]}" for q in summary.quarantined[:20]]
        if len(summary.quarantined) > 20:
            lines.append(f"... {len(summary.quarantined) - 20} more")
        text = "Quarantined / dropped / pruned units\n\n" + "\n".join(lines)
        bottom.text(0, 1, text, va="top", family="monospace", fontsize=8, transform=bottom.transAxes)
    else:
        _note(bottom, "no unit quarantined, dropped or pruned")
    return fig


# ------------------------------------------------------------------ LLM usage
def tokens_figure(usage: dict) -> Figure:
    """Tokens per step and per model, whether answered by the provider or the cache (the
    work the outputs took, so a resumed run draws the same figure; cost and cache hits are
    one run's history: ``agentskiller status`` and the job logs show them)."""
    fig = _figure(14, 5.5)
    left, right = fig.subplots(1, 2, width_ratios=[1.6, 1])
    by_step = {k: work_view(v) for k, v in (usage.get("by_step") or {}).items()}
    if not by_step:
        _note(left, "no LLM_USAGE lines in the logs")
        _note(right, "no LLM usage")
        return fig
    steps = list(by_step)
    prompt = [by_step[s]["prompt_tokens"] for s in steps]
    completion = [by_step[s]["completion_tokens"] for s in steps]
    x = range(len(steps))
    left.bar(x, prompt, color=OK, label="prompt")
    left.bar(x, completion, bottom=prompt, color="#1d3f66", label="completion")
    left.set_xticks(list(x), steps, rotation=45, ha="right", fontsize=8)
    left.set_ylabel("tokens")
    left.set_title(f"Tokens per step ({usage['total']['calls']} calls)")
    left.legend(fontsize=8)
    by_model = {k: work_view(v) for k, v in (usage.get("by_model") or {}).items()}
    models = list(by_model)
    tokens = [by_model[m]["prompt_tokens"] + by_model[m]["completion_tokens"] for m in models]
    right.barh(range(len(models)), tokens, color=OK)
    right.set_yticks(range(len(models)), models, fontsize=8)
    for i, m in enumerate(models):
        right.text(tokens[i], i, f"  {by_model[m]['calls']} calls", va="center", fontsize=9)
    right.set_xlabel("tokens (label: calls)")
    right.set_title("Per model")
    right.margins(x=0.3)
    return fig


# ------------------------------------------------------------------ dataset
def trajectory_lengths_figure(train: list[dict]) -> Figure:
    """Golden calls per dataset row, single-domain and cross-domain rows stacked."""
    fig = _figure(9, 5)
    ax = fig.subplots()
    if not train:
        _note(ax, "no dataset rows")
        return fig
    lengths = sorted({len(r.get("golden_calls") or []) for r in train})
    single = [
        sum(1 for r in train if len(r.get("golden_calls") or []) == n and not r.get("cross_domain")) for n in lengths
    ]
    cross = [sum(1 for r in train if len(r.get("golden_calls") or []) == n and r.get("cross_domain")) for n in lengths]
    ax.bar(lengths, single, color=OK, label="single-domain")
    ax.bar(lengths, cross, bottom=single, color=EXTRA, label="cross-domain")
    ax.set_xticks(lengths)
    ax.set_xlabel("golden tool calls per query")
    ax.set_ylabel("queries")
    ax.set_title(f"Trajectory length ({len(train)} queries)")
    ax.legend()
    return fig


def evaluation_figure(evaluation: dict | None) -> Figure:
    """Pass rate per env and failures per category of ``evaluation/summary.json`` (shape in the
    module docstring), or "no evaluation yet"."""
    fig = _figure(14, 5)
    left, right = fig.subplots(1, 2)
    if not evaluation:
        _note(left, "no evaluation yet")
        _note(right, "(outputs/evaluation/summary.json not found)")
        return fig
    by_env = {k: v for k, v in (evaluation.get("by_env") or {}).items() if isinstance(v, dict)}
    if by_env:
        envs = sorted(by_env)
        rates = [float(by_env[e].get("pass_rate") or 0.0) for e in envs]
        left.barh(range(len(envs)), rates, color=OK)
        left.set_yticks(range(len(envs)), [_short(e) for e in envs], fontsize=8)
        left.set_xlim(0, 1)
        left.set_xlabel("pass rate")
        left.set_title("Evaluation pass rate by env")
    else:
        _note(left, "no per-env results")
    by_cat = evaluation.get("by_category") or {}
    if by_cat:
        cats = sorted(by_cat, key=lambda c: -int(by_cat[c]))
        right.barh(range(len(cats)), [int(by_cat[c]) for c in cats], color=LOST)
        right.set_yticks(range(len(cats)), cats, fontsize=8)
        right.set_xlabel("failed episodes")
        right.set_title("Failures by category")
    else:
        _note(right, "no failures")
    return fig

"""``agentskiller status``: one table of every env, and the one-screen end-of-run summary."""

from __future__ import annotations

from pathlib import Path

from .collect import EnvStatus, RunSummary, collect
from .tokens import read_log_rows, tokens_by_unit, usage_summary

REASON_WIDTH = 60


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def _tests(e: EnvStatus) -> str:
    return "-" if e.tests_run is None else f"{_n(e.tests_passed)}/{e.tests_run}"


def _templates(e: EnvStatus) -> str:
    if e.templates is None:
        return "-"
    return f"{e.templates}" + (f" (-{e.templates_rejected})" if e.templates_rejected else "")


def _tasks(e: EnvStatus) -> str:
    if e.tasks is None:
        return "-"
    return f"{e.tasks}" + (f" (-{e.tasks_invalid})" if e.tasks_invalid else "")


def _reason(e: EnvStatus) -> str:
    text = " ".join(e.reason.split())
    if e.failed_at and not text.startswith(e.failed_at):
        text = f"{e.failed_at}: {text}"
    return text[:REASON_WIDTH]


COLUMNS: tuple[tuple[str, str], ...] = (
    ("env", "<"),
    ("stage", "<"),
    ("status", "<"),
    ("tables", ">"),
    ("tests", ">"),
    ("templates", ">"),
    ("tasks", ">"),
    ("queries", ">"),
    ("rows", ">"),
    ("tokens", ">"),
    ("reason", "<"),
)


def _cells(e: EnvStatus) -> list[str]:
    return [
        e.env,
        e.stage,
        e.status,
        _n(e.tables),
        _tests(e),
        _templates(e),
        _tasks(e),
        _n(e.queries),
        _n(e.rows),
        f"{e.tokens:,}" if e.tokens else "-",
        _reason(e),
    ]


def format_table(summary: RunSummary) -> str:
    """Every env as one row: stage reached, counts, tokens and the quarantine reason."""
    rows = [[name for name, _ in COLUMNS], *(_cells(e) for e in summary.envs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for k, r in enumerate(rows):
        cells = [f"{c:{align}{w}}" for c, (_, align), w in zip(r, COLUMNS, widths)]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    if not summary.envs:
        lines.append("(no env yet: the s04 outlines checkpoint has not run)")
    return "\n".join(lines)


def format_funnel(summary: RunSummary) -> str:
    """The funnel on one line: each stage's count, with what was lost there in parentheses."""
    if not summary.funnel:
        return f"funnel: nothing under {summary.outputs} yet"
    parts = [f"{s.label} {s.count}" + (f" (-{s.lost})" if s.lost else "") for s in summary.funnel]
    return "funnel: " + " -> ".join(parts)


def format_summary(summary: RunSummary, usage: dict | None = None) -> str:
    """The end-of-run screen: funnel, env table, quarantine and rejection reasons, LLM totals."""
    lines = [format_funnel(summary), "", format_table(summary)]
    reasons = [(step, kind, n) for step, kinds in summary.rejections.items() for kind, n in kinds.items()]
    if reasons:
        lines += ["", "rejected (step, count, reason):"]
        lines += [f"  {step:4s} {n:5d}  {kind[:100]}" for step, kind, n in reasons[:8]]
        if len(reasons) > 8:
            lines.append(f"  ... {len(reasons) - 8} more reason kinds")
    if usage and usage["total"]["calls"]:
        t = usage["total"]
        tokens = t["prompt_tokens"] + t["completion_tokens"] + t["cached_prompt_tokens"] + t["cached_completion_tokens"]
        lines += [
            "",
            f"LLM: {t['calls']} calls ({t['cache_hits']} cache hits), {tokens:,} tokens, ${t['cost_usd']:.4f}",
        ]
    if summary.unreadable:
        lines += ["", f"unreadable ({len(summary.unreadable)}): " + "; ".join(summary.unreadable[:3])]
    return "\n".join(lines)


def run_status(outputs: str | Path = "outputs", logs: str | Path = "logs") -> tuple[RunSummary, dict]:
    rows = read_log_rows(logs)
    return collect(outputs, tokens_by_unit(rows)), usage_summary(rows)


def print_run_summary(outputs: str | Path = "outputs", logs: str | Path = "logs", title: str = "") -> None:
    """For the Snakefile's ``onsuccess:`` / ``onerror:``: print the summary, never raise (a report
    must not turn a finished run into a failed one)."""
    try:
        summary, usage = run_status(outputs, logs)
        text = format_summary(summary, usage)
    except Exception as exc:  # noqa: BLE001 - whatever broke, the run's own result stands
        text = f"(no run summary: {type(exc).__name__}: {exc})"
    bar = "=" * 30
    print(f"\n{bar} {title or 'AgentSkiller run summary'} {bar}\n{text}\n", flush=True)

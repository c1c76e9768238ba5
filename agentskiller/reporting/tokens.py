"""LLM usage read back from the job logs (``logs/<rule>/<unit>.log``, one ``LLM_USAGE`` line per call).

A cache hit logs the original token counts with ``cost_usd`` 0: :func:`tokens_of` counts
those tokens too (they are what the step needed), while cost is only what was paid.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..llm.usage import parse_usage_lines, summarize


def read_log_rows(logs_dir: str | Path) -> dict[Path, list[dict]]:
    """Usage rows per log file under ``logs_dir`` (benchmarks are TSV and never match)."""
    logs_dir = Path(logs_dir)
    out: dict[Path, list[dict]] = {}
    if not logs_dir.is_dir():
        return out
    for path in sorted(logs_dir.rglob("*.log")):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # a log rotated or removed while we read
        rows = parse_usage_lines(text)
        if rows:
            out[path] = rows
    return out


def tokens_of(row: dict) -> int:
    return int(row.get("prompt_tokens") or 0) + int(row.get("completion_tokens") or 0)


def tokens_by_unit(rows_by_log: dict[Path, list[dict]]) -> dict[str, int]:
    """Tokens per job unit: a log's stem is its wildcard value (a domain, a pair, an entity, ...)."""
    acc: dict[str, int] = defaultdict(int)
    for path, rows in rows_by_log.items():
        acc[path.stem] += sum(tokens_of(r) for r in rows)
    return dict(acc)


def usage_summary(rows_by_log: dict[Path, list[dict]]) -> dict:
    """:func:`agentskiller.llm.usage.summarize` over every log."""
    return summarize(r for rows in rows_by_log.values() for r in rows)

"""Usage lines: one ``LLM_USAGE {json}`` log line per round, cache hit or not, and one per
provider attempt that gave no answer (``outcome`` other than ``ok``: ``error``, ``truncated``,
``param_rejected``, ``format_rejected``, ``context_length``, ``refused``; with ``attempt``
and ``error``). Failed attempts add their tokens and cost, not a call. A chat answer whose
tool calls were parsed from its text (a server without a tool parser) has
``"tool_call_fallback": true``.

The job's log file is the ledger (Snakemake keeps one per job); the report rule parses
the lines back with :func:`parse_usage_lines` and sums them with :func:`summarize`.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

PREFIX = "LLM_USAGE "

FIELDS = (
    "task",
    "role",
    "model",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
    "cache_hit",
    "round",
    "cost_usd",
    "outcome",
)
#: Only on lines of failed attempts.
ATTEMPT_FIELDS = ("attempt", "error")
#: Only on lines of chat answers whose tool calls were parsed from the text (``true``).
CHAT_FIELDS = ("tool_call_fallback",)


def usage_line(row: dict[str, Any]) -> str:
    out = {k: row.get(k) for k in FIELDS}
    out.update({k: row[k] for k in (*ATTEMPT_FIELDS, *CHAT_FIELDS) if row.get(k)})
    return PREFIX + json.dumps(out, ensure_ascii=False)


def log_usage(logger: logging.Logger | None, row: dict[str, Any]) -> None:
    if logger is not None:
        logger.info("%s", usage_line(row))


def parse_usage_lines(log_text: str) -> list[dict]:
    """All usage rows in a log text (any prefix before ``LLM_USAGE`` is ignored)."""
    rows = []
    for line in log_text.splitlines():
        i = line.find(PREFIX)
        if i < 0:
            continue
        try:
            row = json.loads(line[i + len(PREFIX) :])
        except ValueError:
            continue  # a truncated last line of a killed job
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _empty() -> dict[str, float]:
    return {
        "calls": 0,
        "provider_calls": 0,
        "cache_hits": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cached_prompt_tokens": 0,
        "cached_completion_tokens": 0,
        "cost_usd": 0.0,
        "latency_s": 0.0,
        "repair_rounds": 0,
        "failed_attempts": 0,
        "failed_prompt_tokens": 0,
        "failed_completion_tokens": 0,
    }


def _add(acc: dict, row: dict) -> None:
    pt, ct = int(row.get("prompt_tokens") or 0), int(row.get("completion_tokens") or 0)
    if row.get("outcome") not in (None, "ok"):  # a failed attempt: paid for, not a call
        acc["failed_attempts"] += 1
        acc["failed_prompt_tokens"] += pt
        acc["failed_completion_tokens"] += ct
        acc["prompt_tokens"] += pt
        acc["completion_tokens"] += ct
        acc["latency_s"] += float(row.get("latency_s") or 0.0)
        acc["cost_usd"] += float(row.get("cost_usd") or 0.0)
        return
    acc["calls"] += 1
    if row.get("cache_hit"):
        # A hit costs nothing now; its tokens are what the cache saved.
        acc["cache_hits"] += 1
        acc["cached_prompt_tokens"] += pt
        acc["cached_completion_tokens"] += ct
    else:
        acc["provider_calls"] += 1
        acc["prompt_tokens"] += pt
        acc["completion_tokens"] += ct
        acc["latency_s"] += float(row.get("latency_s") or 0.0)
    acc["cost_usd"] += float(row.get("cost_usd") or 0.0)
    if int(row.get("round") or 0) > 0:
        acc["repair_rounds"] += 1


def summarize(rows: Iterable[dict]) -> dict:
    """Totals, per step (task prefix before the first dot), per task and per model."""
    total = _empty()
    by: dict[str, dict[str, dict]] = {
        "step": defaultdict(_empty),
        "task": defaultdict(_empty),
        "model": defaultdict(_empty),
    }
    for row in rows:
        task = str(row.get("task") or "?")
        _add(total, row)
        _add(by["step"][task.split(".", 1)[0]], row)
        _add(by["task"][task], row)
        _add(by["model"][str(row.get("model") or "?")], row)

    def done(acc: dict) -> dict:
        acc = dict(acc)
        acc["cost_usd"] = round(acc["cost_usd"], 6)
        acc["latency_s"] = round(acc["latency_s"], 3)
        return acc

    return {
        "total": done(total),
        **{f"by_{k}": {name: done(acc) for name, acc in sorted(v.items())} for k, v in by.items()},
    }


WORK_KEYS = ("calls", "prompt_tokens", "completion_tokens", "repair_rounds")


def work_view(acc: dict) -> dict:
    """What the artifacts took, whether the answers came from the provider or the cache:
    calls that gave an answer, their tokens, repair rounds. The same outputs give the same
    figures however often the run was killed and resumed; cache hits, cost, latency and
    failed attempts describe one run's history and stay in the logs."""
    return {
        "calls": acc["calls"],
        "prompt_tokens": acc["prompt_tokens"] - acc["failed_prompt_tokens"] + acc["cached_prompt_tokens"],
        "completion_tokens": acc["completion_tokens"]
        - acc["failed_completion_tokens"]
        + acc["cached_completion_tokens"],
        "repair_rounds": acc["repair_rounds"],
    }


def format_table(summary: dict, by: str = "step") -> str:
    """A plain-text table of one breakdown of :func:`summarize` plus the total."""
    cols = [
        "calls",
        "provider_calls",
        "cache_hits",
        "failed_attempts",
        "prompt_tokens",
        "completion_tokens",
        "repair_rounds",
        "cost_usd",
    ]
    head = f"{by:24s}" + "".join(f"{c:>18s}" for c in cols)
    lines = [head, "-" * len(head)]
    for name, acc in [*summary[f"by_{by}"].items(), ("TOTAL", summary["total"])]:
        lines.append(f"{name:24s}" + "".join(f"{acc[c]:>18}" for c in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m agentskiller.usage [logs/] [--by step|task|model]``: token use and cost
    of every LLM call recorded in the job logs (cache hits cost nothing)."""
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="python -m agentskiller.usage", description=main.__doc__)
    ap.add_argument("logs", nargs="?", default="logs", type=Path)
    ap.add_argument("--by", choices=["step", "task", "model"], default="step")
    args = ap.parse_args(argv)
    rows: list[dict] = []
    for path in sorted(args.logs.rglob("*.log")):
        rows.extend(parse_usage_lines(path.read_text(encoding="utf-8", errors="replace")))
    if not rows:
        print(f"no LLM_USAGE lines under {args.logs}")
        return 1
    print(format_table(summarize(rows), args.by))
    return 0

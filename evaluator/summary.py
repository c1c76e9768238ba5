"""The summary of an evaluation: pass rates, pass^k, counts by env, task kind and category.

* ``pass@1``: the mean over tasks of (passing episodes / episodes of the task), i.e. the
  expected pass rate of one episode of a random task; ``pass_rate`` is passing episodes /
  all episodes (the two differ when tasks have different numbers of episodes).
* ``pass^k`` (k = 1 .. the fewest episodes any task has; reported when that is above 1):
  the τ²-bench estimator, the mean over tasks of C(c, k) / C(n, k) with n episodes and c
  passes. For a task with exactly k episodes that is 1 when all k pass and 0 otherwise, so
  with k episodes per task pass^k is the share of tasks whose k episodes all pass; with
  more, it is that share averaged over every choice of k of them.
* Infrastructure errors are never passes and never leave a denominator: they count as
  failed episodes everywhere, and ``infra_errors`` (also per env and task kind) shows how
  many there were, so a pass rate can be read against them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from math import comb
from typing import Any

from agentskiller.models.episodes import Verdict

from .core import CATEGORY_ORDER

__all__ = ["build_summary", "format_table", "pass_hat_k"]

PASS_K_CONVENTION = (
    "tau2-bench: mean over tasks of C(c,k)/C(n,k); with k episodes per task, the share of tasks whose k "
    "episodes all pass. Infra errors count as failures."
)


def pass_hat_k(per_task: Iterable[tuple[int, int]], k: int) -> float | None:
    """``per_task``: (episodes, passes) per task; tasks with fewer than k episodes are skipped."""
    vals = [comb(c, k) / comb(n, k) for n, c in per_task if n >= k]
    return sum(vals) / len(vals) if vals else None


def _group(verdicts: list[Verdict]) -> dict[str, Any]:
    n = len(verdicts)
    passed = sum(v.passed for v in verdicts)
    infra = sum(v.infra_error for v in verdicts)
    return {
        "episodes": n,
        "passed": passed,
        "pass_rate": round(passed / n, 4) if n else None,
        "infra_errors": infra,
        "categories": {c: k for c, k in Counter(v.category for v in verdicts if v.category).most_common()},
    }


def _mean(values: list[float | bool | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def build_summary(verdicts: Iterable[Verdict], *, mode: str = "all", extra: dict | None = None) -> dict[str, Any]:
    vs = list(verdicts)
    tasks: dict[str, list[Verdict]] = defaultdict(list)
    for v in vs:
        tasks[v.query_id].append(v)
    per_task = [(len(t), sum(v.passed for v in t)) for t in tasks.values()]
    k_max = min((n for n, _ in per_task), default=0)
    summary: dict[str, Any] = {
        "mode": mode,
        **_group(vs),
        "tasks": len(tasks),
        "pass@1": round(sum(c / n for n, c in per_task) / len(per_task), 4) if per_task else None,
        "pass^k": {str(k): round(pass_hat_k(per_task, k), 4) for k in range(1, k_max + 1)} if k_max > 1 else {},
        "pass^k_convention": PASS_K_CONVENTION,
        "episodes_per_task": {"min": k_max, "max": max((n for n, _ in per_task), default=0)},
        "by_category": {c: sum(v.category == c for v in vs) for c in CATEGORY_ORDER},
        "by_env": {env: _group([v for v in vs if v.env == env]) for env in sorted({v.env for v in vs})},
        "by_task_kind": {k: _group([v for v in vs if v.task_kind == k]) for k in sorted({v.task_kind for v in vs})},
        "scores": {
            key: _mean([v.scores.get(key) for v in vs])
            for key in ("end_state", "policy", "answer", "write_precision", "write_recall", "read_recall", "judge")
        },
    }
    if extra:
        summary.update(extra)
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text table: one line per env and per task kind, then the totals and the
    failure categories."""
    head = f"{'':<44} {'episodes':>8} {'passed':>7} {'rate':>6} {'infra':>6}  top failure"
    lines = [head, "-" * len(head)]

    def line(name: str, g: dict) -> str:
        top = next(iter(g["categories"].items()), None)
        rate = "-" if g["pass_rate"] is None else f"{g['pass_rate']:.2f}"
        return f"{name[:44]:<44} {g['episodes']:>8} {g['passed']:>7} {rate:>6} {g['infra_errors']:>6}  " + (
            f"{top[0]} ({top[1]})" if top else ""
        )

    for env, g in summary["by_env"].items():
        lines.append(line(env, g))
    lines.append("-" * len(head))
    for kind, g in summary["by_task_kind"].items():
        lines.append(line(f"[{kind}]", g))
    lines.append("-" * len(head))
    lines.append(line("all", summary))
    pk = ", ".join(f"pass^{k} {v:.3f}" for k, v in summary["pass^k"].items())
    p1 = summary["pass@1"]
    lines.append(f"tasks {summary['tasks']}, pass@1 {'-' if p1 is None else f'{p1:.3f}'}" + (f", {pk}" if pk else ""))
    cats = ", ".join(f"{c} {n}" for c, n in summary["by_category"].items() if n)
    lines.append(f"failures: {cats or 'none'}")
    return "\n".join(lines)

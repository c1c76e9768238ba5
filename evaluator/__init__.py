"""Evaluation of rollout episodes against the dataset (DESIGN.md section 7).

Library entry points:

* :func:`evaluate_episodes` (``evaluator.core``): episodes + dataset rows + servers ->
  one :class:`~agentskiller.models.episodes.Verdict` per episode, by replaying every
  episode and the golden path on fresh states in a sandboxed worker per env.
* :func:`build_summary` / :func:`format_table` (``evaluator.summary``): pass@1, pass^k,
  counts by env, task kind and failure category.
* :func:`evaluate_directory` (``evaluator.run_evaluation``): the above over a rollouts
  directory, writing ``results.jsonl`` and ``summary.json``; also the command line
  ``python -m evaluator.run_evaluation``.

The end-state normalization is described in :mod:`evaluator.normalize`, the checks and
the failure categories in :mod:`evaluator.core`.
"""

from .core import CATEGORY_ORDER, MODES, evaluate_episodes
from .summary import build_summary, format_table, pass_hat_k

_LAZY = {"load_episodes", "load_rows", "evaluate_directory"}


def __getattr__(name: str):
    # run_evaluation.py is also run as ``python -m evaluator.run_evaluation``; importing it
    # here eagerly would make runpy warn that the module is already in sys.modules.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(".run_evaluation", __name__), name)
    raise AttributeError(name)


__all__ = [
    "CATEGORY_ORDER",
    "MODES",
    "evaluate_episodes",
    "build_summary",
    "format_table",
    "pass_hat_k",
    "load_episodes",
    "load_rows",
    "evaluate_directory",
]

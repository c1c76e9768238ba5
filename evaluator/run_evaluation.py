"""Command line: score the rollouts in a directory and write verdicts and a summary.

    python -m evaluator.run_evaluation --mode all --rollouts-dir rollouts/ \\
        --outputs-dir outputs/ --mcp-outputs-dir outputs/ --output outputs/evaluation/results.jsonl

Reads every ``*.jsonl`` in ``--rollouts-dir`` (one :class:`Episode` per line), the dataset
rows (``{outputs-dir}/dataset/train.jsonl``) and the servers under ``--mcp-outputs-dir``
(default: the outputs dir); writes one :class:`Verdict` per line to ``--output`` and
``summary.json`` next to it, and prints the summary table. ``--mode`` picks the check that
decides a pass: ``all`` (end state, policy and answer), ``end_state``, ``actions``,
``answer`` or ``policy``. The library entry is :func:`evaluate_directory` (and, below it,
:func:`evaluator.evaluate_episodes`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentskiller.models.episodes import Episode, Verdict
from agentskiller.runtime.sandbox import SandboxSettings

from .core import MODES, Judge, evaluate_episodes
from .summary import build_summary, format_table

__all__ = ["load_episodes", "load_rows", "evaluate_directory", "main"]


def load_rows(path: str | Path) -> dict[str, dict]:
    """Dataset rows by id, from a JSONL file or an outputs directory
    (``dataset/train.jsonl``)."""
    p = Path(path)
    if p.is_dir():
        p = p / "dataset" / "train.jsonl"
    rows: dict[str, dict] = {}
    with open(p, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                rows[row["id"]] = row
    return rows


def load_episodes(path: str | Path) -> tuple[list[Episode], list[dict]]:
    """Episodes from every ``*.jsonl`` of a directory (or one file), and the lines that are
    not episodes: ``{"file", "line", "error", "record"}`` (record: the decoded object, if
    any)."""
    p = Path(path)
    files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    episodes: list[Episode] = []
    problems: list[dict] = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as exc:
                    problems.append({"file": str(f), "line": n, "error": f"not JSON: {exc}", "record": None})
                    continue
                try:
                    episodes.append(Episode.model_validate(rec))
                except ValidationError as exc:
                    problems.append(
                        {
                            "file": str(f),
                            "line": n,
                            "error": f"not an episode: {exc.error_count()} errors",
                            "record": rec,
                        }
                    )
    return episodes, problems


def _problem_verdict(problem: dict, rows: dict[str, dict]) -> Verdict | None:
    rec = problem.get("record")
    if not isinstance(rec, dict) or not all(isinstance(rec.get(k), str) for k in ("episode_id", "query_id", "env")):
        return None
    row = rows.get(rec["query_id"]) or {}
    why = f"{problem['file']}:{problem['line']}: {problem['error']}"
    return Verdict(
        episode_id=rec["episode_id"],
        query_id=rec["query_id"],
        task_id=str(rec.get("task_id") or row.get("task_id") or ""),
        env=rec["env"],
        task_kind=row.get("task_kind", "unknown"),
        episode=rec.get("episode") if isinstance(rec.get("episode"), int) else 0,
        passed=False,
        category="infra_error",
        infra_error=True,
        scores={"end_state": None, "policy": None, "answer": None},
        detail=f"infra_error: unreadable episode ({why})",
        evidence={"infra": why},
    )


def _load_judge(spec: str | None) -> Judge | None:
    if not spec:
        return None
    module, _, name = spec.partition(":")
    if not name:
        raise SystemExit("--judge takes module:function")
    return getattr(importlib.import_module(module), name)


def evaluate_directory(
    rollouts_dir: str | Path,
    outputs_dir: str | Path,
    output: str | Path,
    *,
    mcp_outputs_dir: str | Path | None = None,
    dataset: str | Path | None = None,
    mode: str = "all",
    sandbox: SandboxSettings | None = None,
    in_process: bool = False,
    require_confirmation: bool = True,
    judge: Judge | None = None,
    summary_path: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate every episode under ``rollouts_dir``; write the verdicts (JSONL) to
    ``output`` and the summary to ``summary_path`` (default ``summary.json`` beside
    ``output``). Returns the summary."""
    t0 = time.perf_counter()
    outputs_dir = Path(outputs_dir)
    rows = load_rows(dataset or outputs_dir)
    episodes, problems = load_episodes(rollouts_dir)
    verdicts = evaluate_episodes(
        episodes,
        rows,
        mcp_outputs_dir or outputs_dir,
        outputs_dir=outputs_dir,
        mode=mode,
        sandbox=sandbox,
        in_process=in_process,
        require_confirmation=require_confirmation,
        judge=judge,
    )
    unreadable = 0
    for p in problems:
        v = _problem_verdict(p, rows)
        if v is None:
            unreadable += 1
        else:
            verdicts.append(v)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for v in verdicts:
            fh.write(v.model_dump_json() + "\n")
    tmp.replace(out)
    summary = build_summary(
        verdicts,
        mode=mode,
        extra={
            "unreadable_lines": unreadable,
            "problems": [{k: p[k] for k in ("file", "line", "error")} for p in problems][:20],
            "seconds": round(time.perf_counter() - t0, 3),
            "rollouts_dir": str(rollouts_dir),
            "outputs_dir": str(outputs_dir),
        },
    )
    spath = Path(summary_path) if summary_path else out.parent / "summary.json"
    spath.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evaluator.run_evaluation", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", "-m", choices=MODES, default="all", help="the check that decides a pass")
    ap.add_argument("--rollouts-dir", "-r", default="rollouts/", help="rollout JSONL files (one episode per line)")
    ap.add_argument("--outputs-dir", "-o", default="outputs/", help="the run's outputs (dataset/, blueprints/)")
    ap.add_argument("--mcp-outputs-dir", default=None, help="where servers/ and cross/ are (default: --outputs-dir)")
    ap.add_argument("--output", "-O", default="outputs/evaluation/results.jsonl", help="verdicts, one JSON line each")
    ap.add_argument("--dataset", default=None, help="dataset rows (default: {outputs-dir}/dataset/train.jsonl)")
    ap.add_argument("--summary", default=None, help="summary JSON (default: summary.json beside --output)")
    ap.add_argument("--config", default=None, help="config YAML whose sandbox: block limits the replay worker")
    ap.add_argument("--in-process", action="store_true", help="replay in this process (trusted code only)")
    ap.add_argument("--no-confirmation", action="store_true", help="do not require the user's yes before each write")
    ap.add_argument("--judge", default=None, help="module:function of an optional judge hook (off by default)")
    ap.add_argument("--quiet", "-q", action="store_true", help="do not print the table")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sandbox = None
    if args.config:
        from agentskiller.config import resolve
        from agentskiller.yamlload import safe_load

        cfg = resolve(safe_load(Path(args.config).read_text(encoding="utf-8")))
        sandbox = SandboxSettings.from_config(cfg.get("sandbox"))
    summary = evaluate_directory(
        args.rollouts_dir,
        args.outputs_dir,
        args.output,
        mcp_outputs_dir=args.mcp_outputs_dir,
        dataset=args.dataset,
        mode=args.mode,
        sandbox=sandbox,
        in_process=args.in_process,
        require_confirmation=not args.no_confirmation,
        judge=_load_judge(args.judge),
        summary_path=args.summary,
    )
    if not args.quiet:
        print(format_table(summary))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``agentskiller`` command (also ``python -m agentskiller``).

``agentskiller status [--outputs outputs] [--logs logs] [--json]``: one table of every env
(domains and pairs) with the stage it reached, its counts, its quarantine reason and the LLM
tokens of its jobs. It reads only the artifacts and logs, so it works while the workflow runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .reporting.status import format_summary, run_status


def _status(args: argparse.Namespace) -> int:
    summary, usage = run_status(args.outputs, args.logs)
    if args.json:
        print(json.dumps(summary.model_dump(), indent=2, sort_keys=True))
    else:
        print(format_summary(summary, usage))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="agentskiller", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="stage, counts, quarantine reason and tokens of every env")
    st.add_argument("--outputs", type=Path, default=Path("outputs"), help="the run's outputs_dir (default: outputs)")
    st.add_argument("--logs", type=Path, default=Path("logs"), help="the run's log folder (default: logs)")
    st.add_argument("--json", action="store_true", help="the collected state as JSON instead of the table")
    st.set_defaults(func=_status)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))

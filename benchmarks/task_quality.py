"""Task quality of a built dataset, measured from its rows alone (issue: solvable tasks).

    python benchmarks/task_quality.py --outputs outputs/ [--json]

Replays every row of ``dataset/train.jsonl`` on its server's fresh state and prints the
figures of :func:`agentskiller.reporting.task_audit.audit`: golden-call arguments an agent can
source, list calls that return the record the task is about, task-kind shares, writes to a
record created in the same task, instruction variety, and (issue 11) the cross-domain rows
with an *unstated link*: an argument equal to a field of an earlier replayed result of the
other service that the scenario never states (``cross_rows_with_unstated_link``,
``pairs_with_3_linked_rows``; :func:`agentskiller.reporting.task_audit.unstated_links`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agentskiller import io
from agentskiller.reporting.task_audit import audit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outputs", type=Path, default=Path("outputs"))
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    a = ap.parse_args()
    rows = io.read_jsonl(a.outputs / "dataset/train.jsonl")
    figures = audit(rows, a.outputs)
    if a.json:
        print(json.dumps(figures, indent=2))
        return
    for k, v in figures.items():
        print(f"{k:48} {v}")


if __name__ == "__main__":
    main()
